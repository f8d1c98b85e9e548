"""Prompt templates and variables: one clip, many items, each named by its values.

A clip's ``prompt`` (every entry of ``prompts``, and ``negative_prompt``) may hold ``{name}``
placeholders filled from ``vars``::

    prompt: "A {subject} in {style}, {shot}"
    vars:
      subject: [robot, cat, astronaut]     # a list is an axis: the items are the cartesian product
      style: [noir, pastel]
      shot: close-up                       # a single value: the same for every item, not in the id
      zip:                                 # rows that belong together: paired, not multiplied
        product: [Acme X1, Acme X2]
        color: [red, blue]
      from: packs/products.csv             # a prompt pack: one row per item (CSV, JSONL or YAML)

Axes multiply in the order written. Item ids come from the values, never from positions
(``hero[subject=robot,style=noir,seed=0]``), so inserting or reordering values renames nothing and
``pytest -k noir`` selects. A row (of a ``zip`` or a pack) with a ``name`` column is named by it
(``hero[acme-x1,seed=0]``). A placeholder with no variable, and a variable no template uses, are errors
at their line (a pack column nobody uses names the pack file). ``{{`` and ``}}`` are literal braces.

``prompts:`` entries are named by a short label made from their words (``robot-dancing-neon-alley``)
or an explicit ``{name: wide, prompt: "..."}`` — never by position.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from pytest_ltx.spec.errors import SpecError, describe_value

__all__ = [
    "ITEMS_MAX",
    "Variant",
    "check_vars_shape",
    "plan_variants",
    "prompt_label",
    "template_fields",
    "value_slug",
    "VARS_JSON_SCHEMA",
]

#: items one clip may expand to (a product of long lists grows fast)
ITEMS_MAX = 10_000
PACK_SUFFIXES = (".csv", ".jsonl", ".yaml", ".yml")

#: keys of ``vars`` that are not variables
ZIP, FROM = "zip", "from"
#: a row's label column (a ``zip`` key or a pack column): names the item instead of its values
LABEL = "name"
#: fields whose text is a template
TEMPLATED = ("prompt", "prompts", "negative_prompt")

_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STOP = frozenset("a an the and or of in on at to with by for from into over under is are".split())


def template_fields(text: str) -> list[str]:
    """The placeholder names in ``text``, in order. Raises ``ValueError`` for anything but ``{name}``
    (format specs, conversions, attribute/index access, unbalanced braces)."""
    out: list[str] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        raise ValueError(f"{e} (write '{{{{' and '}}}}' for literal braces)") from None
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if not _VAR_RE.match(name) or spec or conv:
            shown = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"placeholder {shown!r} is not a variable name: use {{name}} "
                             "(letters, digits, '_'; '{{' and '}}' for literal braces)")
        out.append(name)
    return out


def fill(text: str, values: Mapping[str, Any]) -> str:
    return text.format_map({k: _text(v) for k, v in values.items()})


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def value_slug(v: Any, limit: int = 32) -> str:
    """A value as it appears in an item id: lower-case ``[a-z0-9._-]``, at most ``limit`` characters
    (``"Acme X1 / Red"`` → ``acme-x1-red``); a value with no such characters becomes a short hash."""
    s = re.sub(r"[^a-z0-9.]+", "-", _text(v).lower()).strip("-.")
    s = s[:limit].rstrip("-.")
    return s or "h" + hashlib.sha1(_text(v).encode()).hexdigest()[:8]


def prompt_label(template: str) -> str:
    """A short content label for a prompt: its first meaningful words (``"A robot dancing in a neon-lit
    alley"`` → ``robot-dancing-neon-lit``). Placeholders are left out; stable under edits elsewhere in
    the list."""
    words = [w for w in re.findall(r"[a-z0-9]+", re.sub(r"\{[^{}]*\}", " ", template.lower())) if w not in _STOP]
    out = ""
    for w in words[:4]:
        if len(out) + len(w) + 1 > 32:
            break
        out = f"{out}-{w}" if out else w
    return out or "prompt-" + hashlib.sha1(template.encode()).hexdigest()[:6]


# --- the shape of `vars` (checked by the schema's validator, no file access) ---------------------


def check_vars_shape(v: Any) -> list[tuple[tuple[Any, ...], str]]:
    """Problems with a ``vars`` mapping as (sub-location, message); empty when it is well formed."""
    if not isinstance(v, dict):
        return [((), f"expected a mapping of variables, got {describe_value(v)}")]
    if not v:
        return [((), "is empty (leave it out, or define at least one variable)")]
    out: list[tuple[tuple[Any, ...], str]] = []
    seen: dict[str, tuple[Any, ...]] = {}

    def name_ok(name: Any, loc: tuple[Any, ...]) -> None:
        if not isinstance(name, str) or not _VAR_RE.match(name):
            out.append((loc, f"{name!r} is not a variable name (letters, digits, '_'; not starting with a digit)"))
        elif name in seen:
            out.append((loc, f"variable {name!r} is defined twice (also at vars.{'.'.join(map(str, seen[name]))})"))
        else:
            seen[name] = loc

    for key, val in v.items():
        if key == FROM:
            if not isinstance(val, str) or not val.strip():
                out.append(((FROM,), f"expected the path of a prompt pack (.csv, .jsonl, .yaml), got {describe_value(val)}"))
            elif not val.lower().endswith(PACK_SUFFIXES):
                out.append(((FROM,), f"{val!r}: a prompt pack is a .csv, .jsonl or .yaml file"))
            continue
        if key == ZIP:
            if not isinstance(val, dict) or not val:
                out.append(((ZIP,), f"expected a mapping of equal-length lists, got {describe_value(val)}"))
                continue
            lengths = {}
            for k, col in val.items():
                if k != LABEL:
                    name_ok(k, (ZIP, k))
                if not isinstance(col, list) or not col:
                    out.append(((ZIP, k), f"expected a non-empty list of values, got {describe_value(col)}"))
                    continue
                out += [((ZIP, k, i), m) for i, m in _bad_values(col)]
                lengths[k] = len(col)
            if len(set(lengths.values())) > 1:
                shown = ", ".join(f"{k}: {n}" for k, n in lengths.items())
                out.append(((ZIP,), f"zip lists must have the same length ({shown})"))
            continue
        if key == LABEL:
            out.append(((key,), f"{LABEL!r} labels rows of a zip or a pack; a plain variable cannot be called that"))
            continue
        name_ok(key, (key,))
        col = val if isinstance(val, list) else [val]
        if not col:
            out.append(((key,), "is empty (give at least one value)"))
            continue
        out += [((key, i) if isinstance(val, list) else (key,), m) for i, m in _bad_values(col)]
        dup = _first_duplicate(col)
        if dup is not None:
            out.append(((key, dup[1]), f"value {col[dup[1]]!r} is listed twice (first at [{dup[0]}])"))
    return out


def _bad_values(col: Sequence[Any]) -> list[tuple[int, str]]:
    out = []
    for i, x in enumerate(col):
        if isinstance(x, bool) or not isinstance(x, (str, int, float)):
            out.append((i, f"a variable's value is a string or a number, got {describe_value(x)}"))
        elif isinstance(x, str) and not x.strip():
            out.append((i, "is blank"))
    return out


def _first_duplicate(col: Sequence[Any]) -> tuple[int, int] | None:
    first: dict[str, int] = {}
    for i, x in enumerate(col):
        k = _text(x)
        if k in first:
            return first[k], i
        first[k] = i
    return None


VARS_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "template variables: a list is an axis (items = cartesian product of the axes); "
    "`zip` pairs equal-length lists row by row; `from` loads a prompt pack (CSV/JSONL/YAML, one row per item). "
    "Item ids come from the values (`clip[subject=robot,style=noir,seed=0]`); a `name` column labels a row.",
    "properties": {
        FROM: {"type": "string", "description": "prompt pack, relative to the spec file (.csv, .jsonl, .yaml)"},
        ZIP: {
            "type": "object",
            "description": "rows that belong together: equal-length lists, paired by position",
            "additionalProperties": {"type": "array", "minItems": 1, "items": {"type": ["string", "number"]}},
        },
    },
    "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
    "additionalProperties": {
        "anyOf": [
            {"type": ["string", "number"]},
            {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": ["string", "number"]}},
        ]
    },
    "minProperties": 1,
}


# --- planning a clip's variants (packs read here) ------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One combination of a clip: prompt (template) choice and variable values, with its id parts."""

    #: the template as written (``None`` for a file/testcard clip without a prompt)
    template: str | None
    #: the label of this ``prompts`` entry (``None`` for a single ``prompt``)
    label: str | None
    #: position in ``prompts`` (0 for a single ``prompt``): for the report, never for identity
    prompt_index: int
    values: Mapping[str, Any] = field(default_factory=dict)
    #: id parts, in order: ``robot-dancing``, ``subject=robot``, ``acme-x1`` …
    parts: tuple[str, ...] = ()
    #: where each value came from (``vars.subject``, ``packs/p.csv:7``)
    sources: Mapping[str, str] = field(default_factory=dict)

    def render(self, text: str | None) -> str | None:
        return None if text is None else fill(text, self.values)


@dataclass(frozen=True)
class _Axis:
    key: str  # the vars key (variable name, "zip" or "from")
    names: tuple[str, ...]  # variables it defines
    rows: tuple[tuple[Any, ...], ...]
    labels: tuple[str | None, ...]  # per row: the `name` column, if any
    where: tuple[str, ...]  # per row: where it was written
    #: a single value written as a scalar: the same for every item, so not part of the id
    constant: bool = False


#: where(loc) → (file line, dotted field) of a location inside the clip (loader's line lookup)
Where = Callable[[tuple[Any, ...]], tuple[int | None, str]]


def plan_variants(
    clip: Any,
    *,
    spec_path: Path | None,
    base_dir: Path,
    root: Path | None,
    where: Where,
) -> tuple[list[Variant], list[SpecError]]:
    """Every (prompt, values) combination of ``clip``, in file order, or the errors that prevent it.

    Checks that each placeholder has a variable and each variable (pack column) a placeholder."""
    errors: list[SpecError] = []

    def err(loc: tuple[Any, ...], msg: str) -> None:
        line, fld = where(loc)
        errors.append(SpecError(spec_path, line, fld, msg))

    prompts: list[tuple[str | None, str | None, int]] = []  # (template, label or None, index)
    entries = clip.prompt_entries
    if clip.prompts is not None:
        labels = [name or prompt_label(text) for name, text in entries]
        for i, (name, text) in enumerate(entries):
            lab = labels[i]
            if name is None and labels.count(lab) > 1:
                lab = f"{lab}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"
            prompts.append((text, lab, i))
        final = [lab for _, lab, _ in prompts]
        for i, lab in enumerate(final):
            if lab in final[:i]:
                err(("prompts", i), f"prompt name {lab!r} is used twice (first by prompts[{final.index(lab)}])")
    else:
        prompts.append((clip.prompt, None, 0))

    # which placeholders each template field uses
    used: dict[str, tuple[Any, ...]] = {}
    texts: list[tuple[tuple[Any, ...], str]] = []
    if clip.prompts is not None:
        texts += [(("prompts", i), text) for i, (_, text) in enumerate(entries)]
    elif clip.prompt is not None:
        texts.append((("prompt",), clip.prompt))
    if clip.negative_prompt is not None:
        texts.append((("negative_prompt",), clip.negative_prompt))
    for loc, text in texts:
        try:
            for n in template_fields(text):
                used.setdefault(n, loc)
        except ValueError as e:
            err(loc, str(e))

    axes, pack_errors = _axes(clip.vars or {}, spec_path=spec_path, base_dir=base_dir, root=root, err=err)
    errors += pack_errors
    defined: dict[str, tuple[str, tuple[Any, ...]]] = {}
    for ax in axes:
        for n in ax.names:
            loc = ("vars", n) if ax.key not in (ZIP, FROM) else ("vars", ax.key, n) if ax.key == ZIP else ("vars", FROM)
            defined[n] = (ax.key, loc)
    for n, loc in used.items():
        if n not in defined:
            hint = f" (defined: {', '.join(sorted(defined))})" if defined else " (this clip has no vars)"
            err(loc, f"placeholder {{{n}}} has no variable{hint}; define it under vars, or write {{{{{n}}}}} for literal braces")
    for n, (key, loc) in defined.items():
        if n not in used:
            what = f"pack column {n!r}" if key == FROM else f"variable {n!r}"
            err(loc, f"{what} is not used by any template (prompt, prompts, negative_prompt); "
                     "use it as {" + n + "} or remove it")
    if errors:
        return [], errors

    total = len(prompts)
    for ax in axes:
        total *= max(1, len(ax.rows))
    if total > ITEMS_MAX:
        err(("vars",), f"expands to {total} items per seed (at most {ITEMS_MAX}); split the clip or the pack")
        return [], errors

    combos: list[tuple[dict[str, Any], list[str], dict[str, str]]] = [({}, [], {})]
    for ax in axes:
        nxt = []
        for values, parts, src in combos:
            for row, label, w in zip(ax.rows, ax.labels, ax.where):
                v = {**values, **dict(zip(ax.names, row))}
                p = parts + ([] if ax.constant else [value_slug(label, 48)] if label is not None
                             else [f"{n}={value_slug(x)}" for n, x in zip(ax.names, row)])
                nxt.append((v, p, {**src, **{n: w for n in ax.names}}))
        combos = nxt

    out: list[Variant] = []
    for template, label, index in prompts:
        for values, parts, src in combos:
            out.append(Variant(template=template, label=label, prompt_index=index, values=values,
                               parts=((label,) if label is not None else ()) + tuple(parts), sources=src))
    seen: dict[tuple[str, ...], Variant] = {}
    for variant in out:
        if variant.parts in seen:
            a, b = seen[variant.parts], variant
            err(("vars",), f"two rows give the same item id [{','.join(variant.parts)}] "
                           f"({_describe_row(a)} and {_describe_row(b)}); make the values distinct "
                           f"or add a {LABEL!r} column")
            return [], errors
        seen[variant.parts] = variant
    return out, errors


def _describe_row(v: Variant) -> str:
    srcs = sorted(set(v.sources.values()))
    return ", ".join(srcs) if srcs else "the prompt"


def _axes(vars_: Mapping[str, Any], *, spec_path: Path | None, base_dir: Path, root: Path | None,
          err: Callable[[tuple[Any, ...], str], None]) -> tuple[list[_Axis], list[SpecError]]:
    axes: list[_Axis] = []
    pack_errors: list[SpecError] = []
    for key, val in vars_.items():
        if key == FROM:
            ax, errs = _load_pack(str(val), spec_path=spec_path, base_dir=base_dir, root=root, err=err)
            pack_errors += errs
            if ax is not None:
                axes.append(ax)
        elif key == ZIP:
            names = [k for k in val if k != LABEL]
            n = len(next(iter(val.values())))
            labels = tuple(val[LABEL][i] if LABEL in val else None for i in range(n))
            axes.append(_Axis(ZIP, tuple(names), tuple(tuple(val[k][i] for k in names) for i in range(n)),
                              tuple(None if x is None else _text(x) for x in labels),
                              tuple(f"vars.zip[{i}]" for i in range(n))))
        else:
            col = val if isinstance(val, list) else [val]
            axes.append(_Axis(key, (key,), tuple((x,) for x in col), (None,) * len(col),
                              tuple(f"vars.{key}[{i}]" if isinstance(val, list) else f"vars.{key}" for i in range(len(col))),
                              constant=not isinstance(val, list)))
    return axes, pack_errors


# --- prompt packs ------------------------------------------------------------------------------


def _load_pack(rel: str, *, spec_path: Path | None, base_dir: Path, root: Path | None,
               err: Callable[[tuple[Any, ...], str], None]) -> tuple[_Axis | None, list[SpecError]]:
    """Read a pack: confined to the project root, size-budgeted; errors name the pack file and row."""
    target = (base_dir / rel)
    boundary = (root or base_dir).resolve()
    try:
        resolved = target.resolve()
        resolved.relative_to(boundary)
    except ValueError:
        err(("vars", FROM), f"prompt pack {rel!r} is outside the project ({boundary}); keep packs inside it")
        return None, []
    except OSError as e:
        err(("vars", FROM), f"prompt pack {rel!r}: {e.strerror or e}")
        return None, []
    if not resolved.is_file():
        err(("vars", FROM), f"prompt pack {rel!r} not found (looked for {target})")
        return None, []
    from pytest_ltx.limits import current, raise_hint

    max_bytes, max_rows = current().pack_kb * 1024, current().pack_rows
    size = resolved.stat().st_size
    if size > max_bytes:
        err(("vars", FROM), f"prompt pack {rel!r} is {size / 1024:.0f} kB, over the {current().pack_kb} kB limit "
                            f"for a prompt pack (it lists prompts, it is not a data set); not read; "
                            f"{raise_hint('pack_kb')}")
        return None, []
    shown = Path(rel) if spec_path is None else _display(target, root)
    with resolved.open("rb") as fh:
        raw = fh.read(max_bytes + 1)  # a file growing while read stays bounded too
    if len(raw) > max_bytes:
        err(("vars", FROM), f"prompt pack {rel!r} is over the {current().pack_kb} kB limit; {raise_hint('pack_kb')}")
        return None, []
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        return None, [SpecError(shown, line, "", "not UTF-8 text")]
    suffix = resolved.suffix.lower()
    if suffix == ".csv":
        rows, errs = _csv_rows(text, shown)
    elif suffix == ".jsonl":
        rows, errs = _jsonl_rows(text, shown)
    else:
        rows, errs = _yaml_rows(text, shown)
    if errs:
        return None, errs
    if not rows:
        return None, [SpecError(shown, 1, "", "the pack has no rows")]
    if len(rows) > max_rows:
        return None, [SpecError(shown, rows[max_rows][0], f"row {max_rows + 1}",
                                f"more than {max_rows} rows, the limit for a prompt pack; split the pack or "
                                f"{raise_hint('pack_rows')}")]
    columns = list(rows[0][1])
    names = tuple(c for c in columns if c != LABEL)
    out_rows, labels, where = [], [], []
    first_label: dict[str, int] = {}
    for n, (line, row) in enumerate(rows, start=1):
        if list(row) != columns:
            missing = [c for c in columns if c not in row]
            extra = [c for c in row if c not in columns]
            what = (f"missing {', '.join(map(repr, missing))}" if missing else "") + (
                ("; " if missing and extra else "") + (f"unknown {', '.join(map(repr, extra))}" if extra else ""))
            errs.append(SpecError(shown, line, f"row {n}", f"columns differ from the first row's ({what or 'order'})"))
            continue
        for c in columns:
            v = row[c]
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                errs.append(SpecError(shown, line, f"row {n}.{c}", f"expected a string or a number, got {describe_value(v)}"))
            elif isinstance(v, str) and not v.strip():
                errs.append(SpecError(shown, line, f"row {n}.{c}", "is empty"))
        if LABEL in row and isinstance(row[LABEL], (str, int, float)):
            lab = _text(row[LABEL])
            if lab in first_label:
                errs.append(SpecError(shown, line, f"row {n}.{LABEL}", f"{lab!r} names row {first_label[lab]} too"))
            first_label.setdefault(lab, n)
        out_rows.append(tuple(row[c] for c in names))
        labels.append(_text(row[LABEL]) if LABEL in row else None)
        where.append(f"{shown}:{line} (row {n})")
    if errs:
        return None, errs
    return _Axis(FROM, names, tuple(out_rows), tuple(labels), tuple(where)), []


def _row_limit() -> int:
    from pytest_ltx.limits import current

    return current().pack_rows


def _display(p: Path, root: Path | None) -> Path:
    if root is not None:
        try:
            return p.resolve().relative_to(root.resolve())
        except ValueError:
            pass
    return p


def _csv_rows(text: str, shown: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[SpecError]]:
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, dict[str, Any]]] = []
    errs: list[SpecError] = []
    try:
        header = next(reader, None)
        if header is None:
            return [], [SpecError(shown, 1, "", "empty CSV: the first line names the columns")]
        header = [h.strip() for h in header]
        for i, h in enumerate(header):
            if h != LABEL and not _VAR_RE.match(h):
                errs.append(SpecError(shown, 1, f"column {i + 1}", f"{h!r} is not a variable name (letters, digits, '_')"))
            elif h in header[:i]:
                errs.append(SpecError(shown, 1, f"column {i + 1}", f"column {h!r} appears twice"))
        if errs:
            return [], errs
        n = 0
        start = reader.line_num + 1
        for cells in reader:
            line = start
            start = reader.line_num + 1
            if not cells or all(not c.strip() for c in cells):
                continue
            n += 1
            if len(cells) != len(header):
                errs.append(SpecError(shown, line, f"row {n}",
                                      f"{len(cells)} cells, the header has {len(header)} ({', '.join(header)})"))
                continue
            rows.append((line, dict(zip(header, (c.strip() for c in cells)))))
            if len(rows) > _row_limit():
                break
    except csv.Error as e:
        errs.append(SpecError(shown, reader.line_num, "", f"invalid CSV: {e}"))
    return rows, errs


