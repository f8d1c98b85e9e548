"""Writing report files: atomically, readable by the CI user that uploads them (mode 0666 minus the
umask, as ``open()`` would create them: ``mkstemp`` makes 0600), and with one clear error when the folder
is full or not writable — a report must never crash the run."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import BinaryIO, Callable

from pytest_ltx.errors import ReportWriteError  # noqa: F401 (re-exported)
from pytest_ltx.storage import atomic_file, file_mode

__all__ = ["ReportFiles", "ReportWriteError", "file_mode", "media_name", "write_atomic", "copy_atomic"]


def media_name(nodeid: str, max_slug: int = 48) -> str:
    """A file-system name for an item's report media: a readable slug of its node id plus a short hash of
    the whole id. Never the raw id (which may hold ``<``, quotes, ``/`` or ``..``), and unique per item
    even when two spec folders hold files of the same name with the same clip ids."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", nodeid.rsplit("/", 1)[-1]).strip("-")[:max_slug].strip("-") or "item"
    return f"{slug}-{hashlib.sha256(nodeid.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


class ReportFiles:
    """Report-relative file names (from a results file or a media manifest, which an untrusted run may have
    edited) checked against the report folder: :meth:`file` is the real path of a regular file inside it,
    or None — absolute names, ``..`` and symlinks leading out are refused. Each folder is resolved once
    (a page links hundreds of files)."""

    def __init__(self, report_dir: Path) -> None:
        self.report_dir = Path(report_dir)
        self.root = self.report_dir.resolve()
        self._dirs: dict[str, Path] = {}

    def file(self, rel: str) -> Path | None:
        import os
        import stat

        head, _, name = rel.replace("\\", "/").rpartition("/")
        if name in ("", ".", ".."):
            return None
        d = self._dirs.get(head)
        if d is None:
            d = self._dirs[head] = (self.report_dir / head).resolve()
        p = d / name
        try:
            st = os.lstat(p)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):  # a file that is itself a symlink: resolved whole
            p = p.resolve()
            if not p.is_file():
                return None
        elif not stat.S_ISREG(st.st_mode):
            return None
        return p if p.is_relative_to(self.root) else None


def _atomic(dst: Path, fill: Callable[[BinaryIO], None]) -> Path:
    """Create ``dst`` through :func:`~pytest_ltx.storage.atomic_file`, with the report's file mode: a reader
    sees the old file or the whole new one. Any OS error is a :class:`ReportWriteError`."""
    dst = Path(dst)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(dst) as tmp, open(tmp, "wb") as out:
            fill(out)
    except OSError as e:
        raise ReportWriteError(dst, e) from e
    return dst


def _holds(path: Path, raw: bytes) -> bool:
    """``path`` already holds exactly ``raw`` (a warm rerun's report: the same keyframes, plots and pages).
    Rewriting it would change nothing a reader sees, and a rename over an existing file is the slow part
    of a report on some file systems (2 ms each on overlay mounts: 0.6 s of a 3.7 s warm run)."""
    try:
        if path.stat().st_size != len(raw):
            return False
        with open(path, "rb") as f:
            return f.read(len(raw) + 1) == raw
    except OSError:
        return False


def _same_bytes(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (left alone when it holds exactly that already); raise
    :class:`ReportWriteError`."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if _holds(Path(path), raw):
        return Path(path)

    def write(out: BinaryIO) -> None:
        out.write(raw)

    return _atomic(path, write)


def copy_atomic(src: Path, dst: Path) -> Path:
    """Copy a file (a clip into the report's media folder) atomically, with the report's file mode (left
    alone when ``dst`` holds the same bytes already)."""
    try:
        if Path(dst).stat().st_size == Path(src).stat().st_size and _same_bytes(Path(src), Path(dst)):
            return Path(dst)
    except OSError:
        pass

    def fill(out: BinaryIO) -> None:
        with open(src, "rb") as f:
            shutil.copyfileobj(f, out, 1 << 20)

    return _atomic(dst, fill)
