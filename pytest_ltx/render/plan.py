"""The VRAM planner: how much GPU memory a render will need, decided *before* anything is loaded.

Each component's weights are measured by building it from its ``config.json`` on torch's ``meta`` device
(parameters × dtype bytes: no memory, no weights read), together with the two figures offloading needs:
its largest repeated block (group offload keeps about two on the GPU) and its largest leaf module
(sequential offload keeps one). Activations are estimated from the requested size and frames: the text
encoder's stacked hidden states, the transformer's token activations (video tokens = latent frames ×
latent height × latent width at the VAE's 8×/32×/32× compression, audio tokens at 25 per second) at the
guidance batch, and the VAE decode (whole clip, or one spatial + temporal tile when tiling is on).

The placement ladder, from fastest to smallest: full (``.to(cuda)``) → model CPU offload → group offload →
sequential CPU offload. The planner starts at the profile's own offload setting and steps down until the
estimated peak plus a margin fits the **free** memory (``torch.cuda.mem_get_info``) and the spec's
``vram_gb_max``. Offload does not change the rendered bits (the same kernels run on the same data), so the
render cache key keeps the profile's requested placement while provenance records the planned one.

The activation coefficients are estimates (inference without autograd keeps a handful of token-sized
tensors alive at once); ``benchmarks/gpu_check.py`` reports planned vs measured peaks on a real GPU, and
every result records both.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pytest_ltx.models import Offload

__all__ = [
    "GIB",
    "ComponentSize",
    "RenderShape",
    "VramEstimate",
    "VramPlan",
    "OFFLOAD_LADDER",
    "DTYPE_BYTES",
    "measure_components",
    "component_sizes_from_dir",
    "estimate",
    "choose",
    "lower_offload",
]

GIB = 2**30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}

#: fastest → smallest; model offload keeps one component on the GPU, group one block (plus a prefetched
#: one), sequential one leaf module
OFFLOAD_LADDER: tuple[Offload, ...] = (Offload.NONE, Offload.MODEL, Offload.GROUP, Offload.SEQUENTIAL)

#: live token-sized tensors at the transformer's peak (hidden states, q/k/v, attention output, the
#: feed-forward's 4× intermediate and its activation, residual): in units of tokens × hidden
_TOKEN_TENSORS = 12.0
#: live full-resolution tensors at the VAE decoder's peak (input, conv output, norm temporary, residual)
_VAE_TENSORS = 4.0
#: CUDA context + allocator slack not counted by max_memory_allocated but taken from free memory
CONTEXT_GB = 0.75
#: default safety margin on top of the estimate (absolute GiB, and a share of the estimate)
DEFAULT_MARGIN_GB = 1.5
DEFAULT_MARGIN_SHARE = 0.10

#: the order in which LTX2Pipeline runs its components (its model_cpu_offload_seq, minus optional parts)
_PHASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("text", ("text_encoder",)),
    ("connectors", ("connectors",)),
    ("denoise", ("transformer",)),
    ("decode", ("vae",)),
    ("audio", ("audio_vae", "vocoder")),
)


@dataclass(frozen=True)
class ComponentSize:
    """One pipeline component's weight footprint at the planned dtype."""

    name: str
    params: int
    bytes: int
    #: largest element of a repeated block list (transformer blocks, decoder layers): group offload's unit
    largest_block_bytes: int
    #: bytes of parameters outside those block lists (embeddings, projections): resident under group offload
    outside_blocks_bytes: int
    #: largest leaf module: sequential offload's unit
    largest_leaf_bytes: int
    config: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: "meta" (built from the config) or "files" (safetensors sizes; the config could not be built)
    source: str = "meta"

    @property
    def gb(self) -> float:
        return self.bytes / GIB

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "gb": round(self.gb, 3), "largest_block_gb": round(self.largest_block_bytes / GIB, 3),
                "largest_leaf_gb": round(self.largest_leaf_bytes / GIB, 3), "source": self.source}


