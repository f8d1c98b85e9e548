"""The metric families pytest-ltx ships, declared once each and registered like a third party's
(:func:`register` is this package's provider, loaded by :func:`pytest_ltx.families.builtin_registry`).

Order matters: it is the order families are computed and reported. The CLIP family's names are declared
here and nowhere else: its canonical name (results section ``clip_similarity``, baseline prefix
``clip_similarity.``) and its spec key ``clip:`` (whose outcomes are ``clip.*``); its code lives in
``metrics/clip_score.py`` and ``expect/clip_score.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_ltx.families import MetricFamily

if TYPE_CHECKING:
    from pytest_ltx.evaluate import MetricContext
    from pytest_ltx.expect import (
        ArtifactsExpect,
        AudioExpect,
        AVSyncExpect,
        ClipScoreExpect,
        Expectations,
        MotionExpect,
        TextExpect,
    )
    from pytest_ltx.outcome import Outcome
    from pytest_ltx.stream import Consumer

__all__ = ["FAMILIES", "register", "sample_fps"]


def sample_fps(expect: Expectations | None) -> float:
    """Keyframes per second for keyframe metrics and pictures: ``expect.clip.sample_fps`` (default 2)."""
    return expect.clip.sample_fps if expect is not None and expect.clip is not None else 2.0


def _scalars(result: Any) -> Mapping[str, Any]:
    return result.scalars()


def _arrays(result: Any) -> Mapping[str, Any]:
    return result.arrays()


def _numbers(d: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool))


# ---- motion ------------------------------------------------------------------------------------------


def _motion(expect: Expectations | None, ctx: MetricContext) -> Consumer:
    from pytest_ltx.metrics.motion import MotionConsumer

    return MotionConsumer()


def _motion_check(result: Any, e: MotionExpect, ctx: MetricContext) -> Sequence[Outcome]:
    from pytest_ltx.expect.motion import check

    return check(result, e)


#: the motion scalars worth a line in the readable summary (the rest are in --json)
_MOTION_SCORES = ("flicker_score", "vbench_flicker", "dynamic_degree", "flow_mean")


def _motion_summary(m: Mapping[str, Any]) -> str:
    evs = m.get("events", [])
    line = f"motion: {len(evs)} event(s)" + "".join(
        f"\n  {e['kind']:8} frames {e['start_frame']}–{e['end_frame']}" for e in evs)
    scores = {k: v for k, v in (m.get("scalars") or {}).items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and k in _MOTION_SCORES}
    if scores:
        line += "\n  " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
    return line


# ---- av_sync -----------------------------------------------------------------------------------------


def _av_sync(expect: Expectations | None, ctx: MetricContext) -> Consumer:
    from pytest_ltx.metrics.avsync import AVSyncConsumer

    return AVSyncConsumer()


def _av_sync_check(result: Any, e: AVSyncExpect, ctx: MetricContext) -> Sequence[Outcome]:
    from pytest_ltx.expect.avsync import check

    return check(result, e)


def _av_sync_summary(a: Mapping[str, Any]) -> str:
    off = a.get("offset_ms")
    return f"av_sync: {a.get('status')}" + (
        f", audio {abs(off):.1f} ms {'late' if off >= 0 else 'early'} (confidence {a.get('confidence', 0):.2f})"
        if off is not None else (f" — {a['message'].removeprefix(str(a.get('status')) + ': ')}"
                                 if a.get("message") else ""))


# ---- text --------------------------------------------------------------------------------------------


def _text(expect: Expectations | None, ctx: MetricContext) -> Consumer:
    from pytest_ltx.metrics.ocr import TextConsumer

    e = expect.text if expect is not None else None
    return TextConsumer(sample_fps=e.sample_fps if e is not None else 2.0)


def _text_check(result: Any, e: TextExpect, ctx: MetricContext) -> Sequence[Outcome]:
    from pytest_ltx.expect.text import check

    return check(result, e)


def _text_summary(t: Mapping[str, Any]) -> str:
    dets = t.get("detections", [])
    return f"text: {len(dets)} detection(s)" + "".join(
        f"\n  frame {d['frame']}: {d['text']!r} ({d['confidence']:.2f})" for d in dets[:20])


# ---- clip_similarity (spec key `clip:`) --------------------------------------------------------------


def _clip(expect: Expectations | None, ctx: MetricContext) -> Consumer:
    from pytest_ltx.metrics.clip_score import ClipConsumer

    return ClipConsumer(prompt=ctx.prompt, sample_fps=sample_fps(expect), profile=ctx.clip_model)


def _clip_check(result: Any, e: ClipScoreExpect, ctx: MetricContext) -> Sequence[Outcome]:
    from pytest_ltx.expect.clip_score import check

    return check(result, e)


def _clip_summary(cs: Mapping[str, Any]) -> str:
    return "clip_similarity: " + _numbers(cs)


# ---- structural (always: baselines compare it; everything baseline-relative is golden.py's) ------------


def _structural(expect: Expectations | None, ctx: MetricContext) -> Consumer:
    from pytest_ltx.metrics.structural import StructuralConsumer

    return StructuralConsumer(sample_fps=sample_fps(expect))


# ---- audio (always: baselines keep the soundtrack's fingerprints) --------------------------------------


def _audio(expect: Expectations | None, ctx: MetricContext) -> Consumer:
    from pytest_ltx.metrics.audio import AudioConsumer

    a = expect.audio if expect is not None else None
    return AudioConsumer(sample_fps=sample_fps(expect),
                         **({"min_silence_s": a.min_silence_s, "silence_dbfs": a.silence_dbfs} if a else {}))


def _audio_check(result: Any, e: AudioExpect, ctx: MetricContext) -> Sequence[Outcome]:
    from pytest_ltx.expect.audio import check

    return check(result, e)


# ---- artifacts ---------------------------------------------------------------------------------------


def _artifacts(expect: Expectations | None, ctx: MetricContext) -> Consumer:
    from pytest_ltx.metrics.artifacts import ArtifactsConsumer

    e = expect.artifacts if expect is not None else None
    return ArtifactsConsumer(tail_s=e.tail_s if e is not None else 1.0, conditioning_image=ctx.conditioning_image)


def _artifacts_check(result: Any, e: ArtifactsExpect, ctx: MetricContext) -> Sequence[Outcome]:
    from pytest_ltx.expect.artifacts import check

    return check(result, e, conditioned=ctx.conditioning_image is not None)


#: each expectation model by lazy reference ("module:Class"): imported when a spec uses its key, so
#: ``pytest-ltx evaluate`` (no spec) never imports pydantic's expectation models
_E = "pytest_ltx.expect."

FAMILIES: tuple[MetricFamily, ...] = (
    MetricFamily("motion", _motion, "motion", _E + "motion:MotionExpect", _motion_check, scalars=_scalars,
                 summary=_motion_summary),
    MetricFamily("av_sync", _av_sync, "av_sync", _E + "avsync:AVSyncExpect", _av_sync_check, scalars=_scalars,
                 summary=_av_sync_summary, report_scalars=False),
    MetricFamily("text", _text, "text", _E + "text:TextExpect", _text_check, scalars=_scalars,
                 summary=_text_summary),
    MetricFamily("clip_similarity", _clip, "clip", _E + "clip_score:ClipScoreExpect", _clip_check,
                 scalars=_scalars, arrays=_arrays, summary=_clip_summary),
    MetricFamily("structural", _structural, scalars=_scalars, arrays=_arrays, always=True, report_scalars=False),
    MetricFamily("audio", _audio, "audio", _E + "audio:AudioExpect", _audio_check, scalars=_scalars,
                 arrays=_arrays, always=True, report_scalars=False),
    MetricFamily("artifacts", _artifacts, "artifacts", _E + "artifacts:ArtifactsExpect", _artifacts_check,
                 scalars=_scalars, report_scalars=False),
)


def register(registry: Any) -> None:
    """The built-in provider: the same entry a third party's ``register(registry)`` is."""
    for f in FAMILIES:
        registry.register(f)
