"""Run the metrics a clip needs and check them: the one code path shared by the plugin and
``pytest-ltx evaluate``, so a clip scores the same in CI and on a laptop.

Only the families a spec asks about are computed (OCR and CLIP cost seconds); the weight-free
structural fingerprint is always taken because golden baselines compare it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from pytest_ltx.expect import Expectations
from pytest_ltx.media import Clip, ClipInfo
from pytest_ltx.outcome import Outcome, Status, jsonable

__all__ = ["FAMILIES", "Evaluation", "MetricContext", "evaluate", "families_for"]

#: metric families in the order they are computed and reported; each is a section of the JSON results.
FAMILIES: tuple[str, ...] = ("motion", "av_sync", "text", "clip_similarity", "structural", "audio", "artifacts")

#: the expectation attribute that switches each family on
_EXPECT_ATTR = {"motion": "motion", "av_sync": "av_sync", "text": "text", "clip_similarity": "clip",
                "artifacts": "artifacts"}


@dataclass(frozen=True)
class MetricContext:
    """What metrics may need beyond the pixels: the prompt, the golden baseline's stored arrays and
    scalars, and the CLIP model profile to use."""

    prompt: str | None = None
    baseline_arrays: Mapping[str, Any] = field(default_factory=dict)
    baseline_scalars: Mapping[str, Any] = field(default_factory=dict)
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

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"clip": self.info.to_dict()}
        for fam in FAMILIES:
            if fam in self.results:
                d[fam] = jsonable(self.results[fam].to_dict())
        d["outcomes"] = [o.to_dict() for o in self.outcomes]
        d["metric_seconds"] = {k: round(v, 4) for k, v in self.seconds.items()}
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


def _motion(clip: Clip, expect: Expectations | None, ctx: MetricContext):
    from pytest_ltx.metrics import motion

    return motion.analyze(clip)


def _av_sync(clip: Clip, expect: Expectations | None, ctx: MetricContext):
    from pytest_ltx.metrics import avsync

    return avsync.analyze(clip)


def _text(clip: Clip, expect: Expectations | None, ctx: MetricContext):
    from pytest_ltx.metrics import ocr

    e = expect.text if expect is not None else None
    return ocr.analyze(clip, sample_fps=e.sample_fps if e is not None else 2.0)


def _clip_similarity(clip: Clip, expect: Expectations | None, ctx: MetricContext):
    from pytest_ltx.metrics import clip_score

    e = expect.clip if expect is not None else None
    return clip_score.analyze(
        clip,
        prompt=ctx.prompt,
        baseline_embeddings=ctx.baseline_arrays.get("clip_similarity.embeddings"),
        sample_fps=e.sample_fps if e is not None else 2.0,
        profile=ctx.clip_model,
    )


def _structural(clip: Clip, expect: Expectations | None, ctx: MetricContext):
    from pytest_ltx.metrics import structural

    e = expect.clip if expect is not None else None
    return structural.analyze(
        clip,
        baseline_thumbnails=ctx.baseline_arrays.get("structural.thumbnails"),
        sample_fps=e.sample_fps if e is not None else 2.0,
    )


def _audio(clip: Clip, expect: Expectations | None, ctx: MetricContext):
    from pytest_ltx.metrics import audio

    a = expect.audio if expect is not None else None
    e = expect.clip if expect is not None else None
    return audio.analyze(clip, sample_fps=e.sample_fps if e is not None else 2.0,
                         **({"min_silence_s": a.min_silence_s, "silence_dbfs": a.silence_dbfs} if a else {}))


def _artifacts(clip: Clip, expect: Expectations | None, ctx: MetricContext):
    from pytest_ltx.metrics import artifacts

    e = expect.artifacts if expect is not None else None
    image = None
    if ctx.conditioning_image is not None:
        import numpy as np
        from PIL import Image

        with Image.open(ctx.conditioning_image) as im:
            image = np.asarray(im.convert("RGB"))
    return artifacts.analyze(clip, tail_s=e.tail_s if e is not None else 1.0, conditioning_image=image)


_ANALYZERS: dict[str, Callable[[Clip, Expectations | None, MetricContext], Any]] = {
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

        return check(result, expect.clip,
                     baseline_prompt_score=ctx.baseline_scalars.get("clip_similarity.prompt_score_mean"),
                     baseline_prompt_scores=ctx.baseline_arrays.get("clip_similarity.prompt_scores"))
    if fam == "audio" and expect.audio is not None:
        from pytest_ltx.expect.audio import check

        return check(result, expect.audio)
    if fam == "artifacts" and expect.artifacts is not None:
        from pytest_ltx.expect.artifacts import check

        return check(result, expect.artifacts, conditioned=ctx.conditioning_image is not None)
    # structural similarity to the baseline is gated with the other baseline comparisons (golden.py)
    return []


def evaluate(
    clip: Clip,
    *,
    expect: Expectations | None = None,
    metrics: Iterable[str] | None = None,
    context: MetricContext | None = None,
) -> Evaluation:
    """Compute the needed metric families on ``clip`` and check ``expect`` against them.

    A metric that raises is an error outcome for that family (the others still run), never a silent pass.
    """
    ctx = context or MetricContext()
    results: dict[str, Any] = {}
    outcomes: list[Outcome] = []
    seconds: dict[str, float] = {}
    if expect is not None:
        from pytest_ltx.expect.render import check_format

        outcomes += check_format(clip.info(), expect.format)
    for fam in families_for(expect, metrics):
        t0 = time.perf_counter()
        try:
            results[fam] = _ANALYZERS[fam](clip, expect, ctx)
        except ImportError:
            raise
        except Exception as e:  # a metric bug or a missing model: an error, named, for this family only
            outcomes.append(Outcome(f"{fam}.error", Status.ERROR, f"{fam} could not be computed: "
                                    f"{e.__class__.__name__}: {e}"))
            continue
        finally:
            seconds[fam] = time.perf_counter() - t0
        if expect is not None:
            outcomes += _check(fam, results[fam], expect, ctx)
    return Evaluation(info=clip.info(), results=results, outcomes=tuple(outcomes), seconds=seconds)
