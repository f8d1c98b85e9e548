"""What one process of a run may use, and how it ends (a plain run, or one pytest-xdist worker).

**CPU thread budget.** ``-n 2`` on two cores must not start two processes that each size their thread
pools for the whole machine (torch's intra-op pool, BLAS, OpenCV, FFmpeg's decoder threads: up to 4× the
cores, with OpenMP threads spinning for work that another process holds the core for). Each process gets
``cpu_budget()`` = the CPUs it may run on (``os.sched_getaffinity``: a container's or ``taskset``'s CPU set,
not the host's count) divided by the processes of the run (``PYTEST_XDIST_WORKER_COUNT``; 1 outside xdist),
at least 1. An xdist worker applies it once at start (:func:`apply_thread_budget`): ``OMP_NUM_THREADS``,
``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` unless the user set them (read by torch and BLAS when they
are first imported; torch's pool too if it is already loaded); the motion metric's OpenCV threads take the
budget where they run. FFmpeg's decoder keeps its own thread count: decoding is a small share of an item,
and its thread count decides how a truncated stream fails (an error mid-stream, or a short count).

**Nothing that decides a clip's bits depends on it**, so ``-n 1`` and ``-n 2`` (or a 2-core CI box and a
64-core workstation) render, encode and measure alike: the render's torch threads come from the model
profile (``threads``, 1 for ``tiny``; in the placement, so in the provenance and the cache key); x264's
threads are fixed (:data:`pytest_ltx.media.X264_THREADS`, in the provenance: x264's own default follows
the CPU count and changes the bytes); OpenCV's optical flow moves by ~1e-10 px between thread counts (as
much as between two runs with the same count), far below any tolerance. The budget itself is recorded in
each item's timings (``cpu_budget``), next to the seconds it explains.

**Exit.** A process that imported torch, diffusers and transformers spends ~2 s at interpreter exit in the
cyclic garbage collector walking objects that are about to be freed with the process anyway; an xdist
worker's exit is on the run's critical path (the controller waits for it), and so is a plain run's.
:func:`freeze_at_exit` moves everything still alive at exit into the collector's permanent generation
(``gc.freeze``), which cuts that to ~0.3 s. An xdist worker freezes already at its unconfigure, once the session and its
terminal summary are over (:func:`freeze_finished_worker`; earlier, a plugin importing Hypothesis in that
summary got a spurious ``register_random`` warning): pytest's unconfigure cleanup then runs ``gc.collect()``
a few times to surface unraisable exceptions (0.5 s over torch's heap, for output xdist does not relay from a finished worker).
Nothing that happens during the items is affected.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import Mapping, MutableMapping

__all__ = ["usable_cpus", "worker_processes", "cpu_budget", "apply_thread_budget", "freeze_at_exit",
           "freeze_finished_worker", "THREAD_ENV_VARS"]

#: environment variables that size the OpenMP / MKL / OpenBLAS pools when those libraries load
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

_registered = False


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity set; ``os.cpu_count()`` where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def worker_processes(env: Mapping[str, str] | None = None) -> int:
    """How many processes of this run share the CPUs: the xdist worker count, else 1."""
    env = os.environ if env is None else env
    n = env.get("PYTEST_XDIST_WORKER_COUNT", "")
    return max(1, int(n)) if n.isdigit() else 1


def cpu_budget(env: Mapping[str, str] | None = None, cpus: int | None = None) -> int:
    """CPU threads this process should use: its usable CPUs shared out among the run's processes, ≥ 1."""
    return max(1, (usable_cpus() if cpus is None else cpus) // worker_processes(env))


def apply_thread_budget(env: MutableMapping[str, str] | None = None, cpus: int | None = None) -> dict[str, str]:
    """Size this process's thread pools by :func:`cpu_budget` (variables the user set are kept); returns
    what was set. Call it before torch is imported; a torch already loaded is resized too."""
    env = os.environ if env is None else env
    budget = cpu_budget(env, cpus)
    done = {}
    for name in THREAD_ENV_VARS:
        if not env.get(name):
            env[name] = done[name] = str(budget)
    torch = sys.modules.get("torch")
    if torch is not None and "OMP_NUM_THREADS" in done and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(budget)
    return done


def freeze_at_exit() -> None:
    """Register (once per process) an exit handler that freezes the cyclic collector's view of the heap,
    so interpreter finalization does not walk the objects of torch & co. one last time."""
    global _registered
    if not _registered:
        _registered = True
        atexit.register(gc.freeze)


def freeze_finished_worker(is_worker: bool) -> None:
    """On an xdist worker whose items are all done: freeze the heap now (see the module docstring)."""
    if is_worker:
        gc.freeze()
