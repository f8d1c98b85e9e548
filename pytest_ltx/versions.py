"""Versions of the libraries that change what a render or a metric produces, read from package
metadata (nothing is imported): they go into render provenance, cache keys and baseline environments."""

from __future__ import annotations

from importlib import metadata
from typing import Iterable

__all__ = ["RENDER_LIBRARIES", "METRIC_LIBRARIES", "package_versions"]

#: change the pixels or samples of a rendered and encoded clip
RENDER_LIBRARIES: tuple[str, ...] = (
    "torch", "diffusers", "transformers", "peft", "av", "opencv-python-headless", "numpy", "pytest-ltx",
)
#: also change what the metrics measure on a clip
METRIC_LIBRARIES: tuple[str, ...] = RENDER_LIBRARIES + ("torchvision", "open-clip-torch", "easyocr", "librosa")


def package_versions(names: Iterable[str] = RENDER_LIBRARIES) -> dict[str, str | None]:
    """``{distribution name: version or None when not installed}``."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
