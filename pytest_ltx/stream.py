"""One streaming pass over a clip, shared by every metric.

A clip is decoded once, frame by frame (video and audio in one pass over the file), and each frame is
handed to every metric that is computed on it. A metric is a :class:`Consumer`: it is told the stream's
facts (``begin``), is fed frames (``feed``) and audio chunks (``feed_audio``) as they are decoded,
keeping only what it needs — downscaled frames, a few keyframes, per-frame signals — and returns its
result from ``finish``. So memory is a frame plus what the metrics keep, whatever the clip's length or
size: a 20 s 4K clip (12 GB of raw frames) is evaluated in well under 2 GB.

Frames are converted lazily and at most once per size (:meth:`StreamFrame.rgb`): a metric that reads
every frame at 256 px never makes the decoder produce full-resolution RGB, and the sizes some consumer
reads on *every* frame (``Consumer.frame_side``) are converted in the decode thread, ahead of the
metrics, so decoding overlaps the analysis on two cores.

Writing a metric::

    class Brightness(Consumer):
        name = "brightness"
        frame_side = 64                       # read every frame at 64 px (converted ahead)

        def begin(self, info):  self.means = []
        def feed(self, frame):  self.means.append(float(frame.rgb(64).mean()))
        def finish(self, info): return BrightnessResult(tuple(self.means))

:class:`KeyframeConsumer` does the keyframe sampling policy (:mod:`pytest_ltx.metrics.sampling`) for
metrics that look at a few frames per second (OCR, CLIP, structural fingerprints).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np

if TYPE_CHECKING:
    from pytest_ltx.media import Clip, ClipInfo

__all__ = ["Consumer", "KeyframeConsumer", "KeyframePictures", "Keyframes", "MediaSource", "StreamFrame", "StreamInfo", "StreamRun",
           "prefetch", "run_stream", "source_info"]


@dataclass(frozen=True)
class MediaSource:
    """A clip on disk: the video file and, optionally, a separate audio file that replaces its track."""

    path: Path
    audio_path: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if self.audio_path is not None:
            object.__setattr__(self, "audio_path", Path(self.audio_path))

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "audio_path": None if self.audio_path is None else str(self.audio_path)}

    def content_digest(self) -> str:
        """sha256 of the video file's bytes (``+`` the separate audio file's): the clip's identity in the
        evaluation cache. Hashed once per source object — an item keeps one for its whole life, and every
        look-up of the item (its remembered conclusion, each metric, the export probe) asks for it."""
        d = self.__dict__.get("_content_digest")
        if d is None:
            from pytest_ltx.evalcache import file_digest

            d = file_digest(self.path)
            if self.audio_path is not None:
                d += "+" + file_digest(self.audio_path)
            object.__setattr__(self, "_content_digest", d)
        return d


@dataclass(frozen=True)
class StreamInfo:
    """What a consumer knows about the stream. At ``begin`` the counts come from the headers (an
    estimate for containers without a frame count); at ``finish`` they are what was actually decoded."""

    clip: "ClipInfo"
    source: str | None = None
    #: index in the original file of each frame (None: 0..frames-1), for clips a reader strided
    frame_indices: np.ndarray | None = field(default=None, compare=False)

    @property
    def fps(self) -> float:
        return self.clip.fps

    @property
    def frames(self) -> int:
        return self.clip.frames

    @property
    def width(self) -> int:
        return self.clip.width

    @property
    def height(self) -> int:
        return self.clip.height

    def original_index(self, i: int) -> int:
        return int(self.frame_indices[i]) if self.frame_indices is not None else int(i)


class StreamFrame:
    """One decoded frame. ``rgb(max_side)`` converts it (longer side at most ``max_side`` px; None = full
    size), once per size; a consumer that keeps a frame should keep the array, not this object."""

    __slots__ = ("index", "time_s", "_src", "_memo")

    def __init__(self, index: int, time_s: float, src: Any) -> None:
        self.index = index
        self.time_s = time_s
        self._src = src  # an av.VideoFrame or an RGB ndarray
        self._memo: dict[int | None, np.ndarray] = {}

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) at full resolution."""
        s = self._src
        return (int(s.shape[1]), int(s.shape[0])) if isinstance(s, np.ndarray) else (int(s.width), int(s.height))

    def rgb(self, max_side: int | None = None) -> np.ndarray:
        key = max_side if max_side and max(self.size) > max_side else None
        a = self._memo.get(key)
        if a is None:
            a = _convert(self._src, key)
            a.setflags(write=False)
            self._memo[key] = a
        return a

    def gray(self, max_side: int | None = None) -> np.ndarray:
        import cv2

        return cv2.cvtColor(self.rgb(max_side), cv2.COLOR_RGB2GRAY)


def _convert(src: Any, max_side: int | None) -> np.ndarray:
    if isinstance(src, np.ndarray):
        if max_side is None:
            return src
        import cv2

        h, w = src.shape[:2]
        s = max_side / max(h, w)
        return cv2.resize(src, (max(2, round(w * s)), max(2, round(h * s))), interpolation=cv2.INTER_AREA)
    from pytest_ltx.media import frame_rgb

    return frame_rgb(src, max_side)


