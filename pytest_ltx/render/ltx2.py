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
from pytest_ltx.models import ModelProfile, Offload, identity, resolve_model_dir
from pytest_ltx.render.base import RenderError, RenderRequest, RenderResult
from pytest_ltx.render.guard import silence_progress_bars

__all__ = [
    "Placement",
    "plan_placement",
    "apply_placement",
    "RenderWarning",
    "plan_for",
    "exact_zero_kwargs",
    "prepare_image",
    "call_arguments",
    "config_digest",
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


class RenderWarning(UserWarning):
    """Something about a render the user should know (untrained frame rate, cropped conditioning image,
    a guidance pass dropped); it is also recorded in the render manifest's ``notes``."""


class _ExactZero(float):
    """0.0 that is truthy. diffusers' LTX2Pipeline does ``audio_x = audio_x or x``, which turns an audio
    knob set to 0 into the video value; this float survives the ``or`` and computes as 0.0."""

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "0.0"


_AUDIO_OR = ("audio_guidance_scale", "audio_stg_scale", "audio_modality_scale", "audio_guidance_rescale")


def exact_zero_kwargs(kw: Mapping[str, Any]) -> dict[str, Any]:
    """``kw`` with audio knobs that are 0 wrapped so the pipeline keeps them 0 (see :class:`_ExactZero`)."""
    out = dict(kw)
    for k in _AUDIO_OR:
        if k in out and out[k] == 0:
            out[k] = _ExactZero(0.0)
    return out


def plan_for(profile: ModelProfile, req: RenderRequest, variant: str, arch: Any) -> Any:
    """The recipe plan for ``req`` on ``profile`` (a checkpoint of ``variant`` with transformer ``arch``);
    recipe problems become :class:`RenderError` naming the profile."""
    from pytest_ltx.render.recipes import RecipeError, plan_render

    dl = profile.distilled_lora
    try:
        return plan_render(
            req, variant=variant, arch=arch, recipe=profile.recipe, distilled_weights=profile.distilled,
            profile_steps=profile.steps, profile_stg_blocks=profile.stg_blocks,
            max_sequence_length=profile.max_sequence_length,
            lora_adapters=tuple((r.adapter, r.scale) for r in profile.loras),
            distilled_lora=None if dl is None else (dl.adapter, dl.scale),
            has_upsampler=profile.upsampler is not None,
        )
    except RecipeError as e:
        raise RenderError(f"model profile '{profile.name}': {e}") from None


def prepare_image(path: Path, width: int, height: int) -> tuple[Any, str | None]:
    """The conditioning image resized to cover ``width``×``height`` (aspect kept, bilinear) and
    centre-cropped to it, like the reference's ``resize_and_center_crop``; plus a note when the aspect
    ratios differ by more than 1% (part of the image is cut)."""
    import math

    import numpy as np
    import torch
    from PIL import Image

    from pytest_ltx.limits import LimitError
    from pytest_ltx.media import ClipReadError, read_image_rgb

    try:
        arr = read_image_rgb(path).astype(np.float32)
    except ClipReadError as e:
        raise RenderError(f"conditioning image {path} cannot be read ({e.reason})") from None
    except LimitError as e:
        raise RenderError(f"conditioning image {e}") from None
    src_h, src_w = arr.shape[:2]
    t = torch.from_numpy(arr).permute(2, 0, 1)[None]
    scale = max(height / src_h, width / src_w)
    new_h, new_w = math.ceil(src_h * scale), math.ceil(src_w * scale)
    t = torch.nn.functional.interpolate(t, size=(new_h, new_w), mode="bilinear", align_corners=False)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    t = t[:, :, top:top + height, left:left + width]
    out = t[0].permute(1, 2, 0).clamp(0, 255).round().to(torch.uint8).numpy()
    note = None
    src_ar, dst_ar = src_w / src_h, width / height
    if abs(src_ar / dst_ar - 1) > 0.01:
        cut = "width" if src_ar > dst_ar else "height"
        frac = 1 - (dst_ar / src_ar if src_ar > dst_ar else src_ar / dst_ar)
        note = (f"conditioning image {path.name} is {src_w}x{src_h} (aspect {src_ar:.3f}) but the clip is "
                f"{width}x{height} (aspect {dst_ar:.3f}): centre-cropped, {frac:.0%} of its {cut} cut")
    return Image.fromarray(out), note


def _check_finite(t: Any, stage: str, what: str, req: RenderRequest) -> None:
    """NaN/inf anywhere is an error naming the stage, never black frames or silence."""
    import torch

    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        n = int(bad.sum())
        raise RenderError(
            f"stage '{stage}' produced {n} non-finite value(s) (NaN/inf) of {t.numel()} in the {what} "
            f"({req.width}x{req.height}x{req.frames}, seed {req.seed}). Typical causes: float16 overflow "
            "(use bfloat16), a LoRA at too high a scale, weights that did not load completely.")


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return float(v) if isinstance(v, _ExactZero) else v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))}
    return repr(v)


