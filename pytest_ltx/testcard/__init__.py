"""Synthetic test cards: deterministic clips whose every defect and event is known in advance.

A metric is only trustworthy if it finds what is really there and nothing else, and real footage never
comes with an answer key. A test card does: :func:`draw` renders a textured, panning scene with moving
objects (linear, bouncing, start/stop, flashing), injects defects (cut, jump, freeze, flicker), burns in
text and adds audio events tied to the visual ones, and returns the clip together with its
:class:`Truth`. Everything derives from ``seed``; the same spec always gives the same pixels and samples.

Conventions (the same as the metrics'): frame numbers are 0-based; a cut or jump "at frame i" is the
discontinuity between frames i-1 and i; a freeze of ``length`` n at ``start`` s means frames s..s+n-1
repeat frame s-1 (the scene pauses, then resumes where it stopped); a flicker of ``length`` n at
``start`` s scales the brightness of frames s..s+n-1 alternately by (1 + a) and (1 - a).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Iterator, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pytest_ltx.media import Clip

__all__ = [
    "AudioSpec",
    "BurnedText",
    "CorruptSpec",
    "ExposureSpec",
    "StrobeSpec",
    "FlickerSpec",
    "FreezeSpec",
    "JumpSpec",
    "MotionKind",
    "ObjectSpec",
    "Span",
    "TestCard",
    "TestCardSpec",
    "TextSpec",
    "Truth",
    "VisualEvent",
    "VisualEventKind",
    "Jump",
    "draw",
    "iter_frames",
    "synthesize_audio",
    "truth",
    "write",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MotionKind(str, Enum):
    #: constant velocity, reflecting off the frame edges
    LINEAR = "linear"
    #: a ball falling under gravity and bouncing on the floor: fastest at the floor, where its vertical
    #: direction flips (an ``impact`` event)
    BOUNCE = "bounce"
    #: constant velocity while moving; alternately ``start`` and ``stop`` events
    START_STOP = "start_stop"
    #: a still square that flashes white (``flash`` event) and decays back within a few frames
    FLASH = "flash"


class VisualEventKind(str, Enum):
    IMPACT = "impact"
    FLASH = "flash"
    START = "start"
    STOP = "stop"


class ObjectSpec(_Model):
    """One moving object of the scene. Unset position/colour/direction are drawn from the seed."""

    kind: MotionKind = Field(..., description="motion kind: linear, bounce, start_stop or flash")
    size: float = Field(0.14, gt=0, le=0.5, description="diameter/side as a fraction of the shorter frame side")
    color: tuple[int, int, int] | None = Field(None, description="RGB 0-255; default: a saturated colour from the seed")
    x: float | None = Field(None, ge=0, le=1, description="start x as a fraction of the width (default: from seed)")
    y: float | None = Field(None, ge=0, le=1, description="start y as a fraction of the height (default: from seed)")
    speed: float = Field(
        0.35, ge=0, description="frame widths per second (linear, start_stop; a bounce drifts sideways at a quarter)"
    )
    direction_deg: float | None = Field(None, description="direction of travel, 0 = right, 90 = down (default: seed)")
    min_gap_s: float = Field(0.25, gt=0, description="shortest time between this object's events")
    max_gap_s: float = Field(0.8, gt=0, description="longest time between this object's events")

    @model_validator(mode="after")
    def _gaps(self) -> "ObjectSpec":
        if self.min_gap_s > self.max_gap_s:
            raise ValueError(f"min_gap_s ({self.min_gap_s}) must be <= max_gap_s ({self.max_gap_s})")
        return self


class JumpSpec(_Model):
    """The content continues but ``skip`` source frames are left out between frames ``at``-1 and ``at``."""

    at: int = Field(..., ge=1, description="first frame after the skip")
    skip: int = Field(..., ge=1, description="number of source frames skipped")


class FreezeSpec(_Model):
    """Frames ``start`` .. ``start+length-1`` repeat frame ``start-1``; then the scene resumes."""

    start: int = Field(..., ge=1, description="first repeated frame")
    length: int = Field(..., ge=1, description="number of repeated frames")


class FlickerSpec(_Model):
    """Global brightness oscillation without motion: gains 1+a, 1-a, 1+a, ... on ``length`` frames."""

    start: int = Field(..., ge=1, description="first flickering frame")
    length: int = Field(..., ge=2, description="number of flickering frames")
    amplitude: float = Field(0.12, gt=0, le=0.6, description="relative brightness swing a")
    still: bool = Field(False, description="pause the scene while it flickers: only the brightness changes")


class ExposureSpec(_Model):
    """Brightness gain ``gain`` on frames ``start`` … ``start+length-1`` (a flash), or from ``start`` on when
    ``length`` is unset (an exposure jump)."""

    start: int = Field(..., ge=1, description="first frame with the gain")
    gain: float = Field(..., gt=0, le=4, description="brightness factor (1.6 = 60 % brighter)")
    length: int | None = Field(None, ge=1, description="frames affected (default: to the end)")


class StrobeSpec(_Model):
    """Full-screen flashing: frames alternate between the scene and the scene blended toward white."""

    start: int = Field(..., ge=1, description="first flashing frame")
    length: int = Field(..., ge=2, description="number of frames it lasts")
    rate_hz: float = Field(..., gt=0, description="flashes (bright-dark cycles) per second")
    amplitude: float = Field(0.6, gt=0, le=1, description="blend toward white on the bright frames")


class CorruptSpec(_Model):
    """Garbage frames: ``noise`` (strong random noise added) or ``blocks`` (32-pixel blocks of wrong flat colour)."""

    start: int = Field(..., ge=1, description="first corrupted frame")
    length: int | None = Field(None, ge=1, description="frames affected (default: to the end)")
    kind: Literal["noise", "blocks"] = Field("noise", description="noise or blocks")


class TextSpec(_Model):
    """Burned-in text: a given string or ``garbled: n`` glyph-like pseudo-text (what diffusion models grow)."""

    text: str | None = Field(None, min_length=1, description="the text to burn in")
    garbled: int | None = Field(None, ge=1, description="instead of text: n characters of pseudo-text")
    start: int = Field(0, ge=0, description="first frame showing the text")
    end: int | None = Field(None, ge=0, description="last frame showing the text (default: the last frame)")
    x: float = Field(0.06, ge=0, le=1, description="left edge as a fraction of the width")
    y: float = Field(0.06, ge=0, le=1, description="top edge as a fraction of the height")
    height_frac: float = Field(0.1, gt=0, le=1, description="font size as a fraction of the frame height")
    color: tuple[int, int, int] = Field((255, 255, 255), description="RGB 0-255")
    outline: tuple[int, int, int] | None = Field((0, 0, 0), description="stroke colour (None: no stroke)")

    @model_validator(mode="after")
    def _one_text(self) -> "TextSpec":
        if (self.text is None) == (self.garbled is None):
            raise ValueError("give exactly one of `text` or `garbled`")
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end ({self.end}) must be >= start ({self.start})")
        return self


class AudioSpec(_Model):
    """Event audio: one click/beep per visual event of the ``tie_to`` kinds, shifted by ``offset_ms``."""

    sample_rate: int = Field(16000, ge=8000, le=192000, description="audio sample rate in Hz")
    kind: Literal["click", "beep"] = Field("click", description="sound of each event")
    offset_ms: float = Field(0.0, description="audio shift against the picture; positive = audio late")
    noise_dbfs: float = Field(-50.0, le=0, description="RMS of the noise floor in dBFS")
    silence: bool = Field(False, description="digital silence: a track with no events and no noise")
    periodic: bool = Field(
        False,
        description="regular event timing for every object (visual and audio): ambiguous for A/V sync",
    )
    tie_to: tuple[VisualEventKind, ...] = Field(
        (VisualEventKind.IMPACT, VisualEventKind.FLASH),
        description="visual event kinds that make a sound (impact, flash, start, stop)",
    )
    channels: int = Field(2, ge=1, le=2, description="1 = mono, 2 = stereo (same signal, own noise)")


def _default_objects() -> tuple[ObjectSpec, ...]:
    return (
        ObjectSpec(kind=MotionKind.BOUNCE),
        ObjectSpec(kind=MotionKind.LINEAR),
        ObjectSpec(kind=MotionKind.FLASH, size=0.12),
    )


class TestCardSpec(_Model):
    """A synthetic clip with known truth (``testcard:`` in a clip spec). Deterministic from ``seed``."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    width: int = Field(256, ge=16, le=4096, description="frame width in pixels")
    height: int = Field(256, ge=16, le=4096, description="frame height in pixels")
    frames: int = Field(49, ge=2, le=100_000, description="number of frames")
    fps: float = Field(24.0, gt=0, le=240, description="frame rate")
    seed: int = Field(0, ge=0, description="everything not set explicitly is drawn from this seed")
    background: Literal["texture", "flat"] = Field(
        "texture", description="texture: band-limited noise (optical flow can lock on); flat: one colour"
    )
    pan: tuple[float, float] = Field(
        (0.12, 0.04), description="camera pan of the background in frame widths/heights per second"
    )
    objects: tuple[ObjectSpec, ...] = Field(
        default_factory=_default_objects, description="moving objects (default: a bounce, a linear, a flash)"
    )
    cuts: tuple[int, ...] = Field((), description="frames where a different scene starts")
    jumps: tuple[JumpSpec, ...] = Field((), description="skips inside the shot")
    freezes: tuple[FreezeSpec, ...] = Field((), description="runs of repeated frames")
    flickers: tuple[FlickerSpec, ...] = Field((), description="brightness oscillations")
    text: tuple[TextSpec, ...] = Field((), description="burned-in text overlays")
    static_start: int = Field(0, ge=0, description="frames 1 … n-1 repeat frame 0 (a stuck image-to-video start)")
    exposure: tuple[ExposureSpec, ...] = Field((), description="brightness flashes and exposure jumps")
    strobe: tuple[StrobeSpec, ...] = Field((), description="photosensitive full-screen flashing")
    corrupt: tuple[CorruptSpec, ...] = Field((), description="noise or block garbage frames")
    audio: AudioSpec | None = Field(
        default_factory=AudioSpec, description="event audio; `none` (or null) for a clip without a track"
    )

    @field_validator("audio", mode="before")
    @classmethod
    def _audio_none(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("none", "off", "no"):
            return None
        return v

    @model_validator(mode="after")
    def _defects_fit(self) -> "TestCardSpec":
        n = self.frames
        spans: list[tuple[int, int, str]] = []
        for c in self.cuts:
            spans.append((c, c, f"cut at {c}"))
        for j in self.jumps:
            spans.append((j.at, j.at, f"jump at {j.at}"))
        for f in self.freezes:
            spans.append((f.start, f.start + f.length - 1, f"freeze {f.start}+{f.length}"))
        for fl in self.flickers:
            spans.append((fl.start, fl.start + fl.length - 1, f"flicker {fl.start}+{fl.length}"))
        problems = [f"{name} is outside frames 1..{n - 1}" for a, b, name in spans if a < 1 or b > n - 1]
        spans.sort()
        for (_a0, b0, n0), (a1, _b1, n1) in zip(spans, spans[1:]):
            if a1 <= b0 + 1:
                problems.append(f"{n0} and {n1} overlap or touch (leave a frame between defects)")
        for name, items in (("exposure", self.exposure), ("strobe", self.strobe), ("corrupt", self.corrupt)):
            for x in items:
                if x.start >= n:
                    problems.append(f"{name} starts at frame {x.start}, beyond the {n} frames")
        if self.static_start > n:
            problems.append(f"static_start {self.static_start} exceeds the {n} frames")
        for t in self.text:
            if t.start >= n or (t.end is not None and t.end >= n):
                problems.append(f"text frames {t.start}..{t.end} exceed the {n} frames")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


# --------------------------------------------------------------------------------------------- truth


@dataclass(frozen=True)
class Span:
    """An inclusive frame range."""

    start: int
    end: int

    def to_dict(self) -> dict[str, int]:
        return {"start": self.start, "end": self.end}


@dataclass(frozen=True)
class Jump:
    frame: int
    skip: int

    def to_dict(self) -> dict[str, int]:
        return {"frame": self.frame, "skip": self.skip}


@dataclass(frozen=True)
class VisualEvent:
    """A visible event at output ``frame`` (its time is ``frame / fps``); ``object`` indexes the scene's objects."""

    kind: VisualEventKind
    frame: int
    time_s: float
    object: int

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "frame": self.frame, "time_s": round(self.time_s, 6), "object": self.object}