@dataclass(frozen=True)
class RenderShape:
    """What the activations depend on."""

    width: int
    height: int
    frames: int
    fps: float = 24.0
    #: sequences per transformer call: 2 with classifier-free guidance, 1 without (distilled)
    batch: int = 2
    max_sequence_length: int = 1024


@dataclass(frozen=True)
class VramEstimate:
    """Estimated peak allocated memory of one placement, and which phase sets it."""

    offload: Offload
    vae_tiling: bool
    peak_bytes: int
    phase: str
    phases: Mapping[str, int]

    @property
    def peak_gb(self) -> float:
        return self.peak_bytes / GIB

    def to_dict(self) -> dict[str, Any]:
        return {"offload": self.offload.value, "vae_tiling": self.vae_tiling, "peak_gb": round(self.peak_gb, 2),
                "phase": self.phase, "phases_gb": {k: round(v / GIB, 2) for k, v in self.phases.items()}}


@dataclass(frozen=True)
class VramPlan:
    """The chosen placement for a render and the envelope it was chosen from."""

    chosen: VramEstimate
    fits: bool
    #: memory the plan had to fit: free memory minus context, and the spec's vram_gb_max, if any
    free_gb: float | None
    limit_gb: float | None
    margin_gb: float
    vram_gb_max: float | None
    candidates: tuple[VramEstimate, ...]
    weights_gb: Mapping[str, float]
    notes: tuple[str, ...] = ()

    @property
    def planned_peak_gb(self) -> float:
        return self.chosen.peak_gb

    def meets_budget(self) -> bool:
        return self.vram_gb_max is None or self.chosen.peak_gb <= self.vram_gb_max

    def to_dict(self) -> dict[str, Any]:
        return {
            "offload": self.chosen.offload.value,
            "vae_tiling": self.chosen.vae_tiling,
            "planned_peak_gb": round(self.chosen.peak_gb, 2),
            "peak_phase": self.chosen.phase,
            "fits": self.fits,
            "free_gb": None if self.free_gb is None else round(self.free_gb, 2),
            "limit_gb": None if self.limit_gb is None else round(self.limit_gb, 2),
            "margin_gb": round(self.margin_gb, 2),
            "vram_gb_max": self.vram_gb_max,
            "weights_gb": {k: round(v, 3) for k, v in self.weights_gb.items()},
            "candidates": [c.to_dict() for c in self.candidates],
            "notes": list(self.notes),
        }

    def envelope_line(self) -> str:
        """One line for ``pytest-ltx plan``."""
        w = sum(self.weights_gb.values())
        parts = [f"{self.chosen.offload.value}{' +tiling' if self.chosen.vae_tiling else ''}",
                 f"peak ≈ {fmt_gib(self.chosen.peak_gb)} ({self.chosen.phase})", f"weights {fmt_gib(w)}"]
        if self.limit_gb is not None:
            parts.append(f"limit {fmt_gib(self.limit_gb)}")
        if not self.fits:
            parts.append("DOES NOT FIT")
        return ", ".join(parts)


def fmt_gib(x: float) -> str:
    """``71.9 GiB``, or MiB below a tenth of a GiB (the tiny model)."""
    return f"{x:.1f} GiB" if x >= 0.1 else f"{x * 1024:.1f} MiB"


# ------------------------------------------------------------------------------------- weights


def _module_sizes(module: Any, nbytes: int) -> tuple[int, int, int, int]:
    """(params, largest block bytes, bytes outside block lists, largest leaf bytes) of a meta module."""
    import torch

    params = sum(p.numel() for p in module.parameters())
    leaf = 0
    for m in module.modules():
        if next(m.children(), None) is None:
            leaf = max(leaf, sum(p.numel() for p in m.parameters(recurse=False)))
    block = 0
    in_blocks = 0
    for m in module.modules():
        if isinstance(m, torch.nn.ModuleList) and len(m) > 1:
            sizes = [sum(p.numel() for p in b.parameters()) for b in m]
            if sum(sizes) > in_blocks:  # the largest block list (nested lists: the outermost wins)
                in_blocks = sum(sizes)
                block = max(sizes)
    return params, block * nbytes, (params - in_blocks) * nbytes, leaf * nbytes


