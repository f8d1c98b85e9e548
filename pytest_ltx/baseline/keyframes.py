"""The ONE keyframe-alignment policy of baseline comparisons, and the per-keyframe measurements made with it.

Metrics are pure functions of the clip: they keep per-keyframe results (CLIP embeddings and prompt scores,
structural thumbnails, audio spectra) together with the source frames they were taken at. Everything
measured *against* a golden baseline — keyframe CLIP cosine, keyframe SSIM, audio-spectrum similarity, the
paired prompt-score delta — is measured here, from this run's record and the stored one, after aligning
their keyframes once with :func:`align_keyframes`:

- **By timestamp.** A keyframe's time is its source frame divided by the clip's frame rate. Each keyframe of
  this run is paired with the nearest stored keyframe that lies within **half a sample interval** (half the
  median spacing of the keyframes, the smaller of the two sides), each stored keyframe used at most once
  (closest pairs first). Same frame count and rate: the identity. Another frame rate or a slightly different
  length: the keyframes at the same moments pair up (a 24 fps baseline and a 25 fps run at 2 keyframes/s).
- **Unmatched keyframes are reported, never dropped.** A keyframe of this run with no stored keyframe near it
  (the clip got longer) and a stored keyframe nothing was paired with (it got shorter, or the sampling rate
  changed) are listed with their frames and times. The similarity gates fail on them ("the clip's length or
  sampling changed"); the prompt-score delta averages the paired keyframes and names the unpaired ones.
- **No times** (a record without a frame rate or keyframe frames, e.g. one built by hand): keyframes pair by
  index when both sides have the same number, otherwise none pair and all are unmatched.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = [
    "KeyframeAlignment",
    "KeyframePair",
    "align_keyframes",
    "keyframe_cosines",
    "keyframe_ssims",
]


@dataclass(frozen=True)
class KeyframePair:
    """Keyframe ``index`` of this run (source frame ``frame``) paired with the stored keyframe
    ``baseline_index`` (its source frame ``baseline_frame``); times in seconds when known."""

    index: int
    baseline_index: int
    frame: int | None = None
    baseline_frame: int | None = None
    time_s: float | None = None
    baseline_time_s: float | None = None

    def where(self) -> str:
        """``keyframe 3 (frame 72, 3.00 s)`` — this run's keyframe, as messages name it."""
        if self.frame is None:
            return f"keyframe {self.index}"
        return f"keyframe {self.index} (frame {self.frame}" + (
            f", {self.time_s:.2f} s)" if self.time_s is not None else ")")


@dataclass(frozen=True)
class KeyframeAlignment:
    """How this run's keyframes pair with the stored ones (see the module docstring for the policy)."""

    pairs: tuple[KeyframePair, ...]
    #: this run's keyframe indices with no stored keyframe within tolerance
    unmatched: tuple[int, ...]
    #: stored keyframe indices no keyframe of this run was paired with
    gone: tuple[int, ...]
    frames: tuple[int, ...] = ()
    baseline_frames: tuple[int, ...] = ()
    fps: float | None = None
    baseline_fps: float | None = None
    #: "time" (by timestamp) or "index" (no times known)
    by: str = "time"
    #: the largest time difference two paired keyframes may have (None when paired by index)
    tolerance_s: float | None = None

    @property
    def complete(self) -> bool:
        """Every keyframe on both sides has its counterpart."""
        return not self.unmatched and not self.gone

    @property
    def identity(self) -> bool:
        return self.complete and all(p.index == p.baseline_index for p in self.pairs)

    def _at(self, frames: Sequence[int], fps: float | None, i: int) -> str:
        if i >= len(frames):
            return f"#{i}"
        f = frames[i]
        return f"frame {f} ({f / fps:.2f} s)" if fps else f"frame {f}"

    def describe_unmatched(self) -> str:
        """One clause naming every unmatched keyframe on both sides ('' when complete)."""
        parts = []
        if self.unmatched:
            parts.append("this run's " + ", ".join(self._at(self.frames, self.fps, i) for i in self.unmatched)
                         + " ha" + ("s" if len(self.unmatched) == 1 else "ve") + " no baseline keyframe")
        if self.gone:
            parts.append("the baseline's " + ", ".join(self._at(self.baseline_frames, self.baseline_fps, i)
                                                       for i in self.gone)
                         + " ha" + ("s" if len(self.gone) == 1 else "ve") + " no keyframe in this run")
        if not parts:
            return ""
        within = f" within ±{self.tolerance_s:.3g} s" if self.tolerance_s is not None else ""
        return "; ".join(parts) + within

    def unmatched_dict(self) -> dict[str, Any]:
        def side(idx: Sequence[int], frames: Sequence[int], fps: float | None) -> list[dict[str, Any]]:
            return [{"index": i, "frame": frames[i] if i < len(frames) else None,
                     "time_s": round(frames[i] / fps, 4) if fps and i < len(frames) else None} for i in idx]

        return {"current": side(self.unmatched, self.frames, self.fps),
                "baseline": side(self.gone, self.baseline_frames, self.baseline_fps)}

    def to_dict(self) -> dict[str, Any]:
        return {"by": self.by, "tolerance_s": None if self.tolerance_s is None else round(self.tolerance_s, 6),
                "pairs": [[p.index, p.baseline_index] for p in self.pairs], **self.unmatched_dict()}


