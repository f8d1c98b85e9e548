"""CLIP similarity plumbing with a tiny *random* CLIP.

Random weights prove the loading path, determinism, alignment and the checks; they prove nothing about
whether a picture matches a prompt (their prompt cosines sit near 0). Real weights load the same way.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pytest_ltx.baseline import BaselineRecord, compare
from pytest_ltx.baseline.compare import unmeasured_outcomes
from pytest_ltx.expect import BaselineExpect
from pytest_ltx.expect.clip_score import ClipScoreExpect, check
from pytest_ltx.media import Clip
from pytest_ltx.metrics import clip_score as cs
from pytest_ltx.metrics.clip_score import ClipModelError, ClipModelProfile
from pytest_ltx.outcome import Status


def _card(seed: int = 1, **kw) -> Clip:
    from pytest_ltx.testcard import TestCardSpec, draw

    return draw(TestCardSpec(width=160, height=96, frames=25, fps=12, seed=seed, audio=None, **kw)).clip


def _one(outcomes, name):
    found = [o for o in outcomes if o.check == name]
    assert len(found) == 1, outcomes
    return found[0]


# ---- profiles and loading -----------------------------------------------------------------------------


def test_pretrained_file_loads_bit_identical_weights(models_tiny_clip, models_tiny_clip_files):
    from safetensors.torch import load_file

    weights, _ = models_tiny_clip_files
    saved = load_file(str(weights))
    state = models_tiny_clip.model.state_dict()
    assert set(saved) == set(state)
    assert all(np.array_equal(saved[k].numpy(), state[k].cpu().numpy()) for k in saved)
    assert not models_tiny_clip.model.training


def test_same_input_same_embeddings_even_after_reloading(models_tiny_clip, models_tiny_clip_profile):
    clip = _card()
    a = cs.analyze(clip, prompt="a red ball", model=models_tiny_clip)
    b = cs.analyze(clip, prompt="a red ball", model=models_tiny_clip)
    fresh = cs._load.__wrapped__(models_tiny_clip_profile, "cpu")  # bypass the per-process cache
    c = cs.analyze(clip, prompt="a red ball", model=fresh)
    assert np.array_equal(a.embeddings, b.embeddings)
    assert np.allclose(a.embeddings, c.embeddings, atol=1e-6)
    assert a.embeddings.dtype == np.float32 and a.embeddings.shape == (5, 128)
    assert np.allclose(np.linalg.norm(a.embeddings, axis=1), 1.0, atol=1e-5)


def test_load_is_memoized_per_profile(models_tiny_clip, models_tiny_clip_profile):
    assert cs.load_clip_model(models_tiny_clip_profile, device="cpu") is models_tiny_clip


def test_missing_weights_file_says_how_to_provide_weights(tmp_path):
    p = ClipModelProfile(arch="ViT-B-32", weights=str(tmp_path / "nope.safetensors"))
    with pytest.raises(ClipModelError) as e:
        cs.load_clip_model(p, device="cpu")
    msg = str(e.value)
    assert "not found" in msg and "nope.safetensors" in msg and "[tool.pytest-ltx.clip]" in msg


def test_hub_tag_refused_offline_and_no_profile_is_an_error():
    with pytest.raises(ClipModelError, match="allow_network"):
        cs.load_clip_model(ClipModelProfile(arch="ViT-B-32", weights="laion2b_s34b_b79k"), device="cpu")
    with pytest.raises(ClipModelError, match=r"tool\.pytest-ltx\.clip"):
        cs.resolve_profile(None)


def test_pickle_checkpoint_refused_unless_trusted_or_allowed(tmp_path, models_tiny_clip_files, models_tiny_clip):
    import torch
    from safetensors.torch import load_file

    weights, cfg = models_tiny_clip_files
    pt = tmp_path / "downloads" / "clip.pt"
    pt.parent.mkdir()
    torch.save(load_file(str(weights)), pt)
    base = dict(arch="pytest-ltx-test-tiny", weights=str(pt), config=str(cfg), random_weights=True)
    with pytest.raises(ClipModelError, match="Refusing to load pickle") as e:
        cs.load_clip_model(ClipModelProfile(**base), device="cpu")
    assert "safetensors" in str(e.value) and "allow_pickle" in str(e.value)
    frames = _card().frames[:2]
    ref = models_tiny_clip.embed_images(frames)
    for p in (ClipModelProfile(**base, allow_pickle=True), ClipModelProfile(**base, trusted_dirs=(str(pt.parent),))):
        m = cs._load.__wrapped__(p, "cpu")  # torch.load(weights_only=True) inside open_clip
        assert np.allclose(m.embed_images(frames), ref, atol=1e-6)


def test_profile_from_pyproject_table(tmp_path):
    p = ClipModelProfile.from_config({"arch": "ViT-B-32", "weights": "models/clip.safetensors",
                                      "config": "cfg/vit.json"}, root=tmp_path)
    assert p.weights == str(tmp_path / "models" / "clip.safetensors")
    assert p.config == str(tmp_path / "cfg" / "vit.json") and not p.allow_network
    assert ClipModelProfile.from_config({"arch": "ViT-B-32", "weights": "laion2b_s34b_b79k",
                                         "allow_network": True}).weights == "laion2b_s34b_b79k"
    assert ClipModelProfile.from_config({"profile": "tiny-random"}).random_weights
    with pytest.raises(ClipModelError, match="unknown key"):
        ClipModelProfile.from_config({"arch": "ViT-B-32", "weights": "x.safetensors", "wieghts": 1})
    with pytest.raises(ClipModelError, match="'weights' is required"):
        ClipModelProfile.from_config({"arch": "ViT-B-32"})


@pytest.mark.slow
def test_builtin_tiny_random_is_cached_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_LTX_HOME", str(tmp_path))
    path = cs.ensure_tiny_random(seed=0)
    assert path.parent == tmp_path / "clip" and path.suffix == ".safetensors"
    mtime = path.stat().st_mtime_ns
    assert cs.ensure_tiny_random(seed=0) == path and path.stat().st_mtime_ns == mtime  # built once
    assert not list(path.parent.glob("*.part"))
    m = cs._load.__wrapped__(cs.tiny_random_profile(0), "cpu")
    assert m.profile.random_weights and m.embed_images(_card().frames[:1]).shape == (1, 128)


# ---- the metric ---------------------------------------------------------------------------------------


def _record(r: "cs.ClipSimilarityResult", fps: float = 12.0, arrays=None, frames=None) -> BaselineRecord:
    """A run's CLIP results in baseline form, as golden.current_record builds them (float16 arrays);
    ``arrays`` replaces some of them, ``frames`` the keyframe frames."""
    return BaselineRecord("specs/cards/card", "testcard-0",
                          scalars={f"clip_similarity.{k}": v for k, v in r.scalars().items()},
                          arrays={**{f"clip_similarity.{k}": v for k, v in r.arrays().items()}, **(arrays or {})},
                          keyframe_frames=list(r.sampled_frames) if frames is None else frames, fps=fps)


def _cmp(r, base, clip=None, expect=None):
    return {o.check: o for o in compare(_record(r), base, expect, clip=clip, clip_model=r.model).outcomes()}


def test_identical_clip_has_baseline_similarity_one_perturbed_is_lower(models_tiny_clip):
    golden = _record(cs.analyze(_card(seed=1), prompt="balls", model=models_tiny_clip))
    same = cs.analyze(_card(seed=1), prompt="balls", model=models_tiny_clip)
    o = _cmp(same, golden, ClipScoreExpect(baseline_similarity_min=0.995))["clip.baseline_similarity"]
    assert o.status is Status.PASSED and o.measured == pytest.approx(1.0, abs=2e-3)  # float16 storage
    changed = cs.analyze(_card(seed=1, cuts=(12,)), prompt="balls", model=models_tiny_clip)
    sims = _cmp(changed, golden, ClipScoreExpect(baseline_similarity_min=0.0))["clip.baseline_similarity"]
    sims = dict(zip(sims.details["frames"], sims.details["per_keyframe"]))
    assert sims[0] == pytest.approx(1.0, abs=2e-3) and sims[6] == pytest.approx(1.0, abs=2e-3)
    # random weights: lower, by how much means nothing
    assert max(sims[12], sims[18], sims[24]) < min(sims[0], sims[6]) - 1e-3
    bound = (1.0 + min(sims.values())) / 2
    o = _cmp(changed, golden, ClipScoreExpect(baseline_similarity_min=bound))["clip.baseline_similarity"]
    assert o.status is Status.FAILED and o.details["worst_frame"] >= 12 and "plumbing only" in o.message
    # one gate: with clip.baseline_similarity_min the keyframe cosine is not gated a second time
    assert "baseline.clip_similarity.embeddings" not in _cmp(changed, golden,
                                                            ClipScoreExpect(baseline_similarity_min=bound))


def test_keyframe_cosine_min_gates_each_keyframe_and_names_the_changed_one(models_tiny_clip):
    """``baseline.keyframe_cosine_min``: a test card against its own baseline passes; the same card with
    different content at one keyframe (frame 12 = 1.00 s) fails there, and only there."""
    card = _card(seed=1)
    golden = _record(cs.analyze(card, model=models_tiny_clip))
    own = _cmp(cs.analyze(_card(seed=1), model=models_tiny_clip), golden)["baseline.clip_similarity.embeddings"]
    assert own.status is Status.PASSED and own.allowed == 0.9 and own.measured == pytest.approx(1.0, abs=2e-3)
    frames = card.frames.copy()
    frames[12] = _card(seed=7).frames[12]  # another scene, at one keyframe only
    changed = cs.analyze(Clip(frames=frames, fps=card.fps), model=models_tiny_clip)
    values = _cmp(changed, golden, expect=BaselineExpect(keyframe_cosine_min=-1.0))[
        "baseline.clip_similarity.embeddings"].details["per_keyframe"]
    assert [v > 0.998 for v in values] == [True, True, False, True, True]
    bound = (values[2] + 1.0) / 2
    o = _cmp(changed, golden, expect=BaselineExpect(keyframe_cosine_min=bound))["baseline.clip_similarity.embeddings"]
    assert o.status is Status.FAILED and o.details["worst_frame"] == 12
    assert "keyframe CLIP cosine to the baseline fell to" in o.message
    assert "at keyframe 2 (frame 12, 1.00 s)" in o.message and "plumbing only" in o.message
    assert _cmp(changed, golden, expect=BaselineExpect(keyframe_cosine_min=values[2] - 1e-3))[
        "baseline.clip_similarity.embeddings"].status is Status.PASSED


def test_scores_aggregates_and_json(models_tiny_clip):
    r = cs.analyze(_card(), prompt="a bouncing ball", model=models_tiny_clip)
    assert r.sampled_frames == (0, 6, 12, 18, 24)
    for k in r.keyframes:
        assert k.prompt_score == pytest.approx(2.5 * max(k.prompt_cosine, 0.0))
    assert r.keyframes[0].consistency is None and all(-1 <= k.consistency <= 1 for k in r.keyframes[1:])
    s = r.scalars()
    assert s["prompt_score_min"] <= s["prompt_score_mean"] and not any("baseline" in k for k in s)
    d = json.loads(json.dumps(r.to_dict()))
    assert "embeddings" not in d and d["embedding_dim"] == 128 and d["model"]["random_weights"] is True
    assert r.arrays()["embeddings"].shape == (5, 128)


def test_baseline_from_other_model_or_length_is_noted(models_tiny_clip):
    clip = _card()
    r = cs.analyze(clip, model=models_tiny_clip)
    other = _record(r, arrays={"clip_similarity.embeddings": np.ones((5, 512), np.float32)})
    o = _cmp(r, other, ClipScoreExpect(baseline_similarity_min=0.9))["clip.baseline_similarity"]
    assert o.status is Status.UNMEASURED and "a different CLIP model" in o.message
    golden = _record(r)
    short = cs.analyze(Clip(frames=clip.frames[:13], fps=clip.fps), model=models_tiny_clip)
    # keyframes pair by time: 0, 6, 12 with the baseline's 0, 6, 12 (identical); 18 and 24 have no partner
    o = _cmp(short, golden, ClipScoreExpect(baseline_similarity_min=0.9))["clip.baseline_similarity"]
    assert o.details["frames"] == [0, 6, 12] and min(o.details["per_keyframe"]) == pytest.approx(1.0, abs=2e-3)
    assert o.status is Status.FAILED and "frame 18 (1.50 s), frame 24 (2.00 s)" in o.message


def test_prompt_checks(models_tiny_clip):
    r = cs.analyze(_card(), prompt="a bouncing ball", model=models_tiny_clip)
    mean = r.aggregates()["prompt_score_mean"]
    ok = _one(check(r, ClipScoreExpect(prompt_score_min=0.0)), "clip.prompt_score")
    assert ok.status is Status.PASSED and "plumbing only" in ok.message
    bad = _one(check(r, ClipScoreExpect(prompt_score_min=2.0)), "clip.prompt_score")
    assert bad.status is Status.FAILED and "lowest" in bad.message and "frame" in bad.message
    assert mean is not None and not any(o.check == "clip.prompt_score_drop" for o in check(
        r, ClipScoreExpect(prompt_score_min=0.0, prompt_score_drop_max=0.05)))  # the baseline comparison's
    no_prompt = cs.analyze(_card(), model=models_tiny_clip)
    assert _one(check(no_prompt, ClipScoreExpect(prompt_score_min=0.1)), "clip.prompt_score").status \
        is Status.UNMEASURED


def test_consistency_check_names_the_worst_pair(models_tiny_clip):
    r = cs.analyze(_card(seed=1, cuts=(12,)), model=models_tiny_clip)
    cons = [k.consistency for k in r.keyframes]
    assert min(cons[1:]) < 1.0
    bound = (min(cons[1:]) + 1.0) / 2
    o = _one(check(r, ClipScoreExpect(consistency_min=bound)), "clip.consistency")
    assert o.status is Status.FAILED and "between frame" in o.message
    one = cs.analyze(Clip(frames=_card().frames[:1], fps=12.0), model=models_tiny_clip)
    assert _one(check(one, ClipScoreExpect(consistency_min=0.5)), "clip.consistency").status is Status.UNMEASURED


def test_profile_from_pyproject(tmp_path):
    assert cs.profile_from_pyproject(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest-ltx.clip]\narch = "ViT-B-32"\nweights = "weights/clip.safetensors"\n')
    p = cs.profile_from_pyproject(tmp_path)
    assert p is not None and p.weights == str(tmp_path / "weights" / "clip.safetensors")
    (tmp_path / "pyproject.toml").write_text('[tool.pytest-ltx.clip]\nprofile = "tiny-random"\n')
    assert cs.profile_from_pyproject(tmp_path).random_weights


def test_prompt_score_drop_is_paired_keyframe_by_keyframe(models_tiny_clip):
    """With the baseline's per-keyframe prompt scores, the drop is the mean of the per-keyframe drops of
    this item (same prompt, same seed) and names the keyframe that dropped most."""
    r = cs.analyze(_card(), prompt="a bouncing ball", model=models_tiny_clip)
    scores = r.arrays()["prompt_scores"]
    assert scores.shape == (len(r.keyframes),)
    drop = ClipScoreExpect(prompt_score_drop_max=0.05)
    same = _cmp(r, _record(r), drop)["clip.prompt_score_drop"]
    assert same.status is Status.PASSED and same.measured == pytest.approx(0.0, abs=1e-6)
    assert same.details["paired"] is True and "unmatched" not in same.details
    worse = scores.copy()
    worse[2] += 0.5  # the baseline scored keyframe 2 much higher: this run lost the prompt there
    base = _record(r, arrays={"clip_similarity.prompt_scores": worse})
    o = _cmp(r, base, drop)["clip.prompt_score_drop"]
    assert o.status is Status.FAILED and o.measured == pytest.approx(0.5 / len(scores), abs=1e-3)  # float16
    assert o.details["worst_frame"] == r.keyframes[2].frame and f"frame {r.keyframes[2].frame}" in o.message
    # a baseline with one keyframe less (a shorter clip): the 4 paired keyframes, the unpaired one named
    short = _record(r, frames=[0, 6, 12, 18], arrays={"clip_similarity.prompt_scores": scores[:-1],
                                                      "clip_similarity.embeddings": r.embeddings[:-1]})
    o = _cmp(r, short, drop)["clip.prompt_score_drop"]
    assert o.status is Status.PASSED and o.details["frames"] == [0, 6, 12, 18]
    assert [k["frame"] for k in o.details["unmatched"]["current"]] == [24] and "frame 24 (2.00 s)" in o.message
    # an older baseline without per-keyframe scores: the means
    mean = r.aggregates()["prompt_score_mean"]
    for base_mean, status in ((mean + 0.01, Status.PASSED), (mean + 0.2, Status.FAILED)):
        old = BaselineRecord(base.item_key, base.model_key, scalars={"clip_similarity.prompt_score_mean": base_mean})
        o = _cmp(r, old, drop)["clip.prompt_score_drop"]
        assert o.status is status and "paired" not in o.details and o.baseline == pytest.approx(base_mean, abs=1e-5)
    # no baseline yet, or no prompt: unmeasured, never passed
    (o,) = unmeasured_outcomes(drop, "no golden baseline yet", _record(r))
    assert o.check == "clip.prompt_score_drop" and o.status is Status.UNMEASURED
    assert "no golden baseline yet" in o.message
    no_prompt = cs.analyze(_card(), model=models_tiny_clip)
    o = _cmp(no_prompt, _record(r), drop)["clip.prompt_score_drop"]
    assert o.status is Status.UNMEASURED and "no prompt" in o.message
