"""GPU runners at scale, tested without a GPU: CUDA is faked at the torch level where the code asks it.

The VRAM planner against the real LTX-2.3 configs (built on the meta device) and the published sizes;
placement under free-memory limits; one GPU per xdist worker; grouping by model; out-of-memory → one retry a
rung lower; an assertion is never retried; the timeout; I/O retries; GPU identity in the cache key; the
render cache's integrity, LRU size limit and shared (fsspec) tier; shards; the workflows' validity.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from pytest_ltx.models import ModelKind, ModelProfile, Offload
from pytest_ltx.render.base import RenderError, RenderRequest
from pytest_ltx.render.plan import (
    GIB,
    OFFLOAD_LADDER,
    RenderShape,
    choose,
    estimate,
    lower_offload,
    measure_components,
)

# ------------------------------------------------------------------------------ the real LTX-2.3 sizes


@pytest.fixture(scope="module")
def ltx23_sizes():
    """The full-size LTX-2.3 components, measured on the meta device (no memory, ~5 s)."""
    from pytest_ltx.render.reference import ltx23_components

    return measure_components(ltx23_components(), "bfloat16")


def test_meta_estimates_match_the_published_ltx23_sizes(ltx23_sizes) -> None:
    from pytest_ltx.render.reference import PUBLISHED_PARAMS

    s = ltx23_sizes
    # "LTX-2.3 22B": the audio-video transformer with its text connectors
    av = s["transformer"].params + s["connectors"].params
    assert abs(av - PUBLISHED_PARAMS["transformer+connectors"]) / 22e9 < 0.03, av
    # Gemma 3 12B (text + vision tower): 12.2B on its model card
    assert abs(s["text_encoder"].params - PUBLISHED_PARAMS["text_encoder"]) / 12.2e9 < 0.01
    # the 48-layer transformer dominates; the VAEs and vocoder are small
    assert 18.5e9 < s["transformer"].params < 19.5e9
    assert s["vae"].params < 1e9 and s["audio_vae"].params < 1e8 and s["vocoder"].params < 2e8
    # parameters × bf16: ≈ 65 GiB for the whole pipeline (the "~65 GB" every GPU runner must plan for)
    total = sum(c.bytes for c in s.values())
    assert all(c.bytes == 2 * c.params for c in s.values())
    assert 63 * GIB < total < 68 * GIB
    # group offload's unit is one of the 48 transformer blocks (≈ 0.4 B parameters each)
    assert 0.5 * GIB < s["transformer"].largest_block_bytes < 1 * GIB
    assert s["transformer"].largest_leaf_bytes < s["transformer"].largest_block_bytes


def test_activation_estimate_grows_with_size_and_tiling_bounds_the_decode(ltx23_sizes) -> None:
    small = estimate(ltx23_sizes, RenderShape(512, 320, 49), Offload.MODEL, False)
    big = estimate(ltx23_sizes, RenderShape(768, 512, 121), Offload.MODEL, False)
    assert big.phases["denoise"] > small.phases["denoise"] and big.phases["decode"] > small.phases["decode"]
    tiled = estimate(ltx23_sizes, RenderShape(768, 512, 121), Offload.MODEL, True)
    assert tiled.phases["decode"] < big.phases["decode"] / 2
    # without CFG (distilled: guidance 1) the transformer runs one sequence, not two
    one = estimate(ltx23_sizes, RenderShape(768, 512, 121, batch=1), Offload.MODEL, True)
    assert one.phases["denoise"] < tiled.phases["denoise"]
    # each rung down the ladder needs less
    peaks = [estimate(ltx23_sizes, RenderShape(768, 512, 121), o, True).peak_bytes for o in OFFLOAD_LADDER]
    assert peaks == sorted(peaks, reverse=True) and len(set(peaks)) == 4


@pytest.mark.parametrize(("free_gb", "offload"), [
    (139, Offload.NONE),  # H200: everything resident
    (80, Offload.NONE),  # H100 80 GB, idle
    (60, Offload.MODEL),  # H100 with another process on it
    (48, Offload.MODEL),  # L40S 48 GB: the 35 GiB transformer + activations
    (40, Offload.GROUP),  # A100 40 GB: the transformer alone plus margin does not fit
    (24, Offload.GROUP),  # L4 / 4090
    (6, Offload.SEQUENTIAL),
])
def test_placement_fits_the_free_memory(ltx23_sizes, free_gb: float, offload: Offload) -> None:
    plan = choose(ltx23_sizes, RenderShape(768, 512, 121), free_gb=free_gb, vae_tiling=True)
    assert plan.fits and plan.chosen.offload is offload
    assert plan.chosen.peak_gb * 1.1 + plan.margin_gb <= free_gb
    if offload is not Offload.NONE:
        assert any("does not fit" in n for n in plan.notes)


def test_profile_offload_is_the_starting_rung_and_the_budget_limits(ltx23_sizes) -> None:
    shape = RenderShape(768, 512, 121)
    assert choose(ltx23_sizes, shape, start=Offload.MODEL, free_gb=139).chosen.offload is Offload.MODEL
    # the spec's vram_gb_max is a limit like the free memory
    p = choose(ltx23_sizes, shape, free_gb=139, vram_gb_max=20)
    assert p.chosen.offload is Offload.GROUP and p.meets_budget()
    # nothing fits 2 GB: flagged, smallest placement, reason in the notes
    tight = choose(ltx23_sizes, shape, free_gb=2.5)
    assert not tight.fits and tight.chosen.offload is Offload.SEQUENTIAL and "no placement fits" in tight.notes[0]
    # tiling asked off: offload first (keeps the bits), tiling only as the last resort, with a note
    untiled = choose(ltx23_sizes, shape, free_gb=139, vae_tiling=False)
    assert not untiled.chosen.vae_tiling and untiled.chosen.offload is Offload.NONE
    kept = choose(ltx23_sizes, shape, free_gb=69.5, vae_tiling=False)
    assert not kept.chosen.vae_tiling and kept.chosen.offload is Offload.MODEL
    forced = choose(ltx23_sizes, shape, free_gb=7, vae_tiling=False)
    assert forced.chosen.vae_tiling and forced.chosen.offload is Offload.SEQUENTIAL
    assert any("tiling" in n for n in forced.notes)
    # the planner's choice (None): untiled on the first rung where that fits
    free = choose(ltx23_sizes, shape, free_gb=139, vae_tiling=None)
    assert (free.chosen.offload, free.chosen.vae_tiling) == (Offload.NONE, False)
    # unknown free memory (planning on a CPU box): the starting rung
    assert choose(ltx23_sizes, shape).chosen.offload is Offload.NONE
    assert [lower_offload(o) for o in OFFLOAD_LADDER] == [Offload.MODEL, Offload.GROUP, Offload.SEQUENTIAL, None]


def test_sizes_of_a_model_folder_come_from_its_configs(render_tiny_dir: Path) -> None:
    """The tiny model's folder measured from its model_index.json + configs equals its real modules."""
    import torch

    from pytest_ltx.render.plan import component_sizes_from_dir

    sizes = component_sizes_from_dir(render_tiny_dir, "float32")
    assert set(sizes) == {"text_encoder", "connectors", "transformer", "vae", "audio_vae", "vocoder"}
    from diffusers import LTX2VideoTransformer3DModel

    real = LTX2VideoTransformer3DModel.from_pretrained(render_tiny_dir / "transformer", torch_dtype=torch.float32)
    assert sizes["transformer"].params == sum(p.numel() for p in real.parameters())
    assert sizes["transformer"].bytes == 4 * sizes["transformer"].params
    assert all(s.source == "meta" for s in sizes.values())


