"""Budgets on untrusted input: how big a spec file, a decoded clip, an audio track or a baseline's arrays
may be before pytest-ltx refuses it with a clear error instead of hanging or eating the runner's memory.

A spec, a clip and a baseline folder reach a PR gate from people the runner does not trust, so every
input that can grow without bound has a limit here, a documented default (sized well above what any
LTX-2 clip needs) and one setting to raise it: ``--ltx-limits NAME=VALUE ...`` or the ini key
``ltx_limits``. The session sets the process-wide limits once (:func:`set_limits`); the readers ask
:func:`current` so that library code (``pytest-ltx evaluate``, the metrics) obeys the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from pytest_ltx.errors import LimitError  # noqa: F401 (re-exported)

__all__ = ["Limits", "LimitError", "current", "set_limits", "parse_limits", "raise_hint"]


@dataclass(frozen=True)
class Limits:
    """Every budget, with its default. Units are in the names."""

    #: size of one spec file on disk (a real spec is a few kB)
    spec_kb: int = 1024
    #: YAML nodes built for one spec file, counting every alias and merge expansion (alias/merge bombs)
    yaml_nodes: int = 100_000
    #: decoded RGB frames of one clip, frames × height × width × 3 bytes, after any downscale on decode
    #: (a 10 s 1280×720 clip at 25 fps is 690 MB; 4K for 10 s would be 6 GB)
    clip_mb: int = 2048
    #: audio sample rate (the highest common production rate is 192 kHz)
    audio_hz: int = 192_000
    #: audio length in seconds of one clip or audio file
    audio_s: int = 600
    #: decompressed size of one baseline ``keyframes.npz`` (a record's arrays are a few hundred kB)
    npz_mb: int = 64
    #: size of one prompt pack (``vars: {from: ...}``) on disk; a pack lists prompts, it is not a data set
    pack_kb: int = 8192
    #: rows of one prompt pack
    pack_rows: int = 10_000
    #: pixels of one still image (a conditioning or first-frame reference), in megapixels, read from the
    #: image header before decoding (8K is 33 MP; a 20 kB PNG can claim gigapixels)
    image_mp: int = 64

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_DEFAULT = Limits()
_current = _DEFAULT


def current() -> Limits:
    """The limits of this process (the defaults unless a session or the CLI set them)."""
    return _current


def set_limits(limits: Limits) -> None:
    global _current
    _current = limits


def raise_hint(name: str, value: int | float | None = None) -> str:
    """How to raise limit ``name``: the words every budget error ends with."""
    v = value if value is not None else 2 * getattr(current(), name)
    return f"raise it with `--ltx-limits {name}={v}` (ini: ltx_limits = {name}={v}) if the input is trusted"


def parse_limits(v: Any) -> Limits:
    """``"clip_mb=4096 audio_hz=384000"`` (or a list of such words) → :class:`Limits`; a bad name or value
    raises ``ValueError`` naming it and listing the known limits."""
    words = [str(x) for x in v] if isinstance(v, (list, tuple)) else str(v).replace(",", " ").split()
    known = {f.name for f in fields(Limits)}
    out: dict[str, int] = {}
    for w in (w.strip() for w in words):
        if not w:
            continue
        name, sep, raw = w.partition("=")
        name = name.strip()
        if not sep or name not in known:
            raise ValueError(f"{w!r} is not NAME=VALUE with NAME one of {', '.join(sorted(known))}")
        try:
            n = int(raw.strip())
        except ValueError:
            raise ValueError(f"{name}: expected a whole number, got {raw.strip()!r}") from None
        if n <= 0:
            raise ValueError(f"{name}: expected a number > 0, got {n}")
        out[name] = n
    return replace(_DEFAULT, **out)
