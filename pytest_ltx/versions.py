"""Versions of the libraries that change what a render or a metric produces, read from package
metadata (nothing is imported): they go into render provenance, cache keys and baseline environments."""

from __future__ import annotations

import functools
from importlib import metadata
from typing import Iterable

__all__ = ["RENDER_LIBRARIES", "METRIC_LIBRARIES", "package_versions"]

#: change the pixels or samples of a rendered and encoded clip
RENDER_LIBRARIES: tuple[str, ...] = (
    "torch", "diffusers", "transformers", "peft", "av", "opencv-python-headless", "numpy", "pytest-ltx",
)
#: also change what the metrics measure on a clip
METRIC_LIBRARIES: tuple[str, ...] = RENDER_LIBRARIES + ("torchvision", "open-clip-torch", "easyocr")


def package_versions(names: Iterable[str] = RENDER_LIBRARIES) -> dict[str, str | None]:
    """``{distribution name: version or None when not installed}`` (each looked up once per process: a
    metadata lookup costs milliseconds, and every item of a warm run asks)."""
    return {name: _version(name) for name in names}


@functools.lru_cache(maxsize=None)
def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
