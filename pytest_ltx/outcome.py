"""The result of one expectation check, shared by every metric family, the report and the baselines."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["Status", "Outcome", "jsonable"]


class Status(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    #: the check could not be evaluated (e.g. A/V sync on a clip without audio events) and the spec
    #: did not require it to be measurable: reported, never counted as a pass or a failure.
    UNMEASURED = "unmeasured"
    #: the check itself broke (a missing model, a crash): an infrastructure error, not a regression.
    ERROR = "error"


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


def jsonable(x: Any) -> Any:
    """Turn numpy scalars/arrays, enums, tuples and non-finite floats into plain JSON values."""
    if x is None or isinstance(x, (bool, str, int)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Enum):
        return x.value
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "to_dict"):
        return jsonable(x.to_dict())
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return jsonable(x.item())
        if isinstance(x, np.ndarray):
            return jsonable(x.tolist())
    except ImportError:  # pragma: no cover
        pass
    return str(x)
