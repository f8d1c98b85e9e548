"""Test cards: the truth they report is what is really drawn (and heard)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from pytest_ltx.testcard import (
    MotionKind,
    ObjectSpec,
    TestCardSpec,
    VisualEventKind,
    draw,
    truth,
    write,
)


def _luma(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _diffs(frames: np.ndarray) -> np.ndarray:
    f = frames.astype(np.int16)
    return np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3))


DEFECTS = dict(
    width=128,
    height=96,
    frames=73,
    fps=24,
    seed=5,
    cuts=[18],
    jumps=[{"at": 30, "skip": 6}],
    freezes=[{"start": 42, "length": 5}],
    flickers=[{"start": 56, "length": 8, "amplitude": 0.15}],
)


@pytest.fixture(scope="module")
def defect_card():
    return draw(TestCardSpec(**DEFECTS))


def test_deterministic_and_seeded() -> None:
    spec = TestCardSpec(width=64, height=64, frames=9, seed=11)
    a, b = draw(spec), draw(spec)
    assert np.array_equal(a.clip.frames, b.clip.frames)
    assert np.array_equal(a.clip.audio, b.clip.audio)
    assert a.truth == b.truth
    other = draw(spec.model_copy(update={"seed": 12}))
    assert not np.array_equal(a.clip.frames, other.clip.frames)


def test_clip_shape(defect_card) -> None:
    c = defect_card.clip
    assert c.frames.shape == (73, 96, 128, 3)
    assert c.fps == 24
    assert c.audio is not None and c.audio.shape == (2, round(73 / 24 * 16000))


def test_freeze_frames_identical(defect_card) -> None:
    f = defect_card.clip.frames
    (fr,) = defect_card.truth.freezes
    assert (fr.start, fr.end) == (42, 46)
    for i in range(fr.start, fr.end + 1):
        assert np.array_equal(f[i], f[fr.start - 1]), i
    assert not np.array_equal(f[fr.end + 1], f[fr.end])
    # nowhere else is a frame identical to its predecessor
    same = [i for i in range(1, len(f)) if np.array_equal(f[i], f[i - 1])]
    assert same == list(range(fr.start, fr.end + 1))


def test_flicker_oscillates_mean_luma(defect_card) -> None:
    f = defect_card.clip.frames
    (fl,) = defect_card.truth.flickers
    m = _luma(f).mean(axis=(1, 2))
    d = np.diff(m)  # d[i-1] = m[i] - m[i-1]
    inside = d[fl.start - 1 : fl.end]  # changes into frames start..end
    assert np.all(np.abs(inside) > 8), inside
    assert np.all(np.sign(inside[1:]) == -np.sign(inside[:-1]))  # alternates
    outside = np.r_[d[: fl.start - 2], d[fl.end + 2 :]]
    cut = defect_card.truth.cuts[0]
    outside = np.delete(outside, cut - 1)
    assert np.abs(outside).max() < 5  # a flash square moves the mean by a few levels


def test_cut_changes_scene(defect_card) -> None:
    f = defect_card.clip.frames
    t = defect_card.truth
    assert t.cuts == (18,)
    assert t.scene_of_frame[17] == 0 and t.scene_of_frame[18] == 1
    hist = [np.histogramdd(x.reshape(-1, 3), bins=4, range=[(0, 256)] * 3)[0].ravel() / x[..., 0].size for x in f]
    hd = np.array([np.abs(hist[i] - hist[i - 1]).sum() for i in range(1, len(f))])
    assert np.argmax(hd) + 1 == 18
    assert hd[17] > 5 * np.median(hd)


def test_jump_skips_source_frames(defect_card) -> None:
    t = defect_card.truth
    (j,) = t.jumps
    assert (j.frame, j.skip) == (30, 6)
    assert t.source_frame[30] - t.source_frame[29] == 7
    d = _diffs(defect_card.clip.frames)
    assert d[29] > 2.5 * np.median(d[20:28])


def test_truth_to_dict_is_json(defect_card) -> None:
    import json

    d = json.loads(json.dumps(defect_card.truth.to_dict()))
    assert d["cuts"][0] == {"frame": 18, "time_s": 0.75}
    assert d["freezes"] == [{"start": 42, "end": 46}]
    assert {e["kind"] for e in d["visual_events"]} <= {"impact", "flash", "start", "stop"}


def _mask_centroids(frames: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    d = np.abs(frames.astype(np.int16) - np.array(color, np.int16)).sum(-1)
    out = []
    for m in d < 40:
        ys, xs = np.nonzero(m)
        out.append((xs.mean(), ys.mean()) if len(xs) else (np.nan, np.nan))
    return np.array(out)


def _solo(kind: MotionKind, **kw) -> TestCardSpec:
    obj = ObjectSpec(kind=kind, color=(255, 0, 0), **kw)
    return TestCardSpec(width=128, height=128, frames=61, seed=2, background="flat", objects=[obj], audio=None)


def test_bounce_impacts_are_floor_contacts() -> None:
    card = draw(_solo(MotionKind.BOUNCE, size=0.12))
    impacts = card.truth.event_frames(VisualEventKind.IMPACT)
    assert len(impacts) >= 3
    y = _mask_centroids(card.clip.frames, (255, 0, 0))[:, 1]
    # the ball is lowest at every impact frame, and falling just before / rising just after it
    floor = np.nanmax(y)
    for e in impacts:
        assert y[e] > floor - 1.0, (e, y[e], floor)
        assert y[e - 1] < y[e] and (e + 1 >= len(y) or y[e + 1] < y[e])
    # irregular timing by default
    assert len(set(np.diff(impacts))) > 1


def test_periodic_events_are_regular() -> None:
    spec = TestCardSpec.model_validate(_solo(MotionKind.BOUNCE).model_dump() | {"audio": {"periodic": True}})
    t = truth(spec)
    assert len(set(np.diff(t.event_frames()))) == 1


def test_flash_peaks_on_event_frames() -> None:
    spec = _solo(MotionKind.FLASH, x=0.5, y=0.5)
    card = draw(spec)
    flashes = card.truth.event_frames(VisualEventKind.FLASH)
    patch = _luma(card.clip.frames[:, 60:68, 60:68]).mean(axis=(1, 2))
    onsets = [i for i in range(1, len(patch)) if patch[i] - patch[i - 1] > 60]
    assert onsets == list(flashes)


def test_start_stop_motion() -> None:
    card = draw(_solo(MotionKind.START_STOP, speed=0.5))
    ev = card.truth.visual_events
    assert [e.kind for e in ev[:2]] == [VisualEventKind.START, VisualEventKind.STOP]
    xy = _mask_centroids(card.clip.frames, (255, 0, 0))
    step = np.hypot(*np.diff(xy, axis=0).T)  # step[i-1]: motion between i-1 and i
    start, stop = ev[0].frame, ev[1].frame
    assert np.all(step[: start - 1] < 0.05)  # still before the start
    assert np.all(step[start : stop - 1] > 1.0)  # moving
    if len(ev) > 2:
        assert np.all(step[stop : ev[2].frame - 1] < 0.05)


def test_audio_events_follow_visual_events_with_offset() -> None:
    spec = TestCardSpec(width=64, height=64, frames=97, fps=24, seed=4, audio={"offset_ms": 120, "noise_dbfs": -80})
    card = draw(spec)
    t = card.truth
    tied = [e.time_s + 0.120 for e in t.visual_events if e.kind in (VisualEventKind.IMPACT, VisualEventKind.FLASH)]
    assert list(t.audio_events_s) == pytest.approx([x for x in sorted(tied) if x < spec.duration_s])
    wav = card.clip.audio[0]
    sr = card.clip.sample_rate
    first = np.argmax(np.abs(wav) > 0.05) / sr
    assert first == pytest.approx(t.audio_events_s[0], abs=0.002)
    assert t.av_offset_ms == 120


def test_audio_none_and_silence() -> None:
    none = draw(TestCardSpec(width=32, height=32, frames=5, audio="none"))
    assert none.clip.audio is None and not none.truth.has_audio and none.truth.av_offset_ms is None
    quiet = draw(TestCardSpec(width=32, height=32, frames=5, audio={"silence": True}))
    assert quiet.clip.audio is not None and not np.any(quiet.clip.audio)
    assert quiet.truth.audio_events_s == ()


def test_text_is_burned_inside_box() -> None:
    spec = TestCardSpec(
        width=192, height=128, frames=12, seed=1, objects=[], background="flat", audio=None,
        text=[{"text": "HELLO", "start": 3, "end": 8, "x": 0.1, "y": 0.2, "height_frac": 0.15}],
    )
    card = draw(spec)
    plain = draw(spec.model_copy(update={"text": ()}))
    (bt,) = card.truth.texts
    assert (bt.text, bt.first_frame, bt.last_frame) == ("HELLO", 3, 8)
    x0, y0, x1, y1 = bt.box
    for i in range(12):
        changed = np.any(card.clip.frames[i] != plain.clip.frames[i], axis=-1)
        if 3 <= i <= 8:
            ys, xs = np.nonzero(changed)
            assert len(xs) and xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
        else:
            assert not changed.any()


def test_garbled_text_truth() -> None:
    t = truth(TestCardSpec(width=128, height=64, frames=4, text=[{"garbled": 6}], audio=None))
    (bt,) = t.texts
    assert bt.garbled and len(bt.text) == 6 and (bt.first_frame, bt.last_frame) == (0, 3)


@pytest.mark.parametrize(
    "bad",
    [
        {"cuts": [10], "jumps": [{"at": 10, "skip": 2}]},
        {"freezes": [{"start": 5, "length": 4}], "flickers": [{"start": 8, "length": 3}]},
        {"cuts": [0]},
        {"cuts": [40]},
        {"colour": "red"},
        {"text": [{"text": "A", "garbled": 3}]},
        {"objects": [{"kind": "spin"}]},
    ],
)
def test_spec_rejects(bad: dict) -> None:
    with pytest.raises(ValidationError):
        TestCardSpec(frames=40, **bad)


def test_spec_is_frozen_and_documented() -> None:
    spec = TestCardSpec()
    with pytest.raises(ValidationError):
        spec.width = 10  # type: ignore[misc]
    schema = TestCardSpec.model_json_schema()
    assert all("description" in p for p in schema["properties"].values())


def test_write_streams_to_mp4(tmp_path) -> None:
    from pytest_ltx.media import probe, read_clip

    spec = TestCardSpec(width=96, height=64, frames=17, seed=3, freezes=[{"start": 5, "length": 3}])
    t = write(spec, tmp_path / "card.mp4")
    info = probe(tmp_path / "card.mp4")
    assert (info.frames, info.width, info.height, info.audio_sample_rate) == (17, 96, 64, 16000)
    clip = read_clip(tmp_path / "card.mp4")
    # yuv420p halves the chroma of a fine colour texture; luma survives the codec
    assert np.abs(_luma(clip.frames) - _luma(draw(spec).clip.frames)).mean() < 5
    assert t == truth(spec)
