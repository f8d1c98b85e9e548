"""Audio-visual sync: how late (or early) the sound is against the picture, or why that can't be told.

Two event trains, matched:

* **audio onsets** — from a numpy STFT (window ≈ 5–8 ms, hop ≤ 64 samples: ≤ 2 ms resolution, no
  librosa/numba JIT per process) in ~24 log-spaced bands: the *onset function* is how far (dB) the
  most-risen sixth of the bands stands above its own mean over the last 30 ms, so a band-limited burst
  or a low thud stands out of loud room tone; each onset is timed at the *leading edge* of its rise
  (where it first reaches 70 % of its peak), which a slow attack or a long sound barely moves.
* **visual events** — at a small analysis resolution (96 px): a *return* score (frame i differs from
  both neighbours while they resemble each other: flashes, and impacts of objects too fast for optical
  flow), kept only where the change into frame i and the change out of it overlap locally; the
  *per-pixel velocity change along the motion* (Farneback flow): starts, stops and direction flips;
  and a *halt* score (motion energy that arrives at frame i and does not go on: a landing, an object
  coming to rest, a pop-in), judged locally (change maps at an object's scale) so another object moving
  elsewhere does not mask it. Frame differences are compensated for the camera's motion (the median of
  the dense flow), so a pan over a textured background does not change every pixel and hide the
  events. Steady motion and camera pans score zero. The candidates are the peaks
  of every cue that is event-like at all; an arrival (halt) takes over the cues of the two frames
  before it, so one landing is one candidate at the frame it lands on.

Every offset τ in the search window is scored by how much audio onset weight lands within 0.4 frame of
a visual candidate once shifted back by τ; silent visual events (a lift, a restart) cost nothing. The
offset is the median onset−event difference of the pairs matched at the best τ. The pipeline's constant
lag is *calibrated out* by a zero-offset synthetic run per (sample rate, fps, window, hop, method),
cached in-process — no hand-typed constant. Confidence needs the best τ to score twice any other a
frame or more away, most onsets to be matched, and at least three pairs; periodic content (the
envelopes repeat) and near-equal alternatives are ``ambiguous``, not a confident wrong number. A
smoothed-envelope cross-correlation is computed too (``peaks``, the periodicity test) and serves as an
independent second estimate: when its peak lands within 3 ms of the match's offset, stands clear of its
other peaks and is strong (r ≥ 0.5), the agreement stands in for the match's margin and coverage and
settles a one-frame-off rival (events that show on two adjacent frames), never a rival further away.
When the offset cannot be measured, ``offset_ms`` is None and ``status`` says why.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_ltx.stream import Consumer, StreamFrame, StreamInfo

if TYPE_CHECKING:
    from pytest_ltx.media import Clip

__all__ = [
    "AVSyncStatus",
    "AVSyncResult",
    "analyze",
    "audio_envelope",
    "visual_envelope",
    "calibration_lag_ms",
    "sample_rate_issue",
]

#: the correlation peak and the event-train match agree on the offset within this (ms): corroboration
CORROBORATE_MS = 3.0
#: ... and the correlation itself is strong (the project's cards: 0.59–0.81; foreign sound: far below)
CORROBORATE_MIN_R = 0.5
#: envelope grid rate (Hz): 1 ms bins; the parabola refines below that
GRID_HZ = 1000
COMMON_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, 192000)
#: AAC adds up to ~2 frames of priming/padding (2 × 1024 samples) to the decoded duration
AAC_PADDING_SAMPLES = 2048


class AVSyncStatus(str, Enum):
    MEASURED = "measured"
    NO_AUDIO = "no_audio"  # no audio track (or zero samples)
    SILENT = "silent"  # a track of (near) digital silence
    NO_VISUAL_EVENTS = "no_visual_events"  # nothing happens in the picture to sync to
    NO_AUDIO_EVENTS = "no_audio_events"  # audio without transients (steady tone, noise)
    AMBIGUOUS = "ambiguous"  # periodic content: several similar correlation peaks
    LOW_CONFIDENCE = "low_confidence"  # a peak, but too weak to trust

    @property
    def measurable(self) -> bool:
        return self is AVSyncStatus.MEASURED


@dataclass(frozen=True)
class AVSyncResult:
    """One A/V-sync measurement. ``offset_ms`` > 0 means the audio is late; None = not measurable."""

    status: AVSyncStatus
    offset_ms: float | None
    confidence: float
    max_lag_ms: float
    #: the best correlation peak even when not trusted (ambiguous / low confidence), for diagnosis only
    candidate_offset_ms: float | None = None
    #: strongest correlation peaks as (offset_ms, normalised correlation), best first
    peaks: tuple[tuple[float, float], ...] = ()
    peak_correlation: float | None = None
    audio_events: int = 0
    visual_events: int = 0
    audio_event_times_s: tuple[float, ...] = ()
    visual_event_times_s: tuple[float, ...] = ()
    video_duration_s: float = 0.0
    audio_duration_s: float | None = None
    #: audio − video duration (s); AAC priming/padding makes a few tens of ms normal
    duration_mismatch_s: float | None = None
    #: the part of the mismatch attributable to AAC padding at this sample rate (s)
    duration_padding_allowance_s: float = 0.0
    sample_rate: int | None = None
    #: None when the rate is fine, else why it is suspicious (too low for onsets, unusual value)
    sample_rate_issue: str | None = None
    #: constant lag of the envelope pipeline that was subtracted (ms)
    calibration_lag_ms: float = 0.0
    message: str = ""
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def measurable(self) -> bool:
        return self.offset_ms is not None

    def to_dict(self) -> dict[str, Any]:
        def r(x: float | None, nd: int = 2) -> float | None:
            return None if x is None or not math.isfinite(x) else round(float(x), nd)

        return {
            "status": self.status.value,
            "offset_ms": r(self.offset_ms),
            "confidence": round(float(self.confidence), 3),
            "candidate_offset_ms": r(self.candidate_offset_ms),
            "peak_correlation": r(self.peak_correlation, 3),
            "peaks": [[r(o), r(c, 3)] for o, c in self.peaks],
            "max_lag_ms": self.max_lag_ms,
            "audio_events": self.audio_events,
            "visual_events": self.visual_events,
            "audio_event_times_s": [round(t, 3) for t in self.audio_event_times_s],
            "visual_event_times_s": [round(t, 3) for t in self.visual_event_times_s],
            "video_duration_s": r(self.video_duration_s, 4),
            "audio_duration_s": r(self.audio_duration_s, 4),
            "duration_mismatch_s": r(self.duration_mismatch_s, 4),
            "duration_padding_allowance_s": r(self.duration_padding_allowance_s, 4),
            "sample_rate": self.sample_rate,
            "sample_rate_issue": self.sample_rate_issue,
            "calibration_lag_ms": r(self.calibration_lag_ms),
            "message": self.message,
            "config": dict(self.config),
        }

    def scalars(self) -> dict[str, float | int | None]:
        return {
            "offset_ms": None if self.offset_ms is None else round(self.offset_ms, 2),
            "confidence": round(float(self.confidence), 3),
            "audio_events": self.audio_events,
            "visual_events": self.visual_events,
            "duration_mismatch_s": None if self.duration_mismatch_s is None else round(self.duration_mismatch_s, 4),
        }


def sample_rate_issue(sr: int | None) -> str | None:
    """Why a sample rate is suspicious for sync measurement, or None when it is an ordinary rate."""
    if sr is None:
        return None
    if sr < 8000:
        return f"{sr} Hz is below 8 kHz: too low for reliable onsets"
    if sr not in COMMON_RATES:
        return f"{sr} Hz is not a standard audio rate (resampling bug?)"
    return None


# --------------------------------------------------------------------------------------------- audio


#: the highest rate the audio envelope is computed at; higher rates are resampled down to it first
ANALYSIS_MAX_HZ = 48_000


def analysis_audio(mono: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    """``(mono, sr)`` at most :data:`ANALYSIS_MAX_HZ`: a polyphase (anti-aliased) resample, linear in
    the length, for higher rates; unchanged otherwise."""
    if sr <= ANALYSIS_MAX_HZ:
        return mono, sr
    from scipy.signal import resample_poly

    g = math.gcd(ANALYSIS_MAX_HZ, sr)
    out = resample_poly(np.asarray(mono, np.float64), ANALYSIS_MAX_HZ // g, sr // g)
    return out.astype(np.float32), ANALYSIS_MAX_HZ


def stft_params(sr: int) -> tuple[int, int]:
    """(n_fft, hop) for a sample rate: window ≈ 4–8 ms (a power of two), hop = window/4, at most 128."""
    n_fft = 1 << max(6, int(math.floor(math.log2(0.008 * sr))))
    return n_fft, max(1, min(128, n_fft // 4))


def _audio_bands(mono: np.ndarray, sr: int, n_fft: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """``(times_s, band magnitudes [frames, bands])``: the mean STFT magnitude in ~24 log-spaced bands;
    row k describes the Hann window centred at ``times_s[k]``."""
    y = np.asarray(mono, np.float64)
    pad = n_fft // 2
    y = np.pad(y, (pad, pad))
    n_frames = 1 + (len(y) - n_fft) // hop
    if n_frames < 2:
        return np.zeros(0), np.zeros((0, 1))
    win = np.hanning(n_fft + 1)[:-1]
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = np.geomspace(max(60.0, sr / n_fft), sr / 2, 25)
    band = np.clip(np.searchsorted(edges, freqs) - 1, 0, len(edges) - 2)
    valid = freqs >= edges[0]
    nb = len(edges) - 1
    counts = np.bincount(band[valid], minlength=nb)
    # [bins, bands] averaging matrix: each band is the mean magnitude of its bins
    avg = np.zeros((len(freqs), nb))
    avg[np.flatnonzero(valid), band[valid]] = 1.0
    avg = avg[:, counts > 0] / counts[counts > 0]
    bands = np.empty((n_frames, avg.shape[1]))
    step = 4096  # frames per block: memory stays bounded for long clips
    for s0 in range(0, n_frames, step):
        k = np.arange(s0, min(n_frames, s0 + step))
        idx = np.arange(n_fft)[None, :] + hop * k[:, None]
        bands[k] = np.abs(np.fft.rfft(y[idx] * win, axis=1)) @ avg
    return np.arange(n_frames) * hop / sr, bands


def _flux(bands: np.ndarray) -> np.ndarray:
    ref = np.percentile(bands, 99.5) if bands.size else 0.0
    if ref <= 0:
        return np.zeros(len(bands))
    comp = np.log1p(bands * (100.0 / ref))
    return np.maximum(0.0, np.diff(comp, axis=0, prepend=comp[:1])).mean(axis=1)


def audio_envelope(mono: np.ndarray, sr: int, *, n_fft: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Onset envelope: mean over ~24 log-spaced bands of the rectified rise in log-compressed magnitude.

    Returns ``(times_s, values)``; value k describes the window centred at ``times_s[k]``. The
    compression ``log1p(γ·|X|)`` with γ relative to the clip's level keeps a codec's quiet pre-echo
    (AAC smears a transient's energy a few ms ahead of it) from looking like the onset itself.
    """
    times, bands = _audio_bands(mono, sr, n_fft, hop)
    if times.size == 0:
        return times, np.zeros(0)
    return times, _flux(bands)


