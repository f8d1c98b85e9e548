"""Motion-continuity expectations (``expect.motion``) and their checks."""

from __future__ import annotations

from pydantic import Field

from ._base import ExpectModel


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
