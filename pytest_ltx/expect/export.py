"""``export:`` — the delivery contract of the clip *file*: what a web player or an editor must be able to
open, probed with PyAV (container, streams and packet timing; nothing is decoded).

Checks: container, video codec and profile, pixel format, ``faststart`` (the mp4 index before the media
data), constant frame rate, even sides, colour primaries/transfer/matrix tags, keyframe interval, audio
codec, sample rate and channels, and audio and video the same length within one frame. Presets:

* ``web`` — what every browser plays progressively: mp4, H.264 (Constrained Baseline/Main/High),
  yuv420p, faststart, constant frame rate, even sides, BT.709 tags, AAC 48 kHz stereo, A/V within a frame.
* ``edit`` — what an editor ingests without surprises: mov/mp4, H.264 (any 4:2:0/4:2:2/4:4:4 profile),
  ProRes or DNxHD, all-intra (every frame a keyframe), constant frame rate, even sides, BT.709 tags,
  PCM or AAC at 48 kHz stereo, A/V within a frame.

Fields written next to ``preset`` replace the preset's. Each failure says how to fix it (the spec's
``encode:`` setting for a render, the ffmpeg option for a file made elsewhere).
"""

from __future__ import annotations

import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from pytest_ltx.outcome import Outcome, Status

from ._base import ExpectModel

if TYPE_CHECKING:
    from pytest_ltx.evalcache import EvaluationCache
    from pytest_ltx.stream import MediaSource

__all__ = ["ColorTags", "ExportExpect", "ExportFacts", "EXPORT_PRESETS", "check_export", "probe_export",
           "probe_export_cached"]


class ColorTags(ExpectModel):
    primaries: str | None = Field(None, description="colour primaries tag, e.g. bt709")
    transfer: str | None = Field(None, description="transfer characteristics tag, e.g. bt709")
    matrix: str | None = Field(None, description="matrix coefficients tag, e.g. bt709")


class ExportExpect(ExpectModel):
    """``expect.export``: the delivery contract. ``preset`` (web / edit) fills every unset field."""

    preset: Literal["web", "edit"] | None = Field(None, description="web: browser playback; edit: editing ingest")
    container: list[str] | None = Field(None, description="allowed containers: mp4, mov, mkv, webm")
    video_codec: list[str] | None = Field(None, description="allowed video codecs (h264, hevc, prores, dnxhd, vp9, av1)")
    video_profile: list[str] | None = Field(None, description="allowed codec profiles, e.g. [high, main]")
    pixel_format: list[str] | None = Field(None, description="allowed pixel formats, e.g. [yuv420p]")
    faststart: bool | None = Field(None, description="the mp4/mov index (moov) must come before the media data")
    constant_frame_rate: bool | None = Field(None, description="every frame lasts the same time")
    even_dimensions: bool | None = Field(None, description="width and height are even (4:2:0 needs it)")
    color: ColorTags | None = Field(None, description="required colour tags")
    max_keyframe_interval: int | None = Field(
        None, ge=1, description="largest distance between keyframes, in frames (1 = all-intra)")
    audio_codec: list[str] | None = Field(None, description="allowed audio codecs (aac, opus, pcm_s16le, pcm_s24le…)")
    audio_sample_rate: int | None = Field(None, gt=0, description="required audio sample rate (Hz)")
    audio_channels: int | None = Field(None, ge=1, description="required number of audio channels")
    av_duration_max_frames: float | None = Field(
        None, ge=0, description="audio and video durations may differ by at most this many frames")

    def effective(self) -> "ExportExpect":
        """This expectation with the preset's values under the fields written explicitly."""
        if self.preset is None:
            return self
        base = dict(EXPORT_PRESETS[self.preset])
        own = self.model_dump(exclude_none=True, exclude={"preset"})
        return ExportExpect.model_validate({**base, **own, "preset": self.preset})


