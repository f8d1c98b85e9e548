"""Presets: named sets of clip fields kept in one project-level place, and where each field came from.

Presets live in ``<specs dir>/presets.yaml`` (a ``presets:`` mapping) or in ``pyproject.toml`` as
``[tool.pytest-ltx.presets.<name>]``. A preset holds any clip field except the clip's source and
identity (``prompt``/``prompts``/``vars``/``file``/``testcard``/``image``/``preset``), plus
``description`` (its own) and ``models: {<profile>: {...}}``, refinements applied when the clip renders
with that model profile (``draft`` on the tiny model is smaller than ``draft`` on LTX-2)::

    presets:
      draft:
        description: cheap PR gate
        steps: 8
        frames: 49
        models:
          tiny: {width: 32, height: 32, frames: 9, steps: 1}

A clip uses one with ``preset: draft`` (on the clip or in the file's ``defaults``); ``--ltx-preset NAME``
(ini ``ltx_preset``) chooses it for every clip of a run. Precedence, lowest first: built-in default <
preset < file ``defaults`` < the clip < command-line options (``--ltx-model``). A rendered item's preset
is part of its id (``hero[seed=0,preset=draft]``), so draft and full baselines live side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from pydantic import ValidationError

from pytest_ltx.spec.errors import SpecError, describe_value

__all__ = ["Origin", "Preset", "Presets", "Project", "apply_presets", "discover_project", "load_presets",
           "presets_json_schema",
           "PRESET_FILES"]

PRESET_FILES = ("presets.yaml", "presets.yml")
#: clip keys a preset may not set: the clip's source and identity
NOT_IN_PRESET = frozenset({"id", "prompt", "prompts", "vars", "file", "testcard", "image", "preset"})


@dataclass(frozen=True)
class Origin:
    """Where an effective field value came from: ``kind`` is one of clip, defaults, preset, option,
    built-in; ``where`` says exactly (``specs/x.yaml:12``, ``preset draft (specs/presets.yaml:9)``)."""

    kind: str
    where: str = ""

    def __str__(self) -> str:
        if self.kind == "preset" and self.where.startswith("preset "):
            return self.where  # "preset draft (specs/presets.yaml:9)"
        label = {"clip": "clip", "defaults": "file defaults", "preset": "preset", "option": "option",
                 "built-in": "built-in default", "vars": "vars"}.get(self.kind, self.kind)
        return f"{label} ({self.where})" if self.where else label

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "where": self.where}


@dataclass(frozen=True)
class Preset:
    name: str
    fields: Mapping[str, Any]
    models: Mapping[str, Mapping[str, Any]]
    description: str | None
    #: where it is defined (``specs/presets.yaml:5`` or ``pyproject.toml``)
    where: str
    #: per field (and ``models.<m>.<field>``): line in the presets file, when known
    lines: Mapping[str, int] = field(default_factory=dict)

    def for_model(self, model: str | None) -> tuple[dict[str, Any], dict[str, str]]:
        """The preset's fields for a clip rendered by ``model``, and where each came from."""
        out = dict(self.fields)
        src = {k: self._at(k) for k in out}
        over = self.models.get(model or "", {})
        for k, v in over.items():
            if k in ("expect", "guidance") and isinstance(out.get(k), dict) and isinstance(v, dict):
                out[k] = {**out[k], **v}
            else:
                out[k] = v
            src[k] = self._at(f"models.{model}.{k}")
        return out, src

    def _at(self, key: str) -> str:
        line = self.lines.get(key)
        base = self.where.split(":")[0] if line is not None else self.where
        return f"preset {self.name} ({base}:{line})" if line is not None else f"preset {self.name} ({base})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "fields": dict(self.fields),
                "models": {k: dict(v) for k, v in self.models.items()}, "where": self.where}


@dataclass(frozen=True)
class Presets:
    """Every preset of a project, and the problems found reading them."""

    presets: Mapping[str, Preset] = field(default_factory=dict)
    errors: tuple[SpecError, ...] = ()
    sources: tuple[str, ...] = ()

    def names(self) -> list[str]:
        return sorted(self.presets)


