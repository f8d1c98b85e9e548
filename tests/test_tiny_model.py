"""The embedded tiny LTX-2.3 model: built → saved → loaded with LTX2Pipeline.from_pretrained → rendered.

It renders noise: these tests pin the *harness* (shapes, rates, determinism, provenance, I2V, the mp4
round trip), never a metric.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pytest

from pytest_ltx.models import TINY_PROFILE, fingerprint_dir
from pytest_ltx.render.base import RenderRequest, RenderResult
from pytest_ltx.render.tiny import build_inputs_digest, ensure_tiny_model, save_tiny_model


def test_saved_folder_is_a_real_ltx2_checkpoint_layout(render_tiny_dir: Path) -> None:
    assert render_tiny_dir.name == f"tiny-{build_inputs_digest()}"
    index = json.loads((render_tiny_dir / "model_index.json").read_text())
    assert index["_class_name"] == "LTX2Pipeline"
    assert index["tokenizer"] == ["transformers", "GemmaTokenizer"]
    assert index["text_encoder"] == ["transformers", "Gemma3ForConditionalGeneration"]
    assert index["vocoder"][1] == "LTX2VocoderWithBWE" and index["connectors"][1] == "LTX2TextConnectors"
    for sub in ("transformer", "vae", "audio_vae", "vocoder", "connectors", "text_encoder", "tokenizer", "scheduler"):
        assert (render_tiny_dir / sub).is_dir(), sub
    tcfg = json.loads((render_tiny_dir / "transformer" / "config.json").read_text())
    assert tcfg["gated_attn"] and tcfg["cross_attn_mod"] and tcfg["perturbed_attn"] and not tcfg["use_prompt_embeddings"]
    vcfg = json.loads((render_tiny_dir / "vae" / "config.json").read_text())
    assert (vcfg["spatial_compression_ratio"], vcfg["temporal_compression_ratio"]) == (32, 8)
    size = sum(p.stat().st_size for p in render_tiny_dir.rglob("*") if p.is_file())
    assert size < 10e6


def test_ensure_is_idempotent(render_tiny_dir: Path, render_home: Path) -> None:
    stamp = (render_tiny_dir / "model_index.json").stat().st_mtime_ns
    assert ensure_tiny_model(render_home) == render_tiny_dir
    assert (render_tiny_dir / "model_index.json").stat().st_mtime_ns == stamp


def test_new_library_versions_rebuild_the_model_but_keep_its_identity(
        render_tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the model is built *from* names its folder (a new transformers rebuilds it); what was built
    is its identity (the committed baselines stay valid when the rebuild yields the same weights)."""
    import pytest_ltx.versions as versions

    real = versions.package_versions

    def newer(names=versions.RENDER_LIBRARIES):  # type: ignore[no-untyped-def]
        return {n: ("99.0.0" if n == "transformers" else v) for n, v in real(names).items()}

    monkeypatch.setattr(versions, "package_versions", newer)
    rebuilt = ensure_tiny_model(tmp_path / "home")
    assert rebuilt.name != render_tiny_dir.name
    cfg = json.loads((rebuilt / "text_encoder" / "config.json").read_text())
    cfg["transformers_version"] = "99.0.0"  # what the newer library would write
    (rebuilt / "text_encoder" / "config.json").write_text(json.dumps(cfg, indent=2))
    assert fingerprint_dir(rebuilt) == fingerprint_dir(render_tiny_dir)


@pytest.mark.slow
def test_build_is_deterministic_and_seeded(render_tiny_dir: Path, tmp_path: Path) -> None:
    same = save_tiny_model(tmp_path / "same", seed=0)
    other = save_tiny_model(tmp_path / "other", seed=1)
    assert fingerprint_dir(same) == fingerprint_dir(render_tiny_dir)
    assert fingerprint_dir(other) != fingerprint_dir(render_tiny_dir)


def test_render_shapes_and_rates(render_tiny_result: RenderResult, render_tiny_request: RenderRequest) -> None:
    res, req = render_tiny_result, render_tiny_request
    clip = res.clip
    assert clip.frames.dtype == np.uint8
    assert clip.frames.shape == (req.frames, req.height, req.width, 3)
    assert clip.fps == req.fps
    assert clip.sample_rate == 48000
    assert clip.audio is not None and clip.audio.dtype == np.float32 and clip.audio.shape[0] == 2
    # the causal audio VAE decodes 4L-3 mel frames: ~30 ms shorter than the video by design
    assert clip.audio_duration_s == pytest.approx(req.frames / req.fps, abs=0.05)
    assert np.abs(clip.audio).max() <= 1.0
    assert (res.device, res.dtype, res.peak_vram_gb) == ("cpu", "float32", None)
    assert res.seconds > 0


def test_same_seed_is_bit_identical_other_seed_differs(
    render_tiny_renderer, render_tiny_request: RenderRequest, render_tiny_result: RenderResult
) -> None:
    from dataclasses import replace

    again = render_tiny_renderer.render(render_tiny_request)
    assert np.array_equal(again.clip.frames, render_tiny_result.clip.frames)
    assert np.array_equal(again.clip.audio, render_tiny_result.clip.audio)
    other = render_tiny_renderer.render(replace(render_tiny_request, seed=1))
    assert not np.array_equal(other.clip.frames, render_tiny_result.clip.frames)
    assert not np.array_equal(other.clip.audio, render_tiny_result.clip.audio)


