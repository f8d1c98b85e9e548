"""Model identity: "the same weights and architecture", computed from what the pipeline really loads.

A baseline is only meaningful against the model that made it, so every baseline, render-cache entry and
result carries an identity. It must move when — and only when — the model changes:

* it covers exactly the components named in ``model_index.json`` (a LoRA, an upsampler or a README dropped
  into the folder is not part of the pipeline and changes nothing);
* each component's configs are canonicalised first: version stamps and bookkeeping keys that the library
  which *wrote* the folder puts there (``transformers_version``, ``_diffusers_version``, ``_name_or_path``…)
  are dropped, so re-saving identical weights with a newer transformers keeps the identity;
* every weights file the component loads is hashed in full (SHA-256): one byte rewritten in the middle of a
  10 GiB shard is a new identity.

Hashing 60+ GB on every session would be unacceptable, so file digests are cached machine-wide
(:class:`DigestCache`, keyed by path, size, mtime and inode; only what changed is hashed again) and a file in
a Hugging Face cache snapshot is a symlink to ``blobs/<sha256>`` — its digest is free.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from pytest_ltx.errors import IdentityError  # noqa: F401 (re-exported)

__all__ = [
    "BOOKKEEPING_KEYS",
    "CONFIG_FILES",
    "ComponentIdentity",
    "DigestCache",
    "IdentityError",
    "ModelIdentity",
    "canonical_config",
    "model_identity",
    "pytest_ltx_home",
]

#: keys a library writes about itself, not about the model: dropped (at any depth) before hashing a config.
#: ``dtype``/``torch_dtype`` say how the weights were saved; the weights' own bytes already say that.
BOOKKEEPING_KEYS: frozenset[str] = frozenset({
    "transformers_version", "_diffusers_version", "_name_or_path", "_commit_hash", "_use_default_values",
    "_attn_implementation_autoset", "_attn_implementation_internal", "torch_dtype", "dtype",
})

#: the configuration files a component loads (everything else in its folder is not part of the model)
CONFIG_FILES: tuple[str, ...] = (
    "config.json", "scheduler_config.json", "generation_config.json", "preprocessor_config.json",
    "processor_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "tokenizer.model", "spiece.model", "vocab.json", "merges.txt",
    "chat_template.jinja", "chat_template.json",
)
#: weight file stems in the order diffusers / transformers look for them (no variant requested)
_WEIGHT_STEMS = ("diffusion_pytorch_model", "model", "pytorch_model")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")
_CHUNK = 8 << 20


def pytest_ltx_home() -> Path:
    """Root of machine-wide pytest-ltx state (tiny models, digest cache): ``$PYTEST_LTX_HOME`` or
    ``~/.cache/pytest-ltx``."""
    env = os.environ.get("PYTEST_LTX_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pytest-ltx"


# ------------------------------------------------------------------------------------------- configs


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in BOOKKEEPING_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def canonical_config(path: Path) -> bytes:
    """A config file's bytes for hashing: JSON without bookkeeping keys, key-sorted and compact; any
    other file (a sentencepiece model, merges.txt) verbatim."""
    data = path.read_bytes()
    if path.suffix != ".json":
        return data
    try:
        obj = json.loads(data)
    except ValueError as e:
        raise IdentityError(f"{path}: not valid JSON ({e})") from None
    return json.dumps(_strip(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ------------------------------------------------------------------------------------- file digests


def _hf_blob_digest(path: Path) -> str | None:
    """A file of a Hugging Face cache snapshot links to ``blobs/<sha256>`` for LFS files: the name is the
    digest (the hub verified it when it downloaded the blob)."""
    if not path.is_symlink():
        return None
    target = path.resolve()
    if target.parent.name == "blobs" and _SHA256_HEX.match(target.name):
        return target.name
    return None


def _sha256(path: Path) -> str:
    """Streamed into one reused buffer (no per-chunk allocation: the cost is the hash, not the copies)."""
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


class DigestCache:
    """Full-content SHA-256 of files, remembered machine-wide by (real path, size, mtime, inode).

    A SQLite file under the pytest-ltx home is shared by concurrent sessions and xdist workers; when it
    cannot be opened or written (read-only home, full disk) digests are simply computed again.
    """

    def __init__(self, db_path: Path | None = None) -> None:
        self.path = Path(db_path) if db_path is not None else pytest_ltx_home() / "digests.sqlite"
        self.hits = self.misses = 0

    def _connect(self) -> sqlite3.Connection | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(str(self.path), timeout=30)
            con.execute("CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER, "
                        "mtime_ns INTEGER, inode INTEGER, sha256 TEXT)")
            return con
        except (sqlite3.Error, OSError):
            return None

    def digests(self, paths: Iterable[Path], *, workers: int | None = None) -> dict[Path, str]:
        """``{path: sha256 hex}``; unchanged files come from the cache, the others are hashed (in parallel:
        hashlib releases the GIL, so two cores hash two shards at once)."""
        paths = list(dict.fromkeys(Path(p) for p in paths))
        out: dict[Path, str] = {}
        todo: list[tuple[Path, str, os.stat_result]] = []
        con = self._connect()
        try:
            for p in paths:
                free = _hf_blob_digest(p)
                if free is not None:
                    out[p] = free
                    self.hits += 1
                    continue
                real = str(p.resolve())
                st = os.stat(real)
                row = None
                if con is not None:
                    try:
                        row = con.execute("SELECT sha256 FROM digests WHERE path=? AND size=? AND mtime_ns=? "
                                          "AND inode=?", (real, st.st_size, st.st_mtime_ns, st.st_ino)).fetchone()
                    except sqlite3.Error:
                        row = None
                if row:
                    out[p] = row[0]
                    self.hits += 1
                else:
                    todo.append((p, real, st))
            if todo:
                n = workers or min(4, os.cpu_count() or 1, len(todo))
                with ThreadPoolExecutor(max_workers=max(1, n)) as pool:
                    hashed = list(pool.map(lambda t: _sha256(Path(t[1])), todo))
                self.misses += len(todo)
                for (p, _real, _st), digest in zip(todo, hashed):
                    out[p] = digest
                if con is not None:
                    try:
                        with con:
                            con.executemany("INSERT OR REPLACE INTO digests VALUES (?,?,?,?,?)",
                                            [(real, st.st_size, st.st_mtime_ns, st.st_ino, d)
                                             for (_, real, st), d in zip(todo, hashed)])
                    except sqlite3.Error:
                        pass  # a cache that cannot be written costs time, never correctness
        finally:
            if con is not None:
                con.close()
        return out


# ---------------------------------------------------------------------------------------- identity


@dataclass(frozen=True)
class ComponentIdentity:
    name: str
    #: ``[library, class]`` from model_index.json
    cls: tuple[str, str]
    #: file name → sha256 of its canonical content
    configs: Mapping[str, str]
    #: file name (relative to the component) → sha256 of the whole file
    weights: Mapping[str, str]

    def digest(self, part: str) -> str:
        """Short digest of ``configs`` or ``weights`` (for messages and baseline records)."""
        blob = json.dumps(dict(getattr(self, part)), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return {"class": list(self.cls), "config": self.digest("configs"), "weights": self.digest("weights")}


@dataclass(frozen=True)
class ModelIdentity:
    """What a pipeline folder *is*: its pipeline class and, per component, class + configs + weights."""

    pipeline: str
    components: Mapping[str, ComponentIdentity]
    fingerprint: str
    #: extra identity inputs outside the folder (LoRAs…), already digested
    extras: Mapping[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Compact, JSON-ready: what a baseline record keeps to explain a later identity change."""
        return {"pipeline": self.pipeline, "fingerprint": self.fingerprint,
                "components": {n: c.to_dict() for n, c in sorted(self.components.items())},
                **({"extras": dict(self.extras)} if self.extras else {})}


