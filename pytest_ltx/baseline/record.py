"""One golden baseline: the small reviewable record of a clip item rendered by one model.

A baseline is *not* the video. It is what the gate compares against: flat metric scalars (and, after
calibration, their run-to-run spread), small per-keyframe arrays (CLIP embeddings as float16, 32×32 gray
structural thumbnails), a strip of keyframe thumbnails for a human reviewing the PR, and the provenance and
environment it was made with. Text stays diff-friendly (sorted keys, indent 2, floats rounded to 6
significant digits); binaries stay small (float arrays are stored as float16, the review strip is a JPEG:
8 natural keyframes at 72 px are ~27 kB as JPEG q85 against ~155 kB as PNG, and a reviewer's eye does not
need lossless — the gate never reads the strip, it compares the arrays).

On disk, one record is one directory::

    baselines/<spec path without .yaml>/<safe item name>/<model key>/
        record.json      everything textual, plus a manifest (dtype, shape, digest) of the binaries
        keyframes.npz    the arrays (written deterministically: same arrays → same bytes)
        keyframes.jpg    the keyframe thumbnails side by side (only when thumbnails were given)
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import re
import zipfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping

import numpy as np

from pytest_ltx.versions import METRIC_LIBRARIES, package_versions

__all__ = [
    "FORMAT_VERSION",
    "RECORD_FILE",
    "ARRAYS_FILE",
    "THUMBNAILS_FILE",
    "BaselineError",
    "BaselineRecord",
    "make_item_key",
    "make_model_key",
    "safe_name",
    "unsafe_name",
    "key_to_relpath",
    "relpath_to_key",
    "collect_environment",
    "storable_scalars",
    "make_thumbnails",
    "make_structural_thumbs",
    "round_sig",
]

FORMAT_VERSION = 1
RECORD_FILE = "record.json"
ARRAYS_FILE = "keyframes.npz"
THUMBNAILS_FILE = "keyframes.jpg"
_JPEG_QUALITY = 85
_THUMBS_IN_PAYLOAD = "__thumbnails__"
_SIG_DIGITS = 6
#: a safe name longer than this is cut and suffixed with a hash (the record keeps the full key inside)
_MAX_SEGMENT = 100
_SAFE_CHARS = re.compile(r"[A-Za-z0-9._\-=,+@\[\]()]")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(10)} | {f"LPT{i}" for i in range(10)}
#: libraries whose versions can change a render or a metric; recorded so a moved baseline can say why
_LIBRARIES = METRIC_LIBRARIES


class BaselineError(Exception):
    """A baseline on disk cannot be used (corrupt, half-merged, from a newer format).

    ``str(e)`` starts with the offending path and ends with how to fix it.
    """

    def __init__(self, path: Path | str, reason: str, fix: str | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.fix = fix or (
            "regenerate it with `pytest <spec> --ltx-update-baselines` (or delete the folder and recreate it)"
        )
        super().__init__(f"{self.path}: {reason}; {self.fix}")


# --------------------------------------------------------------------------------------------------
# identity


def make_item_key(spec_path: Path | str, item_name: str, rootdir: Path | str | None = None) -> str:
    """``"<spec path relative to rootdir, posix, without .yaml>/<item name>"`` — stable across machines
    (:attr:`pytest_ltx.item.ItemKey.baseline`; a spec outside ``rootdir`` is refused)."""
    from pytest_ltx.item.key import ItemKey

    p = Path(spec_path)
    if rootdir is not None and p.is_absolute():
        try:
            p = p.resolve().relative_to(Path(rootdir).resolve())
        except ValueError:
            raise ValueError(f"spec {p} is outside the rootdir {rootdir}") from None
    return ItemKey(PurePosixPath(p.as_posix()).as_posix().lstrip("/"), item_name).baseline


def make_model_key(profile_name: str, fingerprint: str) -> str:
    """``"<profile>-<fingerprint[:12]>"``: a baseline of one model's weights is not a baseline of another's."""
    if not profile_name or not fingerprint:
        raise ValueError("a model key needs a profile name and a weight fingerprint")
    return f"{profile_name}-{fingerprint[:12]}"


def model_key_profile(model_key: str) -> str:
    """The profile part of a model key (``tiny-6de17b4b99b1`` → ``tiny``; ``testcard`` stays itself)."""
    return model_key.rsplit("-", 1)[0]


def safe_name(segment: str) -> str:
    """A filesystem-safe (POSIX, Windows, git) directory name for one key segment; reversible by
    :func:`unsafe_name` unless it was too long (then cut and hashed — the record holds the full key)."""
    if segment in ("", ".", ".."):
        out = "".join(f"%{b:02X}" for b in segment.encode()) or "%00"
    else:
        chars = []
        for i, ch in enumerate(segment):
            keep = _SAFE_CHARS.fullmatch(ch) and not (ch == "." and (i == 0 or i == len(segment) - 1))
            chars.append(ch if keep else "".join(f"%{b:02X}" for b in ch.encode()))
        out = "".join(chars)
        if out.split(".")[0].upper() in _WINDOWS_RESERVED:
            out = f"%{ord(out[0]):02X}{out[1:]}"
    if len(out) > _MAX_SEGMENT:
        digest = hashlib.sha256(segment.encode()).hexdigest()[:10]
        out = f"{out[: _MAX_SEGMENT - 12].rstrip('%')}~{digest}"
    return out


def unsafe_name(name: str) -> str | None:
    """Invert :func:`safe_name`; None for a hashed (cut) name, whose key lives only inside the record."""
    if "~" in name:
        return None
    data = bytearray()
    i = 0
    while i < len(name):
        if name[i] == "%" and i + 3 <= len(name) and re.fullmatch(r"[0-9A-F]{2}", name[i + 1 : i + 3]):
            data.append(int(name[i + 1 : i + 3], 16))
            i += 3
        else:
            data.extend(name[i].encode())
            i += 1
    text = data.decode(errors="replace")
    return "" if text == "\x00" else text


def key_to_relpath(item_key: str, model_key: str) -> PurePosixPath:
    """The record directory of a key, relative to the store root (every ``/`` segment a directory)."""
    parts = [safe_name(s) for s in item_key.split("/")] + [safe_name(model_key)]
    return PurePosixPath(*parts)


def relpath_to_key(rel: PurePosixPath | Path) -> tuple[str, str] | None:
    """Invert :func:`key_to_relpath`; None when a segment was hashed (read the record instead)."""
    parts = [unsafe_name(p) for p in PurePosixPath(Path(rel).as_posix()).parts]
    if len(parts) < 2 or any(p is None for p in parts):
        return None
    return "/".join(parts[:-1]), parts[-1]  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# normalisation: what is stored is what is compared, so a record equals its own round trip


def round_sig(x: float, digits: int = _SIG_DIGITS) -> float:
    """Round to significant digits (not decimals: 1.23e-7 stays 1.23e-7)."""
    if x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.{digits}g}")


def _clean(x: Any) -> Any:
    """JSON-safe copy: numpy → Python, tuples → lists, non-finite → None, floats rounded."""
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        return round_sig(f) if math.isfinite(f) else None
    if isinstance(x, Mapping):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if hasattr(x, "to_dict"):
        return _clean(x.to_dict())
    if isinstance(x, Enum):
        return _clean(x.value)
    return str(x)


def _clean_scalar(key: str, v: Any) -> float | int | bool | None:
    c = _clean(v)
    if c is None or isinstance(c, (bool, int, float)):
        return c
    raise TypeError(f"baseline scalar {key!r} must be a number, bool or None, not {type(v).__name__}")


def _clean_array(name: str, a: Any) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float16)  # embeddings: plenty for cosine, half the bytes of float32
    elif arr.dtype.kind not in "biu":
        raise TypeError(f"baseline array {name!r} must be numeric, not {arr.dtype}")
    arr = np.ascontiguousarray(arr)
    arr.setflags(write=False)
    return arr


def _digest(arr: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def _bytes_digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()[:16]


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------------
# the record


@dataclass(frozen=True, eq=False)
class BaselineRecord:
    """One item × one model. Values are normalised on construction (rounded floats, float16 arrays), so a
    record compares equal (:meth:`same_content`) to what it reads back from disk or from a payload."""

    item_key: str
    model_key: str
    #: flat metric values with the family prefix: ``motion.cuts``, ``clip_similarity.prompt_score_mean``
    scalars: dict[str, float | int | bool | None] = field(default_factory=dict)
    #: run-to-run σ per metric key (from calibration); empty for a single-run baseline
    spread: dict[str, float] = field(default_factory=dict)
    #: how many runs the scalars (means) and the spread come from
    samples: int = 1
    #: how it was made: render parameters, seed(s), model fingerprint — never timings
    provenance: dict[str, Any] = field(default_factory=dict)
    #: what it was made on: library versions, device, dtype, GPU name (see :func:`collect_environment`)
    environment: dict[str, Any] = field(default_factory=dict)
    #: small per-keyframe arrays by name, e.g. ``clip_embeddings`` [K,D], ``structural_thumbs`` [K,32,32]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    #: source-frame indices of the keyframes the arrays' first axis refers to
    keyframe_frames: list[int] = field(default_factory=list)
    fps: float | None = None
    #: uint8 [K,h,w,3] RGB, written side by side as keyframes.jpg for review (read back: decoded JPEG)
    thumbnails: np.ndarray | None = None
    created: str | None = None
    updated: str | None = None

    def __post_init__(self) -> None:
        if not self.item_key or not self.model_key:
            raise ValueError("a baseline record needs an item key and a model key")
        s = object.__setattr__
        s(self, "scalars", {str(k): _clean_scalar(k, v) for k, v in sorted(self.scalars.items())})
        spread = {}
        for k, v in sorted(self.spread.items()):
            c = _clean(v)
            if c is not None:
                spread[str(k)] = float(c)
        s(self, "spread", spread)
        s(self, "samples", int(self.samples))
        s(self, "provenance", _clean(dict(self.provenance)))
        s(self, "environment", _clean(dict(self.environment)))
        s(self, "arrays", {str(k): _clean_array(k, v) for k, v in sorted(self.arrays.items())})
        s(self, "keyframe_frames", [int(i) for i in self.keyframe_frames])
        s(self, "fps", None if self.fps is None else round_sig(float(self.fps)))
        if self.thumbnails is not None:
            t = np.asarray(self.thumbnails)
            if t.dtype != np.uint8 or t.ndim != 4 or t.shape[-1] != 3:
                raise ValueError(f"thumbnails must be uint8 [K,h,w,3], got {t.dtype} {t.shape}")
            t = np.ascontiguousarray(t)
            t.setflags(write=False)
            s(self, "thumbnails", t if len(t) else None)

    # ---- identity / comparison -------------------------------------------------------------------

    @property
    def key(self) -> tuple[str, str]:
        return (self.item_key, self.model_key)

    @property
    def keyframe_times(self) -> list[float] | None:
        if not self.fps:
            return None
        return [round_sig(f / self.fps) for f in self.keyframe_frames]

    def same_content(self, other: "BaselineRecord", *, metrics_only: bool = False) -> bool:
        """Equal apart from the timestamps (``metrics_only``: only scalars, spread, arrays, keyframes)."""
        # the strip is review-only and lossy: never a reason to rewrite a baseline
        a, b = self._manifest(strip=False), other._manifest(strip=False)
        for d in (a, b):
            d.pop("created", None)
            d.pop("updated", None)
            if metrics_only:
                for k in ("provenance", "environment", "fps"):
                    d.pop(k, None)
        return a == b

    def stamped(self, previous: "BaselineRecord | None" = None) -> "BaselineRecord":
        """Timestamps for a write: ``created`` survives updates, ``updated`` is now."""
        now = _now()
        out = replace(self, created=(previous.created if previous and previous.created else now), updated=now)
        if "_strip_bytes" in self.__dict__:
            out.__dict__["_strip_bytes"] = self.__dict__["_strip_bytes"]
        return out

    # ---- serialisation -----------------------------------------------------------------------------

    def _manifest(self, strip: bool = True) -> dict[str, Any]:
        """The record.json document (without file I/O); ``strip=False`` skips the review strip."""
        doc: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "item_key": self.item_key,
            "model_key": self.model_key,
            "scalars": dict(self.scalars),
            "spread": dict(self.spread),
            "samples": self.samples,
            "provenance": self.provenance,
            "environment": self.environment,
            "keyframes": {"frames": list(self.keyframe_frames), "times_s": self.keyframe_times},
            "fps": self.fps,
            "arrays": {
                name: {"dtype": a.dtype.name, "shape": list(a.shape), "sha256": _digest(a)}
                for name, a in self.arrays.items()
            },
            "thumbnails": None
            if self.thumbnails is None or not strip
            else {"shape": list(self.thumbnails.shape), "sha256": _bytes_digest(self.thumbnails_jpeg())},
            "created": self.created,
            "updated": self.updated,
        }
        return doc

    def to_json(self) -> str:
        return json.dumps(self._manifest(), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def arrays_npz(self, *, with_thumbnails: bool = False) -> bytes:
        arrays = dict(self.arrays)
        if with_thumbnails and self.thumbnails is not None:
            arrays[_THUMBS_IN_PAYLOAD] = self.thumbnails
        return _npz_bytes(arrays)

    def thumbnails_jpeg(self) -> bytes | None:
        """The keyframe strip (RGB thumbnails side by side) as it is stored: encoded once per record (a
        record read from disk keeps its file's bytes, so re-writing it never re-compresses)."""
        if self.thumbnails is None or len(self.thumbnails) == 0:
            return None
        cached = self.__dict__.get("_strip_bytes")
        if cached is None:
            import cv2

            strip = np.concatenate(list(self.thumbnails), axis=1)
            ok, buf = cv2.imencode(
                ".jpg", np.ascontiguousarray(strip[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]
            )
            if not ok:  # pragma: no cover
                raise RuntimeError("JPEG encoding failed")
            cached = buf.tobytes()
            self.__dict__["_strip_bytes"] = cached
        return cached

    def files(self) -> dict[str, bytes]:
        """File name → bytes of this record's directory."""
        out = {RECORD_FILE: self.to_json().encode()}
        if self.arrays:
            out[ARRAYS_FILE] = self.arrays_npz()
        strip = self.thumbnails_jpeg()
        if strip is not None:
            out[THUMBNAILS_FILE] = strip
        return out

    def to_payload(self) -> dict[str, Any]:
        """JSON-safe dict (arrays as base64 npz): how an xdist worker ships a record to the controller."""
        return {
            "record": self._manifest(),
            "npz_b64": base64.b64encode(self.arrays_npz(with_thumbnails=True)).decode("ascii"),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> "BaselineRecord":
        arrays = _npz_load(base64.b64decode(payload["npz_b64"]))
        thumbs = arrays.pop(_THUMBS_IN_PAYLOAD, None)
        return cls._from_manifest(payload["record"], arrays, thumbs)

    def to_dict(self) -> dict[str, Any]:
        """Summary for results.json (the manifest: no array data)."""
        return self._manifest()

    @classmethod
    def _from_manifest(
        cls, doc: Mapping[str, Any], arrays: dict[str, np.ndarray], thumbnails: np.ndarray | None
    ) -> "BaselineRecord":
        kf = doc.get("keyframes") or {}
        return cls(
            item_key=doc["item_key"],
            model_key=doc["model_key"],
            scalars=dict(doc.get("scalars") or {}),
            spread=dict(doc.get("spread") or {}),
            samples=int(doc.get("samples", 1)),
            provenance=dict(doc.get("provenance") or {}),
            environment=dict(doc.get("environment") or {}),
            arrays=arrays,
            keyframe_frames=list(kf.get("frames") or []),
            fps=doc.get("fps"),
            thumbnails=thumbnails,
            created=doc.get("created"),
            updated=doc.get("updated"),
        )

    @classmethod
    def read_dir(cls, directory: Path) -> "BaselineRecord":
        """Read a record directory; anything inconsistent raises :class:`BaselineError` naming the file.

        A baseline folder reaches the gate from a pull request: a truncated or hand-edited record.json,
        values of the wrong type, a missing or corrupt keyframes.npz, a folder where a file should be —
        each is a ``BaselineError`` (a per-item error that ``--ltx-update-baselines`` repairs), never
        another exception."""
        try:
            return cls._read_dir(directory)
        except BaselineError:
            raise
        except Exception as e:  # noqa: BLE001 - whatever a tampered file makes the parser do
            raise BaselineError(directory / RECORD_FILE, f"corrupt record ({type(e).__name__}: {e})") from None

    @classmethod
    def _read_dir(cls, directory: Path) -> "BaselineRecord":
        path = directory / RECORD_FILE
        for name in (RECORD_FILE, ARRAYS_FILE, THUMBNAILS_FILE):
            f = directory / name
            if f.is_symlink() and not f.resolve().is_relative_to(directory.resolve()):
                raise BaselineError(f, f"is a symlink to {f.resolve()}, outside its baseline folder; not read")
            if f.is_dir():
                raise BaselineError(f, "is a folder where a file should be")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BaselineError(path, "the baseline folder has no record.json") from None
        except (OSError, UnicodeDecodeError) as e:
            raise BaselineError(path, f"unreadable ({e})") from None
        if "<<<<<<<" in text or ">>>>>>>" in text:
            raise BaselineError(
                path,
                "contains git merge-conflict markers",
                "resolve the conflict by regenerating it with `pytest <spec> --ltx-update-baselines`",
            )
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise BaselineError(path, f"corrupt JSON ({e})") from None
        if not isinstance(doc, dict):
            raise BaselineError(path, "corrupt record (not a JSON object)")
        fmt = doc.get("format")
        if not isinstance(fmt, int):
            raise BaselineError(path, "corrupt record (no format version)")
        if fmt > FORMAT_VERSION:
            raise BaselineError(
                path,
                f"written by a newer pytest-ltx (format {fmt}, this one reads up to {FORMAT_VERSION})",
                "upgrade pytest-ltx, or regenerate it with `pytest <spec> --ltx-update-baselines`",
            )
        for k in ("item_key", "model_key"):
            if not isinstance(doc.get(k), str):
                raise BaselineError(path, f"corrupt record (missing {k!r})")
        manifest = doc.get("arrays") or {}
        _expect_types(path, doc)
        arrays: dict[str, np.ndarray] = {}
        if manifest:
            npz = directory / ARRAYS_FILE
            try:
                arrays = _npz_load(npz.read_bytes(), source=npz)
            except FileNotFoundError:
                raise BaselineError(npz, "missing (record.json lists arrays)") from None
            except BaselineError:
                raise
            except Exception as e:  # noqa: BLE001 - any decoding failure is a corrupt file
                raise BaselineError(npz, f"corrupt ({type(e).__name__}: {e})") from None
            if set(arrays) != set(manifest):
                raise BaselineError(npz, f"holds {sorted(arrays)} but record.json lists {sorted(manifest)}")
            for name, a in arrays.items():
                want = manifest[name].get("sha256") if isinstance(manifest[name], dict) else None
                if want and _digest(a) != want:
                    raise BaselineError(
                        npz, f"array {name!r} does not match record.json (a merge mixed two versions?)"
                    )
        thumbnails = None
        tmeta = doc.get("thumbnails")
        if tmeta:
            strip_path = directory / THUMBNAILS_FILE
            try:
                strip_bytes = strip_path.read_bytes()
            except FileNotFoundError:
                raise BaselineError(strip_path, "missing (record.json lists thumbnails)") from None
            if tmeta.get("sha256") and _bytes_digest(strip_bytes) != tmeta["sha256"]:
                raise BaselineError(strip_path, "does not match record.json (a merge mixed two versions?)")
            try:
                thumbnails = _read_strip(strip_bytes, tuple(tmeta["shape"]))
            except Exception as e:  # noqa: BLE001
                raise BaselineError(strip_path, f"corrupt ({type(e).__name__}: {e})") from None
        try:
            rec = cls._from_manifest(doc, arrays, thumbnails)
            if thumbnails is not None:
                rec.__dict__["_strip_bytes"] = strip_bytes
            return rec
        except (TypeError, ValueError, KeyError) as e:
            raise BaselineError(path, f"corrupt record ({e})") from None


# --------------------------------------------------------------------------------------------------
# binaries


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An .npz with fixed zip timestamps, so identical arrays give identical bytes (no git churn)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def _npz_load(data: bytes, source: Path | str = "keyframes.npz") -> dict[str, np.ndarray]:
    """The arrays of an npz, refusing before inflating one whose members would decompress past the
    ``npz_mb`` limit (a 2 MB zip can declare gigabytes of zeros)."""
    from pytest_ltx.limits import current, raise_hint

    limit = current().npz_mb * 1024 * 1024
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        total = sum(max(0, i.file_size) for i in zf.infolist())
    if total > limit:
        raise BaselineError(
            source, f"decompresses to {total / 2**20:.0f} MB, over the {current().npz_mb} MB limit for a "
            f"baseline's arrays; not inflated; {raise_hint('npz_mb')}")
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "scalars": (dict,), "spread": (dict,), "provenance": (dict,), "environment": (dict,),
    "keyframes": (dict,), "arrays": (dict,), "thumbnails": (dict,), "samples": (int,),
    "fps": (int, float), "created": (str,), "updated": (str,),
}


def _expect_types(path: Path, doc: Mapping[str, Any]) -> None:
    """Wrong types in a hand-edited record.json name the field (not a TypeError three calls later)."""
    for k, types in _FIELD_TYPES.items():
        v = doc.get(k)
        if v is not None and (not isinstance(v, types) or isinstance(v, bool)):
            want = " or ".join({dict: "an object", int: "an integer", float: "a number", str: "a string"}[t]
                               for t in types)
            raise BaselineError(path, f"corrupt record ('{k}' should be {want}, got {type(v).__name__})")
    for k, v in (doc.get("scalars") or {}).items():
        if v is not None and not isinstance(v, (int, float)):
            raise BaselineError(path, f"corrupt record (scalar '{k}' should be a number, got {type(v).__name__})")
    kf = doc.get("keyframes") or {}
    frames = kf.get("frames")
    if frames is not None and (not isinstance(frames, list) or not all(isinstance(i, int) for i in frames)):
        raise BaselineError(path, "corrupt record ('keyframes.frames' should be a list of frame numbers)")
    for name, m in (doc.get("arrays") or {}).items():
        if not isinstance(m, dict):
            raise BaselineError(path, f"corrupt record (array entry '{name}' should be an object)")
    t = doc.get("thumbnails")
    if t is not None:
        shape = t.get("shape")
        if not (isinstance(shape, list) and len(shape) == 4 and all(isinstance(i, int) and i >= 0 for i in shape)):
            raise BaselineError(path, "corrupt record ('thumbnails.shape' should be 4 whole numbers)")


def _read_strip(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("not an image")
    k, h, w, c = shape
    if img.shape != (h, k * w, c):
        raise ValueError(f"strip is {img.shape}, record.json says {k}×{h}×{w}")
    rgb = img[..., ::-1]
    return np.ascontiguousarray(np.stack([rgb[:, i * w : (i + 1) * w] for i in range(k)]))


# --------------------------------------------------------------------------------------------------
# helpers for the caller that builds a record


def storable_scalars(scalars: Mapping[str, Any]) -> dict[str, Any]:
    """The scalars worth keeping in a baseline: drops values measured *against* the baseline
    (``clip_similarity.baseline_similarity_mean``…), which describe a comparison, not the clip."""
    return {k: v for k, v in scalars.items() if "baseline" not in k}


def collect_environment(
    *, device: str | None = None, dtype: str | None = None, gpu: "str | Mapping[str, Any] | None" = None,
    libraries: Iterable[str] = _LIBRARIES,
) -> dict[str, Any]:
    """Library versions (from package metadata: nothing heavy is imported) plus the render placement."""
    import platform

    libs = package_versions(libraries)
    return {
        "python": platform.python_version(),
        "platform": platform.system().lower(),
        "libraries": libs,
        "device": device,
        "dtype": dtype,
        "gpu": gpu,
    }


def make_thumbnails(frames: np.ndarray, height: int = 72) -> np.ndarray:
    """uint8 [K,H,W,3] keyframes → small RGB thumbnails [K,height,w,3] for the review strip."""
    import cv2

    frames = np.asarray(frames)
    k, h, w = frames.shape[:3]
    tw = max(1, round(w * height / h))
    return np.stack([cv2.resize(f, (tw, height), interpolation=cv2.INTER_AREA) for f in frames]).astype(np.uint8)


def make_structural_thumbs(frames: np.ndarray, size: int = 32) -> np.ndarray:
    """uint8 [K,H,W,3] keyframes → gray [K,size,size] fingerprints (weight-free structural comparison),
    made exactly as the structural metric makes its own."""
    from pytest_ltx.metrics.structural import thumbnail

    return np.stack([thumbnail(f, size) for f in np.asarray(frames)]).astype(np.uint8)