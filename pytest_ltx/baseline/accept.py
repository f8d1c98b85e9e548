"""Accept candidate baselines from a finished run's results, without rendering anything again.

A PR run that fails on a baseline (missing, or moved beyond tolerance) carries this run's record for that
item in ``results.json`` (``items[].candidate``: the same payload ``--ltx-update-baselines`` writes). A
reviewer who judges the change intended runs ``pytest-ltx baselines accept --from ltx-report/results.json
[-k EXPR]`` — in CI, the baseline-update workflow on the PR run's artifacts — and the records are written
atomically into ``baselines/`` for review in the PR diff. Several results files (one per shard) can be
given; ``-k`` selects items with pytest's keyword-expression syntax, matched against each item's node id
parts (``-k "sneaker and not seed=1"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

__all__ = ["AcceptError", "Candidate", "load_candidates", "select", "accept"]


class AcceptError(ValueError):
    """A results file cannot be used (unreadable, not a pytest-ltx results file, a broken candidate)."""


@dataclass(frozen=True)
class Candidate:
    nodeid: str
    item_key: str
    model_key: str
    payload: dict[str, Any] = field(repr=False)
    source: str = ""


def load_candidates(paths: Iterable[Path]) -> list[Candidate]:
    """Every candidate record in the results files, in node-id order; an item in two files (a rerun
    shard) keeps the one from the file given last."""
    import json

    found: dict[str, Candidate] = {}
    for path in paths:
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise AcceptError(f"{path}: cannot read ({e.strerror or e})") from None
        except ValueError as e:
            raise AcceptError(f"{path}: not JSON ({e})") from None
        if not isinstance(doc, dict) or doc.get("tool", {}).get("name") != "pytest-ltx" or "items" not in doc:
            raise AcceptError(f"{path}: not a pytest-ltx results.json (no tool.name = pytest-ltx / items)")
        for n, item in enumerate(doc["items"]):
            cand = item.get("candidate") if isinstance(item, dict) else None
            if not cand:
                continue
            rec = cand.get("record") if isinstance(cand, dict) else None
            if not (isinstance(rec, dict) and rec.get("item_key") and rec.get("model_key") and cand.get("npz_b64")):
                raise AcceptError(f"{path}: items[{n}] ({item.get('nodeid')}): candidate record is incomplete")
            found[item["nodeid"]] = Candidate(item["nodeid"], rec["item_key"], rec["model_key"], cand, str(path))
    return [found[k] for k in sorted(found)]


def _matcher(nodeid: str) -> Any:
    """pytest -k semantics: a name matches when it is a substring of one of the node id's parts."""
    parts = [p for chunk in nodeid.split("::") for p in [chunk, *chunk.split("/")] if p]
    low = [p.lower() for p in parts]

    def match(name: str, /, **kwargs: Any) -> bool:
        n = name.lower()
        return any(n in p for p in low)

    return match


def select(cands: list[Candidate], expr: str | None) -> list[Candidate]:
    if not expr:
        return cands
    from _pytest.mark.expression import Expression

    try:
        compiled = Expression.compile(expr)
    except Exception as e:  # pytest's ParseError / SyntaxError, depending on the version
        raise AcceptError(f"-k {expr!r}: {e}") from None
    return [c for c in cands if compiled.evaluate(_matcher(c.nodeid))]


def accept(paths: Iterable[Path], baselines: Path, expr: str | None = None, *, dry_run: bool = False) -> tuple[list[Candidate], Any]:
    """Write the selected candidates into the baseline store (atomically per record). Returns the
    selected candidates and the store's update summary (None for a dry run)."""
    from pytest_ltx.baseline import BaselineRecord, BaselineStore

    chosen = select(load_candidates(paths), expr)
    if dry_run or not chosen:
        return chosen, None
    store = BaselineStore(baselines)
    for c in chosen:
        try:
            store.queue(BaselineRecord.from_payload(c.payload))
        except Exception as e:
            raise AcceptError(f"{c.source}: {c.nodeid}: candidate record cannot be read ({e})") from None
    return chosen, store.flush()