@dataclass(frozen=True)
class Project:
    """What a spec file is resolved against besides itself: the project root (prompt packs are confined
    to it), its presets, and the run's options (``--ltx-preset``, ``--ltx-model``)."""

    root: Path | None = None
    presets: Presets = field(default_factory=Presets)
    run_preset: str | None = None
    run_model: str | None = None


def discover_project(spec_path: Path) -> Project:
    """The project of a spec file read outside pytest: the nearest folder above it with a pyproject.toml
    (or pytest.ini), else its own folder; presets from the spec's folder and ``specs/`` there."""
    d = Path(spec_path).resolve().parent
    root = next((p for p in (d, *d.parents) if (p / "pyproject.toml").is_file() or (p / "pytest.ini").is_file()), d)
    dirs = [d.relative_to(root).as_posix() or "."]
    if "specs" not in dirs:
        dirs.append("specs")
    return Project(root=root, presets=load_presets(root, dirs))


def load_presets(root: Path, spec_dirs: Sequence[str] = ("specs",)) -> Presets:
    """Presets from ``<spec dir>/presets.yaml`` for each spec dir, and ``[tool.pytest-ltx.presets]``."""
    from pytest_ltx.spec.loader import parse_yaml

    found: dict[str, Preset] = {}
    errors: list[SpecError] = []
    sources: list[str] = []

    def add(name: Any, raw: Any, where_file: Path, shown: str, lines: Mapping[tuple[Any, ...], int],
            prefix: tuple[Any, ...]) -> None:
        line = lines.get(prefix + (name,))
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "._-" for c in name) \
                or name != name.lower():
            errors.append(SpecError(where_file, line, f"presets.{name}",
                                    "a preset name is lower-case a-z, 0-9, '.', '_', '-'"))
            return
        if name in found:
            errors.append(SpecError(where_file, line, f"presets.{name}", f"preset {name!r} is also defined in {found[name].where}"))
            return
        p, errs = _parse_preset(name, raw, where_file, f"{shown}:{line}" if line else shown, lines, prefix + (name,))
        errors.extend(errs)
        if p is not None:
            found[name] = p

    seen_files: set[Path] = set()
    for d in spec_dirs:
        for fname in PRESET_FILES:
            f = Path(root) / d / fname
            if not f.is_file() or f.resolve() in seen_files:
                continue
            seen_files.add(f.resolve())
            shown = _rel(f, root)
            sources.append(shown)
            try:
                text = f.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as e:
                errors.append(SpecError(Path(shown), None, "", f"cannot read: {e}"))
                continue
            if len(text) > 1_000_000:
                errors.append(SpecError(Path(shown), None, "", "presets file larger than 1 MB; not a presets file"))
                continue
            data, lines, errs = parse_yaml(text, Path(shown))
            errors.extend(errs)
            if data is None and errs:
                continue
            if not isinstance(data, dict) or set(data) - {"presets"} or not isinstance(data.get("presets"), dict):
                extra = sorted(set(data) - {"presets"}) if isinstance(data, dict) else []
                errors.append(SpecError(Path(shown), 1, "", "expected a mapping `presets: {NAME: {clip fields}}`"
                                        + (f" (unknown key {extra[0]!r})" if extra else "")))
                continue
            for name, raw in data["presets"].items():
                add(name, raw, Path(shown), shown, lines, ("presets",))
    try:
        from pytest_ltx.models import load_tool_config

        table = load_tool_config(Path(root)).get("presets")
    except Exception as e:  # an unreadable pyproject is reported where the profiles are
        table = None
        errors.append(SpecError(Path("pyproject.toml"), None, "tool.pytest-ltx.presets", str(e)))
    if table is not None:
        sources.append("pyproject.toml")
        if not isinstance(table, dict):
            errors.append(SpecError(Path("pyproject.toml"), None, "tool.pytest-ltx.presets", "must be a table of presets"))
        else:
            for name, raw in table.items():
                add(name, raw, Path("pyproject.toml"), "pyproject.toml [tool.pytest-ltx.presets]", {}, ())
    return Presets(found, tuple(errors), tuple(sources))


def _rel(p: Path, root: Path) -> str:
    try:
        return p.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(p)


