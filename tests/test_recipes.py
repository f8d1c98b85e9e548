"""Render recipes, checked exactly against Lightricks' reference settings per LTX-2 generation (no model
runs: the plan is the single source of the pipeline's call arguments; ``test_render_recipes.py`` proves
those arguments reach the pipeline unchanged)."""

from __future__ import annotations

import math

import pytest

from pytest_ltx.render.base import RenderRequest
from pytest_ltx.render.recipes import (
    REFERENCE,
    Recipe,
    RecipeError,
    default_negative_prompt,
    plan_render,
    recipe_support,
    reference_sigmas,
)
from pytest_ltx.render.variant import Architecture

FULL = Architecture(num_layers=48, perturbed_attn=True)  # LTX-2.3 / 2.5 transformer
LTX20 = Architecture(num_layers=48, perturbed_attn=False)  # diffusers' LTX-2.0 transformer config
REQ = RenderRequest(prompt="a cat", width=768, height=512, frames=121, fps=24)


def _ltx_core_sigmas(steps: int) -> list[float]:
    """ltx_core.components.schedulers.LTX2Scheduler.execute(steps), copied verbatim (torch, float32)."""
    import torch

    tokens = 4096
    max_shift, base_shift, terminal = 2.05, 0.95, 0.1
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    x1, x2 = 1024, 4096
    mm = (max_shift - base_shift) / (x2 - x1)
    b = base_shift - mm * x1
    sigma_shift = tokens * mm + b
    sigmas = torch.where(sigmas != 0, math.exp(sigma_shift) / (math.exp(sigma_shift) + (1 / sigmas - 1) ** 1), 0)
    nz = sigmas != 0
    one_minus_z = 1.0 - sigmas[nz]
    scale_factor = one_minus_z[-1] / (1.0 - terminal)
    sigmas[nz] = 1.0 - (one_minus_z / scale_factor)
    return sigmas.to(torch.float32)[:-1].tolist()


@pytest.mark.parametrize("steps", [2, 8, 30, 40])
def test_reference_sigmas_match_ltx_core(steps: int) -> None:
    ours = reference_sigmas(steps)
    assert len(ours) == steps and ours[0] == 1.0
    assert ours == pytest.approx(_ltx_core_sigmas(steps), abs=2e-6)
    if steps > 1:
        assert ours[-1] == pytest.approx(0.1)  # stretched to the terminal


def test_one_step_schedule() -> None:
    assert reference_sigmas(1) == [1.0]  # the reference computes 0/0 here; one step starts at pure noise


def _expected_dev(variant: str, blocks: list[int], cross: bool, steps: int) -> dict:
    return {
        "height": 512, "width": 768, "num_frames": 121, "frame_rate": 24.0, "num_inference_steps": steps,
        "sigmas": reference_sigmas(steps),
        "guidance_scale": 3.0, "stg_scale": 1.0, "modality_scale": 3.0, "guidance_rescale": 0.7,
        "audio_guidance_scale": 7.0, "audio_stg_scale": 1.0, "audio_modality_scale": 3.0,
        "audio_guidance_rescale": 0.7, "spatio_temporal_guidance_blocks": blocks,
        "use_cross_timestep": cross, "noise_scale": 0.0,
    }


@pytest.mark.parametrize(("variant", "blocks", "cross", "steps", "crf"), [
    ("2.0", [29], False, 40, 33),
    ("2.3", [28], True, 30, 33),
    ("2.5", [28], True, 30, 18),
])
def test_dev_recipe_is_the_reference_per_variant(variant: str, blocks: list[int], cross: bool, steps: int,
                                                 crf: int) -> None:
    plan = plan_render(REQ, variant=variant, arch=FULL)
    assert plan.recipe is Recipe.DEV and len(plan.stages) == 1 and not plan.upsample
    st = plan.stages[0]
    assert plan.stage_kwargs(st) == _expected_dev(variant, blocks, cross, steps)
    assert plan.stage_kwargs(st, image=True)["image_crf"] == crf
    assert plan.negative_prompt == default_negative_prompt() and plan.notes == ()
    # conditional + unconditional (CFG) + STG-perturbed + modality-isolated, every step
    assert st.passes_per_step == 4 and st.calls_per_step == 3 and plan.transformer_passes == 4 * steps


def test_stg_on_diffusers_ltx20_is_dropped_not_run() -> None:
    """diffusers' LTX-2.0 transformer has perturbed_attn = false: STG perturbs nothing there, so the
    recipe plans no STG pass (and says so) instead of paying for one that cannot change the output."""
    plan = plan_render(REQ, variant="2.0", arch=LTX20)
    kw = plan.stage_kwargs(plan.stages[0])
    assert kw["stg_scale"] == 0.0 and kw["audio_stg_scale"] == 0.0 and kw["spatio_temporal_guidance_blocks"] == []
    assert plan.stages[0].passes_per_step == 3 and plan.transformer_passes == 120
    assert any("perturbed_attn = false" in n for n in plan.notes)
    # asked for explicitly, it is an error that says why
    with pytest.raises(RecipeError, match=r"stg_scale > 0 asked for, but the transformer's config has perturbed_attn"):
        plan_render(RenderRequest(prompt="p", guidance={"stg_scale": 1.0}), variant="2.0", arch=LTX20)


