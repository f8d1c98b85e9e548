"""Content-addressed render cache: never render twice what was already rendered.

A render is keyed by the sha256 of its full provenance (model fingerprint, every request parameter,
seed, library versions, device, dtype, threads), so any change that could change the bits is a miss and
nothing else is. Entries hold the encoded mp4 — the plugin evaluates the clip read back from it, so
metrics see what a user sees — plus a metadata json. Writes are atomic (temp dir + rename) and file-locked
so parallel xdist workers can share one cache; a corrupt or partial entry is a logged miss, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from pytest_ltx.jsonvalues import canonical_json  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from pytest_ltx.media import Clip

__all__ = ["CACHE_DIRNAME", "CachedRender", "RemoteStore", "RenderCache", "canonical_json", "default_cache_root"]

log = logging.getLogger(__name__)

#: default cache folder, relative to the pytest rootdir (gitignored)
CACHE_DIRNAME = ".ltx-cache"
_FORMAT = 1
_CLIP = "clip.mp4"
_META = "meta.json"


def default_cache_root(rootdir: Path) -> Path:
    return Path(rootdir) / CACHE_DIRNAME


def sha256_file(p: Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks (clips can be gigabytes)."""
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class CachedRender:
    """A cache entry: the mp4 and the metadata stored with it at ``put`` time."""

    key: str
    clip_path: Path
    meta_path: Path
    meta: dict[str, Any]

    def read_clip(self) -> "Clip":
        """Decode the cached mp4 (what the metrics evaluate)."""
        from pytest_ltx.media import read_clip

        return read_clip(self.clip_path)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "clip_path": str(self.clip_path), "meta": self.meta}


class _Corrupt(Exception):
    pass


_USED = "used"  # touched on every hit: least-recently-used eviction reads its mtime


class RemoteStore:
    """A shared second tier of the cache at an fsspec URL (``s3://bucket/ltx-cache``, ``gs://…``, a shared
    filesystem as ``file:///mnt/cache``): entries are copied into the local cache on a hit (and verified
    there, sha256 and size, like any entry) and uploaded after a render. ``meta.json`` is written last, so
    a half-uploaded entry is never seen as complete; a corrupt remote entry is deleted and re-rendered."""

    def __init__(self, url: str, fs: Any = None) -> None:
        if fs is None:
            try:
                import fsspec
            except ImportError:  # pragma: no cover - depends on the install
                raise RuntimeError(f"render cache {url}: an fsspec URL needs `pip install pytest-ltx[remote-cache]` "
                                   "and the protocol's package (s3fs, gcsfs, …)") from None
            fs, path = fsspec.core.url_to_fs(url)
        else:
            path = url.split("://", 1)[-1]
        self.url = url
        self.fs = fs
        self.base = path.rstrip("/")

    def _dir(self, key: str) -> str:
        return f"{self.base}/renders/{key[:2]}/{key}"

    def fetch(self, key: str, dest: Path) -> bool:
        """Copy the entry into ``dest`` (a staging dir); False when the remote has none."""
        d = self._dir(key)
        if not self.fs.exists(f"{d}/{_META}"):
            return False
        dest.mkdir(parents=True, exist_ok=True)
        self.fs.get(f"{d}/{_CLIP}", str(dest / _CLIP))
        self.fs.get(f"{d}/{_META}", str(dest / _META))
        return True

    def upload(self, key: str, src: Path) -> None:
        d = self._dir(key)
        if self.fs.exists(f"{d}/{_META}"):
            return
        self.fs.makedirs(d, exist_ok=True)
        self.fs.put(str(src / _CLIP), f"{d}/{_CLIP}")
        self.fs.put(str(src / _META), f"{d}/{_META}")  # last: marks the entry complete

    def discard(self, key: str) -> None:
        try:
            self.fs.rm(self._dir(key), recursive=True)
        except (OSError, FileNotFoundError):  # another runner removed it first
            pass


