"""Metric history across runs: earlier ``results.json`` files (a folder of them, e.g. downloaded CI
artifacts, searched recursively) plus this run, so a slow drift shows before it fails a gate.

A series is one item's (node id) one flat metric (``<family>.<scalar>`` from its evaluation sections, the
keys baselines compare) over the runs, oldest first. Its *drift* is the last value's distance from the
first, in units of the baseline tolerance (or of the first value when there is no baseline); it raises an
alarm when the metric moved the same way run after run and has used more than half its tolerance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pytest_ltx.report.results import ItemResult

__all__ = ["Series", "load_history", "item_series", "flat_scalars"]

#: results files looked at, newest kept (a folder of years of artifacts must not make the report crawl)
MAX_RUNS = 50
#: metrics shown per item (the most-drifting first)
MAX_SERIES = 12


@dataclass(frozen=True)
class Series:
    key: str
    points: list[tuple[str, Any]]
    baseline: float | None
    allowed: float | None
    drift: float | None
    alarm: bool


def flat_scalars(item: dict[str, Any] | ItemResult) -> dict[str, float]:
    ev = (item.evaluation if isinstance(item, ItemResult) else item.get("evaluation")) or {}
    out = {}
    for fam, sec in ev.items():
        if isinstance(sec, dict) and isinstance(sec.get("scalars"), dict):
            for k, v in sec["scalars"].items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[f"{fam}.{k}"] = float(v)
    return out


def _files(paths: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found += sorted(p.rglob("results.json"))
        elif p.is_file():
            found.append(p)
    return found


def load_history(paths: Sequence[Path], *, current: tuple[dict[str, Any], Sequence[ItemResult]] | None = None,
                 exclude: Path | None = None) -> dict[str, Any]:
    """``{"runs": [{"label", "created", "items": {nodeid: {metric: value}}}], "skipped": [why]}``, oldest
    first, the current run last. Unreadable files are skipped and named, never fatal."""
    runs: list[dict[str, Any]] = []
    skipped: list[str] = []
    ex = Path(exclude).resolve() if exclude is not None else None
    for f in _files(paths):
        if ex is not None and f.resolve() == ex:
            continue
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
            items = {str(d["nodeid"]): flat_scalars(d) for d in doc.get("items", []) if isinstance(d, dict)}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            skipped.append(f"{f}: {e.__class__.__name__}")
            continue
        runs.append({"label": str(f), "created": str(doc.get("created", "")), "items": items})
    runs.sort(key=lambda r: r["created"])
    runs = runs[-MAX_RUNS:]
    if current is not None:
        doc, results = current
        runs.append({"label": "this run", "created": str(doc.get("created", "")),
                     "items": {r.nodeid: flat_scalars(r) for r in results}})
    return {"runs": runs, "skipped": skipped}


def item_series(r: ItemResult, history: dict[str, Any]) -> list[Series]:
    """The item's metrics with at least two measured runs, the most drifting first."""
    tol = {m.get("key"): (m.get("baseline"), m.get("allowed"))
           for m in ((r.baseline or {}).get("comparison") or {}).get("metrics") or []}
    keys: set[str] = set()
    for run in history["runs"]:
        keys |= set(run["items"].get(r.nodeid, {}))
    out = []
    for k in keys:
        pts = [(run["label"], run["items"].get(r.nodeid, {}).get(k)) for run in history["runs"]]
        vals = [v for _, v in pts if v is not None]
        if len(vals) < 2:
            continue
        base, allowed = tol.get(k, (None, None))
        base = base if isinstance(base, (int, float)) else None
        allowed = allowed if isinstance(allowed, (int, float)) and allowed > 0 else None
        unit = allowed or (abs(vals[0]) or None)
        drift = (vals[-1] - vals[0]) / unit if unit else None
        steps = [b - a for a, b in zip(vals, vals[1:]) if b != a]
        monotonic = len(steps) >= 2 and (all(s > 0 for s in steps) or all(s < 0 for s in steps))
        alarm = bool(monotonic and allowed and drift is not None and abs(drift) > 0.5)
        out.append(Series(k, pts, base, allowed, drift, alarm))
    out.sort(key=lambda s: (not s.alarm, -(abs(s.drift) if s.drift is not None else 0), s.key))
    return out[:MAX_SERIES]