def test_render_pins_and_restores_threads(render_tiny_renderer, render_tiny_request) -> None:
    import torch

    before = torch.get_num_threads()
    render_tiny_renderer.render(render_tiny_request)
    assert torch.get_num_threads() == before
    assert render_tiny_renderer.placement.threads == TINY_PROFILE.threads == 1


def test_provenance_records_everything_that_changes_bits(
    render_tiny_result: RenderResult, render_tiny_request: RenderRequest, render_tiny_dir: Path
) -> None:
    prov = render_tiny_result.provenance
    assert json.loads(json.dumps(prov)) == prov
    assert prov["model"]["fingerprint"] == fingerprint_dir(render_tiny_dir)
    assert prov["request"] == render_tiny_request.to_dict()
    assert set(prov["versions"]) >= {"torch", "diffusers", "transformers"}
    assert (prov["device"], prov["dtype"], prov["placement"]["threads"]) == ("cpu", "float32", 1)
    assert prov["manifest"]["stages"][0]["args"]["spatio_temporal_guidance_blocks"] == [1]
    assert prov["plan"]["recipe"] == "dev" and prov["model"]["variant"] == "2.3"
    d = render_tiny_result.to_dict()
    assert d["clip"]["frames"] == render_tiny_request.frames and d["clip"]["audio_sample_rate"] == 48000
    json.dumps(d)


def test_image_to_video_on_the_same_folder(
    render_tiny_renderer, render_tiny_result: RenderResult, tmp_path: Path
) -> None:
    from dataclasses import replace

    from PIL import Image

    img = tmp_path / "cond.png"
    Image.fromarray(render_tiny_result.clip.frames[0]).save(img)
    req = RenderRequest(prompt="a robot dancing", seed=0, width=64, height=64, frames=9, steps=2, image=img)
    res = render_tiny_renderer.render(req)
    assert res.clip.frames.shape == (9, 64, 64, 3) and res.clip.sample_rate == 48000
    assert res.provenance["pipeline"] == "LTX2ImageToVideoPipeline"
    assert len(res.provenance["image"]["sha256"]) == 64
    t2v = render_tiny_renderer.render(replace(req, image=None))
    assert not np.array_equal(res.clip.frames, t2v.clip.frames)
    # built over the same modules: no second load
    assert render_tiny_renderer._image_pipe().transformer is render_tiny_renderer.pipeline.transformer


def test_missing_conditioning_image(render_tiny_renderer, tmp_path: Path) -> None:
    from pytest_ltx.render.base import RenderError

    req = RenderRequest(prompt="x", width=64, height=64, frames=9, steps=1, image=tmp_path / "nope.png")
    with pytest.raises(RenderError, match="does not exist"):
        render_tiny_renderer.render(req)


def test_mp4_round_trip_through_the_cache(render_tiny_result: RenderResult, tmp_path: Path) -> None:
    from pytest_ltx.cache import RenderCache

    cache = RenderCache(tmp_path / "cache")
    key = cache.key(render_tiny_result.provenance)
    entry = cache.put(key, render_tiny_result.clip, render_tiny_result.to_dict())
    back = cache.get(key).read_clip()
    src = render_tiny_result.clip
    assert back.frames.shape == src.frames.shape and back.fps == src.fps
    assert back.sample_rate == 48000 and back.audio.shape[0] == 2
    # AAC pads: compare durations with a tolerance, never sample counts
    assert back.audio_duration_s == pytest.approx(src.audio_duration_s, abs=0.03)
    assert entry.meta["provenance"]["model"]["fingerprint"] == render_tiny_result.provenance["model"]["fingerprint"]


def _ensure_in_subprocess(home: str, q) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from pytest_ltx.render.tiny import ensure_tiny_model

    d = ensure_tiny_model(Path(home))
    q.put((str(d), (d / "model_index.json").stat().st_mtime_ns))


@pytest.mark.slow
def test_parallel_workers_build_once(tmp_path: Path) -> None:
    """Two processes (as two xdist workers would) ensure the model on a fresh home at once: both get the
    same complete folder, built once, with no temp dirs left behind."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_ensure_in_subprocess, args=(str(tmp_path), q)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    results = [q.get(timeout=5) for _ in procs]
    assert results[0] == results[1]  # same folder, same mtime: the second process did not rebuild
    models = tmp_path / "models"
    assert sorted(p.name for p in models.iterdir() if p.is_dir()) == [f"tiny-{build_inputs_digest()}"]


@pytest.mark.slow
def test_bfloat16_on_cpu_still_gives_uint8_frames_and_float32_audio(render_tiny_dir: Path) -> None:
    """The dtype policy path a GPU profile takes (bf16), exercised on CPU with a local-folder profile."""
    from pytest_ltx.models import ModelKind, ModelProfile
    from pytest_ltx.render.ltx2 import LTX2Renderer

    prof = ModelProfile(name="bf16", kind=ModelKind.LOCAL, path=render_tiny_dir, dtype="bfloat16", device="cpu",
                        max_sequence_length=16, stg_blocks=(1,))
    r = LTX2Renderer(prof)
    res = r.render(RenderRequest(prompt="a cat", width=64, height=64, frames=9, steps=1))
    assert res.dtype == "bfloat16" and res.provenance["dtype"] == "bfloat16"
    assert res.clip.frames.dtype == np.uint8 and res.clip.audio.dtype == np.float32
    assert res.clip.frames.shape == (9, 64, 64, 3)
