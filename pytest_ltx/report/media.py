"""An item's report media, collected in the clip's one streaming pass (:class:`ReportMediaConsumer`, cached
with the metrics) and written after the checks: the clip itself (copied beside the
report, so the report survives a cache clean-up and can be uploaded as one folder), the keyframes at full
size, golden / now / difference keyframes when there is a baseline, the frames where OCR found text, and
the audio and visual envelopes the A/V plot draws.

Everything lands in ``<report dir>/media/<slug>-<hash>/`` (:func:`~pytest_ltx.report.files.media_name`),
and the returned manifest — paths relative to the report folder — is stored in the item's result
(``artifacts``). The HTML report is then a pure function of ``results.json`` and these files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from pytest_ltx.report.files import ReportFiles, ReportWriteError, copy_atomic, file_mode, media_name, write_atomic
from pytest_ltx.report.keyframes import keyframe_indices
from pytest_ltx.stream import Consumer, StreamFrame, StreamInfo

if TYPE_CHECKING:
    from pytest_ltx.baseline import BaselineRecord
    from pytest_ltx.media import Clip

__all__ = ["MEDIA_DIR", "MAX_CLIP_COPY_BYTES", "ReportFrames", "ReportMediaConsumer", "intact_media", "item_media_dir",
           "media_consumer", "media_key_of", "write_item_media"]

MEDIA_DIR = "media"
#: a clip larger than this is linked where it lies instead of being copied beside the report
MAX_CLIP_COPY_BYTES = 256 * 1024 * 1024
#: the longest side of a stored keyframe (the report shows them small and enlarges on click)
KEYFRAME_MAX_SIDE = 768
#: frames with OCR detections kept for the box overlay
MAX_OCR_FRAMES = 6
#: A/V plot envelopes: audio RMS hop
ENVELOPE_HOP_S = 0.005


def _upscale(a: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor (keeps thumbnail pixels crisp)."""
    return np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)


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


def _shrink(frame: np.ndarray, max_side: int = KEYFRAME_MAX_SIDE) -> np.ndarray:
    """Down-scale a frame larger than ``max_side`` (what the streaming pass keeps, and caches)."""
    import cv2

    h, w = frame.shape[:2]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        return cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return frame


def _fit(frame: np.ndarray, max_side: int = KEYFRAME_MAX_SIDE) -> np.ndarray:
    """Down-scale a large frame; up-scale a tiny one (nearest, so a 64 px render stays honest) to at least
    192 px so it can be looked at (at the end of the pass: the frames held while streaming stay small)."""
    frame = _shrink(frame, max_side)
    h, w = frame.shape[:2]
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


