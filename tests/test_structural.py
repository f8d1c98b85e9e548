"""Weight-free structural similarity and the shared keyframe sampling policy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pytest_ltx.expect.clip_score import ClipScoreExpect, check_structural
from pytest_ltx.media import Clip
from pytest_ltx.metrics import structural
from pytest_ltx.metrics.sampling import sample_indices
from pytest_ltx.outcome import Status

# ---- sampling -----------------------------------------------------------------------------------------


def test_sampling_rate_plus_first_and_last():
    assert sample_indices(121, 24.0, 2.0) == [0, 12, 24, 36, 48, 60, 72, 84, 96, 108, 120]
    assert sample_indices(130, 24.0, 2.0)[-2:] == [120, 129]  # last frame added
    assert sample_indices(130, 24.0, 2.0, include_first_last=False)[-1] == 120
    assert sample_indices(10, 24.0, 2.0) == [0, 9]


def test_sampling_fractional_step_and_edges():
    idx = sample_indices(100, 25.0, 2.0)  # 12.5 frames between keyframes
    assert idx[:4] == [0, 12, 25, 38] and idx[-1] == 99
    assert sample_indices(5, 2.0, 4.0) == [0, 1, 2, 3, 4]  # rate above fps: every frame
    assert sample_indices(1, 24.0, 2.0) == [0]
    assert sample_indices(0, 24.0, 2.0) == []
    with pytest.raises(ValueError):
        sample_indices(10, 24.0, 0.0)


# ---- SSIM ---------------------------------------------------------------------------------------------


def test_ssim_matches_the_reference_definition():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 64)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    assert structural.ssim(a, a) == pytest.approx(1.0)
    s = structural.ssim(a, b)
    assert 0.5 < s < 1.0
    skm = pytest.importorskip("skimage.metrics")
    ref = skm.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=255)
    assert s == pytest.approx(ref, abs=1e-9)


# ---- fingerprints on clips with known truth -------------------------------------------------------------


def _card(seed: int = 1, **kw) -> Clip:
    from pytest_ltx.testcard import TestCardSpec, draw

    return draw(TestCardSpec(width=160, height=96, frames=25, fps=12, seed=seed, audio=None, **kw)).clip


def test_fingerprint_shape_and_frames():
    fp = structural.fingerprint(_card(), sample_fps=2.0)
    assert fp.frames == (0, 6, 12, 18, 24)
    assert fp.thumbnails.shape == (5, 64, 64) and fp.thumbnails.dtype == np.uint8
    assert fp.times[1] == pytest.approx(0.5)


def test_identical_clip_is_one_changed_scene_fails():
    a = _card(seed=1)
    base = structural.fingerprint(a)
    same = structural.compare(structural.fingerprint(_card(seed=1)), base)
    assert same.similarity is not None and same.min == pytest.approx(1.0)
    expect = ClipScoreExpect(structural_similarity_min=0.8)
    (ok,) = check_structural(same, expect)
    assert ok.status is Status.PASSED

    # a cut at frame 12 to a different scene: keyframes from 12 on change, earlier ones do not
    cut = structural.analyze(_card(seed=1, cuts=(12,)), baseline_thumbnails=base.thumbnails)
    sims = dict(zip(cut.sampled_frames, cut.similarity))
    assert sims[0] == pytest.approx(1.0) and sims[6] == pytest.approx(1.0)
    assert max(sims[12], sims[18], sims[24]) < 0.6
    (bad,) = check_structural(cut, expect)
    assert bad.status is Status.FAILED
    frame = bad.details["worst_frame"]
    assert frame >= 12 and f"frame {frame}" in bad.message and "< 0.8" in bad.message

    # a whole different scene (another seed) fails too
    other = structural.analyze(_card(seed=7), baseline_thumbnails=base.thumbnails)
    assert other.mean < 0.6 and check_structural(other, expect)[0].failed


def test_mild_perturbation_stays_close_but_below_identity():
    a = _card(seed=3)
    base = structural.fingerprint(a)
    rng = np.random.default_rng(0)
    noisy = np.clip(a.frames.astype(np.int16) + rng.normal(0, 6, a.frames.shape), 0, 255).astype(np.uint8)
    r = structural.analyze(Clip(frames=noisy, fps=a.fps), baseline_thumbnails=base.thumbnails)
    assert 0.8 < r.min < 1.0
    assert check_structural(r, ClipScoreExpect(structural_similarity_min=0.8))[0].status is Status.PASSED


def test_baseline_alignment_and_size_mismatch_are_noted():
    a = _card(seed=2)
    base = structural.fingerprint(a, size=32)  # e.g. an older 32 px baseline
    r = structural.analyze(a, baseline_thumbnails=base.thumbnails)
    assert "32x32" in r.note and r.min > 0.999  # resampling twice costs a rounding error
    short = Clip(frames=a.frames[:13], fps=a.fps)  # 3 keyframes vs 5 in the baseline
    r2 = structural.analyze(short, baseline_thumbnails=structural.fingerprint(a).thumbnails)
    assert len(r2.similarity) == 3 and "relative position" in r2.note


def test_no_baseline_is_unmeasured_and_result_serialises():
    r = structural.analyze(_card())
    assert r.similarity is None and r.scalars() == {"ssim_min": None, "ssim_mean": None}
    (o,) = check_structural(r, ClipScoreExpect(structural_similarity_min=0.9))
    assert o.status is Status.UNMEASURED
    assert check_structural(r, ClipScoreExpect()) == []
    d = json.loads(json.dumps(r.to_dict()))
    assert d["sampled_frames"] == [0, 6, 12, 18, 24] and d["thumbnail_size"] == [64, 64]
    assert r.arrays()["thumbnails"].shape == (5, 64, 64)
