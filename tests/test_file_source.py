"""Pre-rendered file sources: every unusable file fails with a ClipReadError that names it."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from pytest_ltx.media import ClipReadError, write_frames
from pytest_ltx.render.file import load_file_source
from pytest_ltx.testcard import TestCardSpec, iter_frames, synthesize_audio

SPEC = TestCardSpec(width=96, height=64, frames=17, seed=2, audio={"sample_rate": 48000})


def _video(path: Path, *, audio: bool = True, faststart: bool = False) -> Path:
    wav = synthesize_audio(SPEC) if audio else None
    return write_frames(iter_frames(SPEC), path, fps=SPEC.fps, audio=wav, sample_rate=48000, faststart=faststart)


def _wav(path: Path, seconds: float = 0.5, sr: int = 16000) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    pcm = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return path


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    """(root, spec_dir): a project root with a ``specs/`` folder holding the spec."""
    spec_dir = tmp_path / "root" / "specs"
    spec_dir.mkdir(parents=True)
    return tmp_path / "root", spec_dir


def _load(path, project, **kw):
    root, spec_dir = project
    return load_file_source(path, kw.pop("audio_path", None), spec_dir=spec_dir, root=root, **kw)


def _raises(path_in_msg: Path, fragment: str, fn, *a, **kw) -> ClipReadError:
    with pytest.raises(ClipReadError) as ei:
        fn(*a, **kw)
    msg = str(ei.value)
    assert msg.startswith(str(path_in_msg)), msg
    assert fragment in msg, msg
    return ei.value


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".webm"])
def test_reads_each_container(project, suffix: str) -> None:
    root, spec_dir = project
    _video(spec_dir / f"clip{suffix}")
    clip = _load(f"clip{suffix}", project, require_audio=True)
    assert clip.frames.shape == (17, 64, 96, 3) and clip.fps == pytest.approx(24)
    assert clip.has_audio and clip.sample_rate == 48000
    assert clip.source == str((spec_dir / f"clip{suffix}").resolve())


def test_relative_paths_resolve_against_the_spec_dir(project) -> None:
    root, spec_dir = project
    (root / "clips").mkdir()
    _video(root / "clips" / "a.mp4")
    assert _load("../clips/a.mp4", project).num_frames == 17
    assert _load(root / "clips" / "a.mp4", project).num_frames == 17  # absolute, inside the root


def test_paths_may_not_escape_the_root(project, tmp_path: Path) -> None:
    root, spec_dir = project
    outside = _video(tmp_path / "outside.mp4")
    _raises(spec_dir / "../../outside.mp4", "outside the project root", _load, "../../outside.mp4", project)
    assert _load("../../outside.mp4", project, allow_outside_root=True).num_frames == 17
    link = spec_dir / "link.mp4"
    link.symlink_to(outside)
    _raises(link, "outside the project root", _load, "link.mp4", project)


def test_missing_and_empty_files(project) -> None:
    root, spec_dir = project
    _raises((spec_dir / "nope.mp4").resolve(), "does not exist", _load, "nope.mp4", project)
    (spec_dir / "empty.mp4").write_bytes(b"")
    _raises((spec_dir / "empty.mp4").resolve(), "empty (0 bytes)", _load, "empty.mp4", project)


def test_wrong_extension(project) -> None:
    root, spec_dir = project
    _video(spec_dir / "clip.mp4")
    (spec_dir / "clip.avi").write_bytes((spec_dir / "clip.mp4").read_bytes())
    _raises((spec_dir / "clip.avi").resolve(), "unsupported extension '.avi'", _load, "clip.avi", project)
    _video(spec_dir / "real.webm")
    (spec_dir / "fake.mp4").write_bytes((spec_dir / "real.webm").read_bytes())
    _raises((spec_dir / "fake.mp4").resolve(), "not what the .mp4 extension says", _load, "fake.mp4", project)
    (spec_dir / "sound.mp4").write_bytes(_wav(spec_dir / "s.wav").read_bytes())
    _raises((spec_dir / "sound.mp4").resolve(), "'wav' container", _load, "sound.mp4", project)


def test_unreadable_bytes(project) -> None:
    root, spec_dir = project
    (spec_dir / "junk.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    _raises((spec_dir / "junk.mp4").resolve(), "not a readable video container", _load, "junk.mp4", project)


def test_truncated_files(project) -> None:
    root, spec_dir = project
    # index first (faststart): the header still promises every frame, the data runs out
    data = _video(spec_dir / "fs.mp4", faststart=True).read_bytes()
    (spec_dir / "cut_fs.mp4").write_bytes(data[: len(data) * 6 // 10])
    _raises((spec_dir / "cut_fs.mp4").resolve(), "truncated", _load, "cut_fs.mp4", project)
    # index last (the default): cutting the end loses the index, the container is unreadable
    data = _video(spec_dir / "end.mp4").read_bytes()
    (spec_dir / "cut_end.mp4").write_bytes(data[: len(data) // 2])
    _raises((spec_dir / "cut_end.mp4").resolve(), "not a readable video container", _load, "cut_end.mp4", project)
    # matroska has no frame count: the duration in its header gives it away
    data = _video(spec_dir / "m.mkv").read_bytes()
    (spec_dir / "cut.mkv").write_bytes(data[: len(data) * 6 // 10])
    _raises((spec_dir / "cut.mkv").resolve(), "truncated", _load, "cut.mkv", project)


def test_audio_required_but_missing(project) -> None:
    root, spec_dir = project
    _video(spec_dir / "silent.mp4", audio=False)
    assert _load("silent.mp4", project).audio is None
    _raises((spec_dir / "silent.mp4").resolve(), "has no audio", _load, "silent.mp4", project, require_audio=True)


def test_separate_audio_file(project) -> None:
    root, spec_dir = project
    _video(spec_dir / "silent.mp4", audio=False)
    _wav(spec_dir / "track.wav", seconds=0.7, sr=16000)
    clip = _load("silent.mp4", project, audio_path="track.wav", require_audio=True)
    assert clip.sample_rate == 16000 and clip.audio.shape == (1, 11200)
    assert np.abs(clip.audio).max() == pytest.approx(0.3, abs=0.01)


def test_bad_separate_audio_files(project, tmp_path: Path) -> None:
    root, spec_dir = project
    _video(spec_dir / "v.mp4")
    _raises((spec_dir / "gone.wav").resolve(), "does not exist", _load, "v.mp4", project, audio_path="gone.wav")
    (spec_dir / "t.txt").write_text("hello")
    _raises((spec_dir / "t.txt").resolve(), "unsupported audio extension", _load, "v.mp4", project, audio_path="t.txt")
    (spec_dir / "bad.wav").write_bytes(b"RIFF....garbage")
    _raises((spec_dir / "bad.wav").resolve(), "bad.wav", _load, "v.mp4", project, audio_path="bad.wav")
    _wav(tmp_path / "far.wav")
    _raises(spec_dir / "../../far.wav", "outside the project root", _load, "v.mp4", project,
            audio_path="../../far.wav")
