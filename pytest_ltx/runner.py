"""Producing one item's clip: render (through the render cache), a file, or a drawn test card; and the
outcomes that depend on how it was made (export, budget, determinism). Pure of pytest: the item pipeline
(``item/pipeline.py``) calls these with an :class:`~pytest_ltx.item.ItemContext`; infrastructure problems
raise :class:`InfraError`, regressions come back as outcomes.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from pytest_ltx.media import Clip, ClipReadError, write_clip
from pytest_ltx.outcome import Outcome, Status
from pytest_ltx.stream import MediaSource

if TYPE_CHECKING:
    from pytest_ltx.item import ItemContext
    from pytest_ltx.spec import ItemSpec

__all__ = ["BudgetUnmet", "ClipRun", "InfraError", "obtain_clip", "preflight_plan", "render_provenance"]


class InfraError(Exception):
    """The clip could not be produced (missing model, unreadable file, device unavailable): an error in
    the test infrastructure, reported as a pytest error, never as a metric failure."""


class BudgetUnmet(Exception):
    """The VRAM planner found no placement that meets the spec's ``vram_gb_max``: the item fails before
    rendering (a budget regression, not an infrastructure error: rerunning cannot help)."""

    def __init__(self, message: str, plan: dict[str, Any]) -> None:
        super().__init__(message)
        self.plan = plan


@dataclass
class ClipRun:
    """What an item's setup produced: the clip's file (its mp4: what a user would see; decoded later, once,
    as a stream by the metrics), and how it was made."""

    media: MediaSource
    source: str
    params: dict[str, Any]
    provenance: dict[str, Any]
    model_key: str
    mp4: Path | None = None
    render_seconds: float | None = None
    peak_vram_gb: float | None = None
    cached: bool = False
    #: the raw (pre-encode) render, kept only when a determinism check needs it
    raw: Clip | None = None
    #: the render cache key (renders only): determinism proofs are remembered under it
    render_key: str | None = None
    #: this request was proven bit-identical in an earlier run in this environment (no re-render needed)
    determinism_proven: dict[str, Any] | None = None
    truth: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)


def render_provenance(profile: Any, fingerprint: str, request: Any, encode: Any = None) -> dict[str, Any]:
    """Everything that determines a render's pixels, known before loading the model: it keys the cache.

    The placement actually used (device, dtype, offload, threads) is in it — with ``auto`` a bf16 GPU
    render and an fp32 CPU render must not share a key — while the weights' folder path is not (the
    fingerprint identifies the weights; moving a folder must not invalidate the cache). ``encode`` (the
    mp4 encode settings; the renderer's defaults when None) is in it too: the cache holds the encoded file.
    """
    from pytest_ltx.devices import cuda_available, cuda_device_count
    from pytest_ltx.media import X264_PARAMS, X264_THREADS, YUV_MATRIX
    from pytest_ltx.render.encode import DEFAULT_ENCODE
    from pytest_ltx.render.gpu import gpu_identity, pin_device
    from pytest_ltx.render.ltx2 import plan_placement
    from pytest_ltx.versions import package_versions

    model = {k: v for k, v in profile.to_dict().items() if k not in ("path", "loras", "distilled_lora", "upsampler")}
    extras = profile.extras_identity()  # LoRAs and upsampler by content, not by path
    if extras:
        model["extras"] = extras
    cuda = cuda_available()
    count = cuda_device_count() if cuda else 0
    placement = plan_placement(profile, cuda, device_count=count)
    # kernels differ between GPU architectures: an A100's bits are never served to an H100 (the GPU of this
    # worker, but not its index: identical cards share entries)
    gpu = gpu_identity(pin_device(placement.device, cuda, count) if placement.is_cuda else "cpu")
    return {
        "model": model,
        "fingerprint": fingerprint,
        "request": keyed_request(request),
        "placement": {k: v for k, v in placement.to_dict().items() if k != "notes"},
        "versions": package_versions(),
        "encode": {**(encode if encode is not None else DEFAULT_ENCODE).to_dict(), "x264_params": X264_PARAMS,
                   "x264_threads": X264_THREADS, "yuv_matrix": YUV_MATRIX},
        **({"gpu": {k: v for k, v in gpu.items() if k != "total_gb"}} if gpu else {}),
    }


def keyed_request(request: Any) -> dict[str, Any]:
    """The request as the cache keys it: file inputs by their content, never by their path (editing the
    conditioning image must miss the cache; moving the checkout must not)."""
    from pytest_ltx.cache import sha256_file

    d = request.to_dict()
    if request.image is not None:
        p = Path(request.image)
        try:
            d["image"] = {"sha256": sha256_file(p)}
        except OSError as e:
            raise InfraError(f"conditioning image {p} cannot be read ({e.strerror or e})") from None
    return d


def _guard(item: "ItemSpec", ctx: "ItemContext") -> Any:
    """The render guard of an item: timeout (spec budget, else ini), VRAM budget, progress label."""
    from pytest_ltx.render.guard import RenderGuard

    e = item.clip.expect
    b = e.budget if e is not None else None
    timeout = (b.timeout_s if b is not None and getattr(b, "timeout_s", None) else None) or (
        ctx.settings.render_timeout or None)
    return RenderGuard(timeout_s=timeout, label=item.name, vram_gb_max=b.vram_gb_max if b is not None else None,
                       io_attempts=ctx.settings.io_retries + 1)


def preflight_plan(profile: Any, req: Any, vram_gb_max: float | None, margin_gb: float) -> Any:
    """Plan VRAM before loading anything (CUDA only; None on CPU). Raises :class:`BudgetUnmet` when no
    placement meets ``vram_gb_max``."""
    from pytest_ltx.devices import cuda_available, cuda_device_count
    from pytest_ltx.models import resolve_model_dir
    from pytest_ltx.render.ltx2 import plan_placement
    from pytest_ltx.render.plan import choose, shape_of, sizes_for

    cuda = cuda_available()  # no torch import on a machine without GPU nodes (a warm rerun renders nothing)
    count = cuda_device_count() if cuda else 0
    placement = plan_placement(profile, cuda, device_count=count)
    if not placement.is_cuda:
        return None
    sizes = sizes_for(resolve_model_dir(profile), placement.dtype)
    plan = choose(sizes, shape_of(req, max_sequence_length=profile.max_sequence_length), start=profile.offload,
                  vae_tiling=placement.vae_tiling, free_gb=None, vram_gb_max=vram_gb_max, margin_gb=margin_gb,
                  dtype=placement.dtype)
    if vram_gb_max is not None and not plan.fits:
        raise BudgetUnmet(
            f"budget.vram_gb_max: {vram_gb_max:g} GB cannot be met: the smallest placement "
            f"({plan.chosen.offload.value}{', VAE tiling' if plan.chosen.vae_tiling else ''}) needs ≈ "
            f"{plan.chosen.peak_gb:.1f} GiB plus a {margin_gb:g} GiB margin (peak in {plan.chosen.phase}); "
            f"not rendered", plan.to_dict())
    return plan


def _where(item: "ItemSpec") -> str:
    return f"{item.spec_path}:{item.line}" if item.spec_path else item.name


def _request(item: "ItemSpec", ctx: "ItemContext") -> tuple[Any, Any]:
    """The model profile and the render request an item asks for (CLI overrides applied)."""
    from pytest_ltx.render import RenderError

    try:
        profile = ctx.models.profile(ctx.settings.model or item.clip.model, device=ctx.settings.device)
    except RenderError as e:
        raise InfraError(str(e)) from None
    try:
        req = item.to_render_request(profile.name)
    except ValueError as e:
        raise InfraError(f"{_where(item)}: {e}") from None
    if req.image is not None:  # collection refuses it already; a spec built in Python is checked here
        from pytest_ltx.confine import OutsideRoot, PathPolicy

        try:
            PathPolicy.from_settings(ctx.settings).resolve(req.image, item.base_dir)
        except OutsideRoot as e:
            raise InfraError(f"{_where(item)}: image: {e}") from None
    return profile, req


def _render(item: "ItemSpec", ctx: "ItemContext") -> ClipRun:
    from pytest_ltx.baseline.record import make_model_key
    from pytest_ltx.render import RenderError

    profile, req = _request(item, ctx)
    try:
        ident = ctx.models.identity(profile)
        prov = render_provenance(profile, ident.fingerprint, req, item.encode)
    except RenderError as e:
        raise InfraError(str(e)) from None
    except FileNotFoundError as e:
        raise InfraError(f"model profile '{profile.name}': {e}") from None
    fp = ident.fingerprint
    guard = _guard(item, ctx)
    if guard.vram_gb_max is not None:
        try:
            preflight_plan(profile, req, guard.vram_gb_max, ctx.settings.vram_margin)
        except RenderError as e:
            raise InfraError(str(e)) from None
    model_key = make_model_key(profile.name, fp)
    params = req.to_dict()
    cache = ctx.stores.renders
    key = cache.key(prov)
    proven = None
    if item.expect.determinism is not None and not (ctx.settings.no_cache or ctx.settings.recheck_determinism):
        proven = ctx.stores.evaluations.get_determinism(key)
    need_raw = item.expect.determinism is not None and proven is None
    hit = None if (ctx.settings.no_cache or need_raw) else cache.get(key)
    if hit is not None:
        meta = hit.meta
        return ClipRun(media=MediaSource(hit.clip_path), source="render", params=params,
                       provenance={**prov, **meta.get("render", {}), "model_identity": ident.summary()},
                       model_key=model_key, mp4=hit.clip_path, render_seconds=meta.get("seconds"),
                       peak_vram_gb=meta.get("peak_vram_gb"), cached=True, render_key=key, determinism_proven=proven)
    from pytest_ltx.render.guard import retry_io

    try:
        renderer = retry_io(lambda: ctx.renderer_for(profile), attempts=guard.io_attempts, log=guard.attempts,
                            what="load")
        t0 = time.perf_counter()
        result = retry_io(lambda: renderer.render(req, guard=guard), attempts=guard.io_attempts,
                          log=guard.attempts, what="render")
        wall = time.perf_counter() - t0
    except RenderError as e:
        raise InfraError(str(e)) from None
    except OSError as e:
        raise InfraError(f"{_where(item)}: I/O error while rendering, after {guard.io_attempts} attempt(s): "
                         f"{e.__class__.__name__}: {e}") from None
    # how it was really placed (the planner may have chosen offload from the free memory), the VRAM
    # plan (planned vs measured peak) and every attempt (an out-of-memory retry is recorded)
    how = {"device": result.device, "dtype": result.dtype}
    for k in ("placement", "vram_plan", "attempts", "gpu"):
        if k in result.provenance:
            how[k] = result.provenance[k]
    meta = {
        "seconds": result.seconds,
        "peak_vram_gb": result.peak_vram_gb,
        # the manifest comes back on a cache hit too, so a baseline diff never needs the pipeline loaded
        "render": {**how, "manifest": result.provenance.get("manifest")},
        "provenance": result.provenance,
    }
    from pytest_ltx.storage import StoreError

    try:  # encoded straight into the cache entry (atomically), with the item's delivery settings;
        # a transient I/O error is retried
        entry = retry_io(lambda: cache.put(key, result.clip, meta, encode=item.encode), attempts=guard.io_attempts,
                         what="cache")
    except StoreError as e:  # a full or read-only cache volume: one line, not a traceback
        raise InfraError(f"{_where(item)}: {e}") from None
    return ClipRun(media=MediaSource(entry.clip_path), source="render", params=params,
                   provenance={**prov, **meta["render"], "model_identity": ident.summary()},
                   model_key=model_key, mp4=entry.clip_path, render_seconds=result.seconds,
                   peak_vram_gb=result.peak_vram_gb, cached=False,
                   raw=result.clip if need_raw else None, timings={"render_call_s": wall},
                   render_key=key, determinism_proven=proven)


def fresh_render(item: "ItemSpec", ctx: "ItemContext", seed: int | None = None) -> Clip:
    """An uncached render of the item's request (with another ``seed`` for calibration runs), raw: not
    encoded. The determinism check compares two of these bit for bit."""
    from dataclasses import replace

    from pytest_ltx.render import RenderError

    profile, req = _request(item, ctx)
    if seed is not None:
        req = replace(req, seed=seed)
    try:
        return ctx.renderer_for(profile).render(req, guard=_guard(item, ctx)).clip
    except RenderError as e:
        raise InfraError(str(e)) from None


@contextlib.contextmanager
def render_variant(item: "ItemSpec", ctx: "ItemContext", seed: int) -> Iterator[MediaSource]:
    """A fresh render with ``seed`` through the same mp4 encode as the item's own clip (calibration runs:
    never cached, never the item's result), as a temporary file removed afterwards."""
    clip = fresh_render(item, ctx, seed)
    mp4 = ctx.scratch() / f"calibrate-{seed}.mp4"
    write_clip(clip, mp4, encode=item.encode)
    del clip
    try:
        yield MediaSource(mp4)
    finally:
        mp4.unlink(missing_ok=True)


def _file(item: "ItemSpec", ctx: "ItemContext") -> ClipRun:
    from pytest_ltx.evalcache import file_digest
    from pytest_ltx.render.file import open_file_source

    assert item.file_path is not None
    try:
        media = open_file_source(item.file_path, item.audio_path, spec_dir=item.base_dir,
                                 root=ctx.settings.rootdir, require_audio=item.expect.av_sync is not None,
                                 allow_outside_root=ctx.settings.allow_outside_root,
                                 allow_dirs=ctx.settings.allow_dirs)
    except ClipReadError as e:
        raise InfraError(f"{_where(item)}: {e}") from None
    params = {"file": str(media.path), "audio": None if item.audio_path is None else str(item.audio_path)}
    return ClipRun(media=media, source="file", params=params, provenance={"file_sha256": file_digest(media.path)},
                   model_key="file", mp4=media.path)


#: bump when test cards are drawn differently (the code digest below catches edits too)
_TESTCARD_CACHE_FORMAT = 1


def _testcard(item: "ItemSpec", ctx: "ItemContext", nodeid: str) -> ClipRun:
    """Draw the card into an mp4 — or take it from the render cache, keyed by the card's parameters, the
    test-card code and the encoder's library versions: a rerun draws nothing. The clip is published in
    the report folder of item ``nodeid``."""
    import json

    from pytest_ltx.evalcache import code_digest
    from pytest_ltx.versions import package_versions

    spec = item.clip.testcard
    key = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16]
    cache = ctx.stores.renders
    ckey = cache.key({"kind": "testcard", "format": _TESTCARD_CACHE_FORMAT, "spec": json.loads(spec.model_dump_json()),
                      "versions": package_versions(("av", "numpy", "opencv-python-headless", "pytest-ltx")),
                      "code": code_digest()})
    hit = None if ctx.settings.no_cache else cache.get(ckey)
    was_cached = hit is not None
    if hit is None:
        from pytest_ltx.testcard import write

        # drawn frame by frame straight into an mp4, then read back like a render: the metrics see the
        # codec's effect, and a large card is never held in memory
        mp4 = ctx.scratch() / f"testcard-{ckey[:16]}.mp4"
        truth = write(spec, mp4)
        try:
            hit = cache.put(ckey, mp4, {"truth": truth.to_dict()})
        finally:
            mp4.unlink(missing_ok=True)
    mp4 = _publish(hit.clip_path, ctx.report_clip_path(nodeid))
    return ClipRun(media=MediaSource(mp4), source="testcard", params=spec.model_dump(mode="json"),
                   provenance={"testcard_sha256": key}, model_key="testcard", mp4=mp4,
                   truth=hit.meta.get("truth"), cached=was_cached)


