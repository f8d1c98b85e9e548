"""OCR text-artifact expectations (``expect.text``) and their checks.

Matching is case-insensitive and tolerant of OCR slips: an expected, allowed or forbidden phrase matches
when its character error rate against the best-fitting part of the read text is within a bound
(``max_cer`` per expected phrase, ``match_max_cer`` for allowed/forbidden). Which detections count is set by
``min_confidence`` (the recogniser's; default 0: every region CRAFT detects counts, because the glyph soup
generators grow is text the English recogniser reads badly) and ``min_box_area``; expected text is searched
among all detections, because a phrase read poorly is still present (its CER says how poorly).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from pytest_ltx.outcome import Outcome, Status

from ._base import ExpectModel

if TYPE_CHECKING:
    from pytest_ltx.metrics.ocr import TextDetection, TextResult

__all__ = ["ExpectedText", "TextExpect", "check"]

_SHOW = 3  # detections named in one message


class ExpectedText(ExpectModel):
    text: str = Field(..., min_length=1)
    max_cer: float = Field(0.2, ge=0, le=1, description="largest character error rate accepted")
    frames: tuple[int, int] | None = Field(
        None,
        description="[first, last] frame the text must appear in: every sampled keyframe in the range must "
        "show it (without a range, one keyframe anywhere is enough)",
    )


class TextExpect(ExpectModel):
    """What text may, must, or must not appear. ``none: true`` forbids any text at all."""

    none: bool = Field(False, description="no text at all above min_confidence")
    min_confidence: float = Field(
        0.0, ge=0, le=1,
        description="recogniser confidence a detected region needs to count. 0 counts every region the text "
        "detector finds, legible or not: glyph soup reads at 0.1-0.6, so raising this lets garble through",
    )
    min_box_area: float = Field(0.0, ge=0, le=1, description="ignore boxes smaller than this fraction of the frame")
    expected: list[ExpectedText] = Field(default_factory=list)
    allowed: list[str] = Field(
        default_factory=list,
        description="text that may appear (anything else fails); given as [] it means no text at all",
    )
    forbidden: list[str] = Field(default_factory=list, description="text that must not appear")
    match_max_cer: float = Field(
        0.2, ge=0, le=1, description="CER within which an allowed or forbidden phrase counts as matched"
    )
    max_area_ratio: float | None = Field(None, ge=0, le=1, description="largest frame fraction covered by text")
    sample_fps: float = Field(2.0, gt=0, description="frames per second read by OCR (plus first and last)")


def _list(dets: "list[TextDetection]") -> str:
    shown = "; ".join(d.describe() for d in dets[:_SHOW])
    more = f"; and {len(dets) - _SHOW} more" if len(dets) > _SHOW else ""
    return shown + more


def _by_frame(dets: "list[TextDetection]") -> dict[int, list["TextDetection"]]:
    out: dict[int, list[TextDetection]] = {}
    for d in sorted(dets, key=lambda d: (d.frame, d.box[1], d.box[0])):
        out.setdefault(d.frame, []).append(d)
    return out


def _frame_text(dets: "list[TextDetection]") -> str:
    """A keyframe's lines in reading order (top to bottom, left to right), joined by spaces."""
    return " ".join(d.text for d in sorted(dets, key=lambda d: (d.box[1], d.box[0])))


def _best_line(phrase: str, dets: "list[TextDetection]") -> "TextDetection":
    from pytest_ltx.metrics.ocr import substring_cer

    return min(dets, key=lambda d: substring_cer(phrase, d.text))


def _check_expected(result: "TextResult", e: ExpectedText) -> Outcome:
    from pytest_ltx.metrics.ocr import substring_cer

    frames = list(result.sampled_frames)
    where = "the clip"
    if e.frames is not None:
        lo, hi = e.frames
        frames = [f for f in frames if lo <= f <= hi]
        where = f"frames {lo}-{hi}"
    name = "text.expected"
    allowed = e.max_cer
    if not frames:
        return Outcome(name, Status.FAILED,
                       f"expected text {e.text!r} cannot be checked: OCR sampled no keyframe in {where} "
                       f"(sampled {list(result.sampled_frames)}); raise text.sample_fps",
                       measured=None, allowed=allowed)
    by_frame = _by_frame(list(result.detections))
    per_frame: list[tuple[float, int]] = []
    for f in frames:
        dets = by_frame.get(f, [])
        per_frame.append((substring_cer(e.text, _frame_text(dets)) if dets else 1.0, f))
    best_cer, best_f = min(per_frame)
    worst_cer, worst_f = max(per_frame)
    every = e.frames is not None
    measured, at = (worst_cer, worst_f) if every else (best_cer, best_f)
    ok = measured <= allowed
    t = at / result.fps
    dets = by_frame.get(at, [])
    if dets:
        d = _best_line(e.text, dets)
        seen = f"read as {d.text!r} (confidence {d.confidence:.2f}) at frame {at} ({t:.2f} s), box {d.box}"
    else:
        seen = f"no text read at frame {at} ({t:.2f} s)"
    scope = f"on every sampled keyframe of {where}" if every else f"anywhere in {where}"
    if ok:
        msg = f"expected text {e.text!r} found {scope}: {seen}, CER {measured:.2f} <= {allowed:g}"
    else:
        missing = sum(c > allowed for c, _ in per_frame)
        msg = (f"expected text {e.text!r} missing {scope} ({missing} of {len(frames)} keyframes without it); "
               f"{'worst' if every else 'closest'}: {seen}, CER {measured:.2f} > {allowed:g}")
    return Outcome(name, Status.PASSED if ok else Status.FAILED, msg, measured=round(measured, 4),
                   allowed=allowed, details={"text": e.text, "frame": at, "frames_checked": frames})


