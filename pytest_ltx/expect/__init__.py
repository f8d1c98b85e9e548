"""Expectations: what a clip must satisfy. One module per family: its pydantic model and its checks."""

from __future__ import annotations

from pydantic import Field

from ._base import ExpectModel
from .avsync import AVSyncExpect
from .baseline import BaselineExpect
from .clip_score import ClipScoreExpect
from .export import ExportExpect
from .motion import MotionExpect
from .render import BudgetExpect, DeterminismExpect, FormatExpect
from .text import TextExpect

__all__ = [
    "Expectations",
    "AVSyncExpect",
    "BaselineExpect",
    "BudgetExpect",
    "ClipScoreExpect",
    "DeterminismExpect",
    "ExportExpect",
    "FormatExpect",
    "MotionExpect",
    "TextExpect",
]


class Expectations(ExpectModel):
    """``expect:`` of a clip. A family left out is not measured at all (so it costs nothing)."""

    format: FormatExpect = Field(default_factory=FormatExpect)
    determinism: DeterminismExpect | None = None
    budget: BudgetExpect | None = None
    motion: MotionExpect | None = None
    av_sync: AVSyncExpect | None = None
    text: TextExpect | None = None
    clip: ClipScoreExpect | None = None
    export: ExportExpect | None = None
    baseline: BaselineExpect = Field(default_factory=BaselineExpect)