#: onset detection: each band's level against its mean over the preceding ONSET_REF_MS ...
ONSET_REF_MS = 30.0
#: ... averaged over this share of the bands that rose most (a band-limited burst or a low thud
#: rises in a few bands only; the mean over all of them drowns it in the room tone's flicker)
ONSET_TOP_BANDS = 1 / 6


def onset_function(bands: np.ndarray, sr: int, hop: int) -> np.ndarray:
    """Per frame: how far (dB) the most-risen bands stand above their own recent past. Unlike the
    frame-to-frame flux, the reference is a 30 ms mean, so a steady noise floor's flicker stays low
    while a sound 20 dB over it stands out, however band-limited (measured on the event generator's
    tuning clips: room-tone peaks reach 7 robust sigmas, 98 % of event onsets 11 or more; the flux
    separates them at 5.8 vs 4.6)."""
    if bands.size == 0:
        return np.zeros(len(bands))
    level = 10.0 * np.log10(bands**2 + 1e-10)
    w = max(2, int(ONSET_REF_MS / 1000.0 * sr / hop))
    c = np.vstack([np.zeros((1, level.shape[1])), np.cumsum(level, axis=0)])
    t = np.arange(len(level))
    a = np.maximum(0, t - w)
    b = np.maximum(a + 1, t - 1)  # the frame just before is skipped: it may already hold the attack
    ref = (c[b] - c[a]) / (b - a)[:, None]
    rise = np.maximum(0.0, level - ref)
    rise[0] = 0.0
    k = max(1, int(round(ONSET_TOP_BANDS * level.shape[1])))
    return np.sort(rise, axis=1)[:, -k:].mean(axis=1)


# -------------------------------------------------------------------------------------------- visual

VISUAL_METHOD = "gated-return+lagrangian-flow-accel+local-halt/pan-compensated"
#: how the offset is found (recorded in the result's config and keyed into the calibration cache)
SYNC_METHOD = "onset-train-match/band-rise-onsets/arrival-absorbs"
ANALYSIS_SIDE = 96


