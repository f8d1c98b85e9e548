"""Known failure modes of video generators (LTX-2 in particular), located to the frame.

* **end flash / exposure jump**: the last second brightens or darkens abruptly (a frame-to-frame jump in
  mean luma while the picture's structure stays — a cut is the motion metric's business), a typical
  artefact of the last latent frames;
* **static start**: in image-to-video, the first frames stay (nearly) identical to the conditioning
  frame before motion starts — counted as the run of near-identical frames from frame 0; and the
  **first frame's fidelity** to the conditioning image (SSIM of 64×64 gray thumbnails);
* **corrupted tail**: garbage frames appended at the end — sudden high-frequency noise or block
  artefacts (the 8- and 32-pixel grids of codecs and of the VAE's 32× latent), measured against the
  clip's own earlier frames;
* **photosensitive flashing** after ITU-R BT.1702 (the Harding/Ofcom test): a *flash* is a pair of
  opposing luminance changes of ≥ 20 cd/m² where the darker state is below 160 cd/m², over at least
  25 % of the screen; more than three flashes in any one-second window is hazardous. Luminance is
  computed from sRGB on a 200 cd/m² display (the guideline's assumption); the area rule is applied by
  following the mean luminance of the quarter of the screen that varies most. (The saturated-red
  flash rule is not implemented.)

Everything is computed from compact per-frame signals (:class:`FrameSignals`: luma means, 32×32
luminance and 64×64 gray thumbnails, high-frequency and blockiness scores) that
:class:`SignalAccumulator` collects one frame at a time, so a streaming decoder can feed it without
holding the clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from pytest_ltx.stream import Consumer

if TYPE_CHECKING:
    from pytest_ltx.media import Clip

__all__ = [
    "ArtifactKind",
    "ArtifactEvent",
    "ArtifactsResult",
    "FrameSignals",
    "SignalAccumulator",
    "frame_signals",
    "analyze",
    "analyze_signals",
    "flash_transitions",
    "DISPLAY_CD_M2",
]

DISPLAY_CD_M2 = 200.0
FLASH_DELTA_CD_M2 = 20.0
FLASH_DARK_MAX_CD_M2 = 160.0
FLASH_AREA = 0.25
THUMB = 64
LUM_GRID = 32
#: mean abs difference (gray levels, 64×64 thumbnails) below which two frames count as identical
STATIC_TAU = 0.35
#: tail luma jumps from this size on are listed as end-flash events (the check applies its own bound)
END_FLASH_FLOOR = 0.02
#: consecutive thumbnails correlating below this are different scenes (a cut), not an exposure change
SAME_SCENE_NCC = 0.8
#: a tail frame is corrupt when its high-frequency energy exceeds this multiple of the body's median …
NOISE_RATIO = 2.0
#: … or its blockiness exceeds the body's by this much (boundary/interior gradient ratio − 1)
BLOCK_EXCESS = 0.35


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = x / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _blockiness(gray: np.ndarray, grid: int) -> float:
    """Mean |horizontal + vertical gradient| on ``grid`` boundaries over the mean elsewhere, minus 1
    (0 for natural content; block artefacts make boundaries step)."""
    g = gray.astype(np.float32)
    dx = np.abs(np.diff(g, axis=1))
    dy = np.abs(np.diff(g, axis=0))
    h, w = g.shape
    if w <= 2 * grid or h <= 2 * grid:
        return 0.0
    bx = np.zeros(dx.shape[1], bool)
    bx[grid - 1 :: grid] = True
    by = np.zeros(dy.shape[0], bool)
    by[grid - 1 :: grid] = True
    on = float(dx[:, bx].mean() + dy[by, :].mean())
    off = float(dx[:, ~bx].mean() + dy[~by, :].mean())
    return on / (off + 1.0) - 1.0


@dataclass(frozen=True)
class FrameSignals:
    """Per-frame compact signals of a clip (all arrays have one row per frame)."""

    fps: float
    luma: np.ndarray  # mean Rec.709 luma of the gamma-encoded frame, 0–1
    lum_thumbs: np.ndarray  # [T, 32, 32] relative luminance × 200 cd/m² (float32)
    gray_thumbs: np.ndarray  # [T, 64, 64] gray uint8
    hf: np.ndarray  # mean |Laplacian| of the gray frame at ≤ 256 px
    block8: np.ndarray
    block32: np.ndarray
    width: int = 0
    height: int = 0

    @property
    def num_frames(self) -> int:
        return int(len(self.luma))


class SignalAccumulator:
    """Collects :class:`FrameSignals` one RGB uint8 frame at a time (``add``), then ``finish``."""

    def __init__(self, fps: float) -> None:
        self.fps = float(fps)
        self._luma: list[float] = []
        self._lum: list[np.ndarray] = []
        self._gray: list[np.ndarray] = []
        self._hf: list[float] = []
        self._b8: list[float] = []
        self._b32: list[float] = []
        self._size = (0, 0)

    def add(self, frame: np.ndarray) -> None:
        import cv2

        f = np.ascontiguousarray(frame)
        h, w = f.shape[:2]
        self._size = (w, h)
        gray = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
        self._luma.append(float(f.reshape(-1, 3).astype(np.float32).mean(axis=0) @ [0.2126, 0.7152, 0.0722]) / 255)
        small = cv2.resize(f, (LUM_GRID, LUM_GRID), interpolation=cv2.INTER_AREA).astype(np.float32)
        lin = _srgb_to_linear(small)
        self._lum.append((DISPLAY_CD_M2 * (lin @ np.array([0.2126, 0.7152, 0.0722], np.float32))).astype(np.float32))
        self._gray.append(cv2.resize(gray, (THUMB, THUMB), interpolation=cv2.INTER_AREA))
        s = min(1.0, 256 / max(h, w))
        g = gray if s == 1.0 else cv2.resize(gray, (max(8, round(w * s)), max(8, round(h * s))),
                                              interpolation=cv2.INTER_AREA)
        self._hf.append(float(np.abs(cv2.Laplacian(g.astype(np.float32), cv2.CV_32F)).mean()))
        # blockiness at the native resolution (blocks live on the pixel grid), cropped to ≤ 512 px
        crop = gray[: min(h, 512), : min(w, 512)]
        self._b8.append(_blockiness(crop, 8))
        self._b32.append(_blockiness(crop, 32))

    def finish(self) -> FrameSignals:
        t = len(self._luma)
        return FrameSignals(
            fps=self.fps, luma=np.asarray(self._luma, np.float64),
            lum_thumbs=np.stack(self._lum) if t else np.zeros((0, LUM_GRID, LUM_GRID), np.float32),
            gray_thumbs=np.stack(self._gray) if t else np.zeros((0, THUMB, THUMB), np.uint8),
            hf=np.asarray(self._hf), block8=np.asarray(self._b8), block32=np.asarray(self._b32),
            width=self._size[0], height=self._size[1],
        )


def frame_signals(frames: Iterable[np.ndarray], fps: float) -> FrameSignals:
    acc = SignalAccumulator(fps)
    for f in frames:
        acc.add(f)
    return acc.finish()


class ArtifactKind:
    END_FLASH = "end_flash"
    STATIC_START = "static_start"
    CORRUPT = "corrupt"
    PHOTOSENSITIVE = "photosensitive"


@dataclass(frozen=True)
class ArtifactEvent:
    """One located defect: ``kind`` at ``frame`` (… ``end_frame``), with its size ``value``."""

    kind: str
    frame: int
    end_frame: int
    fps: float
    value: float
    detail: str = ""

    def describe(self) -> str:
        span = (f"frame {self.frame} ({self.frame / self.fps:.2f} s)" if self.end_frame == self.frame else
                f"frames {self.frame}–{self.end_frame} ({self.frame / self.fps:.2f}–{self.end_frame / self.fps:.2f} s)")
        return f"{self.kind.replace('_', ' ')} at {span}" + (f": {self.detail}" if self.detail else "")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "frame": self.frame, "end_frame": self.end_frame,
                "time_s": round(self.frame / self.fps, 4), "value": round(float(self.value), 4),
                "detail": self.detail}


@dataclass(frozen=True)
class ArtifactsResult:
    """Failure-mode measurements of one clip. Frame numbers index the source file."""

    num_frames: int
    fps: float
    tail_s: float
    #: largest frame-to-frame mean-luma jump inside the last ``tail_s`` (fraction of full scale) and where
    tail_luma_jump: float
    tail_luma_jump_frame: int | None
    #: the same over the rest of the clip, for context (a clip that always jumps is not an end artefact)
    body_luma_jump: float
    #: run of near-identical frames from frame 0 (1 = frame 0 alone, i.e. motion from the start)
    static_start_frames: int
    #: SSIM of frame 0 and the conditioning image (None without one)
    first_frame_ssim: float | None
    corrupt: tuple[ArtifactEvent, ...]
    #: BT.1702 flashes: the most in any 1 s window, and that window's transitions
    max_flashes_per_s: float
    flash_window: tuple[int, int] | None
    flash_transition_frames: tuple[int, ...]
    events: tuple[ArtifactEvent, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[ArtifactEvent]:
        return [e for e in self.events if e.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_frames": self.num_frames, "fps": self.fps, "tail_s": self.tail_s,
            "tail_luma_jump": round(self.tail_luma_jump, 4), "tail_luma_jump_frame": self.tail_luma_jump_frame,
            "body_luma_jump": round(self.body_luma_jump, 4), "static_start_frames": self.static_start_frames,
            "first_frame_ssim": None if self.first_frame_ssim is None else round(self.first_frame_ssim, 4),
            "corrupt": [e.to_dict() for e in self.corrupt],
            "max_flashes_per_s": self.max_flashes_per_s,
            "flash_window": list(self.flash_window) if self.flash_window else None,
            "flash_transition_frames": list(self.flash_transition_frames),
            "events": [e.to_dict() for e in self.events], "config": dict(self.config),
        }

    def scalars(self) -> dict[str, float | int | None]:
        return {
            "tail_luma_jump": round(self.tail_luma_jump, 4),
            "static_start_frames": self.static_start_frames,
            "first_frame_ssim": None if self.first_frame_ssim is None else round(self.first_frame_ssim, 4),
            "corrupt_frames": len(self.corrupt),
            "max_flashes_per_s": self.max_flashes_per_s,
        }


def flash_transitions(trace: np.ndarray, *, delta: float = FLASH_DELTA_CD_M2,
                      dark_max: float = FLASH_DARK_MAX_CD_M2) -> list[tuple[int, int]]:
    """Monotone luminance swings of ≥ ``delta`` whose darker end is below ``dark_max``: ``(start, end)``
    frames of each, in order. A swing is followed from one turning point to the next, so a ramp over
    several frames is one transition (as in BT.1702's accumulation of same-direction changes)."""
    x = np.asarray(trace, np.float64)
    out: list[tuple[int, int]] = []
    if x.size < 2:
        return out
    # turning points with hysteresis ``delta``: a reversal smaller than delta is ignored; an extreme
    # held for several frames counts from the first frame that reached it
    ext: list[int] = []
    direction = 0
    lo = hi = 0
    for i in range(1, len(x)):
        if direction == 0:
            lo = i if x[i] < x[lo] else lo
            hi = i if x[i] > x[hi] else hi
            if x[i] - x[lo] >= delta:
                ext, direction = [lo, i], 1
            elif x[hi] - x[i] >= delta:
                ext, direction = [hi, i], -1
        elif direction == 1:
            if x[i] > x[ext[-1]]:
                ext[-1] = i
            elif x[ext[-1]] - x[i] >= delta:
                ext.append(i)
                direction = -1
        else:
            if x[i] < x[ext[-1]]:
                ext[-1] = i
            elif x[i] - x[ext[-1]] >= delta:
                ext.append(i)
                direction = 1
    for a, b in zip(ext, ext[1:]):
        lo, hi = sorted((x[a], x[b]))
        if hi - lo >= delta and lo < dark_max:
            out.append((a, b))
    return out


def _flash_trace(lum: np.ndarray, fps: float) -> np.ndarray:
    """Mean luminance (cd/m²) of the quarter of the screen that varies most, per frame; the quarter is
    chosen per one-second window so a flashing region anywhere is followed."""
    t = lum.shape[0]
    flat = lum.reshape(t, -1)
    n_area = max(1, int(math.ceil(FLASH_AREA * flat.shape[1])))
    win = max(2, int(round(fps)))
    trace = np.zeros(t)
    counts = np.zeros(t)
    for s in range(0, max(1, t - win + 1), max(1, win // 2)):
        seg = flat[s : s + win]
        var = seg.max(axis=0) - seg.min(axis=0)
        top = np.argsort(var)[-n_area:]
        m = seg[:, top].mean(axis=1)
        trace[s : s + win] += m
        counts[s : s + win] += 1
    if t < win:
        var = flat.max(axis=0) - flat.min(axis=0)
        trace = flat[:, np.argsort(var)[-n_area:]].mean(axis=1)
        counts[:] = 1
    return trace / np.maximum(counts, 1)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two thumbnails: 1 for the same structure at any brightness/contrast."""
    x = a.astype(np.float64).ravel()
    y = b.astype(np.float64).ravel()
    x -= x.mean()
    y -= y.mean()
    den = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(x @ y / den) if den > 1e-9 else 1.0


def _ssim_thumb(a: np.ndarray, b: np.ndarray) -> float:
    from pytest_ltx.metrics.structural import ssim

    return ssim(a, b)


def _gray_thumb(img: np.ndarray) -> np.ndarray:
    import cv2

    x = np.ascontiguousarray(img)
    if x.ndim == 3:
        x = cv2.cvtColor(x[..., :3].astype(np.uint8), cv2.COLOR_RGB2GRAY)
    return cv2.resize(x.astype(np.uint8), (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def analyze_signals(sig: FrameSignals, *, tail_s: float = 1.0, conditioning_image: np.ndarray | None = None,
                    frame_index=None) -> ArtifactsResult:
    """Failure-mode measurements from per-frame signals (``frame_index(i)`` maps to source frame numbers)."""
    idx = frame_index or (lambda i: int(i))
    t, fps = sig.num_frames, sig.fps
    tail_n = max(1, int(round(tail_s * fps)))
    tail0 = max(1, t - tail_n)
    events: list[ArtifactEvent] = []

    # --- end flash / exposure jump
    jumps = np.abs(np.diff(sig.luma)) if t > 1 else np.zeros(0)
    # a change of brightness keeps the picture's structure; a cut (motion's business) does not
    for k in range(len(jumps)):
        if jumps[k] > 0.02 and _ncc(sig.gray_thumbs[k], sig.gray_thumbs[k + 1]) < SAME_SCENE_NCC:
            jumps[k] = 0.0
    tail_j = jumps[tail0 - 1 :] if t > 1 else np.zeros(0)
    body_j = jumps[: tail0 - 1] if t > 1 else np.zeros(0)
    tj = float(tail_j.max()) if tail_j.size else 0.0
    tj_frame = int(tail0 + int(np.argmax(tail_j))) if tail_j.size else None
    bj = float(body_j.max()) if body_j.size else 0.0

    # --- static start
    run = 1
    for i in range(1, t):
        d = float(np.abs(sig.gray_thumbs[i].astype(np.int16) - sig.gray_thumbs[i - 1].astype(np.int16)).mean())
        if d >= STATIC_TAU:
            break
        run += 1
    run = min(run, t)

    ff = None
    if conditioning_image is not None and t:
        ff = _ssim_thumb(_gray_thumb(conditioning_image), sig.gray_thumbs[0])

    # --- corrupted tail: against the body's own statistics
    corrupt: list[ArtifactEvent] = []
    if t >= 4:
        body = slice(0, tail0) if tail0 >= 3 else slice(0, max(1, t // 2))
        hf_ref = float(np.median(sig.hf[body])) + 1.0
        b8_ref, b32_ref = float(np.median(sig.block8[body])), float(np.median(sig.block32[body]))
        for i in range(tail0, t):
            ratio = float(sig.hf[i]) / hf_ref
            bex = max(float(sig.block8[i]) - b8_ref, float(sig.block32[i]) - b32_ref)
            if ratio >= NOISE_RATIO or bex >= BLOCK_EXCESS:
                why = (f"high-frequency energy {ratio:.1f}× the clip's" if ratio >= NOISE_RATIO
                       else f"block artefacts (boundary excess {bex:.2f})")
                corrupt.append(ArtifactEvent(ArtifactKind.CORRUPT, idx(i), idx(i), fps, max(ratio, bex), why))

    # --- photosensitive flashing
    trace = _flash_trace(sig.lum_thumbs.astype(np.float64), fps) if t >= 2 else np.zeros(t)
    trans = flash_transitions(trace)
    ends = np.array([b for _, b in trans], int)
    win = max(1, int(round(fps)))
    best, best_w = 0.0, None
    for k in range(len(ends)):
        inside = ends[(ends >= ends[k]) & (ends < ends[k] + win)]
        flashes = len(inside) / 2.0  # a flash is a pair of opposing transitions
        if flashes > best:
            best, best_w = flashes, (int(ends[k]), int(inside[-1]))
    in_win = tuple(idx(int(e)) for e in ends if best_w and best_w[0] <= e <= best_w[1])

    for k in range(tail0 - 1, len(jumps)):
        if jumps[k] >= END_FLASH_FLOOR:
            events.append(ArtifactEvent(ArtifactKind.END_FLASH, idx(k + 1), idx(k + 1), fps, float(jumps[k]),
                                        f"mean luma {sig.luma[k]:.3f} → {sig.luma[k + 1]:.3f}"))
    if run > 1:
        events.append(ArtifactEvent(ArtifactKind.STATIC_START, idx(0), idx(run - 1), fps, float(run),
                                    f"{run} near-identical frames"))
    events += corrupt
    if best_w is not None:
        events.append(ArtifactEvent(ArtifactKind.PHOTOSENSITIVE, idx(best_w[0]), idx(best_w[1]), fps, best,
                                    f"{best:g} flashes in 1 s (transitions at frames {', '.join(map(str, in_win))})"))
    return ArtifactsResult(
        num_frames=t, fps=fps, tail_s=tail_s, tail_luma_jump=tj,
        tail_luma_jump_frame=None if tj_frame is None else idx(tj_frame), body_luma_jump=bj,
        static_start_frames=run, first_frame_ssim=ff, corrupt=tuple(corrupt), max_flashes_per_s=best,
        flash_window=None if best_w is None else (idx(best_w[0]), idx(best_w[1])), flash_transition_frames=in_win,
        events=tuple(events),
        config={"static_tau": STATIC_TAU, "noise_ratio": NOISE_RATIO, "block_excess": BLOCK_EXCESS,
                "display_cd_m2": DISPLAY_CD_M2, "flash_delta_cd_m2": FLASH_DELTA_CD_M2,
                "flash_area": FLASH_AREA},
    )


def analyze(clip: "Clip", *, tail_s: float = 1.0, conditioning_image: np.ndarray | None = None) -> ArtifactsResult:
    sig = frame_signals(clip.frames, clip.fps)
    return analyze_signals(sig, tail_s=tail_s, conditioning_image=conditioning_image,
                           frame_index=clip.original_index)


class ArtifactsConsumer(Consumer):
    """Failure-mode checks in the streaming pass: per-frame signals only (a few KB a frame)."""

    name = "artifacts"
    frame_side = None
    wants_video = True
    wants_audio = False

    def __init__(self, *, tail_s: float = 1.0, conditioning_image: Any = None) -> None:
        self.tail_s = float(tail_s)
        self.conditioning_image = conditioning_image  # a path (or an RGB array)

    def config(self) -> dict[str, Any]:
        img = self.conditioning_image
        if img is not None and not isinstance(img, np.ndarray):
            from pytest_ltx.evalcache import file_digest

            img = file_digest(img)
        elif img is not None:
            import hashlib

            img = hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest()
        return {"tail_s": self.tail_s, "conditioning_image": img, "static_tau": STATIC_TAU,
                "noise_ratio": NOISE_RATIO, "block_excess": BLOCK_EXCESS, "version": 1}

    def begin(self, info: Any) -> None:
        self._acc = SignalAccumulator(info.fps)

    def feed(self, frame: Any) -> None:
        self._acc.add(frame.rgb())

    def feed_audio(self, chunk: np.ndarray, sample_rate: int) -> None:  # pragma: no cover
        pass

    def finish(self, info: Any) -> ArtifactsResult:
        image = self.conditioning_image
        if image is not None and not isinstance(image, np.ndarray):
            from pytest_ltx.media import read_image_rgb

            image = read_image_rgb(image)  # budgeted; an unreadable image names its file
        sig = self._acc.finish()
        sig = FrameSignals(**{**sig.__dict__, "fps": float(info.fps)})
        return analyze_signals(sig, tail_s=self.tail_s, conditioning_image=image, frame_index=info.original_index)
