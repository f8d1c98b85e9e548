"""Audio QC (metrics/audio.py, expect/audio.py) on signals whose truth is known, real footage, and the
audio fingerprint in the golden baseline comparison."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_ltx.expect.audio import AudioExpect, check
from pytest_ltx.media import Clip
from pytest_ltx.metrics import audio as am
from pytest_ltx.outcome import Status

SR = 48000


def tone(seconds: float = 4.0, hz: float = 997.0, dbfs: float = -20.0, sr: int = SR, channels: int = 2):
    t = np.arange(int(seconds * sr)) / sr
    x = (10 ** (dbfs / 20)) * np.sin(2 * np.pi * hz * t)
    return np.repeat(x[None, :], channels, axis=0).astype(np.float32)


def clip_of(audio: np.ndarray | None, sr: int = SR, seconds: float = 4.0, fps: float = 24.0) -> Clip:
    frames = np.full((int(round(seconds * fps)), 32, 32, 3), 80, np.uint8)
    return Clip(frames=frames, fps=fps, audio=audio, sample_rate=sr if audio is not None else None)


def outcomes(clip: Clip, **expect) -> dict[str, object]:
    return {o.check: o for o in check(am.analyze(clip), AudioExpect(**expect))}


def test_loudness_of_a_reference_tone_matches_bs1770():
    # BS.1770: a 997 Hz sine at -20 dBFS in both channels of a stereo pair reads -20.0 LUFS (K-weighting is
    # normalised to 0 dB at 997 Hz; one channel alone would read -23.01)
    r = am.analyze(clip_of(tone(dbfs=-20.0)))
    assert r.integrated_lufs == pytest.approx(-20.0, abs=0.1)
    mono = am.analyze(clip_of(tone(dbfs=-20.0, channels=1)))
    assert mono.integrated_lufs == pytest.approx(-23.0, abs=0.1)
    # a steady tone has (almost) no loudness range
    assert r.loudness_range_lu is not None and r.loudness_range_lu < 0.5
    got = outcomes(clip_of(tone(dbfs=-20.0)), loudness_min_lufs=-24, loudness_max_lufs=-16)
    assert got["audio.loudness"].status is Status.PASSED
    got = outcomes(clip_of(tone(dbfs=-40.0)), loudness_min_lufs=-24, loudness_max_lufs=-16)
    assert got["audio.loudness"].status is Status.FAILED
    assert "-40.0 LUFS" in got["audio.loudness"].message


def test_loudness_range_sees_a_level_step():
    # 8 s at -40 dBFS then 8 s at -20: most 3 s blocks sit on one level or the other, so LRA ≈ 20 LU
    quiet, loud = tone(8.0, dbfs=-40.0), tone(8.0, dbfs=-20.0)
    x = np.concatenate([quiet, loud], axis=1)
    r = am.analyze(clip_of(x, seconds=16.0))
    assert r.loudness_range_lu == pytest.approx(20.0, abs=1.0)
    got = outcomes(clip_of(x, seconds=16.0), loudness_range_max_lu=10)
    assert got["audio.loudness_range"].status is Status.FAILED


def test_true_peak_sees_the_inter_sample_over():
    # a quarter-rate sine at 45° phase: every sample is at ±0.707 A, the waveform peaks at A between them
    t = np.arange(SR * 2)
    x = (0.99 * np.sin(2 * np.pi * 0.25 * t + np.pi / 4)).astype(np.float32)[None, :]
    r = am.analyze(clip_of(x, seconds=2.0))
    assert r.sample_peak_dbfs == pytest.approx(20 * math.log10(0.99 * math.sqrt(0.5)), abs=0.05)
    assert r.true_peak_dbtp == pytest.approx(20 * math.log10(0.99), abs=0.3)
    got = outcomes(clip_of(x, seconds=2.0))
    assert got["audio.true_peak"].status is Status.FAILED  # default: at most -1 dBTP
    assert outcomes(clip_of(tone(dbfs=-6.0)))["audio.true_peak"].status is Status.PASSED


def test_clipping_runs_are_found_with_their_times():
    x = tone(2.0, hz=200.0, dbfs=-6.0)
    x[:, SR:SR + SR // 10] = np.clip(x[:, SR:SR + SR // 10] * 3.0, -1.0, 1.0)  # 100 ms driven into the rails
    r = am.analyze(clip_of(x, seconds=2.0))
    assert r.clipping and all(1.0 <= s.start_s < 1.1 for s in r.clipping)
    got = outcomes(clip_of(x, seconds=2.0))
    assert got["audio.clipping"].status is Status.FAILED
    assert "clipping 1.0" in got["audio.clipping"].message
    assert outcomes(clip_of(tone(2.0), seconds=2.0))["audio.clipping"].status is Status.PASSED


def test_dropout_and_silence_are_told_apart():
    x = tone(4.0, hz=440.0)
    x[:, int(1.0 * SR):int(1.02 * SR)] = 0.0  # a 20 ms drop-out
    x[:, int(2.5 * SR):int(3.5 * SR)] = 0.0  # a 1 s pause: silence, not a drop-out (too long)
    r = am.analyze(clip_of(x))
    assert [round(s.start_s, 3) for s in r.dropouts] == [1.0]
    assert r.dropouts[0].duration_s == pytest.approx(0.02, abs=0.001)
    assert len(r.silences) == 1 and r.silences[0].start_s == pytest.approx(2.5, abs=0.03)
    assert r.silences[0].duration_s == pytest.approx(1.0, abs=0.05)
    got = outcomes(clip_of(x), max_silence_s=0.5)
    assert got["audio.dropouts"].status is Status.FAILED and "1.000–1.020 s" in got["audio.dropouts"].message
    assert got["audio.silence"].status is Status.FAILED
    clean = outcomes(clip_of(tone(4.0, hz=440.0)), max_silence_s=0.5)
    assert clean["audio.dropouts"].status is Status.PASSED and clean["audio.silence"].status is Status.PASSED


def test_dc_offset():
    x = tone(2.0) + 0.05
    assert outcomes(clip_of(x, seconds=2.0))["audio.dc_offset"].status is Status.FAILED
    assert outcomes(clip_of(tone(2.0), seconds=2.0))["audio.dc_offset"].status is Status.PASSED


def test_presence():
    assert outcomes(clip_of(None))["audio.present"].status is Status.FAILED
    assert outcomes(clip_of(None), present=False)["audio.present"].status is Status.PASSED
    assert outcomes(clip_of(tone()), present=False)["audio.present"].status is Status.FAILED
    assert list(outcomes(clip_of(None), present=None)) == []


@pytest.mark.parametrize("true_rate,label", [(48000, 32000), (16000, 24000), (44100, 48000)])
def test_a_track_labelled_with_the_wrong_rate_is_caught_through_mp4(tmp_path, true_rate, label):
    """Samples made at ``true_rate`` for a 4 s picture, written into the mp4 as ``label`` Hz."""
    from pytest_ltx.media import read_clip, write_clip

    rng = np.random.default_rng(0)
    n = 4 * true_rate
    x = (0.1 * rng.standard_normal((1, n))).astype(np.float32)
    bad = write_clip(clip_of(x, sr=label), tmp_path / "bad.mp4")
    r = am.analyze(read_clip(bad))
    assert r.duration_ratio == pytest.approx(true_rate / label, rel=0.01)
    assert r.likely_rate == true_rate
    got = {o.check: o for o in check(r, AudioExpect())}
    assert got["audio.tempo"].status is Status.FAILED
    slow = label < true_rate
    assert f"{true_rate} Hz audio labelled {label} Hz" in got["audio.tempo"].message
    assert ("slow" if slow else "fast") in got["audio.tempo"].message
    good = write_clip(clip_of(x[:, : 4 * label] if label < true_rate else np.pad(x, ((0, 0), (0, 4 * label - n))),
                              sr=label), tmp_path / "good.mp4")
    assert {o.check: o for o in check(am.analyze(read_clip(good)), AudioExpect())}["audio.tempo"].status \
        is Status.PASSED


def test_bandwidth_reveals_upsampled_content():
    from scipy.signal import resample_poly

    rng = np.random.default_rng(1)
    narrow = resample_poly(rng.standard_normal(16000 * 3), 3, 1)[None, :] * 0.1  # made at 16 kHz, now 48 kHz
    wide = rng.standard_normal((1, SR * 3)) * 0.1
    bn = am.analyze(clip_of(narrow.astype(np.float32), seconds=3.0)).bandwidth_hz
    bw = am.analyze(clip_of(wide.astype(np.float32), seconds=3.0)).bandwidth_hz
    assert 7000 <= bn <= 9500 and bw >= 23000  # the upsampler's transition band ends near 9 kHz
    got = outcomes(clip_of(narrow.astype(np.float32), seconds=3.0), min_bandwidth_hz=12000)
    assert got["audio.bandwidth"].status is Status.FAILED


def test_fingerprint_tells_a_changed_soundtrack():
    a = am.analyze(clip_of(tone(hz=440.0, dbfs=-20.0)))
    same = am.analyze(clip_of(tone(hz=440.0, dbfs=-20.0)))
    other = am.analyze(clip_of(tone(hz=3000.0, dbfs=-20.0)))
    quieter = am.analyze(clip_of(tone(hz=440.0, dbfs=-45.0)))
    assert a.fingerprint.shape == (len(a.fingerprint_frames), am.N_MELS)
    assert min(am.fingerprint_similarity(a.fingerprint, same.fingerprint)) == pytest.approx(1.0)
    assert max(am.fingerprint_similarity(a.fingerprint, other.fingerprint)) < 0.5
    assert max(am.fingerprint_similarity(a.fingerprint, quieter.fingerprint)) < 0.8


def test_test_card_and_real_footage_pass_the_defaults(clips_bigbuckbunny):
    from pytest_ltx import testcard as tc
    from pytest_ltx.media import read_clip

    card = tc.draw(tc.TestCardSpec(width=96, height=64, frames=97, fps=24, audio=tc.AudioSpec(sample_rate=48000)))
    for clip in (card.clip, read_clip(clips_bigbuckbunny, max_side=96)):
        got = check(am.analyze(clip), AudioExpect())
        assert [o for o in got if o.status is not Status.PASSED] == [], got


def test_baseline_compares_the_audio_fingerprint():
    """A record whose soundtrack changed fails the keyframe audio comparison, at the changed keyframe."""
    from pytest_ltx.baseline.compare import compare
    from pytest_ltx.baseline.record import BaselineRecord

    def rec(x):
        r = am.analyze(clip_of(x))
        return BaselineRecord(item_key="k", model_key="m", scalars=r.scalars(),
                              arrays={"audio." + k: v for k, v in r.arrays().items()},
                              keyframe_frames=list(r.fingerprint_frames), fps=24.0)

    base = rec(tone(hz=440.0))
    changed = tone(hz=440.0)
    changed[:, int(2.0 * SR):] = tone(2.0, hz=3000.0)  # the second half is a different sound
    same = compare(rec(tone(hz=440.0)), base, compare_arrays=["audio.log_mel"])
    assert same.ok
    cmp = compare(rec(changed), base, compare_arrays=["audio.log_mel"])
    bad = [a for a in cmp.arrays if a.name == "audio.log_mel"][0]
    assert bad.status is Status.FAILED and bad.worst_frame is not None and bad.worst_frame >= 48
    assert "audio spectrum similarity" in bad.message


def test_canary_form_turns_the_named_check_around():
    x = tone(4.0, hz=440.0)
    x[:, int(1.0 * SR):int(1.02 * SR)] = 0.0
    got = outcomes(clip_of(x), expected_defects=["dropouts"])
    assert got["audio.dropouts"].status is Status.PASSED and "expected defect found" in got["audio.dropouts"].message
    got = outcomes(clip_of(tone(4.0, hz=440.0)), expected_defects=["dropouts", "silence"])
    assert got["audio.dropouts"].status is Status.FAILED and "missed" in got["audio.dropouts"].message
    assert got["audio.silence"].status is Status.FAILED  # switched off (max_silence_s unset): cannot be caught
