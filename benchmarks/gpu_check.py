"""GPU check for a lent GPU (H100 / H200): the VRAM planner, the placements and the out-of-memory retry on
full-size LTX-2.3 components with random weights — no download, under 8 minutes.

What it does (``python benchmarks/gpu_check.py``):

1. builds every LTX-2.3 component at full size from the published configs (``pytest_ltx/render/
   reference.py``: the 48-layer audio-video transformer, Gemma 3 12B, connectors, VAEs, BWE vocoder) with
   random weights **directly on the GPU** in bf16 (~66 GiB; no host copy);
2. renders 768×512×121 through ``LTX2Renderer.render`` — the plugin's own path: VRAM plan, placement,
   guard — in each recipe (``dev``: CFG + STG + modality guidance, ``distilled``: guidance 1) and each
   placement the GPU can hold (full, model offload, group offload, sequential offload), reporting seconds
   and the measured peak VRAM against the planner's estimate;
3. renders one configuration twice and checks the two clips are bit-identical;
4. releases everything and starts a **second process** that holds most of the GPU with a ballast tensor
   and plans as if the memory were free, so the full placement runs out of memory while moving the weights:
   the renderer must free it and retry once with model offload (the recorded attempts are printed).

Random weights render noise (possibly NaN); only time, memory and bits are measured. Steps are few
(``--steps``, default 4 for dev, 8 for distilled; sequential offload: 2) to stay within the time budget;
``--budget-s`` skips what would not fit.

Modes that need no GPU (tested in the suite):

    python benchmarks/gpu_check.py --dry-run      # imports, full-size meta build, the planned envelope per
                                                  # recipe × placement for this GPU's free memory or --free-gb
    python benchmarks/gpu_check.py --tiny         # the same steps on the embedded tiny model on CPU
                                                  # (placement: full only — offload needs CUDA)

Output: a table on stdout and ``--json FILE`` with every figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WIDTH, HEIGHT, FRAMES = 768, 512, 121
PLACEMENTS = ("none", "model", "group", "sequential")

#: the plugin's render recipes (render/recipes.py): dev = CFG + STG + modality guidance, distilled =
#: guidance 1 (the random weights are declared distilled for it); the step count is set per run
RECIPES: tuple[str, ...] = ("dev", "distilled")


@dataclass
class Row:
    recipe: str
    placement: str
    width: int
    height: int
    frames: int
    steps: int
    seconds: float | None = None
    peak_gb: float | None = None
    planned_gb: float | None = None
    chosen: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.peak_gb and self.planned_gb:
            return self.peak_gb / self.planned_gb
        return None

    def line(self) -> str:
        def f(x: float | None, fmt: str) -> str:
            return "-" if x is None else format(x, fmt)

        tail = f"  ERROR {self.error}" if self.error else ""
        return (f"{self.recipe:10} {self.placement:10} {self.width}x{self.height}x{self.frames} steps {self.steps:2}  "
                f"{f(self.seconds, '7.1f')} s  peak {f(self.peak_gb, '6.1f')} GiB  plan {f(self.planned_gb, '6.1f')} GiB "
                f"(×{f(self.ratio, '.2f')}){tail}")


# ------------------------------------------------------------------------------------------- building


def _tokenizer() -> Any:
    from pytest_ltx.render.tiny import _tokenizer

    return _tokenizer()


def build_full_pipeline(device: str, *, empty: bool = False) -> Any:
    """Every LTX-2.3 component at full size with random weights, created directly on ``device`` in bf16
    (``empty``: allocated without initialisation — fast, for the out-of-memory child on the CPU)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2Pipeline

    from pytest_ltx.render.plan import _build_meta
    from pytest_ltx.render.reference import ltx23_components

    comps: dict[str, Any] = {}
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        for name, (library, cls_name, cfg) in ltx23_components().items():
            if empty:
                m = _build_meta(library, cls_name, cfg).to_empty(device=device)
            else:
                import importlib

                with torch.device(device):
                    m = _build_on(importlib, library, cls_name, cfg)
            comps[name] = m.to(torch.bfloat16).eval()
    finally:
        torch.set_default_dtype(old)
    comps["tokenizer"] = _tokenizer()
    comps["scheduler"] = FlowMatchEulerDiscreteScheduler()
    return LTX2Pipeline(**comps)


