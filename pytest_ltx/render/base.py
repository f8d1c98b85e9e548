"""The render contract: what a clip spec asks a model for, and what comes back.

Every backend (the diffusers LTX-2 pipeline, the embedded tiny model, pre-rendered files) speaks this
protocol, so the plugin, the cache and the report never care which one produced a clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

from pytest_ltx.errors import RenderError  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from pytest_ltx.media import Clip
    from pytest_ltx.models import ModelProfile

__all__ = [
    "GUIDANCE_KEYS",
    "RenderRequest",
    "RenderResult",
    "Renderer",
    "RenderError",
]

#: guidance knobs a request may set; a missing key means "the profile's / pipeline's default".
GUIDANCE_KEYS: frozenset[str] = frozenset(
    {
        "scale",  # CFG, video
        "audio_scale",  # CFG, audio
        "stg_scale",
        "audio_stg_scale",
        "stg_blocks",  # list[int]: transformer blocks perturbed by spatio-temporal guidance
        "modality_scale",
        "audio_modality_scale",
        "rescale",
        "audio_rescale",
    }
)


@dataclass(frozen=True)
class RenderRequest:
    """One clip to render. Validated on construction: LTX-2 needs sides divisible by 32 and 8k+1 frames,
    and we refuse rather than silently round (a rounded request would render a different clip)."""

    prompt: str
    negative_prompt: str | None = None
    seed: int = 0
    width: int = 768
    height: int = 512
    frames: int = 121
    fps: float = 24.0
    #: denoising steps of the base stage; None → the recipe's (the reference count, or the profile's `steps`)
    steps: int | None = None
    guidance: Mapping[str, Any] = field(default_factory=dict)
    #: conditioning image → image-to-video (LTX2ImageToVideoPipeline)
    image: Path | None = None
    #: name of the model profile the spec asked for (informational; the renderer's profile decides)
    profile: str | None = None
    #: render recipe (dev | distilled | two-stage); None → the profile's
    recipe: str | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            problems.append(f"seed must be a non-negative integer, got {self.seed!r}")
        for name in ("width", "height"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 32 or v % 32:
                problems.append(f"{name} must be a positive multiple of 32 (LTX-2 latent grid), got {v!r}")
        if not isinstance(self.frames, int) or self.frames < 1 or (self.frames - 1) % 8:
            lo = max(1, (int(self.frames) - 1) // 8 * 8 + 1) if isinstance(self.frames, int) else 1
            problems.append(f"frames must be 8k+1 (e.g. {lo} or {lo + 8}), got {self.frames!r}")
        if not (isinstance(self.fps, (int, float)) and self.fps > 0):
            problems.append(f"fps must be positive, got {self.fps!r}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            problems.append(f"steps must be a positive integer, got {self.steps!r}")
        if self.recipe is not None and self.recipe not in ("dev", "distilled", "two-stage"):
            problems.append(f"recipe must be dev, distilled or two-stage, got {self.recipe!r}")
        unknown = sorted(set(self.guidance) - GUIDANCE_KEYS)
        if unknown:
            problems.append(f"unknown guidance keys {unknown}; allowed: {sorted(GUIDANCE_KEYS)}")
        if problems:
            raise ValueError("invalid render request: " + "; ".join(problems))
        g = dict(self.guidance)
        if "stg_blocks" in g and g["stg_blocks"] is not None:
            g["stg_blocks"] = tuple(int(b) for b in g["stg_blocks"])
        object.__setattr__(self, "guidance", MappingProxyType(g))
        object.__setattr__(self, "fps", float(self.fps))
        if self.image is not None:
            object.__setattr__(self, "image", Path(self.image))

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, key-sorted guidance; this is what the provenance and the cache key are built from."""
        g = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(self.guidance.items())}
        return {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "fps": self.fps,
            "steps": self.steps,
            "guidance": g,
            "image": None if self.image is None else str(self.image),
            "profile": self.profile,
            "recipe": self.recipe,
        }


@dataclass(frozen=True, eq=False)
class RenderResult:
    """A rendered clip plus how it was made. ``provenance`` is the full, JSON-ready record (model
    fingerprint, request, library versions, device, dtype) that the render cache keys on."""

    clip: "Clip"
    seconds: float
    peak_vram_gb: float | None
    device: str
    dtype: str
    provenance: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Everything but the pixels (the clip's stream facts go in under ``clip``)."""
        return {
            "seconds": round(self.seconds, 4),
            "peak_vram_gb": None if self.peak_vram_gb is None else round(self.peak_vram_gb, 3),
            "device": self.device,
            "dtype": self.dtype,
            "clip": self.clip.info().to_dict(),
            "provenance": self.provenance,
        }


@runtime_checkable
class Renderer(Protocol):
    """A loaded model that turns requests into clips. One per model profile per process."""

    profile: "ModelProfile"

    def render(self, req: RenderRequest, *, guard: Any = None) -> RenderResult:
        """Render ``req``; ``guard`` (a ``render.guard.RenderGuard``, or None) bounds time and VRAM and
        records retries."""
        ...
