"""The evaluation cache: a hit is identical, any change of input misses, corrupt is a miss, errors are
never stored; determinism proofs are remembered per render key and environment."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from pytest_ltx import evalcache
from pytest_ltx.evalcache import EvaluationCache
from pytest_ltx.evaluate import MetricContext, evaluate
from pytest_ltx.stream import MediaSource

FAMS = ["motion", "av_sync", "structural"]


def _card(path: Path, seed: int = 0) -> Path:
    from pytest_ltx.testcard import AudioSpec, TestCardSpec, write

    write(TestCardSpec(width=128, height=96, frames=25, fps=24, seed=seed, cuts=[12],
                       audio=AudioSpec(sample_rate=16000)), path)
    return path


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _card(tmp_path_factory.mktemp("evalcache") / "card.mp4")


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_ltx.stream as stream

    def refuse(*a, **k):
        raise AssertionError("decoded although every result was cached")

    monkeypatch.setattr(stream, "run_stream", refuse)


def test_hit_is_identical_and_decodes_nothing(card: Path, tmp_path: Path, monkeypatch) -> None:
    cache = EvaluationCache(tmp_path)
    first = evaluate(MediaSource(card), metrics=FAMS, cache=cache, keyframes=True)
    assert first.cached == ()
    _no_decoding(monkeypatch)
    second = evaluate(MediaSource(card), metrics=FAMS, cache=cache, keyframes=True)
    assert second.cached == tuple(FAMS)
    a, b = first.to_dict(), second.to_dict()
    for d in (a, b):
        d.pop("metric_seconds"), d.pop("cached_metrics")
    assert a == b
    assert first.info == second.info
    np.testing.assert_array_equal(first.keyframes.frames, second.keyframes.frames)
    np.testing.assert_array_equal(first.results["motion"].diff, second.results["motion"].diff)


def test_changed_clip_bytes_miss(card: Path, tmp_path: Path) -> None:
    cache = EvaluationCache(tmp_path / "c")
    evaluate(MediaSource(card), metrics=FAMS, cache=cache)
    other = _card(tmp_path / "other.mp4", seed=1)
    assert evaluate(MediaSource(other), metrics=FAMS, cache=cache).cached == ()
    # same name, new content (the file was re-rendered in place)
    moved = tmp_path / "same.mp4"
    moved.write_bytes(card.read_bytes())
    assert evaluate(MediaSource(moved), metrics=FAMS, cache=cache).cached == tuple(FAMS)
    moved.write_bytes(_card(tmp_path / "third.mp4", seed=2).read_bytes())
    assert evaluate(MediaSource(moved), metrics=FAMS, cache=cache).cached == ()


def test_changed_metric_configuration_misses(card: Path, tmp_path: Path) -> None:
    from pytest_ltx.expect import Expectations

    cache = EvaluationCache(tmp_path)
    evaluate(MediaSource(card), metrics=["structural"], cache=cache)
    assert evaluate(MediaSource(card), metrics=["structural"], cache=cache).cached == ("structural",)
    # metrics are functions of the clip (the baseline is compared later, by the baseline package): what the
    # structural fingerprint does not read is not part of its configuration
    other = MetricContext(prompt="another prompt")
    assert evaluate(MediaSource(card), metrics=["structural"], cache=cache, context=other).cached == ("structural",)
    other_rate = Expectations.model_validate({"clip": {"sample_fps": 4.0}})
    ev = evaluate(MediaSource(card), metrics=["structural"], expect=other_rate, cache=cache)
    assert ev.cached == () and len(ev.results["structural"].sampled_frames) > 3


def test_changed_library_or_code_version_misses(card: Path, tmp_path: Path, monkeypatch) -> None:
    cache = EvaluationCache(tmp_path)
    evaluate(MediaSource(card), metrics=["motion"], cache=cache)
    real = evalcache._library_versions()
    monkeypatch.setattr(evalcache, "_library_versions", lambda: {**real, "opencv-python-headless": "0.0.1"})
    assert evaluate(MediaSource(card), metrics=["motion"], cache=cache).cached == ()
    monkeypatch.setattr(evalcache, "_library_versions", lambda: real)
    assert evaluate(MediaSource(card), metrics=["motion"], cache=cache).cached == ("motion",)
    monkeypatch.setattr(evalcache, "code_digest", lambda: "0" * 64)
    assert evaluate(MediaSource(card), metrics=["motion"], cache=cache).cached == ()


def _entries(root: Path) -> list[Path]:
    return sorted((root / "evaluations").rglob("*.pkl"))


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "evil_pickle"])
def test_corrupt_entry_is_a_miss_and_removed(card: Path, tmp_path: Path, damage: str) -> None:
    cache = EvaluationCache(tmp_path)
    first = evaluate(MediaSource(card), metrics=["motion"], cache=cache)
    (entry,) = _entries(tmp_path)
    blob = entry.read_bytes()
    if damage == "flip":
        blob = blob[:-10] + bytes([blob[-10] ^ 0xFF]) + blob[-9:]
    elif damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "garbage":
        blob = b"not an entry"
    else:  # a well-formed entry whose payload would run code: refused by the unpickler
        import hashlib
        import json
        import os

        class Evil:
            def __reduce__(self):
                return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

        payload = pickle.dumps(Evil())
        key = entry.stem
        head = json.dumps({"format": 1, "key": key, "size": len(payload),
                           "sha256": hashlib.sha256(payload).hexdigest()}, sort_keys=True).encode()
        blob = b"pytest-ltx-eval\n" + head + b"\n" + payload
    entry.write_bytes(blob)
    again = evaluate(MediaSource(card), metrics=["motion"], cache=cache)
    assert again.cached == ()
    assert not (tmp_path / "pwned").exists()
    assert again.results["motion"].scalars() == first.results["motion"].scalars()
    (rewritten,) = _entries(tmp_path)  # recomputed and stored again, good this time
    assert evaluate(MediaSource(card), metrics=["motion"], cache=cache).cached == ("motion",)
    assert rewritten.read_bytes() != blob


def test_errors_are_never_cached(card: Path, tmp_path: Path, monkeypatch) -> None:
    from pytest_ltx.metrics import motion

    cache = EvaluationCache(tmp_path)

    def boom(self, frame):
        raise RuntimeError("metric bug")

    with monkeypatch.context() as m:
        m.setattr(motion.MotionConsumer, "feed", boom)
        ev = evaluate(MediaSource(card), metrics=["motion", "structural"], cache=cache)
    assert [o.check for o in ev.outcomes if o.failed] == ["motion.error"]
    assert len(_entries(tmp_path)) == 1  # structural only
    ev = evaluate(MediaSource(card), metrics=["motion", "structural"], cache=cache)
    assert ev.cached == ("structural",) and "motion" in ev.results and not ev.failed
    with pytest.raises(TypeError):
        cache.put("a" * 64, RuntimeError("x"), ev.info)


def test_in_memory_clips_are_not_cached(card: Path, tmp_path: Path) -> None:
    from pytest_ltx.media import read_clip

    cache = EvaluationCache(tmp_path)
    clip = read_clip(card)
    evaluate(clip, metrics=["motion"], cache=cache)
    assert evaluate(clip, metrics=["motion"], cache=cache).cached == ()
    assert _entries(tmp_path) == []


def test_determinism_proof_is_per_render_key_and_environment(tmp_path: Path, monkeypatch) -> None:
    cache = EvaluationCache(tmp_path)
    key = "ab" * 32
    assert cache.get_determinism(key) is None
    cache.put_determinism(key, {"bit_identical": True, "frames": [9, 64, 64, 3]})
    assert cache.get_determinism(key)["bit_identical"] is True
    assert cache.get_determinism("cd" * 32) is None
    real = evalcache.environment_key()
    monkeypatch.setattr(evalcache, "environment_key", lambda: {**real, "cpu": "another CPU"})
    assert cache.get_determinism(key) is None


def test_refresh_recomputes_and_updates(card: Path, tmp_path: Path, monkeypatch) -> None:
    cache = EvaluationCache(tmp_path)
    first = evaluate(MediaSource(card), metrics=["motion"], cache=cache, refresh=True)
    assert first.cached == () and len(_entries(tmp_path)) == 1
    assert evaluate(MediaSource(card), metrics=["motion"], cache=cache, refresh=True).cached == ()
    assert evaluate(MediaSource(card), metrics=["motion"], cache=cache).cached == ("motion",)


def test_a_source_hashes_its_files_once_and_a_new_source_sees_new_bytes(card: Path, tmp_path: Path,
                                                                      monkeypatch) -> None:
    """An item's source is hashed once however many look-ups ask (its remembered conclusion, each metric,
    the export probe); the next run's source object hashes the files again, so rewritten bytes are seen."""
    import shutil

    clip = Path(shutil.copy(card, tmp_path / "clip.mp4"))
    hashed: list[str] = []
    real = evalcache.file_digest
    monkeypatch.setattr(evalcache, "file_digest", lambda p: (hashed.append(str(p)), real(p))[1])
    src = MediaSource(clip)
    cache = EvaluationCache(tmp_path / "c")
    first = src.content_digest()
    evaluate(src, metrics=["structural"], cache=cache)
    from pytest_ltx.expect.export import probe_export_cached

    probe_export_cached(clip, cache=cache, source=src)
    assert hashed == [str(clip)] and src.content_digest() == first
    clip.write_bytes(clip.read_bytes()[:-100])
    assert MediaSource(clip).content_digest() != first and len(hashed) == 2
