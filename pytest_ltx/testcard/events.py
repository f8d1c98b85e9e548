"""Randomized audio-visual event clips that are *not* the project's own test cards.

The A/V-sync metric was designed on :mod:`pytest_ltx.testcard` (a bouncing ball, a linear mover and a
flashing square with clicks). To show that it generalizes, this module draws independent content from a
seed, with a different renderer and different sounds:

* objects: disks, squares, triangles, rings and bars of several sizes and contrasts, 1–3 per clip;
* motions with an event at a known frame: *bounce* (a parabolic hop ending on a floor, with sideways
  drift), *wall hit* (travel, reverse at a wall), *stop* (travel, then halt with a thud), *pop* (an object
  appears abruptly and fades away), *drop* (falls and stays down);
* backgrounds: flat colour or band-limited texture, optionally with a camera pan (everything in world
  coordinates, so the pan moves objects too) that may drift in speed;
* a 180° shutter: moving objects are motion-blurred as a camera (or a video model) renders them;
* frame rates 24–60 fps, sample rates 16–48 kHz;
* sounds: click, thud (low decaying sine with a pitch drop), tonal (a pitched ping with 1–6 ms attack),
  noise burst (band-passed noise, 20–80 ms); each event's onset sits exactly at its frame time plus the
  clip's offset;
* timing: irregular gaps (the *clear* kind), a metronome (the *periodic* kind: an honest metric abstains),
  or no events at all (the *eventless* kind: steady motion and ambient sound).

Every clip carries its truth (offset, event frames, kind, parameters). Deterministic for a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from pytest_ltx.media import Clip

__all__ = ["EventClipKind", "EventClipTruth", "EventClip", "generate", "FPS_CHOICES", "RATE_CHOICES"]

FPS_CHOICES = (24.0, 25.0, 30.0, 48.0, 50.0, 60.0)
RATE_CHOICES = (16000, 22050, 32000, 44100, 48000)
SOUNDS = ("click", "thud", "tonal", "noise")
SHAPES = ("disk", "square", "triangle", "ring", "bar")
MOTIONS = ("bounce", "wall", "stop", "pop", "drop")


class EventClipKind(str, Enum):
    #: irregularly spaced, clearly visible and audible events: the metric should measure
    CLEAR = "clear"
    #: events on a metronome (one period for picture and sound): offsets a period apart fit equally well
    PERIODIC = "periodic"
    #: steady motion and ambient sound, no events: nothing to sync to
    EVENTLESS = "eventless"


@dataclass(frozen=True)
class EventClipTruth:
    kind: EventClipKind
    offset_ms: float
    fps: float
    sample_rate: int
    event_frames: tuple[int, ...]
    sounds: tuple[str, ...]
    motions: tuple[str, ...]
    shapes: tuple[str, ...]
    background: str
    pan: bool
    size: tuple[int, int]
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value, "offset_ms": self.offset_ms, "fps": self.fps, "sample_rate": self.sample_rate,
            "event_frames": list(self.event_frames), "sounds": list(self.sounds), "motions": list(self.motions),
            "shapes": list(self.shapes), "background": self.background, "pan": self.pan, "size": list(self.size),
            "params": dict(self.params),
        }


@dataclass(frozen=True)
class EventClip:
    clip: Clip
    truth: EventClipTruth


# ------------------------------------------------------------------------------------------ picture

#: an object's luma stands at least this far from the background's (a *clear* event is visible in grey)
LUMA_CONTRAST = 70.0


def _luma(rgb: np.ndarray) -> float:
    return float(np.asarray(rgb, np.float64) @ [0.299, 0.587, 0.114])



def _texture(rng: np.random.Generator, h: int, w: int, base: np.ndarray) -> np.ndarray:
    """Band-limited colour noise around ``base`` (float32 [h, w, 3], 0–255)."""
    import cv2

    noise = rng.standard_normal((h, w, 3)).astype(np.float32)
    sigma = float(rng.uniform(2.0, 6.0))
    blurred = cv2.GaussianBlur(noise, (0, 0), sigma)
    n = blurred / (float(blurred.std()) + 1e-6)
    amp = float(rng.uniform(12, 35))
    return np.clip(base[None, None, :] + amp * n, 0, 255).astype(np.float32)


def _mask(shape: str, h: int, w: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """Anti-aliased coverage (0–1) of one shape centred at (cx, cy) with radius r."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = x + 0.5 - cx, y + 0.5 - cy
    if shape == "disk":
        d = np.sqrt(dx * dx + dy * dy) - r
    elif shape == "ring":
        d = np.abs(np.sqrt(dx * dx + dy * dy) - 0.75 * r) - 0.3 * r
    elif shape in ("square", "bar"):
        ca, sa = math.cos(angle), math.sin(angle)
        u, v = ca * dx + sa * dy, -sa * dx + ca * dy
        rx, ry = (r, r) if shape == "square" else (1.6 * r, 0.45 * r)
        d = np.maximum(np.abs(u) - rx * 0.85, np.abs(v) - ry * 0.85)
    else:  # triangle
        d = np.full((h, w), -np.inf, np.float32)
        for k in range(3):
            a = angle + 2 * math.pi * k / 3
            d = np.maximum(d, math.cos(a) * dx + math.sin(a) * dy - 0.55 * r)
    return np.clip(0.5 - d, 0.0, 1.0)


