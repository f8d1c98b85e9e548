"""Clip specs: YAML → validated, frozen models (``schema``), read with file:line errors (``loader``),
expanded into one test item per prompt variant × seed (``items``)."""

from __future__ import annotations

from pytest_ltx.spec.errors import SpecError, SpecFileError
from pytest_ltx.spec.items import ItemSpec, expand
from pytest_ltx.spec.loader import load_spec_file, load_spec_text
from pytest_ltx.spec.schema import (
    ClipDefaults,
    ClipSpec,
    FileSource,
    Guidance,
    SourceKind,
    SpecFile,
    json_schema,
)

__all__ = [
    "ClipDefaults",
    "ClipSpec",
    "FileSource",
    "Guidance",
    "ItemSpec",
    "SourceKind",
    "SpecError",
    "SpecFile",
    "SpecFileError",
    "expand",
    "json_schema",
    "load_spec_file",
    "load_spec_text",
]
