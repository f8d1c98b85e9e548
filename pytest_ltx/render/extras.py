"""What a profile adds to a checkpoint: LoRAs (path, scale), the distilled LoRA and the spatial latent
upsampler two-stage rendering needs; their identity; and tiny random versions built locally so every
recipe renders on CPU with the embedded model.

Identity (:func:`extras_identity`) is content, not paths: a cheap digest of each LoRA file (size,
safetensors header, 64 KiB from each end) and of the upsampler folder's config and weights, plus the
scales. It is part of the render cache key and of the render manifest, and is what the model
fingerprint should fold in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "LoraRef",
    "file_digest",
    "folder_digest",
    "extras_identity",
    "build_tiny_lora",
    "build_tiny_upsampler",
]


@dataclass(frozen=True)
class LoraRef:
    """One LoRA a profile applies: a diffusers/peft or Lightricks-format ``.safetensors`` file and its scale."""

    path: Path
    scale: float = 1.0
    #: adapter name inside the pipeline (default: the file stem)
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "scale", float(self.scale))

    @property
    def adapter(self) -> str:
        raw = self.name or self.path.stem
        return "".join(c if c.isalnum() or c in "_-" else "_" for c in raw) or "lora"

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "scale": self.scale, "name": self.adapter}


def file_digest(path: Path) -> str:
    """Full-content sha256 of a weights file, from the machine-wide digest cache (``model_identity``): a
    byte changed anywhere in a LoRA is a new identity, and an unchanged file is not hashed again."""
    from pytest_ltx.model_identity import DigestCache

    p = Path(path)
    return DigestCache().digests([p])[p]


def folder_digest(d: Path) -> str:
    """sha256 over a component folder (an upsampler): each JSON config canonicalised (no version stamps),
    each weights file by its full content."""
    from pytest_ltx.model_identity import DigestCache, canonical_config

    d = Path(d)
    files = sorted(q for q in d.rglob("*") if q.is_file() and not q.name.startswith("."))
    weights = [p for p in files if p.suffix in (".safetensors", ".bin")]
    digests = DigestCache().digests(weights)
    h = hashlib.sha256()
    for p in files:
        rel = p.relative_to(d).as_posix()
        if p.suffix == ".json":
            h.update(f"file {rel}\n".encode() + canonical_config(p))
        elif p in digests:
            h.update(f"weights {rel} {digests[p]}\n".encode())
    return h.hexdigest()


def extras_identity(loras: tuple[LoraRef, ...], distilled_lora: LoraRef | None,
                    upsampler: Path | None) -> dict[str, Any]:
    """What the profile adds to the checkpoint, by content ({} when nothing): part of every cache key and
    manifest. Missing files raise ``FileNotFoundError`` naming them."""
    out: dict[str, Any] = {}
    for ref in loras:
        if not ref.path.is_file():
            raise FileNotFoundError(f"LoRA file {ref.path} does not exist")
    if loras:
        out["loras"] = [{"name": r.adapter, "scale": r.scale, "digest": file_digest(r.path)} for r in loras]
    if distilled_lora is not None:
        if not distilled_lora.path.is_file():
            raise FileNotFoundError(f"distilled LoRA file {distilled_lora.path} does not exist")
        out["distilled_lora"] = {"name": distilled_lora.adapter, "scale": distilled_lora.scale,
                                 "digest": file_digest(distilled_lora.path)}
    if upsampler is not None:
        if not (Path(upsampler) / "config.json").is_file():
            raise FileNotFoundError(f"latent upsampler folder {upsampler} has no config.json")
        out["upsampler"] = {"digest": folder_digest(Path(upsampler))}
    return out


# ------------------------------------------------------------------------------------ tiny versions


def _tiny_transformer_layout(model_dir: Path) -> tuple[int, int, int]:
    """(num_layers, video inner dim, audio inner dim) of the tiny transformer, from its config."""
    cfg = json.loads((Path(model_dir) / "transformer" / "config.json").read_text())
    return (int(cfg["num_layers"]), int(cfg["num_attention_heads"]) * int(cfg["attention_head_dim"]),
            int(cfg["audio_num_attention_heads"]) * int(cfg["audio_attention_head_dim"]))


def build_tiny_lora(model_dir: Path, dest: Path, *, seed: int = 0, rank: int = 2, amplitude: float = 0.5) -> Path:
    """A random rank-``rank`` LoRA (diffusers/peft key layout) on every video and audio self-attention
    q/k/v of the tiny transformer at ``model_dir``, saved as ``dest``. It visibly changes renders, which
    is all a plumbing test needs."""
    import torch
    from safetensors.torch import save_file

    layers, vdim, adim = _tiny_transformer_layout(model_dir)
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for i in range(layers):
        for attn, dim in (("attn1", vdim), ("audio_attn1", adim)):
            for proj in ("to_q", "to_k", "to_v"):
                base = f"transformer.transformer_blocks.{i}.{attn}.{proj}"
                sd[f"{base}.lora_A.weight"] = torch.randn(rank, dim, generator=g) * amplitude
                sd[f"{base}.lora_B.weight"] = torch.randn(dim, rank, generator=g) * amplitude
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(dest))
    return dest


def build_tiny_upsampler(model_dir: Path, dest: Path, *, seed: int = 0) -> Path:
    """A random ×2 spatial latent upsampler (``LTX2LatentUpsamplerModel``) for the tiny model's latent
    channels, saved with ``save_pretrained`` into ``dest`` (the layout of a real ``latent_upsampler/``)."""
    import torch
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    vae = json.loads((Path(model_dir) / "vae" / "config.json").read_text())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = LTX2LatentUpsamplerModel(in_channels=int(vae["latent_channels"]), mid_channels=32,
                                     num_blocks_per_stage=1, dims=3, spatial_upsample=True,
                                     temporal_upsample=False, rational_spatial_scale=2.0,
                                     use_rational_resampler=False)
    m.save_pretrained(str(dest), safe_serialization=True)
    return Path(dest)
