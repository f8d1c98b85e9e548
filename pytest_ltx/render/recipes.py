"""Render recipes: how Lightricks recommends rendering each LTX-2 generation, as pipeline arguments.

A recipe turns a :class:`~pytest_ltx.render.base.RenderRequest` into one or two pipeline calls
(*stages*) with every argument spelled out, including the sigma schedule, so a render is reproducible
from its manifest and two manifests can be diffed. Three recipes:

``dev``
    One stage at full size on dev weights: the reference step count (40 on LTX-2.0, 30 on 2.3/2.5), the
    reference sigma schedule (``LTX2Scheduler``: shift 2.05, stretched to a 0.1 terminal), and the full
    multimodal guidance stack (CFG video 3 / audio 7, STG 1, modality 3, rescale 0.7).
``distilled``
    One stage on distilled weights (or dev weights plus the distilled LoRA): the fixed distilled sigma
    schedule diffusers exports (8 steps) and no guidance: one transformer pass per step.
``two-stage``
    Lightricks' quality recipe: the base stage at half width and height (``dev`` settings on dev weights,
    the distilled schedule on distilled weights), the latent upsampler ×2, then a guidance-free refinement
    at full size over the stage-2 distilled sigmas (with the distilled LoRA on dev weights). The audio is
    the base stage's, as in the reference (its stage 2 refines video only).

Reference values come from ``ltx_pipelines/utils/constants.py`` (``LTX_2_PARAMS``, ``LTX_2_3_PARAMS``,
``LTX_2_4_PARAMS`` — "2.4" is the internal name of LTX-2.5); the distilled schedules are diffusers'
``DISTILLED_SIGMA_VALUES`` / ``STAGE_2_DISTILLED_SIGMA_VALUES``. No guidance pass is planned that cannot
change the output: STG on a transformer without perturbable attention (diffusers' LTX-2.0) or on blocks
it does not have is dropped (recipe default) or refused (asked for explicitly).

Pure Python (diffusers' constants are imported when a plan is made, not at import).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Mapping

from pytest_ltx.render.variant import Architecture

__all__ = [
    "Recipe",
    "ModalityGuidance",
    "ReferenceSettings",
    "REFERENCE",
    "TRAINED_FPS",
    "reference_sigmas",
    "distilled_sigmas",
    "stage_2_sigmas",
    "default_negative_prompt",
    "Stage",
    "RenderPlan",
    "RecipeError",
    "plan_render",
    "recipe_support",
    "resolve_recipe",
]


class RecipeError(ValueError):
    """A request/profile combination the chosen recipe cannot render; the message says how to fix it."""


class Recipe(str, Enum):
    DEV = "dev"
    DISTILLED = "distilled"
    TWO_STAGE = "two-stage"


@dataclass(frozen=True)
class ModalityGuidance:
    """The four guidance knobs of one modality, in diffusers' terms (off = cfg 1, stg 0, modality 1)."""

    cfg: float
    stg: float
    rescale: float
    modality: float

    def to_dict(self) -> dict[str, float]:
        return {"cfg": self.cfg, "stg": self.stg, "rescale": self.rescale, "modality": self.modality}


OFF = ModalityGuidance(cfg=1.0, stg=0.0, rescale=0.0, modality=1.0)


@dataclass(frozen=True)
class ReferenceSettings:
    """Lightricks' reference defaults for one generation (``PipelineParams`` in ltx-pipelines)."""

    variant: str
    steps: int
    video: ModalityGuidance
    audio: ModalityGuidance
    stg_blocks: tuple[int, ...]
    #: cross-attention modulation from the timestep (diffusers' ``use_cross_timestep``): 2.3 on
    use_cross_timestep: bool
    #: H.264 CRF the conditioning image is re-compressed at (what the model was trained on)
    image_crf: int
    source: str


_VIDEO = ModalityGuidance(cfg=3.0, stg=1.0, rescale=0.7, modality=3.0)
_AUDIO = ModalityGuidance(cfg=7.0, stg=1.0, rescale=0.7, modality=3.0)

