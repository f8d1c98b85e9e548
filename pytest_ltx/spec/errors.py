"""Spec errors: one readable line each, pointing at the file, the line and the field.

A spec is written by hand and read by a reviewer, so every problem says where it is
(``specs/a.yaml:12: clips[2].frames: 24 is not 8k+1 (nearest valid: 17 or 25)``) and a file with
several problems reports them all at once instead of one per run.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

__all__ = ["SpecError", "SpecFileError", "describe_value"]


def describe_value(v: Any) -> str:
    """A value as the spec's author wrote it (YAML words, short), for "got ..." in messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, str):
        return repr(v) if len(v) <= 40 else repr(v[:37] + "...")
    if isinstance(v, (datetime.date, datetime.datetime)):
        return f"{v.isoformat()} (a date to YAML)"
    return repr(v)


@dataclass(frozen=True)
class SpecError:
    """One problem in a spec file. ``field`` is the dotted path (``clips[2].frames``), empty for the
    file as a whole; ``line`` is 1-based, ``None`` when not known (a spec built in Python)."""

    path: Path | None
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = str(self.path) + (f":{self.line}" if self.line is not None else "") + ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        what = f"{self.field}: " if self.field else ""
        return f"{where}{what}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": None if self.path is None else str(self.path),
            "line": self.line,
            "field": self.field,
            "message": self.message,
        }


class SpecFileError(Exception):
    """A spec file that cannot be used. ``str()`` is one line per problem, in file order."""

    def __init__(self, path: Path | None, errors: Sequence[SpecError]) -> None:
        self.path = path
        self.errors: list[SpecError] = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)

    def __reduce__(self) -> tuple[Any, ...]:
        # picklable for xdist workers
        return (type(self), (self.path, self.errors))
