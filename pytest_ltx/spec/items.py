"""Expand a spec file into test items: one per clip × prompt variant × variable values × seed.

Item names are what pytest shows and what baselines are keyed on, so they are short, readable and
stable — made of values, never positions: ``robot-dance[seed=1]`` for a one-prompt clip,
``hero[subject=robot,style=noir,seed=0]`` for a template with variables, ``robot-dance[wide,seed=0]``
for a ``prompts`` entry (its name or a label of its words), ``...,preset=draft]`` when a preset shaped the
render, plain ``card`` for a file or test-card clip with nothing to tell apart.

Migration: names up to this release numbered ``prompts`` entries (``robot-dance[p1-seed=0]``). Each item
keeps that old name (``legacy_name``); a baseline stored under it is still found and compared (with a
warning), and ``--ltx-update-baselines`` writes it under the new name (``--ltx-prune-baselines`` then
removes the old folder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from pytest_ltx.expect import Expectations, FormatExpect
from pytest_ltx.spec.schema import RENDER_DEFAULTS, ClipSpec, SourceKind, SpecFile

if TYPE_CHECKING:
    from pytest_ltx.render.base import RenderRequest

__all__ = ["ItemSpec", "expand", "item_name", "legacy_item_name", "preset_of"]


def item_name(clip_id: str, parts: tuple[str, ...] = (), seed: int | None = None, preset: str | None = None) -> str:
    """The pytest name of one item (see the module docstring): value parts, then seed, then preset."""
    all_parts = list(parts)
    if seed is not None:
        all_parts.append(f"seed={seed}")
    if preset is not None:
        all_parts.append(f"preset={preset}")
    return f"{clip_id}[{','.join(all_parts)}]" if all_parts else clip_id


def legacy_item_name(clip_id: str, kind: SourceKind, n_prompts: int, prompt_index: int, seed: int | None) -> str:
    """The name an item had before names were made of values (``clip[p1-seed=0]``): baselines stored
    under it are found and moved (see the module docstring)."""
    parts = []
    if n_prompts > 1:
        parts.append(f"p{prompt_index}")
    if kind is SourceKind.RENDER:
        parts.append(f"seed={seed}")
    return f"{clip_id}[{'-'.join(parts)}]" if parts else clip_id


def preset_of(name: str) -> str | None:
    """The preset part of an item name (``hero[seed=0,preset=draft]`` → ``draft``), None without one."""
    if not name.endswith("]") or "[" not in name:
        return None
    last = name[name.index("[") + 1 : -1].split(",")[-1]
    return last[len("preset="):] if last.startswith("preset=") else None


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
    #: the variable values of this item (``{}`` without ``vars``)
    vars: Mapping[str, Any] = field(default_factory=dict)
    #: where each value came from (``vars.subject[1]``, ``packs/p.csv:7 (row 6)``)
    var_sources: Mapping[str, str] = field(default_factory=dict)
    #: the prompt as written (a template when the clip has vars)
    template: str | None = None
    #: the preset that shaped this item (``None``: none)
    preset: str | None = None
    #: where each effective field came from (``Origin`` per field name / ``expect.<family>``)
    origins: Mapping[str, Any] = field(default_factory=dict)
    #: the name this item had when prompts were numbered (baseline migration); None when unchanged
    legacy_name: str | None = None

    def __hash__(self) -> int:
        # the clip holds lists (expectations), so hash the item's identity instead
        return hash((self.spec_path, self.name))

    @property
    def clip_id(self) -> str:
        return self.clip.id

    @property
    def negative_prompt(self) -> str | None:
        """The negative prompt with this item's variables filled in."""
        from pytest_ltx.spec.vars import fill

        n = self.clip.negative_prompt
        return n if n is None or not self.vars else fill(n, self.vars)

    @property
    def encode(self) -> Any:
        """How a render of this item is encoded (``encode:``, else the renderer's defaults)."""
        from pytest_ltx.render.encode import DEFAULT_ENCODE

        return self.clip.encode if self.clip.encode is not None else DEFAULT_ENCODE

    def effective_fields(self, *, run_model: str | None = None) -> dict[str, dict[str, Any]]:
        """Every effective clip field of this item with its value and origin (clip / file defaults /
        preset / option / built-in default): what ``pytest-ltx explain`` prints and results.json keeps."""
        from pytest_ltx.spec.presets import Origin

        c = self.clip
        out: dict[str, dict[str, Any]] = {}
        dumped = c.model_dump(mode="json", exclude_none=True)
        for k in type(c).model_fields:
            if k in ("expect", "guidance", "id", "prompts", "vars"):
                continue
            v = dumped.get(k)
            origin = self.origins.get(k)
            if k == "prompt":
                v = self.prompt
                origin = self.origins.get("prompts", origin) if c.prompts is not None else origin
            elif k == "negative_prompt":
                v = self.negative_prompt
            elif k in ("seed", "seeds"):
                if k == "seeds" or self.source_kind is not SourceKind.RENDER:
                    continue
                v = self.seed
                origin = self.origins.get("seeds") or self.origins.get("seed") or Origin("built-in", "seed 0")
            elif k == "model" and run_model is not None and self.source_kind is SourceKind.RENDER:
                v, origin = run_model, Origin("option", "--ltx-model")
            elif k == "encode" and self.source_kind is SourceKind.RENDER and v is None:
                v, origin = self.encode.to_dict(), Origin("built-in")
            if v is None:
                continue
            if origin is None:
                origin = Origin("built-in") if k in RENDER_DEFAULTS or k == "model" else Origin("clip")
            out[k] = {"value": v, "origin": origin.to_dict(), "origin_text": str(origin)}
        for group in ("guidance", "expect"):
            sub = dumped.get(group) or {}
            for k, v in sub.items():
                origin = self.origins.get(f"{group}.{k}")
                if origin is None:
                    if group == "expect" and k in ("format", "baseline"):
                        origin = Origin("built-in")
                    else:
                        origin = Origin("clip")
                if group == "expect" and k == "format":
                    v = self.expected_format().model_dump(mode="json", exclude_none=True)
                out[f"{group}.{k}"] = {"value": v, "origin": origin.to_dict(), "origin_text": str(origin)}
        for n, v in self.vars.items():
            out[f"vars.{n}"] = {"value": v, "origin": {"kind": "vars", "where": self.var_sources.get(n, "")},
                                "origin_text": f"vars ({self.var_sources.get(n, '')})"}
        return out

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
            negative_prompt=self.negative_prompt,
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
            "template": self.template,
            "vars": dict(self.vars),
            "preset": self.preset,
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
    """All items of a spec file, in file order: clip by clip, prompt variant by variant, variable values
    by variable values (in the order written), seed by seed."""
    items: list[ItemSpec] = []
    for i, clip in enumerate(spec_file.clips):
        kind = clip.source_kind
        n_prompts = len(clip.prompt_variants)
        origins = spec_file.origins(i)
        # a preset shapes the render: part of a rendered item's identity (file and test-card clips are
        # the same clip under any preset)
        preset = clip.preset if kind is SourceKind.RENDER else None
        for v in spec_file.variants(i):
            prompt = v.render(v.template)
            for seed in clip.seed_list:
                name = item_name(clip.id, v.parts, seed, preset)
                legacy = legacy_item_name(clip.id, kind, n_prompts, v.prompt_index, seed)
                items.append(
                    ItemSpec(
                        clip=clip,
                        seed=seed,
                        prompt=prompt,
                        prompt_index=v.prompt_index,
                        name=name,
                        line=spec_file.line_of("clips", i),
                        source_kind=kind,
                        spec_path=spec_file.path,
                        base_dir=spec_file.directory,
                        vars=dict(v.values),
                        var_sources=dict(v.sources),
                        template=v.template,
                        preset=preset,
                        origins=origins,
                        legacy_name=legacy if (legacy != name and not v.values and preset is None) else None,
                    )
                )
    return items
