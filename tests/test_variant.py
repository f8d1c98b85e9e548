"""LTX-2 generation detection from checkpoint configs: one folder per generation (configs only, as
diffusers writes them), metadata, contradictions, and a declared variant that disagrees."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from pytest_ltx.render.variant import VariantError, check_declared, detect_variant

FLAGS_ON = {"gated_attn": True, "cross_attn_mod": True, "perturbed_attn": True}
FLAGS_OFF = {"gated_attn": False, "cross_attn_mod": False, "perturbed_attn": False}


def checkpoint(root: Path, *, flags: dict, vocoder: str | None, text: str | None,
               extra: tuple[str, ...] = (), version: str | None = None) -> Path:
    """A diffusers LTX-2 folder's configs (and, with ``version``, a transformer safetensors header)."""
    index = {"_class_name": "LTX2Pipeline", "_diffusers_version": "0.42.1", "transformer":
             ["diffusers", "LTX2VideoTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLLTX2Video"]}
    for c in extra:
        index[c] = ["diffusers", "LTX2DurationHead"]
    (root / "transformer").mkdir(parents=True)
    (root / "model_index.json").write_text(json.dumps(index))
    (root / "transformer" / "config.json").write_text(json.dumps(
        {"_class_name": "LTX2VideoTransformer3DModel", "num_layers": 48, **flags}))
    if vocoder:
        (root / "vocoder").mkdir()
        (root / "vocoder" / "config.json").write_text(json.dumps({"_class_name": vocoder}))
    if text:
        (root / "text_encoder").mkdir()
        (root / "text_encoder" / "config.json").write_text(json.dumps({"model_type": text}))
    if version:
        header = json.dumps({"__metadata__": {"model_version": version}}).encode()
        (root / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(
            struct.pack("<Q", len(header)) + header)
    return root


def test_ltx20(tmp_path: Path) -> None:
    d = detect_variant(checkpoint(tmp_path, flags=FLAGS_OFF, vocoder="LTX2Vocoder", text="gemma3"))
    assert d.variant == "2.0" and not d.architecture.perturbed_attn and d.architecture.num_layers == 48
    assert any("off (LTX-2.0)" in e for e in d.evidence)


def test_ltx23(tmp_path: Path) -> None:
    d = detect_variant(checkpoint(tmp_path, flags=FLAGS_ON, vocoder="LTX2VocoderWithBWE", text="gemma3"))
    assert d.variant == "2.3" and d.architecture.perturbed_attn


def test_ltx25(tmp_path: Path) -> None:
    d = detect_variant(checkpoint(tmp_path, flags=FLAGS_ON, vocoder="LTX2VocoderWithBWE", text="gemma4_unified",
                                  extra=("duration_head",)))
    assert d.variant == "2.5"
    assert any("Gemma 4" in e for e in d.evidence) and any("duration_head" in e for e in d.evidence)


@pytest.mark.parametrize(("version", "variant"), [("2.4.0", "2.5"), ("2.3-rc1", "2.3"), ("2.0.1", "2.0")])
def test_model_version_metadata(tmp_path: Path, version: str, variant: str) -> None:
    flags = FLAGS_OFF if variant == "2.0" else FLAGS_ON
    d = detect_variant(checkpoint(tmp_path, flags=flags, vocoder=None, text=None, version=version))
    assert d.variant == variant and any(f"model_version={version}" in e for e in d.evidence)


def test_contradicting_files_are_an_error(tmp_path: Path) -> None:
    root = checkpoint(tmp_path, flags=FLAGS_OFF, vocoder="LTX2VocoderWithBWE", text="gemma3")
    with pytest.raises(VariantError, match=r"contradict each other.*transformer/config.json.*→ 2.0.*"
                                           r"vocoder/config.json.*→ 2.3/2.5"):
        detect_variant(root)


def test_ambiguous_needs_a_declaration(tmp_path: Path) -> None:
    d = detect_variant(checkpoint(tmp_path, flags=FLAGS_ON, vocoder="LTX2VocoderWithBWE", text=None))
    assert d.variant is None and d.candidates == ("2.3", "2.5")
    with pytest.raises(VariantError, match="cannot tell whether the checkpoint is LTX-2.3 or LTX-2.5"):
        check_declared(None, d, "model profile 'x'")
    assert check_declared("2.5", d, "model profile 'x'") == "2.5"


def test_declared_variant_that_contradicts_the_checkpoint(tmp_path: Path) -> None:
    d = detect_variant(checkpoint(tmp_path, flags=FLAGS_ON, vocoder="LTX2VocoderWithBWE", text="gemma3"))
    assert check_declared(None, d, "p") == "2.3" and check_declared("2.3", d, "p") == "2.3"
    with pytest.raises(VariantError) as ei:
        check_declared("2.0", d, "model profile 'ltx2'")
    msg = str(ei.value)
    assert "model profile 'ltx2' declares variant '2.0', but the checkpoint is LTX-2.3" in msg
    assert "gated_attn, cross_attn_mod, perturbed_attn on" in msg and "fix or drop `variant`" in msg


def test_missing_transformer_config(tmp_path: Path) -> None:
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(VariantError, match="transformer/config.json is missing"):
        detect_variant(tmp_path)
