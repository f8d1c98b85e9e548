"""Benchmark: a warm ``pytest specs/`` rerun against ``pytest specs/ --collect-only`` — whole processes.

The example specs (``specs/``: test-card canaries and tiny-model renders, with OCR, CLIP, A/V sync and a
determinism check) are run in a fresh temporary cache three ways, interleaved and best-of-N:

- ``cold``: the first run (renders, test cards drawn, every metric computed);
- ``warm``: the same command again with nothing changed — it must render nothing and compute nothing
  (the render cache holds every clip, the evaluation cache every metric result and each item's remembered
  measurement and comparison, the determinism proof is remembered);
- ``collect``: ``pytest specs/ --collect-only``, the reference measured in the same run.

Reported: each time and the ratio warm / collect (target ≤ 1.5). The machine is shared by many
processes, so absolute times are noisy; the ratio of interleaved best-of-N runs is the figure to read.
Both commands run without the plugins only the test extras install (Hypothesis, xdist), as in the README's
main-job venv: Hypothesis's terminal summary alone adds ~0.1 s to both, which flatters the ratio.

Run: ``.venv/bin/python benchmarks/bench_warm.py [--repeat 3] [--json out.json]``
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

ROOT = Path(__file__).resolve().parents[1]


#: plugins the test extras add (``.[test]``) that the README's main job does not install: off, so both runs
#: are measured as a user's venv runs them (Hypothesis alone imports itself in every terminal summary, ~0.1 s)
TEST_ONLY_PLUGINS = ("hypothesispytest", "xdist", "xdist.looponfail")


def run(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    off = [a for name in TEST_ONLY_PLUGINS for a in ("-p", f"no:{name}")]
    r = subprocess.run([sys.executable, "-m", "pytest", "specs/", "-q", *off, *args], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    return time.perf_counter() - t0, r.returncode, r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryDirectory(prefix="ltx-bench-warm-") as tmp:
        common = [f"--ltx-cache-dir={tmp}/cache", f"--ltx-report-dir={tmp}/report", "-o", f"cache_dir={tmp}/pc"]
        cold, _, cold_line = run(common, env)
        print(f"cold run: {cold:.1f} s ({cold_line})")
        warm: list[float] = []
        collect: list[float] = []
        for _ in range(a.repeat):
            c, _, _ = run([*common, "--collect-only"], env)
            w, _, line = run(common, env)
            collect.append(c)
            warm.append(w)
            print(f"collect-only {c:.2f} s, warm {w:.2f} s ({line})")
        report = json.loads((Path(tmp) / "report" / "results.json").read_text())
    items = report["items"] if isinstance(report, dict) else report
    computed = {r["nodeid"]: [f for f in (r.get("evaluation") or {}) if f not in ("clip", "truth", "metric_seconds",
                                                                                  "cached_metrics")
                              and f not in ((r.get("evaluation") or {}).get("cached_metrics") or [])]
                for r in items}
    rendered = [r["nodeid"] for r in items if r.get("source") == "render" and not r["timings"].get("cached")]
    res = {"cold_s": round(cold, 2), "warm_best_s": round(min(warm), 2), "collect_best_s": round(min(collect), 2),
           "warm_over_collect": round(min(warm) / min(collect), 2),
           "warm_rendered": rendered, "warm_computed": {k: v for k, v in computed.items() if v}}
    print(json.dumps(res, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
