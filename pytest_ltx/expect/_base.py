"""Base for expectation models: strict (unknown keys are errors), frozen, documented for the JSON Schema."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ExpectModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
