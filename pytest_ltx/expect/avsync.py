"""Audio-visual sync expectations (``expect.av_sync``) and their checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from pytest_ltx.outcome import Outcome, Status

from ._base import ExpectModel

if TYPE_CHECKING:
    from pytest_ltx.metrics.avsync import AVSyncResult

__all__ = ["PRESETS", "AVSyncExpect", "bounds", "check"]

#: (max audio early ms, max audio late ms) per named broadcast tolerance.
PRESETS: dict[str, tuple[float, float]] = {
    "itu-bt1359-detectable": (45.0, 125.0),
    "itu-bt1359-acceptable": (90.0, 185.0),
    "ebu-r37": (40.0, 60.0),
}


class AVSyncExpect(ExpectModel):
    """Offset bounds (positive offset = audio late). A preset and explicit bounds combine: explicit wins."""

    preset: Literal["itu-bt1359-detectable", "itu-bt1359-acceptable", "ebu-r37"] | None = None
    max_early_ms: float | None = Field(None, ge=0, description="audio may lead the picture by at most this")
    max_late_ms: float | None = Field(None, ge=0, description="audio may lag the picture by at most this")
    min_confidence: float = Field(0.3, ge=0, le=1, description="below this the offset counts as unmeasured")
    require_measurable: bool = Field(
        False, description="fail (instead of reporting 'unmeasured') when no offset can be measured"
    )
    max_duration_mismatch_s: float = Field(
        0.25, ge=0, description="allowed |audio duration - video duration| (AAC padding, vocoder length)"
    )
    expected_offset_ms: float | None = Field(
        None, description="the offset the clip is known to have (a deliberate delay, or a canary's defect): "
                          "the measured offset must be within offset_tolerance_ms of it"
    )
    offset_tolerance_ms: float = Field(20.0, gt=0, description="allowed |measured - expected_offset_ms|")


def bounds(expect: AVSyncExpect) -> tuple[float | None, float | None, str]:
    """(max early ms, max late ms, where they come from): explicit bounds win over the preset's."""
    early = late = None
    if expect.preset is not None:
        early, late = PRESETS[expect.preset]
    parts = []
    if expect.max_early_ms is not None:
        early = expect.max_early_ms
        parts.append("max_early_ms")
    if expect.max_late_ms is not None:
        late = expect.max_late_ms
        parts.append("max_late_ms")
    if expect.preset and parts:
        source = f"{expect.preset} with {' and '.join(parts)} set explicitly"
    elif expect.preset:
        source = expect.preset
    else:
        source = "the spec"
    return early, late, source


def _fmt_offset(ms: float) -> str:
    if abs(ms) < 0.5:
        return "audio in sync (0 ms)"
    return f"audio {abs(ms):.0f} ms {'late' if ms > 0 else 'early'}"


def _fmt_allowed(early: float | None, late: float | None) -> str:
    e = f"{early:g} ms early" if early is not None else "any amount early"
    lt = f"{late:g} ms late" if late is not None else "any amount late"
    return f"{e} … {lt}"


