"""The diffusers backend's decisions, tested without a GPU: request validation, placement planning (CUDA
branches with the device forced absent or faked), pipeline call arguments, renderer memoization."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_ltx.models import TINY_PROFILE, ModelKind, ModelProfile, Offload
from pytest_ltx.render import base as render_base
from pytest_ltx.render.base import RenderError, RenderRequest
from pytest_ltx.render.ltx2 import Placement, apply_placement, plan_placement
from pytest_ltx.render.pool import clear_renderers, get_renderer

LOCAL = ModelProfile(name="ltx23", kind=ModelKind.LOCAL, path=Path("/models/LTX-2.3"))


# ----------------------------------------------------------------------------------------- requests


def test_request_to_dict_is_json_and_guidance_frozen() -> None:
    r = RenderRequest(prompt="p", width=64, height=96, frames=9, fps=25, steps=3,
                      guidance={"scale": 4, "stg_blocks": [1, 2]}, image="x.png")
    d = r.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["guidance"] == {"scale": 4, "stg_blocks": [1, 2]} and d["image"] == "x.png" and d["fps"] == 25.0
    assert r.image == Path("x.png") and r.duration_s == pytest.approx(9 / 25)
    with pytest.raises(TypeError):
        r.guidance["scale"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"width": 65}, "width must be a positive multiple of 32"),
        ({"height": 0}, "height must be a positive multiple of 32"),
        ({"frames": 24}, "frames must be 8k+1 (e.g. 17 or 25), got 24"),
        ({"frames": 0}, "frames must be 8k+1"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"steps": 0}, "steps must be a positive integer"),
        ({"fps": 0}, "fps must be positive"),
        ({"guidance": {"cfg": 3}}, "unknown guidance keys ['cfg']"),
    ],
)
def test_request_rejects_what_ltx_cannot_render(kwargs: dict, fragment: str) -> None:
    base = {"prompt": "p", "width": 64, "height": 64, "frames": 9}
    with pytest.raises(ValueError) as ei:
        RenderRequest(**{**base, **kwargs})
    assert fragment in str(ei.value)


# ---------------------------------------------------------------------------------------- placement


def test_cpu_machine_auto_profile() -> None:
    pl = plan_placement(replace(LOCAL, threads=3), cuda_available=False)
    assert pl == Placement(device="cpu", dtype="float32", offload=Offload.NONE, vae_tiling=False, threads=3)
    assert not pl.is_cuda


def test_cuda_machine_auto_profile() -> None:
    pl = plan_placement(LOCAL, cuda_available=True, vram_gb=80)
    assert (pl.device, pl.dtype, pl.offload, pl.vae_tiling, pl.threads) == ("cuda", "bfloat16", Offload.NONE, True, None)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_requested_but_absent_is_an_infra_error(device: str) -> None:
    with pytest.raises(RenderError) as ei:
        plan_placement(replace(LOCAL, device=device), cuda_available=False)
    msg = str(ei.value)
    assert f"'{device}'" in msg and "CUDA is not available" in msg and 'device = "auto"' in msg


def test_cuda_index_beyond_visible_devices() -> None:
    with pytest.raises(RenderError, match=r"only 2 CUDA device\(s\) are visible"):
        plan_placement(replace(LOCAL, device="cuda:2"), cuda_available=True, device_count=2)
    assert plan_placement(replace(LOCAL, device="cuda:1"), cuda_available=True, device_count=2).device == "cuda:1"


def test_offload_only_with_cuda() -> None:
    cpu = plan_placement(replace(LOCAL, offload=Offload.MODEL), cuda_available=False)
    assert cpu.offload is Offload.NONE and any("needs CUDA" in n for n in cpu.notes)
    gpu = plan_placement(replace(LOCAL, offload=Offload.SEQUENTIAL), cuda_available=True)
    assert gpu.offload is Offload.SEQUENTIAL and not gpu.notes


def test_weights_that_do_not_fit_switch_to_model_offload() -> None:
    pl = plan_placement(LOCAL, cuda_available=True, vram_gb=80, weights_gb=75)
    assert pl.offload is Offload.MODEL and "do not fit" in pl.notes[0]
    assert plan_placement(LOCAL, cuda_available=True, vram_gb=141, weights_gb=75).offload is Offload.NONE


def test_explicit_dtype_and_tiling_win() -> None:
    pl = plan_placement(replace(LOCAL, dtype="float32", vae_tiling=False), cuda_available=True)
    assert (pl.dtype, pl.vae_tiling) == ("float32", False)
    cpu16 = plan_placement(replace(LOCAL, dtype="float16"), cuda_available=False)
    assert cpu16.dtype == "float16" and "float16 on CPU" in cpu16.notes[0]
    assert plan_placement(replace(LOCAL, device="cpu"), cuda_available=True).device == "cpu"


class _FakeVAE:
    def __init__(self) -> None:
        self.tiling = False

    def enable_tiling(self) -> None:
        self.tiling = True


class _FakePipe:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.vae = _FakeVAE()

    def to(self, device: str) -> "_FakePipe":
        self.calls.append(("to", device))
        return self

    def enable_model_cpu_offload(self, gpu_id=None) -> None:
        self.calls.append(("model_offload", gpu_id))

    def enable_sequential_cpu_offload(self, gpu_id=None) -> None:
        self.calls.append(("sequential_offload", gpu_id))

    def set_progress_bar_config(self, **kw) -> None:
        self.calls.append(("progress", kw))


@pytest.mark.parametrize(
    ("placement", "first_call", "tiling"),
    [
        (Placement("cpu", "float32", Offload.NONE, False, 1), ("to", "cpu"), False),
        (Placement("cuda", "bfloat16", Offload.NONE, True, None), ("to", "cuda"), True),
        (Placement("cuda", "bfloat16", Offload.MODEL, True, None), ("model_offload", None), True),
        (Placement("cuda:1", "bfloat16", Offload.SEQUENTIAL, False, None), ("sequential_offload", 1), False),
    ],
)
def test_apply_placement(placement: Placement, first_call: tuple, tiling: bool) -> None:
    pipe = _FakePipe()
    apply_placement(pipe, placement)
    assert pipe.calls[0] == first_call
    assert pipe.vae.tiling is tiling
    assert ("progress", {"disable": True}) in pipe.calls


def test_renderer_refuses_cuda_profile_when_cuda_is_absent(
    render_tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from pytest_ltx.render.ltx2 import LTX2Renderer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    prof = ModelProfile(name="gpu", kind=ModelKind.LOCAL, path=render_tiny_dir, device="cuda")
    with pytest.raises(RenderError, match="CUDA is not available"):
        LTX2Renderer(prof)


def test_auto_profile_never_silently_renders_a_real_checkpoint_on_cpu(
    render_tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """device = auto without CUDA would render a real checkpoint in fp32 on the CPU for hours: refused,
    with the fix; device = cpu says it is meant (and offload, which needs CUDA, is dropped)."""
    import torch

    from pytest_ltx.render.ltx2 import LTX2Renderer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    prof = ModelProfile(name="auto", kind=ModelKind.LOCAL, path=render_tiny_dir, offload=Offload.MODEL,
                        max_sequence_length=32, stg_blocks=(1,))
    with pytest.raises(RenderError, match=r"model profile 'auto' has device = \"auto\" and no CUDA device is "
                                          r"visible.*float32 on the CPU.*set device = \"cpu\""):
        LTX2Renderer(prof)
    r = LTX2Renderer(replace(prof, device="cpu"))
    assert (r.placement.device, r.placement.dtype, r.placement.offload) == ("cpu", "float32", Offload.NONE)
    assert r.pipeline.device.type == "cpu"


# ------------------------------------------------------------------------------------ call arguments


def test_plan_for_uses_the_profile_and_request() -> None:
    from pytest_ltx.render.ltx2 import plan_for
    from pytest_ltx.render.variant import Architecture

    arch = Architecture(num_layers=48, perturbed_attn=True)
    req = RenderRequest(prompt="p", negative_prompt="n", width=64, height=64, frames=9, fps=25, steps=4)
    kt = plan_for(replace(TINY_PROFILE, stg_blocks=(1,)), req, "2.3", Architecture(2, True))
    kw = kt.stage_kwargs(kt.stages[0])
    assert kw["spatio_temporal_guidance_blocks"] == [1] and kw["max_sequence_length"] == 32
    assert (kw["height"], kw["width"], kw["num_frames"], kw["frame_rate"], kw["num_inference_steps"]) == (
        64, 64, 9, 25.0, 4)
    with pytest.raises(RenderError, match="model profile 'ltx23': recipe 'two-stage' needs the spatial latent"):
        plan_for(LOCAL, replace(req, recipe="two-stage"), "2.3", arch)


def test_plan_kwargs_match_the_pipeline_signatures() -> None:
    import inspect

    from diffusers import LTX2ImageToVideoPipeline, LTX2Pipeline

    from pytest_ltx.render.ltx2 import plan_for
    from pytest_ltx.render.variant import Architecture

    g = {k: 1 for k in render_base.GUIDANCE_KEYS if k != "stg_blocks"}
    plan = plan_for(LOCAL, RenderRequest(prompt="p", width=64, height=64, frames=9, guidance=g), "2.3",
                    Architecture(48, True))
    for cls, image in ((LTX2Pipeline, False), (LTX2ImageToVideoPipeline, True)):
        kw = plan.stage_kwargs(plan.stages[0], image=image)
        params = inspect.signature(cls.__call__).parameters
        assert set(kw) <= set(params), set(kw) - set(params)


def test_exact_zero_survives_the_pipelines_or() -> None:
    """diffusers does `audio_stg_scale = audio_stg_scale or stg_scale`: a 0 must stay 0."""
    from pytest_ltx.render.ltx2 import exact_zero_kwargs

    kw = exact_zero_kwargs({"stg_scale": 1.0, "audio_stg_scale": 0.0, "audio_guidance_scale": 7.0,
                            "guidance_rescale": 0.0})
    assert (kw["audio_stg_scale"] or kw["stg_scale"]) == 0.0 and kw["audio_stg_scale"] * 5 == 0.0
    assert kw["audio_guidance_scale"] == 7.0 and type(kw["guidance_rescale"]) is float  # video knobs untouched


# ----------------------------------------------------------------------------------------- memo


def test_get_renderer_memoizes_per_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_ltx.render.ltx2 as ltx2

    made: list[ModelProfile] = []

    class Fake:
        def __init__(self, profile: ModelProfile) -> None:
            self.profile = profile
            made.append(profile)

        def render(self, req: RenderRequest):
            raise NotImplementedError

    monkeypatch.setattr(ltx2, "LTX2Renderer", Fake)
    clear_renderers()
    try:
        a = get_renderer(LOCAL)
        assert get_renderer(replace(LOCAL)) is a  # equal profile → same pipeline
        b = get_renderer(replace(LOCAL, threads=2))
        assert b is not a and len(made) == 2
        assert isinstance(a, render_base.Renderer)
    finally:
        clear_renderers()


def test_get_renderer_missing_model_is_render_error(tmp_path: Path) -> None:
    clear_renderers()
    prof = ModelProfile(name="absent", kind=ModelKind.LOCAL, path=tmp_path / "LTX-2.3")
    with pytest.raises(RenderError, match="does not exist"):
        get_renderer(prof)


def test_frames_to_uint8_clips_and_rounds() -> None:
    import numpy as np

    from pytest_ltx.render.ltx2 import _to_uint8

    a = np.array([-0.5, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 1.0, 2.0], dtype=np.float32).reshape(1, 7, 1, 1)
    a = np.repeat(a, 3, axis=-1)
    a.flags.writeable = False  # the pipeline's buffer may be read-only: never write into it
    out = _to_uint8(a)
    assert out.dtype == np.uint8 and out[0, :, 0, 0].tolist() == [0, 0, 0, 2, 128, 255, 255]


def test_cuda_render_branch_measures_peak_vram(render_tiny_renderer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA bookkeeping in ``render`` (peak-memory reset, synchronize, max allocated, no CPU thread
    pinning), exercised on the tiny model with a CUDA placement and faked ``torch.cuda`` calls: there is
    no GPU here (the tensors stay on the CPU)."""
    import copy

    import torch

    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda dev=None: calls.append(f"reset {dev}"))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda dev=None: calls.append(f"sync {dev}"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda dev=None: 3 * 2**30)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(f"threads {n}"))

    r = copy.copy(render_tiny_renderer)
    r.placement = plan_placement(replace(TINY_PROFILE, device="cuda:1", dtype="auto"), cuda_available=True,
                                 device_count=2)
    r.prepare = lambda req, vram_gb_max=None: None  # the VRAM planner: tests/test_gpu_runners.py
    res = r.render(RenderRequest(prompt="p", width=64, height=64, frames=9, seed=7, steps=1))
    assert (res.device, res.dtype, res.peak_vram_gb) == ("cuda:1", "bfloat16", 3.0)
    assert calls == ["reset cuda:1", "sync cuda:1"]  # and no CPU thread pinning on CUDA
    assert res.clip.frames.shape == (9, 64, 64, 3)


def test_pipeline_crash_is_a_render_error_with_a_hint(render_tiny_renderer) -> None:
    import torch

    def oom(*_a, **_k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20 GiB")

    r = render_tiny_renderer
    handle = r.pipeline.transformer.register_forward_pre_hook(oom)
    before = torch.get_num_threads()
    try:
        with pytest.raises(RenderError) as ei:
            r.render(RenderRequest(prompt="p", width=64, height=64, frames=9, steps=1))
    finally:
        handle.remove()
    msg = str(ei.value)
    assert "'tiny'" in msg and "64x64x9 seed 0" in msg and "OutOfMemoryError" in msg and 'offload = "model"' in msg
    assert torch.get_num_threads() == before  # restored even when the pipeline raised