def test_stg_blocks_the_transformer_lacks() -> None:
    tiny = Architecture(num_layers=2, perturbed_attn=True)
    with pytest.raises(RecipeError, match=r"stg_blocks \[5\]: the transformer has 2 blocks"):
        plan_render(RenderRequest(prompt="p", guidance={"stg_blocks": [5]}), variant="2.3", arch=tiny)
    plan = plan_render(RenderRequest(prompt="p"), variant="2.3", arch=tiny)  # reference block 28: dropped
    assert not plan.stages[0].stg and "none of the STG blocks [28] exists" in plan.notes[0]


def test_overrides_apply_to_the_base_stage() -> None:
    req = RenderRequest(prompt="p", steps=12, guidance={"scale": 4.0, "audio_stg_scale": 0.0, "modality_scale": 1.0,
                                                         "audio_modality_scale": 1.0, "stg_blocks": [3, 4]})
    plan = plan_render(req, variant="2.3", arch=FULL, profile_steps=8, max_sequence_length=256)
    kw = plan.stage_kwargs(plan.stages[0])
    assert kw["num_inference_steps"] == 12 and kw["sigmas"] == reference_sigmas(12)  # request beats profile
    assert (kw["guidance_scale"], kw["audio_stg_scale"], kw["stg_scale"]) == (4.0, 0.0, 1.0)
    assert kw["spatio_temporal_guidance_blocks"] == [3, 4] and kw["max_sequence_length"] == 256
    assert plan.stages[0].passes_per_step == 3  # modality off on both: no isolation pass
    assert plan_render(RenderRequest(prompt="p"), variant="2.3", arch=FULL, profile_steps=8).stages[0].steps == 8


def test_distilled_recipe() -> None:
    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES

    plan = plan_render(REQ, variant="2.3", arch=FULL, distilled_weights=True)
    assert plan.recipe is Recipe.DISTILLED  # the default on distilled weights
    kw = plan.stage_kwargs(plan.stages[0])
    assert kw["sigmas"] == DISTILLED_SIGMA_VALUES and kw["num_inference_steps"] == 8
    assert (kw["guidance_scale"], kw["stg_scale"], kw["modality_scale"], kw["guidance_rescale"]) == (1.0, 0.0, 1.0, 0.0)
    assert (kw["audio_guidance_scale"], kw["audio_stg_scale"], kw["audio_modality_scale"],
            kw["audio_guidance_rescale"]) == (1.0, 0.0, 1.0, 0.0)
    assert plan.stages[0].passes_per_step == 1 and plan.transformer_passes == 8
    assert plan.negative_prompt is None  # no CFG: never encoded
    with pytest.raises(RecipeError, match="distilled schedule is fixed at 8 sigmas"):
        plan_render(RenderRequest(prompt="p", steps=4), variant="2.3", arch=FULL, distilled_weights=True)
    with pytest.raises(RecipeError, match="recipe 'distilled' needs distilled weights"):
        plan_render(RenderRequest(prompt="p", recipe="distilled"), variant="2.3", arch=FULL)
    # dev weights + the distilled LoRA: the LoRA is active in that stage
    p2 = plan_render(RenderRequest(prompt="p", recipe="distilled"), variant="2.3", arch=FULL,
                     lora_adapters=(("style", 0.5),), distilled_lora=("distill", 1.0))
    assert p2.stages[0].adapters == (("style", 0.5), ("distill", 1.0))
    p5 = plan_render(REQ, variant="2.5", arch=FULL, distilled_weights=True)
    assert any("ancestral" in n for n in p5.notes)  # what diffusers cannot do, said


def test_two_stage_recipe_on_dev_weights() -> None:
    from diffusers.pipelines.ltx2.utils import STAGE_2_DISTILLED_SIGMA_VALUES

    req = RenderRequest(prompt="p", width=768, height=512, recipe="two-stage")
    plan = plan_render(req, variant="2.3", arch=FULL, distilled_lora=("distill", 1.0), has_upsampler=True,
                       lora_adapters=(("style", 0.5),))
    base, refine = plan.stages
    assert plan.upsample and (base.width, base.height) == (384, 256) and (refine.width, refine.height) == (768, 512)
    assert plan.stage_kwargs(base) == {**_expected_dev("2.3", [28], True, 30), "width": 384, "height": 256}
    kw = plan.stage_kwargs(refine)
    assert kw["sigmas"] == STAGE_2_DISTILLED_SIGMA_VALUES and kw["noise_scale"] == STAGE_2_DISTILLED_SIGMA_VALUES[0]
    assert (kw["guidance_scale"], kw["stg_scale"], kw["modality_scale"], kw["audio_guidance_scale"]) == (1.0, 0.0, 1.0, 1.0)
    assert base.adapters == (("style", 0.5),) and refine.adapters == (("style", 0.5), ("distill", 1.0))
    assert plan.transformer_passes == 30 * 4 + 3


