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
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from pytest_ltx.outcome import Outcome, Status, jsonable

if TYPE_CHECKING:
    from pytest_ltx.expect import Expectations
    from pytest_ltx.media import ClipInfo
    from pytest_ltx.evalcache import EvaluationCache
    from pytest_ltx.media import Clip
    from pytest_ltx.stream import Consumer, Keyframes, MediaSource

__all__ = ["FAMILIES", "Evaluation", "MetricContext", "evaluate", "families_for"]

#: metric families in the order they are computed and reported; each is a section of the JSON results.
FAMILIES: tuple[str, ...] = ("motion", "av_sync", "text", "clip_similarity", "structural", "audio", "artifacts")

#: the expectation attribute that switches each family on
_EXPECT_ATTR = {"motion": "motion", "av_sync": "av_sync", "text": "text", "clip_similarity": "clip",
                "artifacts": "artifacts"}


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

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"clip": self.info.to_dict()}
        for fam in FAMILIES:
            if fam in self.results:
                d[fam] = jsonable(self.results[fam].to_dict())
        d["outcomes"] = [o.to_dict() for o in self.outcomes]
        d["metric_seconds"] = {k: round(v, 4) for k, v in self.seconds.items()}
        d["cached_metrics"] = list(self.cached)
        return d

    def scalars(self) -> dict[str, Any]:
        """Flat ``family.key`` metric values: what golden baselines store and compare."""
        out: dict[str, Any] = {}
        for fam in FAMILIES:
            r = self.results.get(fam)
            if r is not None and hasattr(r, "scalars"):
                for k, v in r.scalars().items():
                    out[f"{fam}.{k}"] = jsonable(v)
        return out

    def arrays(self) -> dict[str, Any]:
        """Small per-keyframe arrays a golden baseline keeps instead of the video."""
        out: dict[str, Any] = {}
        for fam in FAMILIES:
            r = self.results.get(fam)
            if r is not None and hasattr(r, "arrays"):
                for k, v in r.arrays().items():
                    out[f"{fam}.{k}"] = v
        return out

    @property
    def failed(self) -> bool:
        return any(o.failed for o in self.outcomes)


def families_for(expect: Expectations | None, requested: Iterable[str] | None = None) -> list[str]:
    """The families to compute: an explicit list wins; otherwise those the expectations mention."""
    if requested is not None:
        want = set(requested)
        unknown = want - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown metric(s) {sorted(unknown)}; known: {', '.join(FAMILIES)}")
        return [f for f in FAMILIES if f in want]
    # always taken: baselines keep the picture's and the soundtrack's per-keyframe fingerprints
    fams = ["structural", "audio"]
    if expect is not None:
        fams += [f for f, attr in _EXPECT_ATTR.items() if getattr(expect, attr) is not None]
    return [f for f in FAMILIES if f in fams]


def _sample_fps(e: Any) -> float:
    return e.sample_fps if e is not None else 2.0


def _motion(expect: Expectations | None, ctx: MetricContext) -> "Consumer":
    from pytest_ltx.metrics.motion import MotionConsumer

    return MotionConsumer()


def _av_sync(expect: Expectations | None, ctx: MetricContext) -> "Consumer":
    from pytest_ltx.metrics.avsync import AVSyncConsumer

    return AVSyncConsumer()


def _text(expect: Expectations | None, ctx: MetricContext) -> "Consumer":
    from pytest_ltx.metrics.ocr import TextConsumer

    return TextConsumer(sample_fps=_sample_fps(expect.text if expect is not None else None))


def _clip_similarity(expect: Expectations | None, ctx: MetricContext) -> "Consumer":
    from pytest_ltx.metrics.clip_score import ClipConsumer

    return ClipConsumer(prompt=ctx.prompt, sample_fps=_sample_fps(expect.clip if expect is not None else None),
                        profile=ctx.clip_model)


def _structural(expect: Expectations | None, ctx: MetricContext) -> "Consumer":
    from pytest_ltx.metrics.structural import StructuralConsumer

    return StructuralConsumer(sample_fps=_sample_fps(expect.clip if expect is not None else None))


def _audio(expect: Expectations | None, ctx: MetricContext) -> "Consumer":
    from pytest_ltx.metrics.audio import AudioConsumer

    a = expect.audio if expect is not None else None
    return AudioConsumer(sample_fps=_sample_fps(expect.clip if expect is not None else None),
                         **({"min_silence_s": a.min_silence_s, "silence_dbfs": a.silence_dbfs} if a else {}))


