"""CLIP similarity expectations (``expect.clip``) and the checks of the clip's own CLIP results.

Prompt scores from random weights (the ``tiny-random`` profile) are plumbing only; their messages say so.
The baseline-relative expectations (``baseline_similarity_min``, ``prompt_score_drop_max``,
``structural_similarity_min``) are declared here, next to the other CLIP ones, but measured and gated by
the baseline comparison (:func:`pytest_ltx.baseline.compare`, one keyframe alignment for all of them);
they are "unmeasured" until a baseline exists (first run), never silently passed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from pytest_ltx.outcome import Outcome, Status

from ._base import ExpectModel

if TYPE_CHECKING:
    from pytest_ltx.metrics.clip_score import ClipKeyframe, ClipSimilarityResult

__all__ = ["ClipScoreExpect", "check"]


class ClipScoreExpect(ExpectModel):
    prompt_score_min: float | None = Field(
        None, ge=0, le=2.5, description="CLIPScore (2.5·max(cos,0)) floor for the keyframe mean"
    )
    prompt_score_drop_max: float | None = Field(
        None, ge=0, description="largest allowed drop of the prompt score below the golden baseline of this item "
                                "(same prompt, same seed), paired keyframe by keyframe: the mean of the per-keyframe "
                                "drops. The trustworthy prompt gate; a floor (prompt_score_min) is not"
    )
    baseline_similarity_min: float | None = Field(
        None, ge=-1, le=1, description="per-keyframe image cosine to the golden baseline, lowest allowed (replaces "
                                "baseline.keyframe_cosine_min for this item; outcome clip.baseline_similarity)"
    )
    structural_similarity_min: float | None = Field(
        None, ge=-1, le=1, description="per-keyframe SSIM to the golden baseline (weight-free); replaces "
                                "baseline.keyframe_ssim_min for this item (outcome baseline.structural.thumbnails)"
    )
    consistency_min: float | None = Field(None, ge=-1, le=1, description="frame-to-frame CLIP cosine floor")
    sample_fps: float = Field(2.0, gt=0, description="keyframes per second embedded (plus first and last)")


def _at(k: "ClipKeyframe") -> str:
    return f"frame {k.frame} ({k.time_s:.2f} s)"


def _plumbing(result: "ClipSimilarityResult") -> str:
    return " [random CLIP weights: plumbing only, not a judgement of the picture]" if result.random_weights else ""


def check(result: "ClipSimilarityResult", expect: ClipScoreExpect) -> list[Outcome]:
    """Evaluate the CLIP expectations on the clip's own results (prompt score, consistency); the
    baseline-relative ones are the baseline comparison's."""
    out: list[Outcome] = []
    agg = result.aggregates()
    tag = _plumbing(result)
    model = result.model.get("label", "CLIP")

    if expect.prompt_score_min is not None:
        mean = agg["prompt_score_mean"]
        worst = result.worst("prompt_score")
        if mean is None or worst is None:
            out.append(Outcome("clip.prompt_score", Status.UNMEASURED,
                               "no prompt to score against (the clip has no prompt)", allowed=expect.prompt_score_min))
        else:
            ok = mean >= expect.prompt_score_min
            out.append(Outcome(
                "clip.prompt_score", Status.PASSED if ok else Status.FAILED,
                f"prompt score {mean:.3f} (mean of {len(result.keyframes)} keyframes, {model}) "
                f"{'>=' if ok else '<'} {expect.prompt_score_min:g}; lowest {worst.prompt_score:.3f} at "
                f"{_at(worst)}{tag}",
                measured=round(mean, 6), allowed=expect.prompt_score_min,
                details={"worst_frame": worst.frame},
            ))

    if expect.consistency_min is not None:
        worst = result.worst("consistency")
        if worst is None:
            out.append(Outcome("clip.consistency", Status.UNMEASURED,
                               "fewer than two keyframes: no frame-to-frame consistency",
                               allowed=expect.consistency_min))
        else:
            lo = worst.consistency
            assert lo is not None
            ok = lo >= expect.consistency_min
            prev = result.keyframes[result.keyframes.index(worst) - 1]
            out.append(Outcome(
                "clip.consistency", Status.PASSED if ok else Status.FAILED,
                f"keyframe-to-keyframe similarity: lowest {lo:.4f} between frame {prev.frame} and {_at(worst)} "
                f"({'>=' if ok else '<'} {expect.consistency_min:g}){tag}",
                measured=round(lo, 6), allowed=expect.consistency_min, details={"worst_frame": worst.frame},
            ))
    return out
