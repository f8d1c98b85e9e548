"""Clip I/O: round trips through the codec, streaming reads and writes, and refusing broken files."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import pytest

from pytest_ltx.media import (
    Clip,
    ClipReadError,
    iter_frames,
    probe,
    read_audio_file,
    read_clip,
    resize_frames,
    write_clip,
    write_frames,
)
from pytest_ltx.testcard import TestCardSpec, draw


@pytest.fixture(scope="module")
def media_card():
    return draw(TestCardSpec(width=128, height=96, frames=25, seed=4, audio={"sample_rate": 16000, "channels": 1}))


def _luma(f: np.ndarray) -> np.ndarray:
    return f.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def test_round_trip(tmp_path: Path, media_card) -> None:
    p = write_clip(media_card.clip, tmp_path / "a.mp4")
    info = probe(p)
    assert (info.frames, info.width, info.height, info.fps) == (25, 128, 96, 24.0)
    assert info.audio_sample_rate == 16000 and info.audio_channels == 1
    clip = read_clip(p)
    assert clip.frames.shape == media_card.clip.frames.shape
    assert np.abs(_luma(clip.frames) - _luma(media_card.clip.frames)).mean() < 4
    assert clip.audio.shape[0] == 1
    # AAC pads the end; the track is never shorter than what went in
    assert clip.audio.shape[1] >= media_card.clip.audio.shape[1]
    assert list(tmp_path.glob("*.part")) == []


def test_write_frames_streams_from_a_generator(tmp_path: Path) -> None:
    made = []

    def gen():
        for i in range(9):
            f = np.full((33, 47, 3), i * 25, np.uint8)  # odd sizes get an edge pixel of padding
            made.append(i)
            yield f

    p = write_frames(gen(), tmp_path / "g.mp4", fps=12)
    info = probe(p)
    assert (info.frames, info.width, info.height, info.audio_sample_rate) == (9, 48, 34, None)
    means = [f.mean() for _, f in iter_frames(p)]
    assert np.allclose(means, np.arange(9) * 25, atol=3)


def test_write_frames_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames"):
        write_frames(iter([]), tmp_path / "e.mp4", fps=24)
    frames = [np.zeros((16, 16, 3), np.uint8), np.zeros((16, 18, 3), np.uint8)]
    with pytest.raises(ValueError, match="size changed"):
        write_frames(frames, tmp_path / "s.mp4", fps=24)
    assert not (tmp_path / "s.mp4").exists() and list(tmp_path.glob("*.part")) == []


@pytest.mark.parametrize("suffix", [".mov", ".mkv", ".webm"])
def test_other_containers(tmp_path: Path, media_card, suffix: str) -> None:
    c = media_card.clip
    p = write_frames(iter(c.frames), tmp_path / f"a{suffix}", fps=c.fps, audio=c.audio, sample_rate=c.sample_rate)
    clip = read_clip(p)
    assert clip.num_frames == 25 and clip.has_audio


def test_iter_frames_downscales_and_steps(tmp_path: Path, media_card) -> None:
    p = write_clip(media_card.clip, tmp_path / "a.mp4")
    got = list(iter_frames(p, max_side=64, step=4))
    assert [i for i, _ in got] == [0, 4, 8, 12, 16, 20, 24]
    assert got[0][1].shape == (48, 64, 3)
    small = read_clip(p, max_side=32, audio=False)
    assert small.frames.shape == (25, 24, 32, 3) and small.audio is None
    assert resize_frames(media_card.clip.frames[:2], 64).shape == (2, 48, 64, 3)
    with pytest.raises(ValueError):
        next(iter_frames(p, step=0))


def test_truncated_stream_is_refused(tmp_path: Path, media_card) -> None:
    c = media_card.clip
    p = write_frames(iter(c.frames), tmp_path / "fs.mp4", fps=c.fps, faststart=True)
    data = p.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    assert probe(cut).frames == 25  # the header still promises every frame
    with pytest.raises(ClipReadError, match=r"truncated: decoded \d+ video frames but the header announces 25"):
        list(iter_frames(cut))
    with pytest.raises(ClipReadError, match="truncated"):
        read_clip(cut)


def test_broken_inputs_name_the_file(tmp_path: Path) -> None:
    cases = {
        tmp_path / "missing.mp4": "does not exist",
        tmp_path / "empty.mp4": "empty (0 bytes)",
        tmp_path / "junk.mp4": "not a readable video container",
        tmp_path: "is a directory",
    }
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "junk.mp4").write_bytes(b"\x00\x01 definitely not a video" * 100)
    for path, fragment in cases.items():
        with pytest.raises(ClipReadError) as ei:
            probe(path)
        assert str(ei.value).startswith(str(path)) and fragment in str(ei.value)
        assert ei.value.path == str(path)


def test_audio_only_files(tmp_path: Path) -> None:
    p = tmp_path / "a.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros((800, 2), "<i2").tobytes())
    audio, sr = read_audio_file(p)
    assert sr == 8000 and audio.shape == (2, 800)
    with pytest.raises(ClipReadError, match="no video stream"):
        probe(p)


def test_clip_validates() -> None:
    with pytest.raises(ValueError):
        Clip(frames=np.zeros((2, 4, 4), np.uint8), fps=24)
    with pytest.raises(ValueError):
        Clip(frames=np.zeros((2, 4, 4, 3), np.uint8), fps=0)
    c = Clip(frames=np.zeros((2, 4, 4, 3), np.uint8), fps=24, audio=np.zeros(100, np.float32), sample_rate=100)
    assert c.audio.shape == (1, 100) and c.audio_duration_s == 1.0 and c.info().to_dict()["frames"] == 2


@pytest.mark.parametrize("size", [(202, 130), (258, 130), (320, 180)])
def test_fast_downscale_matches_swscale_area(tmp_path: Path, size: tuple[int, int]) -> None:
    """The yuv420p fast path (OpenCV planes) gives the same picture as swscale's area filter."""
    import av

    from pytest_ltx.media import _scaled_size
    from pytest_ltx.testcard import iter_frames as card_frames

    w, h = size
    p = write_frames(card_frames(TestCardSpec(width=w, height=h, frames=3, audio=None)), tmp_path / "a.mp4", fps=24)
    with av.open(str(p)) as c:
        vs = c.streams.video[0]
        tw, th = _scaled_size(vs.width, vs.height, 100)
        ref = [f.reformat(width=tw, height=th, format="rgb24", interpolation="AREA").to_ndarray() for f in c.decode(vs)]
    got = [f for _, f in iter_frames(p, max_side=100)]
    assert got[0].shape == ref[0].shape == (th, tw, 3)
    assert np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(ref, got)]) < 5


