"""The clip-spec format: validated, frozen pydantic models of one YAML spec file.

A clip has exactly one *source*:

* **render** — ``prompt`` (or ``prompts``) is rendered by a model profile. The render fields
  (``negative_prompt``, ``seed``/``seeds``, ``width``, ``height``, ``frames``, ``fps``, ``steps``,
  ``guidance``, ``model``, ``image``) apply only here. LTX-2 needs sides that are multiples of 32 and
  8k+1 frames; a wrong value is an error naming the nearest valid ones, never silently rounded
  (a rounded request would render a different clip than the one reviewed).
* **file** — a pre-rendered clip (``file: path`` or ``file: {path, audio}``).
* **testcard** — a synthetic clip with known truth.

For file and testcard clips a ``prompt``/``prompts`` is optional (CLIP scoring uses it), and render
fields written *on the clip* are errors (they would silently do nothing); render fields inherited from
``defaults`` are simply not applied. The expected stream format of a file clip goes in
``expect.format``; a test card describes its own format.

Top-level keys starting with ``x-`` are ignored, a place to keep YAML anchors
(``x-looks: &looks {...}`` … ``expect: *looks``).

``defaults`` holds any clip field except ``id``; each clip gets them unless it sets the field itself.
Alternatives replace each other: a clip's ``prompts`` drops a default ``prompt``, ``seeds`` drops
``seed``, ``file`` drops ``testcard`` (and back). ``expect`` is merged per family: a clip's
``expect.motion`` replaces the default ``expect.motion`` whole, families it doesn't name are inherited;
``guidance`` is merged per knob the same way.

Models are strict about types (``width: "64"`` is an error, not 64) and about keys
(``extra="forbid"``): a misspelt key is an error with a "did you mean" hint, not an ignored setting.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from pytest_ltx.expect import Expectations
from pytest_ltx.render.encode import EncodeSettings
from pytest_ltx.spec.errors import describe_value
from pytest_ltx.spec.vars import VARS_JSON_SCHEMA, check_vars_shape

__all__ = [
    "SPEC_VERSION",
    "ClipDefaults",
    "ClipSpec",
    "FileSource",
    "Guidance",
    "SourceKind",
    "SpecFile",
    "json_schema",
    "nearest_frames",
    "nearest_multiple",
]

SPEC_VERSION: Final = 1

#: top-level keys starting with this are ignored: a place for YAML anchors (`x-common: &common {...}`).
EXTENSION_PREFIX = "x-"

#: LTX-2 latent grid: sides divisible by 32, frame counts 8k+1.
SIDE_STEP = 32
SIDE_MIN, SIDE_MAX = 32, 4096
FRAMES_MIN, FRAMES_MAX = 9, 1025
FPS_MAX = 120.0
STEPS_MIN, STEPS_MAX = 1, 500
SEED_MAX = 2**32 - 1

#: what a render clip gets for a render field nobody set (same as ``RenderRequest``'s defaults).
#: ``steps`` and ``recipe`` have none: unset, the model profile's recipe decides (reference step count).
RENDER_DEFAULTS: dict[str, Any] = {"width": 768, "height": 512, "frames": 121, "fps": 24.0}

#: fields that only mean something when the clip is rendered.
RENDER_ONLY: tuple[str, ...] = (
    "negative_prompt",
    "seed",
    "seeds",
    "width",
    "height",
    "frames",
    "fps",
    "steps",
    "recipe",
    "guidance",
    "model",
    "image",
    "encode",
)

#: mappings merged key by key with the defaults (an expectation family / a guidance knob is the unit).
MERGED_BY_KEY: tuple[str, ...] = ("expect", "guidance")

#: keys that replace each other when a clip is merged with the defaults.
ALTERNATIVES: tuple[frozenset[str], ...] = (
    frozenset({"prompt", "prompts"}),
    frozenset({"seed", "seeds"}),
    frozenset({"file", "testcard"}),
)

# \Z, not $: `$` also matches before a trailing newline ("robot\n" would pass)
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*\Z")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,47}\Z")
_MARK_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")

# The grid rules are checked by validators (for messages naming the nearest valid values); these
# only put them in the JSON Schema.
_Side = Annotated[
    int, Strict(), WithJsonSchema({"type": "integer", "multipleOf": SIDE_STEP, "minimum": SIDE_MIN, "maximum": SIDE_MAX})
]
_Frames = Annotated[int, Strict(), WithJsonSchema({"type": "integer", "minimum": FRAMES_MIN, "maximum": FRAMES_MAX})]

StrictInt = Annotated[int, Strict()]
StrictFloat = Annotated[float, Strict()]  # strict float still accepts an int (3 → 3.0), not a bool


def spec_error(msg: str, at: str | None = None, ref: tuple[Any, ...] | None = None) -> PydanticCustomError:
    """A validation error whose message is already the readable line.

    ``at`` names the key inside the current mapping the error is about (so the loader can point at its
    line); ``ref`` is another location the message refers to (the loader adds its line)."""
    ctx: dict[str, Any] = {"msg": msg}
    if at is not None:
        ctx["at"] = at
    if ref is not None:
        ctx["ref"] = list(ref)
    return PydanticCustomError("spec", "{msg}", ctx)


def nearest_multiple(v: int, step: int = SIDE_STEP, lo: int = SIDE_MIN, hi: int = SIDE_MAX) -> list[int]:
    """The valid values either side of ``v`` (one value when ``v`` is past an end)."""
    below = max(lo, min(hi, v // step * step))
    above = max(lo, min(hi, below + step if below < v else below))
    return sorted({below, above})


def nearest_frames(v: int) -> list[int]:
    """The 8k+1 frame counts either side of ``v``, within the supported range."""
    below = (v - 1) // 8 * 8 + 1
    above = below + 8
    cands = [c for c in (below, above) if FRAMES_MIN <= c <= FRAMES_MAX]
    if not cands:
        cands = [FRAMES_MIN if v < FRAMES_MIN else FRAMES_MAX]
    return cands


def _or(values: list[Any]) -> str:
    return " or ".join(str(v) for v in values)


class SourceKind(str, enum.Enum):
    """Where an item's clip comes from."""

    RENDER = "render"
    FILE = "file"
    TESTCARD = "testcard"


