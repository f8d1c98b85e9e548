"""The golden-baseline store: read records, queue writes, flush them once, atomically.

Why atomic per record and not per file: a record is three files (record.json, keyframes.npz,
keyframes.jpg) that must agree. Each record is written complete into a hidden temp directory beside its
target, then swapped in with two renames (old → aside, new → target) and the old one removed. A run killed
at any instant leaves every baseline either the old or the new version; the leftovers (hidden ``.*.tmp-*``
and ``.*.old-*`` directories) are rolled back or removed the next time a store is opened on that root.

Concurrency: flush, recovery and prune hold an inter-process file lock (kept in the system temp directory,
keyed by the resolved root, so nothing extra lands in the repository). Under pytest-xdist only the
controller flushes; workers ship records with :meth:`BaselineRecord.to_payload`.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from .record import RECORD_FILE, BaselineError, BaselineRecord, key_to_relpath, relpath_to_key

__all__ = ["BaselineStore", "ChangeKind", "MetricMove", "BaselineChange", "UpdateSummary"]

_TMP_TAG = ".tmp-"  # a record being written
_OLD_TAG = ".old-"  # the record it replaces, moved aside until the new one is in place
_DEL_TAG = ".del-"  # a pruned record being deleted: never restored
_LEFTOVER = re.compile(r"\.(.+)(\.tmp-|\.old-|\.del-)[0-9a-f]{8}")
#: indirection so tests can simulate a kill between two renames
_rename = os.replace


class ChangeKind(str, Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    PRUNED = "pruned"
    #: a queued record that could not be written (full disk, read-only store…): the old one is kept
    FAILED = "not written"


@dataclass(frozen=True)
class MetricMove:
    """One scalar that differs between the old and the new baseline."""

    key: str
    old: float | int | bool | None
    new: float | int | bool | None

    @property
    def delta(self) -> float | None:
        if _num(self.old) and _num(self.new):
            return float(self.new) - float(self.old)  # type: ignore[arg-type]
        return None

    @property
    def magnitude(self) -> float:
        """How big the move is, for ranking: relative change; appearing/vanishing values rank first."""
        d = self.delta
        if d is None:
            return float("inf")
        return abs(d) / max(abs(float(self.old)), 1e-9)  # type: ignore[arg-type]

    def text(self) -> str:
        d = self.delta
        tail = "" if d is None else f" ({d:+.4g})"
        return f"{self.key} {_fmt(self.old)} → {_fmt(self.new)}{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "old": self.old, "new": self.new, "delta": self.delta}


@dataclass(frozen=True)
class BaselineChange:
    item_key: str
    model_key: str
    kind: ChangeKind
    #: scalar moves, largest first (updated records only)
    moves: tuple[MetricMove, ...] = ()
    #: what else changed: arrays, keyframes, spread, environment, provenance
    notes: tuple[str, ...] = ()
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_key": self.item_key,
            "model_key": self.model_key,
            "kind": self.kind.value,
            "moves": [m.to_dict() for m in self.moves],
            "notes": list(self.notes),
            "path": self.path,
        }


@dataclass(frozen=True)
class UpdateSummary:
    """What a flush (or prune) did, for the terminal summary and the GitHub step summary."""

    changes: tuple[BaselineChange, ...] = ()
    root: str = ""

    def of(self, kind: ChangeKind) -> list[BaselineChange]:
        return [c for c in self.changes if c.kind is kind]

    @property
    def created(self) -> list[BaselineChange]:
        return self.of(ChangeKind.CREATED)

    @property
    def updated(self) -> list[BaselineChange]:
        return self.of(ChangeKind.UPDATED)

    @property
    def unchanged(self) -> list[BaselineChange]:
        return self.of(ChangeKind.UNCHANGED)

    @property
    def pruned(self) -> list[BaselineChange]:
        return self.of(ChangeKind.PRUNED)

    @property
    def failed(self) -> list[BaselineChange]:
        return self.of(ChangeKind.FAILED)

    def failure_line(self) -> str | None:
        """One line for a run whose writes partly failed: how many, the first cause, what was kept."""
        bad = self.failed
        if not bad:
            return None
        done = len(self.created) + len(self.updated) + len(self.pruned)
        first = bad[0]
        why = first.notes[0] if first.notes else "unknown error"
        return (f"baseline store {self.root}: {len(bad)} of {len(self.changes)} baseline(s) NOT written "
                f"(first: {first.path or first.item_key}: {why}); each kept its previous version (or stays "
                f"missing); {done} written completely")

    def __bool__(self) -> bool:
        return bool(self.changes)

    def counts(self) -> dict[str, int]:
        return {k.value: len(self.of(k)) for k in ChangeKind if self.of(k)}

    def headline(self) -> str:
        c = self.counts()
        if not c:
            return "baselines: nothing written"
        return "baselines: " + ", ".join(f"{n} {k}" for k, n in c.items())

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "counts": self.counts(), "changes": [c.to_dict() for c in self.changes]}

    def to_text(self, max_moves: int = 3) -> str:
        """Plain lines for the pytest terminal summary."""
        lines = [self.headline() + (f" in {self.root}" if self.root else "")]
        for kind in (ChangeKind.CREATED, ChangeKind.UPDATED, ChangeKind.PRUNED, ChangeKind.FAILED):
            for c in self.of(kind):
                lines.append(f"  {kind.value:<8} {c.item_key} [{c.model_key}]")
                for m in c.moves[:max_moves]:
                    lines.append(f"             {m.text()}")
                if len(c.moves) > max_moves:
                    lines.append(f"             … {len(c.moves) - max_moves} more metrics moved")
                for n in c.notes:
                    lines.append(f"             {n}")
        return "\n".join(lines)

    def to_markdown(self, max_moves: int = 3) -> str:
        """A section for ``$GITHUB_STEP_SUMMARY`` / a PR comment."""
        from pytest_ltx.report.summary import md_text  # one escaper for every Markdown output

        out = [f"### {self.headline()}", ""]
        rows = [c for c in self.changes if c.kind is not ChangeKind.UNCHANGED]
        if rows:
            out += ["| change | item | model | largest moves |", "|---|---|---|---|"]
            for c in rows:
                parts = [f"`{m.text()}`" for m in c.moves[:max_moves]]
                if len(c.moves) > max_moves:
                    parts.append(f"… {len(c.moves) - max_moves} more")
                parts += [md_text(n) for n in c.notes]
                out.append(
                    f"| {c.kind.value} | {md_text(c.item_key)} | `{c.model_key}` | {'<br>'.join(parts) or '—'} |"
                )
        if self.unchanged:
            out += ["", f"{len(self.unchanged)} baseline(s) unchanged."]
        return "\n".join(out) + "\n"


class BaselineStore:
    """Golden baselines under ``root`` (usually ``<rootdir>/baselines``)."""

    def __init__(self, root: Path | str, *, recover: bool = True, fence: Path | str | None = None) -> None:
        """``fence`` is the project root: a store folder inside it that is a symlink to somewhere outside
        it (a PR can commit such a symlink) is refused for reading and writing."""
        self.root = Path(root)
        self._queue: dict[tuple[str, str], BaselineRecord] = {}
        #: why this store may not be used at all (its root escapes the project through a symlink)
        self.refused: str | None = None
        if fence is not None:
            from pytest_ltx.confine import escaping_symlink

            link = escaping_symlink(self.root, Path(fence))
            if link is not None:
                self.refused = (f"{link} is a symlink to {link.resolve()}, outside the project {Path(fence).resolve()}; "
                                "pytest-ltx does not read or write baselines through it (point --ltx-baselines "
                                "at the real folder if that is intended)")
        if recover and self.refused is None and self.root.is_dir():
            try:
                self.recover()
            except OSError:  # a read-only checkout: leftovers stay, reading still works
                pass

    def _check_confined(self, d: Path) -> None:
        """Refuse a record path that leaves the store through a symlink (or a store that leaves the project)."""
        if self.refused is not None:
            raise BaselineError(self.root, self.refused, "remove the symlink or point --ltx-baselines at a real folder")
        from pytest_ltx.confine import escaping_symlink

        link = escaping_symlink(d, self.root)
        if link is not None:
            raise BaselineError(
                link, f"is a symlink to {link.resolve()}, outside the baseline store {self.root}",
                "replace the symlink by a real folder (`--ltx-update-baselines` does not write through it)")

    # ---- reading -------------------------------------------------------------------------------------

    def path_for(self, item_key: str, model_key: str) -> Path:
        return self.root / Path(*key_to_relpath(item_key, model_key).parts)

    def record_digest(self, item_key: str, model_key: str) -> str | None:
        """sha256 of the stored record's files (names and bytes), read without decoding any of them: what a
        remembered comparison with this record is keyed on. None when there is no plain, settled record to
        vouch for (none at all, a flush in progress, a symlink, a store or folder that escapes)."""
        import stat

        from pytest_ltx.cache import sha256_file

        d = self.path_for(item_key, model_key)
        try:
            self._check_confined(d)
            if not d.is_dir() or d.is_symlink() or self._leftovers_for(d):
                return None
            h = hashlib.sha256()
            for name in sorted(os.listdir(d)):
                p = d / name
                if not stat.S_ISREG(os.lstat(p).st_mode):
                    return None
                h.update(f"{name}\0{sha256_file(p)}\0".encode())  # in chunks: a PR can commit a huge file
        except (OSError, BaselineError):
            return None
        return h.hexdigest()

    def load(self, item_key: str, model_key: str) -> BaselineRecord | None:
        """The baseline, or None if there is none. A corrupt one raises :class:`BaselineError`."""
        d = self.path_for(item_key, model_key)
        self._check_confined(d)
        if d.exists() and not d.is_dir():
            raise BaselineError(d, "is a file where the baseline folder should be")
        if not d.is_dir():
            if not self._leftovers_for(d):
                return None
            with self._lock():  # a flush is swapping this very record in: wait for it, then look again
                self._recover_dir(d.parent)
            if not d.is_dir():
                return None
        try:
            rec = BaselineRecord.read_dir(d)
        except BaselineError:
            # another process may be swapping this record right now (its files would then disagree):
            # read once more while holding the lock; a record still broken then is really broken
            with self._lock():
                self._recover_dir(d.parent)
                if not d.is_dir():
                    return None
                rec = BaselineRecord.read_dir(d)
        if rec.key != (item_key, model_key):
            raise BaselineError(
                d / RECORD_FILE,
                f"belongs to {rec.item_key} [{rec.model_key}], not {item_key} [{model_key}]"
                " (two item names map to one folder on a case-insensitive file system?)",
                "rename one of the items, then regenerate with `pytest <spec> --ltx-update-baselines`",
            )
        return rec

    def models_for(self, item_key: str) -> list[str]:
        """Model keys that have a baseline for this item: lets a 'missing' message say 'weights changed?'."""
        return sorted(m for i, m in self.all_keys() if i == item_key)

    def all_keys(self) -> set[tuple[str, str]]:
        """Every (item_key, model_key) with a record directory under the root."""
        keys: set[tuple[str, str]] = set()
        if self.refused is not None:
            return keys
        for d in self._record_dirs():
            key = relpath_to_key(PurePosixPath(d.relative_to(self.root).as_posix()))
            if key is None:  # a hashed (cut) name: the key lives only inside the record
                try:
                    rec = BaselineRecord.read_dir(d)
                    key = rec.key
                except BaselineError:
                    continue
            keys.add(key)
        return keys

    def unused(self, used: Iterable[tuple[str, str] | str]) -> list[tuple[str, str]]:
        """Baselines no selected item used. ``used`` holds (item_key, model_key) pairs — a baseline of
        another model or an old weight fingerprint is then unused — or bare item keys, which keep every
        model's baseline of that item. Only meaningful when the whole suite ran."""
        pairs = {u for u in used if isinstance(u, tuple)}
        items = {u for u in used if isinstance(u, str)}
        return sorted(k for k in self.all_keys() if k not in pairs and k[0] not in items)

    # ---- writing -------------------------------------------------------------------------------------

    def queue(self, record: BaselineRecord) -> None:
        """Remember a record to write at :meth:`flush` (the last one queued for a key wins)."""
        self._queue[record.key] = record

    @property
    def pending(self) -> list[BaselineRecord]:
        return list(self._queue.values())

    def flush(self) -> UpdateSummary:
        """Write every queued record, each all-or-nothing; unchanged records are not rewritten (no churn).

        A record that cannot be written (full disk, read-only store, a symlink out of the store, a file
        where a folder should be) is a ``FAILED`` change naming the cause; the previous version stays in
        place and the other records are still written. Never raises for a write fault."""
        queued, self._queue = self._queue, {}
        changes: list[BaselineChange] = []
        if not queued:
            return UpdateSummary((), str(self.root))

        def fail_all(why: str) -> UpdateSummary:
            return UpdateSummary(tuple(
                BaselineChange(*k, ChangeKind.FAILED, notes=(why,), path=self._rel(self.path_for(*k)))
                for k in sorted(queued)), str(self.root))

        if self.refused is not None:
            return fail_all(self.refused)
        from pytest_ltx.storage import describe_os_error

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            lock = self._lock()
            lock.acquire()
        except OSError as e:
            return fail_all(describe_os_error(e))
        try:
            try:
                self._recover_all()
            except OSError:
                pass
            for key in sorted(queued):
                rec = queued[key]
                target = self.path_for(*key)
                try:
                    self._check_confined(target)
                except BaselineError as e:
                    changes.append(BaselineChange(*key, ChangeKind.FAILED, notes=(e.reason,), path=self._rel(target)))
                    continue
                old, broken = self._read_quietly(target)
                if old is not None and old.key != key:
                    old, broken = None, f"it belonged to {old.item_key} [{old.model_key}]"
                if old is not None and old.same_content(rec):
                    changes.append(BaselineChange(*key, ChangeKind.UNCHANGED, path=self._rel(target)))
                    continue
                try:
                    self._swap_in(target, rec.stamped(old))
                except OSError as e:
                    changes.append(BaselineChange(*key, ChangeKind.FAILED, notes=(describe_os_error(e),),
                                                  path=self._rel(target)))
                    continue
                if broken:
                    note = f"replaced an unusable baseline: {broken}"
                    changes.append(BaselineChange(*key, ChangeKind.UPDATED, notes=(note,), path=self._rel(target)))
                elif old is None:
                    changes.append(BaselineChange(*key, ChangeKind.CREATED, path=self._rel(target)))
                else:
                    moves, notes = _diff(old, rec)
                    changes.append(BaselineChange(*key, ChangeKind.UPDATED, moves, notes, self._rel(target)))
        finally:
            lock.release()
        return UpdateSummary(tuple(changes), str(self.root))

    def prune(self, keys: Iterable[tuple[str, str]]) -> UpdateSummary:
        """Remove these baselines (each atomically) and the folders they leave empty. A removal that
        fails (read-only store) is a ``FAILED`` change; the record then stays whole."""
        from pytest_ltx.storage import describe_os_error

        changes = []
        if self.refused is not None:
            return UpdateSummary(tuple(BaselineChange(*k, ChangeKind.FAILED, notes=(self.refused,))
                                       for k in sorted(set(keys))), str(self.root))
        with self._lock():
            for key in sorted(set(keys)):
                target = self.path_for(*key)
                try:
                    self._check_confined(target)
                except BaselineError as e:
                    changes.append(BaselineChange(*key, ChangeKind.FAILED, notes=(e.reason,), path=self._rel(target)))
                    continue
                if not target.is_dir():
                    continue
                aside = target.with_name(f".{target.name}{_DEL_TAG}{secrets.token_hex(4)}")
                try:
                    _rename(target, aside)
                except OSError as e:
                    changes.append(BaselineChange(*key, ChangeKind.FAILED, notes=(describe_os_error(e),),
                                                  path=self._rel(target)))
                    continue
                shutil.rmtree(aside, ignore_errors=True)
                try:
                    self._remove_empty_parents(target.parent)
                except OSError:
                    pass
                changes.append(BaselineChange(*key, ChangeKind.PRUNED, path=self._rel(target)))
        return UpdateSummary(tuple(changes), str(self.root))

    # ---- crash safety ----------------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Undo what a killed flush left behind; returns what was done (for a debug line)."""
        if not self.root.is_dir() or not self._leftover_parents():
            return []  # the usual case, decided without the lock; a flush running now is its writer's to finish
        with self._lock():
            return self._recover_all()

    def _leftover_parents(self) -> set[Path]:
        tags = (_TMP_TAG, _OLD_TAG, _DEL_TAG)  # one walk of the tree, not one per tag
        return {p.parent for p in self.root.rglob(".*") if any(t in p.name for t in tags)}

    def _recover_all(self) -> list[str]:
        done: list[str] = []
        for parent in sorted(self._leftover_parents()):  # again, under the lock
            done += self._recover_dir(parent)
        return done

    def _recover_dir(self, parent: Path) -> list[str]:
        """In one folder: restore an old record whose replacement never arrived, drop every leftover."""
        done: list[str] = []
        if not parent.is_dir():
            return done
        for leftover in sorted(parent.iterdir()):
            m = _LEFTOVER.fullmatch(leftover.name)
            if m is None:
                continue
            target = parent / m.group(1)
            if m.group(2) == _OLD_TAG and leftover.is_dir() and not target.exists():
                _rename(leftover, target)  # killed between "old aside" and "new in": the old one stays
                done.append(f"restored {self._rel(target)}")
            else:
                _remove(leftover)
                done.append(f"removed {self._rel(leftover)}")
        return done

    def _leftovers_for(self, target: Path) -> bool:
        parent = target.parent
        if not parent.is_dir():
            return False
        for p in parent.iterdir():
            m = _LEFTOVER.fullmatch(p.name)
            if m is not None and m.group(1) == target.name:
                return True
        return False

    def _swap_in(self, target: Path, rec: BaselineRecord) -> None:
        """Stage the record complete in a hidden folder, then rename it into place. Any failure (a full
        disk mid-file, a read-only folder) removes the staging folder and leaves the old record as it was."""
        files = rec.files()  # encode before touching the disk
        target.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(4)
        tmp = target.with_name(f".{target.name}{_TMP_TAG}{token}")
        try:
            tmp.mkdir()
            for name, data in files.items():
                with open(tmp / name, "wb") as f:  # open(): 0666 less the umask, like any file the user writes
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            _fsync_dir(tmp)
        except OSError:  # (a kill leaves leftovers for recover())
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if target.exists() or target.is_symlink():
            aside = target.with_name(f".{target.name}{_OLD_TAG}{token}")
            try:
                _rename(target, aside)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            try:
                _rename(tmp, target)
            except OSError:
                _rename(aside, target)  # the new one could not go in: the old one goes back
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            _remove(aside)
        else:
            try:
                _rename(tmp, target)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        _fsync_dir(target.parent)

    # ---- helpers -----------------------------------------------------------------------------------------

    def _record_dirs(self) -> Iterable[Path]:
        if not self.root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            if RECORD_FILE in filenames:
                yield Path(dirpath)

    def _read_quietly(self, d: Path) -> tuple[BaselineRecord | None, str | None]:
        """The record being replaced (for the summary) or why it was unusable; a corrupt one is overwritten."""
        if d.is_symlink() or (d.exists() and not d.is_dir()):
            return None, "a file stood where the baseline folder should be"
        if not d.is_dir():
            return None, None
        try:
            return BaselineRecord.read_dir(d), None
        except BaselineError as e:
            return None, e.reason

    def _remove_empty_parents(self, d: Path) -> None:
        root = self.root.resolve()
        while d.resolve() != root and d.is_dir() and not any(d.iterdir()):
            d.rmdir()
            d = d.parent

    def _rel(self, p: Path) -> str:
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return str(p)

    def _lock(self) -> Any:
        from filelock import FileLock

        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:16]
        # per user: another user's lock file in a shared /tmp would not be writable
        user = getattr(os, "getuid", lambda: "")()
        return FileLock(os.path.join(tempfile.gettempdir(), f"pytest-ltx-baselines-{user}-{digest}.lock"))


