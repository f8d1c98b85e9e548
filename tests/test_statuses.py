"""Status enums serialise to exactly the strings results.json and the baselines always held."""

from __future__ import annotations

import json

from pytest_ltx.outcome import BaselineStatus, FailureKind, Status, jsonable


def test_baseline_status_values_are_the_historic_strings() -> None:
    assert [s.value for s in BaselineStatus] == ["compared", "missing", "created", "updated", "unreadable",
                                                 "not written", "disabled"]
    for s in BaselineStatus:
        assert str(s) == f"{s}" == s.value == s and BaselineStatus(s.value) is s


def test_jsonable_turns_every_enum_into_its_plain_value() -> None:
    doc = jsonable({"status": Status.FAILED, "kind": FailureKind.REGRESSION,
                    "baseline": {"status": BaselineStatus.NOT_WRITTEN}, "list": [Status.PASSED]})
    assert doc == {"status": "failed", "kind": "regression", "baseline": {"status": "not written"},
                   "list": ["passed"]}
    assert type(doc["status"]) is str and type(doc["baseline"]["status"]) is str
    assert json.loads(json.dumps(doc)) == doc
