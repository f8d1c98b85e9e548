"""CLIP similarity expectations (``expect.clip``) and their checks."""

from __future__ import annotations

from pydantic import Field

from ._base import ExpectModel


class ClipScoreExpect(ExpectModel):
    prompt_score_min: float | None = Field(None, ge=0, le=2.5, description="CLIPScore (2.5·max(cos,0)) floor")
    prompt_score_drop_max: float | None = Field(
        None, ge=0, description="largest allowed drop of the prompt score below the golden baseline"
    )
    baseline_similarity_min: float | None = Field(
        None, ge=-1, le=1, description="per-keyframe image cosine to the golden baseline, lowest allowed"
    )
    structural_similarity_min: float | None = Field(
        None, ge=-1, le=1, description="per-keyframe SSIM to the golden baseline (weight-free)"
    )
    consistency_min: float | None = Field(None, ge=-1, le=1, description="frame-to-frame CLIP cosine floor")
    sample_fps: float = Field(2.0, gt=0, description="keyframes per second embedded (plus first and last)")
