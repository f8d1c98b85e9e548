"""Every exception the package raises across layers, in one leaf module (it imports nothing from the
package, so any module can raise or catch them without an import cycle).

The defining modules re-export theirs (``from pytest_ltx.render import RenderError`` keeps working). Messages are
built by the raiser; the classes only fix the category the plugin reports: an *error* (infrastructure:
:class:`RenderError` and its kinds, :class:`StoreError`, :class:`ReportWriteError`) or bad *input*
(:class:`ProfileError`, :class:`LimitError`, :class:`OutsideRoot`, :class:`ClipReadError`).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "ClipReadError",
    "IdentityError",
    "LimitError",
    "ModelNotFoundError",
    "OutsideRoot",
    "ProfileError",
    "RenderError",
    "RenderTimeout",
    "ReportWriteError",
    "StoreError",
    "WorkerGpuError",
]


class RenderError(Exception):
    """An infrastructure problem (missing model, unavailable device, broken pipeline), not a regression.

    The message says what is wrong and how to fix it; the plugin reports it as an error, never a failure.
    """


class RenderTimeout(RenderError):
    """The render ran past its timeout (stopped between steps)."""


class WorkerGpuError(RenderError):
    """More xdist workers than visible GPUs (or a worker whose GPU is not there)."""


class ModelNotFoundError(RenderError):
    """The weights a profile points at are not on this machine; the message says how to provide them."""


class ProfileError(ValueError):
    """A profile declaration in pyproject.toml is wrong; the message names the file, profile and field."""


class IdentityError(Exception):
    """The folder is not a loadable pipeline (a component's config or weights are missing)."""


class ClipReadError(Exception):
    """A clip file could not be read; the message names the file and what was wrong with it."""

    def __init__(self, path: os.PathLike[str] | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class LimitError(ValueError):
    """An input over a budget; ``str()`` names the input, the measured size, the limit and the setting."""


class OutsideRoot(ValueError):
    """A path that resolves outside every allowed folder; ``str()`` says where it points and what to do."""

    def __init__(self, path: Path, resolved: Path, root: Path) -> None:
        self.path = path
        self.resolved = resolved
        self.root = root
        super().__init__(
            f"{path} is outside the project root {root} (resolves to {resolved}); move it under the root, "
            "or allow its folder with --ltx-allow-dirs DIR (ini: ltx_allow_dirs)"
        )


class StoreError(OSError):
    """A store could not be written; ``str()`` is one line: store, path, cause, what was kept."""

    def __init__(self, store: str, path: Path | str, cause: str, kept: str) -> None:
        self.store = store
        self.path = str(path)
        self.cause = cause
        self.kept = kept
        super().__init__(f"{store}: cannot write {self.path}: {cause}; {kept}")

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self) -> tuple:  # picklable across xdist
        return (type(self), (self.store, self.path, self.cause, self.kept))


class ReportWriteError(OSError):
    """A report file could not be written. ``str(e)`` is one line: the path, why, and what was kept."""

    def __init__(self, path: Path, err: BaseException) -> None:
        self.path = Path(path)
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        super().__init__(f"could not write report file {self.path}: {reason} (the run's results are unaffected)")
