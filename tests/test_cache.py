"""The content-addressed render cache: keys, hits, misses, corrupt entries, concurrent writers."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

from pytest_ltx.cache import CACHE_DIRNAME, RenderCache, canonical_json, default_cache_root
from pytest_ltx.media import Clip, ClipReadError

PROV = {
    "model": {"fingerprint": "sha256:abc", "profile": "tiny"},
    "request": {"prompt": "a robot", "seed": 0, "width": 64, "height": 64, "frames": 9, "fps": 24.0,
                "steps": 2, "guidance": {"scale": 3.0}},
    "versions": {"torch": "2.14.1", "diffusers": "0.42.1", "transformers": "5.23.0"},
    "device": "cpu",
    "dtype": "float32",
}


def _clip(seed: int = 0, frames: int = 9) -> Clip:
    rng = np.random.default_rng(seed)
    f = np.repeat(np.linspace(0, 255, frames, dtype=np.uint8)[:, None, None, None], 64 * 64 * 3, axis=1)
    f = f.reshape(frames, 64, 64, 3).copy()
    f[:, :8, :8] = rng.integers(0, 255, (frames, 8, 8, 3), dtype=np.uint8)
    t = np.arange(int(48000 * frames / 24)) / 48000
    audio = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)
    return Clip(frames=f, fps=24.0, audio=audio, sample_rate=48000)


def _entries(root: Path) -> list[Path]:
    r = root / "renders"
    return sorted(p for p in r.glob("*/*") if p.is_dir()) if r.exists() else []


# --------------------------------------------------------------------------------------------- keys


def test_key_is_canonical() -> None:
    k = RenderCache.key(PROV)
    assert len(k) == 64 and all(c in "0123456789abcdef" for c in k)
    reordered = {k2: PROV[k2] for k2 in reversed(list(PROV))}
    assert RenderCache.key(reordered) == k
    assert RenderCache.key(json.loads(json.dumps(PROV))) == k


@pytest.mark.parametrize(
    "path",
    [("model", "fingerprint"), ("request", "seed"), ("request", "prompt"), ("request", "steps"),
     ("versions", "diffusers"), ("device",), ("dtype",)],
)
def test_key_changes_with_every_field(path: tuple[str, ...]) -> None:
    changed = json.loads(json.dumps(PROV))
    d = changed
    for p in path[:-1]:
        d = d[p]
    d[path[-1]] = "changed" if isinstance(d[path[-1]], str) else d[path[-1]] + 1
    assert RenderCache.key(changed) != RenderCache.key(PROV)


def test_key_rejects_what_cannot_be_canonical() -> None:
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        RenderCache.key({"x": object()})
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    assert canonical_json({"p": Path("a/b"), "s": {2, 1}}) == '{"p":"a/b","s":[1,2]}'


def test_default_root() -> None:
    assert default_cache_root(Path("/repo")) == Path("/repo") / CACHE_DIRNAME == Path("/repo/.ltx-cache")


# ----------------------------------------------------------------------------------------- hit/miss


def test_miss_then_hit(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path / "c")
    key = cache.key(PROV)
    assert cache.get(key) is None and key not in cache
    entry = cache.put(key, _clip(), {"seconds": 1.5, "provenance": PROV})
    assert entry.clip_path.is_file() and entry.clip_path.suffix == ".mp4"
    hit = cache.get(key)
    assert hit is not None and hit.meta == {"seconds": 1.5, "provenance": PROV}
    clip = hit.read_clip()
    assert clip.frames.shape == (9, 64, 64, 3) and clip.sample_rate == 48000
    assert (tmp_path / "c" / ".gitignore").read_text().strip().endswith("*")
    assert cache.get(cache.key({**PROV, "device": "cuda"})) is None
    assert list((tmp_path / "c" / "tmp").iterdir()) == []  # no staging leftovers


def test_put_copies_an_existing_mp4(tmp_path: Path) -> None:
    from pytest_ltx.media import write_clip

    src = write_clip(_clip(), tmp_path / "render.mp4")
    cache = RenderCache(tmp_path / "c")
    entry = cache.put("ab" * 32, src, {})
    assert entry.clip_path.read_bytes() == src.read_bytes()
    assert src.exists()  # copied, not moved


def test_first_writer_wins(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path)
    key = "cd" * 32
    first = cache.put(key, _clip(0), {"n": 1})
    second = cache.put(key, _clip(1), {"n": 2})
    assert second.meta == {"n": 1} and second.clip_path == first.clip_path
    assert len(_entries(tmp_path)) == 1


def test_bad_key_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a render cache key"):
        RenderCache(tmp_path).get("../../etc")


# ----------------------------------------------------------------------------------- failure paths


def test_unreadable_clip_is_never_cached(tmp_path: Path) -> None:
    bogus = tmp_path / "failed.mp4"
    bogus.write_bytes(b"not a video")
    cache = RenderCache(tmp_path / "c")
    key = "ef" * 32
    with pytest.raises(ClipReadError):
        cache.put(key, bogus, {})
    with pytest.raises(FileNotFoundError):
        cache.put(key, tmp_path / "never-rendered.mp4", {})
    assert cache.get(key) is None and _entries(tmp_path / "c") == []
    assert list((tmp_path / "c" / "tmp").iterdir()) == []


def _truncate_clip(d: Path) -> None:
    p = d / "clip.mp4"
    p.write_bytes(p.read_bytes()[:100])


def _flip_clip_byte(d: Path) -> None:
    p = d / "clip.mp4"
    b = bytearray(p.read_bytes())
    b[len(b) // 2] ^= 0xFF
    p.write_bytes(bytes(b))


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (_truncate_clip, "bytes, expected"),
        (_flip_clip_byte, "sha256"),
        (lambda d: (d / "clip.mp4").unlink(), "clip.mp4 is missing"),
        (lambda d: (d / "meta.json").unlink(), "meta.json is missing"),
        (lambda d: (d / "meta.json").write_text("{not json"), "unreadable"),
        (lambda d: (d / "meta.json").write_text(json.dumps({"format": 1, "key": "0" * 64})), "does not describe"),
    ],
    ids=["truncated", "bitflip", "no-clip", "no-meta", "garbage-meta", "wrong-key"],
)
def test_corrupt_entry_is_a_logged_miss_and_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage, why: str
) -> None:
    cache = RenderCache(tmp_path)
    key = cache.key(PROV)
    entry = cache.put(key, _clip(), {"ok": True})
    damage(entry.clip_path.parent)
    with caplog.at_level(logging.WARNING, logger="pytest_ltx.cache"):
        assert cache.get(key) is None
    assert not entry.clip_path.parent.exists()
    assert any("corrupt entry" in r.getMessage() and why in r.getMessage() for r in caplog.records)
    # and the next put repairs it
    assert cache.put(key, _clip(), {"ok": True}).meta == {"ok": True}
    assert cache.get(key) is not None


def test_partial_entry_dir_is_replaced_by_put(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path)
    key = "12" * 32
    d = cache.entry_dir(key)
    d.mkdir(parents=True)
    (d / "clip.mp4").write_bytes(b"half")  # a writer died before meta.json (older, non-atomic layout)
    assert cache.put(key, _clip(), {"n": 1}).meta == {"n": 1}


def test_stale_staging_dirs_are_swept(tmp_path: Path) -> None:
    import os
    import time

    cache = RenderCache(tmp_path)
    stale = tmp_path / "tmp" / "deadbeef0000.killed"
    fresh = tmp_path / "tmp" / "deadbeef0001.live"
    for d in (stale, fresh):
        d.mkdir(parents=True)
        (d / "clip.mp4").write_bytes(b"partial")
    old = time.time() - 7 * 3600
    os.utime(stale, (old, old))
    cache.put("34" * 32, _clip(), {})
    assert not stale.exists() and fresh.exists()  # a live writer's staging dir is left alone


# --------------------------------------------------------------------------------- concurrent writers


def _writer(root: str, key: str, seed: int, barrier, q) -> None:
    cache = RenderCache(Path(root))
    clip = _clip(seed)
    barrier.wait()
    entry = cache.put(key, clip, {"writer": seed})
    q.put((entry.meta["writer"], entry.clip_path.read_bytes()))


@pytest.mark.slow
def test_two_processes_putting_the_same_key(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    barrier, q = ctx.Barrier(2), ctx.Queue()
    key = RenderCache.key(PROV)
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), key, s, barrier, q)) for s in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    got = [q.get(timeout=5) for _ in procs]
    # both writers end up with the same, complete entry: whoever renamed first won
    assert got[0] == got[1]
    hit = RenderCache(tmp_path).get(key)
    assert hit is not None and hit.meta["writer"] == got[0][0]
    assert hit.clip_path.read_bytes() == got[0][1]
    assert len(_entries(tmp_path)) == 1
    assert list((tmp_path / "tmp").iterdir()) == []