# ------------------------------------------------------------------------------------ one GPU per worker


def test_each_xdist_worker_gets_its_own_gpu() -> None:
    from pytest_ltx.render.gpu import WorkerGpuError, pin_device

    env = {"PYTEST_XDIST_WORKER": "gw2", "PYTEST_XDIST_WORKER_COUNT": "4"}
    assert pin_device("auto", True, 4, env) == "cuda:2"
    assert pin_device("cuda", True, 4, env) == "cuda:2"
    assert pin_device("cuda:0", True, 4, env) == "cuda:0"  # an explicit device is kept
    assert pin_device("auto", False, 0, env) == "auto"  # CPU runs are unaffected
    assert pin_device("auto", True, 4, {}) == "auto"  # not under xdist
    with pytest.raises(WorkerGpuError, match=r"4 workers but only 2 CUDA device\(s\).*-n 2"):
        pin_device("auto", True, 2, env)
    with pytest.raises(RenderError):  # a RenderError: reported as an infrastructure error on the item
        pin_device("cuda", True, 2, {"PYTEST_XDIST_WORKER": "gw0", "PYTEST_XDIST_WORKER_COUNT": "3"})


def _fake_gpu(monkeypatch: pytest.MonkeyPatch, name: str = "NVIDIA H100 80GB HBM3", cc: tuple[int, int] = (9, 0),
              free_gb: float = 80.0, count: int = 1) -> dict[str, Any]:
    import torch

    from pytest_ltx.render import gpu

    # the suite itself may run under xdist (-n 2): this fake machine is not an xdist worker unless a test says so
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    state: dict[str, Any] = {"calls": [], "allocated": 0}
    props = SimpleNamespace(name=name, major=cc[0], minor=cc[1], total_memory=int(80 * GIB))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (int(free_gb * GIB), int(80 * GIB)))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda dev=None: state["allocated"])
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda dev=None: state["calls"].append("reset"))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda dev=None: None)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: state["calls"].append("empty_cache"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda dev=None: int(12.5 * GIB))
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 90100)
    monkeypatch.setattr(gpu, "_driver_version", lambda: "550.54.15")
    gpu._identity.cache_clear()
    return state


