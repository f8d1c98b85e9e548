"""Failure-mode expectations (``expect.artifacts``): defects LTX-2 users actually hit, with defaults.

``artifacts: {}`` checks, with the defaults below: no brightness flash or exposure jump in the last second,
no static start longer than 0.25 s (image-to-video that only starts moving late), no corrupted frames
(noise or block garbage) in the last second, no more than three general flashes in any second (ITU-R
BT.1702), and — when the clip was conditioned on an image — the first frame's fidelity to it.

A canary states the defect it carries: ``expected: {end_flash: 45}`` makes the ``end_flash`` check pass only
when the flash is found at frame 45 (± ``frame_tolerance``), and fail when it is missed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from pytest_ltx.outcome import Outcome, Status

from ._base import ExpectModel

if TYPE_CHECKING:
    from pytest_ltx.metrics.artifacts import ArtifactEvent, ArtifactsResult

__all__ = ["ArtifactsExpect", "check"]

DefectName = Literal["end_flash", "static_start", "corrupt", "photosensitive", "first_frame"]


class ArtifactsExpect(ExpectModel):
    """Bounds on known generator failure modes. ``None`` switches a check off."""

    tail_s: float = Field(1.0, gt=0, description="length of the clip's end that end_flash and corrupt look at (s)")
    end_flash_max: float | None = Field(
        0.06, gt=0, le=1, description="largest frame-to-frame jump of mean luma in the last tail_s "
                                      "(fraction of full scale)")
    max_static_start_s: float | None = Field(
        0.25, ge=0, description="longest run of near-identical frames from the first frame (s)")
    first_frame_ssim_min: float | None = Field(
        0.6, ge=-1, le=1, description="SSIM of the first frame to the conditioning image (image-to-video only)")
    first_frame_image: str | None = Field(
        None, min_length=1,
        description="the conditioning image of a clip not rendered here (a `file:` item from another image-to-video "
                    "tool, a canary): path relative to the spec file, confined like every spec path. A rendered "
                    "item is compared with its own `image:`")
    max_corrupt_frames: int | None = Field(
        0, ge=0, description="frames of noise or block garbage allowed in the last tail_s")
    max_flashes_per_s: float | None = Field(
        3.0, ge=0, description="general flashes allowed in any 1 s window (ITU-R BT.1702: more than 3 is hazardous)")
    expected: dict[DefectName, int] = Field(
        default_factory=dict, description="defects a canary carries, by kind, at their (first) frame: the check "
                                          "passes only when that defect is found there")
    frame_tolerance: int = Field(1, ge=0, description="allowed |found frame − expected frame| for `expected`")


def _found_at(events: "list[ArtifactEvent]", frame: int, tol: int) -> "ArtifactEvent | None":
    for e in events:
        if e.frame - tol <= frame <= e.end_frame + tol:
            return e
    return None


def check(result: "ArtifactsResult", expect: ArtifactsExpect, *, conditioned: bool = False) -> list[Outcome]:
    """One outcome per check; ``conditioned`` says the clip was rendered from a conditioning image."""
    out: list[Outcome] = []
    fps = result.fps
    exp = expect.expected

    def expected_outcome(kind: DefectName, found: "list[ArtifactEvent]", present: bool, what: str) -> Outcome:
        want = exp[kind]
        hit = _found_at(found, want, expect.frame_tolerance) if present else None
        where = f"frame {want} ({want / fps:.2f} s)"
        if hit is not None:
            return Outcome(f"artifacts.{kind}", Status.PASSED, f"expected {what} at {where} found: {hit.describe()}",
                           hit.frame, want, details={"events": [e.to_dict() for e in found]})
        got = "; ".join(e.describe() for e in found) if present and found else "nothing found"
        return Outcome(f"artifacts.{kind}", Status.FAILED, f"expected {what} at {where} was missed ({got})",
                       None, want, details={"events": [e.to_dict() for e in found]})

    # end flash / exposure jump
    lim = expect.end_flash_max if expect.end_flash_max is not None else 0.06
    flash_ev = [e for e in result.of_kind("end_flash") if e.value > lim]
    if "end_flash" in exp:
        out.append(expected_outcome("end_flash", flash_ev, bool(flash_ev), "a brightness flash or exposure jump"))
    elif expect.end_flash_max is not None:
        ok = not flash_ev
        where = ": " + "; ".join(e.describe() for e in flash_ev[:4]) if flash_ev else ""
        out.append(Outcome(
            "artifacts.end_flash", Status.PASSED if ok else Status.FAILED,
            (f"largest mean-luma jump in the last {expect.tail_s:g} s is {result.tail_luma_jump:.3f}, at most "
             f"{expect.end_flash_max:g} allowed (elsewhere in the clip: {result.body_luma_jump:.3f}){where}"),
            round(result.tail_luma_jump, 4), expect.end_flash_max,
            details={"events": [e.to_dict() for e in flash_ev]}))

    # static start
    static_ev = result.of_kind("static_start")
    static_s = result.static_start_frames / fps
    if "static_start" in exp:
        lim = expect.max_static_start_s if expect.max_static_start_s is not None else 0.25
        out.append(expected_outcome("static_start", static_ev, static_s > lim, "a static start"))
    elif expect.max_static_start_s is not None:
        ok = static_s <= expect.max_static_start_s
        n = result.static_start_frames
        msg = (f"motion starts at frame {n} ({static_s:.2f} s): the first {n} frames are near-identical; at most "
               f"{expect.max_static_start_s:g} s allowed" if n > 1 else "motion from the first frame")
        out.append(Outcome("artifacts.static_start", Status.PASSED if ok else Status.FAILED, msg, n,
                           round(expect.max_static_start_s * fps, 2)))

    # first frame vs conditioning image
    if "first_frame" in exp:  # a canary: its first frame is known NOT to be the image it names
        v = result.first_frame_ssim
        lim = expect.first_frame_ssim_min if expect.first_frame_ssim_min is not None else 0.6
        if not conditioned or v is None:
            out.append(Outcome("artifacts.first_frame", Status.FAILED,
                               "expected an unfaithful first frame, but there is no conditioning image to compare "
                               "it with (give `first_frame_image`)", None, lim))
        elif exp["first_frame"] != 0:
            out.append(Outcome("artifacts.first_frame", Status.FAILED,
                               f"first_frame can only be expected at frame 0, not {exp['first_frame']}", None, lim))
        else:
            found = v < lim
            out.append(Outcome("artifacts.first_frame", Status.PASSED if found else Status.FAILED,
                               f"expected an unfaithful first frame (SSIM to the conditioning image below {lim:g}): "
                               + (f"found, SSIM {v:.3f}" if found else f"missed, SSIM {v:.3f}"), round(v, 4), lim))
    elif expect.first_frame_ssim_min is not None and conditioned:
        v = result.first_frame_ssim
        if v is None:
            out.append(Outcome("artifacts.first_frame", Status.UNMEASURED,
                               "the conditioning image could not be compared with the first frame", None,
                               expect.first_frame_ssim_min))
        else:
            ok = v >= expect.first_frame_ssim_min
            out.append(Outcome("artifacts.first_frame", Status.PASSED if ok else Status.FAILED,
                               f"first frame SSIM to the conditioning image {v:.3f}, at least "
                               f"{expect.first_frame_ssim_min:g} required", round(v, 4), expect.first_frame_ssim_min))

    # corrupted tail
    if "corrupt" in exp:
        out.append(expected_outcome("corrupt", list(result.corrupt), bool(result.corrupt), "corrupted frames"))
    elif expect.max_corrupt_frames is not None:
        n = len(result.corrupt)
        shown = "; ".join(e.describe() for e in result.corrupt[:4]) + (f" (+{n - 4} more)" if n > 4 else "")
        out.append(Outcome("artifacts.corrupt", Status.PASSED if n <= expect.max_corrupt_frames else Status.FAILED,
                           f"{n} corrupted frame(s) in the last {expect.tail_s:g} s, at most {expect.max_corrupt_frames}"
                           + (f": {shown}" if n else ""), n, expect.max_corrupt_frames,
                           details={"events": [e.to_dict() for e in result.corrupt]}))

    # photosensitive flashing
    ps_ev = result.of_kind("photosensitive")
    if "photosensitive" in exp:
        lim = expect.max_flashes_per_s if expect.max_flashes_per_s is not None else 3.0
        out.append(expected_outcome("photosensitive", ps_ev, result.max_flashes_per_s > lim,
                                    "hazardous flashing"))
    elif expect.max_flashes_per_s is not None:
        ok = result.max_flashes_per_s <= expect.max_flashes_per_s
        msg = (f"{result.max_flashes_per_s:g} general flashes in the worst 1 s window, at most "
               f"{expect.max_flashes_per_s:g} allowed (ITU-R BT.1702)")
        if ps_ev:
            msg += f": {ps_ev[0].describe()}"
        out.append(Outcome("artifacts.photosensitive", Status.PASSED if ok else Status.FAILED, msg,
                           result.max_flashes_per_s, expect.max_flashes_per_s,
                           details={"transition_frames": list(result.flash_transition_frames)}))
    return out