_BT709 = {"primaries": "bt709", "transfer": "bt709", "matrix": "bt709"}
EXPORT_PRESETS: dict[str, dict[str, Any]] = {
    "web": {
        "container": ["mp4"],
        "video_codec": ["h264"],
        "video_profile": ["constrained baseline", "baseline", "main", "high"],
        "pixel_format": ["yuv420p"],
        "faststart": True,
        "constant_frame_rate": True,
        "even_dimensions": True,
        "color": _BT709,
        "audio_codec": ["aac"],
        "audio_sample_rate": 48000,
        "audio_channels": 2,
        "av_duration_max_frames": 1.0,
    },
    "edit": {
        "container": ["mov", "mp4"],
        "video_codec": ["h264", "prores", "dnxhd"],
        "pixel_format": ["yuv420p", "yuv422p", "yuv444p", "yuv422p10le", "yuv444p10le"],
        "constant_frame_rate": True,
        "even_dimensions": True,
        "max_keyframe_interval": 1,
        "color": _BT709,
        "audio_codec": ["pcm_s16le", "pcm_s24le", "aac"],
        "audio_sample_rate": 48000,
        "audio_channels": 2,
        "av_duration_max_frames": 1.0,
    },
}


@dataclass(frozen=True)
class ExportFacts:
    """What the file is, as probed (``None``: not applicable or not present)."""

    path: str
    container: str
    video_codec: str | None
    video_profile: str | None
    pixel_format: str | None
    width: int
    height: int
    fps: float | None
    #: ``True``/``False`` for mp4/mov, ``None`` for containers without an index box
    faststart: bool | None
    #: distinct frame durations (seconds), from packet timestamps
    frame_durations: tuple[float, ...]
    max_keyframe_interval: int | None
    color_primaries: str | None
    color_transfer: str | None
    color_matrix: str | None
    video_duration_s: float | None
    audio_codec: str | None
    audio_sample_rate: int | None
    audio_channels: int | None
    audio_duration_s: float | None

    @property
    def constant_frame_rate(self) -> bool:
        if len(self.frame_durations) <= 1:
            return True
        lo, hi = min(self.frame_durations), max(self.frame_durations)
        return hi - lo <= max(1e-4, 0.002 * hi)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["frame_durations"] = [round(x, 6) for x in self.frame_durations]
        d["constant_frame_rate"] = self.constant_frame_rate
        return d


# --- probing -----------------------------------------------------------------------------------


def _top_level_boxes(path: Path, limit: int = 64) -> list[str]:
    """The ISO-BMFF top-level box types in file order (``ftyp``, ``moov``, ``mdat`` …)."""
    out: list[str] = []
    size_total = path.stat().st_size
    with path.open("rb") as f:
        pos = 0
        while pos + 8 <= size_total and len(out) < limit:
            f.seek(pos)
            head = f.read(8)
            if len(head) < 8:
                break
            size, kind = struct.unpack(">I4s", head)
            if size == 1:
                ext = f.read(8)
                if len(ext) < 8:
                    break
                size = struct.unpack(">Q", ext)[0]
            elif size == 0:
                size = size_total - pos
            if size < 8:
                break
            out.append(kind.decode("latin-1"))
            pos += size
    return out


_COLOR_NAMES = {
    "primaries": {1: "bt709", 2: None, 5: "bt470bg", 6: "smpte170m", 9: "bt2020", 12: "smpte432"},
    "transfer": {1: "bt709", 2: None, 6: "smpte170m", 8: "linear", 13: "iec61966-2-1", 14: "bt2020-10",
                 16: "smpte2084", 18: "arib-std-b67"},
    "matrix": {0: "gbr", 1: "bt709", 2: None, 5: "bt470bg", 6: "smpte170m", 9: "bt2020nc"},
}


