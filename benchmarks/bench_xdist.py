"""Speed-up of 2 pytest-xdist workers over 1 on CPU-bound spec items, measured in the same run.

A temporary project holds one spec of N rendered items on the embedded tiny model (each a few seconds of
CPU: render, mp4 encode/decode, motion metrics) plus N test cards; the render cache is off so every
item does its work. ``pytest specs/ -n 1`` and ``-n 2`` run alternately (repeats), so a noisy neighbour on
a shared machine hits both alike; the ratio of median wall times is the speed-up. Both use xdist (same
start-up: worker processes import torch once each), so the ratio is the parallel efficiency of the
plugin: per-worker renderer, one torch thread per process, results shipped to the controller.

    .venv/bin/python benchmarks/bench_xdist.py [--items 8] [--repeats 2] [--size 192x192x49] [--steps 4]

The goal is ≥ 1.7× on 2 free cores; on a box whose cores are shared the figure is lower, and the script
prints the load average next to it so the reader can judge.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path


def _spec(n: int, w: int, h: int, f: int, steps: int) -> str:
    seeds = list(range(n))
    return textwrap.dedent(f"""\
        defaults:
          model: tiny
          width: {w}
          height: {h}
          frames: {f}
          fps: 24
          steps: {steps}
          guidance: {{stg_blocks: [1]}}
        clips:
          - id: work
            prompt: "a robot dancing in the city"
            seeds: {seeds}
            expect:
              motion: {{}}
              baseline: {{enabled: false}}
        """) + "".join(
        f"  - id: card{i}\n"
        f"    testcard: {{width: {w}, height: {h}, frames: {f}, fps: 24, seed: {i}, pan: [0.4, 0.2]}}\n"
        f"    expect: {{motion: {{}}, baseline: {{enabled: false}}}}\n" for i in seeds)


def run(project: Path, workers: int) -> float:
    cmd = [sys.executable, "-m", "pytest", "specs/", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           "--ltx-no-cache", "-n", str(workers)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=project, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"pytest -n {workers} failed (exit {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
    return dt


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=8, help="rendered items (and as many test cards)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--size", default="192x192x49")
    p.add_argument("--steps", type=int, default=4)
    a = p.parse_args()
    w, h, f = (int(x) for x in a.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="bench-xdist-") as d:
        project = Path(d)
        (project / "specs").mkdir()
        (project / "specs" / "work.yaml").write_text(_spec(a.items, w, h, f, a.steps))
        (project / "pytest.ini").write_text("[pytest]\n")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        run(project, 1)  # warm-up: builds the tiny model once, warms the page cache
        one, two = [], []
        for _ in range(a.repeats):
            one.append(run(project, 1))
            two.append(run(project, 2))
        m1, m2 = statistics.median(one), statistics.median(two)
        load = os.getloadavg()
        print(f"{2 * a.items} items ({a.items} tiny renders {a.size}, {a.steps} steps + {a.items} test cards), "
              f"{os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f}")
        print(f"-n 1: {' '.join(f'{x:.1f}' for x in one)} s (median {m1:.1f})")
        print(f"-n 2: {' '.join(f'{x:.1f}' for x in two)} s (median {m2:.1f})")
        print(f"speed-up of 2 workers over 1: {m1 / m2:.2f}× (goal ≥ 1.7× on 2 free cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
