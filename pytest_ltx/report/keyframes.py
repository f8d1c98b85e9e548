"""Small pictures of a clip for humans: a keyframe strip (report, baselines) and a motion plot."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["keyframe_indices", "keyframe_strip", "png_bytes"]


def keyframe_indices(num_frames: int, count: int = 8) -> list[int]:
    """``count`` evenly spaced frame indices including the first and the last."""
    if num_frames <= 0:
        return []
    if num_frames <= count:
        return list(range(num_frames))
    return sorted({round(i * (num_frames - 1) / (count - 1)) for i in range(count)})


def keyframe_strip(frames: np.ndarray | Sequence[np.ndarray], indices: Sequence[int] | None = None, *, height: int = 96,
                   labels: bool = True, frame_numbers: Sequence[int] | None = None,
                   fps: float | None = None) -> np.ndarray:
    """A horizontal strip of keyframes, each scaled to ``height`` px, with its frame number (and time when
    ``fps`` is given) written in a white band *under* the tile, at a size that can be read when the strip
    is shown at its natural width. ``frame_numbers`` are the source-file numbers of ``indices``."""
    import cv2

    idx = list(indices) if indices is not None else keyframe_indices(len(frames))
    nums = list(frame_numbers) if frame_numbers is not None else idx
    band = 22 if labels else 0
    tiles = []
    for i, num in zip(idx, nums):
        f = frames[i]
        h, w = f.shape[:2]
        nw = max(1, round(w * height / h))
        t = cv2.resize(f, (nw, height), interpolation=cv2.INTER_AREA if h > height else cv2.INTER_NEAREST)
        if labels:
            lab = np.full((band, nw, 3), 255, np.uint8)
            text = f"#{num}" + (f"  {num / fps:.2f}s" if fps else "")
            cv2.putText(lab, text, (3, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
            t = np.concatenate([t, lab], axis=0)
        tiles.append(np.ascontiguousarray(t))
        tiles.append(np.full((height + band, 4, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1) if tiles else np.zeros((height + band, 1, 3), np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - cv2 only fails on empty images
        raise ValueError("could not encode PNG")
    return buf.tobytes()
