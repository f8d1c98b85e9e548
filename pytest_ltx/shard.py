"""Splitting a run across CI machines (``--ltx-shard i/n``) and keeping each worker on one model.

**Shards.** Every collected item lands in exactly one of the n shards, the same one in every job of a run
(each job collects the same items and computes the same split), balanced by the durations stored from
earlier runs: longest first, each to the least-loaded shard (ties: the lower shard, then the node id).
An item without a stored duration counts as the median of the known ones. Non-clip tests are sharded the
same way, so a shard matrix runs the whole suite once.

Every job of one run must balance on the *same* durations (else the split is not disjoint): CI freezes
one copy per run and hands it to all shards (see ``.github/workflows/ltx-gate.yml``).

**Durations** are kept in a small JSON file (``--ltx-durations``, default ``.ltx-durations.json``): node id
→ seconds of the last run that really rendered it (a cache hit does not overwrite a render's duration).
CI restores and saves it with the render cache.

**Grouping by model.** Items are ordered by model profile (stable within a model) and marked
``xdist_group(<profile>)``: with ``--dist loadgroup`` every model's items go to one worker, which loads
the pipeline once; with ``--dist load`` the ordering alone keeps profile switches rare.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from pytest_ltx.storage import write_atomic_bytes

__all__ = ["assign_shards", "select_shard", "read_durations", "update_durations", "model_of"]


def assign_shards(nodeids: Sequence[str], n: int, durations: Mapping[str, float] | None = None) -> dict[str, int]:
    """node id → shard (1..n), balanced by ``durations`` (longest processing time first)."""
    if n < 1:
        raise ValueError(f"shard count must be >= 1, got {n}")
    durations = durations or {}
    known = [float(d) for k, d in durations.items() if k in set(nodeids) and d is not None and d >= 0]
    default = statistics.median(known) if known else 1.0
    cost = {k: float(durations.get(k, default) if durations.get(k) is not None else default) for k in nodeids}
    order = sorted(set(nodeids), key=lambda k: (-cost[k], k))
    load = [0.0] * n
    out: dict[str, int] = {}
    for k in order:
        i = min(range(n), key=lambda j: (load[j], j))
        out[k] = i + 1
        load[i] += cost[k]
    return out


def select_shard(items: Sequence[Any], shard: tuple[int, int], durations: Mapping[str, float] | None
                 ) -> tuple[list[Any], list[Any]]:
    """(kept, deselected) items of shard ``(i, n)``; the items keep their order."""
    i, n = shard
    where = assign_shards([it.nodeid for it in items], n, durations)
    kept = [it for it in items if where[it.nodeid] == i]
    dropped = [it for it in items if where[it.nodeid] != i]
    return kept, dropped


def read_durations(path: Path | None) -> dict[str, float]:
    """The stored durations (empty when the file is missing or unreadable: balancing is best effort)."""
    if path is None:
        return {}
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    items = doc.get("durations", doc) if isinstance(doc, dict) else {}
    return {str(k): float(v) for k, v in items.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def update_durations(path: Path, results: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Merge this run's item durations into ``path`` (atomically). A cached render's duration does not
    replace a stored one: the split must reflect what a cold shard costs."""
    data = read_durations(path)
    for r in results:
        t = r.get("timings") or {}
        total = t.get("total_s")
        if not isinstance(total, (int, float)):
            continue
        if t.get("cached") and r["nodeid"] in data:
            continue
        data[r["nodeid"]] = round(float(total), 3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"version": 1, "durations": dict(sorted(data.items()))}, indent=1) + "\n"
    write_atomic_bytes(path, text.encode("utf-8"), suffix="", mode="private")
    return data


def model_of(item: Any, override: str | None) -> str | None:
    """The model profile a clip item renders with (None for files, test cards and other tests)."""
    spec = getattr(item, "spec", None)
    if spec is None or getattr(getattr(spec, "source_kind", None), "value", None) != "render":
        return None
    return override or spec.clip.model
