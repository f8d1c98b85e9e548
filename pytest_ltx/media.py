"""Clips in memory and on disk.

One type, :class:`Clip`, carries what every metric needs: uint8 RGB frames ``[T, H, W, 3]``, the frame
rate, and optionally float32 audio ``[channels, samples]`` in [-1, 1] with its sample rate. Files are
written as H.264 + AAC mp4 with PyAV and read back through the same type, so a rendered clip and a
pre-rendered one are evaluated the same way (and the metrics see the codec's real effect on the clip).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from pytest_ltx.errors import ClipReadError  # noqa: F401 (re-exported)
from pytest_ltx.storage import atomic_file

__all__ = [
    "Clip",
    "ClipInfo",
    "ClipReadError",
    "probe",
    "probe_audio",
    "read_clip",
    "iter_frames",
    "iter_media",
    "frame_rgb",
    "write_clip",
    "write_frames",
    "read_audio_file",
    "read_image_rgb",
    "resize_frames",
]


@dataclass(frozen=True, eq=False)
class Clip:
    """A video clip with optional audio, fully decoded.

    ``frames`` is uint8 ``[T, H, W, 3]`` RGB. ``audio`` is float32 ``[channels, samples]`` or None.
    ``source`` is the file the clip came from, if any (used in messages only).
    """

    frames: np.ndarray
    fps: float
    audio: np.ndarray | None = None
    sample_rate: int | None = None
    source: str | None = None
    #: index in the original file of each frame in ``frames`` (None = 0..T-1); set when a reader
    #: sampled or strided the file so metrics can still name original frame numbers.
    frame_indices: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        f = self.frames
        if f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3:
            raise ValueError(f"Clip.frames must be uint8 [T,H,W,3], got {f.dtype} {f.shape}")
        if self.fps <= 0:
            raise ValueError(f"Clip.fps must be positive, got {self.fps}")
        if self.audio is not None:
            a = self.audio
            if a.ndim == 1:
                object.__setattr__(self, "audio", a[None, :].astype(np.float32, copy=False))
            elif a.ndim != 2:
                raise ValueError(f"Clip.audio must be [channels, samples], got {a.shape}")
            else:
                object.__setattr__(self, "audio", a.astype(np.float32, copy=False))
            if not self.sample_rate or self.sample_rate <= 0:
                raise ValueError("Clip.audio needs a positive sample_rate")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def duration_s(self) -> float:
        """Video duration: frame count over frame rate."""
        return self.num_frames / self.fps

    @property
    def has_audio(self) -> bool:
        return self.audio is not None and self.audio.shape[-1] > 0

    @property
    def audio_duration_s(self) -> float | None:
        if not self.has_audio:
            return None
        assert self.audio is not None and self.sample_rate
        return self.audio.shape[-1] / self.sample_rate

    def mono(self) -> np.ndarray | None:
        """Audio down-mixed to one float32 channel, or None when the clip is silent-less (no track)."""
        if self.audio is None:
            return None
        return self.audio.mean(axis=0).astype(np.float32, copy=False)

    def original_index(self, i: int) -> int:
        """Frame number in the source file of frame ``i`` of this clip."""
        return int(self.frame_indices[i]) if self.frame_indices is not None else int(i)

    def info(self) -> "ClipInfo":
        return ClipInfo(
            frames=self.num_frames,
            fps=float(self.fps),
            width=self.width,
            height=self.height,
            duration_s=self.duration_s,
            audio_sample_rate=self.sample_rate if self.has_audio else None,
            audio_channels=int(self.audio.shape[0]) if self.has_audio and self.audio is not None else None,
            audio_duration_s=self.audio_duration_s,
        )


@dataclass(frozen=True)
class ClipInfo:
    """Stream facts of a clip; what ``probe`` returns without decoding pixels."""

    frames: int
    fps: float
    width: int
    height: int
    duration_s: float
    audio_sample_rate: int | None
    audio_channels: int | None = None
    audio_duration_s: float | None = None

    def to_dict(self) -> dict:
        return {
            "frames": self.frames,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "duration_s": round(self.duration_s, 6),
            "audio_sample_rate": self.audio_sample_rate,
            "audio_channels": self.audio_channels,
            "audio_duration_s": None if self.audio_duration_s is None else round(self.audio_duration_s, 6),
        }


def resize_frames(frames: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale ``[T,H,W,3]`` so the longer side is at most ``max_side`` (area interpolation)."""
    import cv2

    t, h, w, _ = frames.shape
    scale = max_side / max(h, w)
    if scale >= 1:
        return frames
    nh, nw = max(2, round(h * scale)), max(2, round(w * scale))
    out = np.empty((t, nh, nw, 3), np.uint8)
    for i in range(t):
        out[i] = cv2.resize(frames[i], (nw, nh), interpolation=cv2.INTER_AREA)
    return out


