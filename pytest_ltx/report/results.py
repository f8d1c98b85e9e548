"""One record per test item, and the results file they are merged into at session end."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from pytest_ltx.outcome import jsonable
from pytest_ltx.report.files import write_atomic

__all__ = ["ItemResult", "RESULTS_SCHEMA_VERSION", "write_results", "read_results"]

RESULTS_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ItemResult:
    """What happened to one clip item. Plain JSON-ready data: it crosses xdist process boundaries and is
    the only input of every report."""

    nodeid: str
    spec: str
    clip_id: str
    item: str
    source: str
    status: str  # passed | failed | error
    params: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    baseline: dict[str, Any] | None = None
    #: report media, paths relative to the report folder (see report/media.py), or {"error": why not}
    artifacts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    #: "regression" | "infrastructure" | None (passed): see outcome.FailureKind
    failure_kind: str | None = None
    #: the baseline record this run would write (payload: manifest + base64 npz), present when the
    #: baseline was missing or did not match; ``pytest-ltx baselines accept`` writes it
    candidate: dict[str, Any] | None = None
    #: the spec's free-text description and the line of the clip in its spec file
    description: str | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, computed once per result: a result is a value (frozen, and nothing changes its
        dicts in place), and every report asks for it. The returned dict is a fresh copy at the top level;
        its nested values are shared — read them, never change them."""
        d = self.__dict__.get("_json")
        if d is None:
            d = jsonable({k: getattr(self, k) for k in self.__dataclass_fields__})
            object.__setattr__(self, "_json", d)
        return dict(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, json_form: bool = False) -> "ItemResult":
        """``json_form``: ``d`` holds JSON values only (parsed JSON text, a worker's ``to_dict``), so it is
        kept as the result's JSON form instead of being normalised again."""
        r = cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        if json_form:
            object.__setattr__(r, "_json", {k: d[k] if k in d else jsonable(getattr(r, k))
                                            for k in cls.__dataclass_fields__})
        return r


def write_results(path: Path, items: Iterable[ItemResult], *, meta: dict[str, Any] | None = None) -> dict:
    """Write ``results.json`` atomically; items sorted by node id so reruns diff cleanly."""
    records = sorted((i.to_dict() for i in items), key=lambda d: d["nodeid"])
    counts: dict[str, int] = {}
    kinds = {"regression": 0, "infrastructure": 0}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
        if r.get("failure_kind") is None and r["status"] != "passed":  # records made without one
            from pytest_ltx.outcome import failure_kind

            kind = failure_kind(r["status"], r.get("outcomes") or [])
            r["failure_kind"] = kind.value if kind is not None else None
        if r.get("failure_kind") in kinds:
            kinds[r["failure_kind"]] += 1
    from pytest_ltx import __version__

    doc = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "tool": {"name": "pytest-ltx", "version": __version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "summary": {"items": len(records), **{k: counts.get(k, 0) for k in ("passed", "failed", "error")},
                    **kinds},
        **({"meta": jsonable(meta)} if meta else {}),
        "items": records,
    }
    write_atomic(path, _layout(doc))  # ReportWriteError when it cannot
    return doc


def _layout(doc: dict[str, Any]) -> str:
    """The file's text: the header indented, then one item per line — a rerun's diff names the items that
    changed, and the items (most of the bytes) go through the C JSON encoder, which ``indent`` would turn
    off (the pure-Python one costs a warm run about 0.1 s)."""
    head = json.dumps({k: v for k, v in doc.items() if k != "items"}, indent=2)
    items = doc.get("items") or []
    if not items:
        return head[:-2] + ',\n  "items": []\n}\n'
    rows = ",\n".join("    " + json.dumps(r) for r in items)
    return head[:-2] + ',\n  "items": [\n' + rows + "\n  ]\n}\n"


def read_results(path: Path) -> tuple[dict[str, Any], list[ItemResult]]:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return doc, [ItemResult.from_dict(d, json_form=True) for d in doc.get("items", [])]