@dataclass
class _Obj:
    shape: str
    motion: str
    color: np.ndarray
    r: float
    events: list[int]
    # trajectory: world position per frame (x, y) and visibility per frame
    xy: np.ndarray
    alpha: np.ndarray
    angle: float


def _gaps(rng: np.random.Generator, kind: EventClipKind, fps: float, lo_s: float, hi_s: float, n_max: int,
          period: int | None) -> list[int]:
    if kind is EventClipKind.PERIODIC:
        assert period is not None
        return [period] * n_max
    return [int(round(rng.uniform(lo_s, hi_s) * fps)) for _ in range(n_max)]


def _trajectory(rng: np.random.Generator, motion: str, t: int, fps: float, w: int, h: int, r: float,
                events: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Screen (x, y) per frame and opacity per frame; each event happens exactly *at* its frame.

    Every trajectory stays inside the frame, so each event is visible.
    """
    xy = np.zeros((t, 2), np.float64)
    alpha = np.ones(t)
    lo_x, hi_x, lo_y, hi_y = r + 3, w - r - 3, r + 3, h - r - 3
    floor = hi_y
    if motion == "bounce":
        # parabolic hops between consecutive events, resting on the floor exactly at each event,
        # with a sideways drift that stays in frame
        span = (hi_x - lo_x) * rng.uniform(0.0, 0.8)
        x0 = rng.uniform(lo_x, hi_x - span)
        sign = rng.choice([-1.0, 1.0])
        if sign < 0:
            x0 += span
        marks = [0] + events + [t + int(0.6 * fps)]
        lift = rng.uniform(0.4, 0.9) * (hi_y - lo_y)
        for i in range(t):
            k = int(np.searchsorted(marks, i, side="right") - 1)
            a, b = marks[k], marks[k + 1]
            s = (i - a) / max(1, b - a)
            hop = lift * min(1.0, (b - a) / (0.8 * fps)) ** 2
            y = floor - 4 * hop * s * (1 - s) if k > 0 or a == 0 else floor
            xy[i] = (x0 + sign * span * i / max(1, t - 1), y)
    elif motion == "drop":
        # is lifted smoothly (ease in/out) to the top, falls accelerating, lands exactly at the event frame
        # and rests on the floor until it is lifted again
        x = rng.uniform(lo_x, hi_x)
        xy[:, 0] = x
        xy[:, 1] = floor
        prev = 0
        for e in events:
            fall = max(2, min(int(rng.uniform(0.2, 0.4) * fps), (e - prev) // 2))
            top = e - fall
            lift_start = max(prev, top - max(3, int(rng.uniform(0.25, 0.5) * fps)))
            top_y = lo_y + rng.uniform(0.0, 0.3) * (floor - lo_y)
            for i in range(lift_start, max(lift_start, top)):
                s = (i - lift_start) / max(1, top - lift_start)
                xy[i, 1] = floor + (top_y - floor) * (0.5 - 0.5 * math.cos(math.pi * s))
            for i in range(max(prev, top), e):
                s = (i - top) / max(1, fall)
                xy[i, 1] = top_y + (floor - top_y) * s * s
            prev = e + 1
    elif motion == "wall":
        # travels between the two side walls; the direction flips at a wall exactly at each event
        y0 = rng.uniform(lo_y, hi_y)
        vy = rng.uniform(-0.08, 0.08) * (hi_y - lo_y) / max(1, t)
        side = rng.choice([0, 1])
        walls = (lo_x, hi_x)
        marks = [0] + events
        xs = [rng.uniform(lo_x, hi_x)] + [walls[(side + j) % 2] for j in range(len(events))]
        for i in range(t):
            k = int(np.searchsorted(marks, i, side="right") - 1)
            if k + 1 < len(marks):
                a, b = marks[k], marks[k + 1]
                x = xs[k] + (xs[k + 1] - xs[k]) * (i - a) / max(1, b - a)
            else:  # after the last event: away from the wall at the last segment's speed
                a = marks[k]
                v = (xs[k] - xs[k - 1]) / max(1, marks[k] - marks[k - 1]) if k > 0 else 0.0
                x = xs[k] - v * (i - a)
                x = min(max(x, lo_x), hi_x)
            xy[i] = (x, y0 + vy * i)
    elif motion == "stop":
        # glides to a point and halts there at the event (a thud), rests, then sets off (silently)
        pos = np.array([rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)])
        xy[:] = pos
        prev_end = 0
        for j, e in enumerate(events):
            nxt = events[j + 1] if j + 1 < len(events) else t + int(0.6 * fps)
            go = max(prev_end, e - int(rng.uniform(0.25, 0.6) * fps))
            dest = np.array([rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)])
            for i in range(prev_end, min(t, go)):
                xy[i] = pos
            for i in range(go, min(t, e)):
                xy[i] = pos + (dest - pos) * (i - go) / max(1, e - go)
            pos = dest
            rest = e + max(2, (nxt - e) // 3)
            xy[e:min(t, rest)] = pos
            prev_end = min(t, rest)
        xy[prev_end:] = pos
    else:  # pop: appears abruptly at each event at a new place, then fades out
        alpha[:] = 0.0
        for j, e in enumerate(events):
            px, py = rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)
            end = events[j + 1] if j + 1 < len(events) else t
            fade = max(3.0, rng.uniform(0.15, 0.4) * fps)
            for i in range(e, end):
                alpha[i] = max(0.0, 1.0 - (i - e) / fade)
                xy[i] = (px, py)
    return xy, alpha


# -------------------------------------------------------------------------------------------- sound


def _sound(kind: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One event's waveform, peak 1, starting at its onset (first sample non-zero) and fading to zero."""
    if kind == "click":
        n = round(rng.uniform(0.01, 0.03) * sr)
        tt = np.arange(n) / sr
        sig = rng.standard_normal(n) * np.exp(-tt / rng.uniform(0.002, 0.006))
    elif kind == "thud":
        n = round(rng.uniform(0.12, 0.25) * sr)
        tt = np.arange(n) / sr
        f0 = rng.uniform(60, 160)
        f = f0 * (1 + 0.8 * np.exp(-tt / 0.02))  # pitch drop, like a hit drum
        ph = 2 * np.pi * np.cumsum(f) / sr
        att = np.minimum(1.0, (np.arange(n) + 1) / max(1.0, 0.001 * sr))
        sig = np.sin(ph + np.pi / 2) * att * np.exp(-tt / rng.uniform(0.03, 0.08))
        sig += 0.3 * rng.standard_normal(n) * np.exp(-tt / 0.004)  # the contact transient
    elif kind == "tonal":
        n = round(rng.uniform(0.12, 0.3) * sr)
        tt = np.arange(n) / sr
        tone = rng.uniform(300, min(3000, 0.4 * sr))
        att = np.minimum(1.0, (np.arange(n) + 1) / max(1.0, rng.uniform(0.001, 0.006) * sr))
        sig = (np.cos(2 * np.pi * tone * tt) + 0.4 * np.cos(2 * np.pi * 2.01 * tone * tt)) * att
        sig *= np.exp(-tt / rng.uniform(0.04, 0.12))
    else:  # noise burst, band-passed
        n = round(rng.uniform(0.02, 0.08) * sr)
        x = rng.standard_normal(n + 64)
        lo, hi = sorted(rng.uniform(200, min(8000, 0.45 * sr), size=2))
        spec = np.fft.rfft(x)
        fr = np.fft.rfftfreq(len(x), 1 / sr)
        spec[(fr < lo) | (fr > hi + 500)] = 0
        sig = np.fft.irfft(spec, len(x))[32 : 32 + n]
        att = np.minimum(1.0, (np.arange(n) + 1) / max(1.0, 0.002 * sr))
        sig = sig * att
    k = max(2, int(0.3 * len(sig)))
    sig[-k:] *= 0.5 * (1 + np.cos(np.linspace(0, np.pi, k)))
    return sig / (np.max(np.abs(sig)) + 1e-12)


def _ambient(rng: np.random.Generator, n: int, sr: int, level_dbfs: float) -> np.ndarray:
    """Room tone: pink-ish noise at ``level_dbfs`` RMS (a smooth spectrum, no transients)."""
    x = rng.standard_normal(n)
    spec = np.fft.rfft(x)
    fr = np.fft.rfftfreq(n, 1 / sr)
    spec /= np.sqrt(np.maximum(fr, 20.0))
    y = np.fft.irfft(spec, n)
    y /= float(np.sqrt(np.mean(y * y))) + 1e-12
    return y * 10 ** (level_dbfs / 20)


# ------------------------------------------------------------------------------------------- public


def generate(seed: int, *, kind: EventClipKind | str = EventClipKind.CLEAR, fps: float | None = None,
             sample_rate: int | None = None, offset_ms: float | None = None, seconds: float | None = None,
             size: tuple[int, int] | None = None) -> EventClip:
    """One random event clip from ``seed`` (anything not given is drawn from it)."""
    kind = EventClipKind(kind)
    rng = np.random.default_rng([seed, 0x5EC])
    fps = float(fps if fps is not None else rng.choice(FPS_CHOICES))
    sr = int(sample_rate if sample_rate is not None else rng.choice(RATE_CHOICES))
    off = float(offset_ms if offset_ms is not None else round(rng.uniform(-240, 240), 1))
    secs = float(seconds if seconds is not None else rng.uniform(3.0, 5.0))
    if size is None:
        w = int(rng.choice([128, 160, 192, 224, 256]))
        h = int(rng.choice([96, 128, 144, 192]))
    else:
        w, h = size
    t = int(round(secs * fps))
    background = str(rng.choice(["flat", "texture"]))
    pan = bool(rng.random() < 0.5)
    pan_v = rng.uniform(-0.2, 0.2, size=2) * np.array([w, 0.3 * h]) / fps if pan else np.zeros(2)
    pan_drift = rng.uniform(-0.3, 0.3) if pan else 0.0  # relative speed change over the clip

    n_obj = int(rng.integers(1, 4)) if kind is not EventClipKind.PERIODIC else 1
    base = rng.uniform(30, 200, size=3)
    margin = int(math.ceil(np.abs(pan_v).max() * t * (1 + abs(pan_drift)))) + 4
    W, H = w + 2 * margin, h + 2 * margin
    if background == "texture":
        bg = _texture(rng, H, W, base)
    else:
        bg = np.broadcast_to(base.astype(np.float32), (H, W, 3)).copy()

    period = int(round(rng.uniform(0.3, 0.6) * fps)) if kind is EventClipKind.PERIODIC else None
    start = int(rng.uniform(0.2, 0.5) * fps)
    objs: list[_Obj] = []
    all_events: list[int] = []
    short = min(w, h)
    for j in range(n_obj):
        shape = str(rng.choice(SHAPES))
        motion = str(rng.choice(MOTIONS))
        r = float(rng.uniform(0.07, 0.16) * short)
        col = rng.uniform(0, 255, size=3)
        # contrast against the background: at least ~70 gray levels apart in luma
        if abs(_luma(col) - _luma(base)) < LUMA_CONTRAST:
            col = np.where(base > 127, col * 0.3, 255 - (255 - col) * 0.3)
        if abs(_luma(col) - _luma(base)) < LUMA_CONTRAST:  # still (near) isoluminant: to the far end
            col = 0.15 * col + (0.0 if _luma(base) >= 128 else 0.85 * 255.0)
        events: list[int] = []
        if kind is not EventClipKind.EVENTLESS:
            first = start + (j * period // n_obj if period else int(rng.uniform(0, 0.4) * fps))
            e = first
            for g in _gaps(rng, kind, fps, 0.35, 1.1, 64, period):
                if e >= t - 3:
                    break
                # events of different objects are kept apart by ≥ 0.15 s, so each sound has one picture
                if all(abs(e - x) >= 0.15 * fps for x in all_events):
                    events.append(e)
                e += max(2, g)
        all_events += events
        if kind is EventClipKind.EVENTLESS:
            motion = "glide"
            vx, vy = rng.uniform(-0.3, 0.3) * w / fps, rng.uniform(-0.1, 0.1) * h / fps
            x0, y0 = rng.uniform(r, w - r), rng.uniform(r, h - r)
            xy = np.stack([x0 + vx * np.arange(t), y0 + vy * np.arange(t)], axis=1)
            alpha = np.ones(t)
        else:
            xy, alpha = _trajectory(rng, motion, t, fps, w, h, r, events)
        objs.append(_Obj(shape, motion, col.astype(np.float32), r, events, xy, alpha,
                         float(rng.uniform(0, math.pi))))

    frames = np.empty((t, h, w, 3), np.uint8)
    cam = np.zeros((t, 2))
    for i in range(1, t):
        cam[i] = cam[i - 1] + pan_v * (1 + pan_drift * i / t)
    # objects follow the pan only partly (a tracking camera), so they never leave the frame
    lam = min(1.0, 0.12 * min(w, h) / (float(np.abs(cam).max()) + 1e-9)) if pan else 0.0
    for i in range(t):
        ox, oy = margin + cam[i, 0], margin + cam[i, 1]
        ix, iy = int(math.floor(ox)), int(math.floor(oy))
        fx, fy = ox - ix, oy - iy
        ix, iy = min(max(ix, 0), W - w - 1), min(max(iy, 0), H - h - 1)
        win = bg[iy : iy + h + 1, ix : ix + w + 1]
        img = ((1 - fy) * ((1 - fx) * win[:-1, :-1] + fx * win[:-1, 1:])
               + fy * ((1 - fx) * win[1:, :-1] + fx * win[1:, 1:]))
        for o in objs:
            if o.alpha[i] <= 0:
                continue
            # motion blur of a 180° shutter: the exposure spans a quarter frame either side of the frame
            # time, sampled at 5 sub-frame positions on the path to the neighbouring frames
            m = np.zeros((h, w), np.float32)
            for u in (-0.25, -0.125, 0.0, 0.125, 0.25):
                j = min(t - 1, max(0, i + (1 if u > 0 else -1)))
                if o.alpha[j] <= 0:  # (dis)appearing: no path to a frame it is not in
                    j = i
                p = o.xy[i] + abs(u) * (o.xy[j] - o.xy[i])
                cx, cy = p[0] - lam * cam[i, 0], p[1] - lam * cam[i, 1]
                m += _mask(o.shape, h, w, float(cx), float(cy), o.r, o.angle) / 5.0
            m *= float(o.alpha[i])
            img = img * (1 - m[..., None]) + o.color[None, None, :] * m[..., None]
        frames[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    # ------------------------------------------------------------------ audio
    n = int(round(t / fps * sr))
    amb_db = float(rng.uniform(-55, -38))
    mono = _ambient(rng, n, sr, amb_db)
    sounds_used: list[str] = []
    clip_sound = str(rng.choice(SOUNDS))
    mixed = rng.random() < 0.4  # some clips mix sound kinds across events
    if kind is EventClipKind.EVENTLESS:
        # a steady tone or a hum may sit under the ambience (no onsets)
        if rng.random() < 0.5:
            f = rng.uniform(100, 1000)
            mono += 0.05 * np.sin(2 * np.pi * f * np.arange(n) / sr)
    for e in sorted(all_events):
        snd = str(rng.choice(SOUNDS)) if mixed else clip_sound
        sounds_used.append(snd)
        s0 = int(round((e / fps + off / 1000.0) * sr))
        if s0 < 0 or s0 >= n:
            continue
        wave = _sound(snd, sr, rng) * rng.uniform(0.3, 0.8)
        take = min(len(wave), n - s0)
        mono[s0 : s0 + take] += wave[:take]
    mono = np.clip(mono, -1, 1).astype(np.float32)
    channels = int(rng.integers(1, 3))
    audio = np.repeat(mono[None, :], channels, axis=0)
    clip = Clip(frames=frames, fps=fps, audio=audio, sample_rate=sr, source=f"events(seed={seed},{kind.value})")
    truth = EventClipTruth(
        kind=kind, offset_ms=off, fps=fps, sample_rate=sr, event_frames=tuple(sorted(all_events)),
        sounds=tuple(sounds_used), motions=tuple(o.motion for o in objs), shapes=tuple(o.shape for o in objs),
        background=background, pan=pan, size=(w, h),
        params={"ambient_dbfs": round(amb_db, 1), "period_frames": period, "pan_px_per_frame": pan_v.round(3).tolist(),
                "mixed_sounds": mixed, "object_events": [list(o.events) for o in objs],
                "luma_contrast": [round(abs(_luma(o.color) - _luma(base)), 1) for o in objs]},
    )
    return EventClip(clip=clip, truth=truth)
