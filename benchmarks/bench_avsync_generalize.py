"""A/V sync on content it was not designed on: random event clips from ``pytest_ltx.testcard.events``.

Seeds 0–199 are the *tuning* range (look at them while changing ``metrics/avsync.py``); seeds
100000 onwards are the *reporting* range, never looked at while tuning. Each clip (random shapes,
motions, background, pan, 24–60 fps, 16–48 kHz, click/thud/tonal/noise-burst sounds, irregular events,
offset in ±240 ms) goes through an H.264 + AAC mp4 round trip (``--no-mp4`` skips it) and is measured.

Prints, for the *clear* (irregular, visible, audible) clips, coverage (share measured) and |error| by
fps × sample rate, the number of confident wrong numbers (measured, |error| > 20 ms), and for the
periodic and eventless clips how many abstained (the right answer) and with which status.

    .venv/bin/python benchmarks/bench_avsync_generalize.py [--range report|tune] [--clear 200]
        [--periodic 30] [--eventless 30] [--cards 40] [--no-mp4] [--json out.json]

``--cards N`` also measures the project's own default test cards (``pytest_ltx.testcard``: 256×256,
73 frames at 24 fps, 48 kHz clicks; seeds 0…N−1, offsets cycling through 0, +120, −80, +200, −160 ms),
content neither range was drawn from: the guard against tuning the metric onto the generator alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RANGES = {"tune": 0, "report": 100_000}


def measure(kind: str, seeds: range, mp4: bool, tmp: Path) -> list[dict]:
    from pytest_ltx.media import read_clip, write_clip
    from pytest_ltx.metrics.avsync import analyze
    from pytest_ltx.testcard.events import generate

    rows = []
    for s in seeds:
        ec = generate(s, kind=kind)
        clip = ec.clip
        if mp4:
            clip = read_clip(write_clip(clip, tmp / "gen.mp4", preset="ultrafast"))
        t0 = time.perf_counter()
        res = analyze(clip)
        tr = ec.truth
        err = None if res.offset_ms is None else float(res.offset_ms - tr.offset_ms)
        rows.append({"seed": s, "kind": kind, "fps": tr.fps, "sr": tr.sample_rate, "offset_ms": tr.offset_ms,
                     "status": res.status.value, "error_ms": err, "confidence": round(res.confidence, 3),
                     "motions": list(tr.motions), "sounds": sorted(set(tr.sounds)), "background": tr.background,
                     "pan": tr.pan, "events": len(tr.event_frames), "seconds": time.perf_counter() - t0})
    return rows


#: offsets of the project's own cards, cycled over their seeds
CARD_OFFSETS = (0.0, 120.0, -80.0, 200.0, -160.0)


def measure_cards(n: int, mp4: bool, tmp: Path) -> list[dict]:
    from pytest_ltx import testcard as tc
    from pytest_ltx.media import read_clip, write_clip
    from pytest_ltx.metrics.avsync import analyze

    rows = []
    for s in range(n):
        off = CARD_OFFSETS[s % len(CARD_OFFSETS)]
        spec = tc.TestCardSpec(width=256, height=256, frames=73, fps=24, seed=s,
                               audio={"sample_rate": 48000, "offset_ms": off})
        clip = tc.draw(spec).clip
        if mp4:
            clip = read_clip(write_clip(clip, tmp / "card.mp4", preset="ultrafast"))
        res = analyze(clip)
        rows.append({"seed": s, "kind": "card", "offset_ms": off, "status": res.status.value,
                     "error_ms": None if res.offset_ms is None else float(res.offset_ms - off)})
    return rows


def table(rows: list[dict]) -> str:
    from pytest_ltx.testcard.events import FPS_CHOICES, RATE_CHOICES

    lines = ["| fps \\ rate | " + " | ".join(f"{r / 1000:g} kHz" for r in RATE_CHOICES) + " | all |",
             "|---|" + "---|" * (len(RATE_CHOICES) + 1)]

    def cell(sel: list[dict]) -> str:
        if not sel:
            return "—"
        errs = [abs(r["error_ms"]) for r in sel if r["error_ms"] is not None]
        cov = f"{len(errs)}/{len(sel)}"
        return f"{cov}, max {max(errs):.1f} ms" if errs else f"{cov}"

    for fps in FPS_CHOICES:
        cells = [cell([r for r in rows if r["fps"] == fps and r["sr"] == sr]) for sr in RATE_CHOICES]
        lines.append(f"| {fps:g} | " + " | ".join(cells) + f" | {cell([r for r in rows if r['fps'] == fps])} |")
    lines.append("| all | " + " | ".join(cell([r for r in rows if r["sr"] == sr]) for sr in RATE_CHOICES)
                 + f" | {cell(rows)} |")
    return "\n".join(lines)


def summary(clear: list[dict], periodic: list[dict], eventless: list[dict]) -> dict:
    errs = np.array([abs(r["error_ms"]) for r in clear if r["error_ms"] is not None])
    wrong = [r for r in clear + periodic + eventless if r["error_ms"] is not None and abs(r["error_ms"]) > 20]
    return {
        "clear": len(clear),
        "measured": int(errs.size),
        "coverage": round(errs.size / max(1, len(clear)), 4),
        "mean_abs_error_ms": round(float(errs.mean()), 2) if errs.size else None,
        "p95_abs_error_ms": round(float(np.percentile(errs, 95)), 2) if errs.size else None,
        "max_abs_error_ms": round(float(errs.max()), 2) if errs.size else None,
        "confident_wrong": len(wrong),
        "declined_clear": dict(Counter(r["status"] for r in clear if r["error_ms"] is None)),
        "periodic_abstained": f"{sum(r['error_ms'] is None for r in periodic)}/{len(periodic)}",
        "periodic_statuses": dict(Counter(r["status"] for r in periodic)),
        "eventless_abstained": f"{sum(r['error_ms'] is None for r in eventless)}/{len(eventless)}",
        "eventless_statuses": dict(Counter(r["status"] for r in eventless)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--range", choices=sorted(RANGES), default="report")
    ap.add_argument("--clear", type=int, default=200)
    ap.add_argument("--periodic", type=int, default=30)
    ap.add_argument("--eventless", type=int, default=30)
    ap.add_argument("--cards", type=int, default=0, help="also the project's own 256×256 cards, seeds 0…N−1")
    ap.add_argument("--no-mp4", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--verbose", action="store_true", help="print every clip that was not measured within 10 ms")
    a = ap.parse_args()
    base = RANGES[a.range]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clear = measure("clear", range(base, base + a.clear), not a.no_mp4, tmp)
        periodic = measure("periodic", range(base + 50_000, base + 50_000 + a.periodic), not a.no_mp4, tmp)
        eventless = measure("eventless", range(base + 70_000, base + 70_000 + a.eventless), not a.no_mp4, tmp)
        cards = measure_cards(a.cards, not a.no_mp4, tmp)
    s = summary(clear, periodic, eventless)
    if cards:
        errs = [abs(r["error_ms"]) for r in cards if r["error_ms"] is not None]
        s["cards"] = {"measured": f"{len(errs)}/{len(cards)}", "max_abs_error_ms": round(max(errs), 2) if errs else None,
                      "confident_wrong": sum(e > 20 for e in errs),
                      "declined": dict(Counter(r["status"] for r in cards if r["error_ms"] is None))}
    print(f"== A/V sync on random event clips, {a.range} range (seeds from {base}), "
          f"{'through mp4' if not a.no_mp4 else 'no mp4'}; {time.perf_counter() - t0:.0f} s ==")
    print("clear clips: measured/total and worst |error| by fps × rate")
    print(table(clear))
    for k, v in s.items():
        print(f"{k}: {v}")
    if a.verbose:
        for r in clear + periodic + eventless:
            bad = r["error_ms"] is None if r["kind"] == "clear" else r["error_ms"] is not None
            if bad or (r["error_ms"] is not None and abs(r["error_ms"]) > 10):
                print("  ", {k: r[k] for k in ("seed", "kind", "fps", "sr", "status", "error_ms", "confidence",
                                                "motions", "sounds", "background", "pan", "events")})
    if a.json:
        a.json.write_text(json.dumps({"summary": s, "rows": clear + periodic + eventless + cards}, indent=1))


if __name__ == "__main__":
    main()