def _build_on(importlib: Any, library: str, cls_name: str, cfg: dict[str, Any]) -> Any:
    try:
        mod = importlib.import_module(library)
    except ModuleNotFoundError:
        mod = importlib.import_module(f"diffusers.pipelines.{library}")
    cls = getattr(mod, cls_name, None) or getattr(importlib.import_module("diffusers.pipelines.ltx2"), cls_name)
    if library == "transformers":
        return cls(cls.config_class(**cfg))
    return cls.from_config(cfg)


def build_tiny_pipeline() -> Any:
    from diffusers import LTX2Pipeline

    from pytest_ltx.render.tiny import ensure_tiny_model

    return LTX2Pipeline.from_pretrained(str(ensure_tiny_model()), local_files_only=True)


def make_renderer(pipe: Any, device: str, sizes: Any, placed_on_device: bool) -> Any:
    """An ``LTX2Renderer`` over an in-memory pipeline: the plugin's planner, placement, recipes and guard,
    fed the reference component sizes. It is set up from the embedded tiny model (same LTX-2.3 variant
    and scheduler) and then handed ``pipe`` (None: keep the tiny pipeline)."""
    from pytest_ltx.models import TINY_PROFILE
    from pytest_ltx.render.gpu import gpu_identity
    from pytest_ltx.render.ltx2 import LTX2Renderer, plan_placement

    cuda = device.startswith("cuda")
    r = LTX2Renderer(replace(TINY_PROFILE, device="cpu"))
    r.profile = replace(TINY_PROFILE, name="gpu-check", device=device, dtype="bfloat16" if cuda else "auto",
                        vae_tiling=True if cuda else None)
    r.placement = plan_placement(r.profile, cuda_available=cuda, device_count=1 if cuda else 0)
    if pipe is not None:
        r._pipe = pipe
        r._exact_sigmas(pipe)
        r._count_transformer(pipe)
    r.component_sizes = sizes
    r.gpu = gpu_identity(device)
    r._i2v = None
    r._applied = r.placement if (placed_on_device or not cuda) else None
    return r


# ------------------------------------------------------------------------------------------- running


def render_row(r: Any, recipe: str, placement: str, steps: int, size: tuple[int, int, int]) -> tuple[Row, Any]:
    from pytest_ltx.models import Offload
    from pytest_ltx.render.base import RenderRequest
    from pytest_ltx.render.guard import RenderGuard

    w, h, f = size
    row = Row(recipe, placement, w, h, f, steps)
    r.profile = replace(r.profile, offload=Offload(placement), distilled=recipe == "distilled")
    tiny = w <= 64  # the tiny model has 2 transformer blocks: perturb block 1, not the real 28
    req = RenderRequest(prompt="a white sneaker rotating on a turntable", seed=0, width=w, height=h, frames=f,
                        fps=24.0, steps=steps, recipe=recipe, guidance={"stg_blocks": [1]} if tiny else {})
    guard = RenderGuard(progress=False)
    try:
        res = r.render(req, guard=guard)
    except Exception as e:  # reported in the table, the check goes on
        row.error = f"{e.__class__.__name__}: {str(e)[:300]}"
        row.attempts = [a.to_dict() for a in guard.attempts]
        return row, None
    row.seconds, row.peak_gb = res.seconds, res.peak_vram_gb
    plan = res.provenance.get("vram_plan") or {}
    row.planned_gb = plan.get("planned_peak_gb")
    row.chosen = res.provenance.get("placement", {}).get("offload")
    row.attempts = res.provenance.get("attempts", [])
    return row, res