def _golden_rows(frames: "ReportFrames", base: "BaselineRecord") -> dict[str, Any] | None:
    """Golden (the baseline's review thumbnails), now (this clip at the same source frames, same size) and
    their absolute difference (×4, so a small drift is visible), one row each."""
    import cv2

    thumbs = base.thumbnails
    if thumbs is None or not len(base.keyframe_frames):
        return None
    golden, now, diff, shown = [], [], [], []
    for k, f in enumerate(list(base.keyframe_frames)[: len(thumbs)]):
        n = frames.golden_now.get(int(f))
        if n is None:
            continue
        g = np.asarray(thumbs[k])
        h, w = g.shape[:2]
        if n.shape[:2] != (h, w):
            n = cv2.resize(n, (w, h), interpolation=cv2.INTER_AREA)
        d = np.abs(n.astype(np.int16) - g.astype(np.int16)).max(axis=2)
        heat = cv2.applyColorMap(np.clip(d * 4, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]
        scale = max(1, int(np.ceil(144 / h)))  # the baseline keeps 72 px thumbnails: show them at ≥ 144 px
        golden.append(_upscale(g, scale))
        now.append(_upscale(n, scale))
        diff.append(_upscale(np.ascontiguousarray(heat), scale))
        shown.append({"frame": int(f), "time_s": round(f / frames.fps, 3) if frames.fps else None,
                      "mean_abs_diff": round(float(d.mean()), 2)})
    if not shown:
        return None
    return {"frames": shown, "rows": {"golden": _row(golden), "now": _row(now), "diff": _row(diff)}}


@dataclass(frozen=True, eq=False)
class ReportFrames:
    """What the report shows of a clip, collected in the streaming pass (:class:`ReportMediaConsumer`)
    so the clip is never held: 8 keyframes (≤ 768 px), this clip at the baseline's keyframes (at the
    baseline thumbnails' size) and the A/V plot's envelopes."""

    fps: float
    num_frames: int
    #: (source frame, the keyframe as the report shows it: a JPEG, at most KEYFRAME_MAX_SIDE px), in order —
    #: encoded here, so the evaluation cache holds kilobytes per clip, not megabytes of pixels
    keyframes: tuple[tuple[int, bytes], ...]
    #: source frame -> RGB at the baseline thumbnails' size
    golden_now: dict[int, np.ndarray]
    signals: dict[str, Any]
    #: the keyframe strip (JPEG), None without keyframes
    strip: bytes | None = None


class ReportMediaConsumer(Consumer):
    """Collects :class:`ReportFrames` while the clip streams past the metrics."""

    name = "report_media"
    frame_side = 256  # the envelopes read every frame at the motion metric's size (converted once)
    wants_audio = True

    def __init__(self, golden_frames: Sequence[int] = (), golden_size: tuple[int, int] | None = None) -> None:
        self.golden_frames = tuple(int(f) for f in golden_frames)
        self.golden_size = golden_size

    def config(self) -> dict[str, Any]:
        return {"format": 2, "max_side": KEYFRAME_MAX_SIDE, "golden_frames": list(self.golden_frames),
                "golden_size": list(self.golden_size) if self.golden_size else None, "hop_s": ENVELOPE_HOP_S}

    def begin(self, info: StreamInfo) -> None:
        self._info = info
        self._want = set(keyframe_indices(info.frames, 8))
        self._golden_set = set(self.golden_frames) if self.golden_size else set()
        self._kf: dict[int, np.ndarray] = {}
        self._golden: dict[int, np.ndarray] = {}
        self._last: StreamFrame | None = None
        self._prev: np.ndarray | None = None
        self._change: list[float] = []
        self._rem = np.zeros(0, np.float32)
        self._rms: list[float] = []
        self._sr: int | None = None

    def feed(self, frame: StreamFrame) -> None:
        import cv2

        g = cv2.resize(cv2.cvtColor(np.ascontiguousarray(frame.rgb(256)), cv2.COLOR_RGB2GRAY), (64, 64),
                       interpolation=cv2.INTER_AREA).astype(np.float32)
        self._change.append(0.0 if self._prev is None else round(float(np.abs(g - self._prev).mean()), 3))
        self._prev = g
        src = self._info.original_index(frame.index)
        if frame.index in self._want:
            self._kf[frame.index] = _shrink(np.ascontiguousarray(frame.rgb(KEYFRAME_MAX_SIDE)))
        else:
            self._last = frame
        if src in self._golden_set and self.golden_size:
            self._golden[src] = cv2.resize(np.ascontiguousarray(frame.rgb()), self.golden_size,
                                           interpolation=cv2.INTER_AREA)

    def feed_audio(self, chunk: np.ndarray, sample_rate: int) -> None:
        self._sr = int(sample_rate)
        hop = max(1, int(self._sr * ENVELOPE_HOP_S))
        mono = np.concatenate([self._rem, np.asarray(chunk, np.float32).mean(axis=0)])
        n = len(mono) // hop
        if n:
            rms = np.sqrt((mono[: n * hop].reshape(n, hop) ** 2).mean(axis=1))
            self._rms += [round(float(v), 5) for v in rms]
        self._rem = mono[n * hop:]

    def finish(self, info: StreamInfo) -> ReportFrames:
        if self._want and max(self._want) >= info.frames and self._last is not None:
            # the headers promised more frames than there were: the last decoded one stands in
            self._kf[self._last.index] = _shrink(np.ascontiguousarray(self._last.rgb(KEYFRAME_MAX_SIDE)))
        self._last = None
        signals: dict[str, Any] = {"fps": info.fps}
        if len(self._change) > 1:
            signals["visual_change"] = self._change
        if self._rms and self._sr:
            signals["audio_rms"] = self._rms
            signals["audio_hop_s"] = max(1, int(self._sr * ENVELOPE_HOP_S)) / self._sr
        shown = [(info.original_index(i), _fit(self._kf[i])) for i in sorted(self._kf)]
        kfs = tuple((f, _jpeg(img)) for f, img in shown)
        strip = _jpeg(_strip([img for _, img in shown], [f for f, _ in shown], info.fps or None)) if shown else None
        return ReportFrames(fps=float(info.fps), num_frames=info.frames, keyframes=kfs, golden_now=self._golden,
                            signals=signals, strip=strip)


def media_consumer(baseline: "BaselineRecord | None") -> ReportMediaConsumer:
    """The consumer for an item whose golden baseline is ``baseline`` (None: no golden rows)."""
    if baseline is None or baseline.thumbnails is None or not len(baseline.keyframe_frames):
        return ReportMediaConsumer()
    h, w = np.asarray(baseline.thumbnails).shape[1:3]
    return ReportMediaConsumer(list(baseline.keyframe_frames)[: len(baseline.thumbnails)], (int(w), int(h)))


def write_item_media(report_dir: Path, nodeid: str, source: "ReportFrames | Clip", *, mp4: Path | None,
                     evaluation: dict[str, Any] | None = None, baseline: "BaselineRecord | None" = None,
                     ocr_images: Mapping[int, bytes] | None = None) -> dict[str, Any]:
    """Write the item's media; return the manifest stored as the result's ``artifacts``.

    ``source`` is what the streaming pass collected (:class:`ReportFrames`), or an in-memory clip (run
    through the same consumer here). ``ocr_images`` are the JPEGs of the frames where OCR found text
    (kept by the OCR metric in the same pass). Raises :class:`ReportWriteError` (one line) when the report
    folder cannot take them; the caller records it and the item's verdict is unaffected.
    """
    from pytest_ltx.media import Clip

    frames: ReportFrames
    if isinstance(source, Clip):
        from pytest_ltx.stream import run_stream

        clip = source
        frames = run_stream(clip, [media_consumer(baseline)]).results["report_media"]
        if ocr_images is None:
            ocr_images = {}
            for det in ((evaluation or {}).get("text") or {}).get("detections", []):
                f = int(det["frame"])
                pos = [i for i in range(clip.num_frames) if clip.original_index(i) == f]
                if pos and f not in ocr_images:
                    ocr_images[f] = _jpeg(clip.frames[pos[0]], 92)
    else:
        frames = source
    report_dir = Path(report_dir)
    d = item_media_dir(report_dir, nodeid)
    key = _media_key(nodeid, frames, mp4, evaluation, baseline, ocr_images)
    done = _written(d, report_dir, key)
    if done is not None:  # a warm rerun: this folder already holds exactly these pictures
        return done
    out = _write_media(report_dir, d, frames, mp4, evaluation, baseline, ocr_images)
    write_atomic(d / MANIFEST, json.dumps({"key": key, "artifacts": out}, sort_keys=True))
    return out


#: the item's media folder's record of what it holds (the inputs' key and the manifest returned)
MANIFEST = "media.json"
#: bump when what write_item_media draws changes (the key then misses and every picture is redrawn)
MEDIA_FORMAT = 1


def _media_key(nodeid: str, frames: ReportFrames, mp4: Path | None, evaluation: Mapping[str, Any] | None,
               baseline: "BaselineRecord | None", ocr_images: Mapping[int, bytes] | None) -> str:
    """Everything the pictures are drawn from: the collected frames and envelopes, the clip file (path,
    size, modification time), the detections, the OCR frames and the baseline's thumbnails."""
    import hashlib

    h = hashlib.sha256()

    def add(x: Any) -> None:
        if isinstance(x, np.ndarray):
            a = np.ascontiguousarray(x)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
        elif isinstance(x, (bytes, bytearray)):
            h.update(bytes(x))
        else:
            h.update(json.dumps(x, sort_keys=True, default=str).encode())
        h.update(b"\0")

    add([MEDIA_FORMAT, nodeid, frames.fps, frames.num_frames, frames.signals])
    for f, jpeg in frames.keyframes:
        add(int(f))
        add(jpeg)
    add(frames.strip)
    for f in sorted(frames.golden_now):
        add(int(f))
        add(frames.golden_now[f])
    if mp4 is None:
        add(None)
    else:
        try:
            st = Path(mp4).stat()
            add([str(Path(mp4).resolve()), st.st_size, st.st_mtime_ns])
        except OSError:
            add("no clip")
    add(((evaluation or {}).get("text") or {}).get("detections", []))
    for f in sorted(ocr_images or {}):
        add(int(f))
        add((ocr_images or {})[f])
    if baseline is not None and baseline.thumbnails is not None:
        add(list(map(int, baseline.keyframe_frames)))
        add(np.asarray(baseline.thumbnails))
    return h.hexdigest()


def intact_media(report_dir: Path, nodeid: str, key: Any) -> dict[str, Any] | None:
    """The manifest of the item's media folder when it was written from the inputs ``key`` names (a
    :func:`media_key_of` of an earlier run) and every file it lists is still there; else None."""
    if not isinstance(key, str):
        return None
    return _written(item_media_dir(report_dir, nodeid), Path(report_dir), key)


def media_key_of(report_dir: Path, nodeid: str) -> str | None:
    """The inputs' key the item's media folder was last written from (its ``media.json``), or None."""
    rec = _manifest(item_media_dir(report_dir, nodeid))
    return rec["key"] if rec is not None else None


def _manifest(d: Path) -> dict[str, Any] | None:
    """``d``'s media.json when it is well formed (a string key, an artifacts object), else None."""
    try:
        rec = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("key"), str) or not isinstance(rec.get("artifacts"), dict):
        return None
    return rec


