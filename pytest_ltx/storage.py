"""Files the stores write (render cache, baselines, report clips): their modes, what a failed write
says, and the sweep of leftovers a killed run left behind.

A full disk, a read-only mount or a folder without write permission is an everyday CI fault, not a bug:
it must end with one line naming the store, the path and what was kept — never a traceback — and a
shared cache or report must be readable by the CI user that uploads it (0644 files and 0755 folders
under the usual umask, not ``mkstemp``'s 0600).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import ContextManager, Iterator, Literal

from pytest_ltx.errors import StoreError  # noqa: F401 (re-exported)

__all__ = ["StoreError", "atomic_file", "write_atomic_bytes", "file_mode", "dir_mode", "make_readable", "describe_os_error", "is_write_fault", "sweep_stale", "stale_before", "LIVE_MARGIN_S"]


def _umask() -> int:
    """This process's umask: read from /proc (setting it to read it races with other threads), or, where
    there is no /proc, set and put straight back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode() -> int:
    """The mode ``open()`` would give a new file under this process's umask (0644 under umask 022)."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    return 0o777 & ~_umask()


def make_readable(path: Path | str) -> None:
    """Give a file made by ``mkstemp`` (0600) or a folder made by ``mkdtemp`` (0700) the ordinary mode."""
    p = Path(path)
    try:
        os.chmod(p, dir_mode() if p.is_dir() else file_mode())
    except OSError:
        pass


@contextmanager
def atomic_file(dest: Path | str, *, prefix: str | None = None, suffix: str = ".part",
                mode: Literal["ordinary", "best-effort", "private"] = "ordinary", fsync: bool = False,
                rename_lock: ContextManager[object] | None = None) -> Iterator[Path]:
    """The one way the package creates a file atomically: yield a temp path beside ``dest``
    (``.<name>.<random><suffix>``, swept by :func:`sweep_stale` when a killed run leaves it); when the block
    ends cleanly, give it its mode, optionally fsync it, and rename it over ``dest`` (under ``rename_lock``
    when given). A reader sees the old file or the whole new one; on any error the temp file is removed and
    the error propagates (the caller words it).

    ``mode``: ``"ordinary"`` — :func:`file_mode` (0644 under umask 022), an error if it cannot be set;
    ``"best-effort"`` — the same, but a chmod failure is ignored; ``"private"`` — ``mkstemp``'s 0600 kept.
    """
    dest = Path(dest)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}." if prefix is None else prefix, suffix=suffix,
                                dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if mode == "ordinary":
            os.chmod(tmp, file_mode())
        elif mode == "best-effort":
            make_readable(tmp)
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        with rename_lock if rename_lock is not None else nullcontext():
            os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)  # gone already after the rename


def write_atomic_bytes(dest: Path | str, data: bytes, *, suffix: str = ".part",
                       mode: Literal["ordinary", "best-effort", "private"] = "ordinary", fsync: bool = False) -> Path:
    """Write ``data`` to ``dest`` through :func:`atomic_file`."""
    with atomic_file(dest, suffix=suffix, mode=mode, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


_CAUSES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
}


def is_write_fault(e: BaseException) -> bool:
    """A fault of the disk or its permissions (full, quota, read-only, denied), not of the input."""
    return isinstance(e, OSError) and e.errno in _CAUSES


def describe_os_error(e: BaseException, *, with_path: bool = True) -> str:
    """``OSError`` → a short cause (``no space left on the device``) without the Python noise."""
    if isinstance(e, StoreError):
        return e.cause
    if isinstance(e, OSError):
        cause = _CAUSES.get(e.errno or -1) or (e.strerror or str(e))
        where = e.filename if with_path and isinstance(e.filename, str) else None
        return f"{cause} ({where})" if where else cause
    return f"{type(e).__name__}: {e}"


def sweep_stale(folder: Path, names: tuple[str, ...], older_than: float) -> list[Path]:
    """Remove entries of ``folder`` (recursively) whose name contains one of ``names`` and whose mtime
    is before ``older_than`` (seconds since the epoch: the session's start, so a concurrent session's
    live temp files are spared). Returns what was removed; never raises."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    try:
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in list(dirnames) + filenames:
                if not any(n in name for n in names):
                    continue
                p = Path(dirpath) / name
                try:
                    if p.lstat().st_mtime >= older_than:
                        continue
                    if p.is_dir() and not p.is_symlink():
                        shutil.rmtree(p, ignore_errors=True)
                        if name in dirnames:
                            dirnames.remove(name)
                    else:
                        p.unlink()
                    removed.append(p)
                except OSError:
                    continue
    except OSError:
        pass
    return removed


#: a temp file younger than this at session start may belong to a concurrent session still writing it
LIVE_MARGIN_S = 600.0


def stale_before(session_start: float | None = None) -> float:
    """The mtime before which a leftover temp file is stale: the session's start less a margin for
    writers of concurrent sessions (a store flush or an mp4 encode takes seconds, not minutes)."""
    return (time.time() if session_start is None else session_start) - LIVE_MARGIN_S
