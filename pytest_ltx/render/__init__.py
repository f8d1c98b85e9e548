"""Renderers: turn a :class:`RenderRequest` into a clip. See ``base.py`` for the contract.

Backends: ``ltx2`` (diffusers ``LTX2Pipeline`` for real checkpoints and the embedded tiny model) and
``tiny`` (builds the embedded model's folder on first use). Nothing heavy is imported here.
"""

from pytest_ltx.render.base import (
    GUIDANCE_KEYS,
    Renderer,
    RenderError,
    RenderRequest,
    RenderResult,
    clear_renderers,
    get_renderer,
)

__all__ = [
    "GUIDANCE_KEYS",
    "RenderError",
    "Renderer",
    "RenderRequest",
    "RenderResult",
    "clear_renderers",
    "get_renderer",
]
