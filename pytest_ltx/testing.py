"""Public test helpers for people extending pytest-ltx.

:func:`check_family_lifecycle` walks a metric family (a built-in or one you register, see
:mod:`pytest_ltx.families`) through the whole golden-baseline lifecycle with pytest's ``pytester``:
missing → created (``--ltx-create-missing``) → pass → a changed clip fails on the family's baseline
values → updated (``--ltx-update-baselines``) → pass. Use it from your own test suite::

    pytest_plugins = ["pytester"]

    def test_mean_luma_lifecycle(pytester):
        pytester.makeconftest(MY_CONFTEST)     # or install your entry point
        check_family_lifecycle(
            pytester, family="mean_luma", expect={"mean_luma": {"max": 200}},
            card={"seed": 1}, changed_card={"seed": 1, "exposure": [{"start": 1, "gain": 1.8}]})

The clips are synthetic test cards (:mod:`pytest_ltx.testcard`, 64×64, 9 frames by default): ``card`` and
``changed_card`` are ``testcard:`` mappings; the change must move at least one of the family's baseline
scalars beyond its tolerance. Every step's pytest output is kept in the returned :class:`Lifecycle`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

__all__ = ["Lifecycle", "check_family_lifecycle"]

_CARD = {"width": 64, "height": 64, "frames": 9, "fps": 24}


@dataclass
class Lifecycle:
    """What :func:`check_family_lifecycle` saw: each step's output, and the family's baseline scalars as
    created and as updated."""

    outputs: dict[str, str] = field(default_factory=dict)
    created: dict[str, Any] = field(default_factory=dict)
    updated: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)


def _spec(item: str, card: Mapping[str, Any], expect: Mapping[str, Any]) -> str:
    # JSON is YAML: no quoting questions for whatever the caller put in
    return json.dumps({"clips": [{"id": item, "testcard": {**_CARD, **card}, "expect": dict(expect)}]}, indent=2)


def check_family_lifecycle(
    pytester: pytest.Pytester,
    *,
    family: str,
    expect: Mapping[str, Any],
    card: Mapping[str, Any],
    changed_card: Mapping[str, Any],
    item: str = "clip",
    spec: str = "family_life",
    args: tuple[str, ...] = (),
    subprocess: bool = False,
) -> Lifecycle:
    """Walk ``family`` through missing → create → pass → change fails → update → pass; assert each step.

    ``expect`` is the clip's ``expect:`` (it must switch the family on, and pass on both cards);
    ``args`` are added to every pytest run (``-n 2`` for xdist); ``subprocess`` runs pytest in a child
    process (needed when the family comes from an entry point installed for the test only and you want it
    loaded afresh). Raises ``AssertionError`` naming the step that went wrong, with pytest's output.
    """
    specs = pytester.path / "specs"
    specs.mkdir(exist_ok=True)
    spec_file = specs / f"{spec}.yaml"
    record = pytester.path / "baselines" / "specs" / spec / item / "testcard" / "record.json"
    life = Lifecycle()
    argv = ("specs/", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning", *args)

    def go(step: str, *more: str, passed: int = 0, failed: int = 0) -> pytest.RunResult:
        r = (pytester.runpytest_subprocess if subprocess else pytester.runpytest)(*argv, *more)
        out = r.stdout.str() + r.stderr.str()
        life.outputs[step] = out
        got = r.parseoutcomes()
        if got.get("passed", 0) != passed or got.get("failed", 0) != failed or got.get("errors", 0):
            raise AssertionError(f"step {step!r}: expected {passed} passed, {failed} failed; got {got}\n{out}")
        return r

    def scalars() -> dict[str, Any]:
        if not record.is_file():
            raise AssertionError(f"no baseline record at {record}")
        s = json.loads(record.read_text())["scalars"]
        return {k: v for k, v in s.items() if k.startswith(family + ".")}

    def results() -> dict[str, Any]:
        doc = json.loads((pytester.path / "ltx-report" / "results.json").read_text())
        (it,) = [i for i in doc["items"] if i["item"] == item]
        return it

    spec_file.write_text(_spec(item, card, expect))
    # 1. missing: the item fails and says how to create the baseline
    go("missing", failed=1)
    if "no golden baseline" not in life.outputs["missing"]:
        raise AssertionError(f"step 'missing': no 'no golden baseline' message\n{life.outputs['missing']}")
    # 2. created on request, with the family's values in it
    go("create", "--ltx-create-missing", passed=1)
    life.created = scalars()
    if not life.created:
        raise AssertionError(f"step 'create': the baseline holds no {family}.* scalars: {record.read_text()}")
    it = results()
    if family not in (it.get("evaluation") or {}):
        raise AssertionError(f"step 'create': results.json has no {family!r} section: {sorted(it['evaluation'])}")
    life.results = it["evaluation"][family]
    # 3. unchanged clip: passes, compared on the family's values
    go("pass", passed=1)
    checks = {o["check"]: o["status"] for o in results()["outcomes"]}
    compared = {k: v for k, v in checks.items() if k.startswith(f"baseline.{family}.")}
    if not compared or any(v != "passed" for v in compared.values()):
        raise AssertionError(f"step 'pass': the family's baseline checks are {compared or 'missing'}: {checks}")
    # 4. the clip changes: the family's baseline comparison fails
    spec_file.write_text(_spec(item, changed_card, expect))
    go("changed", failed=1)
    checks = {o["check"]: o["status"] for o in results()["outcomes"]}
    if not any(k.startswith(f"baseline.{family}.") and v == "failed" for k, v in checks.items()):
        raise AssertionError(f"step 'changed': no baseline.{family}.* check failed: {checks}\n"
                             f"{life.outputs['changed']}")
    # 5. update: passes and the record moves; 6. then a plain run passes on the new baseline
    go("update", "--ltx-update-baselines", passed=1)
    life.updated = scalars()
    if life.updated == life.created:
        raise AssertionError(f"step 'update': the {family}.* scalars did not change: {life.updated}")
    go("pass-updated", passed=1)
    return life
