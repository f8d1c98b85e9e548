"""Golden-baseline expectations (``expect.baseline``): how far each metric may move from its baseline.

Tolerance precedence for a metric key (first that applies):

1. ``tolerances`` in the spec — exact key first, then the most specific glob (``motion.*``);
2. a calibrated spread in the baseline (``--ltx-calibrate N``): ``max(floor, sigma_k · σ)``;
3. the built-in default table in :mod:`pytest_ltx.baseline.compare` (counts exact, scores absolute).
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from ._base import ExpectModel

_TOL = re.compile(r"^\s*(?:±|\+-|\+/-)?\s*(\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*(%?)\s*$")


def parse_tolerance(value: float | int | str) -> tuple[float, float]:
    """``0.01`` → absolute ``(0.01, 0)``; ``"5%"`` → relative ``(0, 0.05)``; ``"exact"`` → ``(0, 0)``."""
    if isinstance(value, bool):
        raise ValueError("a tolerance is a number or a percentage like '5%'")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a tolerance cannot be negative")
        return float(value), 0.0
    text = str(value).strip()
    if text.lower() == "exact":
        return 0.0, 0.0
    m = _TOL.match(text)
    if not m:
        raise ValueError(f"tolerance {value!r} is not a number, a percentage like '5%', or 'exact'")
    number = float(text.replace("±", "").replace("+/-", "").replace("+-", "").replace("%", "").strip())
    return (0.0, number / 100.0) if m.group(2) else (number, 0.0)


class BaselineExpect(ExpectModel):
    """Compare this clip's metrics and keyframes with its golden baseline."""

    enabled: bool = Field(True, description="compare this clip with its golden baseline")
    tolerances: dict[str, float | str] = Field(
        default_factory=dict,
        description=(
            "allowed move per metric key or glob: a number (absolute), 'N%' (relative to the baseline) or"
            " 'exact', e.g. {'motion.flicker_score': 0.01, 'clip_similarity.*': '5%'}; beats calibration"
        ),
    )
    sigma_k: float = Field(4.0, gt=0, description="with calibrated spread: tolerance = max(floor, k·σ)")
    floors: dict[str, float] = Field(
        default_factory=dict,
        description="smallest calibrated tolerance per metric key or glob (default: the built-in table's floor)",
    )
    ignore: list[str] = Field(
        default_factory=list, description="metric keys or globs recorded in the baseline but not gated"
    )
    keyframe_cosine_min: float = Field(
        0.9, ge=-1, le=1, description="lowest per-keyframe CLIP image cosine to the baseline's keyframes"
    )
    keyframe_ssim_min: float = Field(
        0.7, ge=-1, le=1, description="lowest per-keyframe SSIM of the 32×32 structural thumbnails"
    )
    keyframe_audio_min: float = Field(
        0.8, ge=0, le=1, description="lowest per-keyframe audio log-mel similarity (spectral shape × level) "
                                     "to the baseline's, in a 0.5 s window around each keyframe"
    )

    @field_validator("tolerances")
    @classmethod
    def _valid_tolerances(cls, v: dict[str, float | str]) -> dict[str, float | str]:
        for key, tol in v.items():
            try:
                parse_tolerance(tol)
            except ValueError as e:
                raise ValueError(f"tolerances[{key!r}]: {e}") from None
        return v

    @field_validator("floors")
    @classmethod
    def _valid_floors(cls, v: dict[str, float]) -> dict[str, float]:
        for key, floor in v.items():
            if floor < 0:
                raise ValueError(f"floors[{key!r}]: a floor cannot be negative")
        return v