def _jsonl_rows(text: str, shown: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[SpecError]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    errs: list[SpecError] = []
    n = 0
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        n += 1
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            errs.append(SpecError(shown, line_no, f"row {n}", f"invalid JSON: {e.msg} (column {e.colno})"))
            continue
        if not isinstance(obj, dict):
            errs.append(SpecError(shown, line_no, f"row {n}", f"expected a JSON object, got {describe_value(obj)}"))
            continue
        rows.append((line_no, obj))
        if len(rows) > _row_limit():
            break
    return rows, errs


def _yaml_rows(text: str, shown: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[SpecError]]:
    from pytest_ltx.spec.loader import parse_yaml

    data, lines, errs = parse_yaml(text, shown)
    if errs:
        return [], errs
    if isinstance(data, dict) and set(data) == {"rows"}:
        data = data["rows"]
        prefix: tuple[str, ...] = ("rows",)
    else:
        prefix = ()
    if not isinstance(data, list):
        return [], [SpecError(shown, 1, "", f"expected a list of rows (mappings), got {describe_value(data)}")]
    rows = []
    for i, r in enumerate(data):
        line = lines.get(prefix + (i,))
        if not isinstance(r, dict):
            errs.append(SpecError(shown, line, f"row {i + 1}", f"expected a mapping, got {describe_value(r)}"))
            continue
        rows.append((line or 0, r))
    return rows, errs