REFERENCE: dict[str, ReferenceSettings] = {
    "2.0": ReferenceSettings("2.0", 40, _VIDEO, _AUDIO, (29,), False, 33, "ltx_pipelines LTX_2_PARAMS"),
    "2.3": ReferenceSettings("2.3", 30, _VIDEO, _AUDIO, (28,), True, 33, "ltx_pipelines LTX_2_3_PARAMS"),
    "2.5": ReferenceSettings("2.5", 30, _VIDEO, _AUDIO, (28,), True, 18, "ltx_pipelines LTX_2_4_PARAMS (= LTX-2.5)"),
}

#: frame rates the transformer's RoPE time base was trained around (diffusers ltx2/utils.py)
TRAINED_FPS: tuple[float, ...] = (24.0, 25.0, 30.0, 60.0)


def reference_sigmas(steps: int, *, max_shift: float = 2.05, base_shift: float = 0.95,
                     terminal: float = 0.1, tokens: int = 4096) -> list[float]:
    """The reference dev schedule (``ltx_core`` ``LTX2Scheduler.execute(steps)``): ``linspace(1, 0, steps+1)``
    shifted with the token-count shift (the reference passes no latent, so 4096 tokens: shift = 2.05)
    and stretched so the last non-zero sigma is ``terminal``. Returns the ``steps`` non-zero sigmas (the
    diffusers scheduler appends the final 0)."""
    if steps < 1:
        raise RecipeError(f"steps must be >= 1, got {steps}")
    mm = (max_shift - base_shift) / (4096 - 1024)
    shift = tokens * mm + (base_shift - mm * 1024)
    raw = [1.0 - i / steps for i in range(steps)]  # the non-zero part of linspace(1, 0, steps + 1)
    e = math.exp(shift)
    shifted = [e / (e + (1.0 / s - 1.0)) for s in raw]
    scale = (1.0 - shifted[-1]) / (1.0 - terminal)
    if scale == 0:  # one step: nothing to stretch (the reference divides 0 by 0 here)
        return shifted
    return [float(1.0 - (1.0 - s) / scale) for s in shifted]


def distilled_sigmas() -> list[float]:
    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES

    return [float(s) for s in DISTILLED_SIGMA_VALUES]


def stage_2_sigmas() -> list[float]:
    from diffusers.pipelines.ltx2.utils import STAGE_2_DISTILLED_SIGMA_VALUES

    return [float(s) for s in STAGE_2_DISTILLED_SIGMA_VALUES]


def default_negative_prompt() -> str:
    """The upstream default negative prompt, as diffusers exports it."""
    from diffusers.pipelines.ltx2.utils import DEFAULT_NEGATIVE_PROMPT

    return str(DEFAULT_NEGATIVE_PROMPT)


@dataclass(frozen=True)
class Stage:
    """One pipeline call of a recipe."""

    name: str
    width: int
    height: int
    sigmas: tuple[float, ...]
    video: ModalityGuidance
    audio: ModalityGuidance
    stg_blocks: tuple[int, ...]
    #: noise mixed into supplied latents (the refinement stage re-noises the upsampled base to sigma[0])
    noise_scale: float = 0.0
    #: LoRA adapters active in this stage, (adapter name, scale)
    adapters: tuple[tuple[str, float], ...] = ()

    @property
    def steps(self) -> int:
        return len(self.sigmas)

    @property
    def cfg(self) -> bool:
        return self.video.cfg > 1.0 or self.audio.cfg > 1.0

    @property
    def stg(self) -> bool:
        return self.video.stg > 0.0 or self.audio.stg > 0.0

    @property
    def modality(self) -> bool:
        return self.video.modality > 1.0 or self.audio.modality > 1.0

    @property
    def passes_per_step(self) -> int:
        """Transformer evaluations per step (batch-1 equivalents): conditional, + unconditional with
        CFG (batched with it in one call), + the STG-perturbed one, + the modality-isolated one."""
        return 1 + int(self.cfg) + int(self.stg) + int(self.modality)

    @property
    def calls_per_step(self) -> int:
        """Transformer forward calls per step (CFG's two evaluations share one batched call)."""
        return 1 + int(self.stg) + int(self.modality)

    @property
    def transformer_passes(self) -> int:
        return self.steps * self.passes_per_step

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "width": self.width, "height": self.height, "steps": self.steps,
            "sigmas": list(self.sigmas), "video": self.video.to_dict(), "audio": self.audio.to_dict(),
            "stg_blocks": list(self.stg_blocks), "noise_scale": self.noise_scale,
            "adapters": [list(a) for a in self.adapters],
            "passes_per_step": self.passes_per_step, "transformer_passes": self.transformer_passes,
        }


