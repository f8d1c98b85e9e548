"""Failure-mode checks (metrics/artifacts.py, expect/artifacts.py): test cards carrying each defect at a
known frame (must fail), clean cards and real footage (must pass), through an mp4 round trip."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_ltx import testcard as tc
from pytest_ltx.expect.artifacts import ArtifactsExpect, check
from pytest_ltx.metrics import artifacts as art
from pytest_ltx.outcome import Status

BASE = dict(width=256, height=192, frames=49, fps=24.0, seed=3)


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    """``card(**spec)`` → the card's clip after H.264 + AAC, memoized."""
    from pytest_ltx.media import read_clip, write_clip

    d = tmp_path_factory.mktemp("artifacts")
    cache: dict = {}

    def make(**kw):
        key = repr(sorted(kw.items()))
        if key not in cache:
            spec = tc.TestCardSpec(**{**BASE, **kw})
            cache[key] = read_clip(write_clip(tc.draw(spec).clip, d / f"c{len(cache)}.mp4", preset="ultrafast"))
        return cache[key]

    return make


def outcomes(clip, conditioning=None, **expect):
    r = art.analyze(clip, conditioning_image=conditioning)
    return {o.check: o for o in check(r, ArtifactsExpect(**expect), conditioned=conditioning is not None)}


def failed(got):
    return sorted(k for k, o in got.items() if o.status is not Status.PASSED)


def test_clean_cards_pass_every_default(card):
    for seed, fps in ((1, 24.0), (5, 30.0), (9, 25.0)):
        got = outcomes(card(seed=seed, fps=fps))
        assert failed(got) == [], got


def test_real_footage_passes(clips_bigbuckbunny, clips_bikes):
    from pytest_ltx.media import read_clip

    for path in (clips_bigbuckbunny, clips_bikes):  # bikes.mp4 has a cut in its last second: not a flash
        got = outcomes(read_clip(path, max_side=256))
        assert failed(got) == [], (path.name, got)


@pytest.mark.parametrize("exposure,frame", [
    ({"start": 44, "gain": 1.5, "length": 2}, 44),  # a flash in the last second
    ({"start": 42, "gain": 0.7}, 42),  # an exposure drop that stays
])
def test_end_flash_is_found_at_its_frame(card, exposure, frame):
    clip = card(exposure=[exposure])
    got = outcomes(clip)
    assert failed(got) == ["artifacts.end_flash"]
    assert got["artifacts.end_flash"].status is Status.FAILED
    assert f"frame {frame}" in got["artifacts.end_flash"].message
    # the canary form: passes only when the defect is where the card put it
    assert outcomes(clip, expected={"end_flash": frame})["artifacts.end_flash"].status is Status.PASSED
    assert outcomes(clip, expected={"end_flash": frame - 10})["artifacts.end_flash"].status is Status.FAILED


def test_a_flash_early_in_the_clip_is_not_an_end_flash(card):
    got = outcomes(card(exposure=[{"start": 10, "gain": 1.5, "length": 2}]))
    assert got["artifacts.end_flash"].status is Status.PASSED


def test_canary_form_fails_when_the_defect_is_missing(card):
    got = outcomes(card(seed=1), expected={"end_flash": 44, "static_start": 0, "corrupt": 45,
                                           "photosensitive": 10})
    assert {k: o.status for k, o in got.items()} == {
        "artifacts.end_flash": Status.FAILED, "artifacts.static_start": Status.FAILED,
        "artifacts.corrupt": Status.FAILED, "artifacts.photosensitive": Status.FAILED}
    assert "missed" in got["artifacts.corrupt"].message


def test_static_start(card):
    clip = card(static_start=12)
    r = art.analyze(clip)
    assert r.static_start_frames == 12
    got = outcomes(clip)
    assert failed(got) == ["artifacts.static_start"]
    assert "motion starts at frame 12 (0.50 s)" in got["artifacts.static_start"].message
    assert outcomes(clip, max_static_start_s=0.6)["artifacts.static_start"].status is Status.PASSED
    assert outcomes(clip, expected={"static_start": 0})["artifacts.static_start"].status is Status.PASSED
    assert art.analyze(card(static_start=4)).static_start_frames == 4  # 0.17 s: under the default
    assert outcomes(card(static_start=4))["artifacts.static_start"].status is Status.PASSED


