"""Motion continuity: cuts, jumps, freezes and flicker, from per-frame-pair change signals.

Generated video fails in ways a viewer sees at once but a per-frame metric never does: the shot changes
(cut), the motion skips ahead (jump), the picture stalls (freeze), the brightness pumps (flicker). Each
leaves its own fingerprint on a few cheap signals computed for every pair of consecutive frames at a small
analysis resolution (256 px long side by default):

* ``diff`` — mean absolute luma difference (what a viewer sees change);
* ``content`` — PySceneDetect's ContentDetector value: mean |ΔH|, |ΔS|, |ΔV|;
* ``hist_distance`` — total-variation distance of hue/saturation and value histograms (0 same, 1 disjoint):
  position-free, so it stays low under any motion of the same content and jumps at a new shot;
* structure — correlation of 32 px brightness-normalised thumbnails, best over small shifts: near 1 for
  the same picture moved a little, near 0 for a different picture;
* ``flow_mean`` / ``flow_top5`` — DIS optical-flow magnitude (mean, and mean of the top 5 %), computed
  on a ~128 px pyramid level after compensating the global brightness change (so flicker does not fake
  motion) and reported in analysis pixels;
* ``motion_gain`` — median over moving pixels of how far each moved along its previous motion (1 =
  steady, k+1 when k frames were skipped);
* ``warp_error`` — what the flow cannot explain: |frame i warped back - frame i-1|;
* ``luma_mean`` — per frame (plus a 4x4 grid of block means for flicker).

Events are spikes *relative to the clip's own neighbourhood* (a pair against the median of the pairs on
each side), with small absolute floors, so one threshold set works from a 12 fps 160 px card to 1080p
footage: a **cut** is a colour-histogram spike, or a structure break the flow cannot follow (new
content); a **jump** a one-pair spike in flow that continues the previous motion (or in warp error and
difference when the flow breaks) while the content stays; a **freeze** a run of pairs with almost no
change and no flow; a **flicker** a run of frames whose brightness, across most of the picture,
alternates up/down against its neighbours.

Known limits: a jump is only visible where something moves (a skip in a static shot is invisible and
harmless), and sub-pixel skips (< ~1 px at 256 px) are not reported; a single repeated frame is counted
in ``repeated_frames`` but is not a freeze event (frame-rate conversions duplicate frames routinely).

Frame numbers are 0-based indices into the source; an event "at frame i" is the discontinuity between
frames i-1 and i. A freeze spans the frames that repeat their predecessor; a flicker the frames whose
brightness is off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable, Iterator

import numpy as np

from pytest_ltx.media import Clip
from pytest_ltx.stream import Consumer, StreamFrame, StreamInfo, prefetch
from pytest_ltx.worker import cpu_budget

__all__ = [
    "MotionConsumer",
    "MotionEventKind",
    "MotionEvent",
    "MotionParams",
    "MotionResult",
    "analyze",
    "analyze_file",
    "analyze_frames",
]


class MotionEventKind(str, Enum):
    CUT = "cut"
    JUMP = "jump"
    FREEZE = "freeze"
    FLICKER = "flicker"


@dataclass(frozen=True)
class MotionEvent:
    """One discontinuity. ``score`` is the strength of the evidence: histogram distance (cut), flow ratio to
    the neighbours (jump), mean luma difference (freeze), relative brightness swing (flicker)."""

    kind: MotionEventKind
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    score: float

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame + 1

    def describe(self) -> str:
        """``cut at frame 24 (1.00 s)`` / ``freeze at frames 40-45 (1.67-1.88 s, 6 frames)``."""
        k = self.kind.value
        if self.start_frame == self.end_frame and self.kind in (MotionEventKind.CUT, MotionEventKind.JUMP):
            return f"{k} at frame {self.start_frame} ({self.start_s:.2f} s)"
        return (
            f"{k} at frames {self.start_frame}-{self.end_frame} "
            f"({self.start_s:.2f}-{self.end_s:.2f} s, {self.frames} frame{'s' if self.frames != 1 else ''})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "start_s": round(self.start_s, 4),
            "end_s": round(self.end_s, 4),
            "score": round(float(self.score), 4),
        }


@dataclass(frozen=True)
class MotionParams:
    """Detection thresholds. Ratios compare a frame pair with the median of the ``window`` pairs on each
    side (the larger of the two sides), so they adapt to how much the clip moves; the absolute floors only
    keep noise-level signals from forming ratios."""

    window: int = 4
    #: cut: histogram distance spike ratio and floor (0..1)
    cut_ratio: float = 3.0
    cut_min_hist: float = 0.15
    #: cut without a colour change: the 32 px structure thumbnails correlate at most this much, and the
    #: flow-warp error spikes by this ratio
    cut_max_structure: float = 0.5
    cut_warp_ratio: float = 2.0
    #: jump: flow spike ratio; minimum extra mean flow over the neighbours, as a fraction of the analysis
    #: long side (1 px at 256: sub-pixel stutter of a badly compressed clip is not a jump)
    jump_ratio: float = 2.0
    jump_min_flow: float = 0.004
    #: ... and the motion must continue along the previous pair's direction, this many times further
    jump_min_gain: float = 2.0
    #: jump when the flow breaks: warp-error and difference spike ratios, and a floor on the difference
    #: (luma levels)
    jump_warp_ratio: float = 3.0
    jump_diff_ratio: float = 2.0
    jump_min_diff: float = 2.0
    #: freeze: a pair is frozen below this fraction of the clip's median difference (capped at
    #: ``freeze_max_diff``, at least ``freeze_min_diff``; luma levels 0..255) and of its median flow
    #: (at least ``freeze_min_flow`` px)
    freeze_rel: float = 0.1
    freeze_max_diff: float = 1.0
    freeze_min_diff: float = 0.05
    freeze_min_flow: float = 0.05
    #: a freeze needs this many consecutive repeated frames (1 = a single duplicated frame counts)
    min_freeze_frames: int = 2
    #: flicker: relative brightness alternation floor, and times the clip's median alternation
    flicker_min_rel: float = 0.01
    flicker_noise_factor: float = 4.0
    min_flicker_frames: int = 4
    #: dynamic degree: top-5 % flow above this many pixels per 256 px of the short side (VBench uses 6)
    dynamic_threshold: float = 6.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True, eq=False)
class MotionResult:
    """Per-pair series (index k = pair (k, k+1), i.e. the change *into* frame k+1), events and scores."""

    fps: float
    num_frames: int
    analysis_size: tuple[int, int]
    events: tuple[MotionEvent, ...]
    diff: np.ndarray
    content: np.ndarray
    hist_distance: np.ndarray
    flow_mean: np.ndarray
    flow_top5: np.ndarray
    warp_error: np.ndarray
    #: projection of each pair's flow on the previous pair's (1 = steady motion; k+1 at a k-frame jump)
    motion_gain: np.ndarray
    luma_mean: np.ndarray
    #: VBench temporal flickering: mean over pairs of (255 - mean |RGB diff|) / 255 (1 = perfectly steady)
    vbench_flicker: float | None
    #: worst one-second window of the frame-to-frame alternating brightness, relative to mean brightness
    flicker_score: float | None
    #: fraction of pairs whose top-5 % flow exceeds the dynamic threshold (VBench's dynamic degree, per pair)
    dynamic_degree: float | None
    #: frames identical (within the freeze threshold) to their predecessor, in or out of freeze events
    repeated_frames: int
    params: MotionParams = field(default_factory=MotionParams)
    frame_indices: np.ndarray | None = None
    source: str | None = None

    def of_kind(self, kind: MotionEventKind | str) -> tuple[MotionEvent, ...]:
        k = MotionEventKind(kind)
        return tuple(e for e in self.events if e.kind is k)

    @property
    def cuts(self) -> tuple[MotionEvent, ...]:
        return self.of_kind(MotionEventKind.CUT)

    @property
    def jumps(self) -> tuple[MotionEvent, ...]:
        return self.of_kind(MotionEventKind.JUMP)

    @property
    def freezes(self) -> tuple[MotionEvent, ...]:
        return self.of_kind(MotionEventKind.FREEZE)

    @property
    def flickers(self) -> tuple[MotionEvent, ...]:
        return self.of_kind(MotionEventKind.FLICKER)

    @property
    def max_freeze_frames(self) -> int:
        return max((e.frames for e in self.freezes), default=0)

    def scalars(self) -> dict[str, float | int | None]:
        """Flat values for golden baselines (no family prefix)."""

        def r(x: float | None) -> float | None:
            return None if x is None else round(float(x), 6)

        return {
            "cuts": len(self.cuts),
            "jumps": len(self.jumps),
            "freezes": len(self.freezes),
            "flickers": len(self.flickers),
            "max_freeze_frames": self.max_freeze_frames,
            "repeated_frames": self.repeated_frames,
            "flicker_score": r(self.flicker_score),
            "vbench_flicker": r(self.vbench_flicker),
            "dynamic_degree": r(self.dynamic_degree),
            "flow_mean": r(float(np.mean(self.flow_mean)) if len(self.flow_mean) else None),
        }

    def to_dict(self) -> dict[str, Any]:
        def s(a: np.ndarray, nd: int = 4) -> list[float]:
            return [round(float(v), nd) for v in a]

        return {
            "fps": self.fps,
            "frames": self.num_frames,
            "analysis_size": list(self.analysis_size),
            "events": [e.to_dict() for e in self.events],
            "scalars": self.scalars(),
            "series": {
                "pair_frame": [self._orig(k + 1) for k in range(len(self.diff))],
                "diff": s(self.diff),
                "content": s(self.content),
                "hist_distance": s(self.hist_distance),
                "flow_mean": s(self.flow_mean),
                "flow_top5": s(self.flow_top5),
                "warp_error": s(self.warp_error),
                "motion_gain": s(self.motion_gain, 3),
                "luma_mean": s(self.luma_mean, 3),
            },
            "params": self.params.to_dict(),
        }

    def _orig(self, i: int) -> int:
        return int(self.frame_indices[i]) if self.frame_indices is not None else int(i)


# ------------------------------------------------------------------------------------------- signals


_MIN_FLOW_SIDE = 32


class _Signals:
    """Per-pair signals, accumulated one frame at a time (only the previous frame is kept)."""

    def __init__(self, flow_side: int = 128) -> None:
        import cv2

        self._cv2 = cv2
        self._flow_side = flow_side
        self._flow_scale = 0.0  # analysis px per flow px
        self._prev_flow: np.ndarray | None = None
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)  # type: ignore[attr-defined]
        self._prev: dict[str, Any] | None = None
        self._grid: tuple[np.ndarray, np.ndarray] | None = None
        self.size: tuple[int, int] | None = None
        self.cols: dict[str, list[float]] = {
            k: []
            for k in ("diff", "content", "hist", "structure", "flow_mean", "flow_top5", "warp", "rgb_diff", "gain")
        }
        self.luma: list[float] = []
        self.blocks: list[np.ndarray] = []

    def add(self, frame: np.ndarray) -> None:
        cv2 = self._cv2
        if self.size is None:
            self.size = (int(frame.shape[1]), int(frame.shape[0]))
        elif (frame.shape[1], frame.shape[0]) != self.size:
            raise ValueError(f"frame size changed from {self.size} to {frame.shape[1]}x{frame.shape[0]}")
        frame = np.ascontiguousarray(frame)
        g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
        m = float(cv2.mean(g)[0])
        # brightness-normalised value histogram: a global gain (flicker) does not move it, so flicker
        # cannot pass for a new shot
        gn = cv2.convertScaleAbs(g, alpha=128.0 / max(m, 1.0))
        hs = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256]).ravel()
        hv = cv2.calcHist([gn], [0], None, [16], [0, 256]).ravel()
        n = float(g.size)
        gs = g
        # halve until near the flow resolution; DIS needs >= 32 px on the short side (OpenCV 5.0 crashes
        # below that at wide aspect ratios), so tiny or very wide frames are scaled up for the flow instead
        while max(gs.shape) > self._flow_side * 1.5 and min(gs.shape) >= 2 * _MIN_FLOW_SIDE:
            gs = cv2.pyrDown(gs)
        small = gs  # the cheapest copy that is not upscaled
        if min(gs.shape) < _MIN_FLOW_SIDE:
            up = _MIN_FLOW_SIDE / min(gs.shape)
            size = (max(_MIN_FLOW_SIDE, round(gs.shape[1] * up)), max(_MIN_FLOW_SIDE, round(gs.shape[0] * up)))
            gs = cv2.resize(gs, size, interpolation=cv2.INTER_LINEAR)
        if self._flow_scale == 0.0:
            self._flow_scale = g.shape[1] / gs.shape[1]
        # structure thumbnail (32 px, zero-mean, unit norm: insensitive to brightness) and a 4x4 block grid
        h, w = small.shape
        ts = 32 / max(h, w)
        thumb = cv2.resize(small, (max(4, round(w * ts)), max(4, round(h * ts))), interpolation=cv2.INTER_AREA)
        thumb = thumb.astype(np.float32)
        thumb -= float(cv2.mean(thumb)[0])
        thumb /= float(cv2.norm(thumb)) + 1e-6
        blocks = cv2.resize(small, (4, 4), interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
        cur = {
            "rgb": frame, "g": g, "gs": gs, "hsv": hsv, "hs": hs / n, "hv": hv / n, "m": m,
            "thumb": _thumb_parts(thumb),
        }
        self.luma.append(m)
        self.blocks.append(blocks)
        p = self._prev
        if p is not None:
            c = self.cols
            npx = float(g.size)
            c["diff"].append(cv2.norm(g, p["g"], cv2.NORM_L1) / npx)
            c["rgb_diff"].append(cv2.norm(frame, p["rgb"], cv2.NORM_L1) / (3 * npx))
            c["content"].append(cv2.norm(hsv, p["hsv"], cv2.NORM_L1) / (3 * npx))
            c["hist"].append(0.25 * float(np.abs(cur["hs"] - p["hs"]).sum() + np.abs(cur["hv"] - p["hv"]).sum()))
            c["structure"].append(_shift_corr(p["thumb"], cur["thumb"]))
            # flow at the (smaller) flow resolution, after compensating a global brightness change:
            # flicker must not look like motion
            gain = p["m"] / m if m > 1e-3 else 1.0
            gs = cur["gs"]
            gc = cv2.convertScaleAbs(gs, alpha=gain) if abs(gain - 1.0) > 1e-3 else gs
            flow = self._dis.calc(p["gs"], gc, None)
            mag = cv2.magnitude(flow[..., 0], flow[..., 1])
            # motion gain: how far each pixel moved along its previous motion (1 = steady), median over
            # the pixels that moved before. A jump multiplies it by the skipped frames + 1 almost
            # everywhere; a flash or a start adds motion where nothing moved (no vote), a bounce flips
            # it for one object only.
            pf = self._prev_flow
            g_val = 1.0
            if pf is not None and pf.shape == flow.shape:
                n2 = pf[..., 0] * pf[..., 0] + pf[..., 1] * pf[..., 1]
                moving = n2 >= 0.01  # >= 0.1 flow px
                if moving.sum() >= max(4, moving.size // 100):
                    dot = flow[..., 0] * pf[..., 0] + flow[..., 1] * pf[..., 1]
                    g_val = float(np.median(dot[moving] / n2[moving]))
            c["gain"].append(g_val)
            self._prev_flow = flow
            c["flow_mean"].append(float(cv2.mean(mag)[0]) * self._flow_scale)
            k = max(1, mag.size // 20)
            c["flow_top5"].append(float(np.partition(mag.ravel(), mag.size - k)[-k:].mean()) * self._flow_scale)
            if self._grid is None:
                fh, fw = gs.shape[:2]
                self._grid = np.meshgrid(np.arange(fw, dtype=np.float32), np.arange(fh, dtype=np.float32))
            gx, gy = self._grid
            warped = cv2.remap(gc, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
            c["warp"].append(cv2.norm(warped, p["gs"], cv2.NORM_L1) / float(gs.size))
        self._prev = cur

    def array(self, key: str) -> np.ndarray:
        return np.asarray(self.cols[key], np.float64)


_SHIFT = 4  # structure search radius in thumbnail px (1/8 of a 32 px thumbnail)


def _thumb_parts(t: np.ndarray) -> dict[str, np.ndarray]:
    """What :func:`_shift_corr` needs of a thumbnail, computed once per frame (it is used by two pairs)."""
    import cv2

    r = _SHIFT
    pad = lambda x: cv2.copyMakeBorder(x, r, r, r, r, cv2.BORDER_CONSTANT, value=0)  # noqa: E731
    ones = np.ones_like(t)
    return {"t": t, "t2": t * t, "pad": pad(t), "pad2": pad(t * t), "pad1": pad(ones), "ones": ones}


def _shift_corr(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Best normalised correlation of two zero-mean thumbnails over shifts of up to ``_SHIFT`` px, each
    shift scored on the overlapping parts only: the same content moved (a jump) stays near 1, a new
    picture (a cut) falls to ~0. Three tiny ``matchTemplate`` calls, no Python loop."""
    import cv2

    num = cv2.matchTemplate(a["pad"], b["t"], cv2.TM_CCORR)
    na = cv2.matchTemplate(a["pad2"], b["ones"], cv2.TM_CCORR)
    nb = cv2.matchTemplate(a["pad1"], b["t2"], cv2.TM_CCORR)
    den = np.sqrt(np.maximum(na * nb, 0.0))
    ok = den > 1e-9
    if not ok.any():
        return 1.0
    return float((num[ok] / den[ok]).max())


