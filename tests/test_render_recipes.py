"""Every recipe rendered on CPU with the embedded tiny model (plus a tiny LoRA, a tiny distilled LoRA and
a tiny latent upsampler built locally). The pipeline's ``__call__`` is recorded and its arguments are
checked exactly against Lightricks' reference settings for the tiny model's generation (LTX-2.3), with
the tiny profile's documented overrides (8 steps, STG block 1 of its 2, 32-token prompt padding)."""

from __future__ import annotations

import inspect
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_ltx.render.base import RenderError, RenderRequest
from pytest_ltx.render.recipes import reference_sigmas

REQ = RenderRequest(prompt="a robot dancing", negative_prompt="blurry", seed=0, width=64, height=64, frames=9)

#: the LTX-2.3 reference (ltx_pipelines LTX_2_3_PARAMS) with the tiny profile's overrides
DEV_23 = {
    "height": 64, "width": 64, "num_frames": 9, "frame_rate": 24.0, "num_inference_steps": 8,
    "sigmas": reference_sigmas(8),
    "guidance_scale": 3.0, "stg_scale": 1.0, "modality_scale": 3.0, "guidance_rescale": 0.7,
    "audio_guidance_scale": 7.0, "audio_stg_scale": 1.0, "audio_modality_scale": 3.0, "audio_guidance_rescale": 0.7,
    "spatio_temporal_guidance_blocks": [1], "use_cross_timestep": True, "noise_scale": 0.0,
    "max_sequence_length": 32, "output_type": "latent", "return_dict": False,
}
OFF = {"guidance_scale": 1.0, "stg_scale": 0.0, "modality_scale": 1.0, "guidance_rescale": 0.0,
       "audio_guidance_scale": 1.0, "audio_stg_scale": 0.0, "audio_modality_scale": 1.0,
       "audio_guidance_rescale": 0.0, "spatio_temporal_guidance_blocks": []}
