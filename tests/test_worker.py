"""A run's processes: the CPU thread budget of an xdist worker, and the exit without the last long GC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from pytest_ltx.worker import THREAD_ENV_VARS, apply_thread_budget, cpu_budget, usable_cpus, worker_processes


def test_budget_shares_the_usable_cpus_among_the_workers() -> None:
    assert worker_processes({}) == 1 and worker_processes({"PYTEST_XDIST_WORKER_COUNT": "3"}) == 3
    assert worker_processes({"PYTEST_XDIST_WORKER_COUNT": "x"}) == 1
    assert cpu_budget({}, cpus=8) == 8
    assert cpu_budget({"PYTEST_XDIST_WORKER_COUNT": "2"}, cpus=8) == 4
    assert cpu_budget({"PYTEST_XDIST_WORKER_COUNT": "2"}, cpus=2) == 1
    assert cpu_budget({"PYTEST_XDIST_WORKER_COUNT": "4"}, cpus=2) == 1  # never 0
    if hasattr(os, "sched_getaffinity"):  # the affinity set, not the host's CPU count
        assert usable_cpus() == len(os.sched_getaffinity(0))


def test_budget_sizes_the_thread_pools_but_keeps_what_the_user_set() -> None:
    env = {"PYTEST_XDIST_WORKER_COUNT": "2", "MKL_NUM_THREADS": "7"}
    done = apply_thread_budget(env, cpus=8)
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "4" and env["MKL_NUM_THREADS"] == "7"
    assert set(done) == {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"}


_CHECK = textwrap.dedent("""
    import json, os
    from pytest_ltx.worker import cpu_budget

    def test_budget():
        print("BUDGET", json.dumps({"env": {k: os.environ.get(k) for k in %r}, "budget": cpu_budget(),
                                     "worker": os.environ.get("PYTEST_XDIST_WORKER")}))
""") % (THREAD_ENV_VARS,)


def test_an_xdist_worker_gets_its_share_items_record_it_and_its_heap_is_frozen_at_the_end(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_budget=_CHECK)
    pytester.makeconftest(textwrap.dedent("""
        import gc, os
        def pytest_unconfigure(config):  # a worker's heap is frozen once its session is over
            if hasattr(config, "workerinput"):
                with open(f"frozen-{os.environ['PYTEST_XDIST_WORKER']}.txt", "w") as f:
                    f.write(str(gc.get_freeze_count()))
    """))
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "c.yaml").write_text(
        "clips:\n  - id: card\n    testcard: {width: 32, height: 32, frames: 9, fps: 24}\n"
        "    expect: {baseline: {enabled: false}}\n")
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV_VARS}
    r = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-p", "no:randomly",
                        "test_budget.py", "specs/"], cwd=pytester.path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    expected = max(1, usable_cpus() // 2)
    # the clip item records the budget it ran with
    items = json.loads((pytester.path / "ltx-report" / "results.json").read_text())["items"]
    assert items[0]["timings"]["cpu_budget"] == expected
    frozen = [int(f.read_text()) for f in pytester.path.glob("frozen-gw*.txt")]
    assert len(frozen) == 2 and min(frozen) > 1000, frozen
    # frozen after the session's summary: a plugin importing Hypothesis there (which asks the collector who
    # refers to its PRNGs) must not see a frozen heap and warn on the user's run
    assert "register_random" not in r.stdout + r.stderr, r.stdout
    r = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider",
                        "-p", "no:randomly", "test_budget.py", "-rP"], cwd=pytester.path, env=env,
                       capture_output=True, text=True)
    line = next(x for x in r.stdout.splitlines() if x.startswith("BUDGET"))
    got = json.loads(line[len("BUDGET"):])
    assert got["worker"] in ("gw0", "gw1") and got["budget"] == expected
    assert got["env"] == {k: str(expected) for k in THREAD_ENV_VARS}


def test_a_run_freezes_the_heap_at_exit(pytester: pytest.Pytester) -> None:
    """Interpreter exit after torch + diffusers took ~2 s of cyclic GC (0.3 s frozen): the controller of
    an xdist run waits for it. An exit handler registered *before* the plugin's runs *after* it."""
    pytester.makeconftest(textwrap.dedent("""
        import atexit, gc, sys
        atexit.register(lambda: sys.stdout.write(f"FROZEN={gc.get_freeze_count()}\\n"))
    """))
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "test_x.py"],
                       cwd=pytester.path, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    frozen = int(r.stdout.rsplit("FROZEN=", 1)[1].split()[0])
    assert frozen > 1000, r.stdout
