"""Which LTX-2 generation a checkpoint is (2.0, 2.3 or 2.5), read from the checkpoint itself.

Render settings differ per generation (steps, STG block, cross-timestep modulation, image CRF), and a
profile that names the wrong one renders silently worse. So the variant is *detected* from what the
diffusers folder says about itself, and a declared variant that contradicts it is an error that names
the evidence. Evidence, each narrowing the set of possible generations:

- ``transformer/*.safetensors`` header metadata ``model_version`` (what Lightricks' ``detect_params``
  reads; "2.4" is the internal name of LTX-2.5);
- ``text_encoder/config.json`` ``model_type``: Gemma 4 → 2.5, Gemma 3 → 2.0 / 2.3 (diffusers'
  ``resolve_default_image_crf`` keys off the same field);
- ``model_index.json`` components only LTX-2.5 ships (``duration_head``, ``prompt_enhancer``,
  ``diffusion_decoder``);
- ``transformer/config.json``: the 2.3 block flags (``gated_attn``, ``cross_attn_mod``,
  ``perturbed_attn``) are all off on 2.0 and on from 2.3;
- ``vocoder/config.json``: the bandwidth-extending 48 kHz vocoder (``LTX2VocoderWithBWE``) arrived with 2.3.

Pure file reading (no torch), so ``pytest-ltx doctor`` and the tests run it on bare config folders.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["VARIANTS", "Architecture", "Detection", "VariantError", "detect_variant", "check_declared"]

VARIANTS: tuple[str, ...] = ("2.0", "2.3", "2.5")
_ALL = frozenset(VARIANTS)
_FROM_23 = frozenset({"2.3", "2.5"})
_2_5_COMPONENTS = ("duration_head", "prompt_enhancer", "diffusion_decoder")


class VariantError(ValueError):
    """The checkpoint's configs contradict each other, or the profile's declared variant."""


@dataclass(frozen=True)
class Architecture:
    """Transformer facts the render plan needs: can STG perturb anything, and where."""

    num_layers: int
    perturbed_attn: bool

    def to_dict(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, "perturbed_attn": self.perturbed_attn}


@dataclass(frozen=True)
class Detection:
    """The detected generation, every piece of evidence that led there, and the transformer facts."""

    #: the generation, or None when the evidence leaves more than one (then ``candidates`` lists them)
    variant: str | None
    evidence: tuple[str, ...]
    architecture: Architecture
    candidates: tuple[str, ...] = ()
    #: components of model_index.json (name → [library, class])
    components: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "candidates": list(self.candidates), "evidence": list(self.evidence),
                "architecture": self.architecture.to_dict()}


def _json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise VariantError(f"{path}: not readable JSON ({e})") from None
    return doc if isinstance(doc, dict) else None


def _safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` table of a safetensors header (read without loading any tensor)."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return {}
            (n,) = struct.unpack("<Q", head)
            if n <= 0 or n > 100 * 2**20:
                return {}
            doc = json.loads(f.read(n))
    except (OSError, ValueError):
        return {}
    meta = doc.get("__metadata__") if isinstance(doc, dict) else None
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def _version_to_variant(version: str) -> str | None:
    """``model_version`` → our variant name: 2.4.x (internal) and 2.5.x → 2.5, 2.3.x → 2.3, 2.0–2.2 → 2.0.
    Pre-release tags ("2.3-rc1") map onto the generation they are a candidate for, like the reference."""
    parts = version.replace("-", ".").split(".")
    nums: list[int] = []
    for p in parts:
        if not p.isdigit():
            break
        nums.append(int(p))
    if len(nums) < 2 or nums[0] != 2:
        return None
    minor = nums[1]
    return "2.5" if minor >= 4 else "2.3" if minor == 3 else "2.0"


def detect_variant(model_dir: Path | str) -> Detection:
    """Detect the LTX-2 generation of the diffusers folder ``model_dir``; raises :class:`VariantError`
    when its files disagree with each other or say nothing that decides it."""
    d = Path(model_dir)
    index = _json(d / "model_index.json") or {}
    possible = set(_ALL)
    evidence: list[str] = []
    why: list[tuple[str, frozenset[str]]] = []

    def narrow(source: str, claim: frozenset[str], text: str) -> None:
        nonlocal possible
        why.append((f"{source}: {text}", claim))
        evidence.append(f"{source}: {text}")
        possible &= claim

    # 1. model_version metadata (authoritative in the reference pipelines)
    for st in sorted((d / "transformer").glob("*.safetensors"))[:1]:
        version = _safetensors_metadata(st).get("model_version")
        if version:
            v = _version_to_variant(version)
            if v is not None:
                narrow(f"transformer/{st.name} metadata", frozenset({v}), f"model_version={version}")
    # 2. text encoder family
    te = _json(d / "text_encoder" / "config.json")
    if te is not None:
        mt = str(te.get("model_type", ""))
        if mt.startswith("gemma4"):
            narrow("text_encoder/config.json", frozenset({"2.5"}), f"model_type={mt} (Gemma 4: LTX-2.5)")
        elif mt.startswith("gemma3") or mt == "gemma":
            narrow("text_encoder/config.json", frozenset({"2.0", "2.3"}), f"model_type={mt} (Gemma 3: LTX-2.0/2.3)")
    # 3. components only 2.5 ships
    extra = [c for c in _2_5_COMPONENTS if isinstance(index.get(c), list) and index[c][0] is not None]
    if extra:
        narrow("model_index.json", frozenset({"2.5"}), f"has {', '.join(extra)} (LTX-2.5 components)")
    # 4. transformer block flags
    tr = _json(d / "transformer" / "config.json")
    if tr is None:
        raise VariantError(f"{d}: transformer/config.json is missing, so the LTX-2 generation cannot be told")
    flags = {k: bool(tr.get(k, False)) for k in ("gated_attn", "cross_attn_mod", "perturbed_attn")}
    on = sorted(k for k, v in flags.items() if v)
    if len(on) == len(flags):
        narrow("transformer/config.json", _FROM_23, "gated_attn, cross_attn_mod, perturbed_attn on (LTX-2.3+)")
    elif not on:
        narrow("transformer/config.json", frozenset({"2.0"}), "gated_attn, cross_attn_mod, perturbed_attn off (LTX-2.0)")
    else:
        evidence.append(f"transformer/config.json: only {', '.join(on)} on (a mixed block layout)")
    # 5. vocoder
    voc = _json(d / "vocoder" / "config.json")
    if voc is not None:
        cls = str(voc.get("_class_name", ""))
        if cls == "LTX2VocoderWithBWE":
            narrow("vocoder/config.json", _FROM_23, "LTX2VocoderWithBWE (48 kHz, LTX-2.3+)")
        elif cls == "LTX2Vocoder":
            narrow("vocoder/config.json", frozenset({"2.0", "2.5"}), "LTX2Vocoder (no bandwidth extension)")

    if not possible:
        lines = "; ".join(f"{src} → {'/'.join(sorted(claim))}" for src, claim in why)
        raise VariantError(f"{d}: the checkpoint's files contradict each other about its LTX-2 generation ({lines})")
    arch = Architecture(num_layers=int(tr.get("num_layers", 48)), perturbed_attn=flags["perturbed_attn"])
    cands = tuple(sorted(possible))
    return Detection(variant=cands[0] if len(cands) == 1 else None, evidence=tuple(evidence), architecture=arch,
                     candidates=cands, components={k: v for k, v in index.items() if not k.startswith("_")})


def check_declared(declared: str | None, detection: Detection, where: str) -> str:
    """The variant to render as: the detected one; a declared one that contradicts it is an error, and
    a declaration picks between generations the configs cannot tell apart."""
    auto = declared is None or declared == "auto"
    if auto and detection.variant is not None:
        return detection.variant
    if auto:
        raise VariantError(
            f"{where}: cannot tell whether the checkpoint is LTX-{' or LTX-'.join(detection.candidates)} from "
            f"its configs ({'; '.join(detection.evidence) or 'no evidence'}); declare `variant` in the profile")
    assert declared is not None
    if declared in detection.candidates:
        return declared
    found = detection.variant or "/".join(detection.candidates)
    raise VariantError(
        f"{where} declares variant {declared!r}, but the checkpoint is LTX-{found} "
        f"({'; '.join(detection.evidence)}). Rendering it with LTX-{declared} settings would use the wrong "
        f"steps, STG block and cross-timestep modulation; fix or drop `variant` in the profile.")