def _is_allowed(text: str, phrases: list[str], tol: float) -> bool:
    from pytest_ltx.metrics.ocr import normalize_text, substring_cer

    if not phrases:
        return False
    if any(substring_cer(text, p) <= tol for p in phrases):
        return True
    # OCR merges neighbouring words into one line: accept a line whose every word sits in an allowed phrase
    words = normalize_text(text).split()
    return len(words) > 1 and all(any(substring_cer(w, p) <= tol for p in phrases) for w in words)


def check(result: "TextResult", expect: TextExpect) -> list[Outcome]:
    """Evaluate ``expect.text`` on an OCR result; one outcome per requested check."""
    if not result.sampled_frames:
        return [Outcome("text.ocr", Status.UNMEASURED, "OCR read no frames (empty clip)")]
    from pytest_ltx.metrics.ocr import substring_cer

    out: list[Outcome] = []
    rel = result.select(expect.min_confidence, expect.min_box_area)
    filt = (f"confidence >= {expect.min_confidence:g}" if expect.min_confidence > 0 else "any detected region") + (
        f", box >= {expect.min_box_area:.2%} of the frame" if expect.min_box_area > 0 else "")
    n = len(result.sampled_frames)

    if expect.none:
        ok = not rel
        msg = (f"no text ({filt}) on {n} sampled keyframes" if ok
               else f"unwanted text ({filt}): {_list(rel)}")
        out.append(Outcome("text.none", Status.PASSED if ok else Status.FAILED, msg,
                           measured=len(rel), allowed=0,
                           details={"detections": [d.to_dict() for d in rel[:20]]}))

    for e in expect.expected:
        out.append(_check_expected(result, e))

    if "allowed" in expect.model_fields_set:
        phrases = list(expect.allowed) + [e.text for e in expect.expected]
        bad = [d for d in rel if not _is_allowed(d.text, phrases, expect.match_max_cer)]
        ok = not bad
        if ok:
            msg = (f"only allowed text ({filt}) on {n} sampled keyframes" if rel
                   else f"no text ({filt}) on {n} sampled keyframes")
        else:
            allow = ", ".join(repr(p) for p in phrases) if phrases else "none"
            msg = f"text not in the allowed list ({allow}): {_list(bad)}"
        out.append(Outcome("text.allowed", Status.PASSED if ok else Status.FAILED, msg,
                           measured=len(bad), allowed=0,
                           details={"detections": [d.to_dict() for d in bad[:20]]}))

    if expect.forbidden:
        hits: list[tuple[str, TextDetection, float]] = []
        by_frame = _by_frame(rel)
        for phrase in expect.forbidden:
            for _f, dets in by_frame.items():
                c = substring_cer(phrase, _frame_text(dets))
                if c <= expect.match_max_cer:
                    hits.append((phrase, _best_line(phrase, dets), c))
        ok = not hits
        if ok:
            msg = f"none of {', '.join(repr(p) for p in expect.forbidden)} on {n} sampled keyframes ({filt})"
        else:
            parts = [f"{p!r} as {d.describe()}, CER {c:.2f}" for p, d, c in hits[:_SHOW]]
            more = f"; and {len(hits) - _SHOW} more" if len(hits) > _SHOW else ""
            msg = "forbidden text: " + "; ".join(parts) + more
        out.append(Outcome("text.forbidden", Status.PASSED if ok else Status.FAILED, msg,
                           measured=len(hits), allowed=0,
                           details={"hits": [{"phrase": p, "cer": round(c, 4), **d.to_dict()}
                                             for p, d, c in hits[:20]]}))

    if expect.max_area_ratio is not None:
        cov, frame = result.max_coverage(rel)
        ok = cov <= expect.max_area_ratio
        where = f" at frame {frame} ({frame / result.fps:.2f} s)" if frame is not None else ""
        msg = (f"text covers at most {cov:.2%} of a frame{where} "
               f"({'<=' if ok else '>'} {expect.max_area_ratio:.2%} allowed; {filt})")
        if not ok and frame is not None:
            msg += ": " + _list([d for d in rel if d.frame == frame])
        out.append(Outcome("text.max_area_ratio", Status.PASSED if ok else Status.FAILED, msg,
                           measured=round(cov, 6), allowed=expect.max_area_ratio))
    return out
