"""Compare a run's results with its golden baseline: per-metric tolerance, per-keyframe similarity.

Every number measured *against* the baseline is measured here, never by a metric: keyframe CLIP cosine,
keyframe SSIM of the structural thumbnails, audio-spectrum similarity and the paired prompt-score drop,
all over keyframes paired by the one alignment policy of :mod:`pytest_ltx.baseline.keyframes`.

Default tolerances (used when neither the spec nor a calibration says otherwise), first match wins:

=====================================================  ==============  =====================
metric key pattern                                     tolerance       calibration floor
=====================================================  ==============  =====================
counts: ``*.cuts *.jumps *.freezes *.flickers``,        exact           0
``*count* *.detections *events *frames*``
``budget.* *seconds* *vram*`` (machine-dependent),     not gated       —
``*baseline*`` (measured against the baseline itself:
its own family gates it)
``av_sync.offset_ms``, ``*_ms``                        ±20 ms          5 ms
``*_s`` (other durations)                              ±0.05 s         0.01 s
``*confidence*``                                       ±0.10           0.02
``*flicker*``                                          ±0.01           0.002
``*dynamic*``                                          ±0.05           0.01
``*ratio*`` (text coverage, frames with text)          ±0.02           0.005
``clip_similarity.*``, ``*similarity*``, ``*ssim*``    ±0.02           0.005
``*cer*`` (character error rate)                       ±0.05           0.01
anything else (e.g. ``motion.flow_mean``)              ints exact,     1e-6
                                                       floats ±5 %
=====================================================  ==============  =====================

Why these: counts are events a reviewer reasons about (one more cut is a regression); A/V offsets are
estimated to a few ms but a frame at 24 fps is 42 ms, so 20 ms is "half a frame"; CLIP scores for
comparable clips sit within a few hundredths of each other, so 0.02 is a real move. Calibration
(``--ltx-calibrate N``) replaces these with ``max(floor, k·σ)`` measured on the item itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol, Sequence

import numpy as np

from pytest_ltx.expect.baseline import BaselineExpect, parse_tolerance
from pytest_ltx.outcome import Outcome, Status

from .calibrate import derived_tolerance
from .record import BaselineRecord, round_sig

if TYPE_CHECKING:
    from pytest_ltx.expect.clip_score import ClipScoreExpect

__all__ = [
    "ToleranceSource",
    "Tolerance",
    "DeltaKind",
    "MetricDelta",
    "ArrayKind",
    "ArrayCheck",
    "BaselineComparison",
    "PromptScoreDelta",
    "DEFAULT_TOLERANCES",
    "resolve_tolerance",
    "compare",
    "environment_diff",
    "missing_outcome",
    "prompt_score_delta",
    "structural_similarity",
    "unmeasured_outcomes",
]


class ToleranceSource(str, Enum):
    SPEC = "spec"
    CALIBRATED = "calibrated"
    DEFAULT = "default"


@dataclass(frozen=True)
class Tolerance:
    """How far a metric may move: ``max(abs, rel · |baseline|)``."""

    abs: float
    rel: float = 0.0
    source: ToleranceSource = ToleranceSource.DEFAULT
    pattern: str = "*"
    #: calibration facts, when the tolerance came from them
    k: float | None = None
    sigma: float | None = None
    samples: int | None = None
    floor: float | None = None

    def allowed(self, baseline: float) -> float:
        return max(self.abs, self.rel * abs(baseline))

    @property
    def exact(self) -> bool:
        return self.abs == 0 and self.rel == 0

    def describe(self, baseline: float | None) -> str:
        """``±0.010 = 4σ, σ=0.0025 over 5 runs`` / ``±5% = ±0.012 (default)`` / ``exact (spec)``."""
        if self.source is ToleranceSource.CALIBRATED:
            ks = self.k * self.sigma  # type: ignore[operator]
            calib = f"σ={_fmt(self.sigma)} over {self.samples} runs"
            if self.floor is not None and self.floor > ks:
                return f"±{_fmt(self.abs)} floor ({_fmt(self.k)}σ = {_fmt(ks)}, {calib})"
            return f"±{_fmt(self.abs)} = {_fmt(self.k)}σ, {calib}"
        src = "spec" if self.source is ToleranceSource.SPEC else "default"
        if self.exact:
            return f"exact ({src})"
        if self.rel and baseline is not None:
            return f"±{self.rel * 100:.3g}% = ±{_fmt(self.allowed(baseline))} ({src})"
        return f"±{_fmt(self.abs)} ({src})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "abs": self.abs, "rel": self.rel, "source": self.source.value, "pattern": self.pattern,
            "k": self.k, "sigma": self.sigma, "samples": self.samples, "floor": self.floor,
        }


@dataclass(frozen=True)
class _Default:
    patterns: tuple[str, ...]
    abs: float | None  # None: not gated
    rel: float = 0.0
    floor: float = 0.0


#: the built-in table (see the module docstring); first match wins
DEFAULT_TOLERANCES: tuple[_Default, ...] = (
    _Default(("*.cuts", "*.jumps", "*.freezes", "*.flickers", "*count*", "*.detections", "*events", "*frames*"),
             0.0),
    _Default(("budget.*", "*seconds*", "*vram*", "*baseline*"), None),
    _Default(("av_sync.offset_ms", "*_ms"), 20.0, floor=5.0),
    _Default(("*_s",), 0.05, floor=0.01),
    _Default(("*confidence*",), 0.10, floor=0.02),
    _Default(("*flicker*",), 0.01, floor=0.002),
    _Default(("*dynamic*",), 0.05, floor=0.01),
    _Default(("*ratio*",), 0.02, floor=0.005),
    _Default(("clip_similarity.*", "*similarity*", "*ssim*"), 0.02, floor=0.005),
    _Default(("*cer*",), 0.05, floor=0.01),
)
_FALLBACK_REL = 0.05
_FALLBACK_FLOOR = 1e-6


def _best_match(table: Mapping[str, Any], key: str) -> tuple[str, Any] | None:
    """Exact key first, then the most specific matching glob (most literal characters)."""
    if key in table:
        return key, table[key]
    hits = [p for p in table if fnmatchcase(key, p)]
    if not hits:
        return None
    best = max(hits, key=lambda p: (len(p) - p.count("*") - p.count("?"), len(p)))
    return best, table[best]


def _default_for(key: str) -> tuple[_Default | None, str]:
    for d in DEFAULT_TOLERANCES:
        for p in d.patterns:
            if fnmatchcase(key, p):
                return d, p
    return None, "*"


def resolve_tolerance(
    key: str,
    expect: BaselineExpect,
    *,
    sigma: float | None = None,
    samples: int = 1,
    integer: bool = False,
) -> Tolerance | None:
    """The tolerance for one metric key (None: not gated). See :mod:`pytest_ltx.expect.baseline`."""
    if _best_match({p: True for p in expect.ignore}, key):
        return None
    spec = _best_match(expect.tolerances, key)
    if spec is not None:
        a, r = parse_tolerance(spec[1])
        return Tolerance(a, r, ToleranceSource.SPEC, spec[0])
    default, pattern = _default_for(key)
    if default is not None and default.abs is None:
        return None
    floor_hit = _best_match(expect.floors, key)
    floor = floor_hit[1] if floor_hit else (default.floor if default else _FALLBACK_FLOOR)
    if sigma is not None and samples >= 2:
        k = expect.sigma_k
        return Tolerance(
            derived_tolerance(sigma, k, floor), 0.0, ToleranceSource.CALIBRATED, floor_hit[0] if floor_hit else pattern,
            k=k, sigma=sigma, samples=samples, floor=floor,
        )
    if default is not None:
        return Tolerance(default.abs, default.rel, ToleranceSource.DEFAULT, pattern)  # type: ignore[arg-type]
    if integer:
        return Tolerance(0.0, 0.0, ToleranceSource.DEFAULT, "*")
    return Tolerance(_FALLBACK_FLOOR, _FALLBACK_REL, ToleranceSource.DEFAULT, "*")


class DeltaKind(str, Enum):
    COMPARED = "compared"
    NEW = "new"  # measured now, not in the baseline
    GONE = "gone"  # in the baseline, not measured now
    IGNORED = "ignored"


@dataclass(frozen=True)
class MetricDelta:
    key: str
    baseline: float | int | bool | None
    current: float | int | bool | None
    delta: float | None
    tolerance: Tolerance | None
    spread: float | None
    ok: bool
    kind: DeltaKind = DeltaKind.COMPARED

    @property
    def allowed(self) -> float | None:
        if self.tolerance is None or not _num(self.baseline):
            return None
        return self.tolerance.allowed(float(self.baseline))  # type: ignore[arg-type]

    def message(self) -> str:
        b, c = _fmt(self.baseline), _fmt(self.current)
        if self.kind is DeltaKind.NEW:
            return f"{self.key} is new: {c} now, not in the baseline (--ltx-update-baselines records it)"
        if self.kind is DeltaKind.GONE:
            return f"{self.key} was not measured in this run (baseline {b})"
        if self.kind is DeltaKind.IGNORED:
            return f"{self.key} {b} → {c} (not gated)"
        tol = self.tolerance.describe(_f(self.baseline)) if self.tolerance else "not gated"
        if self.delta is None:
            if self.baseline == self.current:
                return f"{self.key} unchanged ({b})"
            what = "became unmeasurable" if self.current is None else (
                "became measurable" if self.baseline is None else "changed")
            return f"{self.key} {what}: {b} → {c}"
        if self.delta == 0:
            return f"{self.key} unchanged ({b}; tolerance {tol})"
        moved = f"{self.delta:+.4g}" if isinstance(self.delta, float) else f"{self.delta:+d}"
        if self.ok:
            return f"{self.key} {b} → {c} ({moved}; within {tol})"
        return f"{self.key} moved {b} → {c} ({moved}; tolerance {tol})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "baseline": self.baseline, "current": self.current, "delta": self.delta,
            "allowed": self.allowed, "tolerance": self.tolerance.to_dict() if self.tolerance else None,
            "spread": self.spread, "ok": self.ok, "kind": self.kind.value,
        }


class ArrayKind(str, Enum):
    EMBEDDING = "embedding"  # per-keyframe vectors: cosine
    STRUCTURAL = "structural"  # per-keyframe small gray images: SSIM
    SPECTRAL = "spectral"  # per-keyframe audio log-mel spectra (dB): shape correlation × level agreement

    @classmethod
    def of(cls, name: str) -> "ArrayKind | None":
        if name.endswith("embeddings"):
            return cls.EMBEDDING
        if name.endswith("log_mel"):
            return cls.SPECTRAL
        if name.endswith(("thumbs", "thumbnails", "structural")):
            return cls.STRUCTURAL
        return None


@dataclass(frozen=True)
class ArrayCheck:
    """Per-keyframe similarity of one array to the baseline's, over the keyframes paired by
    :func:`~pytest_ltx.baseline.keyframes.align_keyframes` (``values[i]`` belongs to ``frames[i]``)."""

    name: str
    kind: ArrayKind
    values: tuple[float, ...]
    threshold: float
    status: Status
    message: str
    #: index of the worst keyframe among this run's keyframes, and its source frame
    worst_index: int | None = None
    worst_frame: int | None = None
    #: this run's source frame / time and the stored keyframe's frame per value
    frames: tuple[int | None, ...] = ()
    times: tuple[float | None, ...] = ()
    baseline_frames: tuple[int | None, ...] = ()
    #: the alignment's unmatched keyframes on both sides (``{"current": [...], "baseline": [...]}``)
    unmatched: dict[str, Any] | None = None
    #: the outcome name when it is not ``baseline.<name>`` (``clip.baseline_similarity``)
    check: str | None = None

    @property
    def min(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def outcome_name(self) -> str:
        return self.check or f"baseline.{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind.value, "values": list(self.values), "min": self.min,
            "threshold": self.threshold, "status": self.status.value, "message": self.message,
            "worst_index": self.worst_index, "worst_frame": self.worst_frame, "frames": list(self.frames),
            "times": [None if t is None else round(t, 4) for t in self.times],
            "baseline_frames": list(self.baseline_frames), "unmatched": self.unmatched,
            "check": self.outcome_name,
        }


@dataclass(frozen=True)
class PromptScoreDelta:
    """``clip.prompt_score_drop``: this run's CLIP prompt scores against the baseline's, paired keyframe by
    keyframe (the same alignment as every array), or — for a baseline without per-keyframe scores — the
    means. ``drop`` is the mean of the per-keyframe drops (positive: this run scores lower)."""

    status: Status
    message: str
    allowed: float
    drop: float | None = None
    baseline_mean: float | None = None
    current_mean: float | None = None
    paired: bool = False
    #: per paired keyframe: this run's source frame and baseline − current
    frames: tuple[int | None, ...] = ()
    drops: tuple[float, ...] = ()
    worst_frame: int | None = None
    worst_drop: float | None = None
    unmatched: dict[str, Any] | None = None

    def outcome(self) -> Outcome:
        details: dict[str, Any] = {}
        if self.paired:
            details = {"paired": True, "worst_frame": self.worst_frame,
                       "worst_drop": None if self.worst_drop is None else round(self.worst_drop, 6),
                       "per_keyframe": [round(d, 6) for d in self.drops], "frames": list(self.frames)}
            if self.unmatched and (self.unmatched.get("current") or self.unmatched.get("baseline")):
                details["unmatched"] = self.unmatched
        measured = self.drop if self.drop is not None else self.current_mean
        return Outcome("clip.prompt_score_drop", self.status, self.message,
                       measured=None if measured is None else round(measured, 6), allowed=self.allowed,
                       baseline=None if self.baseline_mean is None else round(float(self.baseline_mean), 6),
                       details=details)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "message": self.message, "allowed": self.allowed, "drop": self.drop,
                "baseline_mean": self.baseline_mean, "current_mean": self.current_mean, "paired": self.paired,
                "frames": list(self.frames), "drops": list(self.drops), "worst_frame": self.worst_frame,
                "worst_drop": self.worst_drop, "unmatched": self.unmatched}


@dataclass(frozen=True)
class BaselineComparison:
    item_key: str
    model_key: str
    metrics: tuple[MetricDelta, ...]
    arrays: tuple[ArrayCheck, ...]
    #: what differs between the baseline's environment and this run's (empty when the same)
    environment: tuple[str, ...] = ()
    #: the paired prompt-score delta (``clip.prompt_score_drop``), when the spec gates it
    prompt: PromptScoreDelta | None = None

    @property
    def ok(self) -> bool:
        return (all(d.ok for d in self.metrics) and all(a.status is not Status.FAILED for a in self.arrays)
                and (self.prompt is None or self.prompt.status is not Status.FAILED))

    @property
    def failures(self) -> list[MetricDelta]:
        return [d for d in self.metrics if not d.ok]

    @property
    def warnings(self) -> list[str]:
        if not self.environment:
            return []
        return [f"baseline {self.model_key} of {self.item_key} was made in a different environment: "
                + "; ".join(self.environment)]

    def outcomes(self) -> list[Outcome]:
        """One outcome per gated metric (``baseline.<key>``) and per compared array."""
        env_note = f" [baseline environment differs: {'; '.join(self.environment)}]" if self.environment else ""
        out: list[Outcome] = []
        for d in self.metrics:
            if d.kind is DeltaKind.IGNORED:
                continue
            if d.kind in (DeltaKind.NEW, DeltaKind.GONE):
                status = Status.UNMEASURED
            else:
                status = Status.PASSED if d.ok else Status.FAILED
            msg = d.message() + (env_note if status is Status.FAILED else "")
            details: dict[str, Any] = {"tolerance": d.tolerance.to_dict() if d.tolerance else None}
            if d.spread is not None:
                details["spread"] = d.spread
            if self.environment:
                details["environment_diff"] = list(self.environment)
            out.append(Outcome(f"baseline.{d.key}", status, msg, measured=d.current, allowed=d.allowed,
                               baseline=d.baseline, details=details))
        for a in self.arrays:
            msg = a.message + (env_note if a.status is Status.FAILED else "")
            adetails: dict[str, Any] = {"per_keyframe": list(a.values), "worst_frame": a.worst_frame,
                                        "frames": list(a.frames)}
            if a.unmatched and (a.unmatched.get("current") or a.unmatched.get("baseline")):
                adetails["unmatched"] = a.unmatched
            out.append(Outcome(a.outcome_name, a.status, msg, measured=a.min, allowed=a.threshold, details=adetails))
        if self.prompt is not None:
            o = self.prompt.outcome()
            if o.status is Status.FAILED and env_note:
                o = Outcome(o.check, o.status, o.message + env_note, o.measured, o.allowed, o.baseline, o.details)
            out.append(o)
        return out

    def message(self) -> str:
        """All failures in one reviewer-style paragraph (empty when ok)."""
        lines = [d.message() for d in self.failures]
        lines += [a.message for a in self.arrays if a.status is Status.FAILED]
        if self.prompt is not None and self.prompt.status is Status.FAILED:
            lines.append(self.prompt.message)
        if not lines:
            return ""
        head = f"baseline [{self.model_key}]: {len(lines)} moved beyond tolerance"
        tail = [f"  (baseline environment differs: {'; '.join(self.environment)})"] if self.environment else []
        return "\n".join([head] + [f"  {x}" for x in lines] + tail)

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_key": self.item_key, "model_key": self.model_key, "ok": self.ok,
            "metrics": [d.to_dict() for d in self.metrics], "arrays": [a.to_dict() for a in self.arrays],
            "environment_diff": list(self.environment),
            "prompt_score": None if self.prompt is None else self.prompt.to_dict(),
        }


class _HasScalars(Protocol):
    scalars: Mapping[str, Any]


def compare(
    current: _HasScalars,
    baseline: BaselineRecord,
    expect: BaselineExpect | None = None,
    *,
    ssim: Callable[[np.ndarray, np.ndarray], float] | None = None,
    keyframe_cosine_min: float | None = None,
    keyframe_ssim_min: float | None = None,
    compare_arrays: bool | Iterable[str] = True,
    clip: "ClipScoreExpect | None" = None,
    clip_model: Mapping[str, Any] | None = None,
) -> BaselineComparison:
    """Compare ``current`` (a :class:`BaselineRecord` or anything with ``scalars`` and optionally
    ``arrays``, ``keyframe_frames``, ``fps``, ``environment``) with its baseline: every baseline-relative
    number of an item is measured here, its keyframes aligned once (:mod:`pytest_ltx.baseline.keyframes`).

    Per-keyframe thresholds, first that applies: ``keyframe_*_min`` here; the clip expectations
    (``clip.baseline_similarity_min`` — then the outcome keeps its name ``clip.baseline_similarity`` —
    and ``clip.structural_similarity_min``); the baseline expectation (``keyframe_cosine_min``,
    ``keyframe_ssim_min``, ``keyframe_audio_min``). ``clip.prompt_score_drop_max`` adds the paired
    prompt-score delta; ``clip_model`` (the CLIP result's ``model``) labels CLIP messages. ``ssim``
    replaces the built-in structural similarity; ``compare_arrays`` (False, or the names to compare)
    limits which arrays are compared.
    """
    expect = expect or BaselineExpect()
    cur_scalars = {k: _none_if_nan(v) for k, v in dict(current.scalars).items()}
    base_scalars = dict(baseline.scalars)
    deltas = [
        _metric_delta(key, base_scalars, cur_scalars, baseline, expect)
        for key in sorted(set(cur_scalars) | set(base_scalars))
    ]
    all_cur_arrays = dict(getattr(current, "arrays", None) or {})
    cur_arrays, base_arrays = all_cur_arrays, dict(baseline.arrays)
    if compare_arrays is not True:
        keep = set() if compare_arrays is False else set(compare_arrays)  # type: ignore[arg-type]
        cur_arrays = {k: v for k, v in cur_arrays.items() if k in keep}
        base_arrays = {k: v for k, v in base_arrays.items() if k in keep}
    cos_min, cos_check = expect.keyframe_cosine_min, None
    if clip is not None and clip.baseline_similarity_min is not None:
        cos_min, cos_check = clip.baseline_similarity_min, "clip.baseline_similarity"
    if keyframe_cosine_min is not None:
        cos_min = keyframe_cosine_min
    ssim_min = expect.keyframe_ssim_min
    if clip is not None and clip.structural_similarity_min is not None:
        ssim_min = clip.structural_similarity_min
    if keyframe_ssim_min is not None:
        ssim_min = keyframe_ssim_min
    cur_frames = list(getattr(current, "keyframe_frames", None) or [])
    cur_fps = getattr(current, "fps", None) or baseline.fps
    tag = _plumbing(clip_model)
    arrays = _compare_arrays(
        cur_arrays, base_arrays, baseline, cur_frames, cur_fps,
        {ArrayKind.EMBEDDING: (cos_min, cos_check, tag), ArrayKind.STRUCTURAL: (ssim_min, None, ""),
         ArrayKind.SPECTRAL: (expect.keyframe_audio_min, None, "")},
        ssim or structural_similarity,
    )
    prompt = None
    if clip is not None and clip.prompt_score_drop_max is not None:
        prompt = prompt_score_delta(cur_scalars, all_cur_arrays, cur_frames, cur_fps, baseline,
                                    clip.prompt_score_drop_max, tag)
    env = getattr(current, "environment", None)
    env_diff = tuple(environment_diff(baseline.environment, env)) if env else ()
    return BaselineComparison(baseline.item_key, baseline.model_key, tuple(deltas), tuple(arrays), env_diff, prompt)


def _plumbing(clip_model: Mapping[str, Any] | None) -> str:
    if clip_model and clip_model.get("random_weights"):
        return " [random CLIP weights: plumbing only, not a judgement of the picture]"
    return ""


def _metric_delta(
    key: str, base: Mapping[str, Any], cur: Mapping[str, Any], rec: BaselineRecord, expect: BaselineExpect
) -> MetricDelta:
    b, c = base.get(key), cur.get(key)
    sigma = rec.spread.get(key)
    integer = isinstance(b, int) and isinstance(c, int) and not isinstance(b, bool) and not isinstance(c, bool)
    tol = resolve_tolerance(key, expect, sigma=sigma, samples=rec.samples, integer=integer)
    if tol is None:
        return MetricDelta(key, b, c, _sub(c, b), None, sigma, True, DeltaKind.IGNORED)
    if key not in base:
        return MetricDelta(key, None, c, None, tol, sigma, True, DeltaKind.NEW)
    if key not in cur:
        return MetricDelta(key, b, None, None, tol, sigma, True, DeltaKind.GONE)
    if not (_num(b) and _num(c)):
        # None ↔ value (a metric became (un)measurable), or booleans: only equality passes
        return MetricDelta(key, b, c, None, tol, sigma, b == c)
    if isinstance(c, (float, np.floating)):
        c = round_sig(float(c))  # the baseline was rounded the same way when it was stored
    delta = _sub(c, b)
    allowed = tol.allowed(float(b))
    slack = 1e-9 * max(abs(float(b)), abs(float(c))) + 1e-12  # float subtraction, not tolerance
    return MetricDelta(key, b, c, delta, tol, sigma, abs(delta) <= allowed + slack)  # type: ignore[arg-type]


def _compare_arrays(
    current: Mapping[str, Any],
    base_arrays: Mapping[str, np.ndarray],
    rec: BaselineRecord,
    cur_frames: list[int],
    fps: float | None,
    thresholds: Mapping[ArrayKind, tuple[float, str | None, str]],
    ssim: Callable[[np.ndarray, np.ndarray], float],
) -> list[ArrayCheck]:
    from .keyframes import align_keyframes, keyframe_cosines, keyframe_ssims

    checks: list[ArrayCheck] = []
    for name in sorted(set(current) | set(base_arrays)):
        kind = ArrayKind.of(name)
        if kind is None:
            continue
        threshold, check, tag = thresholds[kind]
        what = {ArrayKind.EMBEDDING: "keyframe CLIP cosine", ArrayKind.STRUCTURAL: "keyframe SSIM",
                ArrayKind.SPECTRAL: "keyframe audio spectrum similarity"}[kind]
        if name not in base_arrays or name not in current:
            side = "the baseline" if name not in base_arrays else "this run"
            checks.append(ArrayCheck(name, kind, (), threshold, Status.UNMEASURED,
                                     f"{name}: not in {side}, {what} not compared", check=check))
            continue
        a, b = np.asarray(current[name]), np.asarray(base_arrays[name])
        if a.shape[1:] != b.shape[1:] and not (kind is ArrayKind.STRUCTURAL and a.ndim == b.ndim == 3):
            checks.append(ArrayCheck(
                name, kind, (), threshold, Status.UNMEASURED,
                f"{name}: shape {tuple(a.shape[1:])} now vs {tuple(b.shape[1:])} in the baseline "
                "(a different CLIP model or thumbnail size?) — update the baseline to compare", check=check,
            ))
            continue
        al = align_keyframes(cur_frames, fps, rec.keyframe_frames, rec.fps, count=len(a), baseline_count=len(b))
        note = None
        if kind is ArrayKind.EMBEDDING:
            values = keyframe_cosines(a, b, al)
        elif kind is ArrayKind.SPECTRAL:
            from pytest_ltx.metrics.audio import fingerprint_similarity

            idx = [p.index for p in al.pairs]
            bidx = [p.baseline_index for p in al.pairs]
            values = [float(v) for v in fingerprint_similarity(a[idx], b[bidx])] if al.pairs else []
        else:
            values, note = keyframe_ssims(a, b, al, ssim)
        pairs = al.pairs
        common = dict(frames=tuple(p.frame for p in pairs), times=tuple(p.time_s for p in pairs),
                      baseline_frames=tuple(p.baseline_frame for p in pairs), unmatched=al.unmatched_dict(),
                      check=check)
        if not values and al.complete:
            checks.append(ArrayCheck(name, kind, (), threshold, Status.UNMEASURED, f"{name}: no keyframes",
                                     **common))  # type: ignore[arg-type]
            continue
        extra = (f" ({note})" if note else "") + tag
        lo, where, worst_index, worst_frame = None, "", None, None
        if values:
            i = int(np.argmin(values))
            lo, where, worst_index, worst_frame = values[i], pairs[i].where(), pairs[i].index, pairs[i].frame
        if not al.complete:
            msg = (f"{what} to the baseline: the keyframes do not line up ({al.describe_unmatched()}): "
                   "the clip's length or sampling changed")
            if lo is not None:
                msg += (f"; lowest of the {len(values)} paired keyframes {lo:.3f} at {where}"
                        f" (min allowed {threshold:.2f})")
            status = Status.FAILED
        elif lo is not None and lo >= threshold:
            msg = f"{what} to the baseline ≥ {lo:.3f} over {len(values)} keyframes (min allowed {threshold:.2f})"
            status = Status.PASSED
        else:
            msg = (f"{what} to the baseline fell to {lo:.3f} at {where}; min allowed {threshold:.2f}"
                   f" (per keyframe: {', '.join(f'{v:.2f}' for v in values)})")
            status = Status.FAILED
        checks.append(ArrayCheck(name, kind, tuple(round(v, 6) for v in values), threshold, status, msg + extra,
                                 worst_index, worst_frame, **common))  # type: ignore[arg-type]
    return checks


#: the arrays and scalars the paired prompt-score delta reads (metrics/clip_score.py)
PROMPT_SCORES = "clip_similarity.prompt_scores"
PROMPT_SCORE_MEAN = "clip_similarity.prompt_score_mean"


def prompt_score_delta(
    cur_scalars: Mapping[str, Any],
    cur_arrays: Mapping[str, Any],
    cur_frames: Sequence[int],
    cur_fps: float | None,
    baseline: BaselineRecord,
    allowed: float,
    tag: str = "",
) -> PromptScoreDelta:
    """``clip.prompt_score_drop``: the drop of this run's CLIP prompt score below the baseline's, paired
    keyframe by keyframe by the one alignment policy; the means when the baseline kept no per-keyframe
    scores (an older baseline) or no keyframe pairs."""
    from .keyframes import align_keyframes

    mean = _f(cur_scalars.get(PROMPT_SCORE_MEAN))
    now = cur_arrays.get(PROMPT_SCORES)
    if mean is None:
        return PromptScoreDelta(Status.UNMEASURED, "no prompt to score against (the clip has no prompt)", allowed)
    base_mean = _f(baseline.scalars.get(PROMPT_SCORE_MEAN))
    base = baseline.arrays.get(PROMPT_SCORES)
    if now is not None and base is not None:
        a, b = np.asarray(now, np.float64).ravel(), np.asarray(base, np.float64).ravel()
        al = align_keyframes(cur_frames, cur_fps, baseline.keyframe_frames, baseline.fps, count=len(a),
                             baseline_count=len(b))
        if al.pairs:
            drops = [float(b[p.baseline_index] - a[p.index]) for p in al.pairs]
            drop = float(np.mean(drops))
            i = int(np.argmax(drops))
            ok = drop <= allowed
            unmatched = "" if al.complete else f"; not paired: {al.describe_unmatched()}"
            msg = (f"prompt score {mean:.3f}, paired with this item's baseline keyframe by keyframe: mean "
                   f"{'drop' if drop > 0 else 'rise'} of {abs(drop):.3f} ({'within' if ok else 'more than'} the "
                   f"allowed drop {allowed:g}); largest drop {drops[i]:+.3f} at {al.pairs[i].where()}{unmatched}{tag}")
            return PromptScoreDelta(Status.PASSED if ok else Status.FAILED, msg, allowed, drop, base_mean, mean,
                                    True, tuple(p.frame for p in al.pairs), tuple(drops), al.pairs[i].frame,
                                    drops[i], al.unmatched_dict())
    if base_mean is None:
        return PromptScoreDelta(Status.UNMEASURED,
                                f"prompt score {mean:.3f}; no baseline prompt score to compare with yet", allowed,
                                current_mean=mean)
    drop = base_mean - mean
    ok = drop <= allowed
    msg = (f"prompt score {mean:.3f} vs baseline {base_mean:.3f}: {'drop' if drop > 0 else 'rise'} of "
           f"{abs(drop):.3f} ({'within' if ok else 'more than'} the allowed drop {allowed:g}); "
           f"no keyframes to pair, means compared{tag}")
    return PromptScoreDelta(Status.PASSED if ok else Status.FAILED, msg, allowed, drop, base_mean, mean)


def unmeasured_outcomes(clip: "ClipScoreExpect | None", reason: str,
                        current: _HasScalars | None = None) -> list[Outcome]:
    """The clip's baseline-relative checks of an item that was not compared with a baseline (none yet,
    comparison off, being rewritten): "unmeasured" with ``reason``, never silently absent or passed."""
    out: list[Outcome] = []
    if clip is None:
        return out
    if clip.baseline_similarity_min is not None:
        out.append(Outcome("clip.baseline_similarity", Status.UNMEASURED, f"no baseline to compare with ({reason})",
                           allowed=clip.baseline_similarity_min))
    if clip.prompt_score_drop_max is not None:
        mean = _f(dict(current.scalars).get(PROMPT_SCORE_MEAN)) if current is not None else None
        msg = ("no prompt to score against (the clip has no prompt)" if current is not None and mean is None
               else f"prompt score {mean:.3f}; no baseline prompt score to compare with yet ({reason})"
               if mean is not None else f"no baseline prompt score to compare with ({reason})")
        out.append(Outcome("clip.prompt_score_drop", Status.UNMEASURED, msg,
                           measured=None if mean is None else round(mean, 6), allowed=clip.prompt_score_drop_max))
    return out


def structural_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two small gray uint8 images: :func:`pytest_ltx.metrics.structural.ssim`, so the gate
    and the structural metric always agree (colour inputs are averaged to gray first)."""
    from pytest_ltx.metrics.structural import ssim

    x, y = np.asarray(a), np.asarray(b)
    if x.ndim == 3:
        x, y = x.mean(axis=2), y.mean(axis=2)
    return ssim(x, y)


