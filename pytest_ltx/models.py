"""Model profiles: which LTX-2 weights a spec renders with, on which device, and how to fingerprint them.

A profile is declared once in ``pyproject.toml`` (``[tool.pytest-ltx.models.<name>]``) and named by specs,
so a spec never carries machine paths. The built-in ``tiny`` profile needs no declaration: it is a real
LTX-2.3-architecture pipeline with random weights, built locally on first use (see ``render/tiny.py``).
The fingerprint (see ``model_identity.py``: canonical configs + full weight digests of the components the
pipeline loads) is recorded with every result and keys the render cache and the baselines: change the
weights, and every cached render and baseline comparison knows it; re-save them with newer libraries, and
nothing moves.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from pytest_ltx.errors import ModelNotFoundError, ProfileError  # noqa: F401 (re-exported)
from pytest_ltx.render.extras import LoraRef

if TYPE_CHECKING:
    from pytest_ltx.model_identity import ModelIdentity

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
    "identity",
    "identity_dir",
    "DIFFUSERS_REPOS",
]

_DTYPES = ("auto", "float32", "bfloat16", "float16")
_VARIANTS = ("auto", "2.0", "2.3", "2.5")
_RECIPES = ("dev", "distilled", "two-stage")


class ModelKind(str, Enum):
    TINY = "tiny"  # the embedded random-weight model, built on first use
    LOCAL = "local"  # a diffusers folder on disk (model_index.json)
    HUB = "hub"  # a hub id, resolved from the local Hugging Face cache only (never downloaded)


class Offload(str, Enum):
    NONE = "none"
    MODEL = "model"  # enable_model_cpu_offload(): one component on the GPU at a time
    GROUP = "group"  # enable_group_offload(block_level): a block or two on the GPU at a time
    SEQUENTIAL = "sequential"  # enable_sequential_cpu_offload(): smallest VRAM, slowest


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
    #: LTX-2 generation: None / "auto" → detected from the checkpoint's configs; a declared one that
    #: contradicts them is an error (see ``render/variant.py``)
    variant: str | None = None
    #: prompt padding length; None → the pipeline default (1024)
    max_sequence_length: int | None = None
    #: blocks perturbed by spatio-temporal guidance; None → the variant's reference blocks
    stg_blocks: tuple[int, ...] | None = None
    #: CPU torch threads; 1 by default because the audio bits change with the thread count
    threads: int = 1
    #: default render recipe (dev | distilled | two-stage); None → distilled on distilled weights, else dev
    recipe: str | None = None
    #: the checkpoint is a distilled one (its configs cannot say so)
    distilled: bool = False
    #: step count for guided stages instead of the reference one (the tiny profile keeps CI fast)
    steps: int | None = None
    #: LoRAs applied to every stage, in order
    loras: tuple[LoraRef, ...] = ()
    #: the distilled LoRA: refines stage 2 of two-stage on dev weights (and makes `distilled` possible)
    distilled_lora: LoraRef | None = None
    #: folder of the spatial latent upsampler (diffusers LTX2LatentUpsamplerModel) two-stage needs
    upsampler: Path | None = None

    def __post_init__(self) -> None:
        if self.path is not None and not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "kind", ModelKind(self.kind))
        object.__setattr__(self, "offload", Offload(self.offload))
        if self.stg_blocks is not None:
            object.__setattr__(self, "stg_blocks", tuple(int(b) for b in self.stg_blocks))
        if self.upsampler is not None and not isinstance(self.upsampler, Path):
            object.__setattr__(self, "upsampler", Path(self.upsampler))
        object.__setattr__(self, "loras", tuple(self.loras))

    def extras_identity(self) -> dict[str, Any]:
        """Content identity of the LoRAs and upsampler this profile adds ({} when none): fold it into the
        fingerprint. Raises ``FileNotFoundError`` naming a missing file."""
        from pytest_ltx.render.extras import extras_identity

        return extras_identity(self.loras, self.distilled_lora, self.upsampler)

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
            "recipe": self.recipe,
            "distilled": self.distilled,
            "steps": self.steps,
            "loras": [r.to_dict() for r in self.loras],
            "distilled_lora": None if self.distilled_lora is None else self.distilled_lora.to_dict(),
            "upsampler": None if self.upsampler is None else str(self.upsampler),
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
    steps=8,
)


# ---------------------------------------------------------------------------------------------- config


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
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
        kw["variant"] = None if v == "auto" else v
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
    if "recipe" in raw:
        if raw["recipe"] not in _RECIPES:
            raise bad("recipe", f"must be one of {list(_RECIPES)}, got {raw['recipe']!r}")
        kw["recipe"] = raw["recipe"]
    if "distilled" in raw:
        if not isinstance(raw["distilled"], bool):
            raise bad("distilled", f"must be true or false, got {raw['distilled']!r}")
        kw["distilled"] = raw["distilled"]
    if "steps" in raw:
        v = raw["steps"]
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 200:
            raise bad("steps", f"must be an integer 1..200, got {v!r}")
        kw["steps"] = v

    def rel(p: str) -> Path:
        q = Path(os.path.expanduser(p))
        return q if q.is_absolute() else Path(rootdir) / q

    def lora(key: str, v: Any) -> LoraRef:
        if isinstance(v, str) and v.strip():
            return LoraRef(path=rel(v))
        if not isinstance(v, Mapping) or not isinstance(v.get("path"), str) or not v["path"].strip():
            raise bad(key, f"must be a path or a table {{path = \"...\", scale = 1.0}}, got {v!r}")
        extra = sorted(set(v) - {"path", "scale", "name"})
        if extra:
            raise bad(key, f"unknown key {extra[0]!r} (allowed: path, scale, name)")
        sc = v.get("scale", 1.0)
        if not isinstance(sc, (int, float)) or isinstance(sc, bool) or not -10 <= sc <= 10:
            raise bad(key, f"scale must be a number in -10..10, got {sc!r}")
        name = v.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise bad(key, f"name must be a non-empty string, got {name!r}")
        return LoraRef(path=rel(v["path"]), scale=float(sc), name=name)

    if "loras" in raw:
        v = raw["loras"]
        if not isinstance(v, list):
            raise bad("loras", f"must be a list of {{path, scale}} tables, got {v!r}")
        refs = tuple(lora(f"loras[{i}]", x) for i, x in enumerate(v))
        names = [r.adapter for r in refs]
        if len(set(names)) != len(names):
            raise bad("loras", f"two LoRAs share the adapter name {sorted(n for n in names if names.count(n) > 1)[0]!r}; "
                      "give one a `name`")
        kw["loras"] = refs
    if "distilled_lora" in raw:
        kw["distilled_lora"] = lora("distilled_lora", raw["distilled_lora"])
    if "upsampler" in raw:
        v = raw["upsampler"]
        if not isinstance(v, str) or not v.strip():
            raise bad("upsampler", f"must be a path to a latent upsampler folder, got {v!r}")
        kw["upsampler"] = rel(v)
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

#: diffusers-format repositories of each variant (the original Lightricks repositories of 2.3 hold
#: single-file checkpoints, which must be converted first)
DIFFUSERS_REPOS: dict[str, str] = {
    "2.0": "Lightricks/LTX-2",
    "2.3": "diffusers/LTX-2.3-Diffusers",
    "2.5": "Lightricks/LTX-2.5-Diffusers",
}


def _how_to_provide(profile: ModelProfile) -> str:
    hub = profile.hub_id or DIFFUSERS_REPOS.get(profile.variant or "2.3", DIFFUSERS_REPOS["2.3"])
    local = f"/models/{hub.split('/')[-1]}"
    return (
        "Provide the model as a diffusers folder (model_index.json + the component folders it names: "
        "transformer/ vae/ audio_vae/ vocoder/ connectors/ text_encoder/ tokenizer/ scheduler/). Download it "
        "on a machine with network access and copy it here, or fill the Hugging Face cache there:\n"
        f"    hf download {hub} --local-dir {local}\n"
        "then declare it in pyproject.toml:\n"
        f"    [tool.pytest-ltx.models.{profile.name}]\n"
        f'    path = "{local}"          # or hub_id = "{hub}" to use the local Hugging Face cache\n'
        "Diffusers-format repositories: " + ", ".join(f"{v} ({k})" for k, v in DIFFUSERS_REPOS.items())
        + "; single-file checkpoints must be converted to diffusers format first. "
        "The embedded `tiny` profile needs no download."
    )


def _hub_snapshot(profile: ModelProfile) -> Path:
    """The local Hugging Face cache snapshot of a hub profile, never touching the network.

    ``snapshot_download(local_files_only=True)`` refuses a *partial* snapshot (``IncompleteSnapshotError``)
    — yet a partial snapshot is what ``from_pretrained`` leaves behind (it fetches only the files the
    pipeline loads, not READMEs or other variants). Whether the files the pipeline loads are all there is
    checked by the model identity, which names what is missing.
    """
    from huggingface_hub import snapshot_download, try_to_load_from_cache

    rev = f"@{profile.revision}" if profile.revision else ""
    try:
        return Path(snapshot_download(profile.hub_id, revision=profile.revision, local_files_only=True))
    except Exception as e:  # LocalEntryNotFoundError, IncompleteSnapshotError, RevisionNotFoundError, ...
        partial = getattr(e, "snapshot_path", None)
        if partial and (Path(partial) / "model_index.json").is_file():
            return Path(partial)
        try:
            found = try_to_load_from_cache(profile.hub_id, "model_index.json", revision=profile.revision)
        except Exception:  # an invalid repo id or revision
            found = None
        if isinstance(found, str):
            return Path(found).parent
        raise ModelNotFoundError(
            f"model profile '{profile.name}': hub id '{profile.hub_id}{rev}' is not in the local Hugging Face "
            f"cache, and pytest-ltx never downloads ({e.__class__.__name__}).\n" + _how_to_provide(profile)
        ) from None


def resolve_model_dir(profile: ModelProfile) -> Path:
    """The local diffusers folder holding ``profile``'s weights (building the tiny model if needed).

    Never touches the network: hub ids resolve through the local Hugging Face cache only.
    """
    if profile.kind is ModelKind.TINY:
        from pytest_ltx.render.tiny import ensure_tiny_model

        return ensure_tiny_model()
    if profile.kind is ModelKind.HUB:
        d = _hub_snapshot(profile)
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


# ----------------------------------------------------------------------------------------- identity

_IDENTITY_MEMO: dict[tuple, "ModelIdentity"] = {}


def _stat_key(d: Path) -> tuple:
    """Cheap change detector for the in-process memo: stat of every file under ``d`` (links followed)."""
    out = []
    for p in sorted(d.rglob("*")):
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((str(p), st.st_size, st.st_mtime_ns, st.st_ino))
    return (str(d.resolve()), tuple(out))


def identity_dir(d: Path, *, extras: Mapping[str, Any] | None = None) -> "ModelIdentity":
    """The :class:`~pytest_ltx.model_identity.ModelIdentity` of a diffusers folder (memoised per process;
    file digests cached machine-wide). Raises :class:`ModelNotFoundError` when a component the pipeline
    loads is missing."""
    from pytest_ltx.model_identity import IdentityError, model_identity

    d = Path(d)
    memo_key = (_stat_key(d), json.dumps(extras or {}, sort_keys=True, default=str))
    if memo_key not in _IDENTITY_MEMO:
        try:
            _IDENTITY_MEMO[memo_key] = model_identity(d, extras=extras)
        except IdentityError as e:
            raise ModelNotFoundError(f"{e}; the folder {d} is not a complete pipeline.") from None
    return _IDENTITY_MEMO[memo_key]


def fingerprint_dir(d: Path) -> str:
    """sha256 (64 hex chars) of what a diffusers folder's pipeline loads: canonical configs and the full
    content of every weights file of the components in model_index.json (see ``model_identity``)."""
    return identity_dir(d).fingerprint


def identity(profile: ModelProfile) -> "ModelIdentity":
    """The identity of ``profile``'s model; raises :class:`ModelNotFoundError` when the weights (or part
    of them) are not on this machine, saying how to provide them."""
    d = resolve_model_dir(profile)
    try:
        extras = profile.extras_identity()  # LoRAs and upsampler change the model: part of its identity
    except FileNotFoundError as e:
        raise ModelNotFoundError(f"model profile '{profile.name}': {e}") from None
    try:
        return identity_dir(d, extras=extras)
    except ModelNotFoundError as e:
        raise ModelNotFoundError(f"model profile '{profile.name}': {e}\n" + _how_to_provide(profile)) from None


def fingerprint(profile: ModelProfile) -> str:
    """The model identity's fingerprint (see :func:`identity`)."""
    return identity(profile).fingerprint