def _publish(src: Path, dest: Path) -> Path:
    """The cached card, also at its place in the report folder (a hard link when possible, else a copy;
    replaced atomically), so the report folder holds the clips it shows."""
    import os
    import shutil

    from pytest_ltx.storage import atomic_file

    # "private": no chmod — a hard link shares the cache entry's inode (and mode)
    with atomic_file(dest, prefix=f".{dest.stem}.", mode="private") as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    return dest


def _check_clip_budget(item: "ItemSpec", kind: str) -> None:
    """A spec asking for a clip larger than the ``clip_mb`` budget (frames × height × width × 3 bytes
    decoded) is refused before anything is drawn or rendered: a PR must not make the runner spend hours
    and the disk on a 4096×4096×100000 test card."""
    from pytest_ltx.limits import current, raise_hint

    if kind == "testcard":
        tc = item.clip.testcard
        dims = (tc.frames, tc.height, tc.width)
    elif kind == "render":
        c = item.clip
        dims = (c.frames, c.height, c.width)
    else:
        return  # a file is checked from its headers when it is read
    if any(not isinstance(d, int) for d in dims):
        return
    need = dims[0] * dims[1] * dims[2] * 3
    lim = current().clip_mb
    if need > lim * 2**20:
        raise InfraError(
            f"{_where(item)}: {kind} of {dims[0]} frames at {dims[2]}x{dims[1]} decodes to {need / 2**20:.0f} MB, "
            f"over the {lim} MB limit for one clip; nothing was {'drawn' if kind == 'testcard' else 'rendered'}; "
            f"{raise_hint('clip_mb')}")