def test_gpu_identity_is_in_the_render_cache_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_ltx.cache import RenderCache
    from pytest_ltx.render import gpu
    from pytest_ltx.runner import render_provenance

    prof = ModelProfile(name="ltx23", kind=ModelKind.LOCAL, path=Path("/models/x"))
    req = RenderRequest(prompt="p", width=64, height=64, frames=9)
    _fake_gpu(monkeypatch, "NVIDIA H100 80GB HBM3", (9, 0))
    h100 = render_provenance(prof, "f" * 64, req)
    assert h100["gpu"] == {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "driver": "550.54.15",
                           "cuda": "12.4", "cudnn": 90100}
    _fake_gpu(monkeypatch, "NVIDIA A100-SXM4-80GB", (8, 0))
    a100 = render_provenance(prof, "f" * 64, req)
    assert RenderCache.key(h100) != RenderCache.key(a100)
    # identical cards behind two workers share entries: the index is not in the key
    _fake_gpu(monkeypatch, "NVIDIA A100-SXM4-80GB", (8, 0), count=2)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    assert RenderCache.key(render_provenance(prof, "f" * 64, req)) == RenderCache.key(a100)
    assert gpu.free_memory_gb("cuda:1") == pytest.approx(80.0)
    assert gpu.gpu_identity("cpu") is None


def test_gpu_identity_reaches_the_baseline_environment_and_its_diff() -> None:
    from pytest_ltx.baseline.compare import environment_diff
    from pytest_ltx.baseline.record import collect_environment
    from pytest_ltx.golden import _gpu

    a = collect_environment(device="cuda:0", dtype="bfloat16", gpu=_gpu({"name": "NVIDIA A100", "total_gb": 80}))
    b = collect_environment(device="cuda:0", dtype="bfloat16", gpu=_gpu({"name": "NVIDIA H100", "total_gb": 80}))
    assert environment_diff(a, b) == ["gpu.name NVIDIA A100 → NVIDIA H100"]


# ---------------------------------------------------------------------- out of memory, timeout, retries


