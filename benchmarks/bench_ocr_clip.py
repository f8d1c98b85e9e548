"""Cost of the keyframe metrics (OCR, CLIP, structural) and of the default sampling policy, on CPU.

Measures, in one run so a noisy neighbour hits everything alike:

- a fixed reference workload (a torch matmul loop) before and after: every cost is also given as a
  ratio to it, so runs on a loaded or a different machine can be compared;
- OCR per frame (EasyOCR, offline weights) at 512×512 and 768×512, at full resolution and with the
  CPU policy (longer side downscaled to ``ocr.CPU_MAX_SIDE``);
- CLIP image embedding per frame (batch = the 11 keyframes of a 5 s clip) for the tiny random CLIP and a
  random-init ViT-B-32 built locally (nothing downloaded; random weights cost the same as real ones);
- the whole metric suite (motion, A/V sync, OCR, CLIP, structural) through ``evaluate()`` on a 121-frame
  768×512 24 fps test card with a caption and event audio, warm (second run), with the default policy
  (2 keyframes/s + first and last; OCR downscaled on CPU). The ViT-B-32 line swaps the tiny CLIP's
  measured time for ViT-B-32's.

    .venv/bin/python benchmarks/bench_ocr_clip.py [--repeats 3] [--threads 2] [--no-vitb32] [--json out.json]

Timing is wall clock (``perf_counter``) plus this process's CPU time; the load average is printed because
on a shared machine wall time is inflated by other processes, CPU time much less so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BUDGET_S = 10.0


def _reference(torch) -> float:
    """A fixed CPU workload (~0.1–0.3 s): 2 threads of 512² float32 matmuls."""
    a = torch.ones(512, 512)
    t = time.perf_counter()
    for _ in range(40):
        a = (a @ a) * (1.0 / 512)
    return time.perf_counter() - t


def _median_time(fn, repeats: int) -> tuple[float, float]:
    """Median (wall, process CPU) seconds of ``fn()``."""
    ts = []
    for _ in range(repeats):
        c, t = time.process_time(), time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t, time.process_time() - c))
    return statistics.median(w for w, _ in ts), statistics.median(c for _, c in ts)


def _card(width: int, height: int, frames: int, audio: bool = True):
    from pytest_ltx.testcard import TestCardSpec, TextSpec, draw

    spec = TestCardSpec(width=width, height=height, frames=frames, fps=24, seed=5,
                        audio={} if audio else None,
                        text=[TextSpec(text="OPEN HOUSE SUNDAY", y=0.8, height_frac=0.07, start=30)])
    return draw(spec).clip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-vitb32", action="store_true", help="skip the random-init ViT-B-32 (151 M params)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    home = tempfile.mkdtemp(prefix="bench-ocr-clip-")
    os.environ["PYTEST_LTX_HOME"] = home  # the tiny random CLIP is built here, not in ~/.cache
    warnings.filterwarnings("ignore")
    import cv2
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    from pytest_ltx.evaluate import MetricContext, evaluate
    from pytest_ltx.metrics import clip_score, ocr
    from pytest_ltx.metrics.sampling import sample_indices

    out: dict = {"threads": args.threads, "load_avg_start": os.getloadavg()[0], "cuda": torch.cuda.is_available()}
    ref0 = statistics.median(_reference(torch) for _ in range(3))
    print(f"threads={args.threads}  load average {out['load_avg_start']:.2f}  reference workload {ref0:.3f} s")

    # ---- OCR per frame ------------------------------------------------------------------------------
    reader = ocr.get_reader(gpu=False)
    sizes = {"512x512": (512, 512), "768x512": (768, 512)}
    cards = {name: _card(w, h, 49, audio=False) for name, (w, h) in sizes.items()}
    rows = []
    for name, clip in cards.items():
        frames = [clip.frames[i] for i in (0, 24, 48)]  # 24 and 48 carry the caption
        for side in (None, ocr.CPU_MAX_SIDE):
            ocr.read_frame(frames[0], reader, max_side=side)  # warm-up
            w, c = _median_time(lambda: [ocr.read_frame(f, reader, max_side=side) for f in frames], args.repeats)
            texts = [t for t, _, _ in ocr.read_frame(frames[2], reader, max_side=side)]
            rows.append({"metric": "ocr", "size": name, "max_side": side, "s_per_frame": w / 3, "cpu_per_frame": c / 3,
                         "read": texts})
    # ---- CLIP per frame -----------------------------------------------------------------------------
    models = {"tiny-random": clip_score.load_clip_model("tiny-random", device="cpu")}
    if not args.no_vitb32:
        import open_clip

        torch.manual_seed(0)
        m, _, pre = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)  # random init, local
        m.eval()
        prof = clip_score.ClipModelProfile(arch="ViT-B-32", weights="random-init", name="ViT-B-32 random-init",
                                           random_weights=True)
        models["ViT-B-32"] = clip_score.LoadedClipModel(m, pre, open_clip.get_tokenizer("ViT-B-32"), "cpu", prof)
    k = len(sample_indices(121, 24.0, 2.0))
    for mname, lm in models.items():
        for name, clip in cards.items():
            batch = clip.frames[np.linspace(0, clip.num_frames - 1, k).astype(int)]
            lm.embed_images(batch[:2])
            w, c = _median_time(lambda: lm.embed_images(batch), args.repeats)
            rows.append({"metric": f"clip:{mname}", "size": name, "max_side": None, "s_per_frame": w / k,
                         "cpu_per_frame": c / k})
        w, c = _median_time(lambda: lm.embed_text(["a white sneaker rotating on a turntable"]), args.repeats)
        rows.append({"metric": f"clip:{mname}:prompt", "size": "-", "max_side": None, "s_per_frame": w,
                     "cpu_per_frame": c})
    print("\nper-frame cost (median of repeats; cpu s = process CPU time; ratio = wall / reference workload)")
    print(f"{'metric':<26}{'frame':>9}{'ocr side':>10}{'s/frame':>10}{'cpu s':>8}{'ratio':>8}")
    for r in rows:
        side = "full" if r["max_side"] is None else str(r["max_side"])
        side = side if r["metric"] == "ocr" else "-"
        print(f"{r['metric']:<26}{r['size']:>9}{side:>10}{r['s_per_frame']:>10.3f}{r['cpu_per_frame']:>8.3f}"
              f"{r['s_per_frame'] / ref0:>8.2f}"
              + (f"   read: {r['read']}" if r.get("read") is not None else ""))
    out["per_frame"] = rows

    # ---- the whole suite with the default policy ------------------------------------------------------
    clip = _card(768, 512, 121)
    fams = ["motion", "av_sync", "text", "clip_similarity", "structural"]
    ctx = MetricContext(prompt="a bouncing ball on a textured wall", clip_model="tiny-random")
    from pytest_ltx.expect import Expectations

    expect = Expectations.model_validate({"text": {"none": True}, "clip": {"structural_similarity_min": 0.9}})
    evaluate(clip, expect=expect, metrics=fams, context=ctx)  # cold: reader/model/JIT warm-up
    runs = []
    for _ in range(args.repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        ev = evaluate(clip, expect=expect, metrics=fams, context=ctx)
        runs.append((time.perf_counter() - t0, time.process_time() - c0, dict(ev.seconds)))
    wall, cpu, secs = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    errors = [o.message for o in ev.outcomes if o.status.value == "error"]
    keyframes = sample_indices(121, 24.0, 2.0)
    print(f"\nwhole suite, 121 frames 768x512 @24 fps, {len(keyframes)} keyframes {keyframes}, warm, median of "
          f"{args.repeats}:")
    for fam in fams:
        print(f"  {fam:<16}{secs.get(fam, float('nan')):>8.2f} s")
    print(f"  {'total (wall)':<16}{wall:>8.2f} s   process CPU {cpu:.2f} s   "
          f"({'within' if wall <= BUDGET_S else 'OVER'} the {BUDGET_S:g} s budget with the tiny CLIP)")
    vit = next((r["s_per_frame"] for r in rows if r["metric"] == "clip:ViT-B-32" and r["size"] == "768x512"), None)
    total_vit = None
    if vit is not None:
        vit_text = next(r["s_per_frame"] for r in rows if r["metric"] == "clip:ViT-B-32:prompt")
        total_vit = wall - secs["clip_similarity"] + vit * len(keyframes) + vit_text
        print(f"  {'with ViT-B-32':<16}{total_vit:>8.2f} s   "
              f"({'within' if total_vit <= BUDGET_S else 'OVER'} the budget; CLIP part "
              f"{vit * len(keyframes) + vit_text:.2f} s)")
    if errors:
        print("  errors:", errors)
    ref1 = statistics.median(_reference(torch) for _ in range(3))
    out.update({
        "suite": {"wall_s": wall, "cpu_s": cpu, "per_family_s": secs, "keyframes": keyframes,
                  "with_vitb32_s": total_vit, "budget_s": BUDGET_S, "errors": errors},
        "reference_s": [ref0, ref1],
        "load_avg_end": os.getloadavg()[0],
    })
    print(f"\nreference workload before/after: {ref0:.3f} / {ref1:.3f} s; load average "
          f"{out['load_avg_start']:.2f} -> {out['load_avg_end']:.2f}")
    print("GPU policy: with CUDA, OCR reads keyframes at full resolution (max_side='auto' -> None) and CLIP "
          "embeds on the GPU; the keyframe rate stays 2/s + first and last.")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