TENSORS = {"prompt_embeds", "prompt_attention_mask", "negative_prompt_embeds", "negative_prompt_attention_mask",
           "latents", "audio_latents", "generator", "image"}


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every LTX2Pipeline / LTX2ImageToVideoPipeline call: its settings (plain values), which tensors
    were passed, and the audio knobs the pipeline ended up using."""
    from diffusers import LTX2ImageToVideoPipeline, LTX2Pipeline

    calls: list[dict[str, Any]] = []
    for cls in (LTX2Pipeline, LTX2ImageToVideoPipeline):
        orig = cls.__call__

        def wrapper(self, *a, _orig=orig, **kw):
            out = _orig(self, *a, **kw)
            calls.append({
                # the step callback is the render guard's (timeout, progress), not a recipe argument
                "args": {k: (float(v) if isinstance(v, float) else v) for k, v in kw.items()
                         if k not in TENSORS and k != "callback_on_step_end"},
                "tensors": sorted(k for k in kw if k in TENSORS),
                "used": {"audio_stg_scale": self._audio_stg_scale, "audio_guidance_scale": self._audio_guidance_scale},
                "pipeline": type(self).__name__,
            })
            return out

        wrapper.__signature__ = inspect.signature(orig)  # type: ignore[attr-defined]
        monkeypatch.setattr(cls, "__call__", wrapper)
    return calls


def test_dev_recipe_calls_the_pipeline_with_the_reference(render_tiny_full, recorded) -> None:
    r = render_tiny_full
    r.stats.clear()
    res = r.render(REQ)
    assert len(recorded) == 1
    assert recorded[0]["args"] == DEV_23
    assert recorded[0]["tensors"] == ["generator", "negative_prompt_attention_mask", "negative_prompt_embeds",
                                      "prompt_attention_mask", "prompt_embeds"]
    # 8 steps × (cond+uncond batched, STG, modality) calls = 4 batch-1 transformer passes per step
    assert (r.stats["transformer_calls"], r.stats["transformer_passes"]) == (24, 32)
    assert res.provenance["manifest"]["transformer_passes"] == 32
    assert res.clip.frames.shape == (9, 64, 64, 3) and res.clip.audio.shape[0] == 2


def test_distilled_recipe_calls_the_pipeline_with_the_reference(render_tiny_full, recorded) -> None:
    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES

    r = render_tiny_full
    r.stats.clear()
    from pytest_ltx.render.ltx2 import RenderWarning

    with pytest.warns(RenderWarning, match="negative_prompt unused"):
        r.render(replace(REQ, recipe="distilled"))
    expected = {**DEV_23, **OFF, "sigmas": DISTILLED_SIGMA_VALUES, "num_inference_steps": 8}
    assert recorded[0]["args"] == expected
    assert "negative_prompt_embeds" not in recorded[0]["tensors"]  # no CFG: never encoded, never passed
    assert (r.stats["transformer_calls"], r.stats["transformer_passes"]) == (8, 8)
    assert r._active_adapters == (("style", 0.8), ("distilled", 1.0))


def test_two_stage_recipe_calls_both_stages_with_the_reference(render_tiny_full, recorded) -> None:
    from diffusers.pipelines.ltx2.utils import STAGE_2_DISTILLED_SIGMA_VALUES

    r = render_tiny_full
    r.stats.clear()
    res = r.render(replace(REQ, recipe="two-stage"))
    base, refine = recorded
    assert base["args"] == {**DEV_23, "width": 32, "height": 32}
    assert refine["args"] == {**DEV_23, **OFF, "sigmas": STAGE_2_DISTILLED_SIGMA_VALUES, "num_inference_steps": 3,
                              "noise_scale": STAGE_2_DISTILLED_SIGMA_VALUES[0]}
    assert {"latents", "audio_latents"} <= set(refine["tensors"])
    assert (r.stats["transformer_calls"], r.stats["transformer_passes"]) == (24 + 3, 32 + 3)
    assert r.stats["decode"] == 1 and res.clip.frames.shape == (9, 64, 64, 3)
    stages = res.provenance["manifest"]["stages"]
    assert [s["adapters"] for s in stages] == [[["style", 0.8]], [["style", 0.8], ["distilled", 1.0]]]
    assert res.provenance["manifest"]["upsampler"]["digest"]


def test_audio_knob_zero_stays_zero(render_tiny_full, recorded) -> None:
    """diffusers turns an audio knob of 0 into the video value (``x or y``); ours reaches it as 0."""
    render_tiny_full.render(replace(REQ, steps=1, guidance={"audio_stg_scale": 0.0, "audio_scale": 0.0}))
    used = recorded[0]["used"]
    assert used == {"audio_stg_scale": 0.0, "audio_guidance_scale": 0.0}


def test_seed_matrix_encodes_each_prompt_once(render_tiny_full) -> None:
    r = render_tiny_full
    r._embeds.clear()
    r.stats.clear()
    first = r.render(replace(REQ, steps=1))
    for seed in (1, 2):
        r.render(replace(REQ, steps=1, seed=seed))
    for seed in (0, 1):
        r.render(replace(REQ, steps=1, seed=seed, prompt="a red car"))
    # three texts (two prompts and the shared negative prompt), five renders, five decodes
    assert (r.stats["encode"], r.stats["decode"]) == (3, 5)
    again = r.render(replace(REQ, steps=1))  # embeddings from the cache: the same bits
    assert np.array_equal(again.clip.frames, first.clip.frames) and np.array_equal(again.clip.audio, first.clip.audio)
    assert r.stats["encode"] == 3


def test_lora_scale_changes_the_render(render_tiny_extras, render_tiny_renderer) -> None:
    from pytest_ltx.models import TINY_PROFILE
    from pytest_ltx.render.extras import LoraRef
    from pytest_ltx.render.ltx2 import LTX2Renderer

    req = replace(REQ, steps=2)
    plain = render_tiny_renderer.render(req).clip.frames
    zero = LTX2Renderer(replace(TINY_PROFILE, name="z", loras=(LoraRef(render_tiny_extras["lora"], 0.0),)))
    assert np.array_equal(zero.render(req).clip.frames, plain)  # scale 0: the adapter adds exactly nothing
    on = LTX2Renderer(replace(TINY_PROFILE, name="on", loras=(LoraRef(render_tiny_extras["lora"], 1.0),)))
    assert not np.array_equal(on.render(req).clip.frames, plain)
    assert on.manifest(req)["extras"]["loras"][0]["scale"] == 1.0


def test_non_finite_output_is_an_error_naming_the_stage(render_tiny_renderer) -> None:
    import torch

    r = render_tiny_renderer
    pipe = r.pipeline

    def nan_out(_m, _a, out):
        return tuple(torch.full_like(o, float("nan")) for o in out) if isinstance(out, tuple) else out

    h = pipe.transformer.register_forward_hook(nan_out)
    try:
        with pytest.raises(RenderError, match=r"stage 'base' produced \d+ non-finite value\(s\) \(NaN/inf\) .* "
                                              r"video latents"):
            r.render(replace(REQ, steps=1))
    finally:
        h.remove()

    def inf_decode(_m, _a, out):
        return torch.full_like(out, float("inf"))

    h = pipe.vae.decoder.register_forward_hook(inf_decode)
    try:
        with pytest.raises(RenderError, match=r"stage 'decode' produced .* decoded video"):
            r.render(replace(REQ, steps=1))
    finally:
        h.remove()


def test_conditioning_image_is_resized_and_centre_cropped(tmp_path: Path) -> None:
    from PIL import Image

    from pytest_ltx.render.ltx2 import prepare_image

    a = np.zeros((64, 128, 3), np.uint8)  # 2:1 — green | red | blue bands
    a[:, :32] = (0, 255, 0)
    a[:, 32:96] = (255, 0, 0)
    a[:, 96:] = (0, 0, 255)
    p = tmp_path / "wide.png"
    Image.fromarray(a).save(p)
    im, note = prepare_image(p, 64, 64)
    out = np.asarray(im)
    assert out.shape == (64, 64, 3) and (out == (255, 0, 0)).all()  # only the centre survives
    assert note is not None and "128x64" in note and "centre-cropped, 50% of its width cut" in note
    im, note = prepare_image(p, 128, 64)  # same aspect: resized only, nothing to report
    assert note is None and np.array_equal(np.asarray(im), a)
    im, note = prepare_image(p, 32, 64)  # taller than the image: height fills, sides cut
    assert np.asarray(im).shape == (64, 32, 3) and "width cut" in note


def test_image_to_video_two_stage_and_the_crop_warning(render_tiny_full, tmp_path: Path) -> None:
    from PIL import Image

    from pytest_ltx.render.ltx2 import RenderWarning

    p = tmp_path / "wide.png"
    Image.fromarray(np.full((48, 96, 3), 200, np.uint8)).save(p)
    with pytest.warns(RenderWarning, match="centre-cropped"):
        res = render_tiny_full.render(replace(REQ, steps=1, recipe="two-stage", image=p))
    assert res.provenance["manifest"]["pipeline"] == "LTX2ImageToVideoPipeline"
    assert [s["args"]["image_crf"] for s in res.provenance["manifest"]["stages"]] == [33, 33]
    assert res.clip.frames.shape == (9, 64, 64, 3)


def test_untrained_frame_rate_warns(render_tiny_renderer) -> None:
    from pytest_ltx.render.ltx2 import RenderWarning

    with pytest.warns(RenderWarning, match="fps 48 is not a frame rate LTX-2 was trained around"):
        render_tiny_renderer.render(replace(REQ, steps=1, fps=48, frames=9))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RenderWarning)
        render_tiny_renderer.render(replace(REQ, steps=1, fps=25))


def test_declared_variant_contradicting_the_checkpoint(render_tiny_dir: Path) -> None:
    from pytest_ltx.models import ModelKind, ModelProfile
    from pytest_ltx.render.ltx2 import LTX2Renderer

    prof = ModelProfile(name="wrong", kind=ModelKind.LOCAL, path=render_tiny_dir, device="cpu", variant="2.0")
    with pytest.raises(RenderError, match=r"model profile 'wrong' declares variant '2.0', but the checkpoint is "
                                          r"LTX-2.3 \(.*gated_attn, cross_attn_mod, perturbed_attn on"):
        LTX2Renderer(prof)


def test_missing_recipe_pieces_are_render_errors(render_tiny_renderer) -> None:
    with pytest.raises(RenderError, match="model profile 'tiny': recipe 'two-stage' needs the spatial latent upsampler"):
        render_tiny_renderer.render(replace(REQ, recipe="two-stage"))


def test_manifest_diff_names_a_changed_default(render_tiny_renderer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A diffusers release that changes a default we do not pass (here ``motion_speed``, which moves the
    RoPE time base) shows up by name in the diff of two manifests."""
    from diffusers import LTX2Pipeline

    from pytest_ltx.render.manifest import format_changes, manifest_changes

    r = render_tiny_renderer
    before = r.manifest(REQ)
    assert before["stages"][0]["args"]["motion_speed"] == 1.0 and before["stages"][0]["args"]["sigmas"]
    assert before["components"]["transformer"]["class"] == "LTX2VideoTransformer3DModel"
    assert len(before["components"]["transformer"]["config"]) == 16 and before["scheduler"]["shift"] == 1.0

    sig = inspect.signature(LTX2Pipeline.__call__)
    changed = sig.replace(parameters=[p.replace(default=0.5) if p.name == "motion_speed" else p
                                      for p in sig.parameters.values()])
    orig = LTX2Pipeline.__call__

    def newer(self, *a, **kw):
        return orig(self, *a, **kw)

    newer.__signature__ = changed  # type: ignore[attr-defined]
    monkeypatch.setattr(LTX2Pipeline, "__call__", newer)
    after = r.manifest(REQ)
    after["versions"] = {**after["versions"], "diffusers": "0.43.0"}
    changes = manifest_changes(before, after)
    assert changes == [f"diffusers {before['versions']['diffusers']} → 0.43.0", "base.motion_speed 1 → 0.5"]
    assert format_changes(changes) == f"diffusers {before['versions']['diffusers']} → 0.43.0: base.motion_speed 1 → 0.5"