class RenderCache:
    """The cache under ``root`` (layout: ``renders/<key[:2]>/<key>/{clip.mp4,meta.json}``).

    ``max_bytes`` (0: unlimited) bounds its size: after each store, least-recently-used entries (by their
    last hit, else their creation) are evicted until it fits. ``remote`` adds a shared tier
    (:class:`RemoteStore`)."""

    def __init__(self, root: Path, fence: Path | None = None, *, max_bytes: int = 0,
                 remote: "RemoteStore | None" = None) -> None:
        """``fence`` is the project root: a cache folder inside it that is a symlink pointing outside
        it is not used (every lookup misses, every store fails with one line)."""
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.remote = remote
        #: why this cache may not be used (its root leaves the project through a symlink)
        self.refused: str | None = None
        if fence is not None:
            from pytest_ltx.confine import escaping_symlink

            link = escaping_symlink(self.root, Path(fence))
            if link is not None:
                self.refused = (f"{link} is a symlink to {link.resolve()}, outside the project "
                                f"{Path(fence).resolve()}; point --ltx-cache-dir at the real folder if that is intended")

    def _escapes(self, d: Path) -> Path | None:
        from pytest_ltx.confine import escaping_symlink

        return escaping_symlink(d, self.root)

    def sweep(self, older_than: float) -> list[Path]:
        """Remove staging folders and ``.part`` files a killed run left (older than ``older_than``)."""
        from pytest_ltx.storage import sweep_stale

        if self.refused is not None:
            return []
        return sweep_stale(self.root / "tmp", ("",), older_than) + sweep_stale(self.root, (".part",), older_than)

    # -- keys ---------------------------------------------------------------------------------------

    @staticmethod
    def key(provenance: Mapping[str, Any]) -> str:
        """sha256 (hex) of the canonical JSON of the full provenance."""
        text = canonical_json({"cache_format": _FORMAT, "provenance": dict(provenance)})
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def entry_dir(self, key: str) -> Path:
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not a render cache key: {key!r}")
        return self.root / "renders" / key[:2] / key

    def _lock(self, key: str) -> Any:
        from filelock import FileLock

        d = self.root / "locks"
        d.mkdir(parents=True, exist_ok=True)
        return FileLock(str(d / f"{key}.lock"))

    def _ensure_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            try:
                ignore.write_text("# created by pytest-ltx: render cache, never commit\n*\n")
            except OSError:
                pass

    # -- read ---------------------------------------------------------------------------------------

    def _load(self, key: str, d: Path) -> CachedRender:
        meta_path, clip_path = d / _META, d / _CLIP
        try:
            record = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise _Corrupt("meta.json is missing") from None
        except (OSError, ValueError) as e:
            raise _Corrupt(f"meta.json is unreadable ({e})") from None
        if not isinstance(record, dict) or record.get("format") != _FORMAT or record.get("key") != key:
            raise _Corrupt("meta.json does not describe this key")
        clip = record.get("clip") or {}
        if not clip_path.is_file():
            raise _Corrupt("clip.mp4 is missing")
        if clip_path.stat().st_size != clip.get("size"):
            raise _Corrupt(f"clip.mp4 has {clip_path.stat().st_size} bytes, expected {clip.get('size')}")
        if sha256_file(clip_path) != clip.get("sha256"):
            raise _Corrupt("clip.mp4 content does not match its recorded sha256")
        return CachedRender(key=key, clip_path=clip_path, meta_path=meta_path, meta=record.get("meta") or {})

    def get(self, key: str) -> CachedRender | None:
        """The entry for ``key``, or None. A corrupt or partial entry is logged, removed, and a miss."""
        d = self.entry_dir(key)
        if self.refused is not None:
            log.warning("pytest-ltx render cache not used: %s", self.refused)
            return None
        link = self._escapes(d)
        if link is not None:  # never read (or later write) through a symlink out of the cache
            log.warning("pytest-ltx render cache: dropping %s (a symlink out of the cache)", link)
            try:
                link.unlink()
            except OSError:
                pass
            return None
        if not d.exists():
            return self._from_remote(key) if self.remote is not None else None
        try:
            hit = self._load(key, d)
            self._touch(d)
            return hit
        except OSError as e:  # an unreadable entry (permissions): a miss, not a crash
            log.warning("pytest-ltx render cache: cannot read %s (%s); treated as a miss", d, e)
            return None
        except _Corrupt as why:
            with self._lock(key):
                try:  # a concurrent writer may have just replaced it with a good entry
                    return self._load(key, d)
                except _Corrupt:
                    pass
                log.warning("pytest-ltx render cache: dropping corrupt entry %s (%s)", d, why)
                shutil.rmtree(d, ignore_errors=True)
            return None

    @staticmethod
    def _touch(d: Path) -> None:
        try:
            (d / _USED).touch()
        except OSError:  # a read-only cache still serves hits
            pass

    def _from_remote(self, key: str) -> CachedRender | None:
        """A local miss: copy the shared entry in, verify it like a local one, or discard it."""
        assert self.remote is not None
        self._ensure_root()
        staging = self.root / "tmp"
        staging.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{key[:12]}.remote.", dir=staging))
        try:
            try:
                if not self.remote.fetch(key, tmp):
                    return None
            except OSError as e:
                log.warning("pytest-ltx render cache: cannot read %s from %s (%s)", key, self.remote.url, e)
                return None
            try:
                self._load(key, tmp)
            except _Corrupt as why:
                log.warning("pytest-ltx render cache: discarding corrupt shared entry %s in %s (%s)",
                            key, self.remote.url, why)
                self.remote.discard(key)
                return None
            final = self.entry_dir(key)
            with self._lock(key):
                if not final.exists():
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp, final)
            hit = self._load(key, final)
            self._touch(final)
            self.evict(keep=key)
            return hit
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    # -- size limit ---------------------------------------------------------------------------------

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, dir) of every entry."""
        out: list[tuple[float, int, Path]] = []
        base = self.root / "renders"
        if not base.is_dir():
            return out
        for d in base.glob("??/*"):
            try:
                files = [p for p in d.iterdir() if p.is_file()]
                size = sum(p.stat().st_size for p in files)
                used = d / _USED
                t = used.stat().st_mtime if used.exists() else (d / _META).stat().st_mtime
            except OSError:  # removed by another process meanwhile
                continue
            out.append((t, size, d))
        return out

    def size_bytes(self) -> int:
        return sum(s for _, s, _ in self.entries())

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove least-recently-used entries until the cache is within ``max_bytes``; returns the keys
        removed. ``keep`` (the entry just stored or read) is never removed."""
        if self.max_bytes <= 0:
            return []
        entries = sorted(self.entries(), key=lambda e: (e[0], e[2].name))
        total = sum(s for _, s, _ in entries)
        removed: list[str] = []
        for _, size, d in entries:
            if total <= self.max_bytes:
                break
            if d.name == keep:
                continue
            with self._lock(d.name):
                shutil.rmtree(d, ignore_errors=True)
            total -= size
            removed.append(d.name)
        if removed:
            log.info("pytest-ltx render cache: evicted %d least recently used entries", len(removed))
        return removed

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    # -- write --------------------------------------------------------------------------------------

    @staticmethod
    def _sweep_staging(staging: Path, max_age_s: float = 6 * 3600) -> None:
        """Remove staging dirs a killed writer left behind (old enough that no live writer owns them)."""
        import time

        now = time.time()
        for p in staging.iterdir():
            try:
                if now - p.stat().st_mtime > max_age_s:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass

    def put(self, key: str, clip: "Clip | os.PathLike[str] | str", meta: Mapping[str, Any], *,
            encode: Any = None) -> CachedRender:
        """Store a *successful* render: ``clip`` is a Clip (encoded here, with ``encode`` settings when
        given: they must be part of the key's provenance) or an existing mp4 (copied).

        The clip is probed before it is stored, so an unreadable file never becomes a cache hit. When
        another process stored the same key first, its entry wins and is returned (same key, same bits).
        """
        from pytest_ltx.storage import StoreError, describe_os_error, is_write_fault

        final = self.entry_dir(key)  # validates the key
        if self.refused is not None:
            raise StoreError("render cache", self.root, self.refused, "the render was not cached")
        link = self._escapes(final)
        if link is not None:
            raise StoreError("render cache", link, f"a symlink to {link.resolve()}, outside the cache",
                             "the render was not cached; remove the symlink")
        try:
            return self._put(key, clip, meta, encode)
        except OSError as e:
            if not is_write_fault(e):
                raise
            where = e.filename if isinstance(e.filename, str) else self.root
            raise StoreError("render cache", where, describe_os_error(e, with_path=False),
                             "the render was not cached and no cache entry was changed (free space or "
                             "point --ltx-cache-dir elsewhere)") from None

    def _put(self, key: str, clip: "Clip | os.PathLike[str] | str", meta: Mapping[str, Any],
             encode: Any = None) -> CachedRender:
        from pytest_ltx.media import Clip, probe, write_clip
        from pytest_ltx.storage import make_readable

        self._ensure_root()
        staging = self.root / "tmp"
        staging.mkdir(parents=True, exist_ok=True)
        self._sweep_staging(staging)
        tmp = Path(tempfile.mkdtemp(prefix=f"{key[:12]}.", dir=staging))
        make_readable(tmp)  # mkdtemp makes 0700: a shared cache must be readable by the other CI users
        try:
            dest_clip = tmp / _CLIP
            if isinstance(clip, Clip):
                write_clip(clip, dest_clip, encode=encode)
            else:
                src = Path(clip)
                if not src.is_file():
                    raise FileNotFoundError(f"cannot cache {src}: no such file")
                shutil.copyfile(src, dest_clip)
            probe(dest_clip)  # raises ClipReadError for anything that is not a readable clip
            record = {
                "format": _FORMAT,
                "key": key,
                "clip": {"file": _CLIP, "size": dest_clip.stat().st_size, "sha256": sha256_file(dest_clip)},
                "meta": json.loads(canonical_json(dict(meta))),
            }
            (tmp / _META).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            final = self.entry_dir(key)
            with self._lock(key):
                if final.exists():
                    try:
                        return self._load(key, final)
                    except _Corrupt as why:
                        log.warning("pytest-ltx render cache: replacing corrupt entry %s (%s)", final, why)
                        shutil.rmtree(final, ignore_errors=True)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
            entry = self._load(key, final)
            if self.remote is not None:
                try:
                    self.remote.upload(key, final)
                except OSError as e:  # the local entry stands; the shared tier is best effort
                    log.warning("pytest-ltx render cache: cannot upload %s to %s (%s)", key, self.remote.url, e)
            self.evict(keep=key)
            return entry
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