class Consumer:
    """A metric computed in the streaming pass. Subclasses set ``name`` (the results section) and
    override what they need; the defaults ignore the stream."""

    #: the results section this consumer fills (``motion``, ``text``, …)
    name: str = ""
    #: longer side (px) this consumer reads EVERY frame at: converted ahead, in the decode thread
    frame_side: int | None = None
    #: False: the pass need not decode pixels for this consumer (an audio-only metric)
    wants_video: bool = True
    #: True: ``feed_audio`` is called with the clip's audio
    wants_audio: bool = False

    def begin(self, info: StreamInfo) -> None:
        """Called once before any frame."""

    def feed(self, frame: StreamFrame) -> None:
        """Called for every video frame, in order."""

    def feed_audio(self, chunk: np.ndarray, sample_rate: int) -> None:
        """Called with consecutive float32 ``[channels, n]`` chunks of the audio track (if there is one)."""

    def finish(self, info: StreamInfo) -> Any:
        """Called once after the last frame with the facts as decoded; returns the result."""
        raise NotImplementedError


class KeyframeConsumer(Consumer):
    """A consumer that looks only at keyframes: ``sample_fps`` per second plus the first and the last
    frame (:func:`pytest_ltx.metrics.sampling.sample_indices`, decided online, so the stream's length need
    not be known in advance). Subclasses implement ``take(index, frame)`` and ``result(info, indices)``."""

    def __init__(self, sample_fps: float = 2.0) -> None:
        self.sample_fps = float(sample_fps)
        self._grid: Any = None
        self._held: StreamFrame | None = None
        self._taken: list[int] = []

    def begin(self, info: StreamInfo) -> None:
        from pytest_ltx.metrics.sampling import KeyframeGrid

        self._grid = KeyframeGrid(info.fps, self.sample_fps)
        self._taken = []
        self._held = None

    def feed(self, frame: StreamFrame) -> None:
        if self._grid.contains(frame.index):
            self._held = None
            self._taken.append(frame.index)
            self.take(frame.index, frame)
        else:
            self._held = frame  # the last frame is a keyframe too; only known to be last at the end

    def finish(self, info: StreamInfo) -> Any:
        if self._held is not None:
            self._taken.append(self._held.index)
            self.take(self._held.index, self._held)
            self._held = None
        self.flush()
        return self.result(info, list(self._taken))

    def take(self, index: int, frame: StreamFrame) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Process anything a batching consumer still holds (called before ``result``)."""

    def result(self, info: StreamInfo, indices: list[int]) -> Any:
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class Keyframes:
    """Small pictures of a clip's keyframes (the sampling policy's), for people: the baseline's review
    strip and the report. ``frames`` is uint8 ``[K, height, w, 3]``; ``indices`` their frame numbers."""

    frames: np.ndarray
    indices: tuple[int, ...]
    fps: float

    def to_dict(self) -> dict[str, Any]:
        return {"indices": list(self.indices), "size": list(self.frames.shape[1:3]), "fps": self.fps}


class KeyframePictures(KeyframeConsumer):
    """Keeps each keyframe scaled to ``height`` px (about 30 KB each): what golden baselines and the
    report show instead of the video."""

    name = "keyframes"

    def __init__(self, sample_fps: float = 2.0, height: int = 96) -> None:
        super().__init__(sample_fps)
        self.height = height

    def config(self) -> dict[str, Any]:
        return {"sample_fps": self.sample_fps, "height": self.height}

    def begin(self, info: StreamInfo) -> None:
        super().begin(info)
        self._pics: list[np.ndarray] = []

    def take(self, index: int, frame: StreamFrame) -> None:
        import cv2

        f = frame.rgb()
        h, w = f.shape[:2]
        nw = max(1, round(w * self.height / h))
        interp = cv2.INTER_AREA if h > self.height else cv2.INTER_LINEAR
        self._pics.append(cv2.resize(np.ascontiguousarray(f), (nw, self.height), interpolation=interp))

    def result(self, info: StreamInfo, indices: list[int]) -> Keyframes:
        pics = np.stack(self._pics) if self._pics else np.zeros((0, self.height, 1, 3), np.uint8)
        return Keyframes(frames=pics, indices=tuple(info.original_index(i) for i in indices), fps=float(info.fps))


def source_info(source: "Clip | MediaSource") -> StreamInfo:
    """The stream's facts before decoding: the headers for a file, the arrays for an in-memory clip."""
    from pytest_ltx.media import Clip, probe

    if isinstance(source, Clip):
        return StreamInfo(clip=source.info(), source=source.source, frame_indices=source.frame_indices)
    info = probe(source.path)
    if source.audio_path is not None:
        from pytest_ltx.media import probe_audio

        sr, ch, dur = probe_audio(source.audio_path)
        info = replace(info, audio_sample_rate=sr, audio_channels=ch, audio_duration_s=dur)
    return StreamInfo(clip=info, source=str(source.path))


