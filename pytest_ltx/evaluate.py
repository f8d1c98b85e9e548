"""Run the metrics a clip needs and check them: the one code path shared by the plugin and
``pytest-ltx evaluate``, so a clip scores the same in CI and on a laptop.

Only the families a spec asks about are computed (OCR and CLIP cost seconds); the weight-free
structural fingerprint is always taken because golden baselines compare it. Each family is a streaming
consumer (:mod:`pytest_ltx.stream`): the clip is decoded once and every family is fed as it decodes, so
memory does not grow with the clip. With an :class:`~pytest_ltx.evalcache.EvaluationCache` a family
already computed on the same bytes with the same configuration is read back instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from pytest_ltx.families import MetricFamily, registry
from pytest_ltx.families import builtin as _builtin
from pytest_ltx.outcome import Outcome, Status, jsonable

if TYPE_CHECKING:
    from pytest_ltx.evalcache import EvaluationCache
    from pytest_ltx.expect import Expectations
    from pytest_ltx.media import Clip, ClipInfo
    from pytest_ltx.stream import Consumer, Keyframes, MediaSource

__all__ = ["FAMILIES", "Evaluation", "MetricContext", "evaluate", "evaluation_keys", "families_for"]

#: the built-in metric families in the order they are computed and reported; each is a section of the
#: JSON results. Derived from the registry (:mod:`pytest_ltx.families`), which third parties extend: the
#: families of a run are ``pytest_ltx.families.registry().names()``.
FAMILIES: tuple[str, ...] = tuple(f.name for f in _builtin.FAMILIES)


@dataclass(frozen=True)
class MetricContext:
    """What metrics may need beyond the pixels: the prompt and the CLIP model profile to use. Never the
    golden baseline: metrics are functions of the clip, and every baseline-relative number is measured
    by the baseline comparison (:func:`pytest_ltx.baseline.compare`)."""

    prompt: str | None = None
    clip_model: Any = None
    #: the image an image-to-video render was conditioned on (a path), for the first-frame check
    conditioning_image: Any = None


@dataclass(frozen=True)
class Evaluation:
    """Everything measured on one clip, plus the outcomes of the expectations that were checked."""

    info: ClipInfo
    results: Mapping[str, Any]
    outcomes: tuple[Outcome, ...]
    seconds: Mapping[str, float]
    #: small keyframe pictures (when asked for): what baselines and the report show
    keyframes: "Keyframes | None" = None
    #: the families whose results came from the evaluation cache
    cached: tuple[str, ...] = ()
    #: results of the extra consumers fed in the same pass (None where one failed)
    extras: Mapping[str, Any] = field(default_factory=dict)
    #: the definitions of the families in ``results`` (what exports their baseline values)
    families: Mapping[str, MetricFamily] = field(default_factory=dict, repr=False, compare=False)

    def _family(self, name: str) -> MetricFamily:
        return self.families[name] if name in self.families else registry().get(name)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"clip": self.info.to_dict()}
        for fam, r in self.results.items():
            sec = r.to_dict()
            f = self._family(fam)
            if f.report_scalars and f.scalars is not None and isinstance(sec, dict) and "scalars" not in sec:
                sec = {**sec, "scalars": f.result_scalars(r)}
            d[fam] = jsonable(sec)
        d["outcomes"] = [o.to_dict() for o in self.outcomes]
        d["metric_seconds"] = {k: round(v, 4) for k, v in self.seconds.items()}
        d["cached_metrics"] = list(self.cached)
        return d

    def scalars(self) -> dict[str, Any]:
        """Flat ``family.key`` metric values: what golden baselines store and compare."""
        out: dict[str, Any] = {}
        for fam, r in self.results.items():
            for k, v in self._family(fam).result_scalars(r).items():
                out[f"{fam}.{k}"] = jsonable(v)
        return out

    def arrays(self) -> dict[str, Any]:
        """Small per-keyframe arrays a golden baseline keeps instead of the video."""
        out: dict[str, Any] = {}
        for fam, r in self.results.items():
            for k, v in self._family(fam).result_arrays(r).items():
                out[f"{fam}.{k}"] = v
        return out

    @property
    def failed(self) -> bool:
        return any(o.failed for o in self.outcomes)


def families_for(expect: Expectations | None, requested: Iterable[str] | None = None) -> list[str]:
    """The families to compute, in registry order: an explicit list wins; otherwise the ``always`` ones
    (baselines keep the picture's and the soundtrack's per-keyframe fingerprints) and those the
    expectations switch on."""
    reg = registry()
    if requested is not None:
        want = set(requested)
        unknown = want - set(reg.names())
        if unknown:
            raise ValueError(f"unknown metric(s) {sorted(unknown)}; known: {', '.join(reg.names())}")
        return [f.name for f in reg if f.name in want]
    return [f.name for f in reg
            if f.always or (expect is not None and f.expect_key is not None and expect.family(f.expect_key) is not None)]


def evaluate(
    clip: "Clip | MediaSource | str | os.PathLike[str]",
    *,
    expect: Expectations | None = None,
    metrics: Iterable[str] | None = None,
    context: MetricContext | None = None,
    cache: "EvaluationCache | None" = None,
    refresh: bool = False,
    keyframes: bool = False,
    extras: Iterable["Consumer"] = (),
) -> Evaluation:
    """Compute the needed metric families on ``clip`` in ONE streaming pass and check ``expect``.

    ``clip`` is a file (path or :class:`~pytest_ltx.stream.MediaSource`; decoded as a stream, never held
    whole) or an in-memory :class:`~pytest_ltx.media.Clip`. With ``cache``, each family's result is looked
    up by the file's content hash and the family's configuration first, and only the misses are computed
    (all hits: nothing is decoded); ``refresh`` computes everything and only updates the cache.
    ``keyframes`` also keeps small keyframe pictures (baselines, report); ``extras`` are more consumers fed
    in the same pass and cached alike (the report's media): their results are in ``Evaluation.extras``.
    A metric that raises is an error outcome for that family (the others still run), never a silent pass;
    a file that cannot be decoded raises :class:`~pytest_ltx.media.ClipReadError`.
    """
    from pytest_ltx.stream import MediaSource, run_stream, source_info

    if isinstance(clip, (str, os.PathLike)):
        clip = MediaSource(Path(clip))
    ctx = context or MetricContext()
    extras = list(extras)
    fams, defs, consumers, errors = _consumers(expect, metrics, ctx, keyframes)
    for c in extras:
        consumers[c.name] = c

    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    info: ClipInfo | None = None
    keys: dict[str, str] = {}
    digest = _digest(clip) if cache is not None else None
    if cache is not None and digest is not None:
        keys = _keys(cache, digest, consumers)
        for name in consumers:
            if name not in keys:  # no usable key (e.g. no CLIP profile): computed, and fails there
                continue
            hit = None if refresh else cache.get(keys[name])
            if hit is not None:
                results[name], info = hit
                seconds[name] = 0.0
    cached = tuple(n for n in results if n in defs)
    todo = [c for n, c in consumers.items() if n not in results]
    if todo:
        run = run_stream(clip, todo)
        info = run.info.clip
        errors.update(run.errors)
        for name, r in run.results.items():
            results[name] = r
            if cache is not None and name in keys:
                cache.put(keys[name], r, info)
        for name, sec in run.seconds.items():
            seconds[name] = sec
    if info is None:
        info = source_info(clip).clip

    outcomes: list[Outcome] = []
    if expect is not None:
        from pytest_ltx.expect.render import check_format

        outcomes += check_format(info, expect.format)
    fam_results: dict[str, Any] = {}
    for fam in fams:
        if fam in errors:
            err = errors[fam]
            outcomes.append(Outcome(f"{fam}.error", Status.ERROR, f"{fam} could not be computed: "
                                    f"{err.__class__.__name__}: {err}"))
            continue
        fam_results[fam] = results[fam]
        d = defs[fam]
        if expect is not None and d.check is not None and d.expect_key is not None:
            want = expect.family(d.expect_key)
            if want is not None:
                outcomes += d.check(results[fam], want, ctx)
    return Evaluation(info=info, results=fam_results, outcomes=tuple(outcomes), seconds=seconds,
                      keyframes=results.get("keyframes"), cached=cached,
                      extras={c.name: results.get(c.name) for c in extras},
                      families={n: defs[n] for n in fam_results})


def _consumers(expect: Expectations | None, metrics: Iterable[str] | None, ctx: MetricContext, keyframes: bool
               ) -> tuple[list[str], dict[str, MetricFamily], dict[str, "Consumer"], dict[str, BaseException]]:
    """The families to compute, their definitions, a consumer each (and the keyframe pictures' when
    asked), and the families whose consumer could not be made (an error for that family only)."""
    from pytest_ltx.stream import KeyframePictures

    fams = families_for(expect, metrics)
    defs = {name: registry().get(name) for name in fams}
    consumers: dict[str, Consumer] = {}
    errors: dict[str, BaseException] = {}
    for fam in fams:
        try:
            consumers[fam] = defs[fam].consumer(expect, ctx)
        except ImportError:
            raise
        except Exception as e:  # a missing model configuration, say: an error for this family only
            errors[fam] = e
    if keyframes:
        consumers["keyframes"] = KeyframePictures(_builtin.sample_fps(expect))
    return fams, defs, consumers, errors


def _keys(cache: "EvaluationCache", digest: str, consumers: Mapping[str, "Consumer"]) -> dict[str, str]:
    """Each consumer's evaluation-cache key (one that has no usable configuration has none)."""
    keys: dict[str, str] = {}
    for name, c in consumers.items():
        try:
            keys[name] = cache.key(digest, name, c.config())  # type: ignore[attr-defined]
        except ImportError:
            raise
        except Exception:  # noqa: BLE001 - no usable key: the consumer is computed, and fails there
            continue
    return keys


def evaluation_keys(media: "MediaSource", *, expect: Expectations | None, context: MetricContext,
                    cache: "EvaluationCache") -> dict[str, str] | None:
    """The cache keys :func:`evaluate` (with ``keyframes=True``) would look up for ``media``: the identity of
    every measurement of it — the clip's bytes, each family's configuration, library and code versions —
    without reading any entry. None when one family could not be keyed (it would be computed, or fail)."""
    _, _, consumers, errors = _consumers(expect, None, context, True)
    if errors:
        return None
    digest = _digest(media)
    if digest is None:
        return None
    keys = _keys(cache, digest, consumers)
    return keys if len(keys) == len(consumers) else None


def _digest(clip: Any) -> str | None:
    """Content hash of a file source (video + separate audio), None for an in-memory clip (not cached)."""
    from pytest_ltx.stream import MediaSource

    return clip.content_digest() if isinstance(clip, MediaSource) else None