def obtain_clip(item: "ItemSpec", ctx: "ItemContext", nodeid: str | None = None) -> ClipRun:
    """The item's clip. ``nodeid`` (the item's pytest id; by default its :class:`ItemKey`'s) names the
    report folder a drawn test card is published in."""
    kind = item.source_kind.value if hasattr(item.source_kind, "value") else str(item.source_kind)
    _check_clip_budget(item, kind)
    if nodeid is None:
        from pytest_ltx.item.key import ItemKey

        nodeid = item.name if item.spec_path is None else ItemKey.of(item.spec_path, item.name,
                                                                       ctx.settings.rootdir).nodeid
    t0 = time.perf_counter()
    try:
        if kind == "render":
            run = _render(item, ctx)
        elif kind == "file":
            run = _file(item, ctx)
        else:
            run = _testcard(item, ctx, nodeid)
    except OSError as e:  # a full disk or a read-only folder while writing a clip: one line, no traceback
        from pytest_ltx.storage import describe_os_error

        raise InfraError(f"{_where(item)}: file system error: {describe_os_error(e)}; "
                         "no store was changed (free space or point --ltx-report-dir / --ltx-cache-dir elsewhere)"
                         ) from None
    run.timings["obtain_s"] = time.perf_counter() - t0
    return run