def _parse_preset(name: str, raw: Any, path: Path, where: str, lines: Mapping[tuple[Any, ...], int],
                  loc: tuple[Any, ...]) -> tuple[Preset | None, list[SpecError]]:
    errors: list[SpecError] = []
    field_name = ".".join(str(x) for x in loc) or f"presets.{name}"
    if not field_name.startswith("presets"):
        field_name = f"presets.{name}"
    if not isinstance(raw, dict):
        return None, [SpecError(path, lines.get(loc), field_name, f"expected a mapping of clip fields, got {describe_value(raw)}")]
    raw = dict(raw)
    description = raw.pop("description", None)
    models = raw.pop("models", None) or {}
    if description is not None and not isinstance(description, str):
        errors.append(SpecError(path, lines.get(loc + ("description",)), f"{field_name}.description", "expected a string"))
    if not isinstance(models, dict):
        errors.append(SpecError(path, lines.get(loc + ("models",)), f"{field_name}.models",
                                "expected a mapping {profile: {clip fields}}"))
        models = {}
    field_lines: dict[str, int] = {}
    fields_ = _check_fields(raw, path, lines, loc, field_name, errors)
    for k in fields_:
        if loc + (k,) in lines:
            field_lines[k] = lines[loc + (k,)]
    per_model: dict[str, dict[str, Any]] = {}
    for m, mraw in models.items():
        mloc = loc + ("models", m)
        if not isinstance(mraw, dict):
            errors.append(SpecError(path, lines.get(mloc), f"{field_name}.models.{m}", "expected a mapping of clip fields"))
            continue
        per_model[str(m)] = _check_fields(dict(mraw), path, lines, mloc, f"{field_name}.models.{m}", errors)
        for k in per_model[str(m)]:
            if mloc + (k,) in lines:
                field_lines[f"models.{m}.{k}"] = lines[mloc + (k,)]
    if errors:
        return None, errors
    return Preset(name, fields_, per_model, description, where, field_lines), []


def _check_fields(raw: dict[str, Any], path: Path, lines: Mapping[tuple[Any, ...], int], loc: tuple[Any, ...],
                  field_name: str, errors: list[SpecError]) -> dict[str, Any]:
    """Validate preset fields as clip ``defaults`` (same types, ranges and "did you mean")."""
    from pytest_ltx.spec.loader import _to_spec_error
    from pytest_ltx.spec.schema import ClipDefaults

    for k in sorted(set(raw) & NOT_IN_PRESET):
        errors.append(SpecError(path, lines.get(loc + (k,)), f"{field_name}.{k}",
                                f"a preset cannot set {k!r} (presets hold settings and expectations; "
                                "a clip's source and identity stay in the spec)"))
        raw.pop(k)
    try:
        ClipDefaults.model_validate(raw)
    except ValidationError as e:
        shifted = {("defaults",) + k[len(loc):]: v for k, v in lines.items() if k[: len(loc)] == loc}
        for d in e.errors(include_url=False):
            err = _to_spec_error({**d, "loc": ("defaults",) + tuple(d["loc"])}, shifted, path)
            fld = field_name + err.field[len("defaults"):]
            errors.append(SpecError(path, err.line if err.line != shifted.get((), None) else lines.get(loc), fld, err.message))
        return {}
    return raw


# --- applying presets to a spec file's raw data ---------------------------------------------------


