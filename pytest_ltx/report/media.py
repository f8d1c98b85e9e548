"""An item's report media, written while its clip is still in memory: the clip itself (copied beside the
report, so the report survives a cache clean-up and can be uploaded as one folder), the keyframes at full
size, golden / now / difference keyframes when there is a baseline, the frames where OCR found text, and
the audio and visual envelopes the A/V plot draws.

Everything lands in ``<report dir>/media/<slug>-<hash>/`` (:func:`~pytest_ltx.report.files.media_name`),
and the returned manifest — paths relative to the report folder — is stored in the item's result
(``artifacts``). The HTML report is then a pure function of ``results.json`` and these files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_ltx.report.files import ReportWriteError, copy_atomic, file_mode, media_name, write_atomic
from pytest_ltx.report.keyframes import keyframe_indices

if TYPE_CHECKING:
    from pytest_ltx.baseline import BaselineRecord
    from pytest_ltx.media import Clip

__all__ = ["MEDIA_DIR", "MAX_CLIP_COPY_BYTES", "item_media_dir", "write_item_media"]

MEDIA_DIR = "media"
#: a clip larger than this is linked where it lies instead of being copied beside the report
MAX_CLIP_COPY_BYTES = 256 * 1024 * 1024
#: the longest side of a stored keyframe (the report shows them small and enlarges on click)
KEYFRAME_MAX_SIDE = 768
#: frames with OCR detections kept for the box overlay
MAX_OCR_FRAMES = 6
#: A/V plot envelopes: audio RMS hop
ENVELOPE_HOP_S = 0.005


def item_media_dir(report_dir: Path, nodeid: str) -> Path:
    return Path(report_dir) / MEDIA_DIR / media_name(nodeid)


def _rel(path: Path, report_dir: Path) -> str:
    return path.resolve().relative_to(report_dir.resolve()).as_posix()


def _jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - only on empty images
        raise ValueError("could not encode JPEG")
    return buf.tobytes()


def _fit(frame: np.ndarray, max_side: int = KEYFRAME_MAX_SIDE) -> np.ndarray:
    """Down-scale a large frame; up-scale a tiny one (nearest, so a 64 px render stays honest) to at least
    192 px so it can be looked at."""
    import cv2

    h, w = frame.shape[:2]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        return cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    if max(h, w) < 192:
        k = int(np.ceil(192 / max(h, w)))
        return np.repeat(np.repeat(frame, k, axis=0), k, axis=1)
    return frame


def _row(tiles: list[np.ndarray], gap: int = 4) -> np.ndarray:
    h = max(t.shape[0] for t in tiles)
    out = []
    for t in tiles:
        if t.shape[0] != h:
            pad = np.full((h - t.shape[0], t.shape[1], 3), 255, np.uint8)
            t = np.concatenate([t, pad], axis=0)
        out += [t, np.full((h, gap, 3), 255, np.uint8)]
    return np.concatenate(out[:-1], axis=1)


def _golden_rows(clip: "Clip", base: "BaselineRecord") -> dict[str, Any] | None:
    """Golden (the baseline's review thumbnails), now (this clip at the same source frames, same size) and
    their absolute difference (×4, so a small drift is visible), one row each."""
    import cv2

    thumbs = base.thumbnails
    if thumbs is None or not len(base.keyframe_frames):
        return None
    frames = list(base.keyframe_frames)[: len(thumbs)]
    golden, now, diff, shown = [], [], [], []
    for k, f in enumerate(frames):
        idx = _position(clip, f)
        if idx is None:
            continue
        g = np.asarray(thumbs[k])
        h, w = g.shape[:2]
        n = cv2.resize(clip.frames[idx], (w, h), interpolation=cv2.INTER_AREA)
        d = np.abs(n.astype(np.int16) - g.astype(np.int16)).max(axis=2)
        heat = cv2.applyColorMap(np.clip(d * 4, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]
        scale = max(1, int(np.ceil(144 / h)))  # the baseline keeps 72 px thumbnails: show them at ≥ 144 px
        up = (lambda a: np.repeat(np.repeat(a, scale, axis=0), scale, axis=1))
        golden.append(up(g))
        now.append(up(n))
        diff.append(up(np.ascontiguousarray(heat)))
        shown.append({"frame": int(f), "time_s": round(f / clip.fps, 3) if clip.fps else None,
                      "mean_abs_diff": round(float(d.mean()), 2)})
    if not shown:
        return None
    return {"frames": shown, "rows": {"golden": _row(golden), "now": _row(now), "diff": _row(diff)}}


def _position(clip: "Clip", source_frame: int) -> int | None:
    """The index into ``clip.frames`` of a source-file frame number (clips may be subsampled)."""
    n = clip.num_frames
    for i in range(n):
        if clip.original_index(i) == source_frame:
            return i
    return None


def _signals(clip: "Clip") -> dict[str, Any]:
    """Envelopes for the A/V plot: audio RMS (mono, 5 ms hops) and visual change (mean abs difference of
    consecutive 64 px gray frames). Small: about 200 numbers per second of audio."""
    import cv2

    out: dict[str, Any] = {"fps": clip.fps}
    gray = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (64, 64), interpolation=cv2.INTER_AREA)
            .astype(np.float32) for f in clip.frames]
    if len(gray) > 1:
        out["visual_change"] = [0.0] + [round(float(np.abs(b - a).mean()), 3) for a, b in zip(gray, gray[1:])]
    if clip.audio is not None and clip.sample_rate:
        mono = np.asarray(clip.audio, dtype=np.float32).mean(axis=0)
        hop = max(1, int(clip.sample_rate * ENVELOPE_HOP_S))
        n = len(mono) // hop
        if n:
            rms = np.sqrt((mono[: n * hop].reshape(n, hop) ** 2).mean(axis=1))
            out["audio_rms"] = [round(float(v), 5) for v in rms]
            out["audio_hop_s"] = hop / clip.sample_rate
    return out


def write_item_media(report_dir: Path, nodeid: str, clip: "Clip", *, mp4: Path | None,
                     evaluation: dict[str, Any] | None = None, baseline: "BaselineRecord | None" = None) -> dict[str, Any]:
    """Write the item's media; return the manifest stored as the result's ``artifacts``.

    Raises :class:`ReportWriteError` (one line) when the report folder cannot take them; the caller
    records it and the item's verdict is unaffected.
    """
    report_dir = Path(report_dir)
    d = item_media_dir(report_dir, nodeid)
    out: dict[str, Any] = {"dir": _rel(d, report_dir) if d.exists() else f"{MEDIA_DIR}/{d.name}"}

    if mp4 is not None and Path(mp4).is_file():
        src = Path(mp4)
        if src.resolve().parent == d.resolve():  # a test card drawn straight into the report
            try:
                src.chmod(file_mode())
            except OSError as e:
                raise ReportWriteError(src, e) from e
            out["clip"] = _rel(src, report_dir)
        elif src.stat().st_size <= MAX_CLIP_COPY_BYTES:
            out["clip"] = _rel(copy_atomic(src, d / "clip.mp4"), report_dir)
        else:
            out["clip_external"] = str(src.resolve())

    fps = clip.fps or 0.0
    idx = keyframe_indices(clip.num_frames, 8)
    kfs = []
    for i in idx:
        f = clip.original_index(i)
        p = write_atomic(d / f"keyframe-{f:05d}.jpg", _jpeg(_fit(clip.frames[i])))
        kfs.append({"frame": int(f), "time_s": round(f / fps, 3) if fps else None, "file": _rel(p, report_dir)})
    out["keyframes"] = kfs
    if idx:
        from pytest_ltx.report.keyframes import keyframe_strip

        out["strip"] = _rel(write_atomic(d / "keyframes.jpg", _jpeg(keyframe_strip(
            clip.frames, idx, height=min(160, max(96, clip.frames.shape[1])),
            frame_numbers=[clip.original_index(i) for i in idx], fps=fps or None))), report_dir)

    if baseline is not None:
        g = _golden_rows(clip, baseline)
        if g is not None:
            files = {name: _rel(write_atomic(d / f"baseline-{name}.jpg", _jpeg(row)), report_dir)
                     for name, row in g["rows"].items()}
            out["baseline_keyframes"] = {"frames": g["frames"], **files}

    text = (evaluation or {}).get("text") or {}
    frames_with_text = sorted({int(det["frame"]) for det in text.get("detections", []) if "frame" in det})
    ocr = []
    for f in frames_with_text[:MAX_OCR_FRAMES]:
        i = _position(clip, f)
        if i is None:
            continue
        p = write_atomic(d / f"ocr-{f:05d}.jpg", _jpeg(clip.frames[i], 92))  # full size: boxes are in pixels
        ocr.append({"frame": f, "file": _rel(p, report_dir)})
    if ocr:
        out["ocr_frames"] = ocr

    out["signals"] = _rel(write_atomic(d / "signals.json", json.dumps(_signals(clip))), report_dir)
    out["dir"] = _rel(d, report_dir)
    return out
