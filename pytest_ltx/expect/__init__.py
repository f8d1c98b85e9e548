"""Expectations: what a clip must satisfy. One module per family: its pydantic model and its checks."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from ._base import ExpectModel
from .artifacts import ArtifactsExpect
from .audio import AudioExpect
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
    "ArtifactsExpect",
    "AudioExpect",
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
    """``expect:`` of a clip. A family left out is not measured at all (so it costs nothing).

    The built-in families are fields; a third-party family's key (:mod:`pytest_ltx.families`) is validated
    by its ``expect_model`` and kept as an extra attribute, read with :meth:`family`. Any other key is an
    error (``extra_forbidden``, like a misspelt built-in).
    """

    # extras are admitted only by _registered_families below, which validates each against its family
    model_config = ConfigDict(extra="allow", frozen=True,
                              json_schema_extra=lambda s: s.update(additionalProperties=False))

    format: FormatExpect = Field(default_factory=FormatExpect)
    determinism: DeterminismExpect | None = None
    budget: BudgetExpect | None = None
    motion: MotionExpect | None = None
    av_sync: AVSyncExpect | None = None
    text: TextExpect | None = None
    clip: ClipScoreExpect | None = None
    audio: AudioExpect | None = None
    artifacts: ArtifactsExpect | None = None
    export: ExportExpect | None = None
    baseline: BaselineExpect = Field(default_factory=BaselineExpect)

    @model_validator(mode="before")
    @classmethod
    def _registered_families(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        extra = [k for k in data if k not in cls.model_fields]
        if not extra:
            return data
        from pytest_ltx.families import registry

        reg = registry()
        data = dict(data)
        errors: list[Any] = []
        for k in extra:
            fam = reg.by_expect_key(k) if isinstance(k, str) else None
            model = fam.model() if fam is not None else None
            if model is None:
                errors.append({"type": "extra_forbidden", "loc": (k,), "input": data[k]})
                continue
            v = data[k]
            if v is None or isinstance(v, model):
                continue
            try:
                data[k] = model.model_validate(v)
            except ValidationError as e:
                for d in e.errors(include_url=False):
                    known = d["type"] in _CORE_TYPES
                    errors.append({"type": d["type"] if known else PydanticCustomError(d["type"], d["msg"]),
                                   "loc": (k, *d["loc"]), "input": d["input"],
                                   **({"ctx": d["ctx"]} if known and "ctx" in d else {})})
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return data

    @classmethod
    def known_keys(cls) -> list[str]:
        """Every key ``expect:`` takes now: the fields and the registered families' keys, sorted."""
        from pytest_ltx.families import registry

        return sorted(set(cls.model_fields) | {f.expect_key for f in registry() if f.expect_key})

    @classmethod
    def extra_model(cls, key: str) -> Any:
        """The model of a registered third-party family's key (None if there is none)."""
        from pytest_ltx.families import registry

        fam = registry().by_expect_key(key) if key not in cls.model_fields else None
        return fam.model() if fam is not None else None

    def family(self, key: str) -> Any:
        """The expectation under ``key`` (a built-in field or a registered family's), None when unset."""
        if key in type(self).model_fields:
            return getattr(self, key)
        return (self.__pydantic_extra__ or {}).get(key)


def _core_types() -> frozenset[str]:
    from pydantic_core import core_schema

    return frozenset(core_schema.ErrorType.__args__)  # type: ignore[attr-defined]


_CORE_TYPES = _core_types()
