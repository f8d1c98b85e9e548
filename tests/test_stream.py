"""The streaming pass: one decode feeds every metric, results equal the whole-clip path's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_ltx.evaluate import evaluate
from pytest_ltx.media import ClipReadError, read_clip
from pytest_ltx.metrics.sampling import KeyframeGrid, sample_indices
from pytest_ltx.stream import Consumer, MediaSource, run_stream


@pytest.fixture(scope="module")
def card_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pytest_ltx.testcard import AudioSpec, TestCardSpec, write

    p = tmp_path_factory.mktemp("stream") / "card.mp4"
    write(TestCardSpec(width=192, height=128, frames=49, fps=24, cuts=[24],
                       audio=AudioSpec(sample_rate=16000, offset_ms=80)), p)
    return p


@pytest.mark.parametrize("n", [1, 2, 9, 25, 49, 121])
@pytest.mark.parametrize(("fps", "per_second"), [(24.0, 2.0), (25.0, 2.0), (30.0, 7.0), (24.0, 24.0), (8.0, 30.0),
                                                 (23.976, 1.5)])
def test_keyframe_grid_online_equals_sample_indices(n: int, fps: float, per_second: float) -> None:
    g = KeyframeGrid(fps, per_second)
    online = [i for i in range(n) if g.contains(i)]
    if n - 1 not in online:
        online.append(n - 1)
    assert online == sample_indices(n, fps, per_second)


def test_stream_equals_whole_clip_evaluation(card_mp4: Path) -> None:
    fams = ["motion", "av_sync", "structural"]
    streamed = evaluate(MediaSource(card_mp4), metrics=fams, keyframes=True)
    whole = evaluate(read_clip(card_mp4), metrics=fams)
    assert streamed.info == whole.info
    assert [e.describe() for e in streamed.results["motion"].events] == ["cut at frame 24 (1.00 s)"]
    assert streamed.results["motion"].scalars() == whole.results["motion"].scalars()
    a, b = streamed.results["av_sync"], whole.results["av_sync"]
    assert a.status == b.status and a.offset_ms == pytest.approx(b.offset_ms, abs=0.5)
    assert a.offset_ms == pytest.approx(80, abs=3)
    np.testing.assert_array_equal(streamed.results["structural"].fingerprint.thumbnails,
                                  whole.results["structural"].fingerprint.thumbnails)
    kf = streamed.keyframes
    assert kf is not None and kf.indices == tuple(sample_indices(49, 24, 2.0)) and kf.frames.shape[1] == 96


def test_one_decode_feeds_every_consumer_in_order(card_mp4: Path) -> None:
    class Recorder(Consumer):
        frame_side = 64

        def __init__(self, name: str) -> None:
            self.name = name
            self.wants_audio = True

        def begin(self, info):
            self.idx, self.samples, self.shapes = [], 0, set()

        def feed(self, frame):
            self.idx.append(frame.index)
            self.shapes.add(frame.rgb(64).shape)

        def feed_audio(self, chunk, sr):
            self.samples += chunk.shape[1]

        def finish(self, info):
            return (self.idx, self.samples, self.shapes, info.frames)

    run = run_stream(MediaSource(card_mp4), [Recorder("a"), Recorder("b")])
    assert run.results["a"] == run.results["b"]
    idx, samples, shapes, frames = run.results["a"]
    assert idx == list(range(49)) and frames == 49
    assert shapes == {(43, 64, 3)}
    assert samples == pytest.approx(49 / 24 * 16000, rel=0.03)


def test_a_failing_consumer_is_an_error_for_its_family_only(card_mp4: Path, monkeypatch) -> None:
    from pytest_ltx.metrics import structural

    def boom(self, index, frame):
        raise RuntimeError("broken metric")

    monkeypatch.setattr(structural.StructuralConsumer, "take", boom)
    ev = evaluate(MediaSource(card_mp4), metrics=["motion", "structural"])
    assert "motion" in ev.results and "structural" not in ev.results
    (err,) = [o for o in ev.outcomes if o.check == "structural.error"]
    assert "RuntimeError: broken metric" in err.message


def test_truncated_file_raises_naming_the_file(card_mp4: Path, tmp_path: Path) -> None:
    bad = tmp_path / "cut.mp4"
    data = card_mp4.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ClipReadError) as e:
        evaluate(MediaSource(bad), metrics=["motion"])
    assert "cut.mp4" in str(e.value)


def test_separate_audio_file_replaces_the_track(card_mp4: Path, tmp_path: Path) -> None:
    import av

    from pytest_ltx.media import write_clip

    clip = read_clip(card_mp4)
    silent = tmp_path / "video_only.mp4"
    from pytest_ltx.media import Clip

    write_clip(Clip(frames=clip.frames, fps=clip.fps), silent)
    wav = tmp_path / "audio.wav"
    with av.open(str(wav), "w") as out:
        s = out.add_stream("pcm_s16le", rate=clip.sample_rate)
        s.layout = "mono"
        pcm = (np.clip(clip.mono(), -1, 1) * 32767).astype(np.int16)[None, :]
        f = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        f.sample_rate = clip.sample_rate
        for p in s.encode(f):
            out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    ev = evaluate(MediaSource(silent, wav), metrics=["av_sync"])
    assert ev.info.audio_sample_rate == clip.sample_rate
    assert ev.results["av_sync"].offset_ms == pytest.approx(80, abs=5)


def test_streamed_ocr_reads_what_the_whole_clip_path_reads(tmp_path: Path) -> None:
    """Batched detection in the stream, recognition only where text was found: same lines, boxes,
    frames as reading keyframe by keyframe from the decoded clip."""
    pytest.importorskip("easyocr")
    from pytest_ltx.testcard import TestCardSpec, TextSpec, write

    p = tmp_path / "caption.mp4"
    write(TestCardSpec(width=256, height=160, frames=49, fps=24, seed=3,
                       text=[TextSpec(text="HELLO", start=12, end=36, height_frac=0.16)]), p)
    streamed = evaluate(MediaSource(p), metrics=["text"]).results["text"]
    whole = evaluate(read_clip(p), metrics=["text"]).results["text"]
    assert streamed.sampled_frames == whole.sampled_frames
    assert [(d.frame, d.text, d.box) for d in streamed.detections] == [(d.frame, d.text, d.box) for d in whole.detections]
    assert {d.frame for d in streamed.detections if d.text.upper() == "HELLO"} == {12, 24, 36}
    for a, b in zip(streamed.detections, whole.detections):
        assert a.confidence == pytest.approx(b.confidence, abs=1e-3)
