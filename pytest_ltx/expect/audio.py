"""Soundtrack expectations (``expect.audio``) and their checks.

``audio: {}`` checks a track is there and undamaged with broadcast-style defaults (true peak ≤ −1 dBTP as
EBU R128 asks, no clipping runs, no drop-outs, DC offset ≤ 1 % of full scale, and the track lasting as long
as the picture within 5 %: a track labelled with the wrong sample rate fails here). Loudness bounds,
loudness range, silence and bandwidth are opt-in: what is right depends on the content.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from pytest_ltx.outcome import Outcome, Status

from ._base import ExpectModel

if TYPE_CHECKING:
    from pytest_ltx.metrics.audio import AudioResult

__all__ = ["AudioExpect", "check"]


class AudioExpect(ExpectModel):
    """Bounds on the soundtrack. ``None`` switches a check off."""

    present: bool | None = Field(True, description="the clip must (true) / must not (false) have an audio track")
    loudness_min_lufs: float | None = Field(None, le=0, description="lowest integrated loudness (BS.1770, LUFS)")
    loudness_max_lufs: float | None = Field(None, le=0, description="highest integrated loudness (LUFS)")
    loudness_range_min_lu: float | None = Field(None, ge=0, description="lowest loudness range (EBU R128 LRA, LU)")
    loudness_range_max_lu: float | None = Field(None, ge=0, description="highest loudness range (LU)")
    true_peak_max_dbtp: float | None = Field(-1.0, description="highest true peak (dBTP, 4× oversampled)")
    max_clipping_runs: int | None = Field(0, ge=0, description="runs of ≥ 3 full-scale samples allowed")
    max_dropouts: int | None = Field(0, ge=0, description="gaps of digital zero (≥ 5 ms) inside sound allowed")
    max_silence_s: float | None = Field(
        None, ge=0, description="longest quiet stretch allowed (20 ms RMS below silence_dbfs), seconds")
    silence_dbfs: float = Field(-60.0, le=0, description="RMS below which the track counts as silent")
    min_silence_s: float = Field(0.5, gt=0, description="shortest quiet stretch reported as silence")
    dc_offset_max: float | None = Field(0.01, ge=0, description="largest |channel mean| (full scale = 1)")
    max_tempo_error: float | None = Field(
        0.05, ge=0, description="allowed |audio duration / video duration − 1| (beyond AAC padding): a track "
                                "labelled with the wrong sample rate plays slow or fast")
    min_bandwidth_hz: float | None = Field(
        None, gt=0, description="content must reach this frequency (−40 dB edge of the long-term spectrum)")
    expected_defects: list[Literal["loudness", "loudness_range", "true_peak", "clipping", "dropouts", "silence",
                                   "dc_offset", "tempo", "bandwidth"]] = Field(
        default_factory=list, description="checks a canary must fail (the defect it carries): each passes only "
                                          "when its bound is violated")

    @model_validator(mode="after")
    def _ranges(self) -> "AudioExpect":
        for lo, hi in (("loudness_min_lufs", "loudness_max_lufs"), ("loudness_range_min_lu", "loudness_range_max_lu")):
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{lo} ({a}) must be <= {hi} ({b})")
        return self


def _ok(b: bool) -> Status:
    return Status.PASSED if b else Status.FAILED


def _list(segs, n: int = 4) -> str:
    s = ", ".join(x.describe() for x in segs[:n])
    return s + (f" (+{len(segs) - n} more)" if len(segs) > n else "")


def check(result: "AudioResult", expect: AudioExpect) -> list[Outcome]:
    """One outcome per check that is switched on; ``expected_defects`` turn a canary's checks around."""
    out = _check(result, expect)
    if not expect.expected_defects:
        return out
    want = {f"audio.{d}" for d in expect.expected_defects}
    turned: list[Outcome] = []
    for o in out:
        if o.check in want and o.status in (Status.PASSED, Status.FAILED):
            caught = o.status is Status.FAILED
            o = Outcome(o.check, Status.PASSED if caught else Status.FAILED,
                        f"expected defect {'found' if caught else 'missed'}: {o.message}", o.measured, o.allowed,
                        details=o.details)
        turned.append(o)
    for d in sorted(want - {o.check for o in out}):
        turned.append(Outcome(d, Status.FAILED, f"expected defect {d} could not be checked (switched off or no track)"))
    return turned


