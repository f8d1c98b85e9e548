"""Speed-up of 2 pytest-xdist workers over 1 on CPU-bound spec items, and where the time goes, in one run.

A temporary project holds one spec of N rendered items on the embedded tiny model (each ~1 s of CPU:
render, mp4 encode/decode, motion metrics) plus N test cards; the render cache is off so every item does
its work. Each repeat runs, interleaved (a noisy neighbour on a shared machine hits all alike):

- ``work -n 1``, ``work -n 2`` and ``work -n 2 --dist loadgroup`` (the tiny model renders on the CPU, so
  it must not be grouped onto one worker);
- ``start -n 1`` / ``start -n 2``: the same project with one 64×64×9, 1-step tiny render per worker and
  nothing else — what a run costs before and after its items: controller and worker start-up, each
  worker's import of torch + diffusers + transformers and tiny-model load, results shipping, report
  writing, worker exit;
- a **machine reference**: the same pure-Python CPU work done by one process twice vs two processes at
  once — the speed-up this box gives two processes right now (2.0 on two idle cores; less when other
  jobs hold the cores).

It prints the end-to-end speed-up (the ratio of median walls) and where the time goes:

- the CPU seconds of each process tree (user + sys of all children; ``-n 1``'s CPU/wall says whether one
  worker already keeps more than one core busy) and of each worker (its own ``getrusage`` at session end);
- each run's item timeline (a conftest in the project logs every item's start and end on the workers): how
  long until every worker has finished its first item (imports + model load + one item), and the **item
  phase** after that, as item-seconds (each item's ``-n 1`` seconds) done per second of wall;
- a projection for 2 free cores from CPU seconds: (controller + busiest worker) of ``-n 1`` over ``-n 2``.
  On a loaded box the measured ratio mostly measures the neighbours; the machine reference says by how much.

Amdahl: with fixed seconds F (mostly each worker's own imports, which two workers pay at the same time)
and parallel seconds P, the end-to-end speed-up is (F + P) / (F + P/2).

    .venv/bin/python benchmarks/bench_xdist.py [--items 8] [--repeats 3] [--size 192x192x49] [--steps 4]

Goal (issue 10): ≥ 1.7× on 2 free cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

_SPIN = "import sys\nn=0\nfor i in range(int(sys.argv[1])): n += i * i\n"

#: the benchmark project's conftest: each process appends when each item started and ended (wall clock)
_TIMELINE = textwrap.dedent("""\
    import os, time
    def _log(what, nodeid):
        path = os.environ.get("BENCH_XDIST_TIMELINE")
        if path and os.environ.get("PYTEST_XDIST_WORKER"):  # the controller relays the same hooks
            with open(path, "a") as f:
                f.write(f"{time.time():.4f} {os.environ.get('PYTEST_XDIST_WORKER', '-')} {what} {nodeid}\\n")
    def pytest_runtest_logstart(nodeid, location):
        _log("start", nodeid)
    def pytest_runtest_logfinish(nodeid, location):
        _log("end", nodeid)
    def pytest_sessionfinish(session):
        import resource
        r = resource.getrusage(resource.RUSAGE_SELF)  # this worker and its threads
        _log("cpu", f"{r.ru_utime + r.ru_stime:.3f}")
""")


def _spec(n: int, w: int, h: int, f: int, steps: int, cards: bool = True) -> str:
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
        f"    expect: {{motion: {{}}, baseline: {{enabled: false}}}}\n" for i in (seeds if cards else []))


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class Run:
    """One ``pytest specs/ -n workers`` run: wall and CPU seconds, and its items' timeline."""

    def __init__(self, project: Path, workers: int, *extra: str) -> None:
        log = project / "timeline.txt"
        log.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "pytest", "specs/", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
               "--ltx-no-cache", "-n", str(workers), *extra]
        c0, w0, t0 = _children_cpu(), time.time(), time.perf_counter()
        r = subprocess.run(cmd, cwd=project, capture_output=True, text=True,
                           env={**os.environ, "BENCH_XDIST_TIMELINE": str(log)})
        self.wall, self.cpu = time.perf_counter() - t0, _children_cpu() - c0
        if r.returncode != 0:
            raise SystemExit(f"pytest -n {workers} failed (exit {r.returncode}):\n{r.stdout[-3000:]}\n"
                             f"{r.stderr[-2000:]}")
        #: (worker, nodeid) -> [start, end] seconds from the launch
        self.items: dict[tuple[str, str], list[float]] = {}
        #: worker -> CPU seconds it used (all its threads)
        self.worker_cpu: dict[str, float] = {}
        for line in log.read_text().splitlines():
            t, worker, what, nodeid = line.split(" ", 3)
            if what == "cpu":
                self.worker_cpu[worker] = float(nodeid)
            else:
                self.items.setdefault((worker, nodeid), [0.0, 0.0])[what == "end"] = float(t) - w0

    def phase(self, cost: dict[str, float]) -> tuple[float, float, float]:
        """(start-up seconds, item-phase seconds, work done in it): the item phase begins when the last
        worker has finished its first item (every worker has paid its imports and model load) and ends with
        the last item; its work is the ``cost`` (the -n 1 seconds) of the items that ended in it."""
        first: dict[str, float] = {}
        for (worker, _), (_, end) in self.items.items():
            first[worker] = min(first.get(worker, end), end)
        begin = max(first.values())
        end = max(e for _, e in self.items.values())
        done = sum(cost.get(n, 0.0) for (_, n), (_, e) in self.items.items() if e > begin)
        return begin, end - begin, done


def item_costs(run: "Run") -> dict[str, float]:
    """Seconds each item took in a run (use a -n 1 run: one item at a time)."""
    return {n: e - s for (_, n), (s, e) in run.items.items()}