def identical(a: Any, b: Any) -> bool:
    import numpy as np

    same_v = a.clip.frames.tobytes() == b.clip.frames.tobytes()
    same_a = (a.clip.audio is None and b.clip.audio is None) or (
        a.clip.audio is not None and b.clip.audio is not None
        and np.asarray(a.clip.audio).tobytes() == np.asarray(b.clip.audio).tobytes())
    return bool(same_v and same_a)


def dry_run(free_gb: float | None) -> dict[str, Any]:
    """Imports, the full-size meta build and the planned envelope of every recipe × placement."""
    from pytest_ltx.models import Offload
    from pytest_ltx.render.plan import RenderShape, choose, estimate, measure_components
    from pytest_ltx.render.reference import ltx23_components

    t0 = time.perf_counter()
    sizes = measure_components(ltx23_components(), "bfloat16")
    out: dict[str, Any] = {"weights_gb": {k: round(v.gb, 2) for k, v in sizes.items()},
                           "meta_build_s": round(time.perf_counter() - t0, 1), "rows": []}
    for recipe in RECIPES:
        shape = RenderShape(WIDTH, HEIGHT, FRAMES, batch=1 if recipe == "distilled" else 2)
        for p in PLACEMENTS:
            est = estimate(sizes, shape, Offload(p), True)
            out["rows"].append({"recipe": recipe, "placement": p, "planned_gb": round(est.peak_gb, 2),
                                "phase": est.phase})
        plan = choose(sizes, shape, free_gb=free_gb, vae_tiling=True)
        out.setdefault("chosen", {})[recipe] = plan.to_dict()
    return out


