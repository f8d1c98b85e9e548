"""The export (delivery) contract: each check passes on a clip made right and fails, naming the fix, on a
clip made wrong for exactly that check."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from pytest_ltx.expect.export import ExportExpect, check_export, probe_export
from pytest_ltx.media import write_frames
from pytest_ltx.outcome import Status
from pytest_ltx.render.encode import DEFAULT_ENCODE

FPS = 24
N = 24  # one second of video


def _frames(n: int = N, w: int = 64, h: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return [np.roll(base, i, axis=1) for i in range(n)]


def _audio(seconds: float, rate: int = 48000, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.1 * np.sin(2 * np.pi * 440 * t).astype(np.float32)] * channels)


def _web_clip(path: Path, **kw) -> Path:
    args = dict(fps=FPS, audio=_audio(N / FPS), sample_rate=48000, crf=DEFAULT_ENCODE.crf,
                preset=DEFAULT_ENCODE.preset, faststart=True, color="bt709")
    args.update(kw)
    return write_frames(_frames(), path, **args)


def _by_check(outcomes) -> dict[str, object]:
    return {o.check: o for o in outcomes}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("export")
    out = {
        "good": _web_clip(d / "good.mp4"),
        "yuv444p": _web_clip(d / "yuv444.mp4", pix_fmt="yuv444p"),
        "index_at_end": _web_clip(d / "index_at_end.mp4", faststart=False),
        "mono_44k": _web_clip(d / "mono44.mp4", audio=_audio(N / FPS, 44100, 1), sample_rate=44100),
        "untagged": _web_clip(d / "untagged.mp4", color="none"),
        "intra": _web_clip(d / "intra.mp4", gop=1, pix_fmt="yuv422p"),
    }
    # audio one second short: 2 s of picture, 1 s of sound
    out["audio_short"] = write_frames(_frames(2 * FPS), d / "short.mp4", fps=FPS, audio=_audio(1.0),
                                      sample_rate=48000, faststart=True, color="bt709")
    out["vfr"] = _vfr_clip(d / "vfr.mp4")
    return out


def _vfr_clip(path: Path) -> Path:
    """Frames at irregular times (1/24 s, then 1/12 s …): a variable-frame-rate file."""
    import av

    with av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 64, 64, "yuv420p"
        vs.codec_context.time_base = Fraction(1, 1000)
        vs.codec_context.color_primaries = vs.codec_context.color_trc = vs.codec_context.colorspace = 1
        t = 0
        for i, f in enumerate(_frames()):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = t
            vf.time_base = Fraction(1, 1000)
            t += 42 if i % 2 == 0 else 83
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return path


def test_default_render_encoding_passes_web(clips) -> None:
    facts = probe_export(clips["good"])
    outcomes = check_export(facts, ExportExpect(preset="web"))
    failed = [o for o in outcomes if o.status is not Status.PASSED]
    assert not failed, [o.message for o in failed]
    checks = {o.check for o in outcomes}
    assert {"export.container", "export.video_codec", "export.video_profile", "export.pixel_format",
            "export.faststart", "export.constant_frame_rate", "export.even_dimensions", "export.color",
            "export.audio_codec", "export.audio_sample_rate", "export.audio_channels", "export.av_duration"} <= checks
    assert facts.video_profile == "High" and facts.faststart is True and facts.audio_sample_rate == 48000


@pytest.mark.parametrize(
    ("clip", "check", "fix"),
    [
        ("yuv444p", "export.pixel_format", "pix_fmt: yuv420p"),
        ("yuv444p", "export.video_profile", "-pix_fmt yuv420p"),
        ("index_at_end", "export.faststart", "-movflags +faststart"),
        ("vfr", "export.constant_frame_rate", "-fps_mode cfr"),
        ("mono_44k", "export.audio_sample_rate", "-ar 48000"),
        ("mono_44k", "export.audio_channels", "-ac 2"),
        ("audio_short", "export.av_duration", "pad the audio"),
        ("untagged", "export.color", "color: bt709"),
    ],
)
def test_each_check_fails_on_a_clip_made_wrong_for_it(clips, clip: str, check: str, fix: str) -> None:
    outcomes = _by_check(check_export(probe_export(clips[clip]), ExportExpect(preset="web")))
    o = outcomes[check]
    assert o.status is Status.FAILED, o.message
    assert fix in o.message, o.message
    # and only what was made wrong fails
    wrong = {"yuv444p": {"export.pixel_format", "export.video_profile"},
             "mono_44k": {"export.audio_sample_rate", "export.audio_channels"},
             "vfr": {"export.constant_frame_rate", "export.audio"}}.get(clip, {check})  # (vfr: picture only)
    assert {c for c, x in outcomes.items() if x.status is Status.FAILED} == wrong


def test_audio_short_message_says_how_much(clips) -> None:
    o = _by_check(check_export(probe_export(clips["audio_short"]), ExportExpect(preset="web")))["export.av_duration"]
    assert "audio 1.000 s shorter than the video" in o.message


def test_edit_preset_wants_all_intra(clips) -> None:
    web_clip = _by_check(check_export(probe_export(clips["good"]), ExportExpect(preset="edit")))
    assert web_clip["export.keyframe_interval"].status is Status.FAILED
    assert "gop: 1" in web_clip["export.keyframe_interval"].message
    intra = check_export(probe_export(clips["intra"]), ExportExpect(preset="edit"))
    assert all(o.status is Status.PASSED for o in intra), [o.message for o in intra if o.failed]


def test_explicit_fields_override_the_preset(clips) -> None:
    e = ExportExpect(preset="web", audio_sample_rate=44100, audio_channels=1)
    out = _by_check(check_export(probe_export(clips["mono_44k"]), e))
    assert out["export.audio_sample_rate"].status is Status.PASSED
    assert out["export.audio_channels"].status is Status.PASSED


def test_missing_audio_is_a_failure_when_audio_is_asked(tmp_path: Path) -> None:
    p = write_frames(_frames(), tmp_path / "silent.mp4", fps=FPS, faststart=True, color="bt709")
    out = _by_check(check_export(probe_export(p), ExportExpect(preset="web")))
    assert out["export.audio"].status is Status.FAILED and "no audio track" in out["export.audio"].message


def test_webm_container_fails_web(tmp_path: Path) -> None:
    p = write_frames(_frames(9), tmp_path / "c.webm", fps=FPS)
    out = _by_check(check_export(probe_export(p), ExportExpect(preset="web")))
    assert out["export.container"].status is Status.FAILED and "-c copy out.mp4" in out["export.container"].message
    assert out["export.faststart"].status is Status.UNMEASURED


def test_export_in_spec_schema() -> None:
    from pytest_ltx.spec import json_schema

    s = json_schema()
    assert "ExportExpect" in s["$defs"] and "preset" in s["$defs"]["ExportExpect"]["properties"]
    assert "encode" in s["$defs"]["ClipSpec"]["properties"]


def test_write_clip_fits_the_audio_to_the_picture(tmp_path: Path) -> None:
    from pytest_ltx.media import Clip, write_clip

    short = Clip(frames=np.stack(_frames(9)), fps=24.0, audio=_audio(7 / 24), sample_rate=48000)  # two frames short
    p = write_clip(short, tmp_path / "fit.mp4", encode=DEFAULT_ENCODE)
    facts = probe_export(p)
    assert abs(facts.audio_duration_s - facts.video_duration_s) < 1e-3
    raw = write_clip(short, tmp_path / "raw.mp4", encode=DEFAULT_ENCODE.model_copy(update={"fit_audio": False}))
    out = _by_check(check_export(probe_export(raw), ExportExpect(preset="web")))
    assert out["export.av_duration"].status is Status.FAILED


def test_a_tiny_model_render_encoded_by_the_cache_passes_web(render_tiny_result, tmp_path: Path) -> None:
    """The renderer's real output (LTX-2 audio is (frames-1)/fps long) through the render cache's encode."""
    from pytest_ltx.cache import RenderCache

    entry = RenderCache(tmp_path).put("ab" * 32, render_tiny_result.clip, {}, encode=DEFAULT_ENCODE)
    outcomes = check_export(probe_export(entry.clip_path), ExportExpect(preset="web"))
    assert all(o.status is Status.PASSED for o in outcomes), [o.message for o in outcomes if o.failed]


def test_probed_facts_are_cached_by_content(clips, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm rerun does not demux (nor import PyAV): the facts come back from the evaluation cache, for the
    same bytes only; a file that cannot be probed is an error every time, never a cached answer."""
    import shutil

    from pytest_ltx.evalcache import EvaluationCache
    from pytest_ltx.expect import export
    from pytest_ltx.media import ClipReadError

    cache = EvaluationCache(tmp_path / "cache")
    first = export.probe_export_cached(clips["good"], cache=cache)
    assert first == probe_export(clips["good"])
    copy = shutil.copy(clips["good"], tmp_path / "same-bytes.mp4")
    probes: list[str] = []
    real = export.probe_export
    monkeypatch.setattr(export, "probe_export", lambda p, **k: (probes.append(str(p)), real(p, **k))[1])
    again = export.probe_export_cached(copy, cache=cache)
    assert probes == [] and again.path == str(copy)  # a hit, naming the file asked about
    assert {**again.to_dict(), "path": None} == {**first.to_dict(), "path": None}
    assert export.probe_export_cached(clips["good"], cache=cache, refresh=True) == first and len(probes) == 1
    # other bytes, another answer
    other = export.probe_export_cached(clips["index_at_end"], cache=cache)
    assert len(probes) == 2 and other.faststart is False
    # the same bytes under a name that says another container: probed again
    mov_named = Path(shutil.copy(clips["good"], tmp_path / "same-bytes.mov"))
    export.probe_export_cached(mov_named, cache=cache)
    assert len(probes) == 3
    # an unreadable file raises each time, and leaves no entry
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0" * 1000)
    entries = set((tmp_path / "cache").rglob("*.pkl"))
    for _ in range(2):
        with pytest.raises(ClipReadError):
            export.probe_export_cached(bad, cache=cache)
    assert len(probes) == 5 and set((tmp_path / "cache").rglob("*.pkl")) == entries