def describe_change(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    """What changed between two identity summaries, one phrase per component: ``transformer: weights``,
    ``vocoder: config``, ``+latent_upsampler`` (added), ``-processor`` (removed)."""
    if not old or not new:
        return []
    out: list[str] = []
    if old.get("pipeline") != new.get("pipeline"):
        out.append(f"pipeline class {old.get('pipeline')} → {new.get('pipeline')}")
    oc, nc = old.get("components") or {}, new.get("components") or {}
    for name in sorted(set(oc) | set(nc)):
        if name not in nc:
            out.append(f"-{name}")
        elif name not in oc:
            out.append(f"+{name}")
        else:
            parts = [p for p in ("class", "config", "weights") if oc[name].get(p) != nc[name].get(p)]
            if parts:
                out.append(f"{name}: {' and '.join(parts)}")
    if (old.get("extras") or {}) != (new.get("extras") or {}):
        out.append("extras (" + ", ".join(sorted(set(old.get("extras") or {}) | set(new.get("extras") or {}))) + ")")
    return out


def _component_files(d: Path, name: str) -> tuple[list[Path], list[Path]]:
    """(config files, weights files) that ``name``'s loader reads from ``d/name``."""
    cdir = d / name
    if not cdir.is_dir():
        raise IdentityError(f"component '{name}' is named in model_index.json but {cdir} is missing")
    configs = [cdir / f for f in CONFIG_FILES if (cdir / f).is_file()]
    weights: list[Path] = []
    for stem in _WEIGHT_STEMS:
        for ext in ("safetensors", "bin"):
            index = cdir / f"{stem}.{ext}.index.json"
            single = cdir / f"{stem}.{ext}"
            if index.is_file():
                try:
                    shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
                except (ValueError, KeyError, TypeError) as e:
                    raise IdentityError(f"{index}: not a valid shard index ({e})") from None
                missing = [s for s in shards if not (cdir / s).is_file()]
                if missing:
                    raise IdentityError(f"component '{name}': shard(s) {', '.join(missing[:3])} listed in "
                                        f"{index.name} are missing from {cdir}")
                weights = [cdir / s for s in shards]
            elif single.is_file():
                weights = [single]
            if weights:
                break
        if weights:
            break
    if (cdir / "config.json").is_file() and not weights:
        raise IdentityError(f"component '{name}' has a config.json but no weights file in {cdir} "
                            "(expected diffusion_pytorch_model.safetensors, model.safetensors or a shard index)")
    if not configs:
        raise IdentityError(f"component '{name}' has no configuration file in {cdir}")
    return configs, weights


def model_identity(d: Path, *, cache: DigestCache | None = None,
                   extras: Mapping[str, Any] | None = None) -> ModelIdentity:
    """The identity of the diffusers pipeline folder ``d`` (see the module docstring)."""
    d = Path(d)
    index_path = d / "model_index.json"
    try:
        index = json.loads(index_path.read_text())
    except FileNotFoundError:
        raise IdentityError(f"{d} has no model_index.json") from None
    except ValueError as e:
        raise IdentityError(f"{index_path}: not valid JSON ({e})") from None
    if not isinstance(index, dict):
        raise IdentityError(f"{index_path}: expected a JSON object")
    names = sorted(k for k, v in index.items() if not k.startswith("_") and isinstance(v, list)
                   and len(v) == 2 and v[0] is not None and v[1] is not None)
    files: dict[str, tuple[list[Path], list[Path]]] = {n: _component_files(d, n) for n in names}
    cache = cache or DigestCache()
    weight_digests = cache.digests([w for _, ws in files.values() for w in ws])
    comps: dict[str, ComponentIdentity] = {}
    for n in names:
        cfgs, ws = files[n]
        comps[n] = ComponentIdentity(
            name=n, cls=(str(index[n][0]), str(index[n][1])),
            configs={c.name: hashlib.sha256(canonical_config(c)).hexdigest() for c in cfgs},
            weights={w.relative_to(d / n).as_posix(): weight_digests[w] for w in ws})
    pipeline = str(index.get("_class_name", ""))
    body = {"pipeline": pipeline, "extras": dict(extras or {}),
            "components": {n: {"class": list(c.cls), "configs": dict(sorted(c.configs.items())),
                               "weights": dict(sorted(c.weights.items()))} for n, c in comps.items()}}
    fp = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return ModelIdentity(pipeline=pipeline, components=comps, fingerprint=fp, extras=dict(extras or {}))
