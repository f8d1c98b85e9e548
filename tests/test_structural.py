"""Weight-free structural similarity and the shared keyframe sampling policy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pytest_ltx.baseline import BaselineRecord, compare
from pytest_ltx.expect.clip_score import ClipScoreExpect
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


# ---- the one SSIM gate: the baseline comparison, threshold from clip.structural_similarity_min ------------


def _record(clip: Clip, size: int = structural.THUMB_SIZE) -> BaselineRecord:
    """What a baseline keeps of ``clip``'s fingerprint (a record of this run looks the same)."""
    fp = structural.fingerprint(clip, size=size)
    return BaselineRecord("specs/cards/card", "testcard-0", arrays={"structural.thumbnails": fp.thumbnails},
                          keyframe_frames=list(fp.frames), fps=fp.fps)


def _gate(clip: Clip, base: BaselineRecord, bound: float | None = 0.8):
    cmp = compare(_record(clip), base, clip=ClipScoreExpect(structural_similarity_min=bound))
    (check,) = cmp.arrays
    (outcome,) = [o for o in cmp.outcomes() if o.check == "baseline.structural.thumbnails"]
    return check, outcome


def test_identical_clip_is_one_changed_scene_fails():
    base = _record(_card(seed=1))
    same, ok = _gate(_card(seed=1), base)
    assert same.min == pytest.approx(1.0) and ok.status is Status.PASSED and ok.allowed == 0.8

    # a cut at frame 12 to a different scene: keyframes from 12 on change, earlier ones do not
    cut, bad = _gate(_card(seed=1, cuts=(12,)), base)
    sims = dict(zip(cut.frames, cut.values))
    assert sims[0] == pytest.approx(1.0) and sims[6] == pytest.approx(1.0)
    assert max(sims[12], sims[18], sims[24]) < 0.6
    assert bad.status is Status.FAILED
    frame = bad.details["worst_frame"]
    assert frame >= 12 and f"(frame {frame}, {frame / 12:.2f} s)" in bad.message and "min allowed 0.80" in bad.message

    # a whole different scene (another seed) fails too
    other, o = _gate(_card(seed=7), base)
    assert float(np.mean(other.values)) < 0.6 and o.failed


def test_mild_perturbation_stays_close_but_below_identity():
    a = _card(seed=3)
    base = _record(a)
    rng = np.random.default_rng(0)
    noisy = np.clip(a.frames.astype(np.int16) + rng.normal(0, 6, a.frames.shape), 0, 255).astype(np.uint8)
    check, o = _gate(Clip(frames=noisy, fps=a.fps), base)
    assert 0.8 < check.min < 1.0 and o.status is Status.PASSED


def test_baseline_alignment_and_size_mismatch_are_noted():
    a = _card(seed=2)
    check, o = _gate(a, _record(a, size=32))  # e.g. an older 32 px baseline
    assert "32x32" in o.message and check.min > 0.999  # resampling twice costs a rounding error
    # 3 keyframes (0, 6, 12) vs 5 in the baseline: paired by time, the baseline's last two have no partner
    short = Clip(frames=a.frames[:13], fps=a.fps)
    check, o = _gate(short, _record(a))
    assert check.frames == (0, 6, 12) and check.min == pytest.approx(1.0)
    assert o.status is Status.FAILED and "frame 18 (1.50 s), frame 24 (2.00 s)" in o.message
    assert "length or sampling changed" in o.message
    assert [k["frame"] for k in o.details["unmatched"]["baseline"]] == [18, 24]


def test_no_baseline_inputs_and_result_serialises():
    r = structural.analyze(_card())
    assert r.scalars() == {}  # nothing measured against a baseline lives in the metric
    d = json.loads(json.dumps(r.to_dict()))
    assert d["sampled_frames"] == [0, 6, 12, 18, 24] and d["thumbnail_size"] == [64, 64]
    assert d["times_s"] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert r.arrays()["thumbnails"].shape == (5, 64, 64)