def _written(d: Path, report_dir: Path, key: str) -> dict[str, Any] | None:
    """The manifest of ``d`` when it was written from the same inputs and every file it names is there."""
    rec = _manifest(d)
    if rec is None or rec["key"] != key:
        return None
    out: dict[str, Any] = rec["artifacts"]
    names: list[Any] = [v for k, v in out.items() if k in ("clip", "strip", "signals") and isinstance(v, str)]
    names += [e.get("file") for k in ("keyframes", "ocr_frames") for e in out.get(k) or [] if isinstance(e, dict)]
    names += [v for k, v in (out.get("baseline_keyframes") or {}).items() if k != "frames" and isinstance(v, str)]
    files = ReportFiles(report_dir)
    if not all(isinstance(n, str) and files.file(n) is not None for n in names):
        return None
    return out


def _write_media(report_dir: Path, d: Path, frames: ReportFrames, mp4: Path | None,
                 evaluation: dict[str, Any] | None, baseline: "BaselineRecord | None",
                 ocr_images: Mapping[int, bytes] | None) -> dict[str, Any]:
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

    fps = frames.fps or 0.0
    kfs = []
    for f, jpeg in frames.keyframes:
        p = write_atomic(d / f"keyframe-{f:05d}.jpg", jpeg)
        kfs.append({"frame": int(f), "time_s": round(f / fps, 3) if fps else None, "file": _rel(p, report_dir)})
    out["keyframes"] = kfs
    if frames.strip is not None:
        out["strip"] = _rel(write_atomic(d / "keyframes.jpg", frames.strip), report_dir)

    if baseline is not None:
        g = _golden_rows(frames, baseline)
        if g is not None:
            files = {name: _rel(write_atomic(d / f"baseline-{name}.jpg", _jpeg(row)), report_dir)
                     for name, row in g["rows"].items()}
            out["baseline_keyframes"] = {"frames": g["frames"], **files}

    text = (evaluation or {}).get("text") or {}
    frames_with_text = sorted({int(det["frame"]) for det in text.get("detections", []) if "frame" in det})
    ocr = []
    for f in frames_with_text[:MAX_OCR_FRAMES]:
        data = (ocr_images or {}).get(f)
        if data is None:
            continue
        p = write_atomic(d / f"ocr-{f:05d}.jpg", data)  # full size: boxes are in pixels
        ocr.append({"frame": f, "file": _rel(p, report_dir)})
    if ocr:
        out["ocr_frames"] = ocr

    out["signals"] = _rel(write_atomic(d / "signals.json", json.dumps(frames.signals)), report_dir)
    out["dir"] = _rel(d, report_dir)
    return out


def _strip(imgs: list[np.ndarray], numbers: list[int], fps: float | None) -> np.ndarray:
    """The keyframe strip from the stored keyframes (each already at most 768 px)."""
    from pytest_ltx.report.keyframes import keyframe_strip

    h = min(160, max(96, min(i.shape[0] for i in imgs)))
    return keyframe_strip(imgs, list(range(len(imgs))), height=h, frame_numbers=numbers, fps=fps)
