"""``expect.av_sync.expected_offset_ms``: a known offset must be measured within its tolerance."""

from __future__ import annotations

from types import SimpleNamespace

from pytest_ltx.expect.avsync import AVSyncExpect, check
from pytest_ltx.outcome import Status


def _result(offset_ms, confidence=0.9, status="measured"):
    return SimpleNamespace(offset_ms=offset_ms, confidence=confidence, status=SimpleNamespace(value=status),
                           message="", audio_events=5, visual_events=5, audio_duration_s=None,
                           duration_mismatch_s=None, sample_rate=None)


def _by_check(outcomes):
    return {o.check: o for o in outcomes}


def test_expected_offset_within_tolerance_passes():
    o = _by_check(check(_result(196.0), AVSyncExpect(expected_offset_ms=200)))["av_sync.expected_offset"]
    assert o.status is Status.PASSED
    assert o.message == "audio 196 ms late, expected audio 200 ms late ± 20 ms"


def test_expected_offset_outside_tolerance_fails():
    o = _by_check(check(_result(150.0), AVSyncExpect(expected_offset_ms=200)))["av_sync.expected_offset"]
    assert o.status is Status.FAILED and o.measured == 150.0


def test_expected_offset_unmeasured_is_not_a_pass():
    o = _by_check(check(_result(None, 0.0, "ambiguous"), AVSyncExpect(expected_offset_ms=-80)))
    assert o["av_sync.expected_offset"].status is Status.UNMEASURED
    o = _by_check(check(_result(None, 0.0, "ambiguous"),
                        AVSyncExpect(expected_offset_ms=-80, require_measurable=True)))
    assert o["av_sync.expected_offset"].status is Status.FAILED