def _remove(p: Path) -> None:
    """Remove a file, a symlink or a folder tree, quietly (a leftover is swept by the next recovery)."""
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    except OSError:
        pass


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # Windows cannot open directories; renames there are already durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _fmt(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool) or isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _diff(old: BaselineRecord, new: BaselineRecord) -> tuple[tuple[MetricMove, ...], tuple[str, ...]]:
    moves = [
        MetricMove(k, old.scalars.get(k), new.scalars.get(k))
        for k in sorted(set(old.scalars) | set(new.scalars))
        if old.scalars.get(k) != new.scalars.get(k) or (k in old.scalars) != (k in new.scalars)
    ]
    moves.sort(key=lambda m: (-m.magnitude, m.key))
    notes: list[str] = []
    changed_arrays = [
        n for n in sorted(set(old.arrays) | set(new.arrays))
        if n not in old.arrays or n not in new.arrays
        or old.arrays[n].shape != new.arrays[n].shape or not (old.arrays[n] == new.arrays[n]).all()
    ]
    if changed_arrays:
        notes.append("arrays changed: " + ", ".join(changed_arrays))
    if old.keyframe_frames != new.keyframe_frames:
        notes.append(f"keyframes {old.keyframe_frames} → {new.keyframe_frames}")
    if old.spread != new.spread or old.samples != new.samples:
        notes.append(f"spread recalibrated ({old.samples} → {new.samples} runs)")
    from .compare import environment_diff

    env = environment_diff(old.environment, new.environment)
    if env:
        notes.append("environment: " + "; ".join(env))
    if old.provenance != new.provenance:
        keys = sorted(k for k in set(old.provenance) | set(new.provenance)
                      if old.provenance.get(k) != new.provenance.get(k))
        notes.append("provenance changed: " + ", ".join(keys))
    return tuple(moves), tuple(notes)