_ENCODE_IN_A_FRESH_PROCESS = """
import hashlib, sys
import numpy as np
from pytest_ltx.media import write_frames
r = np.random.default_rng(0)
yy, xx = np.mgrid[0:64, 0:64]
# a small bright blob moving over grain: x264's macroblock-tree rate control read uninitialised memory on this
frames = [np.clip(np.stack([255 * np.exp(-((xx - 10 - 5 * t) ** 2 + (yy - 30) ** 2) / 60)] * 3, -1)
                  + r.integers(0, 30, (64, 64, 3)), 0, 255).astype(np.uint8) for t in range(9)]
write_frames(iter(frames), sys.argv[1], fps=24)
print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())
"""


def test_encode_is_a_function_of_the_frames_alone(tmp_path: Path) -> None:
    """The same frames give the same mp4 bytes whatever the heap held before: glibc's ``MALLOC_PERTURB_``
    fills fresh allocations with a different byte in each process. With x264's default mbtree rate control
    this clip came out in four different encodings over five such processes (so a same-seed rerun did not
    reproduce its clip); ``X264_PARAMS`` turns it off."""
    import os
    import subprocess
    import sys

    digests = set()
    for perturb in (1, 2, 85, 170, 255):
        out = subprocess.run([sys.executable, "-c", _ENCODE_IN_A_FRESH_PROCESS, str(tmp_path / f"{perturb}.mp4")],
                             env={**os.environ, "MALLOC_PERTURB_": str(perturb)},
                             capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1, digests


#: saturated and neutral patches: where the BT.601 and BT.709 matrices disagree most (reds, greens, yellows)
_PATCHES = [(200, 40, 40), (30, 180, 60), (40, 60, 220), (128, 128, 128), (240, 230, 30)]


def _patch_card() -> np.ndarray:
    card = np.zeros((64, 64 * len(_PATCHES), 3), np.uint8)
    for i, c in enumerate(_PATCHES):
        card[:, 64 * i : 64 * (i + 1)] = c
    return card


@pytest.mark.parametrize("color", ["bt709", "none"])
def test_encoded_colours_are_what_the_tags_say(tmp_path: Path, color: str) -> None:
    """A stream tagged BT.709 is converted with the BT.709 matrix (a player decoding it by its tags shows
    the frames' colours), and every reader of ours — full size and the downscaled streaming path — reads
    it back with the same matrix. Untagged streams stay BT.601 both ways."""
    import av

    from pytest_ltx.media import frame_rgb

    p = write_frames([_patch_card()] * 3, tmp_path / f"{color}.mp4", fps=24, color=color, crf=0)
    with av.open(str(p)) as c:
        f = next(c.decode(video=0))
        assert f.colorspace == (1 if color == "bt709" else 2)
        as_player = f.to_ndarray(format="rgb24", src_colorspace="ITU709" if color == "bt709" else "ITU601")
        wrong = f.to_ndarray(format="rgb24", src_colorspace="ITU601" if color == "bt709" else "ITU709")
        full, small = frame_rgb(f), frame_rgb(f, 160)
    for i, c in enumerate(_PATCHES):
        want = np.array(c, float)
        assert np.abs(as_player[32, 64 * i + 32] - want).max() <= 3, (c, as_player[32, 64 * i + 32])
        assert np.abs(full[32, 64 * i + 32] - want).max() <= 3, (c, full[32, 64 * i + 32])
        assert np.abs(small[16, 32 * i + 16] - want).max() <= 3, (c, small[16, 32 * i + 16])
    # the other matrix is visibly off on the saturated patches: the check above can fail
    assert np.abs(wrong[32, 32].astype(float) - np.array(_PATCHES[0])).max() > 8


_ENCODE_ON_CPUS = """
import hashlib, os, sys
import numpy as np
os.sched_setaffinity(0, {int(c) for c in sys.argv[2].split(",")})
from pytest_ltx.media import write_frames
r = np.random.default_rng(0)
base = r.integers(0, 255, (192, 192, 3), dtype=np.uint8)
frames = [np.roll(base, 3 * t, axis=1) // 2 + r.integers(0, 128, (192, 192, 3), dtype=np.uint8) for t in range(25)]
write_frames(iter(frames), sys.argv[1], fps=24)
print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())
"""


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs to compare an encode on one with an encode on two")
def test_encode_does_not_depend_on_the_cpus_the_process_may_use(tmp_path: Path) -> None:
    """x264's default thread count follows the CPU set (1.5 threads per CPU) and frame threading changes the
    bytes: on one CPU and on two the same frames gave different files, so a CI runner, a workstation and an
    xdist worker under a CPU budget would not share clips. ``X264_THREADS`` fixes it (and is in provenance)."""
    import subprocess
    import sys

    from pytest_ltx.media import X264_THREADS

    cpus = sorted(os.sched_getaffinity(0))
    digests = {}
    for name, allowed in (("one", cpus[:1]), ("two", cpus[:2])):
        out = subprocess.run([sys.executable, "-c", _ENCODE_ON_CPUS, str(tmp_path / f"{name}.mp4"),
                              ",".join(map(str, allowed))], capture_output=True, text=True, check=True)
        digests[name] = out.stdout.strip()
    assert digests["one"] == digests["two"], digests
    assert X264_THREADS >= 1