def machine_reference(loops: int) -> float:
    """Speed-up of two processes over one on the same pure-CPU work, measured now."""
    one = [sys.executable, "-c", _SPIN, str(2 * loops)]
    t0 = time.perf_counter()
    subprocess.run(one, check=True)
    serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    ps = [subprocess.Popen([sys.executable, "-c", _SPIN, str(loops)]) for _ in range(2)]
    for p in ps:
        p.wait()
    return serial / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=8, help="rendered items (and as many test cards)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--size", default="192x192x49")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--no-loadgroup", action="store_true", help="skip the -n 2 --dist loadgroup runs")
    a = p.parse_args()
    w, h, f = (int(x) for x in a.size.split("x"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-xdist-") as d:
        work, start = Path(d) / "work", Path(d) / "start"
        for project, text in ((work, _spec(a.items, w, h, f, a.steps)), (start, _spec(2, 64, 64, 9, 1, cards=False))):
            (project / "specs").mkdir(parents=True)
            (project / "specs" / "work.yaml").write_text(text)
            (project / "pytest.ini").write_text("[pytest]\n")
            (project / "conftest.py").write_text(_TIMELINE)
        Run(work, 1)  # warm-up: builds the tiny model once, warms the page cache
        runs: dict[str, list[Run]] = {}
        configs = [("work -n 1", work, 1, ()), ("work -n 2", work, 2, ()),
                   *([] if a.no_loadgroup else [("work -n 2 --dist loadgroup", work, 2, ("--dist", "loadgroup"))]),
                   ("start -n 1", start, 1, ()), ("start -n 2", start, 2, ())]
        ref: list[float] = []
        for _ in range(a.repeats):
            for name, project, n, extra in configs:
                runs.setdefault(name, []).append(Run(project, n, *extra))
            ref.append(machine_reference(6_000_000))
    load1 = os.getloadavg()
    med = {k: statistics.median(r.wall for r in v) for k, v in runs.items()}
    cpu = {k: statistics.median(r.cpu for r in v) for k, v in runs.items()}
    print(f"{2 * a.items} items ({a.items} tiny renders {a.size}, {a.steps} steps + {a.items} test cards), "
          f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} CPUs, "
          f"load average {load0[0]:.1f} before, {load1[0]:.1f} after (1-min)")
    for k, v in runs.items():
        print(f"  {k:28} wall {' '.join(f'{r.wall:5.1f}' for r in v)} s (median {med[k]:.1f}); "
              f"CPU {cpu[k]:.1f} s = {cpu[k] / med[k]:.2f} cores busy")
    print(f"machine reference (2 processes vs 1, pure CPU): {statistics.median(ref):.2f}× "
          f"({' '.join(f'{x:.2f}' for x in ref)})")
    print(f"start-up + shut-down alone (a 1-step 64×64×9 render per worker): {med['start -n 1']:.1f} s with -n 1, "
          f"{med['start -n 2']:.1f} s with -n 2 (CPU {cpu['start -n 1']:.1f} / {cpu['start -n 2']:.1f} s)")
    # the item phase, from each run's own timeline, in units of the -n 1 item seconds of the same repeat
    rates: dict[int, list[float]] = {1: [], 2: []}
    heads: dict[int, list[float]] = {1: [], 2: []}
    for one, two in zip(runs["work -n 1"], runs["work -n 2"]):
        cost = item_costs(one)
        for n, r in ((1, one), (2, two)):
            begin, span, done = r.phase(cost)
            rates[n].append(done / span)
            heads[n].append(begin)
    s_items = statistics.median(rates[2]) / statistics.median(rates[1])
    print(f"until every worker finished its first item (imports + model load + 1 item): "
          f"{statistics.median(heads[1]):.1f} s with -n 1, {statistics.median(heads[2]):.1f} s with -n 2")
    print(f"item phase after that: {statistics.median(rates[1]):.2f} vs {statistics.median(rates[2]):.2f} item-seconds "
          f"per second -> speed-up {s_items:.2f}×")
    if "work -n 2 --dist loadgroup" in med:
        print(f"-n 2 --dist loadgroup: {med['work -n 1'] / med['work -n 2 --dist loadgroup']:.2f}× "
              "(CPU models are not grouped onto one worker)")
    # on 2 free cores each worker has its own core and a run lasts its controller's CPU seconds plus its
    # busiest worker's (a model: it ignores waits, e.g. for process start, which both runs pay alike)
    proj = []
    for one, two in zip(runs["work -n 1"], runs["work -n 2"]):
        ctl1, ctl2 = one.cpu - sum(one.worker_cpu.values()), two.cpu - sum(two.worker_cpu.values())
        proj.append((ctl1 + max(one.worker_cpu.values())) / (ctl2 + max(two.worker_cpu.values())))
    print("CPU seconds per worker: -n 1 " + ", ".join(f"{r.worker_cpu['gw0']:.1f}" for r in runs["work -n 1"])
          + "; -n 2 " + ", ".join("+".join(f"{c:.1f}" for c in sorted(r.worker_cpu.values()))
                                  for r in runs["work -n 2"])
          + "; controller " + ", ".join(f"{r.cpu - sum(r.worker_cpu.values()):.1f}" for r in runs["work -n 1"]))
    print(f"projected for 2 free cores from CPU seconds ((controller + busiest worker) of -n 1 over -n 2): "
          f"{statistics.median(proj):.2f}×")
    s_end = med["work -n 1"] / med["work -n 2"]
    print(f"end-to-end speed-up of 2 workers over 1, measured: {s_end:.2f}× (goal ≥ 1.7× on 2 free cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
