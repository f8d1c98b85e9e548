"""Motion continuity: finds every cut, jump, freeze and flicker a test card has, and nothing else."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pytest_ltx.expect.motion import MotionExpect, check
from pytest_ltx.media import Clip
from pytest_ltx.metrics.motion import MotionEventKind, MotionResult, analyze, analyze_file
from pytest_ltx.outcome import Status
from pytest_ltx.testcard import TestCardSpec, Truth, draw, write


def _defect_spec(width: int, height: int, frames: int, fps: float, seed: int, **kw) -> TestCardSpec:
    n = frames
    return TestCardSpec(
        width=width, height=height, frames=n, fps=fps, seed=seed, audio=None,
        cuts=[n // 5],
        jumps=[{"at": 2 * n // 5, "skip": 3}],
        freezes=[{"start": 3 * n // 5, "length": 3}],
        flickers=[{"start": 4 * n // 5, "length": 6, "amplitude": 0.08}],
        **kw,
    )


def _truth_events(t: Truth) -> set[tuple[str, int, int]]:
    return (
        {("cut", c, c) for c in t.cuts}
        | {("jump", j.frame, j.frame) for j in t.jumps}
        | {("freeze", s.start, s.end) for s in t.freezes}
        | {("flicker", s.start, s.end) for s in t.flickers}
    )


def _assert_matches(result: MotionResult, t: Truth, tol: int = 1) -> None:
    want = _truth_events(t)
    got = {(e.kind.value, e.start_frame, e.end_frame) for e in result.events}

    def near(a, b):
        return a[0] == b[0] and abs(a[1] - b[1]) <= tol and abs(a[2] - b[2]) <= tol

    missing = [w for w in want if not any(near(w, g) for g in got)]
    extra = [g for g in got if not any(near(w, g) for w in want)]
    assert not missing and not extra, f"missing {missing}, extra {extra}; found {[e.describe() for e in result.events]}"


CARDS = [
    dict(width=256, height=192, frames=97, fps=24, seed=3),
    dict(width=160, height=160, frames=81, fps=12, seed=9),
    dict(width=320, height=180, frames=121, fps=30, seed=4),
    dict(width=128, height=96, frames=61, fps=25, seed=7),
    dict(width=192, height=128, frames=73, fps=24, seed=11, objects=[{"kind": "start_stop"}, {"kind": "flash"}]),
]


@pytest.mark.parametrize("kw", CARDS, ids=lambda kw: f"{kw['width']}x{kw['height']}@{kw['fps']}s{kw['seed']}")
def test_finds_all_four_kinds(kw: dict) -> None:
    card = draw(_defect_spec(**kw))
    r = analyze(card.clip)
    _assert_matches(r, card.truth)
    kinds = {e.kind for e in r.events}
    assert kinds == set(MotionEventKind)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_clean_cards_have_no_events(seed: int) -> None:
    objs = [{"kind": k} for k in ("bounce", "linear", "start_stop", "flash", "flash")]
    card = draw(TestCardSpec(width=160, height=120, frames=73, seed=seed, objects=objs, audio=None))
    r = analyze(card.clip)
    assert r.events == ()
    assert r.repeated_frames == 0


def test_cut_jump_freeze_times_and_scores() -> None:
    card = draw(_defect_spec(128, 96, 61, 25, 7))
    r = analyze(card.clip)
    (cut,) = r.cuts
    assert (cut.start_frame, cut.end_frame, cut.start_s) == (12, 12, pytest.approx(12 / 25))
    (fr,) = r.freezes
    assert fr.frames == 3 and r.max_freeze_frames == 3
    (fl,) = r.flickers
    assert fl.score == pytest.approx(0.16, abs=0.05)  # the brightness swings by 2a frame to frame
    assert r.flicker_score > 0.03


def test_static_clip_is_one_freeze() -> None:
    frames = np.repeat(draw(TestCardSpec(width=64, height=48, frames=2, audio=None)).clip.frames[:1], 10, axis=0)
    r = analyze(Clip(frames=frames, fps=10))
    assert [(e.kind, e.start_frame, e.end_frame) for e in r.events] == [(MotionEventKind.FREEZE, 1, 9)]
    assert r.dynamic_degree == 0.0 and r.flicker_score == 0.0


def test_single_duplicate_frame_is_counted_not_an_event() -> None:
    card = draw(TestCardSpec(width=96, height=64, frames=30, seed=2, audio=None))
    frames = card.clip.frames.copy()
    frames[15] = frames[14]
    r = analyze(Clip(frames=frames, fps=24))
    assert r.freezes == () and r.repeated_frames == 1


def test_global_flicker_on_static_scene_but_local_flash_is_not_flicker() -> None:
    base = draw(TestCardSpec(width=96, height=96, frames=2, pan=(0, 0), objects=[], audio=None)).clip.frames[0]
    gains = np.ones(24)
    gains[8:14] = [1.1, 0.9, 1.1, 0.9, 1.1, 0.9]
    flick = np.stack([np.clip(base * g, 0, 255).astype(np.uint8) for g in gains])
    r = analyze(Clip(frames=flick, fps=24))
    assert [(e.kind.value, e.start_frame, e.end_frame) for e in r.flickers] == [("flicker", 8, 13)]
    local = np.repeat(base[None], 24, axis=0).copy()
    local[8:14:2, 10:30, 10:30] = 255  # a lamp blinking in one corner
    r2 = analyze(Clip(frames=local, fps=24))
    assert r2.flickers == ()


def test_tiny_clips_do_not_crash() -> None:
    one = np.zeros((1, 16, 16, 3), np.uint8)
    r = analyze(Clip(frames=one, fps=24))
    assert r.events == () and r.flicker_score is None and r.dynamic_degree is None and r.num_frames == 1
    two = np.zeros((2, 16, 16, 3), np.uint8)
    assert analyze(Clip(frames=two, fps=24)).scalars()["cuts"] == 0


def test_frame_indices_map_to_source_frames() -> None:
    card = draw(_defect_spec(128, 96, 61, 25, 7))
    clip = Clip(frames=card.clip.frames[10:], fps=25, frame_indices=np.arange(10, 61))
    r = analyze(clip)
    assert [e.start_frame for e in r.cuts] == [12]
    assert r.to_dict()["series"]["pair_frame"][0] == 11


def test_to_dict_and_scalars() -> None:
    card = draw(_defect_spec(128, 96, 61, 25, 7))
    r = analyze(card.clip)
    d = json.loads(json.dumps(r.to_dict()))
    assert {e["kind"] for e in d["events"]} == {"cut", "jump", "freeze", "flicker"}
    assert set(d["events"][0]) >= {"kind", "start_frame", "end_frame", "start_s", "end_s", "score"}
    assert len(d["series"]["diff"]) == 60 and len(d["series"]["luma_mean"]) == 61
    s = r.scalars()
    assert (s["cuts"], s["jumps"], s["freezes"], s["flickers"], s["max_freeze_frames"]) == (1, 1, 1, 1, 3)
    assert all(isinstance(v, (int, float)) for v in s.values())
    with pytest.raises(ValueError):
        r.diff[0] = 1.0  # series are read-only


def test_encoded_card_streams_through_analyze_file(tmp_path) -> None:
    spec = _defect_spec(256, 144, 73, 24, 5)
    t = write(spec, tmp_path / "card.mp4")
    r = analyze_file(tmp_path / "card.mp4")
    _assert_matches(r, t)
    assert r.source == str(tmp_path / "card.mp4") and r.analysis_size == (256, 144)


def test_check_messages_name_kind_frames_and_times() -> None:
    card = draw(TestCardSpec(width=128, height=96, frames=61, seed=1, cuts=[24, 37], audio=None))
    r = analyze(card.clip)
    outs = {o.check: o for o in check(r, MotionExpect(cuts=0, jumps=0, freezes=0, max_freeze_frames=2))}
    cuts = outs["motion.cuts"]
    assert cuts.status is Status.FAILED and cuts.measured == 2 and cuts.allowed == 0
    assert cuts.message == "2 cuts found, 0 allowed: cut at frame 24 (1.00 s), cut at frame 37 (1.54 s)"
    assert outs["motion.jumps"].status is Status.PASSED
    assert outs["motion.max_freeze_frames"].status is Status.PASSED
    ok = check(r, MotionExpect(cuts=2))[0]
    assert ok.status is Status.PASSED and ok.message.startswith("2 cuts found, 2 expected: cut at frame 24")


def test_check_scores_and_freeze_length() -> None:
    card = draw(_defect_spec(128, 96, 61, 25, 7))
    r = analyze(card.clip)
    outs = {o.check: o for o in check(r, MotionExpect(max_freeze_frames=2, flicker_max=0.01, dynamic_max=1.0))}
    mf = outs["motion.max_freeze_frames"]
    assert mf.status is Status.FAILED and "freeze at frames 36-38 (1.44-1.52 s, 3 frames)" in mf.message
    fl = outs["motion.flicker_max"]
    assert fl.status is Status.FAILED and "flicker at frames 48-53" in fl.message
    assert outs["motion.dynamic"].status is Status.PASSED
    unmeasured = check(analyze(Clip(frames=np.zeros((1, 8, 8, 3), np.uint8), fps=24)), MotionExpect(flicker_max=0.1))
    assert unmeasured[0].status is Status.UNMEASURED


# ------------------------------------------------------------------------------------------ real clips

BIKES_CUTS = [30, 76, 137, 187, 242]  # checked by eye on a contact sheet


@pytest.mark.slow
def test_bikes_real_cuts(clips_bikes) -> None:
    r = analyze_file(clips_bikes)
    assert [(e.kind, e.start_frame) for e in r.events] == [(MotionEventKind.CUT, f) for f in BIKES_CUTS]
    assert r.num_frames == 250


@pytest.mark.slow
def test_big_buck_bunny_is_continuous(clips_bigbuckbunny) -> None:
    r = analyze_file(clips_bigbuckbunny)
    assert r.events == (), [e.describe() for e in r.events]
    assert r.num_frames == 132 and max(r.analysis_size) == 256


@pytest.mark.parametrize("which", ["clips_carphone_pristine", "clips_carphone_distorted"])
def test_carphone_has_no_events(which: str, request: pytest.FixtureRequest) -> None:
    r = analyze_file(request.getfixturevalue(which))
    assert r.events == (), [e.describe() for e in r.events]


def test_analyze_file_refuses_a_truncated_file(tmp_path) -> None:
    from pytest_ltx.media import ClipReadError, write_frames
    from pytest_ltx.testcard import iter_frames

    spec = TestCardSpec(width=96, height=64, frames=33, seed=1, audio=None)
    p = write_frames(iter_frames(spec), tmp_path / "fs.mp4", fps=24, faststart=True)
    data = p.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(ClipReadError, match="truncated"):  # raised in the decode thread, re-raised here
        analyze_file(tmp_path / "cut.mp4")


def test_prefetch_stops_its_worker_when_abandoned() -> None:
    import threading

    from pytest_ltx.stream import prefetch

    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield np.zeros((4, 4, 3), np.uint8)
            i += 1

    it = prefetch(endless(), depth=2)
    next(it)
    it.close()
    assert not any(t.name == "motion-decode" and t.is_alive() for t in threading.enumerate())
    assert len(produced) < 10


def test_still_flicker_is_flicker_not_freeze() -> None:
    spec = TestCardSpec(width=128, height=96, frames=49, seed=6, audio=None,
                        flickers=[{"start": 20, "length": 6, "amplitude": 0.1, "still": True}])
    card = draw(spec)
    f = card.clip.frames.astype(float)
    assert card.truth.source_frame[20:26] == (19,) * 6  # nothing moves while it flickers
    assert not np.array_equal(f[20], f[19])
    r = analyze(card.clip)
    assert [(e.kind.value, e.start_frame, e.end_frame) for e in r.events] == [("flicker", 20, 25)]