@dataclass(frozen=True)
class BurnedText:
    """Text burned into frames ``first_frame``..``last_frame`` with ink ``box`` (x0, y0, x1, y1; x1/y1 exclusive)."""

    text: str
    first_frame: int
    last_frame: int
    box: tuple[int, int, int, int]
    garbled: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "box": list(self.box),
            "garbled": self.garbled,
        }


@dataclass(frozen=True)
class Truth:
    """What a test card really contains, in output frames (0-based) and seconds."""

    frames: int
    fps: float
    width: int
    height: int
    cuts: tuple[int, ...]
    jumps: tuple[Jump, ...]
    freezes: tuple[Span, ...]
    flickers: tuple[Span, ...]
    visual_events: tuple[VisualEvent, ...]
    #: onset times (s) of the audio events actually inside the track
    audio_events_s: tuple[float, ...]
    #: the A/V offset built in (positive = audio late); None when there is no audio track
    av_offset_ms: float | None
    has_audio: bool
    texts: tuple[BurnedText, ...]
    #: per output frame: which scene (increments at each cut) and which source frame is shown
    scene_of_frame: tuple[int, ...] = ()
    source_frame: tuple[int, ...] = ()

    def event_frames(self, *kinds: VisualEventKind | str) -> tuple[int, ...]:
        """Frames of the visual events of the given kinds (all kinds when none given)."""
        want = {VisualEventKind(k) for k in kinds}
        return tuple(e.frame for e in self.visual_events if not want or e.kind in want)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "cuts": [{"frame": c, "time_s": round(c / self.fps, 6)} for c in self.cuts],
            "jumps": [j.to_dict() | {"time_s": round(j.frame / self.fps, 6)} for j in self.jumps],
            "freezes": [s.to_dict() for s in self.freezes],
            "flickers": [s.to_dict() for s in self.flickers],
            "visual_events": [e.to_dict() for e in self.visual_events],
            "audio_events_s": [round(t, 6) for t in self.audio_events_s],
            "av_offset_ms": self.av_offset_ms,
            "has_audio": self.has_audio,
            "texts": [t.to_dict() for t in self.texts],
        }