def check(result: "AVSyncResult", expect: AVSyncExpect) -> list[Outcome]:
    """The measured offset against the bounds, plus duration agreement and sample-rate sanity.

    An offset the metric could not measure (no audio, silence, no events, periodic content) or measured
    below ``min_confidence`` is ``UNMEASURED`` — never a pass — unless ``require_measurable`` makes it a
    failure. The message says why it could not be measured.
    """
    out: list[Outcome] = []
    early, late, source = bounds(expect)
    allowed = {"max_early_ms": early, "max_late_ms": late, "min_confidence": expect.min_confidence}
    details = {"status": result.status.value, "confidence": round(float(result.confidence), 3),
               "audio_events": result.audio_events, "visual_events": result.visual_events}
    unmeasured = Status.FAILED if expect.require_measurable else Status.UNMEASURED
    req = " (the spec requires a measurable offset)" if expect.require_measurable else ""
    if result.offset_ms is None:
        out.append(Outcome(
            check="av_sync.offset", status=unmeasured,
            message=f"A/V offset not measurable: {result.status.value} — {result.message}{req}",
            measured=None, allowed=allowed, details=details,
        ))
    elif result.confidence < expect.min_confidence:
        out.append(Outcome(
            check="av_sync.offset", status=unmeasured,
            message=(f"A/V offset not trusted: best estimate {_fmt_offset(result.offset_ms)} has confidence "
                     f"{result.confidence:.2f}, below the required {expect.min_confidence:g}{req}"),
            measured=None, allowed=allowed, details=details | {"candidate_offset_ms": round(result.offset_ms, 1)},
        ))
    else:
        off = float(result.offset_ms)
        too_early = early is not None and off < -early
        too_late = late is not None and off > late
        head = f"{_fmt_offset(off)} (confidence {result.confidence:.2f})"
        if early is None and late is None:
            msg, ok = f"{head}; no bounds set", True
        else:
            ok = not (too_early or too_late)
            msg = f"{head}; {source} allows {_fmt_allowed(early, late)}"
        out.append(Outcome(
            check="av_sync.offset", status=Status.PASSED if ok else Status.FAILED, message=msg,
            measured=round(off, 1), allowed=allowed, details=details,
        ))

    if expect.expected_offset_ms is not None:
        out.append(_expected_offset(result, expect, unmeasured, req))

    if result.audio_duration_s is not None and result.duration_mismatch_s is not None:
        diff = float(result.duration_mismatch_s)
        pad = float(result.duration_padding_allowance_s) if diff > 0 else 0.0
        tol = expect.max_duration_mismatch_s + pad
        ok = abs(diff) <= tol
        pad_note = f" + {pad * 1000:.0f} ms AAC padding" if pad else ""
        out.append(Outcome(
            check="av_sync.duration", status=Status.PASSED if ok else Status.FAILED,
            message=(f"audio lasts {result.audio_duration_s:.3f} s, video {result.video_duration_s:.3f} s "
                     f"(audio {abs(diff):.3f} s {'longer' if diff >= 0 else 'shorter'}; allowed "
                     f"±{expect.max_duration_mismatch_s:g} s{pad_note})"),
            measured=round(diff, 4), allowed=round(tol, 4),
        ))
    if result.sample_rate is not None:
        issue = result.sample_rate_issue
        out.append(Outcome(
            check="av_sync.sample_rate", status=Status.FAILED if issue else Status.PASSED,
            message=issue or f"audio sample rate {result.sample_rate} Hz",
            measured=result.sample_rate, allowed=">= 8000 Hz, a standard rate",
        ))
    return out


def _expected_offset(result: "AVSyncResult", expect: AVSyncExpect, unmeasured: Status, req: str) -> Outcome:
    """The measured offset against a known one (``expected_offset_ms``): how canaries prove the metric."""
    want = float(expect.expected_offset_ms)  # type: ignore[arg-type]
    allowed = {"expected_offset_ms": want, "tolerance_ms": expect.offset_tolerance_ms}
    if result.offset_ms is None or result.confidence < expect.min_confidence:
        why = result.status.value if result.offset_ms is None else f"confidence {result.confidence:.2f}"
        return Outcome("av_sync.expected_offset", unmeasured,
                       f"expected {_fmt_offset(want)}, but the offset could not be measured ({why}){req}",
                       measured=None, allowed=allowed)
    off = float(result.offset_ms)
    ok = abs(off - want) <= expect.offset_tolerance_ms
    return Outcome("av_sync.expected_offset", Status.PASSED if ok else Status.FAILED,
                   f"{_fmt_offset(off)}, expected {_fmt_offset(want)} ± {expect.offset_tolerance_ms:g} ms",
                   measured=round(off, 1), allowed=allowed)