def _check(result: "AudioResult", expect: AudioExpect) -> list[Outcome]:
    out: list[Outcome] = []
    if expect.present is not None:
        if expect.present:
            msg = (f"audio track: {result.channels} channel(s), {result.sample_rate} Hz, {result.duration_s:.3f} s"
                   if result.present else "no audio track, one is expected")
        else:
            msg = ("no audio track, as expected" if not result.present
                   else f"an audio track ({result.sample_rate} Hz) where none is expected")
        out.append(Outcome("audio.present", _ok(result.present == expect.present), msg, result.present,
                           expect.present))
    if not result.present:
        return out

    def unmeasured(check_name: str, why: str, allowed) -> Outcome:
        return Outcome(check_name, Status.UNMEASURED, why, None, allowed)

    out += _bounded("audio.loudness", "integrated loudness", result.integrated_lufs, expect.loudness_min_lufs,
                    expect.loudness_max_lufs, "LUFS", "integrated loudness not measurable (shorter than 0.4 s, "
                    "or every block below the −70 LUFS gate)")
    out += _bounded("audio.loudness_range", "loudness range", result.loudness_range_lu,
                    expect.loudness_range_min_lu, expect.loudness_range_max_lu, "LU",
                    "loudness range not measurable (needs ≥ 3 s of non-silent audio)")
    if expect.true_peak_max_dbtp is not None:
        v = result.true_peak_dbtp
        if v is None:
            out.append(Outcome("audio.true_peak", Status.PASSED, "true peak −inf dBTP (digital silence)", None,
                               expect.true_peak_max_dbtp))
        else:
            out.append(Outcome("audio.true_peak", _ok(v <= expect.true_peak_max_dbtp),
                               f"true peak {v:+.1f} dBTP (sample peak {result.sample_peak_dbfs:+.1f} dBFS), at most "
                               f"{expect.true_peak_max_dbtp:+.1f} dBTP allowed", round(v, 2), expect.true_peak_max_dbtp))
    if expect.max_clipping_runs is not None:
        n = len(result.clipping)
        msg = f"{n} clipping run(s) ({result.clipped_samples} full-scale samples), at most {expect.max_clipping_runs}"
        if n:
            msg += ": " + _list(result.clipping)
        out.append(Outcome("audio.clipping", _ok(n <= expect.max_clipping_runs), msg, n, expect.max_clipping_runs,
                           details={"segments": [s.to_dict() for s in result.clipping]}))
    if expect.max_dropouts is not None:
        n = len(result.dropouts)
        msg = f"{n} drop-out(s), at most {expect.max_dropouts} allowed" + (f": {_list(result.dropouts)}" if n else "")
        out.append(Outcome("audio.dropouts", _ok(n <= expect.max_dropouts), msg, n, expect.max_dropouts,
                           details={"segments": [s.to_dict() for s in result.dropouts]}))
    if expect.max_silence_s is not None:
        longest = max(result.silences, key=lambda s: s.duration_s, default=None)
        d = longest.duration_s if longest is not None else 0.0
        msg = (f"longest silence {d:.2f} s (below {expect.silence_dbfs:g} dBFS), at most "
               f"{expect.max_silence_s:g} s allowed" + (f": {_list(result.silences)}" if result.silences else ""))
        out.append(Outcome("audio.silence", _ok(d <= expect.max_silence_s), msg, round(d, 3), expect.max_silence_s,
                           details={"segments": [s.to_dict() for s in result.silences]}))
    if expect.dc_offset_max is not None and result.dc_offset is not None:
        v = result.dc_offset
        out.append(Outcome("audio.dc_offset", _ok(v <= expect.dc_offset_max),
                           f"DC offset {v:.4f} of full scale, at most {expect.dc_offset_max:g} allowed",
                           round(v, 5), expect.dc_offset_max))
    if (expect.max_tempo_error is not None and result.duration_ratio is not None and result.video_duration_s > 0
            and result.sample_rate):
        from pytest_ltx.metrics.avsync import AAC_PADDING_SAMPLES

        err = result.duration_ratio - 1.0
        pad = AAC_PADDING_SAMPLES / result.sample_rate / result.video_duration_s if err > 0 else 0.0
        ok = abs(err) <= expect.max_tempo_error + pad
        msg = (f"audio lasts {result.duration_s:.3f} s against {result.video_duration_s:.3f} s of picture "
               f"({result.duration_ratio:.3f}×; allowed ±{expect.max_tempo_error * 100:g} %"
               + (" + AAC padding" if pad else "") + ")")
        if not ok and result.rate_note:
            msg += f": {result.rate_note}"
        elif not ok:
            msg += f": the track is {'longer' if err > 0 else 'shorter'} than the picture"
        out.append(Outcome("audio.tempo", _ok(ok), msg, round(result.duration_ratio, 4),
                           {"max_tempo_error": expect.max_tempo_error},
                           details={"likely_rate": result.likely_rate, "declared_rate": result.sample_rate,
                                    "bandwidth_hz": result.bandwidth_hz}))
    if expect.min_bandwidth_hz is not None:
        v = result.bandwidth_hz
        if v is None or not result.sample_rate:
            out.append(unmeasured("audio.bandwidth", "bandwidth not measurable (silent or too short)",
                                  expect.min_bandwidth_hz))
        else:
            out.append(Outcome("audio.bandwidth", _ok(v >= expect.min_bandwidth_hz),
                               f"content reaches {v:.0f} Hz (of {result.sample_rate / 2:.0f} Hz Nyquist), at least "
                               f"{expect.min_bandwidth_hz:.0f} Hz expected", round(v), expect.min_bandwidth_hz))
    return out


def _bounded(check: str, what: str, v: float | None, lo: float | None, hi: float | None, unit: str,
             why_unmeasured: str) -> list[Outcome]:
    """A value that must lie in [lo, hi] (either bound optional); nothing when neither bound is set."""
    if lo is None and hi is None:
        return []
    allowed = {"min": lo, "max": hi}
    if v is None:
        return [Outcome(check, Status.UNMEASURED, why_unmeasured, None, allowed)]
    ok = (lo is None or v >= lo) and (hi is None or v <= hi)
    return [Outcome(check, _ok(ok), f"{what} {v:.1f} {unit}, allowed {_range(lo, hi, unit)}", round(v, 2), allowed)]


def _range(lo: float | None, hi: float | None, unit: str) -> str:
    if lo is not None and hi is not None:
        return f"{lo:g} … {hi:g} {unit}"
    return f"≥ {lo:g} {unit}" if lo is not None else f"≤ {hi:g} {unit}"