class _Placer:
    """Stands in for ``apply_placement`` / ``release_placement`` on a CPU box: records where the pipeline
    would go and runs out of memory where told to (the tiny pipeline itself stays on the CPU)."""

    def __init__(self, oom_place: set[str] = frozenset(), oom_render: set[str] = frozenset(), once: bool = True):
        self.log: list[tuple] = []
        self.where: str | None = None
        self.oom_place, self.oom_render, self.once = set(oom_place), set(oom_render), once

    def apply(self, pipe: Any, pl: Any) -> None:
        import torch

        if pl.offload.value in self.oom_place:
            self.log.append(("place-failed", pl.offload.value))
            raise torch.OutOfMemoryError("CUDA out of memory while moving weights")
        self.where = pl.offload.value
        self.log.append(("place", pl.offload.value, pl.device))

    def release(self, pipe: Any) -> None:
        self.where = None
        self.log.append(("release",))

    def hook(self, *args: Any, **kwargs: Any) -> None:  # a transformer forward pre-hook
        import torch

        if self.where in self.oom_render:
            if self.once:
                self.oom_render.discard(self.where)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


@pytest.fixture
def gpu_renderer(monkeypatch, render_tiny_renderer):
    """A copy of the tiny renderer that believes it is on ``cuda:0`` (placement faked, see _Placer)."""
    import copy

    import pytest_ltx.render.ltx2 as ltx2

    def make(placer: _Placer) -> Any:
        state = _fake_gpu(monkeypatch, free_gb=80)
        monkeypatch.setattr(ltx2, "apply_placement", placer.apply)
        monkeypatch.setattr(ltx2, "release_placement", placer.release)
        r = copy.copy(render_tiny_renderer)
        r.placement = ltx2.plan_placement(replace(r.profile, device="cuda:0", dtype="auto"), cuda_available=True,
                                          device_count=1)
        r._applied, r.vram_plan, r.gpu, r._i2v, r._monitor = None, None, {"name": "fake"}, None, None
        r._latents = type(r._latents)()
        handle = r._pipe.transformer.register_forward_pre_hook(placer.hook)
        r._state = state
        return r, handle

    made: list[Any] = []

    def factory(placer: _Placer) -> Any:
        r, h = make(placer)
        made.append(h)
        return r

    yield factory
    for h in made:
        h.remove()


def _req() -> RenderRequest:
    return RenderRequest(prompt="a robot", width=64, height=64, frames=9, steps=1, guidance={"stg_blocks": [1]})


def test_out_of_memory_frees_and_retries_once_one_rung_lower(gpu_renderer) -> None:
    from pytest_ltx.render.guard import RenderGuard

    placer = _Placer(oom_render={"none"})
    r = gpu_renderer(placer)
    guard = RenderGuard()
    res = r.render(_req(), guard=guard)
    # planned "none" (the tiny model fits anywhere), ran out of memory, freed, moved to model offload
    assert [a.placement for a in guard.attempts] == ["none", "model"]
    assert guard.attempts[0].error_kind.value == "out_of_memory" and guard.attempts[1].error is None
    assert placer.log == [("place", "none", "cuda:0"), ("release",), ("place", "model", "cuda:0")]
    assert "empty_cache" in r._state["calls"]
    assert res.peak_vram_gb == pytest.approx(12.5)
    prov = res.provenance
    assert prov["placement"]["offload"] == "model" and "retried with 'model'" in " ".join(prov["placement"]["notes"])
    assert [a["placement"] for a in prov["attempts"]] == ["none", "model"]
    assert prov["vram_plan"]["offload"] == "none" and prov["gpu"] == {"name": "fake"}


def test_out_of_memory_while_placing_is_guarded_too(gpu_renderer) -> None:
    """``pipe.to("cuda")`` running out of memory half-way is caught, cleaned up and retried lower."""
    from pytest_ltx.render.guard import RenderGuard

    placer = _Placer(oom_place={"none"})
    r = gpu_renderer(placer)
    guard = RenderGuard()
    r.render(_req(), guard=guard)
    assert [(a.placement, a.error_kind and a.error_kind.value) for a in guard.attempts] == [
        ("none", "out_of_memory"), ("model", None)]
    # the half-placed pipeline was moved back before model offload was set up
    assert placer.log == [("place-failed", "none"), ("release",), ("place", "model", "cuda:0")]


def test_out_of_memory_twice_is_an_infrastructure_error(gpu_renderer) -> None:
    from pytest_ltx.render.guard import RenderGuard

    placer = _Placer(oom_render={"none", "model"}, once=False)
    guard = RenderGuard()
    with pytest.raises(RenderError, match="Out of memory again after retrying with offload 'model'"):
        gpu_renderer(placer).render(_req(), guard=guard)
    assert len(guard.attempts) == 2  # once, never more


