"""Read a clip-spec YAML file into a validated :class:`SpecFile`, or fail with every problem at once.

YAML is read as safely as ``yaml.safe_load`` (no Python tags, nothing executed) by a ``SafeLoader``
subclass that also remembers the line of every mapping key and list item, so that each validation
error — ours or pydantic's — becomes one line ``file:line: field: what is wrong``.
"""

from __future__ import annotations

import datetime
import difflib
import re
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from pytest_ltx.expect import Expectations
from pytest_ltx.spec.errors import SpecError, SpecFileError, describe_value
from pytest_ltx.spec.presets import Project, apply_presets
from pytest_ltx.spec.schema import MERGED_BY_KEY, ClipDefaults, SpecFile, _testcard_model

if typing.TYPE_CHECKING:
    from pytest_ltx.confine import PathPolicy

__all__ = ["load_spec_file", "load_spec_text", "parse_yaml", "format_loc"]

Loc = tuple[Any, ...]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _LineLoader(yaml.SafeLoader):
    """``SafeLoader`` that builds plain data itself, recording ``lines[loc] = 1-based line`` for every
    mapping key and list item, and collecting (not raising) duplicate keys, non-string keys and
    unsupported tags so one run reports them all."""

    def __init__(self, stream: str, node_budget: int) -> None:
        super().__init__(stream)
        self.lines: dict[Loc, int] = {}
        self.problems: list[tuple[int, Loc, str]] = []
        self.node_budget = node_budget
        self._budget = node_budget
        self._open: set[int] = set()  # collection nodes being built (an alias to one is a cycle)

    def _spend(self, node: yaml.Node, n: int = 1) -> None:
        """Every node built, every alias followed and every key a ``<<`` merge copies costs budget, so
        nested aliases and merges (a "billion laughs" bomb) stop at the limit instead of hanging."""
        self._budget -= n
        if self._budget < 0:
            raise _TooBig(node.start_mark.line + 1)

    def build(self, node: yaml.Node, loc: Loc = ()) -> Any:
        self._spend(node)
        if id(node) in self._open:
            self._problem(node, loc, "recursive alias (an anchor used inside itself)")
            return None
        self._open.add(id(node))
        try:
            return self._build(node, loc)
        finally:
            self._open.discard(id(node))

    def _build(self, node: yaml.Node, loc: Loc) -> Any:
        if isinstance(node, yaml.ScalarNode):
            try:
                return self.construct_object(node)
            except yaml.constructor.ConstructorError:
                self._problem(node, loc, _bad_tag(node))
                return node.value
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                self._problem(node, loc, _bad_tag(node))
            out = []
            for i, item in enumerate(node.value):
                self.lines[loc + (i,)] = item.start_mark.line + 1
                out.append(self.build(item, loc + (i,)))
            return out
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                self._problem(node, loc, _bad_tag(node))
            return self._build_mapping(node, loc)
        raise AssertionError(f"unexpected YAML node {node!r}")  # pragma: no cover

    def _build_mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        merged: dict[str, Any] = {}  # from `<<: *anchor`, overridden by the mapping's own keys
        own: dict[str, Any] = {}
        # merge keys first, so the mapping's own keys (and their lines) win wherever `<<` stands
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for src in reversed(sources):
                    if not isinstance(src, yaml.MappingNode):
                        self._problem(key_node, loc, "'<<' merges only mappings")
                        continue
                    if id(src) in self._open:
                        self._problem(key_node, loc, "recursive merge (an anchor merged into itself)")
                        continue
                    self._spend(src)
                    self._open.add(id(src))
                    try:
                        part = self._build_mapping(src, loc)
                    finally:
                        self._open.discard(id(src))
                    self._spend(src, len(part))
                    merged.update(part)
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.build(key_node, loc) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "a collection"
                self._problem(
                    key_node, loc, f"key {shown!r} is not a string (YAML reads it as {key!r}); quote it"
                )
                continue
            line = key_node.start_mark.line + 1
            if key in own:
                first = self.lines.get(loc + (key,))
                self._problem(key_node, loc + (key,), f"duplicate key (first at line {first})")
                continue
            self.lines[loc + (key,)] = line
            own[key] = self.build(value_node, loc + (key,))
        return {**merged, **own}

    def _problem(self, node: yaml.Node, loc: Loc, msg: str) -> None:
        self.problems.append((node.start_mark.line + 1, loc, msg))


def _bad_tag(node: yaml.Node) -> str:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    return f"unsupported YAML tag {tag!r} (spec files are plain YAML)"


