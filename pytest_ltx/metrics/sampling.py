"""Keyframe sampling shared by the per-keyframe metrics (OCR, CLIP, structural fingerprints).

OCR and CLIP cost 0.1–2 s per frame on CPU, so they look at a few frames per second instead of all of
them. One policy for all of them means their keyframes line up (a text detection and a CLIP dip on the
same frame can be read together) and a baseline stored by one run aligns with the next run's keyframes.
"""

from __future__ import annotations

__all__ = ["KeyframeGrid", "sample_indices"]


def sample_indices(
    num_frames: int, fps: float, per_second: float, include_first_last: bool = True
) -> list[int]:
    """Frame indices at ``per_second`` keyframes per second of video (times ``k / per_second``), sorted.

    Each time ``t`` maps to frame ``round(t * fps)``. With ``include_first_last`` the first and last frames
    are always in (the first is anyway; the last is where a generator's drift is worst). A rate at or
    above ``fps`` returns every frame. Deterministic and independent of resolution, so two clips with the
    same frame count and rate get the same keyframes.
    """
    if num_frames <= 0:
        return []
    if fps <= 0 or per_second <= 0:
        raise ValueError(f"sample_indices: fps and per_second must be positive (got {fps}, {per_second})")
    if per_second >= fps:
        return list(range(num_frames))
    step = fps / per_second  # frames between keyframes (may be fractional)
    out: set[int] = set()
    k = 0
    while True:
        i = int(round(k * step))
        if i >= num_frames:
            break
        out.add(i)
        k += 1
    if include_first_last:
        out.update((0, num_frames - 1))
    return sorted(out)


class KeyframeGrid:
    """:func:`sample_indices` decided one frame at a time, for streams whose length is not known in
    advance: ``contains(i)`` says whether frame ``i`` is on the regular grid (the first frame always is);
    the last frame is added by whoever knows it was the last. Together they give exactly
    ``sample_indices(n, fps, per_second)``."""

    def __init__(self, fps: float, per_second: float) -> None:
        if fps <= 0 or per_second <= 0:
            raise ValueError(f"KeyframeGrid: fps and per_second must be positive (got {fps}, {per_second})")
        self.every = per_second >= fps
        self.step = fps / per_second
        self._k = 0
        self._next = 0

    def contains(self, i: int) -> bool:
        if self.every:
            return True
        while self._next < i:
            self._k += 1
            self._next = int(round(self._k * self.step))
        return self._next == i
