"""Motion-continuity expectations (``expect.motion``) and their checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from pytest_ltx.outcome import Outcome, Status

from ._base import ExpectModel

if TYPE_CHECKING:
    from pytest_ltx.metrics.motion import MotionResult


class MotionExpect(ExpectModel):
    """Bounds on the motion-continuity events and scores. Unset fields are not checked."""

    cuts: int | None = Field(None, ge=0, description="exact number of hard cuts (new shots) expected")
    jumps: int | None = Field(None, ge=0, description="exact number of jumps (skips inside one shot)")
    freezes: int | None = Field(None, ge=0, description="exact number of freeze runs")
    flickers: int | None = Field(None, ge=0, description="exact number of flicker episodes")
    max_freeze_frames: int | None = Field(None, ge=0, description="longest allowed run of near-identical frames")
    flicker_max: float | None = Field(None, ge=0, description="upper bound on the flicker score (0 = none)")
    dynamic_min: float | None = Field(None, ge=0, le=1, description="lower bound on the dynamic-degree score")
    dynamic_max: float | None = Field(None, ge=0, le=1, description="upper bound on the dynamic-degree score")


_COUNTS = (("cuts", "cut"), ("jumps", "jump"), ("freezes", "freeze"), ("flickers", "flicker"))


def check(result: "MotionResult", expect: MotionExpect) -> list[Outcome]:
    """One outcome per bound set in ``expect``; messages name each event's kind, frames and times."""
    out: list[Outcome] = []
    for field_name, word in _COUNTS:
        want = getattr(expect, field_name)
        if want is None:
            continue
        events = result.of_kind(word)
        found = len(events)
        where = ", ".join(e.describe() for e in events)
        verb = "allowed" if want == 0 else "expected"
        msg = f"{found} {_noun(word, found)} found, {want} {verb}" + (f": {where}" if where else "")
        out.append(
            Outcome(
                check=f"motion.{field_name}",
                status=Status.PASSED if found == want else Status.FAILED,
                message=msg,
                measured=found,
                allowed=want,
                details={"events": [e.to_dict() for e in events]},
            )
        )
    if expect.max_freeze_frames is not None:
        freezes = result.of_kind("freeze")
        longest = max(freezes, key=lambda e: e.frames, default=None)
        n = longest.frames if longest is not None else 0
        ok = n <= expect.max_freeze_frames
        msg = (
            f"longest freeze {n} frame{'s' if n != 1 else ''}, at most {expect.max_freeze_frames} allowed"
            + (f": {longest.describe()}" if longest is not None else "")
        )
        out.append(Outcome("motion.max_freeze_frames", Status.PASSED if ok else Status.FAILED, msg, n,
                           expect.max_freeze_frames, details={"events": [e.to_dict() for e in freezes]}))
    if expect.flicker_max is not None:
        out.append(_bound(
            "motion.flicker_max", "flicker score (worst second)", result.flicker_score, hi=expect.flicker_max,
            extra=", ".join(e.describe() for e in result.of_kind("flicker")),
        ))
    if expect.dynamic_min is not None or expect.dynamic_max is not None:
        out.append(_bound(
            "motion.dynamic", "dynamic degree", result.dynamic_degree, lo=expect.dynamic_min, hi=expect.dynamic_max
        ))
    return out


def _noun(word: str, n: int) -> str:
    if n == 1:
        return word
    return {"freeze": "freezes", "flicker": "flickers"}.get(word, word + "s")


def _bound(
    check_name: str, what: str, value: float | None, *, lo: float | None = None, hi: float | None = None,
    extra: str = "",
) -> Outcome:
    allowed = {"min": lo, "max": hi}
    if value is None:
        return Outcome(check_name, Status.UNMEASURED, f"{what} not measurable (fewer than 2 frames)", None, allowed)
    parts = (f">= {lo:.3f}" if lo is not None else "", f"<= {hi:.3f}" if hi is not None else "")
    rng = " and ".join(s for s in parts if s)
    ok = (lo is None or value >= lo) and (hi is None or value <= hi)
    msg = f"{what} {value:.3f}, {'within' if ok else 'outside'} the allowed {rng}"
    if extra:
        msg += f": {extra}"
    return Outcome(check_name, Status.PASSED if ok else Status.FAILED, msg, round(value, 6), allowed)
