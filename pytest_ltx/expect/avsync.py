"""Audio-visual sync expectations (``expect.av_sync``) and their checks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import ExpectModel

#: (max audio early ms, max audio late ms) per named broadcast tolerance.
PRESETS: dict[str, tuple[float, float]] = {
    "itu-bt1359-detectable": (45.0, 125.0),
    "itu-bt1359-acceptable": (90.0, 185.0),
    "ebu-r37": (40.0, 60.0),
}


class AVSyncExpect(ExpectModel):
    """Offset bounds (positive offset = audio late). A preset and explicit bounds combine: explicit wins."""

    preset: Literal["itu-bt1359-detectable", "itu-bt1359-acceptable", "ebu-r37"] | None = None
    max_early_ms: float | None = Field(None, ge=0, description="audio may lead the picture by at most this")
    max_late_ms: float | None = Field(None, ge=0, description="audio may lag the picture by at most this")
    min_confidence: float = Field(0.3, ge=0, le=1, description="below this the offset counts as unmeasured")
    require_measurable: bool = Field(
        False, description="fail (instead of reporting 'unmeasured') when no offset can be measured"
    )
    max_duration_mismatch_s: float = Field(
        0.25, ge=0, description="allowed |audio duration - video duration| (AAC padding, vocoder length)"
    )