def _color(kind: str, v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return None if v in ("unknown", "unspecified", "") else v.lower()
    try:
        n = int(v)
    except (TypeError, ValueError):
        return str(v)
    return _COLOR_NAMES[kind].get(n, f"code {n}")


def probe_export(path: os.PathLike[str] | str, *, audio_path: os.PathLike[str] | str | None = None) -> ExportFacts:
    """Probe a clip file for :func:`check_export`. Raises ``ClipReadError`` when it cannot be read."""
    import av

    from pytest_ltx.media import ClipReadError

    p = Path(path)
    try:
        c = av.open(str(p))
    except (av.error.FFmpegError, OSError) as e:
        raise ClipReadError(p, f"cannot open for probing: {e}") from None
    try:
        fmt = c.format.name
        if "mp4" in fmt or "mov" in fmt:
            brand = (c.metadata or {}).get("major_brand", "").strip()
            container = "mov" if brand == "qt" or (not brand and p.suffix.lower() == ".mov") else "mp4"
            boxes = _top_level_boxes(p)
            faststart: bool | None = ("moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat"))
        else:
            container = "webm" if p.suffix.lower() == ".webm" else "mkv" if "matroska" in fmt else fmt.split(",")[0]
            faststart = None
        if not c.streams.video:
            raise ClipReadError(p, "no video stream")
        vs = c.streams.video[0]
        cc = vs.codec_context
        tb = float(vs.time_base) if vs.time_base else None
        pts: list[int] = []
        keys: list[int] = []
        last_dur = 0
        for pkt in c.demux(vs):
            if pkt.pts is None or pkt.size == 0:
                continue
            pts.append(pkt.pts)
            last_dur = pkt.duration or last_dur
            if pkt.is_keyframe:
                keys.append(pkt.pts)
        pts.sort()
        durations: tuple[float, ...] = ()
        max_gop = None
        vdur = None
        if tb and pts:
            diffs = sorted({b - a for a, b in zip(pts, pts[1:])})
            durations = tuple(d * tb for d in diffs)
            index = {t: i for i, t in enumerate(pts)}
            kpos = sorted(index[k] for k in keys if k in index) + [len(pts)]
            max_gop = max((b - a for a, b in zip(kpos, kpos[1:])), default=len(pts)) if kpos[0] == 0 else len(pts)
            vdur = float(vs.duration * vs.time_base) if vs.duration else (pts[-1] + last_dur - pts[0]) * tb
        fps = float(vs.average_rate) if vs.average_rate else None
        a_codec = a_rate = a_ch = None
        adur = None
        if audio_path is None and c.streams.audio:
            a_codec, a_rate, a_ch, adur = _audio_facts(c, c.streams.audio[0])
        facts_audio = (a_codec, a_rate, a_ch, adur)
    finally:
        c.close()
    if audio_path is not None:
        with av.open(str(audio_path)) as ac:
            facts_audio = _audio_facts(ac, ac.streams.audio[0]) if ac.streams.audio else (None, None, None, None)
    return ExportFacts(
        path=str(p), container=container, video_codec=cc.name, video_profile=cc.profile,
        pixel_format=cc.pix_fmt, width=cc.width, height=cc.height, fps=fps, faststart=faststart,
        frame_durations=durations, max_keyframe_interval=max_gop,
        color_primaries=_color("primaries", cc.color_primaries), color_transfer=_color("transfer", cc.color_trc),
        color_matrix=_color("matrix", cc.colorspace), video_duration_s=vdur,
        audio_codec=facts_audio[0], audio_sample_rate=facts_audio[1], audio_channels=facts_audio[2],
        audio_duration_s=facts_audio[3],
    )


#: bump when probe_export reads a file differently (cached facts then miss)
PROBE_FORMAT = 1


def probe_export_cached(path: os.PathLike[str] | str, *, audio_path: os.PathLike[str] | str | None = None,
                        cache: "EvaluationCache | None" = None, refresh: bool = False,
                        source: "MediaSource | None" = None) -> ExportFacts:
    """:func:`probe_export` through the evaluation cache: the facts are a function of the files' bytes (and
    the file name's suffix, which names a container), so a warm rerun neither demuxes nor imports PyAV.
    A file that cannot be probed raises and is never cached. ``source``: the same files as a stream source,
    whose content digest (already taken for the metrics) is then not taken again."""
    if cache is None:
        return probe_export(path, audio_path=audio_path)
    from dataclasses import replace

    from pytest_ltx.stream import MediaSource

    p, audio = Path(path), None if audio_path is None else Path(audio_path)
    if source is None or (source.path, source.audio_path) != (p, audio):
        source = MediaSource(p, audio)
    key = cache.key(source.content_digest(), "export-probe", {"format": PROBE_FORMAT, "suffix": p.suffix.lower()})
    hit = None if refresh else cache.get(key)
    if hit is not None and isinstance(hit[0], ExportFacts):
        return replace(hit[0], path=str(p))  # the same bytes elsewhere: the facts name this file
    facts = probe_export(p, audio_path=audio_path)
    cache.put(key, facts, None)
    return facts