def test_two_stage_needs_its_pieces() -> None:
    req = RenderRequest(prompt="p", recipe="two-stage")
    with pytest.raises(RecipeError, match="needs the spatial latent upsampler"):
        plan_render(req, variant="2.3", arch=FULL, distilled_lora=("d", 1.0))
    with pytest.raises(RecipeError, match="refines with the distilled LoRA"):
        plan_render(req, variant="2.3", arch=FULL, has_upsampler=True)
    with pytest.raises(RecipeError, match="multiples of 64 \\(got 736x512\\)"):
        plan_render(RenderRequest(prompt="p", width=736, recipe="two-stage"), variant="2.3", arch=FULL,
                    distilled_weights=True, has_upsampler=True)
    # on distilled weights: distilled base, no LoRA in the refinement
    plan = plan_render(req, variant="2.3", arch=FULL, distilled_weights=True, has_upsampler=True)
    assert plan.stages[0].steps == 8 and plan.stages[1].adapters == () and plan.transformer_passes == 11


def test_negative_prompt_and_frame_rate_notes() -> None:
    own = plan_render(RenderRequest(prompt="p", negative_prompt="blur"), variant="2.3", arch=FULL)
    assert own.negative_prompt == "blur"
    assert default_negative_prompt().startswith("blurry, out of focus")
    for fps in (24, 25, 30, 60, 23.976, 29.97):
        assert plan_render(RenderRequest(prompt="p", fps=fps), variant="2.3", arch=FULL).notes == ()
    notes = plan_render(RenderRequest(prompt="p", fps=48), variant="2.3", arch=FULL).notes
    assert notes and "fps 48 is not a frame rate LTX-2 was trained around" in notes[0]
    unused = plan_render(RenderRequest(prompt="p", negative_prompt="x"), variant="2.3", arch=FULL,
                         distilled_weights=True).notes
    assert any("negative_prompt unused" in n for n in unused)


def test_recipe_support() -> None:
    s = recipe_support(distilled_weights=False, has_distilled_lora=False, has_upsampler=False)
    assert s["dev"] is None and "distilled LoRA" in s["distilled"] and "latent upsampler" in s["two-stage"]
    s = recipe_support(distilled_weights=False, has_distilled_lora=True, has_upsampler=True)
    assert s == {"dev": None, "distilled": None, "two-stage": None}
    assert "weights are distilled" in recipe_support(distilled_weights=True, has_distilled_lora=False,
                                                     has_upsampler=False)["dev"]


def test_reference_table_is_what_ltx_pipelines_says() -> None:
    assert {v: (r.steps, r.stg_blocks, r.use_cross_timestep, r.image_crf) for v, r in REFERENCE.items()} == {
        "2.0": (40, (29,), False, 33), "2.3": (30, (28,), True, 33), "2.5": (30, (28,), True, 18)}


def test_manifest_changes_flatten_stages_and_lead_with_versions() -> None:
    from pytest_ltx.render.manifest import flatten_manifest, format_changes, manifest_changes

    old = {"versions": {"diffusers": "0.42.1", "torch": "2.9.0"}, "recipe": "dev", "scheduler": {"shift": 2.05},
           "stages": [{"name": "base", "args": {"stg_scale": 1.0, "sigmas": [1.0, 0.5]}, "transformer_passes": 8}],
           "components": {"vae": {"class": "AutoencoderKLLTX2Video", "config": "aaaa"}}}
    new = {"versions": {"diffusers": "0.43.0", "torch": "2.9.0"}, "recipe": "dev", "scheduler": {"shift": 2.2},
           "stages": [{"name": "base", "args": {"stg_scale": 0.0, "sigmas": [1.0, 0.5]}, "transformer_passes": 6}],
           "components": {"vae": {"class": "AutoencoderKLLTX2Video", "config": "bbbb"}}}
    assert flatten_manifest(old)["base.stg_scale"] == 1.0 and "base.transformer_passes" not in flatten_manifest(old)
    changes = manifest_changes(old, new)
    assert changes == ["diffusers 0.42.1 → 0.43.0", "base.stg_scale 1 → 0", "components.vae.config aaaa → bbbb",
                       "scheduler.shift 2.05 → 2.2"]
    assert format_changes(changes) == ("diffusers 0.42.1 → 0.43.0: base.stg_scale 1 → 0; "
                                       "components.vae.config aaaa → bbbb; scheduler.shift 2.05 → 2.2")
    assert manifest_changes(old, old) == [] and manifest_changes(None, new) == []  # an old baseline: no diff
    assert manifest_changes(old, {**old, "versions": new["versions"]}) == []  # same pipeline, newer library
    added = manifest_changes(old, {**old, "stages": old["stages"] + [{"name": "refine", "args": {"noise_scale": 0.9}}]})
    assert added == ["refine.noise_scale unset → 0.9"]
    assert format_changes([f"k{i} 0 → 1" for i in range(15)], limit=2) == "k0 0 → 1; k1 0 → 1; (+13 more)"
