"""Audio quality control of a clip's soundtrack: level, peaks, damage, and whether it plays at the right speed.

LTX-2 generates the soundtrack with the picture; a broken vocoder, a resampling bug or a mix error shows up
here, not in the picture metrics. Measured on the decoded samples (float, full scale = 1.0):

* **integrated loudness** (LUFS) and **loudness range** (LU) after ITU-R BS.1770-4 / EBU R128 (Tech 3342),
  with ``pyloudnorm`` (K-weighting, 400 ms gated blocks; LRA from 3 s blocks, so it needs ≥ 3 s);
* **true peak** (dBTP): the sample peak of the signal 4× oversampled (BS.1770-4 Annex 2), which catches
  inter-sample overs that a sample peak misses;
* **clipping**: runs of ≥ 3 consecutive samples pinned at full scale (|x| ≥ 0.999), with their times;
* **silence** (quiet stretches ≥ ``min_silence_s`` whose 20 ms RMS stays below ``silence_dbfs``) and
  **drop-outs** (the signal falls to digital zero for ≥ 5 ms in the middle of sound: a lost packet or
  a gap in a concatenated vocoder output);
* **DC offset** (mean of each channel);
* **rate / tempo sanity**: a track whose samples were made at one rate but labelled with another plays
  too slow or too fast (48 kHz samples labelled 32 kHz last 1.5× as long and sound a fifth lower). The
  audio duration is compared with the picture's, and the ratio is matched to the standard rate pairs
  that would explain it; the long-term spectrum's bandwidth says up to which frequency there is content (an upsampled
  16 kHz vocoder output stops at 8 kHz);
* a **fingerprint**: a 32-band log-mel spectrum (dB) of a 0.5 s window around each keyframe, kept in the
  golden baseline so a changed soundtrack is caught like a changed picture.

Heavy imports (pyloudnorm, scipy) happen inside the functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from pytest_ltx.stream import Consumer

if TYPE_CHECKING:
    from pytest_ltx.media import Clip

__all__ = [
    "AudioSegment",
    "AudioResult",
    "analyze",
    "analyze_samples",
    "true_peak_dbtp",
    "clipping_runs",
    "quiet_segments",
    "dropouts",
    "bandwidth_hz",
    "rate_explanation",
    "log_mel_fingerprint",
    "fingerprint_similarity",
    "FINGERPRINT_ARRAY",
]

STANDARD_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)
CLIP_LEVEL = 0.999
SILENCE_DBFS = -60.0
#: a digital zero is at most this (|x|): lossy codecs leave a little noise in a gap
DROPOUT_LEVEL = 1e-4
DROPOUT_MIN_S = 0.005
#: the audio fingerprint's name among the baseline arrays (its suffix selects the spectral comparison)
FINGERPRINT_ARRAY = "log_mel"
N_MELS = 32
FP_WINDOW_S = 0.5


@dataclass(frozen=True)
class AudioSegment:
    """A stretch of the track: [start_s, end_s) in seconds, with what was found there."""

    kind: str  # "silence" | "dropout" | "clipping"
    start_s: float
    end_s: float
    level_dbfs: float | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def describe(self) -> str:
        d = self.duration_s
        span = f"{d * 1000:.0f} ms" if d < 1 else f"{d:.2f} s"
        return f"{self.kind} {self.start_s:.3f}–{self.end_s:.3f} s ({span})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start_s": round(self.start_s, 4), "end_s": round(self.end_s, 4),
                "duration_s": round(self.duration_s, 4),
                "level_dbfs": None if self.level_dbfs is None else round(self.level_dbfs, 1)}


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


@dataclass(frozen=True)
class AudioResult:
    """The soundtrack's QC facts; ``present`` False (and everything else None/empty) without a track."""

    present: bool
    sample_rate: int | None = None
    channels: int = 0
    duration_s: float | None = None
    video_duration_s: float = 0.0
    integrated_lufs: float | None = None
    loudness_range_lu: float | None = None
    true_peak_dbtp: float | None = None
    sample_peak_dbfs: float | None = None
    rms_dbfs: float | None = None
    dc_offset: float | None = None
    clipped_samples: int = 0
    clipping: tuple[AudioSegment, ...] = ()
    silences: tuple[AudioSegment, ...] = ()
    dropouts: tuple[AudioSegment, ...] = ()
    #: audio duration / video duration (None without a track or picture)
    duration_ratio: float | None = None
    #: the highest frequency with content: where the long-term spectrum falls 40 dB below its strong part
    bandwidth_hz: float | None = None
    #: when the duration ratio is off: the rate the samples probably have, and why
    likely_rate: int | None = None
    rate_note: str | None = None
    #: keyframe frames the fingerprint windows are centred on, and the fingerprint itself [K, N_MELS] dB
    fingerprint_frames: tuple[int, ...] = ()
    fingerprint: np.ndarray | None = field(default=None, repr=False, compare=False)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "present": self.present, "sample_rate": self.sample_rate, "channels": self.channels,
            "duration_s": _r(self.duration_s, 4), "video_duration_s": _r(self.video_duration_s, 4),
            "integrated_lufs": _r(self.integrated_lufs), "loudness_range_lu": _r(self.loudness_range_lu),
            "true_peak_dbtp": _r(self.true_peak_dbtp), "sample_peak_dbfs": _r(self.sample_peak_dbfs),
            "rms_dbfs": _r(self.rms_dbfs), "dc_offset": _r(self.dc_offset, 5),
            "clipped_samples": self.clipped_samples,
            "clipping": [s.to_dict() for s in self.clipping],
            "silences": [s.to_dict() for s in self.silences],
            "dropouts": [s.to_dict() for s in self.dropouts],
            "duration_ratio": _r(self.duration_ratio, 4), "bandwidth_hz": _r(self.bandwidth_hz, 0),
            "likely_rate": self.likely_rate, "rate_note": self.rate_note,
            "fingerprint_frames": list(self.fingerprint_frames), "config": dict(self.config),
        }

    def scalars(self) -> dict[str, float | int | None]:
        return {
            "present": int(self.present),
            "integrated_lufs": _r(self.integrated_lufs),
            "loudness_range_lu": _r(self.loudness_range_lu),
            "true_peak_dbtp": _r(self.true_peak_dbtp),
            "clipped_samples": self.clipped_samples,
            "dropouts": len(self.dropouts),
            "silence_s": round(sum(s.duration_s for s in self.silences), 3),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        if self.fingerprint is None or not len(self.fingerprint):
            return {}
        return {FINGERPRINT_ARRAY: self.fingerprint.astype(np.float16)}


# ------------------------------------------------------------------------------------------- pieces


def _db(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else -math.inf


def true_peak_dbtp(audio: np.ndarray, oversample: int = 4) -> float:
    """Max true peak over channels (dBTP): the peak of the signal oversampled ``oversample``× (polyphase)."""
    from scipy.signal import resample_poly

    x = np.atleast_2d(np.asarray(audio, np.float64))
    peak = 0.0
    for ch in x:
        if ch.size:
            peak = max(peak, float(np.max(np.abs(resample_poly(ch, oversample, 1)))), float(np.max(np.abs(ch))))
    return _db(peak)


def loudness_range_lu(data: np.ndarray, sr: int) -> float | None:
    """EBU Tech 3342 loudness range of ``data`` [N, C]: 3 s K-weighted blocks every 0.1 s, absolute gate
    −70 LUFS, relative gate −20 LU, then the 95th − 10th percentile (LU).

    Computed from pyloudnorm's blockwise loudness *without* the 1.5 s of silence its ``loudness_range``
    appends (which, on a 4 s clip, turns a steady tone into 2.4 LU of "range").
    """
    import pyloudnorm

    meter = pyloudnorm.Meter(sr, block_size=3.0, overlap=1.0 - 0.1 / 3.0)
    meter.integrated_loudness(data)
    blocks = np.asarray(getattr(meter, "blockwise_loudness", None) or [], np.float64)
    blocks = blocks[np.isfinite(blocks) & (blocks >= -70.0)]
    if blocks.size == 0:
        return None
    gate = 10 * np.log10(np.mean(10 ** (blocks / 10))) - 20.0
    blocks = blocks[blocks >= gate]
    if blocks.size == 0:
        return None
    return float(np.percentile(blocks, 95) - np.percentile(blocks, 10))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where ``mask`` is True."""
    if not mask.size:
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def clipping_runs(audio: np.ndarray, sr: int, *, level: float = CLIP_LEVEL, min_run: int = 3
                  ) -> tuple[int, list[AudioSegment]]:
    """(samples at full scale, runs of ≥ ``min_run`` consecutive full-scale samples on any channel)."""
    x = np.atleast_2d(np.asarray(audio))
    hot = np.abs(x) >= level
    runs = [(s, e) for s, e in _runs(hot.any(axis=0)) if e - s >= min_run]
    return int(hot.sum()), [AudioSegment("clipping", s / sr, e / sr, 0.0) for s, e in runs]


def _frame_rms_db(mono: np.ndarray, sr: int, win_s: float) -> tuple[np.ndarray, int]:
    hop = max(1, int(round(win_s * sr)))
    n = len(mono) // hop
    if n == 0:
        return np.zeros(0), hop
    blocks = mono[: n * hop].reshape(n, hop).astype(np.float64)
    rms = np.sqrt(np.mean(blocks * blocks, axis=1))
    with np.errstate(divide="ignore"):
        return 20 * np.log10(np.maximum(rms, 1e-12)), hop


def quiet_segments(mono: np.ndarray, sr: int, *, threshold_dbfs: float = SILENCE_DBFS, min_s: float = 0.5
                   ) -> list[AudioSegment]:
    """Stretches of ≥ ``min_s`` whose 20 ms RMS stays below ``threshold_dbfs``."""
    db, hop = _frame_rms_db(mono, sr, 0.02)
    out = []
    for s, e in _runs(db < threshold_dbfs):
        if (e - s) * hop / sr >= min_s:
            lvl = float(np.max(db[s:e]))
            out.append(AudioSegment("silence", s * hop / sr, e * hop / sr, lvl))
    return out


def dropouts(audio: np.ndarray, sr: int, *, level: float = DROPOUT_LEVEL, min_s: float = DROPOUT_MIN_S,
             max_s: float = 0.5, context_dbfs: float = -45.0) -> list[AudioSegment]:
    """Gaps of digital (near) zero on every channel, ``min_s``…``max_s`` long, with sound on both sides
    (20 ms RMS above ``context_dbfs`` just before and just after): damage, not a pause."""
    x = np.atleast_2d(np.asarray(audio, np.float64))
    zero = np.all(np.abs(x) <= level, axis=0)
    mono = x.mean(axis=0)
    ctx = max(1, int(0.02 * sr))
    out = []
    for s, e in _runs(zero):
        d = (e - s) / sr
        if d < min_s or d > max_s or s < ctx or e + ctx > len(mono):
            continue
        before = float(np.sqrt(np.mean(mono[s - ctx:s] ** 2)))
        after = float(np.sqrt(np.mean(mono[e:e + ctx] ** 2)))
        if _db(before) > context_dbfs and _db(after) > context_dbfs:
            out.append(AudioSegment("dropout", s / sr, e / sr, _db(float(np.max(np.abs(x[:, s:e]))))))
    return out


def bandwidth_hz(mono: np.ndarray, sr: int, *, floor_db: float = 40.0) -> float | None:
    """Highest frequency whose long-term (Welch) level is within ``floor_db`` of the spectrum's strong part
    (its 90th-percentile level): an upsampler's stop band (≥ 40 dB down) does not count as content."""
    if len(mono) < 2048:
        return None
    from scipy.signal import welch

    f, p = welch(np.asarray(mono, np.float64), fs=sr, nperseg=2048)
    if not np.any(p > 0):
        return None
    db = 10 * np.log10(np.maximum(p, 1e-30))
    # smooth over ~5 bins so a lone tone harmonic does not define the edge
    db = np.convolve(np.pad(db, 2, mode="edge"), np.ones(5) / 5, mode="valid")
    above = np.flatnonzero(db >= np.percentile(db, 90) - floor_db)
    return float(f[above[-1]]) if above.size else None


def rate_explanation(declared: int, ratio: float, tol: float = 0.01) -> tuple[int | None, str | None]:
    """A standard rate that would make the audio last as long as the picture, given duration ratio
    audio/video = ``ratio`` at the ``declared`` rate: ``(rate, note)``, or (None, None)."""
    if not math.isfinite(ratio) or ratio <= 0:
        return None, None
    guess = declared * ratio
    best = min(STANDARD_RATES, key=lambda r: abs(r / guess - 1))
    if abs(best / guess - 1) <= tol and best != declared:
        speed = declared / best
        how = f"{abs(1 - speed) * 100:.0f} % {'slow' if speed < 1 else 'fast'}"
        return best, (f"looks like {best} Hz audio labelled {declared} Hz: it plays {how} "
                      f"(pitch {12 * math.log2(speed):+.1f} semitones)")
    return None, None


def _mel_filters(sr: int, n_fft: int, n_mels: int = N_MELS, fmin: float = 40.0, fmax: float | None = None
                 ) -> np.ndarray:
    fmax = min(fmax or sr / 2, 16000.0, sr / 2)
    mel = lambda f: 2595.0 * np.log10(1 + f / 700.0)  # noqa: E731
    imel = lambda m: 700.0 * (10 ** (m / 2595.0) - 1)  # noqa: E731
    pts = imel(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    fb = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        up = (freqs - lo) / max(c - lo, 1e-9)
        down = (hi - freqs) / max(hi - c, 1e-9)
        fb[m] = np.maximum(0.0, np.minimum(up, down))
    return fb


def log_mel_fingerprint(mono: np.ndarray, sr: int, centres_s: Sequence[float], *, window_s: float = FP_WINDOW_S
                        ) -> np.ndarray:
    """[K, N_MELS] log-mel power (dB re full scale, floored at −100) of a ``window_s`` window around each time.

    Bands are fixed in Hz (40 Hz … min(16 kHz, Nyquist)), so two runs at the same rate compare band by band.
    """
    n_fft = 1 << int(math.ceil(math.log2(max(256, 0.032 * sr))))
    fb = _mel_filters(sr, n_fft)
    win = np.hanning(n_fft)
    half = int(round(window_s * sr / 2))
    y = np.asarray(mono, np.float64)
    out = np.full((len(centres_s), N_MELS), -100.0)
    for k, t in enumerate(centres_s):
        c = int(round(t * sr))
        seg = y[max(0, c - half): min(len(y), c + half)]
        if len(seg) < n_fft:
            seg = np.pad(seg, (0, n_fft - len(seg)))
        hop = n_fft // 2
        nfr = 1 + (len(seg) - n_fft) // hop
        idx = np.arange(n_fft)[None, :] + hop * np.arange(nfr)[:, None]
        spec = np.abs(np.fft.rfft(seg[idx] * win, axis=1)) ** 2 / (np.sum(win) ** 2 / 4)
        p = (fb @ spec.mean(axis=0))
        out[k] = np.maximum(10 * np.log10(np.maximum(p, 1e-30)), -100.0)
    return out


def fingerprint_similarity(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Per-window similarity of two log-mel fingerprints, 0…1: the spectral *shape* (Pearson correlation
    of the band levels) times a level term (1 at the same level, 0 at a 20 dB mean difference). Two
    silent windows are identical (1.0); silence against sound scores 0."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    out = []
    for x, y in zip(a, b):
        quiet_x, quiet_y = x.max() <= -90, y.max() <= -90
        if quiet_x or quiet_y:
            out.append(1.0 if quiet_x and quiet_y else 0.0)
            continue
        xs, ys = x - x.mean(), y - y.mean()
        den = float(np.linalg.norm(xs) * np.linalg.norm(ys))
        shape = float(xs @ ys / den) if den > 1e-9 else (1.0 if np.allclose(x, y, atol=1.0) else 0.0)
        level = max(0.0, 1.0 - abs(float(x.mean() - y.mean())) / 20.0)
        out.append(max(0.0, shape) * level)
    return out


# ------------------------------------------------------------------------------------------ analyze


def analyze_samples(audio: np.ndarray | None, sr: int | None, *, video_duration_s: float = 0.0,
                    keyframe_times_s: Sequence[float] = (), keyframe_frames: Sequence[int] = (),
                    min_silence_s: float = 0.5, silence_dbfs: float = SILENCE_DBFS) -> AudioResult:
    """QC of ``audio`` (float [C, N] or [N], full scale 1.0) at ``sr`` Hz; None audio → ``present`` False."""
    if audio is None or sr is None or np.asarray(audio).size == 0:
        return AudioResult(present=False, video_duration_s=video_duration_s)
    x = np.atleast_2d(np.asarray(audio, np.float32))
    sr = int(sr)
    n = x.shape[1]
    dur = n / sr
    mono = x.mean(axis=0).astype(np.float64)
    peak = float(np.max(np.abs(x)))
    rms = float(np.sqrt(np.mean(mono * mono)))
    dc = float(np.max(np.abs(x.mean(axis=1))))
    lufs = lra = None
    if dur >= 0.4 and peak > 0:
        import pyloudnorm

        meter = pyloudnorm.Meter(sr)
        data = x.T.astype(np.float64)
        v = float(meter.integrated_loudness(data))
        lufs = v if math.isfinite(v) else None
        if dur >= 3.0 and lufs is not None:
            lra = loudness_range_lu(data, sr)
    tp = true_peak_dbtp(x) if peak > 0 else -math.inf
    nclip, clips = clipping_runs(x, sr)
    ratio = dur / video_duration_s if video_duration_s > 0 else None
    likely, note = (None, None)
    if ratio is not None:
        likely, note = rate_explanation(sr, ratio)
    fp = None
    if keyframe_times_s:
        fp = log_mel_fingerprint(mono, sr, keyframe_times_s)
    return AudioResult(
        present=True, sample_rate=sr, channels=int(x.shape[0]), duration_s=dur, video_duration_s=video_duration_s,
        integrated_lufs=lufs, loudness_range_lu=lra, true_peak_dbtp=tp if math.isfinite(tp) else None,
        sample_peak_dbfs=_db(peak) if peak > 0 else None, rms_dbfs=_db(rms) if rms > 0 else None, dc_offset=dc,
        clipped_samples=nclip, clipping=tuple(clips),
        silences=tuple(quiet_segments(mono, sr, threshold_dbfs=silence_dbfs, min_s=min_silence_s)),
        dropouts=tuple(dropouts(x, sr)), duration_ratio=ratio, bandwidth_hz=bandwidth_hz(mono, sr),
        likely_rate=likely, rate_note=note, fingerprint_frames=tuple(int(i) for i in keyframe_frames),
        fingerprint=fp,
        config={"silence_dbfs": silence_dbfs, "min_silence_s": min_silence_s, "clip_level": CLIP_LEVEL,
                "dropout_min_s": DROPOUT_MIN_S, "n_mels": N_MELS, "fingerprint_window_s": FP_WINDOW_S},
    )


def analyze(clip: "Clip", *, sample_fps: float = 2.0, min_silence_s: float = 0.5,
            silence_dbfs: float = SILENCE_DBFS) -> AudioResult:
    """Audio QC of ``clip``; the fingerprint windows sit on the shared keyframes (``sample_fps``)."""
    from pytest_ltx.metrics.sampling import sample_indices

    kf = sample_indices(clip.num_frames, clip.fps, sample_fps) if clip.num_frames else []
    return analyze_samples(
        clip.audio if clip.has_audio else None, clip.sample_rate, video_duration_s=clip.duration_s,
        keyframe_times_s=[i / clip.fps for i in kf], keyframe_frames=[clip.original_index(i) for i in kf],
        min_silence_s=min_silence_s, silence_dbfs=silence_dbfs,
    )


class AudioConsumer(Consumer):
    """Audio QC in the streaming pass (:mod:`pytest_ltx.stream`): keeps the audio track only (no pixels)."""

    name = "audio"
    frame_side = None
    wants_video = False
    wants_audio = True

    def __init__(self, *, sample_fps: float = 2.0, min_silence_s: float = 0.5, silence_dbfs: float = SILENCE_DBFS
                 ) -> None:
        self.options = {"sample_fps": float(sample_fps), "min_silence_s": float(min_silence_s),
                        "silence_dbfs": float(silence_dbfs)}

    def config(self) -> dict[str, Any]:
        return {**self.options, "n_mels": N_MELS, "fingerprint_window_s": FP_WINDOW_S, "version": 1}

    def begin(self, info: Any) -> None:
        self._chunks: list[np.ndarray] = []
        self._sr: int | None = None

    def feed(self, frame: Any) -> None:  # pragma: no cover - wants_video is False
        pass

    def feed_audio(self, chunk: np.ndarray, sample_rate: int) -> None:
        self._sr = int(sample_rate)
        self._chunks.append(np.asarray(chunk, np.float32))

    def finish(self, info: Any) -> AudioResult:
        from pytest_ltx.metrics.sampling import sample_indices

        audio = np.concatenate(self._chunks, axis=1) if self._chunks else None
        self._chunks = []
        n, fps = int(info.frames), float(info.fps)
        kf = sample_indices(n, fps, self.options["sample_fps"]) if n and fps > 0 else []
        return analyze_samples(
            audio, self._sr, video_duration_s=n / fps if fps > 0 else 0.0,
            keyframe_times_s=[i / fps for i in kf], keyframe_frames=[info.original_index(i) for i in kf],
            min_silence_s=self.options["min_silence_s"], silence_dbfs=self.options["silence_dbfs"])