class _TooBig(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def _budget_hint(name: str) -> str:
    from pytest_ltx.limits import raise_hint

    return raise_hint(name)


def format_loc(loc: Iterable[Any]) -> str:
    """``("clips", 2, "frames")`` → ``clips[2].frames``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def parse_yaml(
    text: str, path: Path | None = None, *, node_budget: int | None = None
) -> tuple[Any, dict[Loc, int], list[SpecError]]:
    """Plain data, the line of every key/item, and the YAML-level problems (syntax errors are fatal:
    then the data is ``None``). ``node_budget`` (default: the ``yaml_nodes`` limit) bounds the nodes
    built, counting alias and merge expansions."""
    from pytest_ltx.limits import current

    budget = node_budget if node_budget is not None else current().yaml_nodes
    loader: _LineLoader | None = None
    try:
        loader = _LineLoader(text, budget)  # the reader checks every character here (control bytes…)
        node = loader.get_single_node()
        if node is None:
            return None, {}, []
        loader.lines[()] = node.start_mark.line + 1
        data = loader.build(node)
    except yaml.MarkedYAMLError as e:
        return None, {}, [_yaml_error(e, path)]
    except _TooBig as e:
        return None, {}, [SpecError(
            path, e.line, "",
            f"YAML expands to more than {budget} nodes (aliases / '<<' merges nested into a bomb?); "
            f"not read further; {_budget_hint('yaml_nodes')}")]
    except RecursionError:
        return None, {}, [SpecError(path, _deepest_line(text), "", "YAML nested too deeply; not a spec")]
    except yaml.YAMLError as e:  # reader errors (bad bytes) carry a character position, not a mark
        pos = getattr(e, "position", None)
        line = text[:pos].count("\n") + 1 if isinstance(pos, int) else 1
        reason = getattr(e, "reason", None)
        char = getattr(e, "character", None)
        msg = f"{reason} {char!r}" if reason and char is not None else _one_line(str(e))
        return None, {}, [SpecError(path, line, "", f"invalid YAML: {msg}")]
    finally:
        if loader is not None:
            loader.dispose()
    errors = [SpecError(path, line, format_loc(loc), msg) for line, loc, msg in loader.problems]
    return data, loader.lines, errors


def _deepest_line(text: str) -> int:
    """The line where brackets nest deepest (where a too-deep document is too deep), 1 if none."""
    depth = best = 0
    line = best_line = 1
    for ch in text:
        if ch == "\n":
            line += 1
        elif ch in "[{":
            depth += 1
            if depth > best:
                best, best_line = depth, line
        elif ch in "]}":
            depth = max(0, depth - 1)
    return best_line


def _yaml_error(e: yaml.MarkedYAMLError, path: Path | None) -> SpecError:
    mark = e.problem_mark or e.context_mark
    line = 1 if mark is None else mark.line + 1
    msg = e.problem or "syntax error"
    if e.context and msg.startswith("but "):
        msg = f"{e.context}, {msg}"
    elif e.context:
        ctx_line = f" at line {e.context_mark.line + 1}" if e.context_mark is not None else ""
        msg = f"{msg} ({e.context}{ctx_line})"
    return SpecError(path, line, "", f"invalid YAML: {_one_line(msg)}")


def _one_line(s: str) -> str:
    return re.sub(r"\s*\n\s*", " ", s).strip()


def load_spec_text(
    text: str, path: Path | None = None, *, check_paths: bool = False, confine: "PathPolicy | None" = None,
    project: "Project | None" = None,
) -> SpecFile:
    """Validate spec ``text`` (``path`` is where it came from: messages and relative paths use it).
    ``project`` brings the presets, the run's options and the root prompt packs are confined to; without
    one (pytest passes its own) the project around ``path`` is found (its presets and root).

    Raises :class:`SpecFileError` listing every problem found, in file order."""
    if project is None and path is not None:
        from pytest_ltx.spec.presets import discover_project

        project = discover_project(Path(path))
    data, lines, errors = parse_yaml(text, path)
    if errors and data is None:
        raise SpecFileError(path, errors)
    root_line = lines.get((), 1)
    if data is None:
        raise SpecFileError(path, [SpecError(path, 1, "", "the file is empty: expected a mapping with a 'clips' list")])
    if not isinstance(data, dict):
        raise SpecFileError(
            path,
            errors
            + [
                SpecError(
                    path, root_line, "", f"expected a mapping with a 'clips' list at the top level, got {describe_value(data)}"
                )
            ],
        )
    data, origins, preset_errors = apply_presets(data, lines, path, project)
    errors += preset_errors
    spec: SpecFile | None = None
    try:
        spec = SpecFile.model_validate(data)
    except ValidationError as e:
        errors += [_to_spec_error(d, lines, path) for d in e.errors(include_url=False)]
    if spec is not None:
        spec._attach(None if path is None else Path(path).absolute(), lines, origins)
        if check_paths or confine is not None:
            errors += _missing_paths(spec, path, confine)
        errors += spec._plan(None if project is None else project.root,
                             lambda loc: _where_in_file(loc, lines), path)
    if errors:
        raise SpecFileError(path, _sorted_unique(errors))
    assert spec is not None
    return spec


def _where_in_file(loc: Loc, lines: dict[Loc, int]) -> tuple[int | None, str]:
    loc = _attribute(loc, lines)
    return _line(loc, lines), format_loc(loc)


def load_spec_file(path: Path | str, *, check_paths: bool = True, confine: "PathPolicy | None" = None,
                   project: "Project | None" = None) -> SpecFile:
    """Read and validate one spec file. Relative ``image``/``file`` paths are checked against the spec
    file's folder (``check_paths=False`` skips that); with ``confine`` every such path must also lie
    inside its root or an allowed folder. A file larger than the ``spec_kb`` limit is refused before it
    is read. Without a ``project`` (pytest passes its own), the project around the file is found
    (presets, root). Raises :class:`SpecFileError`."""
    from pytest_ltx.limits import current

    path = Path(path)
    max_bytes = current().spec_kb * 1024
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SpecFileError(path, [SpecError(
                path, None, "",
                f"the file is {size / 1024:.0f} kB, over the {current().spec_kb} kB limit for a spec file; "
                f"not read; {_budget_hint('spec_kb')}")])
        with path.open("rb") as f:
            raw = f.read(max_bytes + 1)  # a file growing while read stays bounded too
    except OSError as e:
        raise SpecFileError(path, [SpecError(path, None, "", f"cannot read: {e.strerror or e}")]) from None
    if len(raw) > max_bytes:
        raise SpecFileError(path, [SpecError(
            path, None, "", f"the file is over the {current().spec_kb} kB limit for a spec file; "
            f"{_budget_hint('spec_kb')}")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise SpecFileError(path, [SpecError(path, line, "", "not UTF-8 text")]) from None
    return load_spec_text(text, path, check_paths=check_paths, confine=confine, project=project)


def _sorted_unique(errors: list[SpecError]) -> list[SpecError]:
    seen: set[str] = set()
    out: list[SpecError] = []
    for e in sorted(errors, key=lambda e: (e.line or 0, e.field)):
        s = str(e)
        if s not in seen:
            seen.add(s)
            out.append(e)
    return out


def _missing_paths(spec: SpecFile, path: Path | None, confine: "PathPolicy | None" = None) -> list[SpecError]:
    """Paths in the spec that point outside the allowed folders (with ``confine``) or at no file."""
    from pytest_ltx.confine import OutsideRoot

    errs: list[SpecError] = []
    base = spec.directory
    for i, clip in enumerate(spec.clips):
        refs: list[tuple[Loc, str | None]] = [(("image",), clip.image)]
        if clip.file is not None:
            refs += [(("file", "path"), clip.file.path), (("file", "audio"), clip.file.audio)]
        art = clip.expect.artifacts if clip.expect is not None else None
        if art is not None and art.first_frame_image is not None:
            refs.append((("expect", "artifacts", "first_frame_image"), art.first_frame_image))
        for sub, rel in refs:
            if rel is None:
                continue
            loc = _attribute(("clips", i) + sub, spec._lines)
            if loc[-1] == "path" and loc[:-1] + ("path",) not in spec._lines:
                loc = loc[:-1]  # `file: x.mp4` shorthand
            target = base / rel
            if confine is not None:
                try:
                    target = confine.resolve(rel, base)
                except OutsideRoot as e:
                    errs.append(SpecError(path, _line(loc, spec._lines), format_loc(loc), _one_line(str(e))))
                    continue
            if not target.is_file():
                errs.append(
                    SpecError(path, _line(loc, spec._lines), format_loc(loc), f"{rel} not found (looked for {target})")
                )
    return errs


# --- pydantic errors → one readable line --------------------------------------------------------


def _to_spec_error(d: Mapping[str, Any], lines: dict[Loc, int], path: Path | None) -> SpecError:
    loc: Loc = tuple(d["loc"])
    ctx = d.get("ctx") or {}
    kind = d["type"]
    if kind == "spec" and ctx.get("at"):
        loc = loc + (ctx["at"],)
    loc = _attribute(loc, lines)
    msg, field_loc = _message(kind, loc, d, ctx, lines)
    return SpecError(path, _line(loc, lines), format_loc(field_loc), msg)


def _attribute(loc: Loc, lines: dict[Loc, int]) -> Loc:
    """A clip error about a value the clip inherited from ``defaults`` is reported at the default
    (once, not once per clip)."""
    if len(loc) < 3 or loc[0] != "clips" or not isinstance(loc[1], int):
        return loc
    rest = loc[2:]
    depth = 2 if rest[0] in MERGED_BY_KEY and len(rest) > 1 else 1
    for j in range(1, depth + 1):
        if loc[:2] + rest[:j] in lines:
            continue
        if ("defaults",) + rest[:j] in lines:
            return ("defaults",) + rest
        break
    return loc


def _line(loc: Loc, lines: dict[Loc, int]) -> int | None:
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get((), 1)


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "iterable_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping",
}

_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def _message(kind: str, loc: Loc, d: Mapping[str, Any], ctx: dict[str, Any], lines: dict[Loc, int]) -> tuple[str, Loc]:
    """(message, loc of the field the line names)."""
    value = d.get("input")
    if kind == "spec":
        msg = str(ctx.get("msg", d["msg"]))
        ref = ctx.get("ref")
        if ref is not None and tuple(ref) in lines and msg.endswith(")"):
            msg = f"{msg[:-1]}, line {lines[tuple(ref)]})"
        return msg, loc
    if kind == "missing":
        key = loc[-1]
        if loc == ("clips",):
            return "missing: a spec needs a 'clips' list with at least one clip", loc
        if isinstance(key, int):  # a fixed-length list (e.g. [first, last]) that is too short
            return f"too few items (item [{key}] is missing)", loc[:-1]
        return f"missing required key {key!r}", loc[:-1]
    if kind == "extra_forbidden":
        return _unknown_key(loc), loc[:-1]
    if loc == ("version",) and kind == "literal_error":
        return f"{describe_value(value)} is not supported (this pytest-ltx reads version 1)", loc
    if kind in _EXPECTED:
        if loc == ("clips",) and value is None:
            return "is empty: a spec needs at least one clip", loc
        hint = ""
        if kind == "string_type" and isinstance(value, (bool, int, float, datetime.date)):
            hint = "; quote it"  # `prompt: yes`, `id: 2024-01-01`: YAML read a non-string
        return f"expected {_EXPECTED[kind]}, got {describe_value(value)}{hint}", loc
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        bound = ctx.get(key)
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"must be {op} {bound}, got {describe_value(value)}", loc
    if kind in ("too_short", "string_too_short"):
        if loc == ("clips",):
            return "is empty: a spec needs at least one clip", loc
        return "must not be empty", loc
    if kind in ("too_long", "string_too_long"):
        return f"is too long (at most {ctx.get('max_length')})", loc
    if kind in ("literal_error", "enum"):
        expected = str(ctx.get("expected", ""))
        options = re.findall(r"'([^']*)'", expected)
        hint = _did_you_mean(str(value), options)
        return f"{describe_value(value)} is not one of {expected}{hint}", loc
    msg = str(d["msg"])
    if msg.startswith(("Value error, ", "Assertion failed, ")):
        msg = msg.split(", ", 1)[1]
    return _one_line(msg), loc


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_key(loc: Loc) -> str:
    key = str(loc[-1])
    model = _model_at(loc[:-1])
    if model is ClipDefaults and key == "id":
        return "'id' cannot be a default (each clip names itself)"
    options = sorted(model.model_fields) if model is not None else []
    if model is Expectations:
        options = Expectations.known_keys()
    if model is SpecFile:
        options.append("x-…")
    what = "expectation family" if loc[-2:-1] == ("expect",) else "key"
    hint = _did_you_mean(key, options)
    if not hint and options and len(options) <= 12:
        hint = f" (allowed: {', '.join(options)})"
    return f"unknown {what} {key!r}{hint}"


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``loc`` (to list the keys it knows)."""
    t: Any = SpecFile
    for part in loc:
        t = _unwrap(t, want_model=not isinstance(part, int))
        if isinstance(part, int):
            args = [a for a in typing.get_args(t) if a is not Ellipsis]
            if not args:
                return None
            t = args[0]
        elif isinstance(t, type) and issubclass(t, BaseModel):
            if part == "testcard" and "testcard" in t.model_fields:
                t = _testcard_model()
                continue
            field = t.model_fields.get(part)
            if field is None:
                # a registered third-party family's expectation (pytest_ltx.families)
                t = Expectations.extra_model(part) if t is Expectations else None
                if t is None:
                    return None
                continue
            t = field.annotation
        else:
            return None
    t = _unwrap(t, want_model=True)
    return t if isinstance(t, type) and issubclass(t, BaseModel) else None


def _unwrap(t: Any, want_model: bool) -> Any:
    while True:
        origin = typing.get_origin(t)
        if origin is typing.Annotated:
            t = typing.get_args(t)[0]
            continue
        args = typing.get_args(t)
        if origin is typing.Union or (origin is not None and type(t).__name__ == "UnionType"):
            pick = [a for a in args if a is not type(None)]
            models = [a for a in pick if isinstance(a, type) and issubclass(a, BaseModel)]
            t = (models or pick)[0] if want_model else pick[0]
            continue
        return t