class SpecModel(BaseModel):
    """Strict, frozen base: unknown keys are errors; a loaded spec never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Guidance(SpecModel):
    """Guidance knobs handed to the pipeline. Unset ones keep the model profile's / pipeline's default."""

    scale: StrictFloat | None = Field(None, ge=0, description="classifier-free guidance scale (video)")
    audio_scale: StrictFloat | None = Field(None, ge=0, description="classifier-free guidance scale (audio)")
    stg_scale: StrictFloat | None = Field(None, ge=0, description="spatio-temporal guidance scale (video)")
    audio_stg_scale: StrictFloat | None = Field(None, ge=0, description="spatio-temporal guidance scale (audio)")
    stg_blocks: tuple[Annotated[int, Strict(), Field(ge=0)], ...] | None = Field(
        None, description="transformer blocks perturbed by spatio-temporal guidance"
    )
    modality_scale: StrictFloat | None = Field(None, ge=0, description="cross-modality guidance (video)")
    audio_modality_scale: StrictFloat | None = Field(None, ge=0, description="cross-modality guidance (audio)")
    rescale: StrictFloat | None = Field(None, ge=0, le=1, description="guidance rescale (video), 0..1")
    audio_rescale: StrictFloat | None = Field(None, ge=0, le=1, description="guidance rescale (audio), 0..1")

    def to_dict(self) -> dict[str, Any]:
        """Only the knobs that were set (what ``RenderRequest.guidance`` takes)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.model_dump(exclude_none=True).items()}


def _file_source_schema(schema: dict[str, Any]) -> None:
    # `file: clip.mp4` is shorthand for `file: {path: clip.mp4}`: say so in the JSON Schema.
    obj = dict(schema)
    schema.clear()
    schema["anyOf"] = [{"type": "string", "minLength": 1, "description": "path of the clip"}, obj]
    if "description" in obj:
        schema["description"] = obj["description"]