def _gray_small(frames: np.ndarray, side: int) -> np.ndarray:
    import cv2

    t, h, w, _ = frames.shape
    s = min(1.0, side / max(h, w))
    nw, nh = max(8, round(w * s)), max(8, round(h * s))
    out = np.empty((t, nh, nw), np.uint8)
    for i in range(t):
        g = cv2.cvtColor(np.ascontiguousarray(frames[i]), cv2.COLOR_RGB2GRAY)
        out[i] = g if (nw, nh) == (w, h) else cv2.resize(g, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


#: gray-level change (after a σ=1 blur) that counts as "changed" for the return gate
RETURN_MASK_TAU = 6.0
#: scale (pixels at the analysis size) of the local overlap of the change masks
RETURN_GATE_SIGMA = 4.0
#: local overlap of the change masks below which a per-pixel return is dropped (full weight 0.3 above)
RETURN_GATE_IOU = 0.45
#: flow acceleration below this (px/frame at the analysis size) is flow noise, not an event
ACCEL_TAU = 0.5
#: scale (px at the analysis size) of the local change maps the halt cue compares: about an object's
#: size, so its own leading and trailing edges average out while a far-away mover does not mask it
HALT_SIGMA = 14.0
#: a camera moving less than this (median flow, px/frame at the analysis size) is static
PAN_MIN_PX = 0.05


def visual_envelope(frames: np.ndarray, *, side: int = ANALYSIS_SIDE) -> dict[str, np.ndarray]:
    """Per-frame visual event strength, value i at frame i's time (``side``: analysis resolution).

    ``return`` (gray levels): where frame i differs from both neighbours while they resemble each other
    (``|i−(i−1)| + |(i+1)−i| − 2·|(i+1)−(i−1)|``, rectified per pixel): a flash, and an impact — a
    bouncing object is back where it was one frame before, even when it moves faster than optical
    flow can follow. Steady motion (fast or slow) and camera pans cancel out.
    ``flow_accel`` (pixels/frame): mean per-pixel velocity change along the motion (Farneback flow of
    (i−1, i) vs the flow of (i, i+1) sampled where each pixel went), above a noise threshold: starts,
    stops and direction flips of trackable motion.
    ``halt`` (gray levels): the abrupt drop of the *local* frame difference from (i−1, i) to (i, i+1)
    (``E(i) − 2·E(i+1)`` on change maps blurred at :data:`HALT_SIGMA`: gradual deceleration does not
    count, and another object still moving elsewhere does not mask it), scaled by how much frame i
    differs from frame i−2 (a one-frame flash ends by undoing its change: no halt).
    All frame differences are compensated for the camera's motion (the median dense flow): a pan over a
    textured background no longer changes every pixel and hides the objects' halts.
    """
    return visual_envelope_gray(_gray_small(frames, side))


def visual_envelope_gray(g: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`visual_envelope` of frames already gray ``[T, h, w]`` uint8 at the analysis size."""
    import cv2

    t = g.shape[0]
    ret = np.zeros(t)
    accel = np.zeros(t)
    if t < 3:
        return {"return": ret, "flow_accel": accel, "halt": np.zeros(t)}
    gb = np.stack([cv2.GaussianBlur(x, (0, 0), 1.0) for x in g.astype(np.float32)])
    # dense flow of every consecutive pair (frame k -> k+1): the flow cue below, and its median — the
    # camera's motion, when a textured background moves — for the motion-compensated differences
    flows = [cv2.calcOpticalFlowFarneback(g[k], g[k + 1], None, 0.5, 3, 9, 3, 5, 1.1, 0) for k in range(t - 1)]
    d1, d2, back2 = _frame_differences(gb, np.array([np.median(f.reshape(-1, 2), axis=0) for f in flows]))
    rp = np.maximum(0.0, d1[:-1] + d1[1:] - 2.0 * d2)  # per-pixel return of frames 1..t-2
    # A fast object passing through (faster than its own size per frame) is a per-pixel "return" too:
    # each pixel it covers at frame i is background at i-1 and i+1. Unlike a real return (a flash,
    # a bounce), the region changing into frame i is not the one changing out of it: keep the return
    # only where, locally, the two change masks overlap (their local intersection over union).
    m1, m2 = d1[:-1] > RETURN_MASK_TAU, d1[1:] > RETURN_MASK_TAU
    for k in range(t - 2):
        if not rp[k].any():
            continue
        inter = cv2.GaussianBlur((m1[k] & m2[k]).astype(np.float32), (0, 0), RETURN_GATE_SIGMA)
        union = cv2.GaussianBlur((m1[k] | m2[k]).astype(np.float32), (0, 0), RETURN_GATE_SIGMA)
        gate = np.clip((inter / (union + 1e-6) - RETURN_GATE_IOU) / 0.3, 0.0, 1.0)
        rp[k] *= gate
    ret[1:-1] = rp.reshape(t - 2, -1).mean(axis=1)
    # a halt (or an appearance): motion energy arriving at frame i that does not continue after it,
    # judged locally (change maps blurred at HALT_SIGMA px), so an object coming to rest halts even while
    # another one still moves elsewhere in the frame: abruptly (the change out of frame i under half the
    # change into it: a ball slowing down on its way up is no halt), and not undoing the change before
    # it (the end of a one-frame flash is no halt)
    halt = np.zeros(t)
    loc = [cv2.GaussianBlur(d, (0, 0), HALT_SIGMA) for d in d1]  # loc[k]: change into frame k+1, locally
    for i in range(2, t - 1):
        arrive, leave = loc[i - 1], loc[i]
        undo = cv2.GaussianBlur(back2[i - 2], (0, 0), HALT_SIGMA)
        hm = np.maximum(0.0, arrive - 2.0 * leave) * np.clip(undo / (arrive + 1e-6), 0.0, 1.0)
        halt[i] = float(hm.mean())

    h, w = g.shape[1:]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    prev = flows[0]
    for i in range(1, t - 1):
        nxt = flows[i]
        warped = cv2.remap(nxt, xx + prev[..., 0], yy + prev[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        acc = np.linalg.norm(warped - prev, axis=-1)
        accel[i] = np.maximum(0.0, acc - ACCEL_TAU).mean()
        prev = nxt
    return {"return": ret, "flow_accel": accel, "halt": halt}


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    import cv2

    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def _frame_differences(gb: np.ndarray, shifts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(d1, d2, d2)``: |frame k+1 − frame k| and |frame k+2 − frame k| per pixel (blurred gray frames
    ``gb``), motion-compensated: ``shifts[k]`` is the camera's motion from frame k to k+1 (the median of
    the dense flow, px); where it moves, each pixel's difference is the smaller of the plain one and the
    one after shifting frame k by the camera's motion. A panning texture then changes (almost) nowhere,
    while an object that moves against the background still does; a static camera (median flow under
    :data:`PAN_MIN_PX`) is left alone. Taking the smaller of the two keeps a bad shift estimate from
    ever adding change."""
    d1 = np.abs(np.diff(gb, axis=0))
    d2 = np.abs(gb[2:] - gb[:-2])
    t = gb.shape[0]
    if shifts.size == 0 or np.abs(shifts).max() < PAN_MIN_PX:
        return d1, d2, d2
    sh = shifts
    c1 = np.stack([np.abs(gb[k + 1] - _shift(gb[k], *sh[k])) for k in range(t - 1)])
    c2 = np.stack([np.abs(gb[k + 2] - _shift(gb[k], *(sh[k] + sh[k + 1]))) for k in range(t - 2)])
    return np.minimum(d1, c1), np.minimum(d2, c2), np.minimum(d2, c2)


#: below these peak levels a visual component is codec noise, not an event
FLOORS = {"return": 0.3, "flow_accel": 0.004, "halt": 0.3}
#: a single cue alone shows clear visual events when it peaks at this many times its floor
CLEAR_CUE_FLOORS = 3.0


def _peakiness_weight(x: np.ndarray, floor: float) -> float:
    """0 for a component that is noise (low, or peaks barely above its median), up to 1 when spiky."""
    peak = float(x.max()) if x.size else 0.0
    if peak <= floor:
        return 0.0
    ratio = peak / (float(np.median(x)) + 0.05 * peak)
    return float(np.clip((ratio - 2.0) / 4.0, 0.0, 1.0))


def _combine_visual(env: dict[str, np.ndarray]) -> np.ndarray:
    """Each component scaled to its own peak, weighted by how event-like (spiky) it is, then summed."""
    first = next(iter(env.values()))
    out = np.zeros_like(first)
    for key, x in env.items():
        w = _peakiness_weight(x, FLOORS[key])
        if w > 0:
            out += w * x / float(x.max())
    return out


# ------------------------------------------------------------------------------- events and peaks


def _event_indices(x: np.ndarray, min_sep: int, rel: float = 0.2, k_mad: float = 8.0) -> np.ndarray:
    """Local maxima above both ``rel`` × max and median + ``k_mad`` robust sigmas, ≥ ``min_sep`` apart."""
    if x.size < 3 or not np.any(x > 0):
        return np.zeros(0, int)
    med = float(np.median(x))
    mad = 1.4826 * float(np.median(np.abs(x - med)))
    thr = max(rel * float(x.max()), med + k_mad * mad, 1e-12)
    cand = [i for i in range(len(x)) if x[i] >= thr and x[i] >= x[max(0, i - 1)] and x[i] >= x[min(len(x) - 1, i + 1)]]
    cand.sort(key=lambda i: -x[i])
    kept: list[int] = []
    for i in cand:
        if all(abs(i - j) >= min_sep for j in kept):
            kept.append(i)
    return np.array(sorted(kept), int)


def _gauss_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    r = int(math.ceil(4 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return np.convolve(x, k / k.sum(), mode="same")


def _place_impulses(times_s: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """Impulses on the 1 kHz grid, each split linearly between its two nearest bins (sub-ms placement)."""
    g = np.zeros(n)
    pos = times_s * GRID_HZ
    lo = np.floor(pos).astype(int)
    frac = pos - lo
    for p, f, w in zip(lo, frac, weights):
        if 0 <= p < n:
            g[p] += w * (1 - f)
        if 0 <= p + 1 < n:
            g[p + 1] += w * f
    return g


def _parabolic(y: np.ndarray, i: int) -> float:
    if 0 < i < len(y) - 1:
        a, b, c = y[i - 1], y[i], y[i + 1]
        den = a - 2 * b + c
        if den < 0:
            return float(i + 0.5 * (a - c) / den)
    return float(i)


@dataclass(frozen=True)
class _Corr:
    lags_ms: np.ndarray
    r: np.ndarray
    best_ms: float
    best_r: float
    peaks: list[tuple[float, float]]


def _correlate(audio_grid: np.ndarray, visual_grid: np.ndarray, max_lag: int, exclude_ms: float) -> _Corr:
    """Normalised cross-correlation r(τ) = Σ a(t+τ)·v(t) over τ ∈ [−max_lag, max_lag] ms (audio late > 0)."""
    a = audio_grid - audio_grid.mean()
    v = visual_grid - visual_grid.mean()
    na, nv = np.linalg.norm(a), np.linalg.norm(v)
    n = len(a) + len(v)
    nfft = 1 << (n - 1).bit_length()
    full = np.fft.irfft(np.fft.rfft(a, nfft) * np.conj(np.fft.rfft(v, nfft)), nfft)
    lags = np.arange(-max_lag, max_lag + 1)
    r = full[lags % nfft] / (na * nv + 1e-12)
    i = int(np.argmax(r))
    best = _parabolic(r, i) - max_lag
    # the main lobe: where r stays above half the peak around it; other peaks are local maxima outside
    lo = i
    while lo > 0 and r[lo - 1] > 0.5 * r[i]:
        lo -= 1
    hi = i
    while hi < len(r) - 1 and r[hi + 1] > 0.5 * r[i]:
        hi += 1
    loc = [j for j in range(1, len(r) - 1) if r[j] >= r[j - 1] and r[j] > r[j + 1]]
    if r[0] > r[1]:  # a rising edge at the window border is a peak beyond it: count it
        loc.append(0)
    if r[-1] > r[-2]:
        loc.append(len(r) - 1)
    loc = [j for j in loc if not (lo <= j <= hi) and abs(j - i) > exclude_ms]
    loc.sort(key=lambda j: -r[j])
    peaks: list[tuple[float, float]] = [(best, float(r[i]))]
    for j in loc:
        if all(abs((j - max_lag) - p) > exclude_ms for p, _ in peaks):
            peaks.append((float(j - max_lag), float(r[j])))
        if len(peaks) >= 5:
            break
    return _Corr(lags.astype(float), r, best, float(r[i]), peaks)


def periodicity(grid: np.ndarray, min_lag: int, max_lag: int) -> tuple[float, float | None]:
    """Strongest repeat of an envelope: (normalised autocorrelation, its lag in ms) for lags in range.

    Irregular events give well under 0.5; a metronome gives ~1. Periodic events let the
    cross-correlation lock onto a whole period off, so a strong repeat makes the result ambiguous.
    """
    x = grid - grid.mean()
    n = len(x)
    if n < 2 * min_lag or not np.any(x):
        return 0.0, None
    nfft = 1 << (2 * n - 1).bit_length()
    ac = np.fft.irfft(np.abs(np.fft.rfft(x, nfft)) ** 2, nfft)[: min(max_lag, n - 1) + 1]
    ac = ac / (ac[0] + 1e-12)
    # normalise for the shrinking overlap so a repeat far out is not understated
    ac = ac * n / np.maximum(n - np.arange(len(ac)), 1)
    seg = ac[min_lag:]
    if seg.size < 3:
        return 0.0, None
    loc = [j for j in range(1, len(seg) - 1) if seg[j] >= seg[j - 1] and seg[j] > seg[j + 1]]
    if not loc:
        return 0.0, None
    j = max(loc, key=lambda k: seg[k])
    return float(seg[j]), float(j + min_lag)


#: share of audio events landing on a visual event: at or below MATCH_NONE no confidence, full at MATCH_FULL
MATCH_NONE = 0.5
MATCH_FULL = 0.8
#: matched audio events needed for full confidence
MATCH_MIN_EVENTS = 3
#: a best peak this close to the window edge (ms) is a peak beyond it
EDGE_MS = 5.0


#: a visual event candidate counts at full weight from this share of the clip's strong candidates' level
VISUAL_WEIGHT_REF = 0.5
#: an arrival (halt) absorbs the other cues this many frames before it: a fast object coming to rest
#: trips the return and flow cues on its way in (motion blur, acceleration), the contact is the arrival
ARRIVAL_ABSORB_FRAMES = 2
#: a cue's peaks count as candidates from this share of its highest peak
VISUAL_PEAK_REL = 0.1
#: half width of the matching kernel, in frames: well under one frame, so a one-frame slip is another offset
MATCH_HALF_WIDTH_FRAMES = 0.4
#: the audio onset is where the onset function first reaches this share of its peak (leading edge; lower
#: levels catch more of an AAC pre-echo: 0.5 put onsets 0.5 ms early through mp4 at 44.1/48 kHz, 0.7 0.25 ms)
ONSET_LEVEL = 0.7


def _onset_times(at: np.ndarray, aenv: np.ndarray, idx: np.ndarray, max_back: int) -> np.ndarray:
    """Leading-edge time of each onset-envelope peak ``idx``: where the rise first crossed
    :data:`ONSET_LEVEL` × the peak, linearly interpolated between envelope frames. The peak itself comes
    later the slower the attack (a 6 ms ramp, a pitch drop); the leading edge barely moves."""
    out = np.empty(len(idx))
    for k, i in enumerate(idx):
        lvl = ONSET_LEVEL * aenv[i]
        j = int(i)
        while j > 0 and i - j < max_back and aenv[j - 1] > lvl:
            j -= 1
        if j == 0 or aenv[j - 1] > lvl or aenv[j] <= aenv[j - 1]:
            out[k] = at[j]
        else:
            f = (lvl - aenv[j - 1]) / (aenv[j] - aenv[j - 1])
            out[k] = at[j - 1] + f * (at[j] - at[j - 1])
    return out


def _visual_events(env: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Visual event candidates ``(frame indices, weights 0–1)``: the peaks of every cue that is event-like
    at all (a weak landing next to a strong flash still counts), each weighted by its height against that
    cue's typical peak. An arrival (a ``halt`` peak) takes over the candidates of the
    :data:`ARRIVAL_ABSORB_FRAMES` frames before it: one physical landing is one candidate, at the frame
    it lands on, not a cluster."""
    t = len(next(iter(env.values())))
    weight = np.zeros(t)
    halt_peaks = np.zeros(0, int)
    for key, x in env.items():
        cue = _peakiness_weight(x, FLOORS[key])
        if cue <= 0:
            continue
        pk = _event_indices(x, 1, rel=VISUAL_PEAK_REL, k_mad=3.0)
        if key == "halt":  # a halt under the floor is codec or tracking noise, and must not absorb a real event
            pk = pk[x[pk] > FLOORS[key]]
        if pk.size == 0:
            continue
        ref = VISUAL_WEIGHT_REF * float(np.percentile(x[pk], 90))
        weight[pk] = np.maximum(weight[pk], cue * np.clip(x[pk] / max(ref, 1e-12), 0.0, 1.0))
        if key == "halt":
            halt_peaks = pk
    for h in halt_peaks:
        lo = max(0, h - ARRIVAL_ABSORB_FRAMES)
        weight[h] = max(weight[h], float(weight[lo:h].max(initial=0.0)))
        weight[lo:h] = 0.0
    cand = np.flatnonzero(weight > 0)
    return cand, weight[cand]


def _clear_visual_events(env: dict[str, np.ndarray], combined: np.ndarray) -> np.ndarray:
    """Frames with a clear visual event (what ``no_visual_events`` and the count are about): the peaks of
    the combined envelope — or, when it has none, those of any one cue that is fully event-like (spiky)
    and stands well above its noise floor (a landing's halt on a textured pan, where the return cue is
    noisy everywhere and flattens the combined envelope's peaks)."""
    ev = set(_event_indices(combined, 2, rel=0.3, k_mad=3.0).tolist()) if np.any(combined > 0) else set()
    if ev:
        return np.array(sorted(ev), int)
    for key, x in env.items():
        if _peakiness_weight(x, FLOORS[key]) >= 1.0 and float(x.max()) >= CLEAR_CUE_FLOORS * FLOORS[key]:
            ev.update(_event_indices(x, 2, rel=0.3, k_mad=3.0).tolist())
    return np.array(sorted(ev), int)


@dataclass(frozen=True)
class _Match:
    """Best alignment of the audio onset train with the visual event train."""

    best_ms: float  # refined: median of the matched pairs' differences (uncalibrated)
    score: float  # matched audio weight at the best offset
    second_ms: float | None  # best offset at least a frame away from it
    second_score: float
    coverage: float  # share of the (in-picture) audio weight matched at the best offset
    matched: int  # audio events matched
    spread_ms: float  # robust spread (MAD × 1.4826) of the matched pairs' differences
    partner_weight: float  # mean weight of the matched visual candidates (a noisy cue's peaks weigh less)


def _match_trains(a_t: np.ndarray, a_w: np.ndarray, v_t: np.ndarray, v_w: np.ndarray, max_lag: int,
                  frame_ms: float, vdur_s: float) -> _Match | None:
    """Score every offset τ on a 1 ms grid by how much audio weight lands on a visual event once shifted
    back by τ (a triangular kernel of :data:`MATCH_HALF_WIDTH_FRAMES` frames, each audio event counted
    once, at its best visual partner). Unlike one correlation of smoothed envelopes, silent visual events
    (a lift, a restart) cost nothing and a long sound's envelope shape does not pull the estimate."""
    if a_t.size == 0 or v_t.size == 0:
        return None
    half = MATCH_HALF_WIDTH_FRAMES * frame_ms
    taus = np.arange(-max_lag, max_lag + 1, dtype=float)
    a_ms, v_ms = a_t * 1000.0, v_t * 1000.0
    score = np.zeros(taus.size)
    total = np.zeros(taus.size)
    for ai, wi in zip(a_ms, a_w):
        d = (ai - taus)[:, None] - v_ms[None, :]  # [tau, visual]
        k = np.clip(1.0 - np.abs(d) / half, 0.0, None) * v_w[None, :]
        score += wi * k.max(axis=1)
        shifted = ai - taus
        total += wi * ((shifted >= -half) & (shifted <= vdur_s * 1000.0 + half))
    i = int(np.argmax(score))
    s1 = float(score[i])
    if s1 <= 0:
        return None
    # the best offset outside this one's neighbourhood (a frame or more away)
    far = np.abs(taus - taus[i]) >= max(0.75 * frame_ms, 2 * half)
    j = int(np.argmax(np.where(far, score, -1.0)))
    s2 = float(score[j]) if far[j] else 0.0
    # refine with the matched pairs themselves: onset minus visual event time
    diffs, ws, vws = [], [], []
    for ai, wi in zip(a_ms, a_w):
        d = ai - taus[i] - v_ms
        jj = int(np.argmin(np.abs(d)))
        if abs(d[jj]) < half:
            diffs.append(ai - v_ms[jj])
            vws.append(float(v_w[jj]))
            ws.append(wi * min(1.0, 2.0 * float(v_w[jj])))  # a faint partner counts partly
    diffs_a = np.asarray(diffs)
    best = float(np.median(diffs_a))
    spread = 1.4826 * float(np.median(np.abs(diffs_a - best))) if diffs_a.size > 1 else 0.0
    return _Match(best_ms=best, score=s1, second_ms=float(taus[j]) if far[j] else None, second_score=s2,
                  coverage=float(min(1.0, sum(ws) / max(total[i], 1e-12))), matched=len(diffs), spread_ms=spread,
                  partner_weight=float(np.mean(vws)))


# -------------------------------------------------------------------------------------- calibration

_CAL_LOCK = threading.Lock()
_CAL_CACHE: dict[tuple, tuple[float, float]] = {}
SMOOTH_MS = 8.0


#: audio onsets: onset-function peaks above this share of the highest and this many robust sigmas above
#: its median (room tone alone peaks at up to ~7, see :func:`onset_function`)
AUDIO_PEAK_REL = 0.1
AUDIO_PEAK_K_MAD = 8.0


def _audio_events(at: np.ndarray, odf: np.ndarray, sr: int, hop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Audio onsets from :func:`onset_function`: ``(peak indices, leading-edge times s, weights 0–1)``."""
    idx = _event_indices(odf, max(1, int(0.05 * sr / hop)), rel=AUDIO_PEAK_REL, k_mad=AUDIO_PEAK_K_MAD)
    if idx.size == 0:
        return idx, np.zeros(0), np.zeros(0)
    times = _onset_times(at, odf, idx, max(2, int(0.03 * sr / hop)))
    strength = odf[idx]
    ref = 0.5 * float(np.percentile(strength, 90))
    return idx, times, np.clip(strength / max(ref, 1e-12), 0.0, 1.0)


def _offsets_raw(mono: np.ndarray, sr: int, gray: np.ndarray, fps: float, n_fft: int, hop: int,
                 max_lag: int) -> tuple[_Corr, _Match | None, dict]:
    """The uncalibrated correlation and event-train match of one clip's audio and picture (gray frames
    at the analysis size; shared by analyze and calibration)."""
    at, bands = _audio_bands(mono, sr, n_fft, hop)
    av_ = _flux(bands) if at.size else np.zeros(0)
    odf = onset_function(bands, sr, hop) if at.size else np.zeros(0)
    venv = visual_envelope_gray(gray)
    v = _combine_visual(venv)
    dur = max(len(mono) / sr, gray.shape[0] / fps)
    n = int(math.ceil(dur * GRID_HZ)) + 1
    grid_t = np.arange(n) / GRID_HZ
    a_grid = _gauss_smooth(np.interp(grid_t, at, av_, left=0.0, right=0.0), SMOOTH_MS) if at.size else np.zeros(n)
    v_grid = _gauss_smooth(_place_impulses(np.arange(len(v)) / fps, v, n), SMOOTH_MS)
    exclude = max(40.0, 0.6 * 1000.0 / fps)
    corr = _correlate(a_grid, v_grid, max_lag, exclude)
    a_idx, a_t, a_w = _audio_events(at, odf, sr, hop) if at.size else (np.zeros(0, int), np.zeros(0), np.zeros(0))
    v_idx, v_w = _visual_events(venv)
    match = _match_trains(a_t, a_w, v_idx / fps, v_w, max_lag, 1000.0 / fps, gray.shape[0] / fps)
    return corr, match, {"audio_t": at, "audio_env": av_, "visual": v, "visual_parts": venv,
                         "audio_grid": a_grid, "visual_grid": v_grid, "audio_idx": a_idx, "audio_onsets_s": a_t,
                         "visual_idx": v_idx}


def _calibration_clip(fps: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """A 6 s zero-offset clip: a square flashes and the audio clicks on irregular frames."""
    from pytest_ltx.testcard.audio import synthesize

    t_frames = int(round(6.0 * fps))
    rng = np.random.default_rng(1234)
    lo = max(2, int(0.25 * fps))
    gaps = rng.integers(lo, max(lo + 2, int(0.7 * fps)), size=64)
    ev = np.cumsum(gaps) + int(0.3 * fps)
    ev = ev[ev < t_frames - 3]
    frames = np.full((t_frames, 64, 64, 3), 40, np.uint8)
    for k, i in enumerate(ev):
        y0, x0 = 8 + (k * 13) % 32, 8 + (k * 29) % 32
        frames[i, y0 : y0 + 20, x0 : x0 + 20] = 230
    audio = synthesize(ev / fps, sample_rate=sr, duration_s=t_frames / fps, kind="click", channels=1, seed=7)
    return frames, audio[0]


def _calibration(sr: int, fps: float, n_fft: int, hop: int) -> tuple[float, float]:
    """(event-match lag, correlation lag) in ms for truly synchronous events; cached per configuration."""
    key = (int(sr), round(float(fps), 3), n_fft, hop, VISUAL_METHOD, SYNC_METHOD, ANALYSIS_SIDE, SMOOTH_MS, ONSET_LEVEL)
    with _CAL_LOCK:
        if key not in _CAL_CACHE:
            frames, mono = _calibration_clip(fps, sr)
            corr, match, _ = _offsets_raw(mono, sr, _gray_small(frames, ANALYSIS_SIDE), fps, n_fft, hop, 200)
            _CAL_CACHE[key] = (match.best_ms if match is not None else corr.best_ms, corr.best_ms)
        return _CAL_CACHE[key]


def calibration_lag_ms(sr: int, fps: float, n_fft: int | None = None, hop: int | None = None) -> float:
    """Constant lag (ms) the pipeline reports for truly synchronous events; cached per configuration."""
    if n_fft is None or hop is None:
        n_fft, hop = stft_params(sr)
    return _calibration(sr, fps, n_fft, hop)[0]


# ------------------------------------------------------------------------------------------ analyze

SILENCE_DBFS = -60.0
#: an envelope repeating this strongly (normalised autocorrelation) makes the offset ambiguous
PERIODIC_THRESHOLD = 0.8


def analyze(
    clip: "Clip",
    *,
    max_lag_ms: float = 500.0,
    min_confidence: float = 0.2,
    ambiguity_ratio: float = 0.8,
) -> AVSyncResult:
    """Measure the audio offset of ``clip`` against its picture (positive = audio late).

    ``max_lag_ms`` bounds the search; ``min_confidence`` is the floor below which the status is
    ``low_confidence`` (offset None); a second correlation peak above ``ambiguity_ratio`` × the best
    one makes the result ``ambiguous`` (offset None).
    """
    mono = clip.mono() if clip.has_audio else None
    return analyze_signals(mono, clip.sample_rate if clip.has_audio else None, _gray_small(clip.frames, ANALYSIS_SIDE),
                           clip.fps, max_lag_ms=max_lag_ms, min_confidence=min_confidence,
                           ambiguity_ratio=ambiguity_ratio)


def analyze_signals(
    mono: np.ndarray | None,
    sr: int | None,
    gray: np.ndarray,
    fps: float,
    *,
    max_lag_ms: float = 500.0,
    min_confidence: float = 0.2,
    ambiguity_ratio: float = 0.8,
) -> AVSyncResult:
    """:func:`analyze` on what it needs of a clip: its mono audio (None: no track), and every frame gray
    ``[T, h, w]`` at :data:`ANALYSIS_SIDE` px (what the streaming consumer keeps: 5 KB a frame)."""
    max_lag = int(round(max_lag_ms))
    vdur = gray.shape[0] / fps
    base: dict[str, Any] = {"max_lag_ms": float(max_lag), "video_duration_s": vdur}
    config = {"visual_method": VISUAL_METHOD, "sync_method": SYNC_METHOD, "analysis_side": ANALYSIS_SIDE,
              "smooth_ms": SMOOTH_MS}
    if mono is None or sr is None or mono.size == 0:
        return AVSyncResult(status=AVSyncStatus.NO_AUDIO, offset_ms=None, confidence=0.0, config=config,
                            message="clip has no audio track", **base)
    adur = len(mono) / sr
    pad_allow = AAC_PADDING_SAMPLES / sr
    base.update(audio_duration_s=adur, duration_mismatch_s=adur - vdur, duration_padding_allowance_s=pad_allow,
                sample_rate=int(sr), sample_rate_issue=sample_rate_issue(int(sr)))
    # above 48 kHz nothing an onset needs is gained, and the STFT's cost grows with rate² (window and
    # frame count both scale with it: a 4 MHz track took minutes): analyse a band-limited 48 kHz copy
    mono, sr = analysis_audio(mono, int(sr))
    n_fft, hop = stft_params(int(sr))
    config.update(n_fft=n_fft, hop=hop, analysis_rate=int(sr))
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    if peak <= 10 ** (SILENCE_DBFS / 20):
        lvl = "-inf" if peak == 0 else f"{20 * math.log10(peak):.0f}"
        return AVSyncResult(status=AVSyncStatus.SILENT, offset_ms=None, confidence=0.0, config=config,
                            message=f"audio track is silent (peak {lvl} dBFS)", **base)

    cal, corr_cal = _calibration(int(sr), fps, n_fft, hop)
    corr, match, parts = _offsets_raw(mono, int(sr), gray, fps, n_fft, hop, max_lag)
    aenv, v = parts["audio_env"], parts["visual"]
    a_ev, a_on = parts["audio_idx"], parts["audio_onsets_s"]
    v_ev = _clear_visual_events(parts["visual_parts"], v)
    base.update(audio_events=int(len(a_ev)), visual_events=int(len(v_ev)),
                audio_event_times_s=tuple(float(t) for t in a_on),
                visual_event_times_s=tuple(float(i / fps) for i in v_ev), calibration_lag_ms=cal)
    if not np.any(v > 0) or len(v_ev) == 0:
        return AVSyncResult(status=AVSyncStatus.NO_VISUAL_EVENTS, offset_ms=None, confidence=0.0, config=config,
                            message="no visual events (no flash, cut, impact or start/stop of motion)", **base)
    if len(a_ev) == 0 or not np.any(aenv > 0):
        return AVSyncResult(status=AVSyncStatus.NO_AUDIO_EVENTS, offset_ms=None, confidence=0.0, config=config,
                            message="no audio events (no transients above the noise)", **base)

    peaks = tuple((p - corr_cal, r) for p, r in corr.peaks)
    common: dict[str, Any] = dict(peaks=peaks, peak_correlation=corr.best_r, config=config, **base)
    if match is None:
        return AVSyncResult(status=AVSyncStatus.LOW_CONFIDENCE, offset_ms=None, confidence=0.0,
                            message="no audio event lands on a visual event at any offset in the search window",
                            **common)
    best = match.best_ms - cal
    r1, r2 = match.score, match.second_score
    distinct = (r1 - r2) / r1 if r1 > 0 else 0.0
    # full confidence needs the best alignment to score at least twice as high as any other (a frame
    # or more away) ...
    margin = min(1.0, distinct / 0.5)
    # ... unless the envelope cross-correlation, an independent estimate with 1 ms resolution, puts its
    # peak on the same offset (within CORROBORATE_MS) and that peak stands clear of its others: two
    # methods agreeing on one offset is the margin the match cannot show when each event shows on two
    # adjacent frames (a one-frame-off alignment then matches almost as well). It stands in for the
    # margin only: the coverage, pair-count and partner conditions below still apply.
    corroborated = False
    if corr.peaks and corr.best_r > 0 and abs((corr.best_ms - corr_cal) - best) <= CORROBORATE_MS:
        r_other = max((r for _, r in corr.peaks[1:]), default=0.0)
        corr_margin = min(1.0, (1.0 - r_other / corr.best_r) / 0.5)
        # (whether or not the match's own margin is lower: a match that already stands clear is no less
        # corroborated — it was, before issue 13's second pass, which cost it the coverage waiver)
        if corr_margin > 0 and corr.best_r >= CORROBORATE_MIN_R:
            margin, corroborated = max(margin, corr_margin), True
    confidence = margin
    # ... most sounds to land on a visual event (a chance alignment of a few events, e.g. the true
    # offset lying outside the search window, matches only some of them) — or, corroborated, the whole
    # envelopes to correlate strongly (r ≥ CORROBORATE_MIN_R: chance alignments of foreign or
    # out-of-window sound stay far below it), which also counts the events the match left unpaired ...
    coverage = float(np.clip((match.coverage - MATCH_NONE) / (MATCH_FULL - MATCH_NONE), 0.0, 1.0))
    confidence *= 1.0 if corroborated else coverage
    # ... and at least MATCH_MIN_EVENTS events agreeing: one or two pairs line up by chance
    confidence *= min(1.0, match.matched / MATCH_MIN_EVENTS)
    # ... and the visual partners to be clear events, not the peaks of a cue that is barely event-like
    # (a textured pan leaves only the return cue, which fires a frame before a landing)
    confidence *= match.partner_weight
    at_edge = abs(match.best_ms) >= max_lag - EDGE_MS
    if at_edge:  # the alignment continues beyond the window: the true offset is probably outside it
        confidence = 0.0
    config.update(corroborated_by_correlation=corroborated)
    config.update(matched_audio_events=round(match.coverage, 3), matched_events=match.matched,
                  match_score=round(r1, 3), second_score=round(r2, 3),
                  second_offset_ms=None if match.second_ms is None else round(match.second_ms - cal, 1),
                  match_spread_ms=round(match.spread_ms, 2))
    common.update(confidence=confidence, candidate_offset_ms=best)
    if at_edge:
        return AVSyncResult(status=AVSyncStatus.LOW_CONFIDENCE, offset_ms=None,
                            message=(f"best alignment {best:+.0f} ms sits at the edge of the ±{max_lag} ms search "
                                     "window: the offset is probably larger than the window"), **common)
    per_a, lag_a = periodicity(parts["audio_grid"], int(1000 * 2.5 / fps), 2 * max_lag)
    per_v, lag_v = periodicity(parts["visual_grid"], int(1000 * 2.5 / fps), 2 * max_lag)
    per, per_lag = max((per_a, lag_a), (per_v, lag_v), key=lambda x: x[0])
    common["config"] = dict(config, periodicity=round(per, 3), period_ms=per_lag,
                            periodicity_audio=round(per_a, 3), periodicity_visual=round(per_v, 3))
    if per >= PERIODIC_THRESHOLD and per_lag is not None:
        return AVSyncResult(status=AVSyncStatus.AMBIGUOUS, offset_ms=None,
                            message=(f"ambiguous: the events repeat every {per_lag:.0f} ms (periodicity {per:.2f}), "
                                     f"so offsets a period apart fit equally well (best {best:+.0f} ms)"),
                            **common)
    # corroboration settles only the one-frame-off rival; a rival further away is periodic-like content
    adjacent = match.second_ms is not None and abs(match.second_ms - match.best_ms) <= 1.5 * 1000.0 / fps
    if r1 > 0 and r2 >= ambiguity_ratio * r1 and match.second_ms is not None and not (corroborated and adjacent):
        return AVSyncResult(status=AVSyncStatus.AMBIGUOUS, offset_ms=None,
                            message=(f"ambiguous: two offsets fit the events about equally well ({best:+.0f} ms, "
                                     f"score {r1:.2f}; {match.second_ms - cal:+.0f} ms, score {r2:.2f}); "
                                     "periodic content?"),
                            **common)
    if confidence < min_confidence:
        return AVSyncResult(status=AVSyncStatus.LOW_CONFIDENCE, offset_ms=None,
                            message=f"best alignment {best:+.0f} ms is too weak to trust (confidence {confidence:.2f})",
                            **common)
    late = "late" if best >= 0 else "early"
    return AVSyncResult(status=AVSyncStatus.MEASURED, offset_ms=best,
                        message=(f"audio {abs(best):.0f} ms {late} (confidence {confidence:.2f}; "
                                 f"{match.matched} events agree within {match.spread_ms:.1f} ms)"), **common)


class AVSyncConsumer(Consumer):
    """A/V sync in the streaming pass: keeps every frame gray at :data:`ANALYSIS_SIDE` px (5 KB each) and
    the audio track (a few MB for 20 s), and measures at the end."""

    name = "av_sync"
    frame_side = ANALYSIS_SIDE
    wants_audio = True

    def __init__(self, *, max_lag_ms: float = 500.0, min_confidence: float = 0.2, ambiguity_ratio: float = 0.8) -> None:
        self.options = {"max_lag_ms": max_lag_ms, "min_confidence": min_confidence, "ambiguity_ratio": ambiguity_ratio}

    def config(self) -> dict[str, Any]:
        return {**self.options, "visual_method": VISUAL_METHOD, "sync_method": SYNC_METHOD,
                "analysis_side": ANALYSIS_SIDE, "smooth_ms": SMOOTH_MS}

    def begin(self, info: StreamInfo) -> None:
        self._gray: list[np.ndarray] = []
        self._audio: list[np.ndarray] = []
        self._sr: int | None = None

    def feed(self, frame: StreamFrame) -> None:
        import cv2

        g = cv2.cvtColor(np.ascontiguousarray(frame.rgb(ANALYSIS_SIDE)), cv2.COLOR_RGB2GRAY)
        if self._gray and g.shape != self._gray[0].shape:
            raise ValueError(f"frame size changed at frame {frame.index}")
        self._gray.append(g)

    def feed_audio(self, chunk: np.ndarray, sample_rate: int) -> None:
        self._sr = int(sample_rate)
        self._audio.append(chunk.mean(axis=0).astype(np.float32, copy=False))

    def finish(self, info: StreamInfo) -> AVSyncResult:
        gray = np.stack(self._gray) if self._gray else np.zeros((0, 8, 8), np.uint8)
        mono = np.concatenate(self._audio) if self._audio else None
        self._gray, self._audio = [], []
        return analyze_signals(mono, self._sr, gray, info.fps, **self.options)