def _build_meta(library: str, class_name: str, config: Mapping[str, Any]) -> Any:
    import importlib

    import torch

    try:
        mod = importlib.import_module(library)
    except ModuleNotFoundError:  # model_index.json names pipeline-local modules by their folder ("ltx2")
        mod = importlib.import_module(f"diffusers.pipelines.{library}")
    cls = getattr(mod, class_name, None)
    if cls is None and library == "diffusers":
        cls = getattr(importlib.import_module("diffusers.pipelines.ltx2"), class_name, None)
    if cls is None:
        raise AttributeError(f"{library} has no class {class_name}")
    with torch.device("meta"):
        if library == "transformers":
            cfg_cls = cls.config_class
            cfg = cfg_cls(**{k: v for k, v in config.items() if not k.startswith("_")})
            return cls(cfg)
        return cls.from_config(dict(config))


def measure_components(components: Mapping[str, tuple[str, str, Mapping[str, Any]]],
                       dtype: str = "bfloat16") -> dict[str, ComponentSize]:
    """Build each ``name → (library, class, config)`` on the meta device and measure it at ``dtype``."""
    nbytes = DTYPE_BYTES[dtype]
    out: dict[str, ComponentSize] = {}
    for name, (library, cls_name, config) in components.items():
        module = _build_meta(library, cls_name, config)
        params, block, outside, leaf = _module_sizes(module, nbytes)
        # buffers (rope tables, filters) are small and kept in their own dtype: not counted
        out[name] = ComponentSize(name, params, params * nbytes, block, outside, leaf, dict(config))
    return out


_MODEL_COMPONENTS = ("text_encoder", "connectors", "transformer", "vae", "audio_vae", "vocoder")


def component_sizes_from_dir(model_dir: Path, dtype: str = "bfloat16") -> dict[str, ComponentSize]:
    """Measure the components of a diffusers folder from its ``model_index.json`` and configs. A
    component whose class cannot be built is measured from its safetensors sizes instead (scaled to
    ``dtype`` from the stored element size is not possible without reading headers, so stored bytes)."""
    model_dir = Path(model_dir)
    index = json.loads((model_dir / "model_index.json").read_text(encoding="utf-8"))
    comps: dict[str, tuple[str, str, dict[str, Any]]] = {}
    out: dict[str, ComponentSize] = {}
    for name in _MODEL_COMPONENTS:
        entry = index.get(name)
        if not (isinstance(entry, list) and len(entry) == 2 and entry[0]):
            continue
        cfg_path = model_dir / name / "config.json"
        try:
            config = json.loads(cfg_path.read_text(encoding="utf-8"))
            comps[name] = (entry[0], entry[1], config)
            out.update(measure_components({name: comps[name]}, dtype))
        except Exception:
            size = sum(p.stat().st_size for p in (model_dir / name).rglob("*.safetensors"))
            out[name] = ComponentSize(name, 0, size, size, size, size, {}, source="files")
    return out


# ------------------------------------------------------------------------------------- activations