def _artifacts(expect: Expectations | None, ctx: MetricContext) -> "Consumer":
    from pytest_ltx.metrics.artifacts import ArtifactsConsumer

    e = expect.artifacts if expect is not None else None
    return ArtifactsConsumer(tail_s=e.tail_s if e is not None else 1.0, conditioning_image=ctx.conditioning_image)


#: family -> the streaming consumer that computes it (see pytest_ltx.stream). A new family adds an entry
#: here, its name to FAMILIES, and its check to _check.
_CONSUMERS: dict[str, Callable[[Expectations | None, MetricContext], "Consumer"]] = {
    "motion": _motion,
    "av_sync": _av_sync,
    "text": _text,
    "clip_similarity": _clip_similarity,
    "structural": _structural,
    "audio": _audio,
    "artifacts": _artifacts,
}


def _check(fam: str, result: Any, expect: Expectations, ctx: MetricContext) -> list[Outcome]:
    if fam == "motion" and expect.motion is not None:
        from pytest_ltx.expect.motion import check

        return check(result, expect.motion)
    if fam == "av_sync" and expect.av_sync is not None:
        from pytest_ltx.expect.avsync import check

        return check(result, expect.av_sync)
    if fam == "text" and expect.text is not None:
        from pytest_ltx.expect.text import check

        return check(result, expect.text)
    if fam == "clip_similarity" and expect.clip is not None:
        from pytest_ltx.expect.clip_score import check

        return check(result, expect.clip)
    if fam == "audio" and expect.audio is not None:
        from pytest_ltx.expect.audio import check

        return check(result, expect.audio)
    if fam == "artifacts" and expect.artifacts is not None:
        from pytest_ltx.expect.artifacts import check

        return check(result, expect.artifacts, conditioned=ctx.conditioning_image is not None)
    # everything measured against the golden baseline is gated by the baseline comparison (golden.py)
    return []


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
    from pytest_ltx.stream import KeyframePictures, MediaSource, run_stream, source_info

    if isinstance(clip, (str, os.PathLike)):
        clip = MediaSource(Path(clip))
    ctx = context or MetricContext()
    extras = list(extras)
    fams = families_for(expect, metrics)
    consumers: dict[str, Consumer] = {}
    errors: dict[str, BaseException] = {}
    for fam in fams:
        try:
            consumers[fam] = _CONSUMERS[fam](expect, ctx)
        except ImportError:
            raise
        except Exception as e:  # a missing model configuration, say: an error for this family only
            errors[fam] = e
    if keyframes:
        consumers["keyframes"] = KeyframePictures(_sample_fps(expect.clip if expect is not None else None))
    for c in extras:
        consumers[c.name] = c

    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    info: ClipInfo | None = None
    keys: dict[str, str] = {}
    digest = _digest(clip) if cache is not None else None
    if cache is not None and digest is not None:
        for name, c in consumers.items():
            try:
                keys[name] = cache.key(digest, name, c.config())  # type: ignore[attr-defined]
            except ImportError:
                raise
            except Exception:  # noqa: BLE001 - no usable key (e.g. no CLIP profile): computed, and fails there
                continue
            hit = None if refresh else cache.get(keys[name])
            if hit is not None:
                results[name], info = hit
                seconds[name] = 0.0
    cached = tuple(n for n in results if n in _CONSUMERS)
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
            e = errors[fam]
            outcomes.append(Outcome(f"{fam}.error", Status.ERROR, f"{fam} could not be computed: "
                                    f"{e.__class__.__name__}: {e}"))
            continue
        fam_results[fam] = results[fam]
        if expect is not None:
            outcomes += _check(fam, results[fam], expect, ctx)
    return Evaluation(info=info, results=fam_results, outcomes=tuple(outcomes), seconds=seconds,
                      keyframes=results.get("keyframes"), cached=cached,
                      extras={c.name: results.get(c.name) for c in extras})


def _digest(clip: Any) -> str | None:
    """Content hash of a file source (video + separate audio), None for an in-memory clip (not cached)."""
    from pytest_ltx.evalcache import file_digest
    from pytest_ltx.stream import MediaSource

    if not isinstance(clip, MediaSource):
        return None
    d = file_digest(clip.path)
    if clip.audio_path is not None:
        d += "+" + file_digest(clip.audio_path)
    return d
