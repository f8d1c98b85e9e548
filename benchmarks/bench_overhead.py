"""Harness overhead of one pytest-ltx item over a bare ``pipe(...)`` call, measured in the same run.

Three ways to get the same clip from the same loaded tiny pipeline, interleaved so a noisy neighbour
hits all of them alike:

- ``bare``     ``pipe(**kwargs, generator=..., output_type="np")`` — the reference;
- ``render``   ``LTX2Renderer.render(req)`` — + uint8 conversion, provenance, thread pinning;
- ``pytest``   ``pytest.main([spec])`` with ``--ltx-no-cache`` — the whole item: collection, render,
               mp4 encode, cache put, mp4 decode, metrics + checks (format expectations and the golden
               baseline comparison, baselines created during warm-up), results.json, report. Reported per
               item, for a spec of 1 item and of K items (session start-up amortised).

Ratios are medians over repeats, in wall time and in process CPU time (all threads; less sensitive to
other processes on a shared box). The absolute overhead (seconds) is what matters for real checkpoints:
it does not grow with model size, so it is also shown against a 10 s render (an H100 768×512×121
distilled clip, from the design notes) for scale.

    .venv/bin/python benchmarks/bench_overhead.py [--repeats 5] [--items 4] [--sizes 64x64x25,256x384x121]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

REFERENCE_RENDER_S = 10.0


def _spec(width: int, height: int, frames: int, seeds: list[int]) -> str:
    return textwrap.dedent(
        f"""\
        defaults:
          model: tiny
          width: {width}
          height: {height}
          frames: {frames}
          fps: 24
          steps: 2
        clips:
          - id: bench
            prompt: "a robot dancing"
            negative_prompt: "blurry"
            seeds: {seeds}
            expect:
              format: {{audio: true}}
        """
    )


class PytestPathFailed(Exception):
    """The plugin path could not run an item (e.g. a metric module not landed yet)."""


#: per-item phase timings read back from results.json after every measured pytest run
_PHASES: dict[str, list[float]] = {}


def _collect_timings(project: Path) -> None:
    import json

    try:
        doc = json.loads((project / "ltx-report" / "results.json").read_text())
    except (OSError, ValueError):
        return
    for item in doc.get("items", []):
        t = item.get("timings") or {}
        for k, v in t.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                _PHASES.setdefault(k, []).append(float(v))


def _pytest_run(project: Path, spec_name: str, *extra: str) -> float:
    import pytest

    args = [f"specs/{spec_name}", "-q", "-p", "no:cacheprovider", "--ltx-no-cache", "-p", "no:randomly", *extra]
    cwd = os.getcwd()
    os.chdir(project)
    try:
        sink = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            code = pytest.main(args)
        dt = time.perf_counter() - t0
    finally:
        os.chdir(cwd)
    _collect_timings(project)
    if code != 0:
        lines = [ln for ln in sink.getvalue().splitlines() if ln.startswith(("E ", "FAILED", "ERROR"))]
        raise PytestPathFailed(f"exit code {code}: " + (lines[-1] if lines else sink.getvalue()[-300:]))
    return dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--items", type=int, default=4, help="items in the multi-item spec (K)")
    ap.add_argument("--sizes", default="64x64x25,256x384x121", help="WxHxF list")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    os.environ.setdefault("PYTEST_LTX_HOME", str(work / "home"))

    import torch

    from pytest_ltx.models import TINY_PROFILE
    from pytest_ltx.render import RenderRequest
    from pytest_ltx.render.ltx2 import exact_zero_kwargs
    from pytest_ltx.render.pool import get_renderer

    why_no_plugin = ""
    try:
        import pytest_ltx.plugin  # noqa: F401
        have_plugin = True
    except ImportError as e:
        have_plugin, why_no_plugin = False, f"pytest_ltx.plugin is not importable ({e})"

    renderer = get_renderer(TINY_PROFILE)  # the same memoized pipeline the plugin will use
    pipe = renderer.pipeline
    project = work / "project"
    (project / "specs").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\nltx_specs = "specs"\n')

    rows = []
    for size in args.sizes.split(","):
        w, h, f = (int(x) for x in size.lower().split("x"))
        req = RenderRequest(prompt="a robot dancing", negative_prompt="blurry", seed=0, width=w, height=h,
                            frames=f, fps=24.0, steps=2)
        plan = renderer.plan(req)  # the very arguments the renderer passes (one stage: the dev recipe)
        kw = {**exact_zero_kwargs(plan.stage_kwargs(plan.stages[0])), "prompt": req.prompt,
              "negative_prompt": plan.negative_prompt}
        k = args.items
        (project / "specs" / "one.yaml").write_text(_spec(w, h, f, [0]))
        (project / "specs" / "many.yaml").write_text(_spec(w, h, f, list(range(k))))

        def bare() -> float:
            old = torch.get_num_threads()
            torch.set_num_threads(TINY_PROFILE.threads)  # same pinning the renderer applies
            try:
                t0 = time.perf_counter()
                pipe(**kw, generator=torch.Generator("cpu").manual_seed(0), output_type="np")
                return time.perf_counter() - t0
            finally:
                torch.set_num_threads(old)

        def render() -> float:
            t0 = time.perf_counter()
            renderer.render(req)
            return time.perf_counter() - t0

        # warm-up: first calls pay allocator / kernel selection; the first pytest run pays imports
        bare(), render()
        _PHASES.clear()
        if have_plugin:
            try:  # golden baselines first (a missing one fails the item), then a plain warm-up run
                for spec in ("one.yaml", "many.yaml"):
                    _pytest_run(project, spec, "--ltx-update-baselines")
                _pytest_run(project, "one.yaml")
            except PytestPathFailed as e:
                have_plugin, why_no_plugin = False, f"the pytest item did not pass ({e})"
            _PHASES.clear()
        t: dict[str, list[float]] = {"bare": [], "render": [], "pytest1": [], "pytestK": []}
        tc: dict[str, list[float]] = {n: [] for n in t}  # process CPU time: robust to neighbour load
        runs = {
            "bare": bare,
            "render": render,
            "pytest1": lambda: _pytest_run(project, "one.yaml"),
            "pytestK": lambda: _pytest_run(project, "many.yaml") / k,
        }
        order = [n for n in runs if have_plugin or not n.startswith("pytest")]
        for i in range(args.repeats):
            # alternate the order (ABBA) so allocator warm-up and neighbour load favour no path
            for name in order if i % 2 == 0 else order[::-1]:
                c0 = time.process_time()
                t[name].append(runs[name]())
                tc[name].append((time.process_time() - c0) / (k if name == "pytestK" else 1))
        med = {name: statistics.median(v) for name, v in t.items() if v}
        med.update({"cpu_" + name: statistics.median(v) for name, v in tc.items() if v})
        phases = {k: statistics.median(v) for k, v in _PHASES.items()}
        _PHASES.clear()
        rows.append((size, med, phases))

    print(f"\npytest-ltx harness overhead (tiny model, 2 steps, full guidance, CPU, 1 torch thread, "
          f"median of {args.repeats}, K={args.items})")
    if not have_plugin:
        print(f"{why_no_plugin}: only renderer.render() vs bare pipe() is measured")
    hdr = (f"{'clip':>13} {'path':>22} {'s/item':>8} {'ratio':>7} {'overhead s':>11} {'vs 10 s render':>15}"
           f" {'cpu s/item':>11} {'cpu ratio':>10}")
    print(hdr)
    print("-" * len(hdr))
    for size, med, _ in rows:
        base = med["bare"]
        for name, label in (("bare", "bare pipe()"), ("render", "renderer.render()"),
                            ("pytest1", "pytest, 1 item"), ("pytestK", f"pytest, per item of {args.items}")):
            if name not in med:
                continue
            v = med[name]
            over = v - base
            cpu, cbase = med["cpu_" + name], med["cpu_bare"]
            print(f"{size:>13} {label:>22} {v:8.3f} {v / base:7.3f} {over:+11.3f} "
                  f"{over / REFERENCE_RENDER_S * 100:+14.1f}% {cpu:11.3f} {cpu / cbase:10.3f}")
    print("\nratio = time / bare pipe() time in the same run; target: pytest per item <= 1.05 × bare.")
    if any(p for _, _, p in rows):
        print("\nwhere a pytest item's time goes (medians of the plugin's own results.json timings, s):")
        for size, _, phases in rows:
            shown = ", ".join(f"{k}={v:.3f}" for k, v in sorted(phases.items()))
            print(f"{size:>13}  {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
