"""Expectations on the rendered file and the render itself: format, determinism, budget."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from pytest_ltx.outcome import Outcome, Status

from ._base import ExpectModel

if TYPE_CHECKING:
    from pytest_ltx.media import Clip, ClipInfo


class FormatExpect(ExpectModel):
    """Stream facts. For rendered clips unset values default to what the spec asked for."""

    frames: int | None = Field(None, ge=1)
    fps: float | None = Field(None, gt=0)
    width: int | None = Field(None, ge=1)
    height: int | None = Field(None, ge=1)
    audio: bool | None = Field(None, description="an audio track must (true) / must not (false) be present")
    duration_tolerance_s: float = Field(0.25, ge=0, description="allowed |audio - video| duration")


class DeterminismExpect(ExpectModel):
    """Render twice with the same seed; the second must match (bit for bit by default)."""

    max_pixel_diff: int = Field(0, ge=0, le=255, description="largest allowed per-pixel |difference|")
    max_audio_diff: float = Field(0.0, ge=0, description="largest allowed per-sample |difference|")


class BudgetExpect(ExpectModel):
    render_seconds_max: float | None = Field(None, gt=0)
    vram_gb_max: float | None = Field(None, gt=0, description="peak CUDA memory; not measurable on CPU. On CUDA "
                                      "the VRAM planner picks a placement that meets it, or the item fails "
                                      "before rendering")
    timeout_s: float | None = Field(None, gt=0, description="stop the render after this many seconds (an "
                                    "infrastructure error, not a regression); overrides ltx_render_timeout")


def _fmt_s(x: float) -> str:
    return f"{x:.3f} s"


def check_format(info: "ClipInfo", expect: FormatExpect, *, requested: dict | None = None) -> list[Outcome]:
    """Stream facts vs the expectation; unset fields fall back to what the render ``requested``."""
    req = requested or {}
    out: list[Outcome] = []
    for key, label in (("frames", "frame count"), ("width", "width"), ("height", "height"), ("fps", "frame rate")):
        want = getattr(expect, key)
        if want is None:
            want = req.get(key)
        if want is None:
            continue
        got = getattr(info, key)
        ok = abs(float(got) - float(want)) < 1e-3 if key == "fps" else int(got) == int(want)
        out.append(Outcome(
            check=f"format.{key}",
            status=Status.PASSED if ok else Status.FAILED,
            message=f"{label} {got:g}" + ("" if ok else f", expected {want:g}"),
            measured=got, allowed=want,
        ))
    has_audio = info.audio_sample_rate is not None
    if expect.audio is not None:
        ok = has_audio == expect.audio
        out.append(Outcome(
            check="format.audio",
            status=Status.PASSED if ok else Status.FAILED,
            message=("audio track present" if has_audio else "no audio track")
            + ("" if ok else (", but the spec requires audio" if expect.audio else ", but the spec forbids audio")),
            measured=has_audio, allowed=expect.audio,
        ))
    if has_audio and info.audio_duration_s is not None:
        diff = info.audio_duration_s - info.duration_s
        ok = abs(diff) <= expect.duration_tolerance_s
        out.append(Outcome(
            check="format.duration",
            status=Status.PASSED if ok else Status.FAILED,
            message=(f"audio lasts {_fmt_s(info.audio_duration_s)}, video {_fmt_s(info.duration_s)} "
                     f"(difference {diff:+.3f} s, allowed ±{expect.duration_tolerance_s:g} s)"),
            measured=round(diff, 4), allowed=expect.duration_tolerance_s,
        ))
    return out


def check_budget(seconds: float | None, peak_vram_gb: float | None, expect: BudgetExpect,
                 *, cached: bool = False) -> list[Outcome]:
    """Render time and peak VRAM against the budget. A cached clip was not rendered now: its recorded
    render time is checked (it is what the budget is about), and the message says so."""
    out: list[Outcome] = []
    note = " (recorded when the clip was rendered; served from cache now)" if cached else ""
    if expect.render_seconds_max is not None and seconds is not None:
        ok = seconds <= expect.render_seconds_max
        out.append(Outcome(
            check="budget.render_seconds",
            status=Status.PASSED if ok else Status.FAILED,
            message=f"render took {seconds:.2f} s, budget {expect.render_seconds_max:g} s{note}",
            measured=round(seconds, 3), allowed=expect.render_seconds_max,
        ))
    if expect.vram_gb_max is not None:
        if peak_vram_gb is None:
            out.append(Outcome(
                check="budget.vram_gb",
                status=Status.UNMEASURED,
                message=f"peak VRAM not measurable (no CUDA device); budget {expect.vram_gb_max:g} GB",
                measured=None, allowed=expect.vram_gb_max,
            ))
        else:
            ok = peak_vram_gb <= expect.vram_gb_max
            out.append(Outcome(
                check="budget.vram_gb",
                status=Status.PASSED if ok else Status.FAILED,
                message=f"peak VRAM {peak_vram_gb:.2f} GB, budget {expect.vram_gb_max:g} GB{note}",
                measured=round(peak_vram_gb, 3), allowed=expect.vram_gb_max,
            ))
    return out


def check_determinism(first: "Clip", second: "Clip", expect: DeterminismExpect) -> list[Outcome]:
    """Two renders of the same request must agree (bit for bit unless a tolerance is set)."""
    import numpy as np

    out: list[Outcome] = []
    if first.frames.shape != second.frames.shape:
        return [Outcome("determinism.frames", Status.FAILED,
                        f"second render has shape {second.frames.shape}, first {first.frames.shape}",
                        measured=list(second.frames.shape), allowed=list(first.frames.shape))]
    d = np.abs(first.frames.astype(np.int16) - second.frames.astype(np.int16))
    worst = int(d.max()) if d.size else 0
    ok = worst <= expect.max_pixel_diff
    msg = f"second render differs by at most {worst}/255 per pixel (allowed {expect.max_pixel_diff})"
    if not ok:
        bad = np.flatnonzero(d.reshape(d.shape[0], -1).max(axis=1) > expect.max_pixel_diff)
        msg += f"; first differing frame {int(bad[0])}, {len(bad)} frames differ"
    elif worst == 0:
        msg = "second render is bit-identical (frames)"
    out.append(Outcome("determinism.frames", Status.PASSED if ok else Status.FAILED, msg,
                       measured=worst, allowed=expect.max_pixel_diff))
    if first.audio is not None or second.audio is not None:
        if first.audio is None or second.audio is None or first.audio.shape != second.audio.shape:
            out.append(Outcome("determinism.audio", Status.FAILED,
                               "audio tracks differ in presence or length between the two renders"))
        else:
            worst_a = float(np.abs(first.audio - second.audio).max()) if first.audio.size else 0.0
            ok = worst_a <= expect.max_audio_diff
            msg = ("second render is bit-identical (audio)" if worst_a == 0 else
                   f"audio differs by at most {worst_a:.3g} per sample (allowed {expect.max_audio_diff:g})")
            out.append(Outcome("determinism.audio", Status.PASSED if ok else Status.FAILED, msg,
                               measured=worst_a, allowed=expect.max_audio_diff))
    return out


def determinism_proven(proof: dict, expect: DeterminismExpect) -> list[Outcome]:
    """The outcome of a determinism check proven in an earlier run (bit-identical renders of the same
    request in this environment): it passes any bound, and says so, and how to re-render."""
    when = proof.get("proven_at", "an earlier run")
    out = [Outcome("determinism.frames", Status.PASSED,
                   f"bit-identical (frames), proven at {when} for this request and environment; "
                   "--ltx-recheck-determinism re-renders", measured=0, allowed=expect.max_pixel_diff)]
    if proof.get("audio") is not None:
        out.append(Outcome("determinism.audio", Status.PASSED, "bit-identical (audio), proven with the frames",
                           measured=0.0, allowed=expect.max_audio_diff))
    return out