def test_other_failures_are_never_retried(gpu_renderer, monkeypatch) -> None:
    from pytest_ltx.render.guard import RenderGuard

    placer = _Placer()
    r = gpu_renderer(placer)

    def boom(*a: Any, **k: Any) -> None:
        raise ValueError("a real bug, not memory")

    monkeypatch.setattr(r, "decode", boom)
    guard = RenderGuard()
    with pytest.raises(RenderError, match="a real bug"):
        r.render(_req(), guard=guard)
    assert [a.error_kind.value for a in guard.attempts] == ["other"]
    assert placer.log == [("place", "none", "cuda:0")]


def test_timeout_reaches_the_pipeline_steps(gpu_renderer) -> None:
    from pytest_ltx.render.guard import RenderGuard, RenderTimeout

    r = gpu_renderer(_Placer())
    with pytest.raises(RenderTimeout):
        r.render(_req(), guard=RenderGuard(timeout_s=1e-9))


def test_timeout_stops_the_render_between_steps() -> None:
    from pytest_ltx.render.guard import RenderGuard, RenderTimeout, StepMonitor, classify

    now = [0.0]
    mon = StepMonitor(RenderGuard(timeout_s=10, progress=False), total_steps=8, clock=lambda: now[0])
    mon(None, 0, 0, {})
    now[0] = 10.5
    with pytest.raises(RenderTimeout, match=r"timed out after 10 s \(timeout 10 s") as ei:
        mon(None, 1, 0, {})
    assert isinstance(ei.value, RenderError) and classify(ei.value).value == "timeout"


def test_timeout_from_the_spec_wins_over_the_ini() -> None:
    from pytest_ltx.runner import _guard

    def item(budget: dict | None) -> Any:
        from pytest_ltx.expect.render import BudgetExpect

        b = BudgetExpect(**budget) if budget is not None else None
        return SimpleNamespace(name="x[seed=0]", clip=SimpleNamespace(expect=SimpleNamespace(budget=b)))

    session = SimpleNamespace(settings=SimpleNamespace(render_timeout=600.0, io_retries=2))
    assert _guard(item({"timeout_s": 30, "vram_gb_max": 20}), session).timeout_s == 30
    g = _guard(item(None), session)
    assert (g.timeout_s, g.vram_gb_max, g.io_attempts, g.label) == (600.0, None, 3, "x[seed=0]")
    session.settings.render_timeout = 0.0
    assert _guard(item({"render_seconds_max": 5}), session).timeout_s is None


def test_progress_only_on_a_terminal_and_never_in_ci() -> None:
    import io

    from pytest_ltx.render.guard import RenderGuard, StepMonitor, progress_enabled

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress_enabled(Tty(), env={}) and not progress_enabled(Tty(), env={"CI": "true"})
    assert not progress_enabled(io.StringIO(), env={})
    out = Tty()
    mon = StepMonitor(RenderGuard(label="robot[seed=0]", progress=True, stream=out), total_steps=2)
    mon(None, 0, 0, {})
    mon(None, 1, 0, {})
    assert "robot[seed=0]: step 1/2" in out.getvalue() and out.getvalue().endswith("\n")


def test_io_errors_are_retried_with_backoff_others_are_not() -> None:
    from pytest_ltx.render.guard import retry_io

    sleeps: list[float] = []
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise OSError(5, "Input/output error")
        return "ok"

    assert retry_io(flaky, attempts=3, backoff_s=0.5, sleep=sleeps.append) == "ok"
    assert sleeps == [0.5, 1.0]

    def gone() -> None:
        raise FileNotFoundError("no such model folder")  # not transient: no retry

    with pytest.raises(FileNotFoundError):
        retry_io(gone, sleep=sleeps.append)
    assert sleeps == [0.5, 1.0]
    with pytest.raises(OSError, match="Input/output"):  # the last attempt's error surfaces
        retry_io(lambda: (_ for _ in ()).throw(OSError(5, "Input/output error")), attempts=2, sleep=sleeps.append)
    assert sleeps == [0.5, 1.0, 1.0]