@dataclass(frozen=True, eq=False)
class TestCard:
    """A drawn test card: the clip and what it is known to contain."""

    __test__: ClassVar[bool] = False

    clip: Clip
    truth: Truth


# ------------------------------------------------------------------------------------------ timeline


@dataclass(frozen=True)
class _Timeline:
    scene: np.ndarray  # int per output frame
    src: np.ndarray  # source frame per output frame
    gain: np.ndarray  # brightness gain per output frame


def _timeline(spec: TestCardSpec) -> _Timeline:
    n = spec.frames
    cuts = set(spec.cuts)
    jumps = {j.at: j.skip for j in spec.jumps}
    frozen = {i for f in spec.freezes for i in range(f.start, f.start + f.length)}
    frozen |= {i for f in spec.flickers if f.still for i in range(f.start, f.start + f.length)}
    scene = np.zeros(n, np.int64)
    src = np.zeros(n, np.int64)
    gain = np.ones(n, np.float64)
    for i in range(1, n):
        scene[i] = scene[i - 1] + (1 if i in cuts else 0)
        if i in frozen:
            src[i] = src[i - 1]
        else:
            src[i] = src[i - 1] + 1 + jumps.get(i, 0)
    for f in spec.flickers:
        for k in range(f.length):
            gain[f.start + k] = 1.0 + f.amplitude * (1 if k % 2 == 0 else -1)
    return _Timeline(scene, src, gain)


