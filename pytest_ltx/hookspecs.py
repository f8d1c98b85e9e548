"""Hooks pytest-ltx adds to pytest (registered with ``pluginmanager.add_hookspecs`` in ``pytest_addhooks``).

Implement them in a ``conftest.py`` or a pytest plugin. A package that should work without pytest too
(``pytest-ltx evaluate``) publishes its families in the ``pytest_ltx.families`` entry-point group instead;
see :mod:`pytest_ltx.families`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_ltx.families import FamilyRegistry


@pytest.hookspec(historic=False)
def pytest_ltx_register_families(registry: FamilyRegistry) -> None:
    """Register metric families for this run: they are computed when a spec's ``expect:`` names their key,
    checked, written to ``results.json`` under their name and kept in golden baselines like the built-ins.

    Called once per run (in ``pytest_configure``), with a registry that already holds the built-in and the
    entry-point families; a duplicate name or expectation key raises
    :class:`~pytest_ltx.families.FamilyError` (a usage error).

    Example (a ``conftest.py``)::

        from pydantic import BaseModel, ConfigDict
        from pytest_ltx.families import MetricFamily
        from pytest_ltx.outcome import Outcome, Status
        from pytest_ltx.stream import Consumer


        class LumaExpect(BaseModel):
            model_config = ConfigDict(extra="forbid", frozen=True)
            min: float = 0.0
            max: float = 255.0


        class LumaResult:
            def __init__(self, mean):
                self.mean = mean

            def to_dict(self):
                return {"mean": self.mean}


        class LumaConsumer(Consumer):
            name = "mean_luma"
            frame_side = 64

            def begin(self, info):
                self.means = []

            def feed(self, frame):
                self.means.append(float(frame.gray(64).mean()))

            def finish(self, info):
                return LumaResult(sum(self.means) / max(1, len(self.means)))


        def check(result, expect, context):
            ok = expect.min <= result.mean <= expect.max
            return [Outcome("mean_luma.range", Status.PASSED if ok else Status.FAILED,
                            f"mean luma {result.mean:.1f}, allowed {expect.min}–{expect.max}")]


        def pytest_ltx_register_families(registry):
            registry.register(MetricFamily(
                "mean_luma", lambda expect, context: LumaConsumer(), expect_key="mean_luma",
                expect_model=LumaExpect, check=check, scalars=lambda r: {"mean": r.mean}))

    A spec then says ``expect: {mean_luma: {min: 100}}``.
    """