def test_switching_profile_releases_the_previous_gpu_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_ltx.render.ltx2 as ltx2
    from pytest_ltx.render import pool as base

    released: list[str] = []

    class Fake:
        def __init__(self, profile: ModelProfile) -> None:
            self.profile = profile
            self.placement = SimpleNamespace(is_cuda=profile.device.startswith("cuda"))

        def release(self) -> None:
            released.append(self.profile.name)

        def render(self, req, *, guard=None):
            raise NotImplementedError

    monkeypatch.setattr(ltx2, "LTX2Renderer", Fake)
    base.clear_renderers()
    try:
        cpu = base.get_renderer(ModelProfile(name="tiny-cpu", kind=ModelKind.LOCAL, path=Path("/x"), device="cpu"))
        a = base.get_renderer(ModelProfile(name="a", kind=ModelKind.LOCAL, path=Path("/a"), device="cuda"))
        assert base.get_renderer(a.profile) is a and released == []
        base.get_renderer(ModelProfile(name="b", kind=ModelKind.LOCAL, path=Path("/b"), device="cuda"))
        assert released == ["a"]  # one GPU pipeline per worker; the CPU one stays
        assert base.get_renderer(cpu.profile) is cpu
    finally:
        base.clear_renderers()


# ------------------------------------------------------------------------------------------- shards


