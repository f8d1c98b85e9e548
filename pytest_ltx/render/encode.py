"""How a rendered clip is encoded into its mp4: the renderer's own delivery settings.

The defaults give a file a browser plays progressively — H.264 (High) yuv420p with BT.709 colour tags,
the index (``moov``) at the front, constant frame rate, AAC at the render's rate (48 kHz stereo for
LTX-2, padded with silence to end with the picture) — so a render passes ``expect: {export: {preset: web}}`` as it comes. ``encode:`` in a spec (or a
preset) changes them; they are part of the render's provenance and cache key (other settings, other
bits).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

__all__ = ["EncodeSettings", "DEFAULT_ENCODE", "X264_PRESETS", "PIX_FMTS"]

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
PIX_FMTS = ("yuv420p", "yuv422p", "yuv444p")


class EncodeSettings(BaseModel):
    """``encode:`` — the H.264 encode of a rendered clip (render only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crf: StrictInt = Field(18, ge=0, le=51, description="x264 constant rate factor: 0 lossless … 51 worst; default 18")
    preset: Literal[X264_PRESETS] = Field(  # type: ignore[valid-type]
        "veryfast", description="x264 speed preset (slower = smaller file at the same quality); default veryfast")
    pix_fmt: Literal[PIX_FMTS] = Field(  # type: ignore[valid-type]
        "yuv420p", description="chroma subsampling; browsers play yuv420p only; default yuv420p")
    faststart: StrictBool = Field(True, description="index (moov) at the front for progressive playback; default true")
    gop: StrictInt | None = Field(
        None, ge=1, le=600,
        description="largest keyframe interval in frames (1 = all-intra, for editing); default: x264's (250)")
    color: Literal["bt709", "none"] = Field(
        "bt709", description="colour primaries/transfer/matrix tags written into the stream; default bt709")
    fit_audio: StrictBool = Field(
        True, description="pad the audio with silence (or trim it) to the picture's duration, so both end together "
        "(LTX-2 renders (frames-1)/fps of audio: a frame short); default true")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


DEFAULT_ENCODE = EncodeSettings()