def test_first_frame_fidelity_to_the_conditioning_image(card):
    clip = card(seed=1)
    same = clip.frames[0]
    other = card(seed=8).frames[0]  # another scene
    got = outcomes(clip, conditioning=same)
    assert got["artifacts.first_frame"].status is Status.PASSED and got["artifacts.first_frame"].measured > 0.9
    got = outcomes(clip, conditioning=other)
    assert got["artifacts.first_frame"].status is Status.FAILED
    # a conditioning image of another size is compared on the same thumbnail grid
    import cv2

    big = cv2.resize(same, (512, 384), interpolation=cv2.INTER_CUBIC)
    assert outcomes(clip, conditioning=big)["artifacts.first_frame"].status is Status.PASSED
    # text-to-video: no conditioning image, no first-frame check
    assert "artifacts.first_frame" not in outcomes(clip)


@pytest.mark.parametrize("kind", ["noise", "blocks"])
def test_corrupted_tail_frames_are_found(card, kind):
    clip = card(corrupt=[{"start": 45, "kind": kind}])
    r = art.analyze(clip)
    assert [e.frame for e in r.corrupt] == [45, 46, 47, 48]
    got = outcomes(clip)
    assert "artifacts.corrupt" in failed(got)
    assert "frame 45 (1.88 s)" in got["artifacts.corrupt"].message
    assert outcomes(clip, expected={"corrupt": 45})["artifacts.corrupt"].status is Status.PASSED


def test_flash_transitions_follow_bt1702_thresholds():
    # 4 bright/dark cycles of 30 cd/m² around 50 cd/m²: 8 transitions, i.e. 4 flashes
    x = np.array([50, 80] * 4 + [50], float)
    assert len(art.flash_transitions(x)) == 8
    # swings under 20 cd/m² are no transitions; a ramp over several frames is one transition
    assert art.flash_transitions(np.array([50, 65, 50, 65, 50], float)) == []
    assert art.flash_transitions(np.array([50, 55, 60, 65, 72, 72, 72], float)) == [(0, 4)]
    # both states above 160 cd/m² (a bright scene getting brighter) is no flash
    assert art.flash_transitions(np.array([170, 195, 170, 195, 170], float)) == []


@pytest.mark.parametrize("rate_hz,fails", [(5.0, True), (8.0, True), (2.5, False)])
def test_photosensitive_flashing(card, rate_hz, fails):
    clip = card(strobe=[{"start": 10, "length": 30, "rate_hz": rate_hz}])
    r = art.analyze(clip)
    assert r.max_flashes_per_s == pytest.approx(min(rate_hz, 12.0), abs=1.0)
    got = outcomes(clip)
    assert (got["artifacts.photosensitive"].status is Status.FAILED) is fails
    if fails:
        assert r.flash_window is not None and 10 <= r.flash_window[0] <= 14
        assert "transitions at frames" in got["artifacts.photosensitive"].message
        assert outcomes(clip, expected={"photosensitive": 10}, frame_tolerance=3)[
            "artifacts.photosensitive"].status is Status.PASSED


def test_a_small_flashing_object_is_not_a_general_flash(card):
    """The default card's flashing square covers ~1 % of the screen: below BT.1702's 25 % area."""
    r = art.analyze(card(seed=2))
    assert r.max_flashes_per_s <= 1.0


def test_signals_accumulate_frame_by_frame(card):
    clip = card(seed=1)
    acc = art.SignalAccumulator(clip.fps)
    for f in clip.frames:
        acc.add(f)
    a = art.analyze_signals(acc.finish())
    b = art.analyze(clip)
    assert a.to_dict() == b.to_dict()


