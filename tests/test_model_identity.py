"""Model identity: the same weights and architecture ⇔ the same fingerprint (no model runs).

Proves the properties a fresh machine depends on: re-saving with newer libraries (version stamps) keeps the
identity, unrelated files in the folder keep it, one byte in the middle of a big weights file moves it; file
digests are cached by stat; a Hugging Face cache snapshot costs nothing to hash and resolves offline even
when partial; a conditioning image is keyed by content.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest

from pytest_ltx.model_identity import DigestCache, canonical_config, describe_change, model_identity
from pytest_ltx.models import ModelKind, ModelNotFoundError, ModelProfile, fingerprint, fingerprint_dir, identity

_INDEX = {
    "_class_name": "LTX2Pipeline",
    "_diffusers_version": "0.42.1",
    "transformer": ["diffusers", "LTX2VideoTransformer3DModel"],
    "tokenizer": ["transformers", "GemmaTokenizer"],
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "processor": [None, None],  # an optional component that is absent
}


def _safetensors(data: bytes) -> bytes:
    hdr = json.dumps({"w": {"dtype": "U8", "shape": [len(data)], "data_offsets": [0, len(data)]},
                      "__metadata__": {"format": "pt"}}).encode()
    return struct.pack("<Q", len(hdr)) + hdr + data


def make_model(root: Path, weight: bytes = b"\x01" * 4096, *, stamp: str = "5.23.0", layers: int = 2,
               sharded: bool = False) -> Path:
    """A diffusers-layout folder with three components; ``stamp`` is the library version written into
    the configs the way transformers / diffusers write it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "model_index.json").write_text(json.dumps({**_INDEX, "_diffusers_version": stamp}, indent=2))
    t = root / "transformer"
    t.mkdir(exist_ok=True)
    (t / "config.json").write_text(json.dumps(
        {"_class_name": "LTX2VideoTransformer3DModel", "_diffusers_version": stamp, "num_layers": layers,
         "_name_or_path": str(root), "text_config": {"transformers_version": stamp, "dtype": "float32",
                                                      "hidden_size": 32}}, indent=2))
    if sharded:
        half = len(weight) // 2
        (t / "diffusion_pytorch_model-00001-of-00002.safetensors").write_bytes(_safetensors(weight[:half]))
        (t / "diffusion_pytorch_model-00002-of-00002.safetensors").write_bytes(_safetensors(weight[half:]))
        (t / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps({"weight_map": {
            "a": "diffusion_pytorch_model-00001-of-00002.safetensors",
            "b": "diffusion_pytorch_model-00002-of-00002.safetensors"}}))
    else:
        (t / "diffusion_pytorch_model.safetensors").write_bytes(_safetensors(weight))
    tok = root / "tokenizer"
    tok.mkdir(exist_ok=True)
    (tok / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"a": 0}}}))
    (tok / "tokenizer_config.json").write_text(json.dumps({"transformers_version": stamp, "model_max_length": 64}))
    sch = root / "scheduler"
    sch.mkdir(exist_ok=True)
    (sch / "scheduler_config.json").write_text(json.dumps({"_diffusers_version": stamp, "shift": 1.0}))
    return root


