"""OCR text-artifact expectations (``expect.text``) and their checks."""

from __future__ import annotations

from pydantic import Field

from ._base import ExpectModel


class ExpectedText(ExpectModel):
    text: str = Field(..., min_length=1)
    max_cer: float = Field(0.2, ge=0, le=1, description="largest character error rate accepted")
    frames: tuple[int, int] | None = Field(None, description="[first, last] frame the text must appear in")


class TextExpect(ExpectModel):
    """What text may, must, or must not appear. ``none: true`` forbids any text at all."""

    none: bool = Field(False, description="no text at all above min_confidence")
    min_confidence: float = Field(0.5, ge=0, le=1)
    min_box_area: float = Field(0.0, ge=0, le=1, description="ignore boxes smaller than this fraction of the frame")
    expected: list[ExpectedText] = Field(default_factory=list)
    allowed: list[str] = Field(default_factory=list, description="text that may appear (anything else fails)")
    forbidden: list[str] = Field(default_factory=list, description="text that must not appear")
    max_area_ratio: float | None = Field(None, ge=0, le=1, description="largest frame fraction covered by text")
    sample_fps: float = Field(2.0, gt=0, description="frames per second read by OCR (plus first and last)")