def _spacing(times: Sequence[float]) -> float | None:
    import statistics  # not np.median: that imports numpy.ma (10 ms of every warm run) for a few numbers

    d = [float(b) - float(a) for a, b in zip(times, times[1:]) if float(b) > float(a)]
    return statistics.median(d) if d else None


def align_keyframes(frames: Sequence[int], fps: float | None, baseline_frames: Sequence[int],
                    baseline_fps: float | None, *, count: int | None = None,
                    baseline_count: int | None = None) -> KeyframeAlignment:
    """Pair this run's keyframes (source ``frames`` at ``fps``) with the stored ones.

    ``count``/``baseline_count`` are the number of keyframes actually held on each side (an array's
    first axis) when the frame lists are unknown. See the module docstring for the policy.
    """
    frames, baseline_frames = [int(f) for f in frames], [int(f) for f in baseline_frames]
    n = len(frames) if frames else (count or 0)
    m = len(baseline_frames) if baseline_frames else (baseline_count or 0)
    if count is not None and frames and count != len(frames):
        frames, n = [], count  # the array does not follow the frame list: times unusable
    if baseline_count is not None and baseline_frames and baseline_count != len(baseline_frames):
        baseline_frames, m = [], baseline_count
    common = dict(frames=tuple(frames), baseline_frames=tuple(baseline_frames),
                  fps=fps or None, baseline_fps=baseline_fps or None)
    if not (frames and baseline_frames and fps and baseline_fps):
        if n == m:
            pairs = tuple(KeyframePair(i, i, frames[i] if frames else None,
                                       baseline_frames[i] if baseline_frames else None,
                                       frames[i] / fps if frames and fps else None,
                                       baseline_frames[i] / baseline_fps if baseline_frames and baseline_fps else None)
                          for i in range(n))
            return KeyframeAlignment(pairs, (), (), by="index", **common)  # type: ignore[arg-type]
        return KeyframeAlignment((), tuple(range(n)), tuple(range(m)), by="index", **common)  # type: ignore[arg-type]
    t = [f / fps for f in frames]
    tb = [f / baseline_fps for f in baseline_frames]
    steps = [s for s in (_spacing(t), _spacing(tb)) if s is not None]
    # one keyframe on each side: they are the same moment only if within half a frame
    tol = min(steps) / 2 if steps else 0.5 / max(fps, baseline_fps)
    slack = 1e-6  # float rounding of frame / fps, not tolerance
    # candidate pairs within tolerance (bisect on the sorted stored times: linear in the keyframes, not K×K)
    order = sorted(range(m), key=lambda j: tb[j])
    sorted_tb = [tb[j] for j in order]
    cands = []
    for i, a in enumerate(t):
        lo = bisect.bisect_left(sorted_tb, a - tol - slack)
        hi = bisect.bisect_right(sorted_tb, a + tol + slack)
        cands += [(abs(a - sorted_tb[k]), i, order[k]) for k in range(lo, hi)]
    cands.sort()
    used_i: set[int] = set()
    used_j: set[int] = set()
    chosen: dict[int, int] = {}
    for _, i, j in cands:
        if i in used_i or j in used_j:
            continue
        used_i.add(i)
        used_j.add(j)
        chosen[i] = j
    pairs = tuple(KeyframePair(i, chosen[i], frames[i], baseline_frames[chosen[i]], t[i], tb[chosen[i]])
                  for i in sorted(chosen))
    return KeyframeAlignment(pairs, tuple(i for i in range(n) if i not in used_i),
                             tuple(j for j in range(m) if j not in used_j), by="time", tolerance_s=tol,
                             **common)  # type: ignore[arg-type]


def keyframe_cosines(current: np.ndarray, baseline: np.ndarray, alignment: KeyframeAlignment) -> list[float]:
    """Cosine of each paired keyframe's vectors (CLIP embeddings), in pair order."""
    a = np.asarray(current, np.float64).reshape(len(current), -1)
    b = np.asarray(baseline, np.float64).reshape(len(baseline), -1)
    out = []
    for p in alignment.pairs:
        x, y = a[p.index], b[p.baseline_index]
        out.append(float(x @ y / max(np.linalg.norm(x) * np.linalg.norm(y), 1e-12)))
    return out


def keyframe_ssims(current: np.ndarray, baseline: np.ndarray, alignment: KeyframeAlignment,
                   ssim: Any = None) -> tuple[list[float], str | None]:
    """SSIM of each paired keyframe's gray thumbnails, and a note when the sizes differ (an older baseline
    kept smaller thumbnails: both are resized to the smaller size first)."""
    import cv2

    from pytest_ltx.baseline.compare import structural_similarity

    fn = ssim or structural_similarity
    a, b = np.asarray(current), np.asarray(baseline)
    note = None
    if a.shape[1:] != b.shape[1:] and a.ndim == 3 and b.ndim == 3:
        h, w = min(a.shape[1], b.shape[1]), min(a.shape[2], b.shape[2])
        a, b = (np.stack([cv2.resize(np.asarray(x, np.uint8), (w, h), interpolation=cv2.INTER_AREA) for x in t])
                for t in (a, b))
        note = f"thumbnail sizes differ; compared at {w}x{h}"
    return [float(fn(a[p.index], b[p.baseline_index])) for p in alignment.pairs], note