def _activations(sizes: Mapping[str, ComponentSize], shape: RenderShape, tiling: bool, act_bytes: int) -> dict[str, int]:
    """Peak activation bytes per phase."""
    act: dict[str, int] = {}
    te = sizes.get("text_encoder")
    tcfg = dict(te.config.get("text_config", te.config)) if te is not None else {}
    t_hidden = int(tcfg.get("hidden_size", 3840))
    t_layers = int(tcfg.get("num_hidden_layers", 48))
    t_inter = int(tcfg.get("intermediate_size", 4 * t_hidden))
    seq = shape.max_sequence_length
    b = shape.batch
    # every hidden state is kept (the pipeline stacks them), plus one layer's MLP intermediate
    act["text"] = b * seq * (t_hidden * (t_layers + 1) + 2 * t_inter) * act_bytes
    act["connectors"] = 2 * b * seq * t_hidden * (t_layers + 1) * act_bytes

    tr = sizes.get("transformer")
    trc = dict(tr.config) if tr is not None else {}
    hv = int(trc.get("num_attention_heads", 32)) * int(trc.get("attention_head_dim", 128))
    ha = int(trc.get("audio_num_attention_heads", 32)) * int(trc.get("audio_attention_head_dim", 64))
    latent_frames = (shape.frames - 1) // 8 + 1
    video_tokens = latent_frames * math.ceil(shape.height / 32) * math.ceil(shape.width / 32)
    audio_tokens = math.ceil(shape.frames / shape.fps * 16000 / 160 / 4)
    act["denoise"] = int(b * _TOKEN_TENSORS * (video_tokens * hv + audio_tokens * ha) * act_bytes
                         + b * seq * (hv + ha) * act_bytes)  # the text context both attend to

    vae = sizes.get("vae")
    vcfg = dict(vae.config) if vae is not None else {}
    ch0 = int((vcfg.get("decoder_block_out_channels") or vcfg.get("block_out_channels") or [128])[0])
    patch = int(vcfg.get("patch_size", 4))
    h, w, f = shape.height, shape.width, shape.frames
    if tiling:  # diffusers' LTX-2 VAE tiles: 512×512 pixels, 16 frames (stride 448 / 8)
        h, w, f = min(h, 512), min(w, 512), min(f, 16 + 1)
    full_res = ch0 * f * math.ceil(h / patch) * math.ceil(w / patch)
    out_video = 3 * shape.frames * shape.height * shape.width * 4  # the decoded clip, float32
    act["decode"] = int(_VAE_TENSORS * full_res * act_bytes + out_video)
    seconds = shape.frames / shape.fps
    act["audio"] = int(2 * 48000 * seconds * 4 * 16)  # waveform-rate tensors of the vocoder, float32
    return act


def estimate(sizes: Mapping[str, ComponentSize], shape: RenderShape, offload: Offload, vae_tiling: bool,
             dtype: str = "bfloat16") -> VramEstimate:
    """Estimated peak allocated memory of ``shape`` under one placement."""
    act = _activations(sizes, shape, vae_tiling, DTYPE_BYTES[dtype])
    phases: dict[str, int] = {}
    total = sum(c.bytes for c in sizes.values())
    for phase, names in _PHASES:
        comps = [sizes[n] for n in names if n in sizes]
        if offload is Offload.NONE:
            resident = total
        elif offload is Offload.MODEL:
            resident = sum(c.bytes for c in comps)
        elif offload is Offload.GROUP:
            resident = sum(c.outside_blocks_bytes + 2 * c.largest_block_bytes for c in comps)
        else:
            resident = max((c.largest_leaf_bytes for c in comps), default=0)
        phases[phase] = resident + act.get(phase, 0)
    phase = max(phases, key=lambda k: phases[k])
    return VramEstimate(offload, vae_tiling, phases[phase], phase, phases)


def lower_offload(offload: Offload) -> Offload | None:
    """The next rung down the ladder (None below sequential)."""
    i = OFFLOAD_LADDER.index(offload)
    return OFFLOAD_LADDER[i + 1] if i + 1 < len(OFFLOAD_LADDER) else None


