"""Path confinement: a spec from a pull request may read files inside the project only, and the stores
(baselines, render cache) never follow a symlink out of their own folder.

A spec names files (``file:``, ``audio:``, ``image:``) and the runner reads them; without a fence,
``image: /etc/passwd`` or ``../../secret.png`` would read anything the CI user can. Paths are resolved
(symlinks followed) and must land inside the rootdir or a folder the user allowed explicitly
(``--ltx-allow-dirs``), unless ``--ltx-allow-outside-root`` lifts the fence knowingly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_ltx.errors import OutsideRoot  # noqa: F401 (re-exported)

__all__ = ["PathPolicy", "OutsideRoot", "escaping_symlink"]


@dataclass(frozen=True)
class PathPolicy:
    """Where spec paths may point: inside ``root`` or one of ``allow_dirs``; anywhere with ``anywhere``."""

    root: Path
    allow_dirs: tuple[Path, ...] = ()
    anywhere: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> "PathPolicy":
        return cls(
            root=Path(settings.rootdir),
            allow_dirs=tuple(getattr(settings, "allow_dirs", ()) or ()),
            anywhere=bool(getattr(settings, "allow_outside_root", False)),
        )

    def allows(self, resolved: Path) -> bool:
        if self.anywhere:
            return True
        return any(resolved.is_relative_to(d.resolve()) for d in (self.root, *self.allow_dirs))

    def resolve(self, path: os.PathLike[str] | str, base: Path) -> Path:
        """``path`` made absolute against ``base`` with symlinks resolved; :class:`OutsideRoot` when it
        lands outside every allowed folder."""
        p = Path(path).expanduser()
        if not p.is_absolute():
            p = Path(base) / p
        resolved = p.resolve()
        if not self.allows(resolved):
            raise OutsideRoot(p, resolved, self.root.resolve())
        return resolved


def escaping_symlink(path: Path, root: Path) -> Path | None:
    """The first symlink between ``root`` (exclusive) and ``path`` (inclusive) that points outside
    ``root``, or None. Stores call this before reading or writing below their root: a symlinked record
    or cache entry must not make pytest-ltx read or write elsewhere."""
    root_r = Path(root).resolve()
    try:
        rel = Path(path).relative_to(root)
    except ValueError:
        return None
    cur = Path(root)
    for part in rel.parts:
        cur = cur / part
        if cur.is_symlink():
            target = cur.resolve()
            if not target.is_relative_to(root_r):
                return cur
    return None
