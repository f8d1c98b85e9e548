"""Expand a spec file into test items: one per clip × prompt variant × seed.

Item names are what pytest shows and what baselines are keyed on, so they are short, readable and
stable: ``robot-dance[seed=1]`` for a one-prompt clip, ``robot-dance[p1-seed=0]`` when the clip has
several prompts (``p<index into prompts>``), plain ``robot-dance`` / ``robot-dance[p1]`` for file and
test-card clips (which have no seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_ltx.expect import Expectations, FormatExpect
from pytest_ltx.spec.schema import ClipSpec, SourceKind, SpecFile

if TYPE_CHECKING:
    from pytest_ltx.render.base import RenderRequest

__all__ = ["ItemSpec", "expand", "item_name"]


def item_name(clip_id: str, kind: SourceKind, n_prompts: int, prompt_index: int, seed: int | None) -> str:
    """The pytest name of one item (see the module docstring)."""
    parts = []
    if n_prompts > 1:
        parts.append(f"p{prompt_index}")
    if kind is SourceKind.RENDER:
        parts.append(f"seed={seed}")
    return f"{clip_id}[{'-'.join(parts)}]" if parts else clip_id


@dataclass(frozen=True)
class ItemSpec:
    """One test item: a clip with one prompt variant and one seed, plus where it was written."""

    clip: ClipSpec
    #: ``None`` for file and test-card clips
    seed: int | None
    #: ``None`` for a file/test-card clip without a prompt
    prompt: str | None
    #: index into the clip's ``prompts`` (0 for a single ``prompt``)
    prompt_index: int
    name: str
    #: 1-based line of the clip in the spec file (``None`` when the spec wasn't read from a file)
    line: int | None
    source_kind: SourceKind
    #: the spec file (absolute), ``None`` when built in Python
    spec_path: Path | None
    #: where relative paths resolve: the spec file's folder
    base_dir: Path

    def __hash__(self) -> int:
        # the clip holds lists (expectations), so hash the item's identity instead
        return hash((self.spec_path, self.name))

    @property
    def clip_id(self) -> str:
        return self.clip.id

    @property
    def expect(self) -> Expectations:
        return self.clip.expectations

    @property
    def marks(self) -> tuple[str, ...]:
        return self.clip.marks or ()

    @property
    def image_path(self) -> Path | None:
        """The conditioning image, absolute."""
        return None if self.clip.image is None else (self.base_dir / self.clip.image).absolute()

    @property
    def file_path(self) -> Path | None:
        """The pre-rendered clip, absolute (file clips only)."""
        return None if self.clip.file is None else (self.base_dir / self.clip.file.path).absolute()

    @property
    def audio_path(self) -> Path | None:
        """The separate audio file of a file clip, absolute."""
        if self.clip.file is None or self.clip.file.audio is None:
            return None
        return (self.base_dir / self.clip.file.audio).absolute()

    def expected_format(self) -> FormatExpect:
        """``expect.format`` with what the clip asked for filled in where the spec left it unset: a
        rendered clip must come out at the requested size, frame count and rate, a test card at its
        own. A file clip's format is only what ``expect.format`` says."""
        fmt = self.expect.format
        src: Any = None
        if self.source_kind is SourceKind.RENDER:
            src = self.clip
        elif self.source_kind is SourceKind.TESTCARD:
            src = self.clip.testcard
        if src is None:
            return fmt
        fill = {k: getattr(src, k) for k in ("frames", "fps", "width", "height") if getattr(fmt, k) is None}
        return fmt.model_copy(update=fill)

    def to_render_request(self, profile: str | None = None) -> "RenderRequest":
        """What to ask the renderer for (render clips only). ``profile`` overrides the clip's ``model``
        (e.g. ``--ltx-model``)."""
        from pytest_ltx.render.base import RenderRequest

        if self.source_kind is not SourceKind.RENDER:
            raise ValueError(f"{self.name}: a {self.source_kind.value} clip is not rendered")
        c = self.clip
        assert self.prompt is not None and self.seed is not None
        assert c.width is not None and c.height is not None and c.frames is not None
        assert c.fps is not None
        return RenderRequest(
            prompt=self.prompt,
            negative_prompt=c.negative_prompt,
            seed=self.seed,
            width=c.width,
            height=c.height,
            frames=c.frames,
            fps=c.fps,
            steps=c.steps,
            guidance=c.guidance.to_dict() if c.guidance is not None else {},
            image=self.image_path,
            profile=profile if profile is not None else c.model,
            recipe=c.recipe,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of the item (for results.json)."""

        def s(p: Path | None) -> str | None:
            return None if p is None else str(p)

        return {
            "name": self.name,
            "clip_id": self.clip.id,
            "source_kind": self.source_kind.value,
            "prompt": self.prompt,
            "prompt_index": self.prompt_index,
            "seed": self.seed,
            "spec_path": s(self.spec_path),
            "line": self.line,
            "image": s(self.image_path),
            "file": s(self.file_path),
            "audio": s(self.audio_path),
            "marks": list(self.marks),
            "clip": self.clip.model_dump(mode="json", exclude_none=True),
        }


def expand(spec_file: SpecFile) -> list[ItemSpec]:
    """All items of a spec file, in file order: clip by clip, prompt variant by variant, seed by seed."""
    items: list[ItemSpec] = []
    for i, clip in enumerate(spec_file.clips):
        kind = clip.source_kind
        prompts = clip.prompt_variants
        for p_index, prompt in enumerate(prompts):
            for seed in clip.seed_list:
                items.append(
                    ItemSpec(
                        clip=clip,
                        seed=seed,
                        prompt=prompt,
                        prompt_index=p_index,
                        name=item_name(clip.id, kind, len(prompts), p_index, seed),
                        line=spec_file.line_of("clips", i),
                        source_kind=kind,
                        spec_path=spec_file.path,
                        base_dir=spec_file.directory,
                    )
                )
    return items