def config_digest(config: Mapping[str, Any]) -> str:
    """sha256 (16 hex) of a component's config, canonical JSON (key order and private keys ignored)."""
    import hashlib
    import json

    doc = {k: _jsonable(v) for k, v in config.items() if not str(k).startswith("_")}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


#: ``__call__`` parameters that are tensors, callbacks or outputs: not settings
_NOT_SETTINGS = frozenset({
    "self", "prompt", "negative_prompt", "prompt_embeds", "prompt_attention_mask", "negative_prompt_embeds",
    "negative_prompt_attention_mask", "latents", "audio_latents", "generator", "image", "output_type",
    "return_dict", "callback_on_step_end", "callback_on_step_end_tensor_inputs", "attention_kwargs",
    "prompt_enhancement_kwargs",
})


def call_arguments(fn: Any, passed: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting ``fn`` runs with: what is passed, and the signature's default for the rest."""
    import inspect

    out: dict[str, Any] = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name in _NOT_SETTINGS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        v = passed[name] if name in passed else (None if p.default is inspect.Parameter.empty else p.default)
        out[name] = _jsonable(v)
    return out


def library_versions() -> dict[str, str | None]:
    """Versions that change render bits; part of every provenance record and cache key."""
    from pytest_ltx.versions import package_versions

    return package_versions(("torch", "diffusers", "transformers", "peft", "pytest-ltx"))


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


#: prompt embeddings kept per renderer: a real LTX-2 prompt embedding (Gemma hidden states of every layer,
#: padded to 1024 tokens) is ~0.4 GB in bf16, so the cache is bounded by bytes; the two most recent
#: entries (a prompt and the negative prompt) always stay
_EMBED_CACHE_BYTES = 2 * 2**30
#: final latents kept for ``render(..., reuse_latents=True)`` (a few MB each at 768×512×121)
_KEPT_LATENTS = 4


class LTX2Renderer:
    """A loaded LTX-2 pipeline for one profile. Construction loads the weights (raising
    :class:`RenderError` with a how-to-fix message if it cannot); ``render`` is then cheap to call.

    The checkpoint's LTX-2 generation is detected from its configs (a contradicting declared variant is
    an error); each request becomes a recipe plan (``render/recipes.py``) whose stages are run with
    ``output_type="latent"`` and decoded here, so every stage's latents and the decoded frames/audio are
    checked for NaN/inf. Prompt embeddings are cached per (text encoder, text, padding length): a seed
    matrix encodes each prompt and the shared negative prompt once. ``stats`` counts text encodes, VAE
    decodes and transformer calls/passes for this renderer.
    """

    def __init__(self, profile: ModelProfile) -> None:
        import collections

        import torch

        from pytest_ltx.models import ModelKind
        from pytest_ltx.render.variant import VariantError, check_declared, detect_variant

        self.profile = profile
        self._lock = threading.Lock()
        self.model_dir = resolve_model_dir(profile)
        # the profile's identity (LoRAs and upsampler included): the same fingerprint the model key holds
        self.fingerprint = identity(profile).fingerprint
        try:
            self.detection = detect_variant(self.model_dir)
            self.variant = check_declared(profile.variant, self.detection, f"model profile '{profile.name}'")
        except VariantError as e:
            raise RenderError(str(e)) from None
        try:
            self.extras = profile.extras_identity()
        except FileNotFoundError as e:
            raise RenderError(f"model profile '{profile.name}': {e}") from None
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
        self._monitor: Any = None
        if profile.kind is not ModelKind.TINY and profile.device == "auto" and not self.placement.is_cuda:
            raise RenderError(
                f"model profile '{profile.name}' has device = \"auto\" and no CUDA device is visible, so its "
                f"real checkpoint would render in {self.placement.dtype} on the CPU (hours per clip, and a "
                "budget that measures the wrong machine). Run on a GPU runner, or set device = \"cpu\" in the "
                "profile if a CPU render is really meant.")
        self.versions = library_versions()
        self.notes: list[str] = []
        self.stats: collections.Counter[str] = collections.Counter()
        self._embeds: collections.OrderedDict[tuple, tuple[Any, Any]] = collections.OrderedDict()
        self._latents: collections.OrderedDict[str, tuple[Any, Any]] = collections.OrderedDict()
        self._pipe = self._load()
        self._i2v: Any = None
        self._upsampler: Any = None
        self._active_adapters: tuple[tuple[str, float], ...] | None = None

    # -- loading ------------------------------------------------------------------------------------

    def _torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.placement.dtype)

    def _load(self) -> Any:
        from diffusers import LTX2Pipeline

        silence_progress_bars()
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
        self._exact_sigmas(pipe)
        self._load_loras(pipe)
        self._count_transformer(pipe)
        if not self.placement.is_cuda:  # a CUDA pipeline is placed by prepare(), once the request is known
            self._place(pipe)
            self._applied = self.placement
        return pipe

    def _exact_sigmas(self, pipe: Any) -> None:
        """Recipes pass the exact sigma schedule (the reference dev schedule is already shifted and
        stretched; the distilled ones are trained values). A checkpoint scheduler that would shift
        them again is replaced by the same scheduler with shifting off."""
        cfg = dict(pipe.scheduler.config)
        changes = {k: v for k, v in (("use_dynamic_shifting", False), ("shift", 1.0), ("shift_terminal", None),
                                     ("use_karras_sigmas", False), ("use_exponential_sigmas", False),
                                     ("use_beta_sigmas", False)) if cfg.get(k, v) != v}
        if changes:
            pipe.scheduler = type(pipe.scheduler).from_config(cfg, **changes)
            self.notes.append("scheduler shifting turned off so the recipe's sigmas are used as given "
                              f"(was {', '.join(f'{k}={cfg.get(k)!r}' for k in sorted(changes))})")

    def _load_loras(self, pipe: Any) -> None:
        refs = list(self.profile.loras) + ([self.profile.distilled_lora] if self.profile.distilled_lora else [])
        import warnings

        for ref in refs:
            try:
                with warnings.catch_warnings():  # peft warns that a second adapter is a second adapter
                    warnings.filterwarnings("ignore", message=".*Already found a `peft_config`.*")
                    pipe.load_lora_weights(str(ref.path), adapter_name=ref.adapter)
            except Exception as e:
                raise RenderError(
                    f"model profile '{self.profile.name}': LoRA {ref.path} could not be loaded "
                    f"({e.__class__.__name__}: {e}). It must be a LoRA for this LTX-2 transformer, in diffusers/"
                    "peft or Lightricks key format.") from e

    def _count_transformer(self, pipe: Any) -> None:
        def hook(_mod: Any, args: Any, kwargs: Any) -> None:
            hs = kwargs.get("hidden_states", args[0] if args else None)
            self.stats["transformer_calls"] += 1
            self.stats["transformer_passes"] += int(hs.shape[0]) if hs is not None else 1

        pipe.transformer.register_forward_pre_hook(hook, with_kwargs=True)

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

    def _upsample_pipe(self) -> Any:
        if self._upsampler is None:
            from diffusers import LTX2LatentUpsamplePipeline
            from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

            assert self.profile.upsampler is not None
            try:
                model = LTX2LatentUpsamplerModel.from_pretrained(
                    str(self.profile.upsampler), torch_dtype=self._torch_dtype(), local_files_only=True)
            except Exception as e:
                raise RenderError(
                    f"model profile '{self.profile.name}': latent upsampler {self.profile.upsampler} could not "
                    f"be loaded ({e.__class__.__name__}: {e}); it must be a diffusers LTX2LatentUpsamplerModel "
                    "folder (config.json + weights), e.g. the checkpoint's latent_upsampler/.") from e
            up = LTX2LatentUpsamplePipeline(vae=self._pipe.vae, latent_upsampler=model)
            if self.placement.offload is not Offload.NONE:
                up.enable_model_cpu_offload(gpu_id=int(self.placement.device.split(":", 1)[1])
                                            if ":" in self.placement.device else None)
            else:
                model.to(self.placement.device)
            up.set_progress_bar_config(disable=True)
            self._upsampler = up
        return self._upsampler

    def _set_adapters(self, pipe: Any, adapters: tuple[tuple[str, float], ...]) -> None:
        if not (self.profile.loras or self.profile.distilled_lora) or adapters == self._active_adapters:
            return
        if adapters:
            pipe.enable_lora()
            pipe.set_adapters([a for a, _ in adapters], [w for _, w in adapters])
        else:
            pipe.disable_lora()
        self._active_adapters = adapters

    # -- planning, provenance -----------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return int(self._pipe.vocoder.config.output_sampling_rate)

    @property
    def pipeline(self) -> Any:
        """The loaded text-to-video pipeline (for benchmarks and diagnostics)."""
        return self._pipe

    def plan(self, req: RenderRequest) -> Any:
        return plan_for(self.profile, req, self.variant, self.detection.architecture)

    def manifest(self, req: RenderRequest, plan: Any = None, image_note: str | None = None) -> dict[str, Any]:
        """The diffable description of how ``req`` is rendered: pipeline classes, each component's class
        and config digest, the scheduler config, LoRAs/upsampler identity, every argument of every stage
        after defaults (sigma schedule included), and notes. No paths, no prompt text."""
        import hashlib

        plan = plan or self.plan(req)
        pipe = self._pipe if req.image is None else self._image_pipe()
        comps: dict[str, Any] = {}
        for name, mod in sorted(pipe.components.items()):
            if mod is None:
                continue
            entry: dict[str, Any] = {"class": type(mod).__name__}
            cfg = getattr(mod, "config", None)
            if isinstance(cfg, Mapping):
                entry["config"] = config_digest(cfg)
            comps[name] = entry
        stages = []
        for st in plan.stages:
            kw = plan.stage_kwargs(st, image=req.image is not None)
            stages.append({
                "name": st.name,
                "pipeline": type(pipe).__name__,
                "args": call_arguments(type(pipe).__call__, kw),
                "adapters": [list(a) for a in st.adapters],
                "passes_per_step": st.passes_per_step,
                "transformer_passes": st.transformer_passes,
            })
        neg = plan.negative_prompt
        out: dict[str, Any] = {
            "pipeline": type(pipe).__name__,
            "versions": {k: v for k, v in self.versions.items() if k != "pytest-ltx"},
            "variant": self.variant,
            "recipe": plan.recipe.value,
            "components": comps,
            "scheduler": _jsonable({k: v for k, v in dict(pipe.scheduler.config).items() if not k.startswith("_")}),
            "extras": self.extras,
            "stages": stages,
            "negative_prompt": None if neg is None else "sha256:" + hashlib.sha256(neg.encode()).hexdigest()[:16],
            "decode": {"decode_timestep": 0.0, "vae_tiling": self.placement.vae_tiling},
            "transformer_passes": plan.transformer_passes,
            "notes": [*self.notes, *plan.notes, *([image_note] if image_note else [])],
        }
        if plan.upsample:
            out["upsampler"] = {"class": "LTX2LatentUpsamplePipeline", **self.extras.get("upsampler", {})}
        return out

    def provenance(self, req: RenderRequest) -> dict[str, Any]:
        """Everything that determines the rendered bits, JSON-ready (the manifest included)."""
        plan = self.plan(req)
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
                "variant": self.variant,
                "fingerprint": self.fingerprint,
            },
            "request": req.to_dict(),
            "image": image,
            "plan": plan.to_dict(),
            "device": self.placement.device,
            "dtype": self.placement.dtype,
            "placement": self.placement.to_dict(),
            "generator": "cpu",
            "versions": dict(self.versions),
        }

    # -- rendering ----------------------------------------------------------------------------------

    def _embedding(self, pipe: Any, text: str, max_len: int) -> tuple[Any, Any]:
        """Prompt embeddings of ``text``, cached by (text encoder identity, text, padding length)."""
        import torch

        key = (self.fingerprint, text, max_len)
        hit = self._embeds.get(key)
        if hit is not None:
            self._embeds.move_to_end(key)
            return hit
        with torch.no_grad():
            pe, pm, _, _ = pipe.encode_prompt(prompt=text, negative_prompt=None, do_classifier_free_guidance=False,
                                              max_sequence_length=max_len, device=pipe._execution_device)
        self.stats["encode"] += 1
        self._embeds[key] = (pe, pm)

        def size(e: tuple[Any, Any]) -> int:
            return sum(t.numel() * t.element_size() for t in e)

        while len(self._embeds) > 2 and sum(size(e) for e in self._embeds.values()) > _EMBED_CACHE_BYTES:
            self._embeds.popitem(last=False)
        return pe, pm

    def _run_stage(self, pipe: Any, plan: Any, stage: Any, req: RenderRequest, gen: Any, *,
                   image: Any = None, latents: Any = None, audio_latents: Any = None) -> tuple[Any, Any]:
        kw = exact_zero_kwargs(plan.stage_kwargs(stage, image=image is not None))
        max_len = kw.get("max_sequence_length", 1024)
        pe, pm = self._embedding(pipe, req.prompt, max_len)
        kw.update(prompt_embeds=pe, prompt_attention_mask=pm)
        if stage.cfg:
            npe, npm = self._embedding(pipe, plan.negative_prompt or "", max_len)
            kw.update(negative_prompt_embeds=npe, negative_prompt_attention_mask=npm)
        if image is not None:
            kw["image"] = image
        if latents is not None:
            kw.update(latents=latents, audio_latents=audio_latents)
        self._set_adapters(pipe, stage.adapters)
        if self._monitor is not None:  # timeout and terminal progress, checked between steps
            kw["callback_on_step_end"] = self._monitor
        video, audio = pipe(**kw, generator=gen, output_type="latent", return_dict=False)
        _check_finite(video, stage.name, "video latents", req)
        _check_finite(audio, stage.name, "audio latents", req)
        return video, audio

    def decode(self, video_latents: Any, audio_latents: Any, req: RenderRequest) -> tuple[Any, Any]:
        """Final (denormalized) latents → float frames ``[F,H,W,3]`` in [0,1] and audio ``[C,S]``, both
        checked for NaN/inf. What the pipeline does for ``output_type="np"`` with decode timestep 0."""
        import torch

        pipe = self._pipe
        with torch.no_grad():
            timestep = None
            if pipe.vae.config.timestep_conditioning:
                timestep = torch.zeros(video_latents.shape[0], device=video_latents.device, dtype=video_latents.dtype)
            video = pipe.vae.decode(video_latents.to(pipe.vae.dtype), timestep, return_dict=False)[0]
            _check_finite(video, "decode", "decoded video", req)
            frames = pipe.video_processor.postprocess_video(video, output_type="np")
            mel = pipe.audio_vae.decode(audio_latents.to(pipe.audio_vae.dtype), return_dict=False)[0]
            audio = pipe.vocoder(mel)
            _check_finite(audio, "decode", "decoded audio", req)
        self.stats["decode"] += 1
        return frames, audio

    def _latent_key(self, req: RenderRequest, manifest: Mapping[str, Any]) -> str:
        """What determines the final latents: the request and the manifest without its decode part."""
        import hashlib
        import json

        body = {"request": req.to_dict(), "image": None if req.image is None else sha256_file(Path(req.image)),
                "manifest": {k: v for k, v in manifest.items() if k not in ("decode", "notes")}}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()

    def render(self, req: RenderRequest, *, reuse_latents: bool = False, guard: Any = None) -> RenderResult:
        """Render ``req`` with a fixed-seed CPU generator (same noise on every device).

        With ``reuse_latents``, final latents kept from an earlier render of the same request and
        denoising manifest (the last few) are decoded again instead of re-running the transformer: for a
        change that only affects decoding (VAE tiling). Off by default, so a determinism check really
        renders twice.

        ``guard`` (:class:`~pytest_ltx.render.guard.RenderGuard`) sets a timeout, a progress label and the
        spec's VRAM budget. On CUDA the VRAM planner places the pipeline for this request first; out of
        memory — while placing or rendering — it is freed and retried once one rung down the offload
        ladder, and every attempt is recorded in ``guard.attempts`` and the provenance."""
        import warnings

        import numpy as np
        import torch

        from pytest_ltx.media import Clip
        from pytest_ltx.render.guard import Attempt, ErrorKind, RenderGuard, StepMonitor, classify, free_cuda
        from pytest_ltx.render.plan import lower_offload

        guard = guard if guard is not None else RenderGuard()

        plan = self.plan(req)
        images: list[Any] = []
        image_note = None
        if req.image is not None:
            p = Path(req.image)
            if not p.is_file():
                raise RenderError(f"conditioning image {p} does not exist")
            for st in plan.stages:
                im, note = prepare_image(p, st.width, st.height)
                images.append(im)
                image_note = image_note or note
        manifest = self.manifest(req, plan, image_note)
        for note in manifest["notes"]:
            warnings.warn(RenderWarning(f"model profile '{self.profile.name}': {note}"), stacklevel=2)

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
                    pipe = self._pipe if req.image is None else self._image_pipe()
                    if pl.threads:
                        torch.set_num_threads(pl.threads)
                    dev = torch.device(pl.device)
                    if pl.is_cuda:
                        torch.cuda.reset_peak_memory_stats(dev)
                    gen = torch.Generator("cpu").manual_seed(req.seed)
                    self._monitor = StepMonitor(guard, req.steps or 0)
                    t0 = time.perf_counter()
                    base = plan.stages[0]
                    lkey = self._latent_key(req, manifest)
                    kept = self._latents.get(lkey) if reuse_latents else None
                    if kept is not None:
                        video, audio = kept
                        self.stats["latents_reused"] += 1
                    else:
                        video, audio = self._run_stage(pipe, plan, base, req, gen,
                                                       image=images[0] if images else None)
                    if plan.upsample and kept is None:
                        up = self._upsample_pipe()(latents=video, latents_normalized=False, height=base.height,
                                                   width=base.width, num_frames=req.frames, generator=gen,
                                                   output_type="latent", return_dict=False)[0]
                        _check_finite(up, "upsample", "upsampled video latents", req)
                        refine = plan.stages[1]
                        # the refinement re-noises video and audio but, like the reference, keeps the base audio
                        video, _ = self._run_stage(pipe, plan, refine, req, gen,
                                                   image=images[1] if images else None,
                                                   latents=up, audio_latents=audio)
                    self._latents[lkey] = (video, audio)
                    self._latents.move_to_end(lkey)
                    while len(self._latents) > _KEPT_LATENTS:
                        self._latents.popitem(last=False)
                    frames_f, audio_t = self.decode(video, audio, req)
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
                        video = audio = None
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
                    self._monitor = None
                    if pl.threads:
                        torch.set_num_threads(old_threads)
            # the placement really used (the planner may have offloaded), the plan and every attempt
            prov: dict[str, Any] = {**self.provenance(req), "manifest": manifest,
                    "attempts": [a.to_dict() for a in guard.attempts]}
            if getattr(self, "vram_plan", None) is not None:
                prov["vram_plan"] = self.vram_plan.to_dict()
            gpu = getattr(self, "gpu", None)
            if gpu is not None:
                prov["gpu"] = dict(gpu)

        frames = _to_uint8(frames_f[0])
        audio_np = audio_t[0].float().cpu().numpy().astype(np.float32, copy=False)
        if frames.shape[0] != req.frames:
            raise RenderError(
                f"the pipeline returned {frames.shape[0]} frames for a request of {req.frames} "
                f"(model profile '{self.profile.name}'): the VAE's temporal compression does not fit 8k+1"
            )
        clip = Clip(frames=frames, fps=req.fps, audio=audio_np, sample_rate=self.sample_rate)
        return RenderResult(
            clip=clip,
            seconds=seconds,
            peak_vram_gb=peak,
            device=pl.device,
            dtype=pl.dtype,
            provenance=prov,
        )