# ---------------------------------------------------------------------------------------------- scene


def _hsv_color(rng: np.random.Generator, s: float = 0.85, v: float = 0.95) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(float(rng.uniform()), s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _pingpong(x: float, lo: float, hi: float) -> float:
    span = hi - lo
    if span <= 0:
        return lo
    m = (x - lo) % (2 * span)
    return lo + (m if m <= span else 2 * span - m)


def _schedule(rng: np.random.Generator, obj: ObjectSpec, fps: float, until: int, periodic: bool) -> list[int]:
    """Event source frames: irregular gaps in [min_gap_s, max_gap_s] (or a fixed period), all >= 2 frames."""
    lo = max(2, round(obj.min_gap_s * fps))
    hi = max(lo, round(obj.max_gap_s * fps))
    period = max(2, round((obj.min_gap_s + obj.max_gap_s) / 2 * fps))
    out: list[int] = []
    t = 0
    while t <= until:
        t += period if periodic else int(rng.integers(lo, hi + 1))
        out.append(t)
    return out


class _Object:
    """One object with its resolved parameters; ``draw`` renders it at a source frame."""

    def __init__(self, spec: ObjectSpec, card: TestCardSpec, rng: np.random.Generator, until: int, periodic: bool):
        self.spec = spec
        w, h = card.width, card.height
        self.fps = card.fps
        self.w, self.h = w, h
        self.size = spec.size * min(w, h)
        self.r = self.size / 2
        self.color = spec.color if spec.color is not None else _hsv_color(rng)
        x = spec.x if spec.x is not None else float(rng.uniform(0.15, 0.85))
        y = spec.y if spec.y is not None else float(rng.uniform(0.15, 0.85))
        self.x0, self.y0 = x * w, y * h
        ang = math.radians(spec.direction_deg if spec.direction_deg is not None else float(rng.uniform(0, 360)))
        v = spec.speed * w / card.fps  # px per frame
        if spec.kind is MotionKind.BOUNCE:
            v /= 4
            ang = 0.0 if math.cos(ang) >= 0 else math.pi
        self.vx, self.vy = v * math.cos(ang), v * math.sin(ang)
        self.events = _schedule(rng, spec, card.fps, until, periodic) if spec.kind is not MotionKind.LINEAR else []
        if spec.kind is MotionKind.BOUNCE:
            gaps = np.diff([0, *self.events])
            self.gmax = float(max(gaps.max(), 2)) if len(gaps) else 2.0
            self.floor = h - self.r - 1
            rise = max(1.0, self.floor - self.r - 1)
            self.g = 0.85 * rise / (self.gmax / 2) ** 2

    def event_list(self) -> list[tuple[int, VisualEventKind]]:
        k = self.spec.kind
        if k is MotionKind.BOUNCE:
            return [(e, VisualEventKind.IMPACT) for e in self.events]
        if k is MotionKind.FLASH:
            return [(e, VisualEventKind.FLASH) for e in self.events]
        if k is MotionKind.START_STOP:
            kinds = (VisualEventKind.START, VisualEventKind.STOP)
            return [(e, kinds[i % 2]) for i, e in enumerate(self.events)]
        return []

    def _moved(self, s: float) -> float:
        """Frames spent moving up to source frame s (start/stop)."""
        ev = self.events
        total = 0.0
        for i in range(0, len(ev), 2):
            a = ev[i]
            b = ev[i + 1] if i + 1 < len(ev) else math.inf
            if s <= a:
                break
            total += min(s, b) - a
        return total

    def draw(self, img: np.ndarray, s: int) -> None:
        import cv2

        k = self.spec.kind
        lo_x, hi_x = self.r + 1, self.w - self.r - 1
        lo_y, hi_y = self.r + 1, self.h - self.r - 1
        if k is MotionKind.FLASH:
            inten = 0.0
            for e in self.events:
                if e > s:
                    break
                inten = math.exp(-(s - e) / 1.5)
            base = np.array([45.0, 45.0, 50.0])
            c = base + (np.array([255.0, 255.0, 255.0]) - base) * inten
            half = self.size / 2
            x = min(max(self.x0, half + 1), self.w - half - 1)
            y = min(max(self.y0, half + 1), self.h - half - 1)
            p0 = (int(round((x - half) * 16)), int(round((y - half) * 16)))
            p1 = (int(round((x + half) * 16)), int(round((y + half) * 16)))
            cv2.rectangle(img, p0, p1, tuple(float(v) for v in c), -1, cv2.LINE_AA, 4)
            return
        if k is MotionKind.LINEAR:
            x = _pingpong(self.x0 + self.vx * s, lo_x, hi_x)
            y = _pingpong(self.y0 + self.vy * s, lo_y, hi_y)
        elif k is MotionKind.START_STOP:
            d = self._moved(s)
            x = _pingpong(self.x0 + self.vx * d, lo_x, hi_x)
            y = _pingpong(self.y0 + self.vy * d, lo_y, hi_y)
        else:  # bounce: parabola between consecutive impacts, ball on the floor at each impact frame
            prev, nxt = 0 - (self.events[0] if self.events else 2), None
            for e in self.events:
                if e >= s:
                    nxt = e
                    break
                prev = e
            if nxt is None:
                nxt = prev + (self.events[-1] - self.events[-2] if len(self.events) > 1 else 2)
            height = self.g * (s - prev) * (nxt - s)
            y = self.floor - max(0.0, height)
            x = _pingpong(self.x0 + self.vx * s, lo_x, hi_x)
        col = tuple(float(v) for v in self.color)
        center = (int(round(x * 16)), int(round(y * 16)))
        cv2.circle(img, center, int(round(self.r * 16)), col, -1, cv2.LINE_AA, 4)
        # a darker core marks the rotation-free centre: gives flow a feature inside flat discs
        cv2.circle(img, center, int(round(self.r * 0.35 * 16)), tuple(v * 0.45 for v in col), -1, cv2.LINE_AA, 4)


def _scene_base(seed: int, index: int) -> tuple[float, float, float]:
    """The background tint of scene ``index``: consecutive scenes differ in hue by 0.3-0.45 of the colour
    wheel and alternate in brightness, so a cut always changes what the picture is made of."""
    import colorsys

    rng = np.random.default_rng([seed, 104729])
    hue = float(rng.uniform()) + sum(float(x) for x in rng.uniform(0.3, 0.45, size=index))
    v = 0.55 if index % 2 == 0 else 0.4
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, 0.45, v)
    return r * 255, g * 255, b * 255