@dataclass(frozen=True)
class RenderPlan:
    """Every decision between a request and the pipeline calls; ``stage_kwargs`` is what is passed."""

    recipe: Recipe
    variant: str
    stages: tuple[Stage, ...]
    frames: int
    fps: float
    use_cross_timestep: bool
    #: None when no stage uses CFG (the negative prompt is then never encoded)
    negative_prompt: str | None
    image_crf: int
    max_sequence_length: int | None
    upsample: bool = False
    notes: tuple[str, ...] = ()

    @property
    def transformer_passes(self) -> int:
        return sum(s.transformer_passes for s in self.stages)

    def stage_kwargs(self, stage: Stage, *, image: bool = False) -> dict[str, Any]:
        """The pipeline ``__call__`` arguments of ``stage`` (all but prompts, embeddings, latents and the
        generator). The guidance knobs are always passed explicitly: diffusers' defaults move between
        releases, a recorded call must not."""
        kw: dict[str, Any] = {
            "height": stage.height,
            "width": stage.width,
            "num_frames": self.frames,
            "frame_rate": float(self.fps),
            "num_inference_steps": stage.steps,
            "sigmas": list(stage.sigmas),
            "guidance_scale": stage.video.cfg,
            "stg_scale": stage.video.stg,
            "modality_scale": stage.video.modality,
            "guidance_rescale": stage.video.rescale,
            "audio_guidance_scale": stage.audio.cfg,
            "audio_stg_scale": stage.audio.stg,
            "audio_modality_scale": stage.audio.modality,
            "audio_guidance_rescale": stage.audio.rescale,
            "spatio_temporal_guidance_blocks": list(stage.stg_blocks) if stage.stg else [],
            "use_cross_timestep": self.use_cross_timestep,
            "noise_scale": stage.noise_scale,
        }
        if self.max_sequence_length is not None:
            kw["max_sequence_length"] = self.max_sequence_length
        if image:
            kw["image_crf"] = self.image_crf
        return kw

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.value, "variant": self.variant, "frames": self.frames, "fps": self.fps,
            "use_cross_timestep": self.use_cross_timestep, "negative_prompt": self.negative_prompt,
            "image_crf": self.image_crf, "max_sequence_length": self.max_sequence_length,
            "upsample": self.upsample, "stages": [s.to_dict() for s in self.stages],
            "transformer_passes": self.transformer_passes, "notes": list(self.notes),
        }


_GUIDANCE_FIELDS = {  # request guidance key → (modality, field)
    "scale": ("video", "cfg"), "audio_scale": ("audio", "cfg"),
    "stg_scale": ("video", "stg"), "audio_stg_scale": ("audio", "stg"),
    "modality_scale": ("video", "modality"), "audio_modality_scale": ("audio", "modality"),
    "rescale": ("video", "rescale"), "audio_rescale": ("audio", "rescale"),
}


def recipe_support(*, distilled_weights: bool, has_distilled_lora: bool,
                   has_upsampler: bool) -> dict[str, str | None]:
    """Per recipe: None when a profile with these pieces can render it, else what is missing."""
    distilled_ok = distilled_weights or has_distilled_lora
    need_distilled = "the distilled LoRA (`distilled_lora = {path = ...}`) or distilled weights (`distilled = true`)"
    two: list[str] = []
    if not has_upsampler:
        two.append("the latent upsampler (`upsampler = \"/models/.../latent_upsampler\"`)")
    if not distilled_ok:
        two.append(need_distilled)
    return {
        Recipe.DEV.value: None if not distilled_weights else
        "weights are distilled: the dev recipe's steps and guidance are not what they were trained for",
        Recipe.DISTILLED.value: None if distilled_ok else f"missing {need_distilled}",
        Recipe.TWO_STAGE.value: None if not two else "missing " + " and ".join(two),
    }


