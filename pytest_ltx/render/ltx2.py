"""The diffusers LTX-2 backend: one ``LTX2Pipeline`` per model profile per process, reused by every item.

The same class serves real checkpoints (local diffusers folders, hub ids from the local cache) and the
embedded tiny model, so CI on a CPU box exercises the code path a GPU runner takes. Placement (device,
dtype, offload, VAE tiling, CPU threads) is decided by a pure function, :func:`plan_placement`, so the
CUDA branches are unit-tested on machines without a GPU.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pytest_ltx.cache import sha256_file
from pytest_ltx.models import ModelProfile, Offload, fingerprint_dir, resolve_model_dir
from pytest_ltx.render.base import RenderError, RenderRequest, RenderResult

__all__ = [
    "Placement",
    "plan_placement",
    "apply_placement",
    "call_kwargs",
    "library_versions",
    "LTX2Renderer",
]

#: weights larger than this share of the GPU's memory are offloaded even when the profile says none
_FIT_SHARE = 0.9


@dataclass(frozen=True)
class Placement:
    """Where and how a pipeline runs; ``notes`` say why something the profile asked for was changed."""

    device: str
    dtype: str
    offload: Offload
    vae_tiling: bool
    #: CPU torch threads for the render (None on CUDA)
    threads: int | None
    notes: tuple[str, ...] = ()

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "dtype": self.dtype,
            "offload": self.offload.value,
            "vae_tiling": self.vae_tiling,
            "threads": self.threads,
            "notes": list(self.notes),
        }


def plan_placement(
    profile: ModelProfile,
    cuda_available: bool,
    vram_gb: float | None = None,
    *,
    device_count: int = 1,
    weights_gb: float | None = None,
) -> Placement:
    """Decide device, dtype, offload and tiling for ``profile`` on this machine.

    - ``device=auto`` → ``cuda`` when available, else ``cpu``; an explicit CUDA device that is not
      there is an error (silently rendering a GPU profile on CPU would take hours and fake the budget).
    - ``dtype=auto`` → bfloat16 on CUDA, float32 on CPU.
    - offload only on CUDA (diffusers' hooks require an accelerator); with ``offload=none`` and weights
      that do not fit ``vram_gb``, model offload is chosen instead, with a note.
    - VAE tiling defaults to on for CUDA (avoids the decode peak at 512×768×121 and above).
    """
    notes: list[str] = []
    want = profile.device
    if want == "auto":
        device = "cuda" if cuda_available else "cpu"
    elif want.startswith("cuda"):
        if not cuda_available:
            raise RenderError(
                f"model profile '{profile.name}' asks for device '{want}', but CUDA is not available "
                "here (torch.cuda.is_available() is False: no GPU visible, or a CPU-only torch build). "
                "Run on a GPU runner, or set device = \"auto\" or \"cpu\" for this profile in "
                "pyproject.toml."
            )
        idx = int(want.split(":", 1)[1]) if ":" in want else 0
        if idx >= device_count:
            raise RenderError(
                f"model profile '{profile.name}' asks for device '{want}', but only {device_count} CUDA "
                f"device(s) are visible (cuda:0..cuda:{device_count - 1}); check CUDA_VISIBLE_DEVICES."
            )
        device = want
    else:
        device = "cpu"
    cuda = device.startswith("cuda")

    dtype = profile.dtype
    if dtype == "auto":
        dtype = "bfloat16" if cuda else "float32"
    elif dtype == "float16" and not cuda:
        notes.append("float16 on CPU is slow and poorly supported; consider float32 or bfloat16")

    offload = profile.offload
    if not cuda:
        if offload is not Offload.NONE:
            notes.append(f"offload '{offload.value}' ignored: it needs CUDA, rendering on CPU")
        offload = Offload.NONE
    elif offload is Offload.NONE and vram_gb and weights_gb and weights_gb > _FIT_SHARE * vram_gb:
        offload = Offload.MODEL
        notes.append(
            f"weights ({weights_gb:.1f} GB) do not fit {vram_gb:.1f} GB of VRAM: using model CPU offload"
        )

    tiling = profile.vae_tiling if profile.vae_tiling is not None else cuda
    return Placement(
        device=device,
        dtype=dtype,
        offload=offload,
        vae_tiling=bool(tiling),
        threads=None if cuda else profile.threads,
        notes=tuple(notes),
    )


def apply_placement(pipe: Any, pl: Placement) -> None:
    """Put a loaded pipeline where ``pl`` says: offload hooks or ``.to(device)``, VAE tiling, quiet
    progress bars. Offload is only ever requested on CUDA (``plan_placement`` guarantees it): diffusers
    raises on CPU-only machines."""
    gpu_id = int(pl.device.split(":", 1)[1]) if ":" in pl.device else None
    if pl.offload is Offload.MODEL:
        pipe.enable_model_cpu_offload(gpu_id=gpu_id)
    elif pl.offload is Offload.GROUP:
        import torch

        pipe.enable_group_offload(onload_device=torch.device(pl.device), offload_type="block_level",
                                  num_blocks_per_group=1, use_stream=True)
    elif pl.offload is Offload.SEQUENTIAL:
        pipe.enable_sequential_cpu_offload(gpu_id=gpu_id)
    else:
        pipe.to(pl.device)
    if pl.vae_tiling:
        pipe.vae.enable_tiling()
    pipe.set_progress_bar_config(disable=True)


def release_placement(pipe: Any) -> None:
    """Undo :func:`apply_placement`: remove offload hooks (accelerate's and diffusers' group offload),
    move every component back to the CPU and give the GPU's cached blocks back."""
    remove = getattr(pipe, "remove_all_hooks", None)
    if remove is not None:
        remove()
    for comp in getattr(pipe, "components", {}).values():
        registry = getattr(comp, "_diffusers_hook", None)
        if registry is not None:
            for name in ("group_offloading", "layer_execution_tracker", "lazy_prefetch_group_offloading"):
                try:
                    registry.remove_hook(name, recurse=True)
                except Exception:  # not registered on this component
                    pass
    pipe.to("cpu")
    from pytest_ltx.render.guard import free_cuda

    free_cuda()


_GUIDANCE_ARGS = {
    "scale": "guidance_scale",
    "audio_scale": "audio_guidance_scale",
    "stg_scale": "stg_scale",
    "audio_stg_scale": "audio_stg_scale",
    "modality_scale": "modality_scale",
    "audio_modality_scale": "audio_modality_scale",
    "rescale": "guidance_rescale",
    "audio_rescale": "audio_guidance_rescale",
}


def call_kwargs(profile: ModelProfile, req: RenderRequest) -> dict[str, Any]:
    """The pipeline ``__call__`` arguments for ``req`` (everything but prompt embeddings and generator).

    Guidance keys the request leaves out keep the pipeline's defaults; the STG blocks and the
    cross-timestep switch come from the profile's variant (2.0: [29], off; 2.3: [28], on), because the
    pipeline defaults target 2.3 and a wrong block index silently perturbs nothing.
    """
    kw: dict[str, Any] = {
        "prompt": req.prompt,
        "negative_prompt": req.negative_prompt,
        "height": req.height,
        "width": req.width,
        "num_frames": req.frames,
        "frame_rate": float(req.fps),
        "num_inference_steps": req.steps,
        "use_cross_timestep": profile.use_cross_timestep,
    }
    g: Mapping[str, Any] = req.guidance
    for key, arg in _GUIDANCE_ARGS.items():
        if g.get(key) is not None:
            kw[arg] = float(g[key])
    blocks = g.get("stg_blocks")
    kw["spatio_temporal_guidance_blocks"] = list(blocks if blocks is not None else profile.default_stg_blocks)
    if profile.max_sequence_length is not None:
        kw["max_sequence_length"] = profile.max_sequence_length
    return kw


def library_versions() -> dict[str, str | None]:
    """Versions that change render bits; part of every provenance record and cache key."""
    from pytest_ltx.versions import package_versions

    return package_versions(("torch", "diffusers", "transformers", "pytest-ltx"))


def _to_uint8(frames: Any) -> Any:
    """float [0,1] ``[F,H,W,3]`` → uint8, in place on the pipeline's own buffer (half the time of the
    naive expression on a 121-frame clip, and no extra full-size temporaries)."""
    import numpy as np

    a = np.asarray(frames, dtype=np.float32)
    if not a.flags.writeable:
        a = a.copy()
    np.clip(a, 0.0, 1.0, out=a)
    a *= 255.0
    np.rint(a, out=a)
    return a.astype(np.uint8)


class LTX2Renderer:
    """A loaded LTX-2 pipeline for one profile. Construction loads the weights (raising
    :class:`RenderError` with a how-to-fix message if it cannot); ``render`` is then cheap to call."""

    def __init__(self, profile: ModelProfile) -> None:
        import torch

        self.profile = profile
        self._lock = threading.Lock()
        self.model_dir = resolve_model_dir(profile)
        self.fingerprint = fingerprint_dir(self.model_dir)
        from dataclasses import replace

        from pytest_ltx.render.gpu import gpu_identity, pin_device

        cuda = torch.cuda.is_available()
        count = torch.cuda.device_count() if cuda else 0
        # one GPU per xdist worker; the VRAM planner decides offload per request from *free* memory
        placed = replace(profile, device=pin_device(profile.device, cuda, count))
        self.placement = plan_placement(placed, cuda, device_count=count)
        self.gpu = gpu_identity(self.placement.device)
        self.vram_plan: Any = None
        self._applied: Placement | None = None
        self.versions = library_versions()
        self._i2v: Any = None
        self._pipe = self._load()

    # -- loading ------------------------------------------------------------------------------------

    def _torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.placement.dtype)

    def _load(self) -> Any:
        from diffusers import LTX2Pipeline

        try:
            pipe = LTX2Pipeline.from_pretrained(
                str(self.model_dir), dtype=self._torch_dtype(), local_files_only=True
            )
        except Exception as e:
            raise RenderError(
                f"model profile '{self.profile.name}': could not load an LTX2Pipeline from "
                f"{self.model_dir} ({e.__class__.__name__}: {e}). Check that the folder is a complete "
                "diffusers LTX-2 checkpoint (model_index.json names LTX2Pipeline and every component "
                "folder has its config and weights)."
            ) from e
        if not self.placement.is_cuda:  # a CUDA pipeline is placed by prepare(), once the request is known
            self._place(pipe)
            self._applied = self.placement
        return pipe

    def _place(self, pipe: Any) -> None:
        apply_placement(pipe, self.placement)

    def prepare(self, req: RenderRequest, vram_gb_max: float | None = None) -> Any:
        """Plan VRAM for ``req`` on CUDA (free memory, the spec's budget) and move the pipeline to the
        planned placement if it differs from the current one. Returns the plan (None on CPU)."""
        from dataclasses import replace

        from pytest_ltx.render.gpu import free_memory_gb
        from pytest_ltx.render.plan import choose, shape_of, sizes_for

        if not self.placement.is_cuda:
            return None
        # component sizes: measured from the folder's configs (gpu_check hands in the reference ones)
        sizes = getattr(self, "component_sizes", None) or sizes_for(self.model_dir, self.placement.dtype)
        # memory this process already holds for the pipeline is available to it
        held = 0.0
        if getattr(self, "_applied", None) is not None:
            import torch

            held = torch.cuda.memory_allocated(self.placement.device) / 2**30
        plan = choose(sizes, shape_of(req, max_sequence_length=self.profile.max_sequence_length),
                      start=self.profile.offload, vae_tiling=self.placement.vae_tiling,
                      free_gb=(free_memory_gb(self.placement.device) or 0.0) + held, vram_gb_max=vram_gb_max,
                      dtype=self.placement.dtype)
        self.vram_plan = plan
        want = replace(self.placement, offload=plan.chosen.offload, vae_tiling=plan.chosen.vae_tiling,
                       notes=self.placement.notes + plan.notes)
        self._move_to(want)
        return plan

    def release(self) -> None:
        """Give the GPU back: remove offload hooks, move the modules to the CPU, drop the pipelines."""
        if getattr(self, "_applied", None) is not None and self.placement.is_cuda:
            release_placement(self._pipe)
        self._applied = None
        self._i2v = None
        self._pipe = None

    def _move_to(self, want: Placement) -> None:
        applied = getattr(self, "_applied", None)
        if applied is not None and (applied.offload, applied.vae_tiling) == (want.offload, want.vae_tiling):
            self.placement = want
            return
        if applied is not None:
            release_placement(self._pipe)
            if applied.vae_tiling and not want.vae_tiling:
                self._pipe.vae.disable_tiling()
        self.placement = want
        self._applied = None
        try:
            apply_placement(self._pipe, want)
        except BaseException:  # e.g. out of memory half-way through .to("cuda"): leave nothing behind
            try:
                release_placement(self._pipe)
            except Exception:
                pass
            raise
        self._applied = want
        self._i2v = None  # offload hooks belong to a pipeline: the image pipeline is rebuilt over them

    def _image_pipe(self) -> Any:
        """The image-to-video pipeline over the *same* modules (no second load)."""
        if self._i2v is None:
            from diffusers import LTX2ImageToVideoPipeline

            # constructed over the loaded modules: from_pipe would re-cast them with .to(dtype)
            i2v = LTX2ImageToVideoPipeline(**self._pipe.components)
            if self.placement.offload is not Offload.NONE:
                self._place(i2v)  # offload hooks belong to a pipeline; re-create them for this one
            i2v.set_progress_bar_config(disable=True)
            self._i2v = i2v
        return self._i2v

    # -- rendering ----------------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return int(self._pipe.vocoder.config.output_sampling_rate)

    @property
    def pipeline(self) -> Any:
        """The loaded text-to-video pipeline (for benchmarks and diagnostics)."""
        return self._pipe

    def provenance(self, req: RenderRequest) -> dict[str, Any]:
        """Everything that determines the rendered bits, JSON-ready; also the render cache's key material.
        Computable without rendering, so a cache lookup can happen first."""
        kw = call_kwargs(self.profile, req)
        call = {k: v for k, v in kw.items() if k not in ("prompt", "negative_prompt")}
        image = None
        if req.image is not None:
            p = Path(req.image)
            image = {"path": str(p), "sha256": sha256_file(p) if p.is_file() else None}
        return {
            "backend": "ltx2",
            "pipeline": "LTX2ImageToVideoPipeline" if req.image is not None else "LTX2Pipeline",
            "model": {
                "profile": self.profile.name,
                "kind": self.profile.kind.value,
                "hub_id": self.profile.hub_id,
                "revision": self.profile.revision,
                "variant": self.profile.variant,
                "fingerprint": self.fingerprint,
            },
            "request": req.to_dict(),
            "image": image,
            "call": call,
            "device": self.placement.device,
            "dtype": self.placement.dtype,
            "placement": self.placement.to_dict(),
            "generator": "cpu",
            "versions": dict(self.versions),
        }

    def render(self, req: RenderRequest, *, guard: Any = None) -> RenderResult:
        """Render ``req`` with a fixed-seed CPU generator (same noise on every device).

        ``guard`` (:class:`~pytest_ltx.render.guard.RenderGuard`) sets a timeout, a progress label and the
        spec's VRAM budget; out of CUDA memory, the render is retried once one rung down the offload
        ladder, and every attempt is recorded in ``guard.attempts`` and the provenance."""
        import numpy as np
        import torch

        from pytest_ltx.media import Clip
        from pytest_ltx.render.guard import Attempt, ErrorKind, RenderGuard, StepMonitor, classify, free_cuda
        from pytest_ltx.render.plan import lower_offload

        guard = guard if guard is not None else RenderGuard()
        kw = call_kwargs(self.profile, req)
        image = None
        if req.image is not None:
            p = Path(req.image)
            if not p.is_file():
                raise RenderError(f"conditioning image {p} does not exist")
            from PIL import Image

            try:
                with Image.open(p) as im:
                    image = im.convert("RGB")
            except OSError as e:
                raise RenderError(f"conditioning image {p} cannot be read ({e})") from None

        with self._lock:
            retried = False
            target: Placement | None = None  # None: the VRAM planner places the pipeline for this request
            while True:
                t0 = time.perf_counter()
                pl = self.placement
                old_threads = torch.get_num_threads()
                try:
                    # placing is guarded like rendering: `.to("cuda")` is where a full placement runs out
                    if pl.is_cuda:
                        if target is None:
                            self.prepare(req, guard.vram_gb_max)
                        else:
                            self._move_to(target)
                        pl = self.placement
                    pipe = self._pipe if image is None else self._image_pipe()
                    call = dict(kw, **({"image": image} if image is not None else {}))
                    if pl.threads:
                        torch.set_num_threads(pl.threads)
                    dev = torch.device(pl.device)
                    if pl.is_cuda:
                        torch.cuda.reset_peak_memory_stats(dev)
                    gen = torch.Generator("cpu").manual_seed(req.seed)
                    monitor = StepMonitor(guard, req.steps)
                    out = pipe(**call, generator=gen, output_type="np", return_dict=True,
                               callback_on_step_end=monitor)
                    if pl.is_cuda:
                        torch.cuda.synchronize(dev)
                    seconds = time.perf_counter() - t0
                    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if pl.is_cuda else None
                    guard.attempts.append(Attempt(pl.offload.value, seconds))
                    break
                except Exception as e:
                    pl = self.placement
                    kind = classify(e)
                    guard.attempts.append(Attempt(pl.offload.value, time.perf_counter() - t0, kind,
                                                  f"{e.__class__.__name__}: {str(e)[:500]}"))
                    lower = lower_offload(pl.offload) if pl.is_cuda else None
                    if kind is ErrorKind.OUT_OF_MEMORY and not retried and lower is not None:
                        # free what the failed call held, step one rung down the ladder, try once more
                        from dataclasses import replace

                        retried = True
                        out = None
                        free_cuda()
                        target = replace(pl, offload=lower, notes=pl.notes + (
                            f"out of memory with offload '{pl.offload.value}': retried with '{lower.value}'",))
                        continue
                    if isinstance(e, RenderError):
                        raise
                    hint = ""
                    if kind is ErrorKind.OUT_OF_MEMORY and retried:
                        hint = (f" Out of memory again after retrying with offload '{pl.offload.value}'; set "
                                "offload = \"sequential\" and vae_tiling = true in the profile, or free the GPU.")
                    elif kind is ErrorKind.OUT_OF_MEMORY:
                        hint = " Try offload = \"model\" (or \"sequential\") and vae_tiling = true in the profile."
                    raise RenderError(
                        f"model profile '{self.profile.name}': the pipeline failed while rendering "
                        f"{req.width}x{req.height}x{req.frames} seed {req.seed} "
                        f"({e.__class__.__name__}: {e}).{hint}"
                    ) from e
                finally:
                    if pl.threads:
                        torch.set_num_threads(old_threads)
            prov = self.provenance(req)
            prov["attempts"] = [a.to_dict() for a in guard.attempts]
            if getattr(self, "vram_plan", None) is not None:
                prov["vram_plan"] = self.vram_plan.to_dict()
            if getattr(self, "gpu", None) is not None:
                prov["gpu"] = dict(self.gpu)

        frames = _to_uint8(out.frames[0])
        audio = None
        if out.audio is not None:
            audio = out.audio[0].float().cpu().numpy().astype(np.float32, copy=False)
        if frames.shape[0] != req.frames:
            raise RenderError(
                f"the pipeline returned {frames.shape[0]} frames for a request of {req.frames} "
                f"(model profile '{self.profile.name}'): the VAE's temporal compression does not fit 8k+1"
            )
        clip = Clip(frames=frames, fps=req.fps, audio=audio, sample_rate=self.sample_rate if audio is not None else None)
        return RenderResult(
            clip=clip,
            seconds=seconds,
            peak_vram_gb=peak,
            device=pl.device,
            dtype=pl.dtype,
            provenance=prov,
        )