def _texture(h: int, w: int, rng: np.random.Generator, base_rgb: tuple[float, float, float]) -> np.ndarray:
    """Band-limited pink noise (2-48 cycles per frame), periodic so the pan can wrap without a seam."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.hypot(fx * w, fy * h) * (max(w, h) / np.sqrt(w * h))  # cycles per frame, aspect-neutral
    amp = np.where((f >= 2.0) & (f <= 48.0), 1.0 / np.maximum(f, 1.0), 0.0)

    def field() -> np.ndarray:
        spec = amp * (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape))
        x = np.fft.irfft2(spec, s=(h, w))
        return (x - x.mean()) / (x.std() + 1e-12)

    luma = field()
    base = np.array(base_rgb, np.float64)
    out = base[None, None, :] + 42.0 * luma[..., None]
    for c in range(3):
        out[..., c] += 14.0 * field()
    return np.clip(out, 20, 235).astype(np.float32)


def _scene_objects(spec: TestCardSpec, scene: int, until: int) -> list[_Object]:
    """The objects of scene ``scene``; each has its own random stream, so adding one changes no other."""
    periodic = bool(spec.audio is not None and spec.audio.periodic)
    return [
        _Object(o, spec, np.random.default_rng([spec.seed, scene, k]), until, periodic)
        for k, o in enumerate(spec.objects)
    ]


class _Scene:
    def __init__(self, spec: TestCardSpec, index: int, until: int):
        rng = np.random.default_rng([spec.seed, index, 7919])
        self.spec = spec
        self.index = index
        w, h = spec.width, spec.height
        if spec.background == "texture":
            self.texture = _texture(h, w, rng, _scene_base(spec.seed, index))
        else:
            self.texture = np.broadcast_to(np.array(_scene_base(spec.seed, index), np.float32), (h, w, 3)).copy()
        # each scene pans its own way so a cut also breaks the motion field
        sign = 1.0 if index % 2 == 0 else -1.0
        self.pan = (sign * spec.pan[0] * w / spec.fps, spec.pan[1] * h / spec.fps)  # px per frame
        self.objects = _scene_objects(spec, index, until)

    def background(self, s: int) -> np.ndarray:
        import cv2

        if self.spec.background != "texture" or (self.pan[0] == 0 and self.pan[1] == 0):
            return self.texture.copy()
        ox, oy = self.pan[0] * s, self.pan[1] * s
        h, w = self.texture.shape[:2]
        m = np.array([[1, 0, ox % w], [0, 1, oy % h]], np.float64)
        return cv2.warpAffine(
            self.texture, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_WRAP
        )

    def render(self, s: int) -> np.ndarray:
        img = self.background(s)
        for o in self.objects:
            o.draw(img, s)
        return img


# -------------------------------------------------------------------------------------------- drawing


def _texts(spec: TestCardSpec) -> list[tuple[TextSpec, str]]:
    from pytest_ltx.testcard.text import garbled

    return [
        (t, t.text if t.text is not None else garbled(t.garbled or 1, spec.seed + 101 * k))
        for k, t in enumerate(spec.text)
    ]


def _burn(frame: np.ndarray, t: TextSpec, text: str) -> tuple[int, int, int, int]:
    from pytest_ltx.testcard.text import burn_text

    return burn_text(frame, text, x=t.x, y=t.y, height_frac=t.height_frac, color=t.color, outline=t.outline)


def iter_frames(spec: TestCardSpec) -> Iterator[np.ndarray]:
    """Yield the card's uint8 RGB frames one at a time (memory: one frame and one texture per scene)."""
    tl = _timeline(spec)
    until = int(tl.src[-1]) + 2
    scenes: dict[int, _Scene] = {}
    texts = _texts(spec)
    prev_key: tuple | None = None
    prev_base: np.ndarray | None = None
    first: np.ndarray | None = None
    for i in range(spec.frames):
        sc = int(tl.scene[i])
        if sc not in scenes:
            scenes.clear()  # scenes never come back: keep one texture in memory
            scenes[sc] = _Scene(spec, sc, until)
        key = (sc, int(tl.src[i]), float(tl.gain[i]))
        if key == prev_key and prev_base is not None:
            base = prev_base
        else:
            img = scenes[sc].render(int(tl.src[i]))
            if tl.gain[i] != 1.0:
                img *= tl.gain[i]
            base = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        prev_key, prev_base = key, base
        frame = base
        active = [(t, s) for t, s in texts if t.start <= i <= (t.end if t.end is not None else spec.frames - 1)]
        if active:
            frame = base.copy()
            for t, s in active:
                _burn(frame, t, s)
        if i == 0:
            first = frame
        elif i < spec.static_start and first is not None:
            frame = first
        yield _damage(spec, i, frame)