def oom_child(args: argparse.Namespace) -> int:
    """Second process: ballast on the GPU, a planner that believes the memory is free, a full placement
    that runs out of memory while moving the weights → freed and retried once with model offload."""
    import torch

    from pytest_ltx.render import gpu
    from pytest_ltx.render.plan import measure_components
    from pytest_ltx.render.reference import ltx23_components

    free, _total = torch.cuda.mem_get_info(0)
    keep = int(args.oom_leave_gb * 2**30)
    ballast = torch.empty(max(0, free - keep), dtype=torch.uint8, device="cuda:0")  # noqa: F841
    gpu.free_memory_gb = lambda device: 1000.0  # a stale reading: another job took the memory after planning
    sizes = measure_components(ltx23_components(), "bfloat16")
    pipe = build_full_pipeline("cpu", empty=True)
    r = make_renderer(pipe, "cuda:0", sizes, placed_on_device=False)
    row, _ = render_row(r, "distilled", "none", 2, (WIDTH, HEIGHT, FRAMES))
    doc = {"row": row.__dict__, "attempts": row.attempts,
           "retried": [a["placement"] for a in row.attempts] == ["none", "model"] and row.error is None}
    Path(args.json).write_text(json.dumps(doc, indent=1))
    return 0 if doc["retried"] else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="no GPU: imports, meta build, planned envelope")
    p.add_argument("--tiny", action="store_true", help="no GPU: the steps on the tiny model on CPU")
    p.add_argument("--free-gb", type=float, default=None, help="dry run: plan for this much free memory")
    p.add_argument("--steps", type=int, default=4, help="dev steps (distilled: 2×, sequential: 2)")
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--placements", default=",".join(PLACEMENTS))
    p.add_argument("--budget-s", type=float, default=420.0, help="skip what would run past this")
    p.add_argument("--json", default=None, help="write every figure here")
    p.add_argument("--oom-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--oom-leave-gb", type=float, default=40.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.oom_child:
        return oom_child(args)
    if args.dry_run:
        doc = dry_run(args.free_gb)
        for row in doc["rows"]:
            print(f"{row['recipe']:10} {row['placement']:10} {WIDTH}x{HEIGHT}x{FRAMES}  plan {row['planned_gb']:6.1f} GiB "
                  f"(peak in {row['phase']})")
        for recipe, plan in doc["chosen"].items():
            print(f"{recipe}: chosen for {args.free_gb if args.free_gb is not None else 'unlimited'} GiB free → "
                  f"{plan['offload']} ({plan['planned_peak_gb']} GiB)")
        if args.json:
            Path(args.json).write_text(json.dumps(doc, indent=1))
        return 0

    import torch

    t_start = time.perf_counter()
    recipes = [x for x in args.recipes.split(",") if x]
    placements = [x for x in args.placements.split(",") if x]
    doc: dict[str, Any] = {"mode": "tiny" if args.tiny else "gpu", "rows": []}
    if args.tiny:
        device, size, placements = "cpu", (64, 64, 9), ["none"]
        pipe = None  # the tiny renderer's own pipeline
        from pytest_ltx.render.plan import component_sizes_from_dir
        from pytest_ltx.render.tiny import ensure_tiny_model

        sizes = component_sizes_from_dir(ensure_tiny_model(), "float32")
        placed = True
    else:
        if not torch.cuda.is_available():
            print("gpu_check: no CUDA device (use --dry-run or --tiny on a CPU machine)", file=sys.stderr)
            return 2
        from pytest_ltx.render.plan import measure_components
        from pytest_ltx.render.reference import ltx23_components

        device, size = "cuda:0", (WIDTH, HEIGHT, FRAMES)
        sizes = measure_components(ltx23_components(), "bfloat16")
        t0 = time.perf_counter()
        pipe = build_full_pipeline(device)
        torch.cuda.synchronize()
        doc["build_s"] = round(time.perf_counter() - t0, 1)
        doc["gpu"] = {"name": torch.cuda.get_device_name(0), "weights_gib": round(torch.cuda.memory_allocated(0) / 2**30, 1)}
        print(f"built full-size LTX-2.3 on {doc['gpu']['name']} in {doc['build_s']} s "
              f"({doc['gpu']['weights_gib']} GiB)")
        placed = True
    r = make_renderer(pipe, device, sizes, placed_on_device=placed)
    first: Any = None
    for placement in placements:
        for recipe in recipes:
            steps = 2 if placement == "sequential" else (args.steps * 2 if recipe == "distilled" else args.steps)
            if time.perf_counter() - t_start > args.budget_s:
                doc["rows"].append(Row(recipe, placement, *size, steps, error="skipped: time budget").__dict__)
                continue
            row, res = render_row(r, recipe, placement, steps, size)
            print(row.line(), flush=True)
            doc["rows"].append({**row.__dict__, "ratio": row.ratio})
            if first is None and res is not None:
                first = (recipe, placement, steps, res)
    if first is not None:  # bit-identical re-render of the first configuration that rendered
        recipe, placement, steps, res = first
        _row, again = render_row(r, recipe, placement, steps, size)
        doc["bit_identical"] = again is not None and identical(res, again)
        print(f"re-render {recipe}/{placement}: {'bit-identical' if doc['bit_identical'] else 'DIFFERENT'}")
    r.release() if hasattr(r, "release") else None
    del r, pipe, first
    gc.collect()
    if not args.tiny:
        torch.cuda.empty_cache()
        out = Path(args.json or "gpu_check.json").with_suffix(".oom.json")
        cmd = [sys.executable, __file__, "--oom-child", "--json", str(out)]
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, timeout=max(60.0, args.budget_s + 120 - (time.perf_counter() - t_start))).returncode
        child = json.loads(out.read_text()) if out.exists() else {}
        doc["oom_retry"] = {"returncode": rc, "seconds": round(time.perf_counter() - t0, 1), **child}
        print(f"out-of-memory child: attempts {[a['placement'] + ':' + str(a['error_kind']) for a in child.get('attempts', [])]}"
              f" → {'retried with model offload' if child.get('retried') else 'NOT retried as expected'}")
    else:
        doc["oom_retry"] = {"skipped": "needs CUDA (offload placements do not exist on CPU)"}
    doc["total_s"] = round(time.perf_counter() - t_start, 1)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1, default=str))
    bad = [row for row in doc["rows"] if row.get("error") and not str(row["error"]).startswith("skipped")]
    return 1 if bad or doc.get("bit_identical") is False else 0


if __name__ == "__main__":
    raise SystemExit(main())