@pytest.fixture()
def digests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private machine-wide state folder (digest cache) for the test."""
    home = tmp_path / "home"
    monkeypatch.setenv("PYTEST_LTX_HOME", str(home))
    return home


def test_version_stamps_do_not_change_the_identity(tmp_path: Path, digests: Path) -> None:
    a = fingerprint_dir(make_model(tmp_path / "a", stamp="5.23.0"))
    b = fingerprint_dir(make_model(tmp_path / "b", stamp="5.24.0"))
    assert a == b and len(a) == 64
    # a real change of architecture does
    assert fingerprint_dir(make_model(tmp_path / "c", layers=3)) != a


def test_canonical_config_drops_bookkeeping_at_any_depth(tmp_path: Path) -> None:
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"b": 1, "a": {"transformers_version": "9", "torch_dtype": "bfloat16", "x": [1]},
                             "_name_or_path": "/somewhere"}))
    assert json.loads(canonical_config(p)) == {"a": {"x": [1]}, "b": 1}


def test_unrelated_files_do_not_change_the_identity(tmp_path: Path, digests: Path) -> None:
    d = make_model(tmp_path / "m")
    before = fingerprint_dir(d)
    (d / "README.md").write_text("# LTX-2")
    (d / "ltx-2-19b-distilled-lora.safetensors").write_bytes(_safetensors(b"\x07" * 64))
    (d / "latent_upsampler").mkdir()
    (d / "latent_upsampler" / "config.json").write_text("{}")
    (d / "transformer" / "README.md").write_text("notes")
    (d / "transformer" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(_safetensors(b"\x02" * 64))
    (d / ".cache").mkdir()
    (d / ".cache" / "x.lock").write_text("")
    assert fingerprint_dir(d) == before


def test_one_byte_in_the_middle_of_a_large_weights_file_changes_the_identity(tmp_path: Path, digests: Path) -> None:
    big = bytearray(8 << 20)  # 8 MiB: the old sampler read only the head and tail 64 KiB
    a = fingerprint_dir(make_model(tmp_path / "a", weight=bytes(big)))
    big[len(big) // 2] = 1
    b = fingerprint_dir(make_model(tmp_path / "b", weight=bytes(big)))
    assert a != b


def test_sharded_weights_are_hashed_through_their_index(tmp_path: Path, digests: Path) -> None:
    d = make_model(tmp_path / "m", sharded=True)
    ident = model_identity(d, cache=DigestCache(tmp_path / "d.sqlite"))
    assert sorted(ident.components["transformer"].weights) == [
        "diffusion_pytorch_model-00001-of-00002.safetensors", "diffusion_pytorch_model-00002-of-00002.safetensors"]
    (d / "transformer" / "diffusion_pytorch_model-00002-of-00002.safetensors").unlink()
    prof = ModelProfile(name="m", kind=ModelKind.LOCAL, path=d)
    with pytest.raises(ModelNotFoundError, match="00002-of-00002.*missing") as ei:
        fingerprint(prof)
    assert "hf download" in str(ei.value)


def test_missing_weights_of_a_model_component_is_an_error(tmp_path: Path, digests: Path) -> None:
    d = make_model(tmp_path / "m")
    (d / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="transformer.*no weights file"):
        fingerprint_dir(d)


def test_digest_cache_hits_by_stat_and_rehashes_what_changed(tmp_path: Path) -> None:
    files = []
    for i in range(3):
        f = tmp_path / f"shard{i}.bin"
        f.write_bytes(bytes([i]) * 100_000)
        files.append(f)
    db = tmp_path / "digests.sqlite"
    first = DigestCache(db)
    got = first.digests(files)
    assert first.misses == 3 and first.hits == 0
    assert got[files[1]] == hashlib.sha256(files[1].read_bytes()).hexdigest()

    again = DigestCache(db)  # a new session: nothing hashed
    assert again.digests(files) == got and (again.hits, again.misses) == (3, 0)

    files[2].write_bytes(b"\x09" * 100_000)  # same size, new content and mtime
    os.utime(files[2], ns=(1, 1))
    third = DigestCache(db)
    new = third.digests(files)
    assert (third.hits, third.misses) == (2, 1)
    assert new[files[2]] == hashlib.sha256(files[2].read_bytes()).hexdigest() != got[files[2]]


def test_digest_cache_that_cannot_be_written_still_hashes(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    cache = DigestCache(blocker / "digests.sqlite")
    assert cache.digests([f])[f] == hashlib.sha256(b"abc").hexdigest()


def test_identity_change_names_component_and_part(tmp_path: Path, digests: Path) -> None:
    a = model_identity(make_model(tmp_path / "a")).summary()
    b = model_identity(make_model(tmp_path / "b", weight=b"\x02" * 4096)).summary()
    c = model_identity(make_model(tmp_path / "c", layers=5)).summary()
    assert describe_change(a, b) == ["transformer: weights"]
    assert describe_change(a, c) == ["transformer: config"]
    assert describe_change(a, a) == []


# ------------------------------------------------------------------------------ Hugging Face cache


def _hf_snapshot(cache: Path, repo: str, model: Path, *, listed_extra: tuple[str, ...] = ()) -> Path:
    """Lay ``model`` out as the hub cache does: blobs named by digest, a snapshot of symlinks, refs/main and
    a cached tree listing (which may name files that were never downloaded: a partial snapshot)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    blobs, snap = repo_dir / "blobs", repo_dir / "snapshots" / commit
    blobs.mkdir(parents=True)
    tree = {}
    for f in sorted(p for p in model.rglob("*") if p.is_file()):
        rel = f.relative_to(model).as_posix()
        data = f.read_bytes()
        lfs = f.suffix == ".safetensors"
        name = hashlib.sha256(data).hexdigest() if lfs else hashlib.sha1(data).hexdigest()
        (blobs / name).write_bytes(data)
        (snap / rel).parent.mkdir(parents=True, exist_ok=True)
        (snap / rel).symlink_to(os.path.relpath(blobs / name, (snap / rel).parent))
        tree[rel] = {"size": len(data), "blob_id": name, **({"lfs_sha256": name, "lfs_size": len(data)} if lfs else {})}
    for rel in listed_extra:
        tree[rel] = {"size": 10, "blob_id": "f" * 40}
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    (repo_dir / "trees").mkdir()
    (repo_dir / "trees" / f"{commit}.json").write_text(json.dumps({"format_version": 1, "files": tree}))
    return snap