def _in(start: int, length: int | None, i: int) -> bool:
    return start <= i and (length is None or i < start + length)


def _damage(spec: TestCardSpec, i: int, frame: np.ndarray) -> np.ndarray:
    """Exposure, strobe and corruption defects of frame ``i`` (a new array when any applies)."""
    if not (spec.exposure or spec.strobe or spec.corrupt):
        return frame
    out = None
    for e in spec.exposure:
        if _in(e.start, e.length, i):
            out = (frame if out is None else out).astype(np.float32) * e.gain
    for st in spec.strobe:
        if _in(st.start, st.length, i) and int(math.floor((i - st.start) * 2 * st.rate_hz / spec.fps)) % 2 == 0:
            x = (frame if out is None else out).astype(np.float32)
            out = x * (1 - st.amplitude) + 255.0 * st.amplitude
    for c in spec.corrupt:
        if _in(c.start, c.length, i):
            rng = np.random.default_rng([spec.seed, 7919, i])
            x = (frame if out is None else out).astype(np.float32)
            if c.kind == "noise":
                out = x + rng.normal(0.0, 70.0, x.shape).astype(np.float32)
            else:
                h, w = x.shape[:2]
                out = x.copy()
                for y0 in range(0, h, 32):
                    for x0 in range(0, w, 32):
                        blk = out[y0 : y0 + 32, x0 : x0 + 32]
                        blk[...] = blk.reshape(-1, 3).mean(axis=0) + rng.uniform(-60, 60, size=3)
    if out is None:
        return frame
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _visual_events(spec: TestCardSpec, tl: _Timeline) -> list[VisualEvent]:
    until = int(tl.src[-1]) + 2
    per_scene: dict[int, dict[int, list[tuple[VisualEventKind, int]]]] = {}
    out: list[VisualEvent] = []
    for i in range(1, spec.frames):
        sc, s = int(tl.scene[i]), int(tl.src[i])
        if sc == tl.scene[i - 1] and s == tl.src[i - 1]:
            continue  # frozen: nothing new is shown
        if sc not in per_scene:
            table: dict[int, list[tuple[VisualEventKind, int]]] = {}
            for k, o in enumerate(_scene_objects(spec, sc, until)):
                for e, kind in o.event_list():
                    table.setdefault(e, []).append((kind, k))
            per_scene[sc] = table
        for kind, k in per_scene[sc].get(s, []):
            out.append(VisualEvent(kind, i, i / spec.fps, k))
    return out