def choose(sizes: Mapping[str, ComponentSize], shape: RenderShape, *, start: Offload = Offload.NONE,
           vae_tiling: bool | None = True, free_gb: float | None = None, vram_gb_max: float | None = None,
           margin_gb: float = DEFAULT_MARGIN_GB, margin_share: float = DEFAULT_MARGIN_SHARE,
           dtype: str = "bfloat16") -> VramPlan:
    """The fastest placement at or below ``start`` whose estimate plus margin fits.

    ``free_gb`` is the device's free memory (None: unknown, e.g. planning on a CPU machine → the
    ``start`` placement). ``vae_tiling=None`` lets the planner turn tiling on only when needed; True or
    False is kept as long as it fits (tiling changes the decoded bits, so it is a last resort when the
    profile asked for it off, and said so in the notes).
    """
    notes: list[str] = []
    limit: float | None = None
    if free_gb is not None:
        limit = max(0.0, free_gb - CONTEXT_GB)
    if vram_gb_max is not None:
        limit = vram_gb_max if limit is None else min(limit, vram_gb_max)
    rungs = OFFLOAD_LADDER[OFFLOAD_LADDER.index(start):]
    if vae_tiling is None:  # the planner decides: untiled when it fits on that rung
        order = [(o, t) for o in rungs for t in (False, True)]
    elif vae_tiling:
        order = [(o, True) for o in rungs]
    else:  # asked off: every rung untiled first (offload keeps the bits, tiling does not)
        order = [(o, False) for o in rungs] + [(o, True) for o in rungs]
    candidates: list[VramEstimate] = []
    chosen: VramEstimate | None = None
    for off, tiling in order:
        est = estimate(sizes, shape, off, tiling, dtype)
        candidates.append(est)
        need = est.peak_gb * (1 + margin_share) + margin_gb
        if chosen is None and (limit is None or need <= limit):
            chosen = est
    fits = chosen is not None
    if chosen is None:  # nothing fits: the smallest, flagged
        chosen = min(candidates, key=lambda e: e.peak_bytes)
        notes.append(f"no placement fits {limit:.1f} GiB: the smallest needs ≈ {chosen.peak_gb:.1f} GiB "
                     f"plus a {margin_gb:g} GiB + {margin_share:.0%} margin")
    if chosen.offload is not start:
        notes.append(f"offload '{start.value}' → '{chosen.offload.value}': the estimate "
                     f"({estimate(sizes, shape, start, chosen.vae_tiling, dtype).peak_gb:.1f} GiB) does not fit "
                     f"{limit:.1f} GiB")
    if vae_tiling is False and chosen.vae_tiling:
        notes.append("VAE tiling turned on although the profile asked for it off: untiled decode does not fit "
                     "(tiling changes the decoded pixels)")
    weights = {k: v.gb for k, v in sizes.items()}
    return VramPlan(chosen=chosen, fits=fits, free_gb=free_gb, limit_gb=limit,
                    margin_gb=margin_gb, vram_gb_max=vram_gb_max, candidates=tuple(candidates),
                    weights_gb=weights, notes=tuple(notes))


_SIZES: dict[tuple[str, str], dict[str, ComponentSize]] = {}


def sizes_for(model_dir: Path, dtype: str) -> dict[str, ComponentSize]:
    """:func:`component_sizes_from_dir`, memoized per folder and dtype (a meta build takes seconds)."""
    key = (str(Path(model_dir).resolve()), dtype)
    if key not in _SIZES:
        _SIZES[key] = component_sizes_from_dir(Path(model_dir), dtype)
    return _SIZES[key]


def shape_of(req: Any, guidance_batch: int | None = None, max_sequence_length: int | None = None) -> RenderShape:
    """The activation shape of a render request (CFG batch 2 unless guidance is off)."""
    scale = (req.guidance or {}).get("scale")
    batch = guidance_batch if guidance_batch is not None else (1 if scale is not None and float(scale) <= 1.0 else 2)
    return RenderShape(width=req.width, height=req.height, frames=req.frames, fps=req.fps, batch=batch,
                       max_sequence_length=max_sequence_length or 1024)