def clip_outcomes(run: ClipRun, item: "ItemSpec", ctx: "ItemContext") -> list[Outcome]:
    """Outcomes that depend on how the clip was made rather than on its pixels: budget and determinism.

    Determinism: two renders of the request are compared; when they are bit-identical the proof is
    remembered for the render's cache key and this environment (machine, libraries), and later runs
    reuse it instead of rendering twice (``--ltx-recheck-determinism`` or ``--ltx-no-cache`` re-renders)."""
    from pytest_ltx.expect.render import check_budget, check_determinism, determinism_proven

    e = item.expect
    out: list[Outcome] = []
    if e.export is not None:
        from pytest_ltx.expect.export import check_export, probe_export_cached

        if run.mp4 is None:
            out.append(Outcome("export", Status.UNMEASURED, "no clip file to probe"))
        else:
            try:
                facts = probe_export_cached(run.mp4, audio_path=item.audio_path, cache=ctx.stores.evaluations,
                                            refresh=ctx.settings.no_cache, source=run.media)
            except ClipReadError as err:
                out.append(Outcome("export.probe", Status.ERROR, str(err)))
            else:
                out += check_export(facts, e.export)
    if e.budget is not None and run.source == "render":
        out += check_budget(run.render_seconds, run.peak_vram_gb, e.budget, cached=run.cached)
    if e.determinism is not None:
        if run.source != "render":
            out.append(Outcome("determinism", Status.UNMEASURED, "determinism applies to rendered clips only"))
        elif run.determinism_proven is not None:
            out += determinism_proven(run.determinism_proven, e.determinism)
        elif run.raw is None:
            out.append(Outcome("determinism", Status.UNMEASURED, "determinism: no raw render to compare"))
        else:
            second = fresh_render(item, ctx)
            checked = check_determinism(run.raw, second, e.determinism)
            out += checked
            identical = (run.raw.frames.shape == second.frames.shape and bool((run.raw.frames == second.frames).all())
                         and _same_audio(run.raw, second))
            if identical and run.render_key is not None:
                ctx.stores.evaluations.put_determinism(run.render_key, {
                    "bit_identical": True, "frames": list(run.raw.frames.shape),
                    "audio": None if run.raw.audio is None else list(run.raw.audio.shape),
                    "proven_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            run.raw = None
    return out


def _same_audio(a: Clip, b: Clip) -> bool:
    if a.audio is None or b.audio is None:
        return a.audio is None and b.audio is None
    return a.audio.shape == b.audio.shape and bool((a.audio == b.audio).all())