def apply_presets(
    data: dict[str, Any],
    lines: Mapping[tuple[Any, ...], int],
    path: Path | None,
    project: Project | None,
) -> tuple[dict[str, Any], list[dict[str, Origin]], list[SpecError]]:
    """Merge each clip with the file defaults and its preset (raw mappings, before validation), and
    record where every field came from. Returns (data, origins per clip, errors)."""
    from pytest_ltx.spec.schema import MERGED_BY_KEY, merge_defaults

    project = project or Project()
    errors: list[SpecError] = []
    clips = data.get("clips")
    raw_defaults = data.get("defaults")
    defaults: dict[str, Any] = raw_defaults if isinstance(raw_defaults, dict) else {}
    if not isinstance(clips, list):
        return data, [], errors
    shown = "" if path is None else _rel(Path(path), project.root) if project.root else str(path)

    def at(loc: tuple[Any, ...]) -> str:
        line = lines.get(loc)
        return f"{shown}:{line}" if line is not None else shown

    origins: list[dict[str, Origin]] = []
    out_clips: list[Any] = []
    preset_errors_reported = False
    for i, clip in enumerate(clips):
        if not isinstance(clip, dict):
            out_clips.append(clip)
            origins.append({})
            continue
        merged = merge_defaults(defaults, clip)
        org: dict[str, Origin] = {}
        for k, v in merged.items():
            src = ("clip", ("clips", i, k)) if k in clip else ("defaults", ("defaults", k))
            org[k] = Origin(src[0], at(src[1]))
            if k in MERGED_BY_KEY and isinstance(v, dict):
                for sub in v:
                    own = isinstance(clip.get(k), dict) and sub in clip[k]
                    sl = ("clips", i, k, sub) if own else ("defaults", k, sub)
                    org[f"{k}.{sub}"] = Origin("clip" if own else "defaults", at(sl))
        name = merged.get("preset")
        if project.run_preset is not None:
            name = project.run_preset
            org["preset"] = Origin("option", "--ltx-preset")
        if name is None:
            out_clips.append(merged)
            origins.append(org)
            continue
        if not isinstance(name, str):
            out_clips.append(merged)  # the schema reports the type
            origins.append(org)
            continue
        loc = ("clips", i, "preset") if "preset" in clip else ("defaults", "preset")
        preset = project.presets.presets.get(name)
        if preset is None:
            if project.presets.errors and not preset_errors_reported:
                errors.extend(project.presets.errors)
                preset_errors_reported = True
            if project.run_preset is None:
                known = ", ".join(project.presets.names()) or "none defined"
                errors.append(SpecError(path, lines.get(loc), format_field(loc),
                                        f"unknown preset {name!r} (known: {known}); define it in specs/presets.yaml "
                                        "or [tool.pytest-ltx.presets]"))
            out_clips.append(merged)
            origins.append(org)
            continue
        model = project.run_model or merged.get("model") or preset.fields.get("model")
        pfields, psrc = preset.for_model(model if isinstance(model, str) else None)
        full = merge_defaults(pfields, merged)
        for k, v in full.items():
            if k not in merged:
                org[k] = Origin("preset", psrc[k])
            if k in MERGED_BY_KEY and isinstance(v, dict):
                for sub in v:
                    if f"{k}.{sub}" not in org:
                        org[f"{k}.{sub}"] = Origin("preset", psrc.get(k, f"preset {name}"))
        full["preset"] = name
        out_clips.append(full)
        origins.append(org)
    return {**data, "clips": out_clips}, origins, errors


def format_field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def presets_json_schema() -> dict[str, Any]:
    """The JSON Schema of a ``presets.yaml`` (``pytest-ltx schema --presets``): clip fields minus the
    source and identity, plus ``description`` and per-model ``models``."""
    from pytest_ltx.spec.schema import json_schema

    spec = json_schema()
    defs = spec["$defs"]
    fields = {k: v for k, v in defs["ClipDefaults"]["properties"].items() if k not in NOT_IN_PRESET}
    fields["description"] = {"type": "string", "description": "what the preset is for (not applied to clips)"}
    per_model = {"type": "object", "properties": {k: v for k, v in fields.items() if k != "description"},
                 "additionalProperties": False}
    preset = {"type": "object", "additionalProperties": False,
              "properties": {**fields, "models": {"type": "object", "additionalProperties": per_model,
                                                  "description": "refinements applied when the clip renders "
                                                                 "with that model profile"}}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "pytest-ltx presets",
        "description": "Named sets of clip fields (specs/presets.yaml); a clip picks one with `preset: NAME`, "
                       "a run with --ltx-preset NAME.",
        "type": "object",
        "properties": {"presets": {"type": "object", "propertyNames": {"pattern": "^[a-z0-9][a-z0-9._-]*$"},
                                   "additionalProperties": preset}},
        "required": ["presets"],
        "additionalProperties": False,
        "$defs": defs,
    }