# ----------------------------------------------------------------------------------------- detection


def _neighbour_ref(x: np.ndarray, w: int) -> np.ndarray:
    """For each pair, the larger of the medians of the ``w`` pairs before and after it (one side at the
    clip's ends)."""
    n = len(x)
    if n == 0:
        return np.zeros(0)
    pad = np.full(w, np.nan)
    xp = np.concatenate([pad, np.asarray(x, np.float64), pad])
    win = np.lib.stride_tricks.sliding_window_view(xp, w)  # win[j] = xp[j : j + w]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows at the ends
        left = np.nanmedian(win[0:n], axis=1)  # x[i-w : i]
        right = np.nanmedian(win[w + 1 : w + 1 + n], axis=1)  # x[i+1 : i+1+w]
    return np.fmax(np.nan_to_num(left, nan=0.0), np.nan_to_num(right, nan=0.0))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive index ranges where ``mask`` is true."""
    out = []
    i, n = 0, len(mask)
    while i < n:
        if mask[i]:
            j = i
            while j + 1 < n and mask[j + 1]:
                j += 1
            out.append((i, j))
            i = j + 1
        else:
            i += 1
    return out


def _detect(sig: _Signals, fps: float, p: MotionParams, frame_indices: np.ndarray | None) -> dict[str, Any]:
    diff, hist = sig.array("diff"), sig.array("hist")
    flow, warp = sig.array("flow_mean"), sig.array("warp")
    luma = np.asarray(sig.luma, np.float64)
    npairs = len(diff)
    long_side = max(sig.size) if sig.size else 256
    eps = 1e-6

    def orig(i: int) -> int:
        return int(frame_indices[i]) if frame_indices is not None else int(i)

    def ev(kind: MotionEventKind, a: int, b: int, score: float) -> MotionEvent:
        return MotionEvent(kind, orig(a), orig(b), orig(a) / fps, orig(b) / fps, float(score))

    events: list[MotionEvent] = []
    # pair k is the change into frame k + 1
    hist_ref = _neighbour_ref(hist, p.window)
    flow_ref = _neighbour_ref(flow, p.window)
    warp_ref = _neighbour_ref(warp, p.window)
    diff_ref = _neighbour_ref(diff, p.window)
    struct_loss = 1.0 - sig.array("structure")
    struct_ref = _neighbour_ref(struct_loss, p.window)
    new_colours = (hist >= p.cut_min_hist) & (hist >= p.cut_ratio * np.maximum(hist_ref, eps))
    # same colours, different picture: the structure thumbnail decorrelates and the flow cannot follow
    new_layout = (
        (struct_loss >= 1.0 - p.cut_max_structure)
        & (struct_loss >= p.cut_ratio * np.maximum(struct_ref, eps))
        & (warp >= p.cut_warp_ratio * np.maximum(warp_ref, eps))
    )
    is_cut = new_colours | new_layout
    gain = sig.array("gain")
    flow_jump = (
        (flow - flow_ref >= p.jump_min_flow * long_side)
        & (flow >= p.jump_ratio * np.maximum(flow_ref, eps))
        & (gain >= p.jump_min_gain)
    )
    broken = (warp >= p.jump_warp_ratio * np.maximum(warp_ref, eps)) & (
        diff >= p.jump_diff_ratio * np.maximum(diff_ref, eps)
    ) & (diff >= p.jump_min_diff)
    is_jump = ~is_cut & (flow_jump | broken)
    for k in np.nonzero(is_cut)[0]:
        events.append(ev(MotionEventKind.CUT, k + 1, k + 1, max(hist[k], struct_loss[k])))
    for k in np.nonzero(is_jump)[0]:
        score = flow[k] / max(flow_ref[k], eps) if flow_jump[k] else warp[k] / max(warp_ref[k], eps)
        events.append(ev(MotionEventKind.JUMP, k + 1, k + 1, min(score, 1e3)))

    # freezes: runs of pairs far below the clip's typical change, in pixels and in flow. The codec does
    # not repeat a frame bit-exactly (the first repeat still refines the picture a little), so the
    # bound is relative to the clip's own motion, not "identical"
    repeated = 0
    if npairs:
        thr = min(p.freeze_max_diff, max(p.freeze_min_diff, p.freeze_rel * float(np.median(diff))))
        thr_flow = max(p.freeze_min_flow, p.freeze_rel * float(np.median(flow)))
        frozen = (diff <= thr) & (flow <= thr_flow)
        repeated = int(frozen.sum())
        for a, b in _runs(frozen):
            if b - a + 1 >= p.min_freeze_frames:
                events.append(ev(MotionEventKind.FREEZE, a + 1, b + 1, float(diff[a : b + 1].mean())))

    # flicker: each frame's brightness against the mean of its neighbours, alternating in sign. Taken
    # per block of a 4x4 grid and reduced by the median, so only a change across most of the picture
    # counts: a flashing lamp or a bright object passing by moves one block, not the median.
    flicker_score = None
    if len(luma) >= 3:
        blk = np.asarray(sig.blocks, np.float64)
        resid = np.zeros(len(luma))
        rb = (blk[1:-1] - 0.5 * (blk[:-2] + blk[2:])) / np.maximum(blk[1:-1], 1.0)
        resid[1:-1] = np.median(rb, axis=1)
        rel = np.abs(resid)
        # a cut or jump into frame k+1 makes a +/- pair of residuals on frames k, k+1: not brightness
        for k in np.nonzero(is_cut | is_jump)[0]:
            rel[k : k + 2] = 0.0
        noise = float(np.median(rel[1:-1]))
        thr = max(p.flicker_min_rel, min(p.flicker_noise_factor * noise, 3 * p.flicker_min_rel))
        above = rel >= thr
        sign = np.sign(resid)
        for a, b in _runs(above):
            # split each run where the sign fails to alternate
            start = a
            for i in range(a + 1, b + 2):
                if i > b or sign[i] == sign[i - 1]:
                    seg = (start, i - 1)
                    # trim weak ends (a frame next to the flicker sees half the swing)
                    lo, hi = seg
                    strong = np.median(rel[lo : hi + 1])
                    while lo < hi and rel[lo] < 0.5 * strong:
                        lo += 1
                    while hi > lo and rel[hi] < 0.5 * strong:
                        hi -= 1
                    if hi - lo + 1 >= p.min_flicker_frames:
                        events.append(ev(MotionEventKind.FLICKER, lo, hi, float(np.median(rel[lo : hi + 1]))))
                    start = i
        win = min(len(rel), max(1, int(round(fps))))
        flicker_score = float(np.convolve(rel, np.ones(win) / win, mode="valid").max())
    events.sort(key=lambda e: (e.start_frame, e.kind.value))
    return {"events": tuple(events), "repeated": repeated, "flicker_score": flicker_score}


# ------------------------------------------------------------------------------------------ entries


def analyze_frames(
    frames: Iterable[np.ndarray],
    *,
    fps: float,
    params: MotionParams | None = None,
    frame_indices: np.ndarray | None = None,
    source: str | None = None,
    flow_side: int = 128,
) -> MotionResult:
    """Analyse frames already at analysis resolution, one at a time (the streaming core). Optical flow
    runs on a pyramid level near ``flow_side`` px (4x cheaper than at 256 px; magnitudes are reported in
    analysis pixels)."""
    import cv2

    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    p = params or MotionParams()
    prev_threads = cv2.getNumThreads()
    cv2.setNumThreads(min(2, cpu_budget()))
    try:
        sig = _Signals(flow_side)
        n = 0
        for f in frames:
            sig.add(f)
            n += 1
    finally:
        cv2.setNumThreads(prev_threads)
    return _result(sig, n, fps, p, frame_indices, source)


def _result(sig: "_Signals", n: int, fps: float, p: MotionParams, frame_indices: np.ndarray | None,
            source: str | None) -> MotionResult:
    det = _detect(sig, fps, p, frame_indices)
    top5 = sig.array("flow_top5")
    rgb = sig.array("rgb_diff")
    size = sig.size or (0, 0)
    dyn_thr = p.dynamic_threshold * min(size) / 256.0 if min(size) else 0.0
    ro = lambda a: (a.setflags(write=False), a)[1]  # noqa: E731
    return MotionResult(
        fps=float(fps),
        num_frames=n,
        analysis_size=(int(size[0]), int(size[1])),
        events=det["events"],
        diff=ro(sig.array("diff")),
        content=ro(sig.array("content")),
        hist_distance=ro(sig.array("hist")),
        flow_mean=ro(sig.array("flow_mean")),
        flow_top5=ro(top5),
        warp_error=ro(sig.array("warp")),
        motion_gain=ro(sig.array("gain")),
        luma_mean=ro(np.asarray(sig.luma, np.float64)),
        vbench_flicker=float(np.mean((255.0 - rgb) / 255.0)) if len(rgb) else None,
        flicker_score=det["flicker_score"],
        dynamic_degree=float(np.mean(top5 > dyn_thr)) if len(top5) else None,
        repeated_frames=det["repeated"],
        params=p,
        frame_indices=frame_indices,
        source=source,
    )


class MotionConsumer(Consumer):
    """Motion continuity in the streaming pass (:mod:`pytest_ltx.stream`): every frame at
    ``analysis_side`` px; keeps two frames and a few numbers per frame."""

    name = "motion"

    def __init__(self, *, analysis_side: int = 256, flow_side: int = 128, params: MotionParams | None = None) -> None:
        self.frame_side = analysis_side
        self.flow_side = flow_side
        self.params = params or MotionParams()

    def config(self) -> dict[str, Any]:
        return {"analysis_side": self.frame_side, "flow_side": self.flow_side, "params": self.params.to_dict()}

    def begin(self, info: StreamInfo) -> None:
        if info.fps <= 0:
            raise ValueError(f"fps must be positive, got {info.fps}")
        self._sig = _Signals(self.flow_side)
        self._n = 0
        self._threads = min(2, cpu_budget())  # once per clip: it reads the CPU affinity

    def feed(self, frame: StreamFrame) -> None:
        import cv2

        prev = cv2.getNumThreads()
        cv2.setNumThreads(self._threads)
        try:
            self._sig.add(frame.rgb(self.frame_side))
        finally:
            cv2.setNumThreads(prev)
        self._n += 1

    def finish(self, info: StreamInfo) -> MotionResult:
        return _result(self._sig, self._n, info.fps, self.params, info.frame_indices, info.source)


def _downscaled(frames: np.ndarray, side: int) -> Iterator[np.ndarray]:
    import cv2

    h, w = frames.shape[1:3]
    s = side / max(h, w)
    if s >= 1:
        yield from frames
        return
    size = (max(2, round(w * s)), max(2, round(h * s)))
    for f in frames:
        yield cv2.resize(f, size, interpolation=cv2.INTER_AREA)


def analyze(
    clip: Clip, *, analysis_side: int = 256, flow_side: int = 128, params: MotionParams | None = None
) -> MotionResult:
    """Motion continuity of an in-memory clip, analysed at ``analysis_side`` px on the long side."""
    return analyze_frames(
        prefetch(_downscaled(clip.frames, analysis_side), depth=4, name="motion-decode"),
        fps=clip.fps,
        params=params,
        frame_indices=clip.frame_indices,
        source=clip.source,
        flow_side=flow_side,
    )


def analyze_file(
    path: os.PathLike[str] | str,
    *,
    analysis_side: int = 256,
    flow_side: int = 128,
    params: MotionParams | None = None,
) -> MotionResult:
    """Motion continuity of a video file, streamed: frames are decoded and downscaled one at a time, so a
    long 1080p clip never sits in memory at full resolution."""
    from pytest_ltx.media import iter_frames, probe

    info = probe(path)
    return analyze_frames(
        prefetch((f for _, f in iter_frames(path, max_side=analysis_side)), depth=4, name="motion-decode"),
        fps=info.fps,
        params=params,
        source=str(path),
        flow_side=flow_side,
    )
