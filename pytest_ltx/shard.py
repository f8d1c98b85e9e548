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

**Grouping by model.** Items are ordered by model profile (stable within a model). Under
``--dist loadgroup`` the items of a model that renders on a **GPU** are also marked
``xdist_group(ltx-model-<profile>)``, so each such model goes to one worker, which loads its pipeline
once onto its own GPU. A model that renders on the **CPU** (the embedded ``tiny`` one, or ``device =
"cpu"``) is not grouped: it loads in a fraction of a second, and one group would put every one of its
items on one worker, so ``-n 2`` could not run two of them at once. The mark must be in place before
xdist's own collection hook turns it into the node-id suffix (``…::item@ltx-model-x``) it schedules by;
what pytest-ltx records (results.json, durations, shards, the collected keys) uses the node id without it.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from pytest_ltx.storage import write_atomic_bytes

__all__ = ["assign_shards", "select_shard", "read_durations", "update_durations", "model_of", "order_by_model",
           "mark_gpu_groups", "group_node_ids", "renders_on_gpu", "group_name", "plain_nodeid"]

#: prefix of the xdist group of a model's items (``ltx-model-<profile>``)
GROUP_PREFIX = "ltx-model-"


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
    where = assign_shards([plain_nodeid(it.nodeid) for it in items], n, durations)
    kept = [it for it in items if where[plain_nodeid(it.nodeid)] == i]
    dropped = [it for it in items if where[plain_nodeid(it.nodeid)] != i]
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
    replace a stored one, nor does a remembered conclusion's: the split must reflect what a cold shard
    costs."""
    data = read_durations(path)
    for r in results:
        t = r.get("timings") or {}
        total = t.get("total_s")
        if not isinstance(total, (int, float)):
            continue
        if (t.get("cached") or t.get("remembered")) and r["nodeid"] in data:
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


def order_by_model(items: list[Any], override: str | None) -> None:
    """Reorder ``items`` in place so each model's clip items are together (stable: first appearance)."""
    models = {id(it): model_of(it, override) for it in items}
    if not any(models.values()):
        return
    first: dict[str | None, int] = {}
    for n, it in enumerate(items):
        first.setdefault(models[id(it)], n)
    items.sort(key=lambda it: first[models[id(it)]])


def mark_gpu_groups(items: Sequence[Any], session: Any) -> list[str]:
    """Mark the clip items of every model that renders on a GPU with its xdist group; returns the groups.
    ``session`` resolves profiles (``profile(name, device=...)``, ``settings.model``/``settings.device``)."""
    import pytest

    from pytest_ltx.devices import cuda_available

    on_gpu: dict[str, bool] = {}
    for it in items:
        model = model_of(it, session.settings.model)
        if model is None:
            continue
        if model not in on_gpu:
            try:
                device = session.profile(model, device=session.settings.device).device
            except Exception:  # noqa: BLE001 - an unknown or broken profile: the item reports it when it runs
                device = "cpu"
            on_gpu[model] = renders_on_gpu(device, cuda_available)
        if on_gpu[model]:
            it.add_marker(pytest.mark.xdist_group(name=group_name(model)))
    return sorted(group_name(m) for m, gpu in on_gpu.items() if gpu)


def group_node_ids(items: Sequence[Any]) -> int:
    """Give each item marked with an ``ltx-model-`` xdist group the ``…@<group>`` node id that
    ``--dist loadgroup`` schedules by, where xdist's own collection hook could not (it sets
    ``item._nodeid``, which pytest 9 no longer reads: the id comes from ``item._id``, so with pytest 9.2 and
    xdist 3.8 ``--dist loadgroup`` groups nothing at all). Items that already carry a suffix are left alone;
    returns how many were changed."""
    changed = 0
    for it in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in it.iter_markers("xdist_group")})
        if not any(n.startswith(GROUP_PREFIX) for n in names) or plain_nodeid(it.nodeid) != it.nodeid:
            continue
        ident = getattr(it, "_id", None)
        parse = getattr(type(ident), "parse", None)
        if parse is None:  # not a pytest whose ids we know how to extend: xdist's own way is all there is
            continue
        it._id = parse(f"{it.nodeid}@{'_'.join(names)}")
        changed += 1
    return changed


def renders_on_gpu(device: str, cuda_available: Callable[[], bool]) -> bool:
    """Whether a profile asking for ``device`` (after ``--ltx-device``) renders on a GPU in this process:
    ``cuda``/``cuda:N`` always, ``auto`` when CUDA is available (``cuda_available`` is only asked then),
    ``cpu`` never."""
    if device == "cuda" or device.startswith("cuda:"):
        return True
    return device == "auto" and bool(cuda_available())


def group_name(model: str) -> str:
    return f"{GROUP_PREFIX}{model}"


# xdist --dist loadgroup appends "@<group names joined by _>" to a grouped item's node id. An item name ends
# with "]" or is a clip id ([a-z0-9._-]), so an "@" after the last "::" with no "]" behind it is xdist's.
_XDIST_SUFFIX = re.compile(r"@[^@\]:/]*\Z")


def plain_nodeid(nodeid: str) -> str:
    """``nodeid`` without the ``@group`` suffix xdist's ``--dist loadgroup`` gives grouped items."""
    head, sep, name = nodeid.rpartition("::")
    if not sep or "@" not in name:
        return nodeid
    return f"{head}::{_XDIST_SUFFIX.sub('', name)}"
