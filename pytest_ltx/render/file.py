"""Pre-rendered clips as a source: evaluate a file someone already rendered, exactly like a fresh render.

A spec may point at a video file (and optionally a separate audio file) instead of a prompt. Paths are
resolved against the spec's own directory, so a spec folder can be moved as a whole, and may not escape
the project root (a spec from a PR must not read ``/etc`` or a sibling checkout) unless the caller allows
it. Every way a file can be unusable — missing, empty, not a video, wrong extension, truncated, no audio
when audio is needed — raises :class:`~pytest_ltx.media.ClipReadError` naming the file, which the plugin
reports as an infrastructure error rather than a metric failure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_ltx.media import Clip, ClipReadError

if TYPE_CHECKING:
    from pytest_ltx.stream import MediaSource

__all__ = ["VIDEO_SUFFIXES", "AUDIO_SUFFIXES", "load_file_source", "open_file_source", "resolve_source_path"]

#: accepted video file suffixes -> the ffmpeg demuxer family their content must have
VIDEO_SUFFIXES: dict[str, str] = {".mp4": "mov", ".mov": "mov", ".webm": "matroska", ".mkv": "matroska"}
AUDIO_SUFFIXES: frozenset[str] = frozenset({".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus"})


def resolve_source_path(
    path: os.PathLike[str] | str, *, spec_dir: Path, root: Path, allow_outside_root: bool = False,
    allow_dirs: tuple[Path, ...] = (),
) -> Path:
    """``path`` made absolute against ``spec_dir`` with symlinks resolved; refused outside ``root`` and
    the ``allow_dirs`` folders (see :mod:`pytest_ltx.confine`)."""
    from pytest_ltx.confine import OutsideRoot, PathPolicy

    policy = PathPolicy(Path(root), tuple(allow_dirs), allow_outside_root)
    try:
        return policy.resolve(path, Path(spec_dir))
    except OutsideRoot as e:
        raise ClipReadError(
            e.path, f"is outside the project root {e.root} (resolves to {e.resolved}); move it under the root, "
            "or allow its folder with --ltx-allow-dirs DIR (ini: ltx_allow_dirs)"
        ) from None


def _check_container(p: Path) -> None:
    import av

    want = VIDEO_SUFFIXES[p.suffix.lower()]
    try:
        with av.open(str(p)) as c:
            fmt = c.format.name
            if want not in fmt.split(","):
                raise ClipReadError(p, f"content is a '{fmt}' container, not what the {p.suffix} extension says")
    except (av.FFmpegError, OSError, ValueError) as e:
        raise ClipReadError(p, f"not a readable video container ({e.__class__.__name__}: {e})") from None


def open_file_source(
    path: os.PathLike[str] | str,
    audio_path: os.PathLike[str] | str | None = None,
    *,
    spec_dir: Path,
    root: Path,
    allow_outside_root: bool = False,
    allow_dirs: tuple[Path, ...] = (),
    require_audio: bool = False,
) -> "MediaSource":
    """Validate a pre-rendered clip (and its separate audio file) without decoding it: paths confined,
    extensions and container checked, headers readable, audio present when required. The clip is
    decoded later, once, as a stream (:mod:`pytest_ltx.stream`); a file truncated past its headers is
    caught then. Raises :class:`ClipReadError` naming the offending file."""
    from pytest_ltx.media import probe, probe_audio
    from pytest_ltx.stream import MediaSource

    p = resolve_source_path(path, spec_dir=spec_dir, root=root, allow_outside_root=allow_outside_root,
                            allow_dirs=allow_dirs)
    if p.suffix.lower() not in VIDEO_SUFFIXES:
        raise ClipReadError(
            p, f"unsupported extension '{p.suffix}'; expected one of {', '.join(sorted(VIDEO_SUFFIXES))}"
        )
    if not p.exists():
        raise ClipReadError(p, "file does not exist")
    if p.is_file() and p.stat().st_size == 0:
        raise ClipReadError(p, "file is empty (0 bytes)")
    a: Path | None = None
    if audio_path is not None:
        a = resolve_source_path(audio_path, spec_dir=spec_dir, root=root, allow_outside_root=allow_outside_root,
                                allow_dirs=allow_dirs)
        if a.suffix.lower() not in AUDIO_SUFFIXES:
            raise ClipReadError(
                a, f"unsupported audio extension '{a.suffix}'; expected one of {', '.join(sorted(AUDIO_SUFFIXES))}"
            )
        if not a.exists():
            raise ClipReadError(a, "audio file does not exist")
        if a.is_file() and a.stat().st_size == 0:
            raise ClipReadError(a, "audio file is empty (0 bytes)")
    _check_container(p)
    info = probe(p)
    if a is not None:
        probe_audio(a)  # raises when the file has no audio stream
    elif require_audio and not info.audio_sample_rate:
        raise ClipReadError(
            p, "has no audio (this clip's checks need audio): give the clip an audio track or an audio file"
        )
    return MediaSource(p, a)


def load_file_source(
    path: os.PathLike[str] | str,
    audio_path: os.PathLike[str] | str | None = None,
    *,
    spec_dir: Path,
    root: Path,
    allow_outside_root: bool = False,
    allow_dirs: tuple[Path, ...] = (),
    require_audio: bool = False,
    max_side: int | None = None,
) -> Clip:
    """Read a pre-rendered clip (mp4/mov/webm/mkv) whole, optionally with its audio from a separate file
    (validated as :func:`open_file_source` does). ``require_audio`` makes a clip without any audio
    track an error. ``max_side`` downscales on decode. Raises :class:`ClipReadError` naming the file."""
    from pytest_ltx.media import read_clip

    src = open_file_source(path, audio_path, spec_dir=spec_dir, root=root, allow_outside_root=allow_outside_root,
                           allow_dirs=allow_dirs)
    clip = read_clip(src.path, max_side=max_side, audio=True, audio_path=src.audio_path)
    if require_audio and not clip.has_audio:
        raise ClipReadError(
            src.audio_path or src.path,
            "has no audio (this clip's checks need audio): give the clip an audio track or an audio file"
        )
    return clip
