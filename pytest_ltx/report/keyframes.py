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


def keyframe_strip(frames: np.ndarray, indices: Sequence[int] | None = None, *, height: int = 96,
                   labels: bool = True) -> np.ndarray:
    """A horizontal strip of keyframes, each scaled to ``height`` px and labelled with its frame number."""
    import cv2

    idx = list(indices) if indices is not None else keyframe_indices(len(frames))
    tiles = []
    for i in idx:
        f = frames[i]
        h, w = f.shape[:2]
        nw = max(1, round(w * height / h))
        t = cv2.resize(f, (nw, height), interpolation=cv2.INTER_AREA if h > height else cv2.INTER_NEAREST)
        t = np.ascontiguousarray(t)
        if labels:
            cv2.rectangle(t, (0, 0), (min(nw, 40), 14), (0, 0, 0), -1)
            cv2.putText(t, str(i), (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(t)
        tiles.append(np.full((height, 2, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1) if tiles else np.zeros((height, 1, 3), np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - cv2 only fails on empty images
        raise ValueError("could not encode PNG")
    return buf.tobytes()
