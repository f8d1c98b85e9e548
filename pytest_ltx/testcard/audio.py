"""Event audio for test cards: transients at known times, so A/V-sync metrics have a truth to hit.

Each event starts *exactly* at ``round(t * sample_rate)`` (its first non-zero sample), rises within a
couple of milliseconds and decays smoothly to silence, so its onset is unambiguous and it produces no
second transient (a hard cut-off would be a second "event" to an onset detector). A quiet noise floor
keeps the track from being digital silence, like real renders. Deterministic for a given ``seed``.
"""

from __future__ import annotations

from enum import Enum
from typing import Sequence

import numpy as np

__all__ = ["EventSound", "synthesize"]


class EventSound(str, Enum):
    #: short broadband transient (exponentially decaying noise burst, ~3 ms time constant, 25 ms long)
    CLICK = "click"
    #: tone burst (1 kHz by default): 2 ms linear attack, ~30 ms exponential decay, 90 ms long
    BEEP = "beep"


def _event_shape(kind: EventSound, sr: int, rng: np.random.Generator, beep_hz: float) -> np.ndarray:
    """One event's waveform (peak 1.0), starting at its onset sample and fading to zero."""
    if kind is EventSound.CLICK:
        n = max(8, round(0.025 * sr))
        t = np.arange(n) / sr
        env = np.exp(-t / 0.003)
        sig = rng.standard_normal(n) * env
    else:
        n = max(8, round(0.090 * sr))
        t = np.arange(n) / sr
        attack = np.minimum(1.0, (np.arange(n) + 1) / max(1.0, 0.002 * sr))
        env = attack * np.exp(-t / 0.030)
        sig = np.cos(2 * np.pi * beep_hz * t) * env  # cosine: the first sample is already non-zero
    # a raised-cosine fade over the last 30 % so the event ends without a click of its own
    k = max(2, int(0.3 * n))
    sig[-k:] *= 0.5 * (1 + np.cos(np.linspace(0, np.pi, k)))
    return (sig / np.max(np.abs(sig))).astype(np.float64)


def synthesize(
    event_times_s: Sequence[float],
    *,
    sample_rate: int,
    duration_s: float,
    kind: str = "click",
    noise_dbfs: float = -50.0,
    seed: int = 0,
    channels: int = 2,
    amplitude: float = 0.5,
    beep_hz: float = 1000.0,
) -> np.ndarray:
    """Audio with one ``kind`` event starting at each of ``event_times_s``: float32 ``[channels, N]``.

    ``N = round(duration_s * sample_rate)``. Events whose onset falls outside ``[0, duration_s)`` are
    dropped (the test card offsets audio against video, so some events may be pushed off the end);
    an event near the end is truncated. ``noise_dbfs`` is the RMS of the white noise floor (independent
    per channel; ``-inf`` for none); ``amplitude`` the event peak. Overlapping events add.
    """
    sound = EventSound(kind)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    n = max(0, round(duration_s * sample_rate))
    rng = np.random.default_rng(seed)
    mono = np.zeros(n, np.float64)
    for t in event_times_s:
        start = round(float(t) * sample_rate)
        if start < 0 or start >= n:
            continue
        shape = _event_shape(sound, sample_rate, rng, beep_hz)
        m = min(len(shape), n - start)
        mono[start : start + m] += amplitude * shape[:m]
    out = np.repeat(mono[None, :], channels, axis=0)
    if np.isfinite(noise_dbfs):
        out += rng.standard_normal((channels, n)) * (10.0 ** (noise_dbfs / 20.0))
    return np.clip(out, -1.0, 1.0).astype(np.float32)