@pytest.fixture()
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    cache = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_partial_hub_snapshot_resolves_offline(tmp_path: Path, hf_cache: Path, digests: Path) -> None:
    model = make_model(tmp_path / "src")
    snap = _hf_snapshot(hf_cache, "Lightricks/LTX-2", model,
                        listed_extra=("README.md", "ltx-2-19b-dev.safetensors", "transformer/x.fp8.safetensors"))
    prof = ModelProfile(name="hub", kind=ModelKind.HUB, hub_id="Lightricks/LTX-2", revision="main")
    ident = identity(prof)
    assert ident.fingerprint == fingerprint_dir(model)  # the same model, wherever it lives
    assert Path(snap).is_dir()


def test_hub_snapshot_weights_are_not_rehashed(tmp_path: Path, hf_cache: Path, digests: Path) -> None:
    model = make_model(tmp_path / "src", weight=b"\x05" * 4096)
    snap = _hf_snapshot(hf_cache, "Lightricks/LTX-2", model)
    cache = DigestCache(tmp_path / "d.sqlite")
    ident = model_identity(snap, cache=cache)
    assert cache.misses == 0 and cache.hits == 1  # the blob's name is its sha256
    assert ident.fingerprint == model_identity(model, cache=DigestCache(tmp_path / "e.sqlite")).fingerprint


def test_hub_snapshot_missing_a_loaded_component_says_so(tmp_path: Path, hf_cache: Path, digests: Path) -> None:
    model = make_model(tmp_path / "src")
    snap = _hf_snapshot(hf_cache, "Lightricks/LTX-2", model)
    for f in (snap / "transformer").iterdir():
        if f.suffix == ".safetensors":
            f.unlink()
    prof = ModelProfile(name="hub", kind=ModelKind.HUB, hub_id="Lightricks/LTX-2")
    with pytest.raises(ModelNotFoundError) as ei:
        identity(prof)
    msg = str(ei.value)
    assert "transformer" in msg and "no weights file" in msg and "hf download Lightricks/LTX-2" in msg


# ----------------------------------------------------------------------------- file inputs by content


def test_conditioning_image_is_keyed_by_content_not_path(tmp_path: Path) -> None:
    from pytest_ltx.cache import RenderCache
    from pytest_ltx.render.base import RenderRequest
    from pytest_ltx.runner import keyed_request

    img = tmp_path / "a" / "cond.png"
    img.parent.mkdir()
    img.write_bytes(b"\x89PNG first")
    moved = tmp_path / "b" / "cond.png"
    moved.parent.mkdir()
    moved.write_bytes(img.read_bytes())

    def key(p: Path) -> str:
        return RenderCache.key({"request": keyed_request(RenderRequest(prompt="x", width=64, height=64,
                                                                       frames=9, image=p))})

    k1 = key(img)
    assert key(moved) == k1  # moving the checkout keeps the cache
    img.write_bytes(b"\x89PNG edited")
    assert key(img) != k1  # editing the image misses it


# ------------------------------------------------------------------------------------ profile extras


def test_a_lora_is_part_of_the_identity_by_content_and_scale(tmp_path: Path, digests: Path) -> None:
    from pytest_ltx.render.extras import LoraRef

    d = make_model(tmp_path / "m")
    lora = tmp_path / "style.safetensors"
    lora.write_bytes(_safetensors(b"\x03" * 2048))
    plain = identity(ModelProfile(name="m", kind=ModelKind.LOCAL, path=d))
    with_lora = identity(ModelProfile(name="m", kind=ModelKind.LOCAL, path=d, loras=(LoraRef(lora, 0.8),)))
    stronger = identity(ModelProfile(name="m", kind=ModelKind.LOCAL, path=d, loras=(LoraRef(lora, 1.0),)))
    assert len({plain.fingerprint, with_lora.fingerprint, stronger.fingerprint}) == 3
    assert describe_change(plain.summary(), with_lora.summary()) == ["extras (loras)"]

    data = bytearray(lora.read_bytes())
    data[len(data) // 2] ^= 1  # one byte in the middle of the LoRA
    lora.write_bytes(bytes(data))
    retrained = identity(ModelProfile(name="m", kind=ModelKind.LOCAL, path=d, loras=(LoraRef(lora, 0.8),)))
    assert retrained.fingerprint != with_lora.fingerprint

    lora.unlink()
    with pytest.raises(ModelNotFoundError, match="LoRA file .* does not exist"):
        identity(ModelProfile(name="m", kind=ModelKind.LOCAL, path=d, loras=(LoraRef(lora, 0.8),)))
