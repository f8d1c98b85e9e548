"""Weight-free structural fingerprint of a clip's keyframes, and the SSIM used to compare fingerprints.

CLIP baselines need CLIP weights, which CI machines may not have. A fingerprint needs nothing: the
shared keyframes (:mod:`pytest_ltx.metrics.sampling`) shrunk to small grayscale thumbnails (64×64 uint8,
4 KB each, kept by the baseline store instead of the video), with the source frames they were taken at.
The baseline comparison (:mod:`pytest_ltx.baseline`) compares a new render's fingerprint with the stored
one by SSIM, keyframe by keyframe: that catches a changed layout, a different scene or a broken render on
any machine. It is deliberately coarse: it does not see small details or colour, and it says nothing about
the prompt. This module never looks at a baseline.

SSIM is the standard one (Wang et al. 2004): 11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03,
data range 255, mean over the valid (border-cropped) window positions — equal to
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)``, written with OpenCV so it needs no extra dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_ltx.metrics.sampling import sample_indices
from pytest_ltx.stream import KeyframeConsumer, StreamFrame, StreamInfo

if TYPE_CHECKING:
    from pytest_ltx.media import Clip

__all__ = ["THUMB_SIZE", "Fingerprint", "StructuralConsumer", "StructuralResult", "analyze", "fingerprint", "ssim",
           "thumbnail"]

#: thumbnail side in pixels: big enough for an 11×11 SSIM window to see structure, small enough to store
THUMB_SIZE = 64
_WIN, _SIGMA = 11, 1.5


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM of two same-size grayscale images (any numeric dtype)."""
    import cv2

    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"ssim needs two equal 2-D images, got {a.shape} and {b.shape}")
    x, y = a.astype(np.float64), b.astype(np.float64)
    blur = lambda im: cv2.GaussianBlur(im, (_WIN, _WIN), _SIGMA, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    pad = (_WIN - 1) // 2
    if min(s.shape) > 2 * pad:
        s = s[pad:-pad, pad:-pad]
    return float(s.mean())


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """Grayscale uint8 thumbnails [K,S,S] of a clip's keyframes, and which frames they are."""

    thumbnails: np.ndarray
    frames: tuple[int, ...]
    fps: float

    @property
    def times(self) -> tuple[float, ...]:
        return tuple(f / self.fps for f in self.frames)


def thumbnail(frame: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """One RGB frame as a ``size``×``size`` grayscale uint8 fingerprint (area-averaged)."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)


def fingerprint(clip: "Clip", sample_fps: float = 2.0, size: int = THUMB_SIZE) -> Fingerprint:
    """The keyframes of ``clip`` (shared sampling policy) as ``size``×``size`` grayscale thumbnails."""
    idx = sample_indices(clip.num_frames, clip.fps, sample_fps)
    thumbs = np.stack([thumbnail(clip.frames[i], size) for i in idx]) if idx else np.zeros((0, size, size), np.uint8)
    return Fingerprint(thumbnails=thumbs.astype(np.uint8), frames=tuple(clip.original_index(i) for i in idx),
                       fps=float(clip.fps))


@dataclass(frozen=True, eq=False)
class StructuralResult:
    """This clip's fingerprint (per-keyframe thumbnails and the frames they were taken at)."""

    fingerprint: Fingerprint

    @property
    def sampled_frames(self) -> tuple[int, ...]:
        return self.fingerprint.frames

    def scalars(self) -> dict[str, float | int | None]:
        return {}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"thumbnails": self.fingerprint.thumbnails}

    def to_dict(self) -> dict[str, Any]:
        return {
            "sampled_frames": list(self.fingerprint.frames),
            "times_s": [round(t, 4) for t in self.fingerprint.times],
            "thumbnail_size": list(self.fingerprint.thumbnails.shape[1:]),
        }


def analyze(clip: "Clip", *, sample_fps: float = 2.0, size: int = THUMB_SIZE) -> StructuralResult:
    """Fingerprint ``clip``."""
    return StructuralResult(fingerprint(clip, sample_fps, size))


class StructuralConsumer(KeyframeConsumer):
    """The structural fingerprint in the streaming pass: a ``size``×``size`` gray thumbnail per keyframe."""

    name = "structural"

    def __init__(self, *, sample_fps: float = 2.0, size: int = THUMB_SIZE) -> None:
        super().__init__(sample_fps)
        self.size = size

    def config(self) -> dict[str, Any]:
        return {"sample_fps": self.sample_fps, "size": self.size}

    def begin(self, info: StreamInfo) -> None:
        super().begin(info)
        self._thumbs: list[np.ndarray] = []

    def take(self, index: int, frame: StreamFrame) -> None:
        self._thumbs.append(thumbnail(frame.rgb(), self.size))

    def result(self, info: StreamInfo, indices: list[int]) -> StructuralResult:
        thumbs = np.stack(self._thumbs) if self._thumbs else np.zeros((0, self.size, self.size), np.uint8)
        fp = Fingerprint(thumbnails=thumbs.astype(np.uint8), frames=tuple(info.original_index(i) for i in indices),
                         fps=float(info.fps))
        return StructuralResult(fp)