def _scaled_size(w: int, h: int, max_side: int | None) -> tuple[int, int]:
    if not max_side or max(w, h) <= max_side:
        return w, h
    s = max_side / max(w, h)
    # even sizes keep swscale happy and match what resize_frames would give within a pixel
    return max(2, round(w * s)), max(2, round(h * s))


def _open(path: Path):
    import av

    if not path.exists():
        raise ClipReadError(path, "file does not exist")
    if path.is_dir():
        raise ClipReadError(path, "is a directory, not a video file")
    if path.stat().st_size == 0:
        raise ClipReadError(path, "file is empty (0 bytes)")
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:  # av.error.InvalidDataError et al.
        raise ClipReadError(path, f"not a readable video container ({e.__class__.__name__}: {e})") from None


def probe(path: os.PathLike[str] | str) -> ClipInfo:
    """Stream facts from the container headers (cheap: decodes nothing). Containers without a frame count
    (mkv/webm) get one estimated from the duration, which may overshoot by a frame or two."""
    p = Path(path)
    with _open(p) as c:
        if not c.streams.video:
            raise ClipReadError(p, "contains no video stream")
        vs = c.streams.video[0]
        fps = float(vs.average_rate or vs.guessed_rate or 0)
        if fps <= 0:
            raise ClipReadError(p, "video stream has no frame rate")
        n = _expected_frames(c, vs) or 0
        sr = None
        ch = None
        adur = None
        if c.streams.audio:
            a = c.streams.audio[0]
            sr = int(a.rate or a.sample_rate or 0) or None
            ch = a.channels
            if a.duration is not None and a.time_base is not None:
                adur = float(a.duration * a.time_base)
        return ClipInfo(
            frames=n, fps=fps, width=vs.width, height=vs.height, duration_s=n / fps,
            audio_sample_rate=sr, audio_channels=ch, audio_duration_s=adur,
        )


def probe_audio(path: os.PathLike[str] | str) -> tuple[int | None, int | None, float | None]:
    """(sample rate, channels, duration in s) of a file's first audio stream, from its headers."""
    p = Path(path)
    with _open(p) as c:
        if not c.streams.audio:
            raise ClipReadError(p, "contains no audio stream")
        a = c.streams.audio[0]
        dur = None
        if a.duration is not None and a.time_base is not None:
            dur = float(a.duration * a.time_base)
        elif c.duration is not None:
            dur = c.duration / 1_000_000
        return int(a.rate or a.sample_rate or 0) or None, a.channels, dur


def _shrink(plane: np.ndarray, w: int, h: int) -> np.ndarray:
    """Anti-aliased downscale of one 8-bit plane: Gaussian pyramid halvings down to 2-4x the target,
    then one area-filter step (the pyramid keeps the area filter's input, and so its cost, small)."""
    import cv2

    while plane.shape[1] >= 4 * w and plane.shape[0] >= 4 * h:
        plane = cv2.pyrDown(plane)
    if plane.shape[:2] != (h, w):
        plane = cv2.resize(plane, (w, h), interpolation=cv2.INTER_AREA)
    return plane