class FileSource(SpecModel):
    """A pre-rendered clip. Paths are relative to the spec file's folder. ``file: x.mp4`` is
    shorthand for ``file: {path: x.mp4}``."""

    model_config = ConfigDict(json_schema_extra=_file_source_schema)

    path: str = Field(..., min_length=1, description="the clip (mp4/mkv/webm/mov…), relative to the spec file")
    audio: str | None = Field(
        None, min_length=1, description="a separate audio file (wav/flac/…) to use instead of the clip's track"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"path": data}
        if not isinstance(data, (dict, FileSource)):
            raise spec_error(f"expected a path or a mapping {{path, audio}}, got {describe_value(data)}")
        return data


class NamedPrompt(SpecModel):
    """A ``prompts`` entry with an explicit name: ``{name: wide, prompt: "..."}``. The name is the item
    id part (``clip[wide,seed=0]``) instead of a label made from the prompt's words."""

    name: str = Field(..., description="names the item: a-z, 0-9, '.', '_', '-' (at most 48)")
    prompt: str = Field(..., min_length=1, description="the prompt (may hold {variables})")

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise spec_error(f"{v!r} is not a valid prompt name: use a-z, 0-9, '.', '_', '-' (at most 48)")
        return v

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise spec_error("is blank")
        return v


def _prompt_text(p: "str | NamedPrompt") -> str:
    return p.prompt if isinstance(p, NamedPrompt) else p


def _testcard_model() -> type[BaseModel]:
    """``pytest_ltx.testcard.TestCardSpec``, imported on first use: it pulls in numpy and the media
    module, and reading a spec without test cards (or ``pytest --help``) should not pay for that."""
    from pytest_ltx.testcard import TestCardSpec

    return TestCardSpec