def resolve_recipe(name: str | None, *, distilled_weights: bool) -> Recipe:
    if name is None:
        return Recipe.DISTILLED if distilled_weights else Recipe.DEV
    try:
        return Recipe(name)
    except ValueError:
        raise RecipeError(f"unknown recipe {name!r}; choose one of {[r.value for r in Recipe]}") from None


def _guided(guidance: Mapping[str, Any], video: ModalityGuidance,
            audio: ModalityGuidance) -> tuple[ModalityGuidance, ModalityGuidance, set[str]]:
    """Apply the request's guidance overrides; returns the keys it set."""
    v, a = video, audio
    set_keys: set[str] = set()
    for key, (mod, fld) in _GUIDANCE_FIELDS.items():
        val = guidance.get(key)
        if val is None:
            continue
        set_keys.add(key)
        if mod == "video":
            v = replace(v, **{fld: float(val)})
        else:
            a = replace(a, **{fld: float(val)})
    return v, a, set_keys


def _gate_stg(stage: Stage, arch: Architecture, explicit: set[str], blocks_explicit: bool,
              notes: list[str]) -> Stage:
    """Drop an STG pass that cannot change the output (recipe default), refuse one asked for."""
    if not stage.stg:
        return stage
    bad_blocks = [b for b in stage.stg_blocks if b >= arch.num_layers]
    asked = sorted(k for k in ("stg_scale", "audio_stg_scale") if k in explicit)
    if bad_blocks and blocks_explicit:
        raise RecipeError(
            f"stg_blocks {list(stage.stg_blocks)}: the transformer has {arch.num_layers} blocks "
            f"(0..{arch.num_layers - 1}), so block(s) {bad_blocks} perturb nothing")
    reason = None
    if not arch.perturbed_attn:
        reason = ("the transformer's config has perturbed_attn = false (diffusers' LTX-2.0 layout), so STG "
                  "perturbs nothing and its extra pass would only cost time")
    elif len(bad_blocks) == len(stage.stg_blocks):
        reason = (f"none of the STG blocks {list(stage.stg_blocks)} exists in this {arch.num_layers}-block "
                  "transformer, so STG perturbs nothing")
    if reason is None:
        return stage
    if asked:
        raise RecipeError(f"guidance {', '.join(asked)} > 0 asked for, but {reason}; set it to 0")
    notes.append(f"{stage.name}: STG dropped: {reason}")
    return replace(stage, video=replace(stage.video, stg=0.0), audio=replace(stage.audio, stg=0.0))