def test_embedding_cache_is_bounded_by_bytes(render_tiny_renderer, monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_ltx.render.ltx2 as ltx2

    r = render_tiny_renderer
    monkeypatch.setattr(ltx2, "_EMBED_CACHE_BYTES", 1)  # everything is over budget: keep the last two
    r._embeds.clear()
    r.stats.clear()
    for prompt in ("a cat", "a dog", "a car"):
        r.render(replace(REQ, steps=1, prompt=prompt))
    assert len(r._embeds) == 2 and r.stats["encode"] == 4  # three prompts + the negative prompt once
    r.render(replace(REQ, steps=1, prompt="a cat"))  # evicted: encoded again (the negative prompt, used
    assert r.stats["encode"] == 5  # by every render, is always among the two most recent)
    assert [k[1] for k in r._embeds] == ["a cat", "blurry"]


def test_a_decode_only_change_decodes_kept_latents(render_tiny_full) -> None:
    """VAE tiling changes only the decode: with ``reuse_latents`` the kept final latents are decoded again
    (no transformer call, one more decode); without it (the default, and what a determinism check uses)
    the clip is rendered from scratch."""
    import copy

    r = render_tiny_full
    req = replace(REQ, steps=1, seed=11)
    first = r.render(req)
    r.stats.clear()
    again = r.render(req, reuse_latents=True)
    assert r.stats["transformer_calls"] == 0 and r.stats["latents_reused"] == 1 and r.stats["decode"] == 1
    assert np.array_equal(again.clip.frames, first.clip.frames)
    tiled = copy.copy(r)
    tiled.placement = replace(r.placement, vae_tiling=True)
    r.stats.clear()
    tiled.render(req, reuse_latents=True)  # the manifest's decode part differs, the key does not
    assert r.stats["transformer_calls"] == 0 and r.stats["decode"] == 1
    r.render(req)
    assert r.stats["transformer_calls"] == 3  # default: really rendered
    r.stats.clear()
    r.render(replace(req, seed=12), reuse_latents=True)  # nothing kept for another seed
    assert r.stats["transformer_calls"] == 3 and r.stats["latents_reused"] == 0
