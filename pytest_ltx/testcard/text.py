"""Burned-in text for test cards: readable captions and the glyph-like garble diffusion models grow.

Text is drawn with Pillow and a TrueType font when one is found (DejaVu Sans Bold from the system or from
matplotlib's bundled fonts), because the garble uses Cyrillic and symbol look-alikes that OpenCV's Hershey
fonts (ASCII only) cannot draw. Without a TTF the Hershey font is used and :func:`garbled` sticks to ASCII
look-alikes, so whatever it returns stays drawable on this machine.
"""

from __future__ import annotations

import functools
import os
import random
from pathlib import Path

import numpy as np

__all__ = ["burn_text", "garbled", "font_path"]

# Look-alike glyphs. Pseudo-text in generated video is made of letter fragments: mirrored Latin,
# Cyrillic that resembles Latin, and symbol shapes. Mixed with real capitals it reads as "almost text".
_LATIN = "ABCDEFGHKMNPRSTXZ"
_CYRILLIC = "ДЖЗИЛФЦЧШЩЯБЮЭЪ"
_SYMBOLS = "ƎƆꟻ§¥ØßΩΣΞΨ∆¤ŦĦ"
_ASCII_LOOKALIKES = "ABCDEFGHKMNPRSTXZ0123456789#%&$@"

_FONT_NAMES = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf")
_FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/dejavu",
    "/usr/share/fonts/TTF",
    "/Library/Fonts",
    "C:/Windows/Fonts",
)


@functools.lru_cache(maxsize=1)
def font_path() -> str | None:
    """A TTF that covers Latin, Cyrillic and the symbols used by :func:`garbled`, or None.

    ``$PYTEST_LTX_FONT`` wins; then DejaVu from the usual system folders; then matplotlib's bundled copy.
    """
    env = os.environ.get("PYTEST_LTX_FONT")
    if env and Path(env).is_file():
        return env
    for d in _FONT_DIRS:
        for name in _FONT_NAMES:
            p = Path(d) / name
            if p.is_file():
                return str(p)
    try:
        import matplotlib

        for name in _FONT_NAMES:
            p = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
            if p.is_file():
                return str(p)
    except ImportError:
        pass
    return None


@functools.lru_cache(maxsize=32)
def _font(size: int):
    from PIL import ImageFont

    path = font_path()
    assert path is not None
    return ImageFont.truetype(path, size=size)


def garbled(n: int, seed: int) -> str:
    """``n`` characters of glyph-like pseudo-text (deterministic for a seed), grouped into "words".

    Mixes Latin capitals, Cyrillic and symbol look-alikes; spaces split it into 2–6 glyph groups and never
    lead, trail or repeat. Without a TTF font only ASCII look-alikes are used (Hershey can draw those).
    """
    if n < 0:
        raise ValueError(f"garbled: n must be >= 0, got {n}")
    rng = random.Random(seed)
    if font_path() is not None:
        pools: tuple[str, ...] = (_LATIN, _CYRILLIC, _SYMBOLS)
        weights: tuple[float, ...] = (0.4, 0.35, 0.25)
    else:
        pools = (_ASCII_LOOKALIKES,)
        weights = (1.0,)
    out: list[str] = []
    word_left = rng.randint(2, 6)
    while len(out) < n:
        if word_left == 0 and 0 < len(out) < n - 1:
            out.append(" ")
            word_left = rng.randint(2, 6)
            continue
        pool = rng.choices(pools, weights)[0]
        out.append(rng.choice(pool))
        word_left = max(0, word_left - 1)
    return "".join(out)


def burn_text(
    frame: np.ndarray,
    text: str,
    *,
    x: float,
    y: float,
    height_frac: float = 0.12,
    color: tuple[int, int, int] = (255, 255, 255),
    outline: tuple[int, int, int] | None = None,
) -> tuple[int, int, int, int]:
    """Draw ``text`` into the uint8 RGB ``frame`` in place; return its ink box ``(x0, y0, x1, y1)`` in pixels.

    ``x``/``y`` place the top-left of the text as fractions of the frame width/height. ``height_frac`` is the
    font size as a fraction of the frame height; the font shrinks if the text would run off the right or
    bottom edge, and the box is moved inside the frame. ``outline`` adds a dark stroke (readable on footage).
    The returned box is where the ink is (x1/y1 exclusive), which is what an OCR test compares against.
    """
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"burn_text: frame must be uint8 [H,W,3], got {frame.dtype} {frame.shape}")
    if not text.strip():
        raise ValueError("burn_text: text is empty")
    h, w = frame.shape[:2]
    size = max(6, round(height_frac * h))
    x0, y0 = round(x * w), round(y * h)
    if font_path() is not None:
        return _burn_pil(frame, text, x0, y0, size, color, outline)
    return _burn_hershey(frame, text, x0, y0, size, color, outline)


def _burn_pil(frame, text, x0, y0, size, color, outline):
    from PIL import Image, ImageDraw

    h, w = frame.shape[:2]
    while True:
        font = _font(size)
        stroke = max(1, size // 14) if outline is not None else 0
        left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
        tw, th = right - left, bottom - top
        if (tw <= w - 2 and th <= h - 2) or size <= 6:
            break
        size = max(6, int(size * min((w - 2) / max(tw, 1), (h - 2) / max(th, 1)) * 0.98))
    # keep the ink inside the frame: clamp the ink box, then place the text origin accordingly
    ix0 = min(max(x0, 0), max(0, w - tw))
    iy0 = min(max(y0, 0), max(0, h - th))
    # a text too long even at the smallest size is cut at the frame edge
    cw, ch = min(tw, w - ix0), min(th, h - iy0)
    region = Image.fromarray(np.ascontiguousarray(frame[iy0 : iy0 + ch, ix0 : ix0 + cw]))
    draw = ImageDraw.Draw(region)
    draw.text(
        (-left, -top), text, font=font, fill=tuple(int(c) for c in color),
        stroke_width=stroke, stroke_fill=None if outline is None else tuple(int(c) for c in outline),
    )
    frame[iy0 : iy0 + ch, ix0 : ix0 + cw] = np.asarray(region)
    return (int(ix0), int(iy0), int(ix0 + cw), int(iy0 + ch))


def _burn_hershey(frame, text, x0, y0, size, color, outline):
    import cv2

    h, w = frame.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    text = text.encode("ascii", "replace").decode("ascii")
    # Hershey's scale 1.0 is ~22 px cap height; size is a line height, cap height ~0.72 of it.
    scale = size * 0.72 / 22.0
    thick = max(1, round(scale * 2))
    while True:
        (tw, th), base = cv2.getTextSize(text, font, scale, thick + (2 * thick if outline else 0))
        if (tw <= w - 2 and th + base <= h - 2) or scale < 0.2:
            break
        scale *= 0.9 * min((w - 2) / max(tw, 1), (h - 2) / max(th + base, 1))
        thick = max(1, round(scale * 2))
    ix0 = min(max(x0, 0), max(0, w - tw))
    iy0 = min(max(y0, 0), max(0, h - th - base))
    org = (ix0, iy0 + th)
    img = np.ascontiguousarray(frame[..., ::-1])  # cv2 draws BGR
    if outline is not None:
        cv2.putText(img, text, org, font, scale, tuple(int(c) for c in outline[::-1]), thick * 3, cv2.LINE_AA)
    cv2.putText(img, text, org, font, scale, tuple(int(c) for c in color[::-1]), thick, cv2.LINE_AA)
    frame[...] = img[..., ::-1]
    return (int(ix0), int(iy0), int(min(w, ix0 + tw)), int(min(h, iy0 + th + base)))
