"""GPU check of the render recipes: every recipe on CUDA, finite, with the planned transformer passes.

Run on a GPU runner (one short script, a few minutes):

    python benchmarks/gpu_check_recipes.py --out "$OUT"            # tiny model + tiny LoRA/upsampler
    python benchmarks/gpu_check_recipes.py --model-dir /models/LTX-2.3 --upsampler /models/LTX-2.3/latent_upsampler \\
        --distilled-lora /models/ltx-2.3-distilled-lora.safetensors --out "$OUT"

For each recipe it renders one small clip with ``device = cuda`` (bf16 by default), checks that the
transformer ran exactly the planned number of passes, that frames and audio are finite (the renderer
raises otherwise), and writes ``recipes.json`` (seconds, peak VRAM, passes, manifest) under ``--out``.
``--device cpu`` runs the same on a CPU box (the tiny model only) to check the script itself.
Exit status 1 when any recipe fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=None, help="a real diffusers LTX-2 folder (default: tiny)")
    ap.add_argument("--upsampler", type=Path, default=None)
    ap.add_argument("--distilled-lora", type=Path, default=None)
    ap.add_argument("--distilled", action="store_true", help="the weights are a distilled checkpoint")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--size", default=None, help="WxH (default 64x64 tiny, 512x320 real)")
    ap.add_argument("--frames", type=int, default=None, help="default 9 tiny, 25 real")
    ap.add_argument("--out", type=Path, default=Path("gpu-check"))
    args = ap.parse_args(argv)

    from pytest_ltx.models import TINY_PROFILE, ModelKind, ModelProfile
    from pytest_ltx.render.base import RenderRequest
    from pytest_ltx.render.extras import LoraRef, build_tiny_lora, build_tiny_upsampler
    from pytest_ltx.render.ltx2 import LTX2Renderer
    from pytest_ltx.render.tiny import ensure_tiny_model

    args.out.mkdir(parents=True, exist_ok=True)
    if args.model_dir is None:
        d = ensure_tiny_model()
        up = build_tiny_upsampler(d, args.out / "tiny-upsampler")
        dl = build_tiny_lora(d, args.out / "tiny-distilled.safetensors", seed=2)
        prof = replace(TINY_PROFILE, name="tiny-gpu", device=args.device, dtype=args.dtype, upsampler=up,
                       distilled_lora=LoraRef(dl))
        size, frames = args.size or "64x64", args.frames or 9
    else:
        prof = ModelProfile(name="gpu-check", kind=ModelKind.LOCAL, path=args.model_dir, device=args.device,
                            dtype=args.dtype, upsampler=args.upsampler, distilled=args.distilled,
                            distilled_lora=LoraRef(args.distilled_lora) if args.distilled_lora else None)
        size, frames = args.size or "512x320", args.frames or 25
    w, h = (int(x) for x in size.split("x"))
    t0 = time.perf_counter()
    r = LTX2Renderer(prof)
    report: dict = {"variant": r.variant, "evidence": list(r.detection.evidence), "load_s": time.perf_counter() - t0,
                    "placement": r.placement.to_dict(), "recipes": {}}
    print(f"loaded {prof.name}: LTX-{r.variant} on {r.placement.device} {r.placement.dtype} "
          f"({report['load_s']:.1f} s)")
    failed = 0
    for recipe in ("dev", "distilled", "two-stage"):
        req = RenderRequest(prompt="A red ball bouncing on a wooden floor, soft daylight", seed=0, width=w,
                            height=h, frames=frames, recipe=recipe)
        entry: dict = {}
        try:
            plan = r.plan(req)
            r.stats.clear()
            res = r.render(req)
            entry = {"ok": True, "seconds": res.seconds, "peak_vram_gb": res.peak_vram_gb,
                     "planned_passes": plan.transformer_passes, "passes": r.stats["transformer_passes"],
                     "encodes": r.stats["encode"], "frames_mean": float(res.clip.frames.mean()),
                     "manifest": res.provenance["manifest"]}
            if entry["passes"] != entry["planned_passes"]:
                entry["ok"] = False
                entry["error"] = f"ran {entry['passes']} transformer passes, planned {entry['planned_passes']}"
        except Exception as e:  # report every recipe, then fail
            entry = {"ok": False, "error": f"{e.__class__.__name__}: {e}", "trace": traceback.format_exc()[-2000:]}
        failed += not entry["ok"]
        report["recipes"][recipe] = entry
        brief = {k: entry.get(k) for k in ("ok", "seconds", "peak_vram_gb", "passes", "planned_passes", "error")}
        print(recipe, json.dumps(brief))
    (args.out / "recipes.json").write_text(json.dumps(report, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