def _downscale_i420(yuv: np.ndarray, fw: int, fh: int, w: int, h: int, *, bt709: bool = False) -> np.ndarray:
    """Downscale a decoded yuv420p frame (PyAV's ``[H*3/2, W]`` layout) to RGB ``[h, w, 3]``.

    Scaling the planes with OpenCV and converting at the small size is about twice as fast as
    swscale's area filter to rgb24 (which costs as much as decoding), and it is what the streaming
    metrics read every frame through. Limited range, with the BT.601 matrix (swscale's and OpenCV's
    default, what an untagged stream means here) or, for a stream tagged BT.709, the BT.709 matrix.
    """
    import cv2

    ew, eh = w + w % 2, h + h % 2  # I420 needs even sides; an odd target is reached by a last resize
    flat = yuv.reshape(-1)  # Y, then U, then V, each plane packed without padding
    ny, nc = fw * fh, (fw // 2) * (fh // 2)
    y = _shrink(flat[:ny].reshape(fh, fw), ew, eh)
    u = _shrink(flat[ny : ny + nc].reshape(fh // 2, fw // 2), ew // 2, eh // 2)
    v = _shrink(flat[ny + nc : ny + 2 * nc].reshape(fh // 2, fw // 2), ew // 2, eh // 2)
    if bt709:
        rgb = _yuv_to_rgb_bt709(y, cv2.resize(u, (ew, eh), interpolation=cv2.INTER_NEAREST),
                                cv2.resize(v, (ew, eh), interpolation=cv2.INTER_NEAREST))
    else:
        i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(eh * 3 // 2, ew)
        rgb = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    if (ew, eh) != (w, h):
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    return rgb


#: limited-range BT.709 YUV -> RGB (ITU-R BT.709-6 Kr = 0.2126, Kb = 0.0722; Y 16-235, C 16-240)
_BT709_TO_RGB = np.array([[255 / 219, 0.0, 255 / 112 * (1 - 0.2126)],
                          [255 / 219, -255 / 112 * (1 - 0.0722) * 0.0722 / 0.7152,
                           -255 / 112 * (1 - 0.2126) * 0.2126 / 0.7152],
                          [255 / 219, 255 / 112 * (1 - 0.0722), 0.0]], dtype=np.float32)


def _yuv_to_rgb_bt709(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    yuv = np.stack([y, u, v], axis=-1).astype(np.float32) - np.array([16, 128, 128], np.float32)
    return np.clip(yuv @ _BT709_TO_RGB.T + 0.5, 0, 255).astype(np.uint8)


#: AVColorSpace codes whose matrix is not swscale's default, by swscale's name (``frame.colorspace``)
_SWS_MATRIX = {1: "ITU709", 4: "FCC", 7: "SMPTE240M"}


def frame_rgb(frame, max_side: int | None = None) -> np.ndarray:
    """A decoded PyAV video frame as RGB uint8 ``[h, w, 3]``, downscaled so its longer side is at most
    ``max_side`` (the conversion every reader and the streaming pass use, so they agree to the bit).
    The YUV matrix is the one the stream is tagged with (BT.709: every render's default, see
    :func:`write_frames`); untagged streams are read as BT.601, as players read SD video."""
    w, h = _scaled_size(frame.width, frame.height, max_side)
    matrix = _SWS_MATRIX.get(int(getattr(frame, "colorspace", 2) or 2))
    kw = {"src_colorspace": matrix} if matrix else {}
    if (w, h) == (frame.width, frame.height):
        return frame.to_ndarray(format="rgb24", **kw)
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0 and matrix in (None, "ITU709"):
        return _downscale_i420(frame.to_ndarray(), frame.width, frame.height, w, h, bt709=matrix == "ITU709")
    return frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA", **kw).to_ndarray()


def _expected_frames(c, vs) -> int | None:
    """Frames the headers promise: the stream's frame count, else its (or the container's) duration."""
    n = int(vs.frames or 0)
    if n > 0:
        return n
    fps = float(vs.average_rate or vs.guessed_rate or 0)
    if fps <= 0:
        return None
    if vs.duration is not None and vs.time_base is not None:
        return round(float(vs.duration * vs.time_base) * fps)
    if c.duration is not None:  # container duration, in AV_TIME_BASE (microseconds)
        return round(c.duration / 1_000_000 * fps)
    return None


class _RateCheck:
    """Variable frame rate detection on the decoded frames' timestamps.

    Every metric (motion events, A/V sync) takes frame ``i`` to be at ``i / fps``. A variable-frame-rate
    file (a phone recording, a screen capture) breaks that silently, so it is refused with a message
    saying how to make it constant-rate, instead of being misread. Timestamps rounded to the stream's
    time base (41/42 ms at 24 fps in a millisecond base) are constant rate; a frame lasting a quarter
    longer or shorter than the nominal one is not.
    """

    TOLERANCE = 0.25

    def __init__(self, path: Path, vs) -> None:
        self.path = path
        self.tb = float(vs.time_base) if vs.time_base else None
        rate = vs.average_rate or vs.guessed_rate
        self.nominal = 1.0 / float(rate) if rate else None
        self.prev: int | None = None
        self.worst: tuple[float, int] | None = None  # (duration s, frame index)
        self.n = 0

    def add(self, pts: int | None) -> None:
        if pts is None or self.tb is None or self.nominal is None:
            self.prev = None
            self.n += 1
            return
        if self.prev is not None:
            d = (pts - self.prev) * self.tb
            dev = abs(d - self.nominal)
            if dev > self.TOLERANCE * self.nominal and (self.worst is None or dev > abs(self.worst[0] - self.nominal)):
                self.worst = (d, self.n)
        self.prev = pts
        self.n += 1

    def check(self) -> None:
        if self.worst is None or self.nominal is None:
            return
        d, i = self.worst
        raise ClipReadError(
            self.path,
            f"variable frame rate: frame {i} comes {d * 1000:.1f} ms after frame {i - 1}, the stream's nominal "
            f"rate is {1 / self.nominal:.3g} fps ({self.nominal * 1000:.1f} ms per frame); motion and A/V sync "
            "assume a constant rate, so the clip is refused rather than misread. Re-encode it at a constant "
            "rate, e.g. `ffmpeg -i IN -fps_mode cfr -r 24 OUT.mp4`",
        )


def iter_frames(
    path: os.PathLike[str] | str, *, max_side: int | None = None, step: int = 1
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, rgb_uint8_frame)`` one at a time, downscaled on decode to ``max_side``.

    Memory stays at one frame whatever the clip length; ``step`` keeps every ``step``-th frame. A stream
    that decodes fewer frames than its header announces (a truncated file) raises :class:`ClipReadError`
    once the decoder runs dry, so a half-copied upload can never pass as a short clip.
    """
    import av

    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    p = Path(path)
    c = _open(p)
    try:
        if not c.streams.video:
            raise ClipReadError(p, "contains no video stream")
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        expected = _expected_frames(c, vs)
        exact = bool(vs.frames)
        i = 0
        rate = _RateCheck(p, vs)
        try:
            for frame in c.decode(vs):
                rate.add(frame.pts)
                if i % step == 0:
                    yield i, frame_rgb(frame, max_side)
                i += 1
        except av.FFmpegError as e:
            raise ClipReadError(p, f"video stream is corrupt or truncated after frame {i} ({e})") from None
        if i == 0:
            raise ClipReadError(p, "video stream decodes to zero frames (truncated or corrupt file)")
        rate.check()
        if expected:
            # a frame count in the header is exact; a duration-based estimate gets a little slack
            slack = 0 if exact else max(2, round(0.05 * expected))
            if i < expected - slack:
                raise ClipReadError(
                    p, f"truncated: decoded {i} video frames but the header announces {expected}"
                )
    finally:
        c.close()


def _resampler(a):
    import av

    channels = max(1, a.channels or 1)
    return av.AudioResampler(format="fltp", layout="mono" if channels == 1 else "stereo",
                             rate=int(a.rate or a.sample_rate))


def iter_media(path: os.PathLike[str] | str, *, video: bool = True,
               audio: bool = True) -> Iterator[tuple[str, Any]]:
    """Decode a clip's video and audio in ONE pass over the file, in container order.

    Yields ``("video", av.VideoFrame)`` for each frame (convert it with :func:`frame_rgb` at the size you
    need: nothing is converted that nobody asked for) and ``("audio", (chunk, sample_rate))`` with float32
    ``[channels, n]`` chunks (mono or stereo, as :func:`read_clip` gives). Memory is a frame and a chunk
    whatever the clip's length. A truncated or corrupt stream raises :class:`ClipReadError` as
    :func:`iter_frames` does.
    """
    import av

    p = Path(path)
    c = _open(p)
    try:
        vs = c.streams.video[0] if c.streams.video else None
        if video and vs is None:
            raise ClipReadError(p, "contains no video stream")
        as_ = c.streams.audio[0] if (audio and c.streams.audio) else None
        streams = [s for s in ((vs if video else None), as_) if s is not None]
        if not streams:
            return
        expected = exact = None
        if video and vs is not None:
            vs.thread_type = "AUTO"
            expected, exact = _expected_frames(c, vs), bool(vs.frames)
        res = None
        max_samples = 0.0
        if as_ is not None:
            from pytest_ltx.limits import current

            sr = int(as_.rate or as_.sample_rate)
            _check_audio_budget(p, sr, None)  # the audio is held whole by A/V sync: budgeted
            max_samples = current().audio_s * sr
            res = _resampler(as_)
        rate = _RateCheck(p, vs) if (video and vs is not None) else None
        n = 0
        n_audio = 0
        try:
            for pkt in c.demux(*streams):
                if pkt.stream is vs:
                    for frame in pkt.decode():
                        n += 1
                        rate.add(frame.pts)  # type: ignore[union-attr]
                        yield "video", frame
                elif res is not None:
                    for frame in pkt.decode():
                        for out in res.resample(frame):
                            n_audio += out.samples
                            yield "audio", (out.to_ndarray().astype(np.float32, copy=False), out.sample_rate)
                        if n_audio > max_samples:
                            _check_audio_budget(p, None, n_audio / out.sample_rate)
            if res is not None:
                for out in res.resample(None):
                    yield "audio", (out.to_ndarray().astype(np.float32, copy=False), out.sample_rate)
        except av.FFmpegError as e:
            raise ClipReadError(p, f"stream is corrupt or truncated after video frame {n} ({e})") from None
        if video:
            if n == 0:
                raise ClipReadError(p, "video stream decodes to zero frames (truncated or corrupt file)")
            rate.check()  # type: ignore[union-attr]
            if expected:
                slack = 0 if exact else max(2, round(0.05 * expected))
                if n < expected - slack:
                    raise ClipReadError(p, f"truncated: decoded {n} video frames but the header announces {expected}")
    finally:
        c.close()


def _read_audio(p: Path) -> tuple[np.ndarray | None, int | None]:
    import av

    with _open(p) as c:
        if not c.streams.audio:
            return None, None
        a = c.streams.audio[0]
        sr = int(a.rate or a.sample_rate)
        _check_audio_budget(p, sr, None)
        from pytest_ltx.limits import current

        max_samples = current().audio_s * sr  # headers may not tell the length: count while decoding
        channels = max(1, a.channels or 1)
        layout = "mono" if channels == 1 else "stereo"
        res = av.AudioResampler(format="fltp", layout=layout, rate=sr)
        chunks: list[np.ndarray] = []
        try:
            n = 0
            for frame in c.decode(a):
                for out in res.resample(frame):
                    chunks.append(out.to_ndarray())
                    n += chunks[-1].shape[-1]
                if n > max_samples:
                    _check_audio_budget(p, None, n / sr)
            for out in res.resample(None):
                chunks.append(out.to_ndarray())
        except av.FFmpegError as e:
            raise ClipReadError(p, f"audio stream is corrupt or truncated ({e})") from None
        if not chunks:
            return np.zeros((min(channels, 2), 0), np.float32), sr
        return np.concatenate(chunks, axis=1).astype(np.float32, copy=False), sr


def check_decode_budget(p: Path, info: ClipInfo, max_side: int | None = None) -> None:
    """Refuse, before decoding, a clip whose frames would not fit the ``clip_mb`` budget (frames ×
    height × width × 3 bytes after the downscale) or whose audio is over ``audio_hz`` / ``audio_s``."""
    from pytest_ltx.limits import current, raise_hint

    lim = current()
    w, h = _scaled_size(info.width, info.height, max_side)
    need = info.frames * w * h * 3
    if need > lim.clip_mb * 2**20:
        raise ClipReadError(
            p, f"decoding {info.frames} frames of {w}x{h} needs {need / 2**20:.0f} MB, over the {lim.clip_mb} MB "
            f"limit for one clip; {raise_hint('clip_mb')}")
    _check_audio_budget(p, info.audio_sample_rate, info.audio_duration_s)


def _check_audio_budget(p: Path, sr: int | None, seconds: float | None) -> None:
    from pytest_ltx.limits import current, raise_hint

    lim = current()
    if sr is not None and sr > lim.audio_hz:
        raise ClipReadError(
            p, f"audio sample rate {sr} Hz is over the {lim.audio_hz} Hz limit (192 kHz is the highest "
            f"production rate; a higher one is a broken or hostile file); {raise_hint('audio_hz')}")
    if seconds is not None and seconds > lim.audio_s:
        raise ClipReadError(
            p, f"audio is {seconds:.0f} s long, over the {lim.audio_s} s limit; {raise_hint('audio_s')}")


def read_audio_file(path: os.PathLike[str] | str) -> tuple[np.ndarray, int]:
    """Read a standalone audio file (wav/flac/m4a…) as float32 ``[channels, samples]`` and its rate."""
    p = Path(path)
    audio, sr = _read_audio(p)
    if audio is None or sr is None:
        raise ClipReadError(p, "contains no audio stream")
    return audio, sr


def read_clip(
    path: os.PathLike[str] | str,
    *,
    max_side: int | None = None,
    audio: bool = True,
    audio_path: os.PathLike[str] | str | None = None,
) -> Clip:
    """Decode a whole clip (frames downscaled to ``max_side`` if given) and its audio track.

    ``audio_path`` reads the audio from a separate file instead of the container's own track.
    """
    p = Path(path)
    info = probe(p)
    check_decode_budget(p, info, max_side)
    frames = [f for _, f in iter_frames(p, max_side=max_side)]
    arr = np.stack(frames)
    wav: np.ndarray | None = None
    sr: int | None = None
    if audio:
        if audio_path is not None:
            wav, sr = read_audio_file(audio_path)
        else:
            wav, sr = _read_audio(p)
    return Clip(frames=arr, fps=info.fps, audio=wav, sample_rate=sr, source=str(p))


def read_image_rgb(path: os.PathLike[str] | str) -> np.ndarray:
    """A still image (PNG, JPEG, WebP …) as RGB uint8 ``[H, W, 3]``. Its size is checked against the
    ``image_mp`` budget from the header, before anything is decoded; an unreadable file raises
    :class:`ClipReadError` naming it, an oversized one :class:`pytest_ltx.limits.LimitError`."""
    import warnings

    from PIL import Image

    from pytest_ltx.limits import LimitError, current, raise_hint

    p = Path(path)
    limit = current().image_mp
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w * h > limit * 1_000_000:
                    raise LimitError(f"{p}: the image is {w}x{h} ({w * h / 1e6:.0f} MP), over the {limit} MP limit "
                                     f"for a still image; not decoded; {raise_hint('image_mp')}")
                return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except LimitError:  # ours, from the header (a ValueError: not to be reworded below)
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:  # PIL's own header check
        raise LimitError(f"{p}: {e}; over the {limit} MP limit for a still image; not decoded; "
                         f"{raise_hint('image_mp')}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ClipReadError(p, f"not a readable image ({type(e).__name__}: {e})") from None


#: suffix -> (container format, video encoder, audio encoder)
_CONTAINERS: dict[str, tuple[str, str, str]] = {
    ".mp4": ("mp4", "libx264", "aac"),
    ".m4v": ("mp4", "libx264", "aac"),
    ".mov": ("mov", "libx264", "aac"),
    ".mkv": ("matroska", "libx264", "aac"),
    ".webm": ("webm", "libvpx-vp9", "libopus"),
}

#: x264 settings every H.264 encode adds to its preset, recorded in a render's provenance (they are part of
#: the bits). ``mbtree=0``: with macroblock-tree rate control the x264 in PyAV's wheels (core 165) reads
#: uninitialised memory on small frames (64×64), so the same frames encoded twice gave different bytes —
#: a same-seed rerun moved flow_mean by 0.004 — depending on what the heap held (``MALLOC_PERTURB_``
#: changes the output; tests/test_media.py proves it gone). Without it the encode is a pure function of
#: the frames and the settings; the cost is a few percent of file size at the same CRF.
X264_PARAMS = "mbtree=0"
#: how RGB becomes YUV in :func:`write_frames`: with the matrix the stream is tagged with (BT.709 for
#: ``color="bt709"``, every render's default), BT.601 when untagged. Recorded in a render's provenance: it
#: changed the bits of every BT.709-tagged encode (before, they were converted with BT.601 and tagged 709,
#: so a browser showed them off-colour)
YUV_MATRIX = "as-tagged"

#: x264's threads, fixed. Its default (``threads=auto``) follows the CPUs the process may use, and frame
#: threading changes the bytes: the same frames encoded with 1 CPU and with 2 gave different files, so a
#: clip encoded on a 2-core CI runner was not the one a 16-core workstation made, nor one made under a
#: per-worker CPU budget (``worker.py``). Recorded in a render's provenance next to ``X264_PARAMS``; 2 is
#: what the default gave on the 2-CPU machines the project's clips were made on (the same bytes there).
X264_THREADS = 2


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def write_clip(
    clip: Clip,
    path: os.PathLike[str] | str,
    *,
    crf: int = 18,
    preset: str = "veryfast",
    encode: Any = None,
) -> Path:
    """Write ``clip`` as H.264 (yuv420p) + AAC mp4, atomically (temporary file, then rename).

    ``encode`` (a :class:`pytest_ltx.render.encode.EncodeSettings`) replaces ``crf``/``preset`` and adds
    the pixel format, faststart, keyframe interval and colour tags: how the renderer delivers its clips.

    ``veryfast`` at CRF 18 encodes 3–4× faster than ``medium`` at the same quality (CRF sets it; only the
    file grows a little): the encode is the largest cost an item adds to a render. Not ``ultrafast``:
    it lets frozen frames drift by up to 20 grey levels over the first frames of a freeze, which moves
    where a freeze is seen to start. Odd frame sizes are padded by one edge pixel (yuv420p needs even sides).
    """
    extra: dict[str, Any] = {"crf": crf, "preset": preset}
    audio = clip.audio if clip.has_audio else None
    if encode is not None:
        extra = {"crf": encode.crf, "preset": encode.preset, "pix_fmt": encode.pix_fmt,
                 "faststart": encode.faststart, "gop": encode.gop, "color": encode.color}
        if audio is not None and clip.sample_rate and encode.fit_audio:
            audio = fit_audio(audio, round(clip.num_frames / clip.fps * clip.sample_rate))
    return write_frames(
        iter(clip.frames),
        path,
        fps=clip.fps,
        audio=audio,
        sample_rate=clip.sample_rate,
        **extra,
    )


def fit_audio(audio: np.ndarray, n: int) -> np.ndarray:
    """``audio`` ``[C, N]`` padded with silence (or trimmed) to exactly ``n`` samples."""
    have = audio.shape[-1]
    if have == n:
        return audio
    if have > n:
        return audio[..., :n]
    return np.pad(audio, ((0, 0), (0, n - have)))


def write_frames(
    frames: Iterable[np.ndarray],
    path: os.PathLike[str] | str,
    *,
    fps: float,
    width: int | None = None,
    height: int | None = None,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    crf: int = 18,
    preset: str = "veryfast",
    faststart: bool = False,
    pix_fmt: str = "yuv420p",
    gop: int | None = None,
    color: str = "none",
) -> Path:
    """Encode frames from an iterable, one frame in memory at a time; atomic (temp file, then rename).

    This is how long clips (a 20 s 1080p test card) are written without holding them decoded. The
    container follows the suffix: ``.mp4``/``.mov``/``.mkv`` get H.264 + AAC, ``.webm`` VP9 + Opus.
    Odd sizes are padded by one edge pixel (yuv420p needs even sides). ``audio`` is float32
    ``[channels, N]``. ``faststart`` puts the mp4 index first (progressive playback in a browser);
    ``pix_fmt`` (yuv420p/yuv422p/yuv444p), ``gop`` (largest keyframe interval, 1 = all-intra) and
    ``color`` (``"bt709"`` writes BT.709 primaries/transfer/matrix tags) shape the H.264 stream.
    """
    import av

    dest = Path(path)
    fmt, vcodec, acodec = _CONTAINERS.get(dest.suffix.lower(), _CONTAINERS[".mp4"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    it = iter(frames)
    with atomic_file(dest, prefix=f".{dest.stem}.", suffix=f"{dest.suffix or '.mp4'}.part", mode="best-effort") as tmp:
        first = next(it, None)
        if first is None:
            raise ValueError("write_frames: no frames to write")
        h0, w0 = first.shape[:2]
        if (width is not None and width != w0) or (height is not None and height != h0):
            raise ValueError(f"write_frames: frame is {w0}x{h0}, expected {width}x{height}")
        ph, pw = h0 % 2, w0 % 2
        opts = {"movflags": "+faststart"} if faststart and fmt in ("mp4", "mov") else {}
        with av.open(str(tmp), mode="w", format=fmt, options=opts) as out:
            vs = out.add_stream(vcodec, rate=_fps_fraction(fps))
            vs.width, vs.height, vs.pix_fmt = w0 + pw, h0 + ph, pix_fmt if vcodec == "libx264" else "yuv420p"
            if color == "bt709":
                cc = vs.codec_context
                cc.color_primaries, cc.color_trc, cc.colorspace = 1, 1, 1  # ITU-R BT.709
            if vcodec == "libx264":
                vs.options = {"crf": str(crf), "preset": preset, "x264-params": X264_PARAMS,
                              "threads": str(X264_THREADS)}
                if gop is not None:
                    vs.codec_context.gop_size = gop
                    vs.options = {**vs.options, "keyint_min": str(min(gop, 25))}
            else:
                vs.options = {"crf": str(crf + 12), "b": "0", "deadline": "realtime", "cpu-used": "8"}
            astream = None
            has_audio = audio is not None and audio.ndim == 2 and audio.shape[-1] > 0
            if has_audio:
                assert audio is not None
                if not sample_rate:
                    raise ValueError("write_frames: audio needs a sample_rate")
                channels = min(2, audio.shape[0])
                astream = out.add_stream(acodec, rate=int(sample_rate))
                astream.layout = "mono" if channels == 1 else "stereo"
            f: np.ndarray | None = first
            while f is not None:
                if f.shape[:2] != (h0, w0):
                    raise ValueError(f"write_frames: frame size changed from {w0}x{h0} to {f.shape[1]}x{f.shape[0]}")
                if ph or pw:
                    f = np.pad(f, ((0, ph), (0, pw), (0, 0)), mode="edge")
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f, dtype=np.uint8), format="rgb24")
                if color == "bt709":  # convert with the matrix the tags promise (the encoder's own is BT.601)
                    vf = vf.reformat(format=vs.pix_fmt, dst_colorspace="ITU709")
                for pkt in vs.encode(vf):
                    out.mux(pkt)
                f = next(it, None)
            for pkt in vs.encode(None):
                out.mux(pkt)
            if astream is not None:
                assert audio is not None and sample_rate
                wav = np.clip(audio[: min(2, audio.shape[0])], -1.0, 1.0).astype(np.float32)
                chunk = int(astream.codec_context.frame_size or 1024)
                sample_fmt = astream.codec_context.format.name if astream.codec_context.format else "fltp"
                pts = 0
                for s in range(0, wav.shape[1], chunk):
                    part = np.ascontiguousarray(wav[:, s : s + chunk])
                    if part.shape[1] < chunk and acodec != "aac":  # fixed-frame codecs: pad the last one
                        part = np.pad(part, ((0, 0), (0, chunk - part.shape[1])))
                    if sample_fmt == "flt":  # interleaved
                        af = av.AudioFrame.from_ndarray(
                            np.ascontiguousarray(part.T.reshape(1, -1)), format="flt", layout=astream.layout.name
                        )
                    else:
                        af = av.AudioFrame.from_ndarray(part, format="fltp", layout=astream.layout.name)
                    af.sample_rate = int(sample_rate)
                    af.pts = pts
                    pts += part.shape[1]
                    for pkt in astream.encode(af):
                        out.mux(pkt)
                for pkt in astream.encode(None):
                    out.mux(pkt)
        # atomic_file then makes it readable (mkstemp makes 0600; a report or shared cache is 0644 under
        # umask 022) and renames it into place
    return dest