def _audio_times(spec: TestCardSpec, events: list[VisualEvent]) -> list[float]:
    a = spec.audio
    if a is None or a.silence:
        return []
    tie = set(a.tie_to)
    times = sorted(e.time_s + a.offset_ms / 1000.0 for e in events if e.kind in tie)
    return [t for t in times if 0.0 <= t < spec.duration_s]


def truth(spec: TestCardSpec) -> Truth:
    """The card's truth, computed from the spec alone (no frames drawn): cheap for long cards."""
    tl = _timeline(spec)
    events = _visual_events(spec, tl)
    texts: list[BurnedText] = []
    for t, s in _texts(spec):
        box = _burn(np.zeros((spec.height, spec.width, 3), np.uint8), t, s)
        last = t.end if t.end is not None else spec.frames - 1
        texts.append(BurnedText(s, t.start, last, box, t.garbled is not None))
    return Truth(
        frames=spec.frames,
        fps=spec.fps,
        width=spec.width,
        height=spec.height,
        cuts=tuple(sorted(spec.cuts)),
        jumps=tuple(Jump(j.at, j.skip) for j in sorted(spec.jumps, key=lambda j: j.at)),
        freezes=tuple(Span(f.start, f.start + f.length - 1) for f in sorted(spec.freezes, key=lambda f: f.start)),
        flickers=tuple(Span(f.start, f.start + f.length - 1) for f in sorted(spec.flickers, key=lambda f: f.start)),
        visual_events=tuple(events),
        audio_events_s=tuple(_audio_times(spec, events)),
        av_offset_ms=None if spec.audio is None else float(spec.audio.offset_ms),
        has_audio=spec.audio is not None,
        texts=tuple(texts),
        scene_of_frame=tuple(int(v) for v in tl.scene),
        source_frame=tuple(int(v) for v in tl.src),
    )


