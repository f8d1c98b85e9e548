"""The result of one expectation check, shared by every metric family, the report and the baselines."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pytest_ltx.jsonvalues import jsonable  # noqa: F401 (re-exported)

__all__ = ["BaselineStatus", "FailureKind", "Status", "Outcome", "failure_kind", "jsonable"]


class Status(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    #: the check could not be evaluated (e.g. A/V sync on a clip without audio events) and the spec
    #: did not require it to be measurable: reported, never counted as a pass or a failure.
    UNMEASURED = "unmeasured"
    #: the check itself broke (a missing model, a crash): an infrastructure error, not a regression.
    ERROR = "error"


class BaselineStatus(str, Enum):
    """What an item's golden-baseline step did (``results.json``: ``baseline.status``). A ``str`` enum whose
    ``str()`` is its value, so it reads and serialises exactly like the strings it replaced."""

    #: measured against the stored baseline
    COMPARED = "compared"
    #: no baseline yet (and the run does not create missing ones)
    MISSING = "missing"
    #: this run writes the first baseline (``--ltx-update-baselines`` / create-missing)
    CREATED = "created"
    #: this run rewrites the stored baseline (``--ltx-update-baselines``)
    UPDATED = "updated"
    #: the stored record could not be read (an error outcome names the file)
    UNREADABLE = "unreadable"
    #: the new record could not be queued for writing
    NOT_WRITTEN = "not written"
    #: baseline comparison is off for this item
    DISABLED = "disabled"

    def __str__(self) -> str:
        return self.value


class FailureKind(str, Enum):
    """Why an item did not pass: the clip got worse, or the machinery around it broke. CI retries the
    second and never the first; the exit status and the report tell them apart."""

    #: a check failed on a clip that was produced: the change under review made something worse
    REGRESSION = "regression"
    #: the clip could not be produced or a check could not run (model, device, OOM, I/O, timeout)
    INFRASTRUCTURE = "infrastructure"


def failure_kind(status: str, outcomes: "list[Outcome] | list[dict[str, Any]]") -> FailureKind | None:
    """An item's failure kind: None when it passed; a regression as soon as one check *failed*;
    infrastructure for an item that errored or whose only problems are checks that could not run."""
    if status == "passed":
        return None
    if status == "error":
        return FailureKind.INFRASTRUCTURE
    def kind(o: "Outcome | dict[str, Any]") -> str:
        status = o.status.value if isinstance(o, Outcome) else str(o.get("status"))
        check = o.check if isinstance(o, Outcome) else str(o.get("check", ""))
        # a baseline record that cannot be read is the repository's content (a bad merge, a truncated
        # file): fixed in the change under review, never by rerunning — a regression, like a failed check
        if status == "error" and check.startswith("baseline."):
            return "failed"
        return status

    states = [kind(o) for o in outcomes]
    if "failed" in states or not states:
        return FailureKind.REGRESSION
    return FailureKind.INFRASTRUCTURE


@dataclass(frozen=True)
class Outcome:
    """One expectation evaluated against a measurement.

    ``check`` is a dotted name (``motion.cuts``, ``av_sync.offset``); ``message`` reads like a reviewer's
    comment: what, where (frame/time), measured vs allowed (and the baseline value when there is one).
    """

    check: str
    status: Status
    message: str
    measured: Any = None
    allowed: Any = None
    baseline: Any = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAILED, Status.ERROR)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "check": self.check,
            "status": self.status.value,
            "message": self.message,
            "measured": jsonable(self.measured),
            "allowed": jsonable(self.allowed),
        }
        if self.baseline is not None:
            d["baseline"] = jsonable(self.baseline)
        if self.details:
            d["details"] = jsonable(self.details)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Outcome":
        return cls(
            check=d["check"],
            status=Status(d["status"]),
            message=d["message"],
            measured=d.get("measured"),
            allowed=d.get("allowed"),
            baseline=d.get("baseline"),
            details=d.get("details") or {},
        )
