"""JSON normalising, in one leaf module: :func:`jsonable` turns a result into plain JSON values (what
``results.json`` and baseline records hold), :func:`canonical_json` gives equal inputs equal text (cache and
identity keys). Different jobs, so different rules: ``jsonable`` never fails (non-finite floats become null,
anything unknown its ``str``), ``canonical_json`` refuses what it cannot represent exactly.

(``render/ltx2`` keeps its own config normaliser: its ``repr`` fallback is part of recorded config digests.)
"""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import PurePath
from typing import Any

__all__ = ["canonical_json", "jsonable"]


def jsonable(x: Any) -> Any:
    """Turn numpy scalars/arrays, enums, tuples and non-finite floats into plain JSON values."""
    if isinstance(x, Enum):  # first: a str/int enum is also a str/int, but results hold plain values
        return jsonable(x.value)
    if x is None or isinstance(x, (bool, str, int)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "to_dict"):
        return jsonable(x.to_dict())
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return jsonable(x.item())
        if isinstance(x, np.ndarray):
            return jsonable(x.tolist())
    except ImportError:  # pragma: no cover
        pass
    return str(x)


def _json_default(o: Any) -> Any:
    if isinstance(o, PurePath):
        return o.as_posix()
    if isinstance(o, Enum):
        return o.value
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    raise TypeError(f"provenance value of type {type(o).__name__} is not JSON-serialisable: {o!r}")


def canonical_json(obj: Any) -> str:
    """Key-sorted, whitespace-free JSON: equal provenance → equal text → equal key."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=_json_default)
