"""A warm rerun restates what an earlier run measured and concluded when every input is the same (the
item's remembered measurement, ``item/pipeline.py``), and measures again as soon as one is not: the
baseline's files, the item's expectations, its clip, its report media, the run's settings. A conclusion
holding an error is never remembered."""

from __future__ import annotations

import json

import pytest

from tests.test_plugin_baselines import base_dir, cards, results, run, write_spec

pytestmark = [
    pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning"),
    pytest.mark.usefixtures("plugin_warm_modules"),  # see tests/fixtures/plugin.py
]


def items(pytester: pytest.Pytester) -> dict[str, dict]:
    return {i["item"]: i for i in results(pytester)["items"]}


def remembered(pytester: pytest.Pytester) -> dict[str, bool]:
    return {name: bool(i["timings"].get("remembered")) for name, i in items(pytester).items()}


def _same_verdict(a: dict, b: dict) -> None:
    assert a["status"] == b["status"] and a["outcomes"] == b["outcomes"]
    assert a["baseline"] == b["baseline"] and a["artifacts"] == b["artifacts"]
    strip = lambda ev: {k: v for k, v in ev.items() if k not in ("metric_seconds", "cached_metrics")}  # noqa: E731
    assert strip(a["evaluation"]) == strip(b["evaluation"])


def test_a_warm_rerun_restates_the_verdict_until_an_input_changes(pytester: pytest.Pytester) -> None:
    write_spec(pytester, cards())
    run(pytester, "--ltx-create-missing").assert_outcomes(passed=2)
    run(pytester).assert_outcomes(passed=2)  # compared: measured from the evaluation cache, remembered
    compared = items(pytester)
    assert remembered(pytester) == {"a": False, "b": False}
    run(pytester).assert_outcomes(passed=2)
    assert remembered(pytester) == {"a": True, "b": True}
    assert "conclusion remembered from an earlier run" in (pytester.path / "ltx-report" / "index.html").read_text()
    again = items(pytester)
    for k in ("a", "b"):
        _same_verdict(compared[k], again[k])
        assert again[k]["timings"]["metrics_cached"] == compared[k]["timings"]["metrics_cached"]

    # the baseline's files change (a reviewer edits a number): a is compared again, and fails
    rec_path = base_dir(pytester, "a") / "record.json"
    original = rec_path.read_bytes()
    rec = json.loads(original)
    rec["scalars"]["motion.flow_mean"] = rec["scalars"]["motion.flow_mean"] * 10 + 5
    rec_path.write_text(json.dumps(rec))
    run(pytester).assert_outcomes(passed=1, failed=1)
    assert remembered(pytester) == {"a": False, "b": True}
    assert items(pytester)["a"]["outcomes"] != compared["a"]["outcomes"]
    rec_path.write_bytes(original)  # and back: the earlier conclusion is valid again
    run(pytester).assert_outcomes(passed=2)
    assert remembered(pytester) == {"a": True, "b": True}

    # an expectation changes (not the clip, not the measurements' configuration)
    write_spec(pytester, cards().replace("    testcard: {width: 64, height: 64, frames: 9, fps: 24, seed: 1}",
                                         "    testcard: {width: 64, height: 64, frames: 9, fps: 24, seed: 1}\n"
                                         "    expect: {motion: {cuts: 1}}"))
    run(pytester).assert_outcomes(passed=1, failed=1)
    assert remembered(pytester) == {"a": False, "b": True}
    assert {o["check"] for o in items(pytester)["a"]["outcomes"] if o["status"] == "failed"} == {"motion.cuts"}
    write_spec(pytester, cards())

    # a report picture is gone: measured again, and drawn again
    kf = pytester.path / "ltx-report" / items(pytester)["b"]["artifacts"]["keyframes"][0]["file"]
    kf.unlink()
    run(pytester).assert_outcomes(passed=2)
    assert remembered(pytester) == {"a": True, "b": False} and kf.is_file()

    # the clip changes
    write_spec(pytester, cards(b="seed: 3"))
    run(pytester).assert_outcomes(passed=1, failed=1)
    assert remembered(pytester) == {"a": True, "b": False}
    write_spec(pytester, cards())

    # settings that must measure afresh: --ltx-no-cache, updates
    for args in (("--ltx-no-cache",), ("--ltx-update-baselines",)):
        run(pytester, *args).assert_outcomes(passed=2)
        assert remembered(pytester) == {"a": False, "b": False}, args


def test_a_conclusion_holding_an_error_is_never_remembered(pytester: pytest.Pytester) -> None:
    write_spec(pytester, cards())
    run(pytester, "--ltx-create-missing").assert_outcomes(passed=2)
    npz = base_dir(pytester, "a") / "keyframes.npz"
    good = npz.read_bytes()
    npz.write_bytes(b"PK\x03\x04 truncated by a bad merge")
    for _ in range(2):
        run(pytester).assert_outcomes(passed=1, failed=1)
        a = items(pytester)["a"]
        assert not a["timings"].get("remembered")
        assert [o["status"] for o in a["outcomes"] if o["check"] == "baseline.read"] == ["error"]
    npz.write_bytes(good)
    run(pytester).assert_outcomes(passed=2)
    run(pytester).assert_outcomes(passed=2)
    assert remembered(pytester) == {"a": True, "b": True}


def test_a_missing_baseline_is_looked_for_every_run(pytester: pytest.Pytester) -> None:
    """"Missing" names the command that creates it and the other models' records: never restated."""
    write_spec(pytester, cards())
    for _ in range(2):
        run(pytester).assert_outcomes(failed=2)
        assert remembered(pytester) == {"a": False, "b": False}
    run(pytester, "--ltx-create-missing").assert_outcomes(passed=2)
    run(pytester).assert_outcomes(passed=2)
    run(pytester).assert_outcomes(passed=2)
    assert remembered(pytester) == {"a": True, "b": True}


def test_other_library_or_code_versions_and_a_corrupt_entry_measure_again(pytester: pytest.Pytester,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    # the module the inner runs use (an in-process run before may have dropped and re-imported it)
    evalcache = importlib.import_module("pytest_ltx.evalcache")
    write_spec(pytester, cards(b=None))
    run(pytester, "--ltx-create-missing").assert_outcomes(passed=1)
    run(pytester).assert_outcomes(passed=1)
    run(pytester).assert_outcomes(passed=1)
    assert remembered(pytester) == {"a": True}
    real = evalcache._library_versions()
    with monkeypatch.context() as m:
        m.setattr(evalcache, "_library_versions", lambda: {**real, "numpy": "0.0.1"})
        run(pytester).assert_outcomes(passed=1)
        assert remembered(pytester) == {"a": False}
    with monkeypatch.context() as m:
        m.setattr(evalcache, "code_digest", lambda: "0" * 64)
        run(pytester).assert_outcomes(passed=1)
        assert remembered(pytester) == {"a": False}
    # (the other code digest drew the test card again: a new file, so its media are checked once more)
    run(pytester).assert_outcomes(passed=1)
    run(pytester).assert_outcomes(passed=1)
    assert remembered(pytester) == {"a": True}
    entries = sorted((pytester.path / ".ltx-cache" / "remembered").rglob("*.pkl"))
    assert entries
    for e in entries:
        e.write_bytes(e.read_bytes()[:-20])  # truncated: a logged miss, removed, written again
    run(pytester).assert_outcomes(passed=1)
    assert remembered(pytester) == {"a": False}
    run(pytester).assert_outcomes(passed=1)
    assert remembered(pytester) == {"a": True}