def test_shards_are_complete_disjoint_stable_and_balanced() -> None:
    from pytest_ltx.shard import assign_shards

    ids = [f"specs/s{i % 3}.yaml::clip{i}[seed=0]" for i in range(40)]
    durations = {k: float(1 + (i * 7) % 13) for i, k in enumerate(ids[:30])}  # 10 never measured
    a = assign_shards(ids, 4, durations)
    assert set(a) == set(ids) and set(a.values()) == {1, 2, 3, 4}
    assert assign_shards(list(reversed(ids)), 4, dict(reversed(list(durations.items())))) == a  # order-free
    loads = [0.0] * 4
    default = sorted(durations.values())[len(durations) // 2 - 1: len(durations) // 2 + 1]
    for k, s in a.items():
        loads[s - 1] += durations.get(k, sum(default) / 2)
    assert max(loads) - min(loads) <= max(durations.values())  # LPT: within one item of each other
    assert assign_shards(ids, 1) == dict.fromkeys(ids, 1)


def test_durations_file_keeps_cold_render_times(tmp_path: Path) -> None:
    from pytest_ltx.shard import read_durations, update_durations

    p = tmp_path / "d.json"
    update_durations(p, [{"nodeid": "a", "timings": {"total_s": 30.0}}, {"nodeid": "b", "timings": {}}])
    update_durations(p, [{"nodeid": "a", "timings": {"total_s": 0.2, "cached": True}},
                         {"nodeid": "c", "timings": {"total_s": 0.5, "cached": True}}])
    assert read_durations(p) == {"a": 30.0, "c": 0.5}
    # a test card (never a cached render) restated from its remembered conclusion
    update_durations(p, [{"nodeid": "c", "timings": {"total_s": 0.01, "remembered": True}}])
    assert read_durations(p) == {"a": 30.0, "c": 0.5}
    assert read_durations(tmp_path / "absent.json") == {}


# ---------------------------------------------------------------------------------------- the cache


def _clip(value: int) -> Any:
    from pytest_ltx.media import Clip

    return Clip(frames=np.full((3, 32, 32, 3), value, np.uint8), fps=24.0)


def test_cache_size_limit_evicts_least_recently_used(tmp_path: Path) -> None:
    import os

    from pytest_ltx.cache import RenderCache

    cache = RenderCache(tmp_path / "c")
    keys = [RenderCache.key({"n": i}) for i in range(3)]
    cache.put(keys[0], _clip(10), {})
    one = cache.size_bytes()
    cache.put(keys[1], _clip(90), {})
    for i, k in enumerate(keys[:2]):  # put 0 and 1 at distinct past times, then use 0 again
        d = cache.entry_dir(k)
        os.utime(d / "meta.json", (1000 + i, 1000 + i))
    assert cache.get(keys[0]) is not None  # a hit: now the most recently used
    cache.max_bytes = int(one * 2.5)
    cache.put(keys[2], _clip(170), {})
    assert cache.get(keys[1]) is None  # the least recently used went
    assert cache.get(keys[0]) is not None and cache.get(keys[2]) is not None
    assert cache.size_bytes() <= cache.max_bytes


def test_corrupt_entry_is_discarded_and_a_miss(tmp_path: Path) -> None:
    from pytest_ltx.cache import RenderCache

    cache = RenderCache(tmp_path / "c")
    k = RenderCache.key({"n": 1})
    e = cache.put(k, _clip(50), {})
    data = bytearray(e.clip_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    e.clip_path.write_bytes(bytes(data))
    assert cache.get(k) is None and not cache.entry_dir(k).exists()


def test_shared_cache_at_an_fsspec_url(tmp_path: Path) -> None:
    """Two runners with their own local folders share entries through a URL (fsspec's memory://); a
    corrupt shared entry is discarded there and re-rendered."""
    fsspec = pytest.importorskip("fsspec")
    from pytest_ltx.cache import RemoteStore, RenderCache

    url = f"memory://ltx-shared-{tmp_path.name}"
    a = RenderCache(tmp_path / "a", remote=RemoteStore(url))
    b = RenderCache(tmp_path / "b", remote=RemoteStore(url))
    k = RenderCache.key({"n": 7})
    a.put(k, _clip(77), {"seconds": 1.5})
    hit = b.get(k)
    assert hit is not None and hit.meta == {"seconds": 1.5} and hit.clip_path.is_relative_to(tmp_path / "b")
    # corrupt the shared copy: a third runner discards it instead of using it
    fs = fsspec.filesystem("memory")
    remote_clip = f"/ltx-shared-{tmp_path.name}/renders/{k[:2]}/{k}/clip.mp4"
    data = bytearray(fs.cat_file(remote_clip))
    data[-10] ^= 0xFF
    fs.pipe_file(remote_clip, bytes(data))
    c = RenderCache(tmp_path / "c", remote=RemoteStore(url))
    assert c.get(k) is None and not fs.exists(remote_clip)


# ------------------------------------------------------------------------------------------ workflows


def _load_workflow(text: str) -> dict:
    """YAML 1.1 reads the key ``on`` as True; GitHub (YAML 1.2) reads it as "on"."""
    import yaml

    doc = yaml.safe_load(text)
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def _workflow_schema() -> dict:
    import json
    from importlib import resources

    p = resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "github-workflows.json"
    return json.loads(p.read_text(encoding="utf-8"))


WORKFLOWS = sorted((Path(__file__).parent.parent / ".github" / "workflows").glob("*.yml"))


def test_there_are_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ltx-gate.yml", "ltx-baselines.yml", "ci.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_are_valid(path: Path) -> None:
    """Validated offline against check-jsonschema's vendored GitHub Actions workflow schema."""
    import jsonschema

    jsonschema.validate(_load_workflow(path.read_text(encoding="utf-8")), _workflow_schema())


def test_the_validation_catches_a_broken_workflow() -> None:
    import jsonschema

    good = "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo\n"
    jsonschema.validate(_load_workflow(good), _workflow_schema())
    for bad in (good.replace("runs-on", "runs_on"),  # misspelt key
                good.replace("- run: echo", "- uses: actions/checkout@v4\n        run: echo")):  # uses + run
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(_load_workflow(bad), _workflow_schema())


def test_gate_workflow_shards_restores_the_cache_and_uses_the_draft_preset() -> None:
    gate = _load_workflow((WORKFLOWS[0].parent / "ltx-gate.yml").read_text())
    job = gate["jobs"]["gpu"]
    steps = " ".join(str(s) for s in job["steps"])
    assert "--ltx-shard" in steps and "matrix.shard" in steps and "actions/cache" in steps
    # tiers are presets: draft on pull requests, full nightly / on demand
    assert "--ltx-preset \"$LTX_PRESET\"" in steps and "upload-artifact" in steps
    assert gate["env"]["LTX_PRESET"] == ("${{ github.event_name == 'pull_request' && 'draft' || inputs.preset "
                                         "|| 'full' }}")
    assert "schedule" in gate["on"]
    assert "self-hosted" in str(job["runs-on"])


# --------------------------------------------------------------------------------- benchmarks/gpu_check


def _gpu_check():
    import importlib.util

    path = Path(__file__).parent.parent / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    mod = importlib.util.module_from_spec(spec)
    import sys

    sys.modules["gpu_check"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_gpu_check_dry_run_plans_every_recipe_and_placement(tmp_path: Path) -> None:
    import json

    gc = _gpu_check()
    out = tmp_path / "dry.json"
    assert gc.main(["--dry-run", "--free-gb", "40", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert {(r["recipe"], r["placement"]) for r in doc["rows"]} == {
        (rc, p) for rc in ("dev", "distilled") for p in ("none", "model", "group", "sequential")}
    assert 63 < sum(doc["weights_gb"].values()) < 68
    assert doc["chosen"]["dev"]["offload"] == "group"  # 40 GiB free: the transformer alone does not fit


def test_gpu_check_tiny_mode_renders_each_recipe_and_rerenders_bit_identically(render_tiny_dir, tmp_path: Path,
                                                                             monkeypatch) -> None:
    import json

    monkeypatch.setenv("PYTEST_LTX_HOME", str(render_tiny_dir.parent.parent))
    gc = _gpu_check()
    out = tmp_path / "tiny.json"
    assert gc.main(["--tiny", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [(r["recipe"], r["placement"], r["error"]) for r in doc["rows"]] == [
        ("dev", "none", None), ("distilled", "none", None)]
    assert all(r["seconds"] > 0 for r in doc["rows"]) and doc["bit_identical"] is True
    assert "needs CUDA" in doc["oom_retry"]["skipped"]


def test_doctor_exits_non_zero_when_something_required_is_missing(tmp_path: Path, monkeypatch, capsys) -> None:
    import importlib.util

    import torch

    from pytest_ltx.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "pyproject.toml").write_text('[tool.pytest-ltx.models.big]\npath = "/models/x"\ndevice = "cuda"\n')
    rc = main(["doctor"])
    out = capsys.readouterr().out
    assert rc == 1 and "NO  profile big" in out and "no CUDA device is visible" in out
    # and a required library missing
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "av" else real(name, *a))
    (tmp_path / "pyproject.toml").write_text("")
    assert main(["doctor"]) == 1 and "NO  av" in capsys.readouterr().out


def test_failure_kind_per_item() -> None:
    from pytest_ltx.outcome import FailureKind, failure_kind

    assert failure_kind("passed", []) is None
    assert failure_kind("error", []) is FailureKind.INFRASTRUCTURE  # no clip: model, device, OOM, I/O, timeout
    assert failure_kind("failed", [{"check": "motion.cuts", "status": "failed"},
                                   {"check": "text.none", "status": "error"}]) is FailureKind.REGRESSION
    # a metric that could not run (OCR weights missing) is the machine's problem
    assert failure_kind("failed", [{"check": "text.none", "status": "error"}]) is FailureKind.INFRASTRUCTURE
    # an unreadable baseline record is the repository's (a bad merge): fixed in the PR, not by a rerun
    assert failure_kind("failed", [{"check": "baseline.read", "status": "error"}]) is FailureKind.REGRESSION


def test_vram_preflight_on_a_machine_without_gpus_imports_no_torch() -> None:
    """A warm rerun of a spec with ``budget.vram_gb_max`` renders nothing: asking whether there is a GPU
    must not cost a torch import (2-3 s) where no GPU device node exists."""
    import glob
    import os
    import subprocess
    import sys

    if glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/kfd") or not sys.platform.startswith("linux"):
        pytest.skip("this machine has GPU device nodes")
    code = ("import sys\n"
            "from pytest_ltx.models import TINY_PROFILE\n"
            "from pytest_ltx.render.base import RenderRequest\n"
            "from pytest_ltx.runner import preflight_plan\n"
            "req = RenderRequest(prompt='p', width=64, height=64, frames=9)\n"
            "print(preflight_plan(TINY_PROFILE, req, 20.0, 2.0), 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "False"], out.stdout + out.stderr