class _ClipFields(SpecModel):
    """Every clip field except ``id`` (shared by ``defaults`` and each clip)."""

    description: str | None = Field(None, description="free text for the report")
    prompt: str | None = Field(None, min_length=1, description="the prompt to render (or to CLIP-score a file)")
    prompts: tuple[Annotated[str, Field(min_length=1)] | NamedPrompt, ...] | None = Field(
        None,
        description="prompt variants: one test item per prompt (instead of `prompt`), named by a short label "
        "of its words or an explicit `{name, prompt}`, never by position",
        json_schema_extra={"minItems": 1},
    )
    vars: Annotated[dict[str, Any], WithJsonSchema(VARS_JSON_SCHEMA)] | None = Field(
        None,
        description="template variables for {placeholders} in prompt/prompts/negative_prompt: lists multiply, "
        "`zip` pairs, `from` loads a prompt pack",
    )
    preset: str | None = Field(
        None,
        min_length=1,
        description="a named set of clip fields from specs/presets.yaml or [tool.pytest-ltx.presets] "
        "(below file defaults and the clip; --ltx-preset chooses it for a whole run); part of the item id",
    )
    negative_prompt: str | None = Field(None, description="render only: what the model should avoid")
    seed: Annotated[int, Strict(), Field(ge=0, le=SEED_MAX)] | None = Field(
        None, description="render only: one seed (instead of `seeds`)"
    )
    seeds: tuple[Annotated[int, Strict(), Field(ge=0, le=SEED_MAX)], ...] | None = Field(
        None, description="render only: one test item per seed; default [0]", json_schema_extra={"minItems": 1}
    )
    width: _Side | None = Field(
        None, description=f"render only: multiple of {SIDE_STEP}, {SIDE_MIN}..{SIDE_MAX}; default 768"
    )
    height: _Side | None = Field(
        None, description=f"render only: multiple of {SIDE_STEP}, {SIDE_MIN}..{SIDE_MAX}; default 512"
    )
    frames: _Frames | None = Field(
        None, description=f"render only: 8k+1 frames (9, 17, 25, … 121 …), up to {FRAMES_MAX}; default 121"
    )
    fps: StrictFloat | None = Field(None, gt=0, le=FPS_MAX, description="render only: (0, 120]; default 24")
    steps: StrictInt | None = Field(
        None, ge=STEPS_MIN, le=STEPS_MAX,
        description=f"render only: denoising steps of the base stage {STEPS_MIN}..{STEPS_MAX}; "
                    "default: the recipe's (reference count for the checkpoint's LTX-2 generation)",
    )
    recipe: Literal["dev", "distilled", "two-stage"] | None = Field(
        None,
        description="render only: render recipe (dev: reference steps and full guidance; distilled: fixed "
                    "8-sigma schedule, no guidance; two-stage: half-size base, latent upsampler, distilled "
                    "refinement); unset = the model profile's",
    )
    guidance: Guidance | None = Field(None, description="render only: guidance knobs")
    model: str | None = Field(
        None,
        min_length=1,
        description="render only: model profile name (e.g. `tiny`); unset = the run's --ltx-model",
    )
    image: str | None = Field(
        None, min_length=1, description="render only: conditioning image (image-to-video), relative to the spec file"
    )
    encode: EncodeSettings | None = Field(
        None, description="render only: how the render is encoded (crf, x264 preset, pixel format, faststart, "
        "keyframe interval, colour tags); the default passes `expect.export: {preset: web}`"
    )
    file: FileSource | None = Field(None, description="a pre-rendered clip instead of rendering")
    testcard: Any = Field(
        None,
        description="a synthetic test card (pytest_ltx.testcard.TestCardSpec) instead of rendering; "
        "it sets its own width/height/frames/fps/seed",
    )
    marks: tuple[str, ...] | None = Field(None, description="pytest marks applied to the clip's items, e.g. [slow]")
    expect: Expectations | None = Field(None, description="what the clip must satisfy, per metric family")

    @field_validator("testcard")
    @classmethod
    def _testcard(cls, v: Any) -> Any:
        if v is None:
            return v
        model = _testcard_model()
        if isinstance(v, model):
            return v
        if not isinstance(v, dict):
            raise PydanticCustomError("dict_type", "Input should be a valid dictionary")
        return model.model_validate(v)

    @field_validator("width", "height")
    @classmethod
    def _side(cls, v: int | None, info: Any) -> int | None:
        if v is None:
            return v
        if not SIDE_MIN <= v <= SIDE_MAX:
            raise spec_error(f"{v} is out of range {SIDE_MIN}..{SIDE_MAX}")
        if v % SIDE_STEP:
            raise spec_error(
                f"{v} is not a multiple of {SIDE_STEP} (nearest valid: {_or(nearest_multiple(v))})"
            )
        return v

    @field_validator("frames")
    @classmethod
    def _frames(cls, v: int | None) -> int | None:
        if v is None:
            return v
        if v < FRAMES_MIN or v > FRAMES_MAX:
            raise spec_error(
                f"{v} is out of range {FRAMES_MIN}..{FRAMES_MAX} (nearest valid: {_or(nearest_frames(v))})"
            )
        if (v - 1) % 8:
            raise spec_error(f"{v} is not 8k+1 (nearest valid: {_or(nearest_frames(v))})")
        return v

    @field_validator("prompt", "negative_prompt", "description")
    @classmethod
    def _not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise spec_error("is blank")
        return v

    @field_validator("prompts")
    @classmethod
    def _unique_prompts(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return v
        if not v:
            raise spec_error("is empty (leave it out, or give at least one prompt)")
        texts = [_prompt_text(p) for p in v]
        for i, p in enumerate(texts):
            if not p.strip():
                raise spec_error(f"prompts[{i}] is blank")
            if p in texts[:i]:
                raise spec_error(f"prompts[{i}] repeats prompts[{texts.index(p)}] ({p!r})")
        return v

    @field_validator("preset")
    @classmethod
    def _preset_name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME_RE.match(v):
            raise spec_error(f"{v!r} is not a preset name: use a-z, 0-9, '.', '_', '-'")
        return v

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is None:
            return v
        if not v:
            raise spec_error("is empty (leave it out for seed 0, or give at least one seed)")
        seen: set[int] = set()
        for s in v:
            if s in seen:
                raise spec_error(f"seed {s} is listed twice")
            seen.add(s)
        return v

    @field_validator("marks")
    @classmethod
    def _marks(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for m in v or ():
            if not _MARK_RE.match(m):
                raise spec_error(f"{m!r} is not a pytest mark name")
        return v


class ClipDefaults(_ClipFields):
    """``defaults:`` — any clip field except ``id``, applied to every clip that doesn't set it."""


class ClipSpec(_ClipFields):
    """One clip: an ``id``, exactly one source (``prompt``/``prompts`` to render, a pre-rendered ``file``,
    or a ``testcard``) and what it must satisfy (``expect``). Render fields (size, frames, fps, steps,
    seeds, guidance, model, image, negative prompt) apply to rendered clips only."""

    # After validation a rendered clip has every render field filled (RENDER_DEFAULTS for the unset
    # ones) and ``expect`` is never None; for file and testcard clips the render fields stay None.

    id: str = Field(
        ...,
        min_length=1,
        max_length=128,
        description="slug [a-z0-9][a-z0-9._-]*, unique in the file; names the test items and baselines",
    )

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _ID_RE.match(v):
            slug = re.sub(r"[^a-z0-9._-]+", "-", v.lower()).strip("-._") or "clip"
            raise spec_error(f"{v!r} is not a valid id: use a-z, 0-9, '.', '_', '-' (e.g. {slug!r})")
        return v

    @model_validator(mode="wrap")
    @classmethod
    def _whole_clip(cls, data: Any, handler: Any) -> "ClipSpec":
        # Cross-field problems are found on the raw mapping so they are reported together with
        # the field errors (an "after" validator would only run once every field is valid).
        extra = _cross_field_errors(data) if isinstance(data, dict) else []
        try:
            clip = handler(data)
        except ValidationError as e:
            raise ValidationError.from_exception_data(cls.__name__, extra + _reraise(e)) from None
        if extra:
            raise ValidationError.from_exception_data(cls.__name__, extra)
        fill: dict[str, Any] = {}
        if clip.source_kind is SourceKind.RENDER:
            fill = {k: v for k, v in RENDER_DEFAULTS.items() if getattr(clip, k) is None}
        if clip.expect is None:
            fill["expect"] = Expectations()
        return clip.model_copy(update=fill) if fill else clip

    @property
    def source_kind(self) -> SourceKind:
        if self.file is not None:
            return SourceKind.FILE
        if self.testcard is not None:
            return SourceKind.TESTCARD
        return SourceKind.RENDER

    @property
    def prompt_variants(self) -> tuple[str | None, ...]:
        """The prompt texts (templates) items are made for (``(None,)`` for a file/testcard clip without
        a prompt)."""
        if self.prompts is not None:
            return tuple(_prompt_text(p) for p in self.prompts)
        return (self.prompt,)

    @property
    def prompt_entries(self) -> tuple[tuple[str | None, str], ...]:
        """``prompts`` as (explicit name or None, text) pairs."""
        return tuple((p.name, p.prompt) if isinstance(p, NamedPrompt) else (None, p) for p in self.prompts or ())

    @property
    def seed_list(self) -> tuple[int | None, ...]:
        """The seeds items are made for: ``(None,)`` unless the clip is rendered."""
        if self.source_kind is not SourceKind.RENDER:
            return (None,)
        if self.seeds is not None:
            return self.seeds
        if self.seed is not None:
            return (self.seed,)
        return (0,)

    @property
    def expectations(self) -> Expectations:
        """``expect`` (always set on a validated clip; an unset one is ``Expectations()``)."""
        return self.expect if self.expect is not None else Expectations()


def _reraise(e: ValidationError) -> list[InitErrorDetails]:
    """The line errors of ``e`` in a form ``ValidationError.from_exception_data`` takes back."""
    out: list[InitErrorDetails] = []
    for d in e.errors(include_url=False):
        ctx = d.get("ctx")
        if ctx is not None:
            ctx = {k: (v if isinstance(v, (str, int, float, bool, list, type(None))) else str(v)) for k, v in ctx.items()}
        msg = d["msg"].replace("{", "{{").replace("}", "}}")
        out.append(
            InitErrorDetails(type=PydanticCustomError(d["type"], msg, ctx), loc=tuple(d["loc"]), input=d["input"])
        )
    return out


def _cross_field_errors(data: dict[str, Any]) -> list[InitErrorDetails]:
    errs: list[InitErrorDetails] = []

    def add(msg: str, at: str | None = None) -> None:
        errs.append(InitErrorDetails(type=spec_error(msg, at=at), loc=(), input=data))

    has = {k for k, v in data.items() if v is not None}
    if isinstance(data.get("vars"), dict):
        for sub, msg in check_vars_shape(data["vars"]):
            errs.append(InitErrorDetails(type=spec_error(msg), loc=("vars",) + sub, input=data["vars"]))
    if {"prompt", "prompts"} <= has:
        add("give either 'prompt' or 'prompts', not both", at="prompts")
    if {"seed", "seeds"} <= has:
        add("give either 'seed' or 'seeds', not both", at="seeds")
    if {"file", "testcard"} <= has:
        add("give either 'file' or 'testcard', not both (a clip has one source)", at="testcard")
    source = "file" if "file" in has else "testcard" if "testcard" in has else None
    if source is None and not has & {"prompt", "prompts"}:
        add(
            "no source: give 'prompt' (or 'prompts') to render, 'file' for a pre-rendered clip, "
            "or 'testcard' for a synthetic one"
        )
    if source is not None:
        for k in RENDER_ONLY:
            if k in has:
                add(f"applies only to rendered clips; this clip's source is '{source}'", at=k)
    return errs


def merge_defaults(defaults: dict[str, Any], clip: dict[str, Any]) -> dict[str, Any]:
    """``clip`` with the defaults it doesn't override (see the module docstring for the rules).

    Works on raw mappings, before validation, so errors still point at what the user wrote."""
    out: dict[str, Any] = {}
    dropped: set[str] = set()
    for group in ALTERNATIVES:
        if group & clip.keys():
            dropped |= group - clip.keys()
    for k, v in defaults.items():
        if k not in dropped and k not in clip:
            out[k] = v
    for k, v in clip.items():
        if k in MERGED_BY_KEY and isinstance(v, dict) and isinstance(defaults.get(k), dict):
            out[k] = {**defaults[k], **v}
        else:
            out[k] = v
    if out.get("file") is not None or out.get("testcard") is not None:
        for k in RENDER_ONLY:
            if k in out and k not in clip:
                del out[k]
    return out


class SpecFile(SpecModel):
    """A clip-spec file: optional ``version`` and ``defaults``, and at least one clip.

    ``clips`` are stored with the defaults already merged in. A loaded file also knows where it came
    from (``path``) and the line of every key (``line_of``), for items and error messages."""

    version: Literal[1] = Field(SPEC_VERSION, description="format version; this release reads 1")
    defaults: ClipDefaults | None = Field(None, description="clip fields applied to every clip that doesn't set them")
    clips: tuple[ClipSpec, ...] = Field(
        ...,
        description="the clips; each becomes one or more test items",
        json_schema_extra={"minItems": 1},
    )

    _path: Path | None = PrivateAttr(None)
    _lines: dict[tuple[Any, ...], int] = PrivateAttr(default_factory=dict)
    #: per clip: where each effective field came from (clip, file defaults, preset, option)
    _origins: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    #: per clip: its (prompt, vars) variants, planned at load time (prompt packs are read then)
    _variants: dict[int, list[Any]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _merge(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith(EXTENSION_PREFIX))}
        defaults = data.get("defaults")
        clips = data.get("clips")
        if isinstance(defaults, dict) and isinstance(clips, list):
            data = {**data, "clips": [merge_defaults(defaults, c) if isinstance(c, dict) else c for c in clips]}
        return data

    @model_validator(mode="wrap")
    @classmethod
    def _whole_file(cls, data: Any, handler: Any) -> "SpecFile":
        # (min_length on `clips` would also fire, wrongly, whenever any clip is invalid)
        extra: list[InitErrorDetails] = []
        clips = data.get("clips") if isinstance(data, dict) else None
        no_clips = isinstance(data, dict) and "clips" in data and (clips is None or clips == [])
        if no_clips:
            extra.append(
                InitErrorDetails(type=spec_error("is empty: a spec needs at least one clip"), loc=("clips",), input=clips)
            )
        if isinstance(clips, list):
            first: dict[str, int] = {}
            for i, c in enumerate(clips):
                cid = c.get("id") if isinstance(c, dict) else None
                if not isinstance(cid, str):
                    continue
                if cid in first:
                    err = spec_error(
                        f"duplicate id {cid!r} (first used by clips[{first[cid]}])", ref=("clips", first[cid], "id")
                    )
                    extra.append(InitErrorDetails(type=err, loc=("clips", i, "id"), input=cid))
                else:
                    first[cid] = i
        try:
            spec = handler(data)
        except ValidationError as e:
            errs = [d for d in _reraise(e) if not (no_clips and d["loc"] == ("clips",))]
            raise ValidationError.from_exception_data(cls.__name__, errs + extra) from None
        if extra:
            raise ValidationError.from_exception_data(cls.__name__, extra)
        return spec

    @property
    def path(self) -> Path | None:
        """The file this spec was loaded from (absolute), ``None`` when built in Python."""
        return self._path

    @property
    def directory(self) -> Path:
        """Where relative paths (``image``, ``file``) are resolved: the spec file's folder, else the cwd."""
        return self._path.parent if self._path is not None else Path.cwd()

    def line_of(self, *loc: Any) -> int | None:
        """The 1-based line of a key or list item (``line_of("clips", 2, "frames")``); falls back to the
        nearest enclosing mapping or list item, ``None`` for a spec that wasn't read from a file."""
        loc_t = tuple(loc)
        while loc_t:
            if loc_t in self._lines:
                return self._lines[loc_t]
            loc_t = loc_t[:-1]
        return self._lines.get(())

    def clip(self, clip_id: str) -> ClipSpec:
        for c in self.clips:
            if c.id == clip_id:
                return c
        raise KeyError(clip_id)

    def _attach(self, path: Path | None, lines: dict[tuple[Any, ...], int],
                origins: list[dict[str, Any]] | None = None) -> "SpecFile":
        self._path = path
        self._lines = dict(lines)
        self._origins = list(origins or [])
        return self

    def _plan(self, root: Path | None, where: Any = None, shown: Path | None = None) -> list[Any]:
        """Plan every clip's variants (templates × vars × prompt packs); returns the errors."""
        from pytest_ltx.spec.vars import plan_variants

        errors: list[Any] = []
        for i, clip in enumerate(self.clips):

            def at(loc: tuple[Any, ...], i: int = i) -> tuple[int | None, str]:
                full = ("clips", i) + loc
                if where is not None:
                    return where(full)
                from pytest_ltx.spec.presets import format_field

                return self.line_of(*full), format_field(full)

            variants, errs = plan_variants(clip, spec_path=shown if shown is not None else self._path,
                                           base_dir=self.directory, root=root, where=at)
            errors += errs
            self._variants[i] = variants
        return errors

    def variants(self, index: int) -> list[Any]:
        """The planned variants of ``clips[index]`` (planned now for a spec built in Python)."""
        if index not in self._variants:
            from pytest_ltx.spec.errors import SpecFileError

            errs = self._plan(None)
            if errs:
                raise SpecFileError(self._path, errs)
        return self._variants[index]

    def origins(self, index: int) -> dict[str, Any]:
        return self._origins[index] if index < len(self._origins) else {}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a spec file (what ``pytest-ltx schema`` prints), for editors and linters.

    Cross-field rules (one source per clip, prompt vs prompts, LTX grid sizes) are enforced by the
    loader; the schema carries them in descriptions."""
    schema = SpecFile.model_json_schema(mode="validation")
    # `testcard` is typed Any so that importing the spec doesn't import numpy; put its real schema in.
    tc = _testcard_model().model_json_schema(mode="validation", ref_template="#/$defs/{model}")
    defs = schema.setdefault("$defs", {})
    defs.update(tc.pop("$defs", {}))
    defs["TestCardSpec"] = tc
    ref = {"anyOf": [{"$ref": "#/$defs/TestCardSpec"}, {"type": "null"}], "default": None}
    for name in ("ClipDefaults", "ClipSpec"):
        prop = defs[name]["properties"]["testcard"]
        prop.update(ref)
    schema["title"] = "pytest-ltx clip spec"
    schema["description"] = (
        "A pytest-ltx clip-spec file: optional `version` and `defaults`, and the `clips` to render (or read) "
        "and check. Each clip becomes one test item per prompt variant and seed."
    )
    schema["patternProperties"] = {f"^{EXTENSION_PREFIX}": {"description": "ignored: a place for YAML anchors"}}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