def plan_render(
    req: Any,
    *,
    variant: str,
    arch: Architecture,
    recipe: str | None = None,
    distilled_weights: bool = False,
    profile_steps: int | None = None,
    profile_stg_blocks: tuple[int, ...] | None = None,
    max_sequence_length: int | None = None,
    lora_adapters: tuple[tuple[str, float], ...] = (),
    distilled_lora: tuple[str, float] | None = None,
    has_upsampler: bool = False,
) -> RenderPlan:
    """The stages that render ``req`` with ``recipe`` (request's ``recipe`` > ``recipe`` > the weights'
    default) on a checkpoint of ``variant``. ``profile_steps`` replaces the reference step count of guided
    stages (the tiny profile uses it to stay fast); the request's ``steps`` and ``guidance`` override the
    base stage."""
    ref = REFERENCE[variant]
    rec = resolve_recipe(getattr(req, "recipe", None) or recipe, distilled_weights=distilled_weights)
    notes: list[str] = []
    g: Mapping[str, Any] = req.guidance
    blocks_req = g.get("stg_blocks")
    blocks = tuple(blocks_req) if blocks_req is not None else (
        tuple(profile_stg_blocks) if profile_stg_blocks is not None else ref.stg_blocks)
    blocks_explicit = blocks_req is not None or profile_stg_blocks is not None
    base_adapters = tuple(lora_adapters)

    if rec is Recipe.DISTILLED and not distilled_weights and distilled_lora is None:
        raise RecipeError(
            "recipe 'distilled' needs distilled weights: set `distilled = true` on a profile whose checkpoint is "
            "the distilled one, or name the distilled LoRA (`distilled_lora`) to apply to dev weights")
    if rec is Recipe.TWO_STAGE:
        if not has_upsampler:
            raise RecipeError("recipe 'two-stage' needs the spatial latent upsampler: set `upsampler` in the "
                              "profile to a diffusers LTX2LatentUpsamplerModel folder (e.g. the checkpoint's "
                              "latent_upsampler/)")
        if not distilled_weights and distilled_lora is None:
            raise RecipeError("recipe 'two-stage' on dev weights refines with the distilled LoRA: set "
                              "`distilled_lora` in the profile (or use distilled weights: `distilled = true`)")
        if req.width % 64 or req.height % 64:
            raise RecipeError(f"recipe 'two-stage' renders the base stage at half size, so width and height "
                              f"must be multiples of 64 (got {req.width}x{req.height})")

    guided_base = rec is Recipe.DEV or (rec is Recipe.TWO_STAGE and not distilled_weights)
    if guided_base:
        steps = req.steps if req.steps is not None else (profile_steps or ref.steps)
        sigmas = tuple(reference_sigmas(steps))
        video, audio = ref.video, ref.audio
    else:
        sigmas = tuple(distilled_sigmas())
        if req.steps is not None and req.steps != len(sigmas):
            raise RecipeError(f"steps {req.steps}: the distilled schedule is fixed at {len(sigmas)} sigmas "
                              f"({list(sigmas)}); drop `steps` for recipe {rec.value!r}")
        video, audio = OFF, OFF
        if variant == "2.5":
            notes.append("the reference samples the distilled base stage of LTX-2.5+ with an ancestral (SDE) Euler "
                         "sampler; diffusers' LTX2Pipeline only has the deterministic one, which is used")
        if rec is Recipe.DISTILLED and distilled_lora is not None and not distilled_weights:
            base_adapters = base_adapters + (distilled_lora,)
    video, audio, explicit = _guided(g, video, audio)
    if explicit and not guided_base:
        notes.append(f"guidance {sorted(explicit)} set on a distilled schedule: not the reference setting")
    half = rec is Recipe.TWO_STAGE
    base = Stage(name="base", width=req.width // 2 if half else req.width,
                 height=req.height // 2 if half else req.height, sigmas=sigmas, video=video, audio=audio,
                 stg_blocks=blocks, adapters=base_adapters)
    base = _gate_stg(base, arch, explicit, blocks_explicit, notes)
    stages = [base]
    if rec is Recipe.TWO_STAGE:
        s2 = tuple(stage_2_sigmas())
        refine_adapters = tuple(lora_adapters) + ((distilled_lora,) if distilled_lora and not distilled_weights else ())
        stages.append(Stage(name="refine", width=req.width, height=req.height, sigmas=s2, video=OFF, audio=OFF,
                            stg_blocks=(), noise_scale=s2[0], adapters=refine_adapters))

    fps = float(req.fps)
    if not any(abs(fps - t) <= 0.5 for t in TRAINED_FPS):
        notes.append(f"fps {fps:g} is not a frame rate LTX-2 was trained around "
                     f"({', '.join(f'{t:g}' for t in TRAINED_FPS)}): motion timing may be off")
    cfg_any = any(s.cfg for s in stages)
    neg = None
    if cfg_any:
        neg = req.negative_prompt if req.negative_prompt is not None else default_negative_prompt()
    elif req.negative_prompt:
        notes.append("negative_prompt unused: no stage of this recipe runs classifier-free guidance")
    return RenderPlan(recipe=rec, variant=variant, stages=tuple(stages), frames=req.frames, fps=fps,
                      use_cross_timestep=ref.use_cross_timestep, negative_prompt=neg, image_crf=ref.image_crf,
                      max_sequence_length=max_sequence_length, upsample=rec is Recipe.TWO_STAGE,
                      notes=tuple(notes))

