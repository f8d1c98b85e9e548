"""Expectations on the rendered file and the render itself: format, determinism, budget."""

from __future__ import annotations

from pydantic import Field

from ._base import ExpectModel


class FormatExpect(ExpectModel):
    """Stream facts. For rendered clips unset values default to what the spec asked for."""

    frames: int | None = Field(None, ge=1)
    fps: float | None = Field(None, gt=0)
    width: int | None = Field(None, ge=1)
    height: int | None = Field(None, ge=1)
    audio: bool | None = Field(None, description="an audio track must (true) / must not (false) be present")
    duration_tolerance_s: float = Field(0.25, ge=0, description="allowed |audio - video| duration")


class DeterminismExpect(ExpectModel):
    """Render twice with the same seed; the second must match (bit for bit by default)."""

    max_pixel_diff: int = Field(0, ge=0, le=255, description="largest allowed per-pixel |difference|")
    max_audio_diff: float = Field(0.0, ge=0, description="largest allowed per-sample |difference|")


class BudgetExpect(ExpectModel):
    render_seconds_max: float | None = Field(None, gt=0)
    vram_gb_max: float | None = Field(None, gt=0, description="peak CUDA memory; not measurable on CPU")
