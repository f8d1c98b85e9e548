"""Model identity through the plugin (pytester, the embedded tiny model).

Library drift alone keeps the baseline and warns with the versions; a real identity change makes the
baseline "missing" with the changed component named, and the old identity's baseline is unused and
pruned on request.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.test_plugin_baselines import TINY, base_dir, outcomes, results, run, write_spec

pytestmark = [
    pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning"),
    pytest.mark.usefixtures("plugin_warm_modules"),
]

ITEM = "noise[seed=0]"
OLD = "tiny-000000000000"


def _model_key(pytester: pytest.Pytester) -> str:
    (d,) = (pytester.path / "baselines" / "specs" / "r" / ITEM).iterdir()
    return d.name


def test_library_drift_compares_and_warns_with_versions(pytester: pytest.Pytester) -> None:
    write_spec(pytester, TINY, name="r.yaml")
    run(pytester, "--ltx-create-missing").assert_outcomes(passed=1)
    p = base_dir(pytester, ITEM, model=_model_key(pytester), spec="r") / "record.json"
    doc = json.loads(p.read_text())
    doc["environment"]["libraries"]["transformers"] = "5.23.0"
    p.write_text(json.dumps(doc, indent=2, sort_keys=True))

    r = run(pytester)
    r.assert_outcomes(passed=1)
    r.stdout.fnmatch_lines(["1 baseline(s) made in a different environment (compared anyway): *transformers 5.23.0 → *"])
    item = results(pytester)["items"][0]
    assert item["baseline"]["status"] == "compared"


def test_changed_identity_names_the_component_and_the_old_baseline_is_pruned(pytester: pytest.Pytester) -> None:
    write_spec(pytester, TINY, name="r.yaml")
    run(pytester, "--ltx-create-missing").assert_outcomes(passed=1)
    now = _model_key(pytester)
    # the same item's baseline as made by a model whose transformer weights differed
    src = base_dir(pytester, ITEM, model=now, spec="r")
    old = src.parent / OLD
    shutil.move(str(src), str(old))
    doc = json.loads((old / "record.json").read_text())
    doc["model_key"] = OLD
    ident = doc["provenance"]["model_identity"]
    ident["components"]["transformer"]["weights"] = "0" * 12
    (old / "record.json").write_text(json.dumps(doc, indent=2, sort_keys=True))

    r = run(pytester)
    r.assert_outcomes(failed=1)
    o = outcomes(results(pytester), ITEM)["baseline.missing"]
    assert f"the model changed since the baseline of {OLD}: transformer: weights was made" in o["message"], o
    r.stdout.fnmatch_lines(["*unused*", f"*specs/r/{ITEM.replace('[', '[[]')} [[]{OLD}[]]*"])
    assert old.is_dir()  # listing never deletes

    r = run(pytester, "--ltx-update-baselines", "--ltx-prune-baselines")
    r.assert_outcomes(passed=1)
    assert not old.exists() and base_dir(pytester, ITEM, model=now, spec="r").is_dir()