def _audio_facts(c: Any, a: Any) -> tuple[str | None, int | None, int | None, float | None]:
    acc = a.codec_context
    dur = None
    if a.duration and a.time_base:
        dur = float(a.duration * a.time_base)
    else:
        end = start = None
        for pkt in c.demux(a):
            if pkt.pts is None:
                continue
            start = pkt.pts if start is None else min(start, pkt.pts)
            end = max(end or 0, pkt.pts + (pkt.duration or 0))
        if end is not None and a.time_base:
            dur = float((end - max(0, start or 0)) * a.time_base)
    return acc.name, acc.sample_rate, acc.channels, dur


# --- checking ----------------------------------------------------------------------------------


def _ok(check: str, ok: bool, message: str, measured: Any = None, allowed: Any = None) -> Outcome:
    return Outcome(f"export.{check}", Status.PASSED if ok else Status.FAILED, message, measured=measured, allowed=allowed)


def _one_of(values: list[str]) -> str:
    return values[0] if len(values) == 1 else "one of " + ", ".join(values)


def check_export(facts: ExportFacts, expect: ExportExpect) -> list[Outcome]:
    """The delivery contract against a probed file: one outcome per check, each failure with its fix."""
    e = expect.effective()
    tag = f"{e.preset} " if e.preset else ""
    out: list[Outcome] = []
    f = facts
    if e.container is not None:
        ok = f.container in e.container
        out.append(_ok("container", ok, f"container {f.container}" + ("" if ok else
                       f", {tag}needs {_one_of(e.container)}: re-mux (ffmpeg: -c copy out.{e.container[0]})"),
                       f.container, e.container))
    if e.video_codec is not None:
        ok = (f.video_codec or "") in e.video_codec
        out.append(_ok("video_codec", ok, f"video codec {f.video_codec}" + ("" if ok else
                       f", {tag}needs {_one_of(e.video_codec)}: re-encode (ffmpeg: -c:v libx264)"),
                       f.video_codec, e.video_codec))
    if e.video_profile is not None:
        prof = (f.video_profile or "unknown").lower()
        ok = prof in [x.lower() for x in e.video_profile]
        out.append(_ok("video_profile", ok, f"profile {f.video_profile}" + ("" if ok else
                       f", {tag}needs {_one_of(e.video_profile)}: encode 8-bit 4:2:0 "
                       "(`encode: {pix_fmt: yuv420p}`; ffmpeg: -profile:v high -pix_fmt yuv420p)"),
                       f.video_profile, e.video_profile))
    if e.pixel_format is not None:
        ok = (f.pixel_format or "") in e.pixel_format
        out.append(_ok("pixel_format", ok, f"pixel format {f.pixel_format}" + ("" if ok else
                       f", {tag}needs {_one_of(e.pixel_format)}: `encode: {{pix_fmt: {e.pixel_format[0]}}}` "
                       f"(ffmpeg: -pix_fmt {e.pixel_format[0]})"), f.pixel_format, e.pixel_format))
    if e.faststart:
        if f.faststart is None:
            out.append(Outcome("export.faststart", Status.UNMEASURED, f"faststart applies to mp4/mov, not {f.container}"))
        else:
            out.append(_ok("faststart", f.faststart, "index (moov) before the media data" if f.faststart else
                           "index (moov) at the end of the file: a browser must download all of it before playing; "
                           "`encode: {faststart: true}` (ffmpeg: -movflags +faststart)", f.faststart, True))
    if e.constant_frame_rate:
        cfr = f.constant_frame_rate
        if cfr:
            msg = f"constant frame rate ({f.fps:g} fps)" if f.fps else "constant frame rate"
        else:
            shown = ", ".join(f"{d * 1000:.1f}" for d in f.frame_durations[:5])
            msg = (f"variable frame rate: frame durations {shown} ms; re-encode at a constant rate "
                   f"(ffmpeg: -fps_mode cfr -r {round(f.fps) if f.fps else 24})")
        out.append(_ok("constant_frame_rate", cfr, msg, len(f.frame_durations), 1))
    if e.even_dimensions:
        ok = f.width % 2 == 0 and f.height % 2 == 0
        out.append(_ok("even_dimensions", ok, f"size {f.width}×{f.height}" + ("" if ok else
                       ": 4:2:0 video needs even sides; pad or crop (ffmpeg: -vf pad=ceil(iw/2)*2:ceil(ih/2)*2)"),
                       [f.width, f.height], "even"))
    if e.color is not None:
        want = {k: v for k, v in e.color.model_dump(exclude_none=True).items()}
        got = {"primaries": f.color_primaries, "transfer": f.color_transfer, "matrix": f.color_matrix}
        bad = {k: got[k] for k, v in want.items() if (got[k] or "").lower() != v.lower()}
        shown = ", ".join(f"{k} {got[k] or 'untagged'}" for k in want)
        fix = ("; tag the stream: `encode: {color: bt709}` (ffmpeg: -color_primaries bt709 -color_trc bt709 "
               "-colorspace bt709)")
        out.append(_ok("color", not bad, f"colour tags {shown}" + ("" if not bad else
                       f", {tag}needs {', '.join(f'{k} {want[k]}' for k in bad)}{fix}"), got, want))
    if e.max_keyframe_interval is not None and f.max_keyframe_interval is not None:
        ok = f.max_keyframe_interval <= e.max_keyframe_interval
        out.append(_ok("keyframe_interval", ok, f"keyframes at most {f.max_keyframe_interval} frames apart"
                       + ("" if ok else f", {tag}needs ≤ {e.max_keyframe_interval}"
                          + (" (all-intra)" if e.max_keyframe_interval == 1 else "")
                          + f": `encode: {{gop: {e.max_keyframe_interval}}}` (ffmpeg: -g {e.max_keyframe_interval})"),
                       f.max_keyframe_interval, e.max_keyframe_interval))
    wants_audio = any(x is not None for x in (e.audio_codec, e.audio_sample_rate, e.audio_channels))
    if wants_audio and f.audio_codec is None:
        out.append(_ok("audio", False, f"no audio track; {tag}needs one (render with audio, or mux one: "
                       "ffmpeg -i video.mp4 -i audio.wav -c:v copy -c:a aac -shortest)", None, "audio"))
    elif f.audio_codec is not None:
        if e.audio_codec is not None:
            ok = f.audio_codec in e.audio_codec
            out.append(_ok("audio_codec", ok, f"audio codec {f.audio_codec}" + ("" if ok else
                           f", {tag}needs {_one_of(e.audio_codec)}: re-encode (ffmpeg: -c:a {e.audio_codec[0]})"),
                           f.audio_codec, e.audio_codec))
        if e.audio_sample_rate is not None:
            ok = f.audio_sample_rate == e.audio_sample_rate
            out.append(_ok("audio_sample_rate", ok, f"audio {f.audio_sample_rate} Hz" + ("" if ok else
                           f", {tag}needs {e.audio_sample_rate} Hz: resample (ffmpeg: -ar {e.audio_sample_rate})"),
                           f.audio_sample_rate, e.audio_sample_rate))
        if e.audio_channels is not None:
            ok = f.audio_channels == e.audio_channels
            channel_names = {1: "mono", 2: "stereo"}
            layout = channel_names.get(f.audio_channels or 0, f"{f.audio_channels} channels")
            out.append(_ok("audio_channels", ok, f"audio {layout}" + ("" if ok else
                           f", {tag}needs {channel_names.get(e.audio_channels, f'{e.audio_channels} channels')}: "
                           f"(ffmpeg: -ac {e.audio_channels})"), f.audio_channels, e.audio_channels))
    if e.av_duration_max_frames is not None and f.audio_duration_s is not None and f.video_duration_s is not None:
        frame = 1.0 / f.fps if f.fps else 0.0
        diff = f.audio_duration_s - f.video_duration_s
        ok = abs(diff) <= e.av_duration_max_frames * frame + 1e-3
        msg = f"audio {f.audio_duration_s:.3f} s, video {f.video_duration_s:.3f} s"
        if not ok:
            side = "shorter" if diff < 0 else "longer"
            msg = (f"audio {abs(diff):.3f} s {side} than the video ({msg}; allowed {e.av_duration_max_frames:g} "
                   f"frame = {e.av_duration_max_frames * frame:.3f} s): "
                   + ("pad the audio to the picture (ffmpeg: -af apad -shortest)" if diff < 0 else
                      "trim the audio to the picture (ffmpeg: -shortest)"))
        out.append(_ok("av_duration", ok, msg, round(diff, 4), round(e.av_duration_max_frames * frame, 4)))
    return out
