"""Model profiles: which LTX-2 weights a spec renders with, on which device, and how to fingerprint them.

A profile is declared once in ``pyproject.toml`` (``[tool.pytest-ltx.models.<name>]``) and named by specs,
so a spec never carries machine paths. The built-in ``tiny`` profile needs no declaration: it is a real
LTX-2.3-architecture pipeline with random weights, built locally on first use (see ``render/tiny.py``).
The fingerprint is recorded with every result and keys the render cache: change the weights, and every
cached render and baseline comparison knows it.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any, Mapping

from pytest_ltx.render.base import RenderError

__all__ = [
    "ModelKind",
    "Offload",
    "ModelProfile",
    "ProfileError",
    "ModelNotFoundError",
    "TINY_PROFILE",
    "load_tool_config",
    "load_profiles",
    "resolve_model_dir",
    "fingerprint",
    "fingerprint_dir",
]

_DTYPES = ("auto", "float32", "bfloat16", "float16")
_VARIANTS = ("2.0", "2.3")


class ModelKind(str, Enum):
    TINY = "tiny"  # the embedded random-weight model, built on first use
    LOCAL = "local"  # a diffusers folder on disk (model_index.json)
    HUB = "hub"  # a hub id, resolved from the local Hugging Face cache only (never downloaded)


class Offload(str, Enum):
    NONE = "none"
    MODEL = "model"  # enable_model_cpu_offload(): one component on the GPU at a time
    SEQUENTIAL = "sequential"  # enable_sequential_cpu_offload(): smallest VRAM, slowest


class ProfileError(ValueError):
    """A profile declaration in pyproject.toml is wrong; the message names the file, profile and field."""


class ModelNotFoundError(RenderError):
    """The weights a profile points at are not on this machine; the message says how to provide them."""


@dataclass(frozen=True)
class ModelProfile:
    """One model + placement policy. Frozen and hashable: it keys the per-process pipeline memo."""

    name: str
    kind: ModelKind = ModelKind.LOCAL
    path: Path | None = None
    hub_id: str | None = None
    revision: str | None = None
    #: auto → bfloat16 on CUDA, float32 on CPU
    dtype: str = "auto"
    #: auto | cpu | cuda | cuda:N
    device: str = "auto"
    #: applied only when CUDA exists (diffusers' offload hooks require an accelerator)
    offload: Offload = Offload.NONE
    #: None → on for CUDA (avoids the VAE decode peak), off on CPU
    vae_tiling: bool | None = None
    #: selects call defaults: STG block [29] + no cross-timestep for 2.0; [28] + cross-timestep for 2.3
    variant: str = "2.3"
    #: prompt padding length; None → the pipeline default (1024)
    max_sequence_length: int | None = None
    #: blocks perturbed by spatio-temporal guidance; None → the variant's default
    stg_blocks: tuple[int, ...] | None = None
    #: CPU torch threads; 1 by default because the audio bits change with the thread count
    threads: int = 1

    def __post_init__(self) -> None:
        if self.path is not None and not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "kind", ModelKind(self.kind))
        object.__setattr__(self, "offload", Offload(self.offload))
        if self.stg_blocks is not None:
            object.__setattr__(self, "stg_blocks", tuple(int(b) for b in self.stg_blocks))

    @property
    def default_stg_blocks(self) -> tuple[int, ...]:
        if self.stg_blocks is not None:
            return self.stg_blocks
        return (29,) if self.variant == "2.0" else (28,)

    @property
    def use_cross_timestep(self) -> bool:
        return self.variant != "2.0"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "path": None if self.path is None else str(self.path),
            "hub_id": self.hub_id,
            "revision": self.revision,
            "dtype": self.dtype,
            "device": self.device,
            "offload": self.offload.value,
            "vae_tiling": self.vae_tiling,
            "variant": self.variant,
            "max_sequence_length": self.max_sequence_length,
            "stg_blocks": None if self.stg_blocks is None else list(self.stg_blocks),
            "threads": self.threads,
        }


#: the embedded model: a 2-layer transformer, so STG must perturb block 1 (the default [28] would
#: silently perturb nothing), and short prompt padding keeps a render well under a second.
TINY_PROFILE = ModelProfile(
    name="tiny",
    kind=ModelKind.TINY,
    dtype="float32",
    device="cpu",
    variant="2.3",
    max_sequence_length=32,
    stg_blocks=(1,),
    threads=1,
)


# ---------------------------------------------------------------------------------------------- config


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{path}: not valid TOML ({e})") from None


def load_tool_config(rootdir: Path) -> dict[str, Any]:
    """The whole ``[tool.pytest-ltx]`` table of ``rootdir/pyproject.toml`` ({} when absent)."""
    pp = Path(rootdir) / "pyproject.toml"
    if not pp.is_file():
        return {}
    table = _load_toml(pp).get("tool", {}).get("pytest-ltx", {})
    if not isinstance(table, dict):
        raise ProfileError(f"{pp}: [tool.pytest-ltx] must be a table")
    return table


_FIELDS = {f.name for f in fields(ModelProfile)} - {"name"}


def _parse_profile(name: str, raw: Mapping[str, Any], rootdir: Path, where: str) -> ModelProfile:
    def bad(field: str, msg: str) -> ProfileError:
        return ProfileError(f"{where}: [tool.pytest-ltx.models.{name}] field '{field}': {msg}")

    if not isinstance(raw, Mapping):
        raise ProfileError(f"{where}: [tool.pytest-ltx.models.{name}] must be a table")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise bad(unknown[0], f"unknown field (allowed: {', '.join(sorted(_FIELDS))})")

    def opt_str(key: str) -> str | None:
        v = raw.get(key)
        if v is not None and (not isinstance(v, str) or not v.strip()):
            raise bad(key, f"must be a non-empty string, got {v!r}")
        return v

    path_s, hub_id, revision = opt_str("path"), opt_str("hub_id"), opt_str("revision")
    kind_s = raw.get("kind")
    if kind_s is None:
        kind = ModelKind.LOCAL if path_s else ModelKind.HUB if hub_id else (
            ModelKind.TINY if name == "tiny" else None)
        if kind is None:
            raise bad("path", "a profile needs 'path' (a local diffusers folder) or 'hub_id'")
    else:
        try:
            kind = ModelKind(kind_s)
        except ValueError:
            raise bad("kind", f"must be one of {[k.value for k in ModelKind]}, got {kind_s!r}") from None
    if kind is ModelKind.LOCAL and not path_s:
        raise bad("path", "kind 'local' needs a path to a diffusers folder (with model_index.json)")
    if kind is ModelKind.HUB and not hub_id:
        raise bad("hub_id", "kind 'hub' needs a hub id such as 'Lightricks/LTX-2'")
    if kind is ModelKind.TINY and (path_s or hub_id):
        raise bad("path" if path_s else "hub_id",
                  "the tiny model is built locally and takes no weights; drop it or set kind = \"local\"")

    base = TINY_PROFILE if kind is ModelKind.TINY else ModelProfile(name=name)
    kw: dict[str, Any] = {"name": name, "kind": kind}
    if path_s:
        p = Path(os.path.expanduser(path_s))
        kw["path"] = p if p.is_absolute() else (Path(rootdir) / p)
    kw["hub_id"], kw["revision"] = hub_id, revision

    if "dtype" in raw:
        if raw["dtype"] not in _DTYPES:
            raise bad("dtype", f"must be one of {list(_DTYPES)}, got {raw['dtype']!r}")
        kw["dtype"] = raw["dtype"]
    if "device" in raw:
        d = raw["device"]
        ok = isinstance(d, str) and (d in ("auto", "cpu", "cuda") or (
            d.startswith("cuda:") and d[5:].isdigit()))
        if not ok:
            raise bad("device", f"must be auto, cpu, cuda or cuda:N, got {d!r}")
        kw["device"] = d
    if "offload" in raw:
        try:
            kw["offload"] = Offload(raw["offload"])
        except ValueError:
            raise bad("offload", f"must be one of {[o.value for o in Offload]}, got {raw['offload']!r}") from None
    if "vae_tiling" in raw:
        if not isinstance(raw["vae_tiling"], bool):
            raise bad("vae_tiling", f"must be true or false, got {raw['vae_tiling']!r}")
        kw["vae_tiling"] = raw["vae_tiling"]
    if "variant" in raw:
        v = str(raw["variant"])
        if v not in _VARIANTS:
            raise bad("variant", f"must be one of {list(_VARIANTS)}, got {raw['variant']!r}")
        kw["variant"] = v
    for key, lo in (("max_sequence_length", 1), ("threads", 1)):
        if key in raw:
            v = raw[key]
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise bad(key, f"must be an integer >= {lo}, got {v!r}")
            kw[key] = v
    if "stg_blocks" in raw:
        v = raw["stg_blocks"]
        if not isinstance(v, list) or not v or not all(isinstance(b, int) and b >= 0 for b in v):
            raise bad("stg_blocks", f"must be a non-empty list of block indices, got {v!r}")
        kw["stg_blocks"] = tuple(v)
    return replace(base, **kw)


def load_profiles(rootdir: Path) -> dict[str, ModelProfile]:
    """The built-in ``tiny`` profile plus every ``[tool.pytest-ltx.models.<name>]`` in pyproject.toml.

    Declaring ``tiny`` again overrides its placement fields (e.g. ``threads``); it stays the tiny model
    unless it names a path or hub id.
    """
    where = str(Path(rootdir) / "pyproject.toml")
    models = load_tool_config(rootdir).get("models", {})
    if not isinstance(models, dict):
        raise ProfileError(f"{where}: [tool.pytest-ltx.models] must be a table of profiles")
    out: dict[str, ModelProfile] = {"tiny": TINY_PROFILE}
    for name, raw in models.items():
        out[name] = _parse_profile(name, raw, Path(rootdir), where)
    return out


# ------------------------------------------------------------------------------------ locating weights


def _how_to_provide(profile: ModelProfile) -> str:
    hub = profile.hub_id or ("Lightricks/LTX-2" if profile.variant == "2.0" else "Lightricks/LTX-2.3")
    return (
        "Provide the model as a diffusers folder (model_index.json + transformer/ vae/ audio_vae/ vocoder/ "
        "connectors/ text_encoder/ tokenizer/ scheduler/). Either declare it in pyproject.toml:\n"
        f"    [tool.pytest-ltx.models.{profile.name}]\n"
        '    path = "/models/LTX-2.3"\n'
        "or download it on a machine with network access and copy it here:\n"
        f"    huggingface-cli download {hub} --local-dir /models/{hub.split('/')[-1]}\n"
        "(single-file checkpoints must be converted to diffusers format first). "
        "The embedded `tiny` profile needs no download."
    )


def resolve_model_dir(profile: ModelProfile) -> Path:
    """The local diffusers folder holding ``profile``'s weights (building the tiny model if needed).

    Never touches the network: hub ids resolve through the local Hugging Face cache only.
    """
    if profile.kind is ModelKind.TINY:
        from pytest_ltx.render.tiny import ensure_tiny_model

        return ensure_tiny_model()
    if profile.kind is ModelKind.HUB:
        from huggingface_hub import snapshot_download

        try:
            d = Path(snapshot_download(profile.hub_id, revision=profile.revision, local_files_only=True))
        except Exception as e:  # LocalEntryNotFoundError, RevisionNotFoundError, ...
            raise ModelNotFoundError(
                f"model profile '{profile.name}': hub id "
                f"'{profile.hub_id}{'@' + profile.revision if profile.revision else ''}' is not in the local Hugging Face "
                f"cache, and pytest-ltx never downloads ({e.__class__.__name__}).\n" + _how_to_provide(profile)
            ) from None
    else:
        assert profile.path is not None
        d = profile.path
        if not d.exists():
            raise ModelNotFoundError(
                f"model profile '{profile.name}': folder {d} does not exist.\n" + _how_to_provide(profile)
            )
    if not (d / "model_index.json").is_file():
        raise ModelNotFoundError(
            f"model profile '{profile.name}': {d} has no model_index.json, so it is not a diffusers "
            "pipeline folder.\n" + _how_to_provide(profile)
        )
    return d


# ------------------------------------------------------------------------------------------ fingerprint

_SAMPLE = 64 * 1024
_FP_MEMO: dict[tuple, str] = {}


def _hash_weights_file(h: "hashlib._Hash", f: Path) -> None:
    """Hash a weights file cheaply: its size, its safetensors header (names, dtypes, shapes, offsets)
    and a 64 KiB sample from the start and the end of the tensor data (re-trained weights with the same
    layout change the samples). Never reads the full file."""
    size = f.stat().st_size
    h.update(f"size={size}\n".encode())
    with f.open("rb") as fh:
        data_start = 0
        if f.suffix == ".safetensors" and size >= 8:
            (n,) = struct.unpack("<Q", fh.read(8))
            if 0 < n <= size - 8:
                h.update(fh.read(n))
                data_start = 8 + n
        fh.seek(data_start)
        h.update(fh.read(_SAMPLE))
        if size - data_start > 2 * _SAMPLE:
            fh.seek(size - _SAMPLE)
            h.update(fh.read(_SAMPLE))


def fingerprint_dir(d: Path) -> str:
    """sha256 (64 hex chars) of a diffusers folder: every json/txt config (model_index, component configs,
    shard indexes, tokenizer files) in full plus a cheap digest of each weights file."""
    d = Path(d)
    files = sorted(p for p in d.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(d).parts))
    stat_key = (str(d.resolve()),) + tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if stat_key in _FP_MEMO:
        return _FP_MEMO[stat_key]
    h = hashlib.sha256()
    for p in files:
        rel = p.relative_to(d).as_posix()
        if p.suffix in (".json", ".txt", ".model", ".yaml"):
            h.update(f"file {rel}\n".encode())
            h.update(p.read_bytes())
        elif p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt"):
            h.update(f"weights {rel}\n".encode())
            _hash_weights_file(h, p)
    out = h.hexdigest()
    _FP_MEMO[stat_key] = out
    return out


def fingerprint(profile: ModelProfile) -> str:
    """Cheap weight fingerprint of ``profile`` (see :func:`fingerprint_dir`); raises
    :class:`ModelNotFoundError` when the weights are not on this machine."""
    return fingerprint_dir(resolve_model_dir(profile))
