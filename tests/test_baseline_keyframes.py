"""The one keyframe-alignment policy of baseline comparisons (baseline/keyframes.py): by timestamp, nearest
stored keyframe within half a sample interval, unmatched keyframes reported on both sides — and every
baseline-relative check of an item uses it."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_ltx.baseline import BaselineRecord, compare
from pytest_ltx.baseline.keyframes import align_keyframes
from pytest_ltx.expect import BaselineExpect
from pytest_ltx.expect.clip_score import ClipScoreExpect
from pytest_ltx.metrics.sampling import sample_indices
from pytest_ltx.outcome import Status


def test_same_frames_and_rate_is_the_identity() -> None:
    frames = sample_indices(121, 24.0, 2.0)
    al = align_keyframes(frames, 24.0, frames, 24.0)
    assert al.identity and al.by == "time" and al.tolerance_s == pytest.approx(0.25)
    assert [(p.frame, p.baseline_frame) for p in al.pairs] == [(f, f) for f in frames]


def test_another_frame_rate_pairs_the_same_moments() -> None:
    base = sample_indices(121, 24.0, 2.0)  # 0, 12, …, 120: 0.0 … 5.0 s
    now = sample_indices(126, 25.0, 2.0)  # 0, 12, 25, 38, …, 125 at 25 fps
    al = align_keyframes(now, 25.0, base, 24.0)
    assert al.complete and len(al.pairs) == 11
    assert all(abs(p.time_s - p.baseline_time_s) < 0.05 for p in al.pairs)
    assert [p.baseline_frame for p in al.pairs] == base


def test_longer_and_shorter_clips_report_their_unmatched_keyframes() -> None:
    base = sample_indices(49, 24.0, 2.0)  # 0 … 48 (2 s)
    longer = sample_indices(73, 24.0, 2.0)  # … 60, 72
    al = align_keyframes(longer, 24.0, base, 24.0)
    assert [longer[i] for i in al.unmatched] == [60, 72] and not al.gone
    assert "this run's frame 60 (2.50 s), frame 72 (3.00 s) have no baseline keyframe within ±0.25 s" \
        == al.describe_unmatched()
    al = align_keyframes(base, 24.0, longer, 24.0)
    assert [longer[j] for j in al.gone] == [60, 72] and not al.unmatched
    assert al.unmatched_dict()["baseline"] == [{"index": 5, "frame": 60, "time_s": 2.5},
                                               {"index": 6, "frame": 72, "time_s": 3.0}]


def test_each_stored_keyframe_pairs_once_closest_first() -> None:
    # the sampling added the last frame (1.04 s) just after the 1.0 s keyframe: both are near the stored 1.0 s
    al = align_keyframes([0, 12, 24, 25], 24.0, [0, 12, 24], 24.0)
    assert [(p.frame, p.baseline_frame) for p in al.pairs] == [(0, 0), (12, 12), (24, 24)]
    assert [3] == list(al.unmatched)


def test_without_times_keyframes_pair_by_index_only_when_counts_match() -> None:
    al = align_keyframes([], None, [], None, count=3, baseline_count=3)
    assert al.by == "index" and al.identity
    al = align_keyframes([], None, [0, 24, 48], None, count=2)
    assert not al.pairs and al.unmatched == (0, 1) and al.gone == (0, 1, 2)
    # an array that does not follow its frame list is not trusted to have those times
    al = align_keyframes([0, 12], 24.0, [0, 12], 24.0, count=3, baseline_count=3)
    assert al.by == "index" and len(al.pairs) == 3


def _record(frames: list[int], fps: float, k_emb: np.ndarray, thumbs: np.ndarray, scores: np.ndarray) -> BaselineRecord:
    return BaselineRecord("specs/cards/card", "testcard-0", keyframe_frames=frames, fps=fps,
                          scalars={"clip_similarity.prompt_score_mean": float(np.mean(scores))},
                          arrays={"clip_similarity.embeddings": k_emb, "structural.thumbnails": thumbs,
                                  "clip_similarity.prompt_scores": scores})


def test_every_baseline_check_uses_the_same_alignment() -> None:
    """A clip one keyframe longer than its baseline: the keyframe CLIP cosine, the SSIM and the prompt-score
    delta all pair the same keyframes and all name the same extra one; a frame-rate change alone passes."""
    import cv2

    rng = np.random.default_rng(0)
    k = 6
    emb = rng.normal(size=(k, 16))
    thumbs = np.stack([cv2.GaussianBlur(rng.integers(0, 256, (32, 32)).astype(np.uint8), (5, 5), 1.5)
                       for _ in range(k)])
    scores = rng.uniform(0.5, 1.0, k)
    frames = sample_indices(61, 24.0, 2.0)  # 0 … 60: 6 keyframes
    base = _record(frames[:5], 24.0, emb[:5], thumbs[:5], scores[:5])
    now = _record(frames, 24.0, emb, thumbs, scores)
    cmp = compare(now, base, BaselineExpect(), clip=ClipScoreExpect(prompt_score_drop_max=0.1))
    o = {x.check: x for x in cmp.outcomes()}
    for name in ("baseline.clip_similarity.embeddings", "baseline.structural.thumbnails"):
        assert o[name].status is Status.FAILED and "frame 60 (2.50 s)" in o[name].message, name
        assert o[name].details["frames"] == frames[:5] and o[name].measured == pytest.approx(1.0, abs=1e-3)
    drop = o["clip.prompt_score_drop"]
    assert drop.status is Status.PASSED and drop.details["frames"] == frames[:5] and "frame 60 (2.50 s)" in drop.message
    assert not cmp.ok

    # the same keyframes sampled from a 25 fps render of the same length: the moments pair up, nothing fails
    at25 = sample_indices(63, 25.0, 2.0)
    assert len(at25) == k
    cmp = compare(_record(at25, 25.0, emb, thumbs, scores), _record(frames, 24.0, emb, thumbs, scores),
                  clip=ClipScoreExpect(prompt_score_drop_max=0.1))
    assert cmp.ok and all(o.status is Status.PASSED for o in cmp.outcomes())
    assert {o.check for o in cmp.outcomes()} >= {
        "baseline.clip_similarity.embeddings", "baseline.structural.thumbnails", "clip.prompt_score_drop"}
