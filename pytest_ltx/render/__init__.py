"""Renderers: turn a :class:`RenderRequest` into a clip. See ``base.py`` for the contract.

Backends: ``ltx2`` (diffusers ``LTX2Pipeline`` for real checkpoints and the embedded tiny model) and
``tiny`` (builds the embedded model's folder on first use). Nothing heavy is imported here. The loaded
pipelines live in :mod:`pytest_ltx.render.pool` (``get_renderer``), which this package does not import:
model profiles use the types here, and the pool uses the profiles.
"""

from pytest_ltx.render.base import (
    GUIDANCE_KEYS,
    Renderer,
    RenderError,
    RenderRequest,
    RenderResult,
)

__all__ = [
    "GUIDANCE_KEYS",
    "RenderError",
    "Renderer",
    "RenderRequest",
    "RenderResult",
]
