"""The embedded ``tiny`` model: a real LTX-2.3-architecture diffusers pipeline with random weights.

Why: the harness must run end to end (render → mp4 → metrics → baselines) on any CPU box without
downloading 60 GB of weights. So we build every component the real checkpoint has — Gemma-3 text encoder
and tokenizer, 2.3 text connectors, the 2.3 audio-video transformer, a video VAE with the real 32×/8×
compression, the audio VAE, the 48 kHz BWE vocoder, the flow-matching scheduler — at toy widths, save it
with ``save_pretrained`` and load it back with ``LTX2Pipeline.from_pretrained``: exactly the code path a
real checkpoint takes. It renders noise, deterministically; never use it to prove a metric.

The folder is built once per machine (``$PYTEST_LTX_HOME`` or ``~/.cache/pytest-ltx``), atomically and
under a file lock so parallel xdist workers don't race. Its name is a digest of what it is built *from*
(this module's source and the versions of the libraries that execute it), so a changed recipe or a new
torch rebuilds it; its *identity* is the content of what was built (``model_identity.py``), so a rebuild
that yields the same weights and configs keeps every baseline valid.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from pytest_ltx.model_identity import pytest_ltx_home

__all__ = [
    "TINY_BUILDER_VERSION",
    "pytest_ltx_home",
    "tiny_model_dir",
    "build_tiny_components",
    "save_tiny_model",
    "ensure_tiny_model",
]

#: bump when anything below changes the saved model (it is part of the folder name)
TINY_BUILDER_VERSION = "1"
_COMPLETE = ".pytest-ltx-complete"

# text side: Gemma hidden size; the pipeline stacks all hidden states (embeddings + 2 layers = 3)
_TEXT_HIDDEN = 32
_TEXT_LAYERS = 2
# transformer cross-attention widths = the 2.3 connectors' per-modality outputs
_VIDEO_XATTN = 16
_AUDIO_XATTN = 8
_MEL_BINS = 8

_WORDS = ("robot", "dancing", "the", "cat", "dog", "car", "city", "light", "red", "blue")


#: the libraries whose code runs while the tiny model is built and saved
_BUILD_LIBRARIES = ("torch", "diffusers", "transformers", "safetensors", "tokenizers")


def build_inputs_digest() -> str:
    """Digest of everything the tiny model is built from: this module's source, the builder version and
    the versions of the libraries that initialise and save it (12 hex chars)."""
    from pytest_ltx.versions import package_versions

    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(f"builder={TINY_BUILDER_VERSION}".encode())
    for name, version in sorted(package_versions(_BUILD_LIBRARIES).items()):
        h.update(f"{name}={version}".encode())
    return h.hexdigest()[:12]


def tiny_model_dir(home: Path | None = None) -> Path:
    return (home or pytest_ltx_home()) / "models" / f"tiny-{build_inputs_digest()}"


# -------------------------------------------------------------------------------------------- builder


def _tokenizer() -> Any:
    """A byte-fallback BPE Gemma tokenizer built in memory: specials, ▁, ASCII letters, digits and
    punctuation, plus merges so a few common prompt words are single tokens. No files, no hub."""
    from transformers import GemmaTokenizer

    vocab: dict[str, int] = {}
    for tok in ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "▁"):
        vocab[tok] = len(vocab)
    for ch in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()/":
        vocab.setdefault(ch, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        left = "▁"
        for ch in word:
            merged = left + ch
            if merged not in vocab:
                merges.append((left, ch))
                vocab[merged] = len(vocab)
            left = merged
    return GemmaTokenizer(vocab=vocab, merges=merges, padding_side="left", model_max_length=64)


def _text_encoder(n_tokens: int) -> Any:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    image_id, boi_id, eoi_id = n_tokens, n_tokens + 1, n_tokens + 2
    vocab_size = -(-(n_tokens + 3) // 8) * 8
    cfg = Gemma3Config(
        text_config={
            "model_type": "gemma3_text",
            "vocab_size": vocab_size,
            "hidden_size": _TEXT_HIDDEN,
            "intermediate_size": 2 * _TEXT_HIDDEN,
            "num_hidden_layers": _TEXT_LAYERS,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "query_pre_attn_scalar": 16,
            "max_position_embeddings": 256,
            "sliding_window": 64,
            "pad_token_id": 0,
            "eos_token_id": 1,
            "bos_token_id": 2,
        },
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 8,
            "patch_size": 2,
        },
        mm_tokens_per_image=4,
        image_token_index=image_id,
        boi_token_index=boi_id,
        eoi_token_index=eoi_id,
    )
    return Gemma3ForConditionalGeneration(cfg).eval()


def _connectors() -> Any:
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    return LTX2TextConnectors(
        caption_channels=_TEXT_HIDDEN,
        text_proj_in_factor=_TEXT_LAYERS + 1,
        video_connector_num_attention_heads=2,
        video_connector_attention_head_dim=_VIDEO_XATTN // 2,
        video_connector_num_layers=1,
        video_connector_num_learnable_registers=None,
        video_gated_attn=True,
        audio_connector_num_attention_heads=2,
        audio_connector_attention_head_dim=_AUDIO_XATTN // 2,
        audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None,
        audio_gated_attn=True,
        connector_rope_base_seq_len=32,
        rope_type="split",
        per_modality_projections=True,
        video_hidden_dim=_VIDEO_XATTN,
        audio_hidden_dim=_AUDIO_XATTN,
        proj_bias=True,
    )


def _transformer() -> Any:
    from diffusers import LTX2VideoTransformer3DModel

    return LTX2VideoTransformer3DModel(
        in_channels=4,
        out_channels=4,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=_VIDEO_XATTN,
        audio_in_channels=4,
        audio_out_channels=4,
        audio_num_attention_heads=2,
        audio_attention_head_dim=4,
        audio_cross_attention_dim=_AUDIO_XATTN,
        num_layers=2,
        qk_norm="rms_norm_across_heads",
        caption_channels=_TEXT_HIDDEN,
        rope_type="split",
        rope_double_precision=False,
        # the LTX-2.3 flags
        gated_attn=True,
        cross_attn_mod=True,
        audio_gated_attn=True,
        audio_cross_attn_mod=True,
        use_prompt_embeddings=False,
        perturbed_attn=True,
    )


def _video_vae() -> Any:
    """The real block layout (patch 4, 4 down blocks) at tiny widths: the real 32× spatial / 8× temporal
    latent grid, so the transformer sequence stays as short as the real model's (the diffusers test VAE
    compresses only 2× and makes moderate clips take minutes)."""
    from diffusers import AutoencoderKLLTX2Video

    vae = AutoencoderKLLTX2Video(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 16, 32, 64),
        down_block_types=("LTX2VideoDownBlock3D",) * 4,
        decoder_block_out_channels=(8, 16, 32),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, True),
        decoder_spatio_temporal_scaling=(True, True, True),
        decoder_inject_noise=(False, False, False, False),
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        upsample_type=("spatiotemporal",) * 3,
        upsample_residual=(True, True, True),
        upsample_factor=(2, 2, 2),
        patch_size=4,
        patch_size_t=1,
        # auto-derivation gets 64/16 for this layout; the real model is 32/8
        spatial_compression_ratio=32,
        temporal_compression_ratio=8,
    )
    vae.use_framewise_encoding = False
    vae.use_framewise_decoding = False
    return vae


def _audio_vae() -> Any:
    from diffusers import AutoencoderKLLTX2Audio

    return AutoencoderKLLTX2Audio(
        base_channels=4,
        output_channels=2,
        ch_mult=(1,),
        num_res_blocks=1,
        attn_resolutions=None,
        in_channels=2,
        resolution=32,
        latent_channels=2,
        mel_bins=_MEL_BINS,
        sample_rate=16000,
        mel_hop_length=160,
        is_causal=True,
    )


def _fill_stft_buffers(vocoder: Any, seed: int) -> None:
    """The BWE vocoder's STFT bases and mel filterbank are checkpoint data (zeros after ``__init__``):
    fill them with a Hann-windowed DFT and a seeded random non-negative filterbank, so the 48 kHz path
    computes something input-dependent instead of ``log(1e-5)`` constants."""
    import math

    import torch

    mel = vocoder.mel_stft
    stft = mel.stft_fn
    n2, _, n_fft = stft.forward_basis.shape
    n_freqs = n2 // 2
    n = torch.arange(n_fft, dtype=torch.float64)
    window = 0.5 - 0.5 * torch.cos(2 * math.pi * n / n_fft)
    k = torch.arange(n_freqs, dtype=torch.float64)[:, None]
    ang = 2 * math.pi * k * n[None, :] / n_fft
    basis = torch.cat([torch.cos(ang), -torch.sin(ang)]) * window
    with torch.no_grad():
        stft.forward_basis.copy_(basis[:, None, :].to(stft.forward_basis.dtype))
        stft.inverse_basis.copy_((basis / n_fft)[:, None, :].to(stft.inverse_basis.dtype))
        g = torch.Generator().manual_seed(seed + 1)
        fb = torch.rand(mel.mel_basis.shape, generator=g, dtype=torch.float64) / n_freqs
        mel.mel_basis.copy_(fb.to(mel.mel_basis.dtype))


def _vocoder(seed: int) -> Any:
    """16 kHz vocoder (upsample 8·5·4 = the 160-sample mel hop, so audio length matches the clip)
    feeding a bandwidth extender to 48 kHz (6·5·8 = 240 = hop 80 × 3). Every ``kernel - factor`` is even:
    odd ones add a sample per stage and break the BWE residual add."""
    from diffusers.pipelines.ltx2 import LTX2VocoderWithBWE

    voc = LTX2VocoderWithBWE(
        in_channels=2 * _MEL_BINS,
        hidden_channels=32,
        out_channels=2,
        upsample_kernel_sizes=[16, 11, 8],
        upsample_factors=[8, 5, 4],
        resnet_kernel_sizes=[3],
        resnet_dilations=[[1, 3, 5]],
        act_fn="snakebeta",
        antialias=True,
        bwe_in_channels=2 * _MEL_BINS,
        bwe_hidden_channels=16,
        bwe_out_channels=2,
        bwe_upsample_kernel_sizes=[12, 11, 16],
        bwe_upsample_factors=[6, 5, 8],
        bwe_resnet_kernel_sizes=[3],
        bwe_resnet_dilations=[[1, 3, 5]],
        filter_length=128,
        hop_length=80,
        window_length=128,
        num_mel_channels=_MEL_BINS,
        input_sampling_rate=16000,
        output_sampling_rate=48000,
    )
    _fill_stft_buffers(voc, seed)
    return voc


def build_tiny_components(seed: int = 0) -> dict[str, Any]:
    """All ``LTX2Pipeline`` components, initialised from ``seed`` (the global torch RNG is left as it was)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tokenizer = _tokenizer()
        comps = {
            "tokenizer": tokenizer,
            "text_encoder": _text_encoder(len(tokenizer)),
            "connectors": _connectors(),
            "transformer": _transformer(),
            "vae": _video_vae(),
            "audio_vae": _audio_vae(),
            "vocoder": _vocoder(seed),
            "scheduler": FlowMatchEulerDiscreteScheduler(),
        }
    return comps


