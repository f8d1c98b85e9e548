"""Comparison with a golden baseline: tolerance precedence, messages a reviewer can act on, per-keyframe
similarity, environment differences, the missing-baseline outcome."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from pytest_ltx.baseline.compare import (
    DeltaKind,
    ToleranceSource,
    compare,
    environment_diff,
    missing_outcome,
    resolve_tolerance,
    structural_similarity,
)
from pytest_ltx.baseline.record import BaselineRecord
from pytest_ltx.expect import BaselineExpect
from pytest_ltx.outcome import Status

ITEM = "specs/robots/robot-dance[seed=1]"
MODEL = "tiny-0123456789ab"


@dataclass
class Current:
    """What the plugin has after a run: scalars (+ arrays): not necessarily a BaselineRecord."""

    scalars: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    keyframe_frames: list[int] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)


def _base(scalars: dict[str, Any], **kw: Any) -> BaselineRecord:
    return BaselineRecord(ITEM, MODEL, scalars=scalars, **kw)


def _by_check(comparison) -> dict[str, Any]:
    return {o.check: o for o in comparison.outcomes()}


# ---------------------------------------------------------------------------------------------- scalars


def test_within_and_beyond_default_tolerance() -> None:
    base = _base({"motion.flicker_score": 0.004, "motion.cuts": 0, "av_sync.offset_ms": 12.0})
    ok = compare(Current({"motion.flicker_score": 0.009, "motion.cuts": 0, "av_sync.offset_ms": 30.0}), base)
    assert ok.ok and ok.message() == ""
    assert all(o.status is Status.PASSED for o in ok.outcomes())

    bad = compare(Current({"motion.flicker_score": 0.031, "motion.cuts": 1, "av_sync.offset_ms": 40.0}), base)
    assert not bad.ok
    o = _by_check(bad)
    assert o["baseline.motion.flicker_score"].status is Status.FAILED
    assert o["baseline.motion.flicker_score"].message == (
        "motion.flicker_score moved 0.004 → 0.031 (+0.027; tolerance ±0.01 (default))"
    )
    assert o["baseline.motion.flicker_score"].baseline == 0.004
    assert o["baseline.motion.flicker_score"].measured == 0.031
    assert o["baseline.motion.flicker_score"].allowed == 0.01
    assert o["baseline.motion.cuts"].message == "motion.cuts moved 0 → 1 (+1; tolerance exact (default))"
    assert o["baseline.av_sync.offset_ms"].message.startswith("av_sync.offset_ms moved 12 → 40 (+28;")
    assert bad.message().splitlines()[0] == f"baseline [{MODEL}]: 3 moved beyond tolerance"
    json.dumps([x.to_dict() for x in bad.outcomes()])
    json.dumps(bad.to_dict())


def test_calibrated_tolerance_message_shows_the_spread() -> None:
    base = _base({"motion.flicker_score": 0.004}, spread={"motion.flicker_score": 0.0025}, samples=5)
    c = compare(Current({"motion.flicker_score": 0.031}), base, BaselineExpect(sigma_k=4))
    (o,) = c.outcomes()
    assert o.status is Status.FAILED
    assert o.message == (
        "motion.flicker_score moved 0.004 → 0.031 (+0.027; tolerance ±0.01 = 4σ, σ=0.0025 over 5 runs)"
    )
    assert o.details["spread"] == 0.0025
    within = compare(Current({"motion.flicker_score": 0.012}), base).outcomes()[0]
    assert within.status is Status.PASSED and "within ±0.01 = 4σ" in within.message


def test_calibrated_zero_spread_falls_back_to_the_floor() -> None:
    base = _base({"motion.flicker_score": 0.004, "motion.cuts": 0},
                 spread={"motion.flicker_score": 0.0, "motion.cuts": 0.0}, samples=3)
    c = compare(Current({"motion.flicker_score": 0.0055, "motion.cuts": 0}), base)
    o = _by_check(c)
    assert o["baseline.motion.flicker_score"].status is Status.PASSED  # floor 0.002 for *flicker*
    assert "floor" in o["baseline.motion.flicker_score"].message
    c2 = compare(Current({"motion.flicker_score": 0.0065, "motion.cuts": 0}), base,
                 BaselineExpect(floors={"motion.*": 0.001}))
    assert not c2.ok


def test_spec_tolerance_beats_calibration_and_defaults() -> None:
    base = _base({"clip_similarity.prompt_score_mean": 0.70, "clip_similarity.consistency_min": 0.90},
                 spread={"clip_similarity.prompt_score_mean": 0.1}, samples=5)
    expect = BaselineExpect(tolerances={"clip_similarity.*": "5%", "clip_similarity.prompt_score_mean": 0.01})
    c = compare(Current({"clip_similarity.prompt_score_mean": 0.72, "clip_similarity.consistency_min": 0.86}),
                base, expect)
    o = _by_check(c)
    # the exact key wins over the glob, and both over the 4σ = 0.4 calibration
    assert "tolerance ±0.01 (spec)" in o["baseline.clip_similarity.prompt_score_mean"].message
    assert o["baseline.clip_similarity.prompt_score_mean"].status is Status.FAILED
    # 5% of 0.90 = 0.045 ≥ 0.04
    assert o["baseline.clip_similarity.consistency_min"].status is Status.PASSED
    assert "±5% = ±0.045 (spec)" in o["baseline.clip_similarity.consistency_min"].message


@pytest.mark.parametrize(
    "key, integer, expected",
    [
        ("motion.cuts", True, (0.0, 0.0)),
        ("text.detections", True, (0.0, 0.0)),
        ("motion.max_freeze_frames", True, (0.0, 0.0)),
        ("av_sync.offset_ms", False, (20.0, 0.0)),
        ("av_sync.confidence", False, (0.1, 0.0)),
        ("motion.dynamic_degree", False, (0.05, 0.0)),
        ("clip_similarity.prompt_score_mean", False, (0.02, 0.0)),
        ("structural.ssim_min", False, (0.02, 0.0)),
        ("text.cer", False, (0.05, 0.0)),
        ("av_sync.audio_events", True, (0.0, 0.0)),
        ("av_sync.duration_mismatch_s", False, (0.05, 0.0)),
        ("text.max_area_ratio", False, (0.02, 0.0)),
        ("motion.repeated_frames", True, (0.0, 0.0)),
        ("motion.vbench_flicker", False, (0.01, 0.0)),
        ("family.unknown_int", True, (0.0, 0.0)),
        ("family.unknown_float", False, (1e-6, 0.05)),
    ],
)
def test_default_tolerance_table(key: str, integer: bool, expected: tuple[float, float]) -> None:
    tol = resolve_tolerance(key, BaselineExpect(), integer=integer)
    assert tol is not None and tol.source is ToleranceSource.DEFAULT
    assert (tol.abs, tol.rel) == expected


def test_machine_dependent_and_ignored_metrics_are_not_gated() -> None:
    base = _base({"budget.render_seconds": 10.0, "motion.flicker_score": 0.004, "budget.vram_gb": 3.0,
                  "clip_similarity.baseline_similarity_min": None})
    c = compare(Current({"budget.render_seconds": 99.0, "motion.flicker_score": 0.5, "budget.vram_gb": 9.0,
                         "clip_similarity.baseline_similarity_min": 0.93}),
                base, BaselineExpect(ignore=["motion.flicker*"]))
    assert c.ok and c.outcomes() == []
    assert {d.kind for d in c.metrics} == {DeltaKind.IGNORED}
    # a spec tolerance makes a default-ignored metric gated
    c2 = compare(Current({"budget.render_seconds": 99.0}), _base({"budget.render_seconds": 10.0}),
                 BaselineExpect(tolerances={"budget.render_seconds": "50%"}))
    assert not c2.ok


def test_new_gone_and_unmeasurable_metrics() -> None:
    base = _base({"motion.cuts": 0, "av_sync.offset_ms": 12.0, "text.max_confidence": None, "old.metric": 1.0})
    cur = Current({"motion.cuts": 0, "av_sync.offset_ms": float("nan"), "text.max_confidence": 0.8,
                   "clip_similarity.prompt_score_mean": 0.7})
    o = _by_check(compare(cur, base))
    assert o["baseline.old.metric"].status is Status.UNMEASURED
    assert o["baseline.old.metric"].message == "old.metric was not measured in this run (baseline 1)"
    assert o["baseline.clip_similarity.prompt_score_mean"].status is Status.UNMEASURED
    assert "is new: 0.7 now" in o["baseline.clip_similarity.prompt_score_mean"].message
    # a value that became unmeasurable (NaN = None), or measurable, is a change to review
    assert o["baseline.av_sync.offset_ms"].status is Status.FAILED
    assert o["baseline.av_sync.offset_ms"].message == "av_sync.offset_ms became unmeasurable: 12 → —"
    assert o["baseline.text.max_confidence"].status is Status.FAILED
    assert "became measurable: — → 0.8" in o["baseline.text.max_confidence"].message
    assert o["baseline.motion.cuts"].message.startswith("motion.cuts unchanged (0;")


def test_rounded_baseline_does_not_fail_an_exact_match() -> None:
    base = _base({"x.score": 0.123456789})  # stored as 0.123457
    c = compare(Current({"x.score": 0.123456789}), base, BaselineExpect(tolerances={"x.score": "exact"}))
    assert c.ok


def test_expect_validation() -> None:
    with pytest.raises(ValidationError, match="tolerances"):
        BaselineExpect(tolerances={"motion.cuts": "lots"})
    with pytest.raises(ValidationError):
        BaselineExpect(tolerances={"motion.cuts": -1})
    with pytest.raises(ValidationError, match="floors"):
        BaselineExpect(floors={"motion.*": -0.1})
    assert BaselineExpect(tolerances={"a.b": "±0.5", "a.c": "2.5%", "a.d": "exact", "a.e": 1}).tolerances


# ---------------------------------------------------------------------------------------------- arrays


def _arrays(rng: np.random.Generator, k: int = 4) -> dict[str, np.ndarray]:
    thumbs = rng.integers(0, 256, (k, 32, 32)).astype(np.uint8)
    import cv2

    thumbs = np.stack([cv2.GaussianBlur(t, (5, 5), 1.5) for t in thumbs])
    return {"clip_embeddings": rng.normal(size=(k, 64)), "structural_thumbs": thumbs}


def test_identical_keyframes_pass_and_a_changed_keyframe_is_named() -> None:
    rng = np.random.default_rng(0)
    arrays = _arrays(rng)
    frames = [0, 24, 48, 72]
    base = _base({}, arrays=arrays, keyframe_frames=frames, fps=24)
    same = compare(Current({}, arrays, frames), base)
    assert same.ok
    emb = next(a for a in same.arrays if a.name == "clip_embeddings")
    assert emb.min == pytest.approx(1.0, abs=1e-3)  # float16 storage

    changed = {k: v.copy() for k, v in arrays.items()}
    changed["clip_embeddings"][3] = rng.normal(size=64)  # unrelated content at the last keyframe
    changed["structural_thumbs"][2] = 255 - changed["structural_thumbs"][2]  # inverted structure
    o = _by_check(compare(Current({}, changed, frames), base))
    assert o["baseline.clip_embeddings"].status is Status.FAILED
    assert "at keyframe 3 (frame 72, 3.00 s); min allowed 0.90" in o["baseline.clip_embeddings"].message
    assert o["baseline.structural_thumbs"].status is Status.FAILED
    assert "keyframe SSIM to the baseline fell to" in o["baseline.structural_thumbs"].message
    assert "keyframe 2 (frame 48, 2.00 s)" in o["baseline.structural_thumbs"].message
    assert o["baseline.structural_thumbs"].details["worst_frame"] == 48


def test_keyframe_thresholds_and_custom_ssim() -> None:
    rng = np.random.default_rng(1)
    arrays = _arrays(rng, k=2)
    base = _base({}, arrays=arrays)
    noisy = {"clip_embeddings": arrays["clip_embeddings"] + 0.5 * rng.normal(size=(2, 64)),
             "structural_thumbs": arrays["structural_thumbs"]}
    cos = min(next(a for a in compare(Current({}, noisy), base).arrays if a.name == "clip_embeddings").values)
    assert 0.7 < cos < 0.95
    assert compare(Current({}, noisy), base, BaselineExpect(keyframe_cosine_min=0.5)).ok
    assert not compare(Current({}, noisy), base, keyframe_cosine_min=0.99).ok
    # arrays a metric family already checks against the baseline can be left out
    assert [a.name for a in compare(Current({}, noisy), base, compare_arrays=["structural_thumbs"]).arrays] == [
        "structural_thumbs"]
    assert compare(Current({}, noisy), base, keyframe_cosine_min=0.99, compare_arrays=False).arrays == ()
    calls = []
    c = compare(Current({}, noisy), base, BaselineExpect(keyframe_cosine_min=0.5),
                ssim=lambda a, b: calls.append(1) or 0.1)
    assert len(calls) == 2 and not c.ok


def test_keyframe_layout_changes() -> None:
    rng = np.random.default_rng(2)
    arrays = _arrays(rng, k=3)
    base = _base({}, arrays=arrays, keyframe_frames=[0, 24, 48])
    fewer = {k: v[:2] for k, v in arrays.items()}
    o = _by_check(compare(Current({}, fewer, [0, 24]), base))
    assert o["baseline.clip_embeddings"].status is Status.FAILED
    assert "length or sampling changed" in o["baseline.clip_embeddings"].message
    other_clip = {"clip_embeddings": rng.normal(size=(3, 32)), "structural_thumbs": arrays["structural_thumbs"]}
    o = _by_check(compare(Current({}, other_clip, [0, 24, 48]), base))
    assert o["baseline.clip_embeddings"].status is Status.UNMEASURED
    assert "a different CLIP model" in o["baseline.clip_embeddings"].message
    o = _by_check(compare(Current({}, {}), base))
    assert o["baseline.clip_embeddings"].status is Status.UNMEASURED


def test_structural_similarity_truth() -> None:
    rng = np.random.default_rng(3)
    import cv2

    img = cv2.GaussianBlur(rng.integers(0, 256, (32, 32)).astype(np.uint8), (5, 5), 2)
    assert structural_similarity(img, img) == pytest.approx(1.0)
    noisy = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    assert structural_similarity(img, noisy) > 0.8
    assert structural_similarity(img, 255 - img) < 0
    shifted = np.roll(img, 6, axis=1)
    assert structural_similarity(img, shifted) < structural_similarity(img, noisy)


# ---------------------------------------------------------------------------------------------- environment


def test_environment_diff_names_what_differs() -> None:
    a = {"python": "3.12.3", "device": "cpu", "dtype": "float32", "gpu": None,
         "libraries": {"torch": "2.14.1", "diffusers": "0.42.1", "numpy": "2.4.6"}}
    b = {"python": "3.12.3", "device": "cuda", "dtype": "bfloat16", "gpu": "NVIDIA H100 80GB HBM3",
         "libraries": {"torch": "2.15.0", "diffusers": "0.42.1"}}
    assert environment_diff(a, b) == [
        "device cpu → cuda",
        "dtype float32 → bfloat16",
        "gpu (none) → NVIDIA H100 80GB HBM3",
        "numpy 2.4.6 → (none)",
        "torch 2.14.1 → 2.15.0",
    ]
    assert environment_diff(a, a) == [] and environment_diff(None, {}) == []


def test_different_environment_still_compares_and_warns() -> None:
    env = {"device": "cpu", "libraries": {"torch": "2.14.1"}}
    base = _base({"motion.cuts": 0, "motion.flicker_score": 0.004}, environment=env)
    cur = Current({"motion.cuts": 1, "motion.flicker_score": 0.004},
                  environment={"device": "cuda", "libraries": {"torch": "2.15.0"}})
    c = compare(cur, base)
    assert c.environment == ("device cpu → cuda", "torch 2.14.1 → 2.15.0")
    assert c.warnings == [f"baseline {MODEL} of {ITEM} was made in a different environment: "
                          "device cpu → cuda; torch 2.14.1 → 2.15.0"]
    o = _by_check(c)
    assert o["baseline.motion.cuts"].message.endswith(
        "[baseline environment differs: device cpu → cuda; torch 2.14.1 → 2.15.0]")
    assert "environment" not in o["baseline.motion.flicker_score"].message  # only on failures
    assert compare(Current({"motion.cuts": 0}, environment=env), base).warnings == []


# ---------------------------------------------------------------------------------------------- missing


def test_missing_outcome_says_how_to_create_one() -> None:
    o = missing_outcome(ITEM, MODEL, "baselines/specs/robots/robot-dance[seed=1]/tiny-0123456789ab",
                        other_models=["tiny-fedcba987654"], nodeid="specs/robots.yaml::robot-dance[seed=1]")
    assert o.status is Status.FAILED and o.check == "baseline.missing"
    assert "pytest 'specs/robots.yaml::robot-dance[seed=1]' --ltx-update-baselines" in o.message
    assert "baselines exist for tiny-fedcba987654 — did the model or its weights change?" in o.message
    created = missing_outcome(ITEM, MODEL, "baselines/x", created=True)
    assert created.status is Status.PASSED and "created baselines/x" in created.message


def test_structural_gate_on_real_clips(clips_carphone_pristine, clips_carphone_distorted, clips_bikes) -> None:
    """Real footage, known truth: a compression-damaged copy of the same clip keeps its structure
    (measured min keyframe SSIM 0.91 on 32×32 thumbnails), another clip does not (≈ 0)."""
    from pytest_ltx.baseline.record import make_structural_thumbs
    from pytest_ltx.media import read_clip

    frames = list(range(0, 120, 15))

    def thumbs(path) -> np.ndarray:
        return make_structural_thumbs(read_clip(path, max_side=256, audio=False).frames[frames])

    pristine = thumbs(clips_carphone_pristine)
    base = _base({}, arrays={"structural.thumbnails": pristine}, keyframe_frames=frames, fps=29.97)
    same = compare(Current({}, {"structural.thumbnails": thumbs(clips_carphone_distorted)}, frames), base)
    (check,) = same.arrays
    assert check.status is Status.PASSED and check.min > 0.85
    other = compare(Current({}, {"structural.thumbnails": thumbs(clips_bikes)}, frames), base)
    (check,) = other.arrays
    assert check.status is Status.FAILED and check.min < 0.3
    assert "keyframe SSIM to the baseline fell to" in check.message


def test_library_lifecycle_missing_create_pass_regress_update(tmp_path) -> None:
    """The sequence the plugin drives: missing → created → passes → a regression fails → update → passes."""
    from pytest_ltx.baseline.store import BaselineStore

    def run(flicker: float) -> BaselineRecord:
        return _base({"motion.flicker_score": flicker, "motion.cuts": 0},
                     environment={"device": "cpu"}, provenance={"seed": 1})

    store = BaselineStore(tmp_path / "baselines")
    assert store.load(ITEM, MODEL) is None
    path = store.path_for(ITEM, MODEL).relative_to(tmp_path).as_posix()
    assert missing_outcome(ITEM, MODEL, path, other_models=store.models_for(ITEM)).status is Status.FAILED

    store.queue(run(0.004))  # --ltx-update-baselines (or create-missing)
    assert [c.kind.value for c in store.flush().changes] == ["created"]
    assert compare(run(0.006), store.load(ITEM, MODEL)).ok
    regressed = compare(run(0.05), store.load(ITEM, MODEL))
    assert not regressed.ok and "motion.flicker_score moved 0.004 → 0.05" in regressed.message()

    store.queue(run(0.05))  # accepted on purpose
    (change,) = store.flush().changes
    assert change.kind.value == "updated" and change.moves[0].text() == "motion.flicker_score 0.004 → 0.05 (+0.046)"
    assert compare(run(0.05), store.load(ITEM, MODEL)).ok