def environment_diff(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> list[str]:
    """What differs between two environments, readable: ``torch 2.14.1 → 2.15.0``, ``device cpu → cuda``."""
    fa, fb = _flatten(a or {}), _flatten(b or {})
    out = []
    for key in sorted(set(fa) | set(fb), key=lambda k: (k.startswith("libraries."), k)):
        va, vb = fa.get(key), fb.get(key)
        if va != vb:
            name = key.removeprefix("libraries.")
            out.append(f"{name} {_fmt(va) if va is not None else '(none)'} → {_fmt(vb) if vb is not None else '(none)'}")
    return out


def missing_outcome(
    item_key: str,
    model_key: str,
    path: str,
    *,
    other_models: Sequence[str] = (),
    created: bool = False,
    nodeid: str | None = None,
    identity_change: Sequence[str] = (),
) -> Outcome:
    """The outcome for an item without a baseline: a failure that says how to create one, or (with
    ``created``, when the user asked to create missing baselines) a pass that says one was queued."""
    if created:
        return Outcome("baseline.missing", Status.PASSED,
                       f"no golden baseline yet for {item_key} [{model_key}]: created {path} (review and commit it)")
    target = nodeid or item_key
    msg = (f"no golden baseline for {item_key} [{model_key}] (expected {path}): create it with "
           f"`pytest '{target}' --ltx-update-baselines`, review the new files and commit them")
    if identity_change:
        msg += ("; the model changed since the baseline of " + ", ".join(identity_change)
                + " was made (library versions alone never change the model identity)")
    elif other_models:
        msg += f"; baselines exist for {', '.join(other_models)} — did the model or its weights change?"
    return Outcome("baseline.missing", Status.FAILED, msg,
                   details={"other_models": list(other_models), "identity_change": list(identity_change)})


# --------------------------------------------------------------------------------------------------


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _num(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _f(x: Any) -> float | None:
    return float(x) if _num(x) else None


def _sub(c: Any, b: Any) -> float | int | None:
    if not (_num(c) and _num(b)):
        return None
    if isinstance(c, (int, np.integer)) and isinstance(b, (int, np.integer)):
        return int(c) - int(b)
    return float(c) - float(b)


def _none_if_nan(v: Any) -> Any:
    if isinstance(v, (float, np.floating)) and not math.isfinite(float(v)):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def _fmt(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, (bool, int, str)):
        return str(x)
    if isinstance(x, float):
        if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-4):
            return f"{x:.3g}"
        return f"{x:.4g}"
    return str(x)
