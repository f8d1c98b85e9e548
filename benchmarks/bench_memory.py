"""Benchmark: peak memory of the user-facing paths on long, large clips — whole processes.

For each size (default: 20 s at 1080p and at 4K, 24 fps, with a 48 kHz AAC track), a clip is generated
into a temporary folder with PyAV (a moving pattern with cuts and a click track; nothing is committed),
then three fresh processes are run and their peak RSS read from ``getrusage(RUSAGE_CHILDREN)``:

- ``reference``: a process that imports PyAV/numpy/OpenCV and decodes the clip frame by frame into RGB,
  keeping nothing — the floor any streaming evaluation sits on;
- ``evaluate``: ``pytest-ltx evaluate CLIP --metrics motion,av_sync,structural``;
- ``pytest``: ``pytest specs/`` on a project whose only spec is a ``file:`` item pointing at the clip, with
  motion, A/V sync and format expectations (baselines off, caches in the temp folder).

Each is reported in MB, as a ratio to the reference process, and against the size the decoded clip
would take in memory (frames × width × height × 3). Targets: ≤ 1.5 GB at 1080p, ≤ 2 GB at 4K, both
paths. The machine is shared: the times printed are noisy; the memory figures are not.

Run: ``.venv/bin/python benchmarks/bench_memory.py [--seconds 20] [--sizes 1920x1080,3840x2160] [--json out]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_MEASURE = ("import resource, subprocess, sys, time; t=time.perf_counter(); "
            "r=subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter()-t, r.returncode); "
            "sys.stderr.write(r.stderr[-2000:] if r.returncode else '')")

_REFERENCE = ("import sys, av, numpy, cv2\n"
              "with av.open(sys.argv[1]) as c:\n"
              "    s = c.streams.video[0]; s.thread_type = 'AUTO'\n"
              "    for f in c.decode(s): f.to_ndarray(format='rgb24')\n")


def make_clip(path: Path, width: int, height: int, seconds: float, fps: int = 24, sr: int = 48000) -> int:
    """A moving gradient with a bouncing block, a hard cut every 5 s and a click on each bounce."""
    import av
    import numpy as np

    n = int(seconds * fps)
    yy, xx = np.mgrid[0:height, 0:width]
    base = ((xx * 255 // max(1, width - 1))[..., None] * np.array([1, 0.6, 0.3])).astype(np.uint8)
    clicks = []
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "23"}
        a = out.add_stream("aac", rate=sr)
        a.layout = "mono"
        bs = max(16, height // 8)
        for i in range(n):
            f = np.roll(base, (i * 7) % width, axis=1) if (i // (5 * fps)) % 2 == 0 else 255 - base
            t = (i % 24) / 24
            y = int((height - bs) * abs(1 - 2 * t))
            if i % 24 == 0:
                clicks.append(i / fps)
            x = (i * 13) % max(1, width - bs)
            f = f.copy()
            f[y : y + bs, x : x + bs] = 255
            for p in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        wav = np.random.default_rng(0).normal(0, 0.003, int(seconds * sr)).astype(np.float32)
        for c in clicks:
            s = int(c * sr)
            wav[s : s + 200] += np.hanning(200).astype(np.float32) * 0.8
        chunk = 1024
        for k, s in enumerate(range(0, len(wav), chunk)):
            af = av.AudioFrame.from_ndarray(wav[None, s : s + chunk].copy(), format="fltp", layout="mono")
            af.sample_rate = sr
            af.pts = s
            af.time_base = Fraction(1, sr)
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode(None):
            out.mux(p)
    return n


def measure(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
    out = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], cwd=cwd, env=env, capture_output=True, text=True)
    rss_kb, secs, rc = out.stdout.split()
    if int(rc) not in (0, 1):
        sys.stderr.write(out.stderr)
    return int(rss_kb) / 1024.0, float(secs), int(rc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--sizes", default="1920x1080,3840x2160")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rows = []
    with tempfile.TemporaryDirectory(prefix="ltx-bench-mem-") as tmp:
        t = Path(tmp)
        for size in args.sizes.split(","):
            w, h = (int(v) for v in size.lower().split("x"))
            clip = t / f"clip_{w}x{h}.mp4"
            t0 = time.perf_counter()
            n = make_clip(clip, w, h, args.seconds)
            gen_s = time.perf_counter() - t0
            raw_mb = n * w * h * 3 / 2**20
            cuts = len([i for i in range(1, n) if i % (5 * 24) == 0])
            proj = t / f"proj_{w}x{h}"
            (proj / "specs").mkdir(parents=True)
            (proj / "pytest.ini").write_text("[pytest]\n")
            (proj / "specs" / "long.yaml").write_text(textwrap.dedent(f"""
                clips:
                  - id: long
                    file: {clip}
                    expect:
                      format: {{frames: {n}, width: {w}, height: {h}}}
                      motion: {{cuts: {cuts}}}
                      av_sync: {{preset: itu-bt1359-detectable}}
                      baseline: {{enabled: false}}
                """))
            ref = measure([sys.executable, "-c", _REFERENCE, str(clip)], t, env)
            ev = measure([sys.executable, "-m", "pytest_ltx.cli", "evaluate", str(clip),
                          "--metrics", "motion,av_sync,structural"], t, env)
            py = measure([sys.executable, "-m", "pytest", "specs/", "-q", "-p", "no:cacheprovider",
                          "--ltx-allow-outside-root", f"--ltx-cache-dir={t / 'cache'}",
                          f"--ltx-report-dir={t / 'report'}", "-o", "ltx_specs=specs"], proj, env)
            row = {"size": f"{w}x{h}", "frames": n, "decoded_clip_mb": round(raw_mb), "generate_s": round(gen_s, 1)}
            for name, (mb, secs, rc) in (("reference", ref), ("evaluate", ev), ("pytest", py)):
                row[name] = {"peak_rss_mb": round(mb), "x_reference": round(mb / ref[0], 2),
                             "x_decoded_clip": round(mb / raw_mb, 3), "seconds": round(secs, 1), "rc": rc}
            rows.append(row)
            print(json.dumps(row))
    print("\nsize       decoded   reference   evaluate (x ref)   pytest specs/ (x ref)")
    for r in rows:
        print(f"{r['size']:10} {r['decoded_clip_mb']:6} MB {r['reference']['peak_rss_mb']:6} MB "
              f"{r['evaluate']['peak_rss_mb']:6} MB ({r['evaluate']['x_reference']}x)   "
              f"{r['pytest']['peak_rss_mb']:6} MB ({r['pytest']['x_reference']}x)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
