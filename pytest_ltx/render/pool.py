"""The process-wide renderers: one loaded pipeline per model profile, reused by every later item.

Kept apart from :mod:`pytest_ltx.render.base` (the request/result types the model profiles also use) so that
the import graph has no cycle: ``models → render.base`` and ``render.pool → render.ltx2 → models``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from pytest_ltx.render import ltx2
from pytest_ltx.render.base import Renderer

if TYPE_CHECKING:
    from pytest_ltx.models import ModelProfile

__all__ = ["clear_renderers", "get_renderer"]

_RENDERERS: dict[Any, Renderer] = {}
_LOCK = threading.Lock()


def get_renderer(profile: "ModelProfile") -> Renderer:
    """The process-wide renderer for ``profile``: loading a pipeline costs seconds (minutes for real
    weights), so it happens once and every later item reuses it. Raises :class:`RenderError` when the
    model cannot be found or loaded."""
    with _LOCK:
        r = _RENDERERS.get(profile)
        if r is None:
            _release_gpu_renderers()  # switching profile: the previous GPU pipeline goes first
            r = ltx2.LTX2Renderer(profile)
            _RENDERERS[profile] = r
        return r


def _release_gpu_renderers() -> list[Any]:
    """Drop every loaded pipeline that lives on a GPU, and give its memory back: a worker holds one
    GPU pipeline at a time (two 65 GB pipelines do not share an 80 GB card). CPU pipelines stay."""
    gone = [p for p, r in _RENDERERS.items() if getattr(getattr(r, "placement", None), "is_cuda", False)]
    for p in gone:
        r = _RENDERERS.pop(p)
        release = getattr(r, "release", None)
        if release is not None:
            release()
    if gone:
        from pytest_ltx.render.guard import free_cuda

        free_cuda()
    return gone


def clear_renderers() -> None:
    """Forget loaded pipelines (frees memory; tests use it to force a reload)."""
    with _LOCK:
        _RENDERERS.clear()