def synthesize_audio(spec: TestCardSpec, t: Truth | None = None) -> np.ndarray | None:
    """The card's audio track, float32 ``[channels, N]``, or None for ``audio: none``."""
    a = spec.audio
    if a is None:
        return None
    n = round(spec.duration_s * a.sample_rate)
    if a.silence:
        return np.zeros((a.channels, n), np.float32)
    from pytest_ltx.testcard.audio import synthesize

    t = t or truth(spec)
    return synthesize(
        list(t.audio_events_s),
        sample_rate=a.sample_rate,
        duration_s=spec.duration_s,
        kind=a.kind,
        noise_dbfs=a.noise_dbfs,
        seed=spec.seed,
        channels=a.channels,
    )


def draw(spec: TestCardSpec) -> TestCard:
    """Render the whole card in memory with its truth. For long or large cards use :func:`write`."""
    t = truth(spec)
    frames = np.stack(list(iter_frames(spec)))
    wav = synthesize_audio(spec, t)
    clip = Clip(
        frames=frames,
        fps=spec.fps,
        audio=wav,
        sample_rate=spec.audio.sample_rate if spec.audio is not None else None,
        source=f"testcard(seed={spec.seed})",
    )
    return TestCard(clip=clip, truth=t)


def write(spec: TestCardSpec, path: os.PathLike[str] | str, *, crf: int = 18, preset: str = "veryfast") -> Truth:
    """Encode the card to an mp4 frame by frame (bounded memory at any length/size); return its truth."""
    from pytest_ltx.media import write_frames

    t = truth(spec)
    write_frames(
        iter_frames(spec),
        Path(path),
        fps=spec.fps,
        width=spec.width,
        height=spec.height,
        audio=synthesize_audio(spec, t),
        sample_rate=spec.audio.sample_rate if spec.audio is not None else None,
        crf=crf,
        preset=preset,
    )
    return t
