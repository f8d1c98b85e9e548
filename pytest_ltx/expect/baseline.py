"""Golden-baseline expectations (``expect.baseline``): tolerances per metric key."""

from __future__ import annotations

from pydantic import Field

from ._base import ExpectModel


class BaselineExpect(ExpectModel):
    enabled: bool = Field(True, description="compare this clip with its golden baseline")
    tolerances: dict[str, float] = Field(
        default_factory=dict, description="absolute tolerance per metric key, e.g. {'motion.flicker_score': 0.01}"
    )
    sigma_k: float = Field(4.0, gt=0, description="with calibrated spread: tolerance = max(floor, k·σ)")
