"""Guarding a render: infrastructure errors are retried, regressions never.

- **CUDA out of memory** → free the memory (garbage, cached blocks) and retry *once* with the next
  lower-memory placement (full → model offload → group → sequential); the attempt is recorded.
- **I/O errors** (``OSError``: a network filesystem hiccup, a cache volume, a model folder on NFS) →
  retried with exponential backoff, a bounded number of times.
- **Timeout** → the render is stopped between denoising steps (a step callback checks the deadline) and
  reported as an infrastructure error; it is not retried (it would time out again).
- Anything else, and every metric or assertion failure, is never retried: those live outside this
  module on purpose (checks run in the item's ``runtest``, after the clip exists).

The same step callback prints the progress of long renders on a terminal and nothing in CI logs.
"""

from __future__ import annotations

import errno
import gc
import os
import sys
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import IO, Any, Callable, Mapping, TypeVar

from pytest_ltx.errors import RenderTimeout  # noqa: F401 (re-exported)

__all__ = ["ErrorKind", "RenderTimeout", "Attempt", "RenderGuard", "StepMonitor", "classify", "free_cuda",
           "retry_io", "progress_enabled"]

T = TypeVar("T")


class ErrorKind(str, Enum):
    OUT_OF_MEMORY = "out_of_memory"
    IO = "io"
    TIMEOUT = "timeout"
    OTHER = "other"


def classify(exc: BaseException) -> ErrorKind:
    """Which kind of failure ``exc`` is; a RenderError wrapping one keeps its cause's kind."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, RenderTimeout):
            return ErrorKind.TIMEOUT
        name = e.__class__.__name__
        if name == "OutOfMemoryError" or "CUDA out of memory" in str(e) or "CUBLAS_STATUS_ALLOC_FAILED" in str(e):
            return ErrorKind.OUT_OF_MEMORY
        if isinstance(e, OSError) and not isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError,
                                                          NotADirectoryError)):
            # a full disk, a read-only mount, a quota (storage.StoreError says so) will not heal by waiting
            if name == "StoreError" or e.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES):
                return ErrorKind.OTHER
            return ErrorKind.IO  # transient: EIO, ESTALE, connection resets, timeouts of a network mount
        e = e.__cause__ or e.__context__
    return ErrorKind.OTHER


@dataclass(frozen=True)
class Attempt:
    """One try at rendering: what placement it used and how it ended (``error`` None = success)."""

    placement: str
    seconds: float
    error_kind: ErrorKind | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"placement": self.placement, "seconds": round(self.seconds, 3),
                "error_kind": None if self.error_kind is None else self.error_kind.value, "error": self.error}


def free_cuda() -> None:
    """Give back what a failed render held: drop garbage (the failed call's tensors), empty the cache."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
    except Exception:  # freeing is best effort; the retry reports what remains
        pass


def retry_io(fn: Callable[[], T], *, attempts: int = 3, backoff_s: float = 1.0,
             sleep: Callable[[float], None] = time.sleep, log: list[Attempt] | None = None,
             what: str = "io") -> T:
    """Call ``fn``; on an I/O error (see :func:`classify`) wait ``backoff_s``, 2×, 4×… and call again,
    ``attempts`` times in all. Other errors propagate at once."""
    for i in range(attempts):
        t0 = time.perf_counter()
        try:
            return fn()
        except Exception as e:
            if classify(e) is not ErrorKind.IO or i == attempts - 1:
                raise
            if log is not None:
                log.append(Attempt(what, time.perf_counter() - t0, ErrorKind.IO, f"{e.__class__.__name__}: {e}"))
            sleep(backoff_s * 2**i)
    raise AssertionError("unreachable")  # pragma: no cover


def silence_progress_bars() -> None:
    """No third-party progress bars in a test run ("Loading pipeline components", "Loading weights",
    "Writing model shards"): they interleave with pytest's output and say nothing a reviewer needs."""
    import diffusers.utils.logging as dlog
    import huggingface_hub.utils as hub_utils
    import transformers.utils.logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    hub_utils.disable_progress_bars()


def progress_enabled(stream: IO[str] | None = None, env: Mapping[str, str] | None = None) -> bool:
    """Progress lines only on an interactive terminal, never in CI logs (``CI`` set) or captured output."""
    env = os.environ if env is None else env
    if env.get("CI") or env.get("PYTEST_LTX_NO_PROGRESS"):
        return False
    stream = stream if stream is not None else sys.__stderr__
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


@dataclass
class RenderGuard:
    """What a render is held to: a timeout (None: none), a progress label, the spec's VRAM budget."""

    timeout_s: float | None = None
    label: str = ""
    vram_gb_max: float | None = None
    io_attempts: int = 3
    io_backoff_s: float = 1.0
    progress: bool | None = None  # None: decide from the terminal
    stream: IO[str] | None = None
    attempts: list[Attempt] = field(default_factory=list)


class StepMonitor:
    """A diffusers ``callback_on_step_end``: stops the render at the deadline and shows progress."""

    def __init__(self, guard: RenderGuard, total_steps: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.guard = guard
        self.total = total_steps
        self.clock = clock
        self.t0 = clock()
        self.show = guard.progress if guard.progress is not None else progress_enabled(guard.stream)
        self.stream = guard.stream if guard.stream is not None else sys.__stderr__

    def check(self) -> None:
        t = self.guard.timeout_s
        if t is not None and self.clock() - self.t0 > t:
            raise RenderTimeout(f"render timed out after {self.clock() - self.t0:.0f} s (timeout {t:g} s: "
                                "budget.timeout_s in the spec or ltx_render_timeout in the ini)")

    def __call__(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.show and self.stream is not None:
            elapsed = self.clock() - self.t0
            end = "\n" if step + 1 >= self.total else ""
            self.stream.write(f"\r  {self.guard.label or 'render'}: step {step + 1}/{self.total} ({elapsed:.0f} s){end}")
            self.stream.flush()
        self.check()
        return callback_kwargs