def save_tiny_model(dest: Path, seed: int = 0) -> Path:
    """Build the tiny pipeline and ``save_pretrained`` it into ``dest`` (a diffusers folder)."""
    from diffusers import LTX2Pipeline

    from pytest_ltx.render.guard import silence_progress_bars

    silence_progress_bars()
    pipe = LTX2Pipeline(**build_tiny_components(seed))
    pipe.save_pretrained(str(dest), safe_serialization=True)
    return Path(dest)


_ENSURED: dict[Path, Path] = {}
_ENSURE_LOCK = threading.Lock()


def ensure_tiny_model(home: Path | None = None) -> Path:
    """The tiny model's folder, built on first use. Safe across processes: the build goes into a temp
    dir next to the target and is renamed into place under a file lock, so a reader sees either no
    folder or a complete one."""
    target = tiny_model_dir(home)
    with _ENSURE_LOCK:
        if target in _ENSURED:
            return _ENSURED[target]
        if not (target / _COMPLETE).is_file():
            from filelock import FileLock

            target.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(target) + ".lock"):
                if not (target / _COMPLETE).is_file():
                    if target.exists():  # a crashed build from an older, non-atomic writer
                        shutil.rmtree(target, ignore_errors=True)
                    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
                    from pytest_ltx.storage import make_readable

                    make_readable(tmp)  # mkdtemp makes 0700; a machine-wide model cache is shared
                    try:
                        save_tiny_model(tmp)
                        (tmp / _COMPLETE).write_text(f"tiny builder {TINY_BUILDER_VERSION}\n")
                        os.replace(tmp, target)
                    except BaseException:
                        shutil.rmtree(tmp, ignore_errors=True)
                        raise
        _ENSURED[target] = target
        return target
