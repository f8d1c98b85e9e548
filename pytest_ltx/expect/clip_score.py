"""CLIP similarity expectations (``expect.clip``) and their checks, plus the weight-free structural one.

Prompt scores from random weights (the ``tiny-random`` profile) are plumbing only; their messages say so.
Checks against a baseline are "unmeasured" until a baseline exists (first run), never silently passed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from pytest_ltx.outcome import Outcome, Status

from ._base import ExpectModel

if TYPE_CHECKING:
    from pytest_ltx.metrics.clip_score import ClipKeyframe, ClipSimilarityResult
    from pytest_ltx.metrics.structural import StructuralResult

__all__ = ["ClipScoreExpect", "check", "check_structural"]


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
        None, ge=-1, le=1, description="per-keyframe image cosine to the golden baseline, lowest allowed"
    )
    structural_similarity_min: float | None = Field(
        None, ge=-1, le=1, description="per-keyframe SSIM to the golden baseline (weight-free)"
    )
    consistency_min: float | None = Field(None, ge=-1, le=1, description="frame-to-frame CLIP cosine floor")
    sample_fps: float = Field(2.0, gt=0, description="keyframes per second embedded (plus first and last)")


def _at(k: "ClipKeyframe") -> str:
    return f"frame {k.frame} ({k.time_s:.2f} s)"


def _plumbing(result: "ClipSimilarityResult") -> str:
    return " [random CLIP weights: plumbing only, not a judgement of the picture]" if result.random_weights else ""


def _paired_drop(result: "ClipSimilarityResult", baseline_scores) -> tuple[float, int, float] | None:
    """(mean per-keyframe drop, index of the worst keyframe, its drop) against the baseline's per-keyframe
    prompt scores, or None when they cannot be paired (missing, or a different number of keyframes)."""
    import numpy as np

    if baseline_scores is None:
        return None
    base = np.asarray(baseline_scores, np.float64).ravel()
    now = [k.prompt_score for k in result.keyframes]
    if len(now) != len(base) or any(x is None for x in now) or not len(now):
        return None
    d = base - np.asarray(now, np.float64)
    i = int(np.argmax(d))
    return float(d.mean()), i, float(d[i])


def check(result: "ClipSimilarityResult", expect: ClipScoreExpect,
          baseline_prompt_score: float | None = None, baseline_prompt_scores=None) -> list[Outcome]:
    """Evaluate the CLIP expectations; ``baseline_prompt_score`` is the golden clip's mean prompt score and
    ``baseline_prompt_scores`` its per-keyframe scores (the drop is then paired keyframe by keyframe)."""
    out: list[Outcome] = []
    agg = result.aggregates()
    tag = _plumbing(result)
    model = result.model.get("label", "CLIP")

    if expect.prompt_score_min is not None or expect.prompt_score_drop_max is not None:
        mean = agg["prompt_score_mean"]
        worst = result.worst("prompt_score")
        if mean is None or worst is None:
            for name, allowed in (("prompt_score", expect.prompt_score_min),
                                  ("prompt_score_drop", expect.prompt_score_drop_max)):
                if allowed is not None:
                    out.append(Outcome(f"clip.{name}", Status.UNMEASURED,
                                       "no prompt to score against (the clip has no prompt)", allowed=allowed))
        else:
            if expect.prompt_score_min is not None:
                ok = mean >= expect.prompt_score_min
                out.append(Outcome(
                    "clip.prompt_score", Status.PASSED if ok else Status.FAILED,
                    f"prompt score {mean:.3f} (mean of {len(result.keyframes)} keyframes, {model}) "
                    f"{'>=' if ok else '<'} {expect.prompt_score_min:g}; lowest {worst.prompt_score:.3f} at "
                    f"{_at(worst)}{tag}",
                    measured=round(mean, 6), allowed=expect.prompt_score_min,
                    details={"worst_frame": worst.frame},
                ))
            if expect.prompt_score_drop_max is not None:
                paired = _paired_drop(result, baseline_prompt_scores)
                if paired is not None:
                    drop, wi, wd = paired
                    wk = result.keyframes[wi]
                    ok = drop <= expect.prompt_score_drop_max
                    out.append(Outcome(
                        "clip.prompt_score_drop", Status.PASSED if ok else Status.FAILED,
                        f"prompt score {mean:.3f}, paired with this item's baseline keyframe by keyframe: mean "
                        f"{'drop' if drop > 0 else 'rise'} of {abs(drop):.3f} ({'within' if ok else 'more than'} the "
                        f"allowed drop {expect.prompt_score_drop_max:g}); largest drop {wd:+.3f} at {_at(wk)}{tag}",
                        measured=round(drop, 6), allowed=expect.prompt_score_drop_max,
                        baseline=None if baseline_prompt_score is None else round(float(baseline_prompt_score), 6),
                        details={"paired": True, "worst_frame": wk.frame, "worst_drop": round(wd, 6)},
                    ))
                elif baseline_prompt_score is None:
                    out.append(Outcome("clip.prompt_score_drop", Status.UNMEASURED,
                                       f"prompt score {mean:.3f}; no baseline prompt score to compare with yet",
                                       measured=round(mean, 6), allowed=expect.prompt_score_drop_max))
                else:
                    drop = float(baseline_prompt_score) - mean
                    ok = drop <= expect.prompt_score_drop_max
                    out.append(Outcome(
                        "clip.prompt_score_drop", Status.PASSED if ok else Status.FAILED,
                        f"prompt score {mean:.3f} vs baseline {baseline_prompt_score:.3f}: "
                        f"{'drop' if drop > 0 else 'rise'} of {abs(drop):.3f} "
                        f"({'within' if ok else 'more than'} the allowed drop {expect.prompt_score_drop_max:g}); "
                        f"lowest keyframe {worst.prompt_score:.3f} at {_at(worst)}{tag}",
                        measured=round(drop, 6), allowed=expect.prompt_score_drop_max,
                        baseline=round(float(baseline_prompt_score), 6),
                    ))

    if expect.baseline_similarity_min is not None:
        worst = result.worst("baseline_similarity")
        if worst is None:
            out.append(Outcome("clip.baseline_similarity", Status.UNMEASURED,
                               f"no baseline to compare with ({result.baseline_note or 'no embeddings'})",
                               allowed=expect.baseline_similarity_min))
        else:
            lo = worst.baseline_similarity
            assert lo is not None
            ok = lo >= expect.baseline_similarity_min
            note = f" ({result.baseline_note})" if result.baseline_note else ""
            out.append(Outcome(
                "clip.baseline_similarity", Status.PASSED if ok else Status.FAILED,
                f"image similarity to the golden baseline: lowest {lo:.4f} at {_at(worst)} "
                f"({'>=' if ok else '<'} {expect.baseline_similarity_min:g}), mean "
                f"{agg['baseline_similarity_mean']:.4f} over {len(result.keyframes)} keyframes, {model}{note}{tag}",
                measured=round(lo, 6), allowed=expect.baseline_similarity_min,
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


def check_structural(result: "StructuralResult", expect: ClipScoreExpect) -> list[Outcome]:
    """``structural_similarity_min``: every keyframe's SSIM to the baseline fingerprint at or above it."""
    if expect.structural_similarity_min is None:
        return []
    bound = expect.structural_similarity_min
    w = result.worst()
    if w is None:
        return [Outcome("clip.structural_similarity", Status.UNMEASURED,
                        f"no baseline fingerprint to compare with ({result.note or 'none stored'})", allowed=bound)]
    frame, t, s = w
    ok = s >= bound
    note = f" ({result.note})" if result.note and result.note != "no baseline thumbnails" else ""
    return [Outcome(
        "clip.structural_similarity", Status.PASSED if ok else Status.FAILED,
        f"structural similarity (SSIM of keyframe thumbnails) to the golden baseline: lowest {s:.4f} at frame "
        f"{frame} ({t:.2f} s) ({'>=' if ok else '<'} {bound:g}), mean {result.mean:.4f} over "
        f"{len(result.similarity or ())} keyframes{note}",
        measured=round(s, 6), allowed=bound, details={"worst_frame": frame},
    )]