def test_first_frame_canary_form_finds_an_unfaithful_first_frame(card):
    """``expected: {first_frame: 0}``: passes only when the first frame is NOT the conditioning image."""
    clip = card(seed=1)
    same, other = clip.frames[0], card(seed=8).frames[0]
    got = outcomes(clip, conditioning=other, expected={"first_frame": 0})["artifacts.first_frame"]
    assert got.status is Status.PASSED and "found, SSIM" in got.message
    got = outcomes(clip, conditioning=same, expected={"first_frame": 0})["artifacts.first_frame"]
    assert got.status is Status.FAILED and "missed" in got.message
    got = outcomes(clip, expected={"first_frame": 0})["artifacts.first_frame"]  # nothing to compare with
    assert got.status is Status.FAILED and "first_frame_image" in got.message
    got = outcomes(clip, conditioning=other, expected={"first_frame": 3})["artifacts.first_frame"]
    assert got.status is Status.FAILED and "only be expected at frame 0" in got.message


FIRST_FRAME_SPEC = """
clips:
  - id: card
    testcard: {{width: 128, height: 96, frames: 13, fps: 12, seed: 4}}
    expect:
      artifacts: {{first_frame_image: {image}{extra}}}
      baseline: {{enabled: false}}
"""


def _first_frame_png(pytester, name: str, seed: int) -> None:
    """The first frame of a test card (after the same H.264 round trip the item's clip takes), as a PNG."""
    import cv2

    from pytest_ltx.media import read_clip, write_clip

    mp4 = write_clip(tc.draw(tc.TestCardSpec(width=128, height=96, frames=13, fps=12, seed=seed)).clip,
                     pytester.path / f"{name}.mp4")
    first = read_clip(mp4).frames[0]
    mp4.unlink()
    cv2.imwrite(str(pytester.path / "specs" / name), cv2.cvtColor(first, cv2.COLOR_RGB2BGR))


def test_first_frame_image_of_a_clip_not_rendered_here(pytester: pytest.Pytester) -> None:
    """A test card (standing in for a clip from another image-to-video tool) checked against the image it
    should start from: its own first frame passes, another scene fails, and the canary form inverts both."""
    (pytester.path / "specs").mkdir()
    _first_frame_png(pytester, "own.png", seed=4)
    _first_frame_png(pytester, "other.png", seed=9)
    args = ("specs/", "-p", "no:cacheprovider", "-p", "no:randomly")
    for image, extra, passed in (("own.png", "", True), ("other.png", "", False),
                                 ("other.png", ", expected: {first_frame: 0}", True),
                                 ("own.png", ", expected: {first_frame: 0}", False)):
        (pytester.path / "specs" / "a.yaml").write_text(FIRST_FRAME_SPEC.format(image=image, extra=extra))
        r = pytester.runpytest_subprocess(*args)
        r.assert_outcomes(passed=int(passed), failed=int(not passed))
        if not passed and not extra:
            r.stdout.fnmatch_lines(["*artifacts.first_frame: first frame SSIM to the conditioning image*"])


def test_first_frame_image_is_confined_and_must_exist(pytester: pytest.Pytester) -> None:
    (pytester.path / "specs").mkdir()
    for image, words in (("/etc/passwd", "is outside the project root"), ("missing.png", "missing.png not found")):
        (pytester.path / "specs" / "a.yaml").write_text(FIRST_FRAME_SPEC.format(image=image, extra=""))
        r = pytester.runpytest_subprocess("specs/", "-p", "no:cacheprovider")
        r.assert_outcomes(errors=1)
        r.stdout.fnmatch_lines([f"*specs/a.yaml:6: clips[[]0[]].expect.artifacts.first_frame_image: *{words}*"])
        assert "Traceback" not in r.stdout.str()


def test_still_images_are_budgeted_before_decoding(tmp_path) -> None:
    """A PNG whose header claims 40 000 × 40 000 pixels is refused from its header (named, with the
    setting to raise), and an unreadable file names itself."""
    import struct
    import zlib

    from pytest_ltx.limits import LimitError
    from pytest_ltx.media import ClipReadError, read_image_rgb

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    with pytest.raises(LimitError, match=r"bomb.png: .*1600000000 pixels.*over the 64 MP limit.*image_mp="):
        read_image_rgb(bomb)
    # under PIL's own threshold but over ours: refused by our header check
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 9000, 8000, 8, 2, 0, 0, 0))
                    + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    with pytest.raises(LimitError, match=r"big.png: the image is 9000x8000 \(72 MP\), over the 64 MP limit"):
        read_image_rgb(big)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(ClipReadError, match="junk.png: not a readable image"):
        read_image_rgb(junk)