@dataclass
class StreamRun:
    """What one pass produced: the facts as decoded, each consumer's result or error, and the seconds
    each consumer spent (its own work; decoding is shared and reported as ``decode``)."""

    info: StreamInfo
    results: dict[str, Any]
    errors: dict[str, BaseException]
    seconds: dict[str, float]


def _events_from_clip(clip: "Clip") -> Iterator[tuple[str, Any]]:
    for f in clip.frames:
        yield "video", f
    if clip.has_audio:
        assert clip.audio is not None and clip.sample_rate
        a = clip.audio
        step = 1 << 16
        for s in range(0, a.shape[1], step):
            yield "audio", (a[:, s : s + step], int(clip.sample_rate))


def _events_from_file(src: MediaSource, video: bool, audio: bool) -> Iterator[tuple[str, Any]]:
    from pytest_ltx.media import iter_media

    yield from iter_media(src.path, video=video, audio=audio and src.audio_path is None)
    if audio and src.audio_path is not None:
        yield from iter_media(src.audio_path, video=False, audio=True)


def prefetch(items: Iterable[Any], depth: int = 6, name: str = "ltx-decode") -> Iterator[Any]:
    """Iterate ``items`` in a worker thread, ``depth`` items ahead of the caller.

    PyAV's decoder and scaler and OpenCV release the GIL, so on two cores decoding (and whatever work the
    ``items`` generator does per item) overlaps the analysis instead of adding to it; memory stays bounded
    at ``depth`` items. Errors (a truncated file) are re-raised in the caller's thread; a caller that stops
    early stops the worker.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work() -> None:
        try:
            for it in items:
                while not stop.is_set():
                    try:
                        q.put(it, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer thread
            q.put(e)

    t = threading.Thread(target=work, name=name, daemon=True)
    t.start()
    try:
        while True:
            it = q.get()
            if it is done:
                return
            if isinstance(it, BaseException):
                raise it
            yield it
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            t.join(timeout=0.05)


def _converted(events: Iterable[tuple[str, Any]], sides: Sequence[int | None],
               fps: float) -> Iterator[tuple[str, Any]]:
    """Video payloads as :class:`StreamFrame` s already converted to ``sides`` (run in the prefetch worker,
    so the conversion overlaps the consumers too)."""
    i = 0
    for kind, payload in events:
        if kind == "video":
            f = StreamFrame(i, i / fps, payload)
            for s in sides:
                f.rgb(s)
            payload = f
            i += 1
        yield kind, payload


def run_stream(source: "Clip | MediaSource", consumers: Sequence[Consumer],
               info: StreamInfo | None = None) -> StreamRun:
    """Feed one pass over ``source`` to ``consumers``. A consumer that raises is dropped with its error
    (the others carry on; ``ImportError`` propagates: a missing extra is the caller's to report). A file
    that cannot be decoded raises :class:`pytest_ltx.media.ClipReadError`."""
    from pytest_ltx.media import Clip

    info = info or source_info(source)
    live: list[Consumer] = []
    errors: dict[str, BaseException] = {}
    seconds: dict[str, float] = {}

    def call(c: Consumer, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args)
        except ImportError:
            raise
        except Exception as e:  # a metric bug or a missing model: an error for this consumer only
            errors[c.name] = e
            if c in live:
                live.remove(c)
            return None
        finally:
            seconds[c.name] = seconds.get(c.name, 0.0) + time.perf_counter() - t0

    for c in consumers:
        live.append(c)
        call(c, c.begin, info)
    video = any(c.wants_video for c in live)
    # the audio is decoded whenever the file is (it costs little next to the video), so the stream facts
    # (audio duration as decoded) do not depend on which metrics ran
    audio = video or any(c.wants_audio for c in live)
    sides = sorted({c.frame_side for c in live if c.frame_side and c.wants_video})
    if isinstance(source, Clip):
        events: Iterable[tuple[str, Any]] = _events_from_clip(source)
    else:
        events = _events_from_file(source, video, audio)
    n = 0
    n_audio = 0
    sr: int | None = None
    channels: int | None = None
    t0 = time.perf_counter()
    if video or audio:
        for kind, payload in prefetch(_converted(events, sides, info.fps)):
            if kind == "video":
                n += 1
                for c in [c for c in live if c.wants_video]:
                    call(c, c.feed, payload)
            else:
                chunk, rate = payload
                sr, channels = int(rate), int(chunk.shape[0])
                n_audio += int(chunk.shape[1])
                for c in [c for c in live if c.wants_audio]:
                    call(c, c.feed_audio, chunk, sr)
    spent = sum(seconds.values())
    seconds["decode"] = max(0.0, time.perf_counter() - t0 - spent)
    final = info
    if video:
        ci = replace(info.clip, frames=n, duration_s=n / info.fps)
        if audio:
            ci = replace(ci, audio_sample_rate=sr if n_audio else None, audio_channels=channels if n_audio else None,
                         audio_duration_s=(n_audio / sr) if (n_audio and sr) else None)
        final = replace(info, clip=ci)
    results: dict[str, Any] = {}
    for c in list(live):
        r = call(c, c.finish, final)
        if c.name not in errors:
            results[c.name] = r
    return StreamRun(info=final, results=results, errors=errors, seconds=seconds)

