"""The spec language through the plugin (pytester): value-named ids and -k, presets for a whole run with
separate baselines, explain, the provenance in results.json, baseline migration from positional names."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning"),
    pytest.mark.usefixtures("plugin_warm_modules"),  # see tests/fixtures/plugin.py
]

PRESETS = """\
presets:
  full:
    steps: 2
    frames: 17
  draft:
    steps: 1
    models:
      tiny: {frames: 9}
"""

RENDER = """\
defaults:
  model: tiny
  preset: full
  width: 64
  height: 64
  guidance: {stg_blocks: [1]}
clips:
  - id: noise
    prompt: "a {subject}"
    frames: 17
    vars:
      subject: [robot]
"""


def write(pytester: pytest.Pytester, name: str, body: str) -> Path:
    p = pytester.path / "specs" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(body)
    return p


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("specs/", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
                              *args)


def results(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "ltx-report" / "results.json").read_text())


def test_value_named_ids_select_with_k_and_presets_and_packs_are_not_specs(pytester: pytest.Pytester) -> None:
    write(pytester, "presets.yaml", PRESETS)
    write(pytester, "packs/rows.yaml", "- {subject: cat}\n")
    write(pytester, "m.yaml", """\
defaults: {model: tiny}
clips:
  - id: hero
    prompt: "A {subject} in {style}"
    seeds: [0, 1]
    vars:
      subject: [robot, cat, astronaut]
      style: [noir, pastel]
  - id: pack
    prompt: "A {subject}"
    vars: {from: packs/rows.yaml}
""")
    r = pytester.runpytest("--collect-only", "-q", "specs/")
    r.stdout.fnmatch_lines(["specs/m.yaml::hero[[]subject=robot,style=noir,seed=0[]]",
                            "specs/m.yaml::pack[[]subject=cat,seed=0[]]", "*13 tests collected*"])
    assert "presets.yaml" not in r.stdout.str() and "rows.yaml" not in r.stdout.str()
    r = pytester.runpytest("--collect-only", "-q", "specs/", "-k", "noir")
    r.stdout.fnmatch_lines(["*6/13 tests collected (7 deselected)*"])


def test_an_unknown_run_preset_is_a_usage_error(pytester: pytest.Pytester) -> None:
    write(pytester, "presets.yaml", PRESETS)
    write(pytester, "r.yaml", RENDER)
    r = run(pytester, "--ltx-preset", "darft")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*--ltx-preset 'darft' is not a preset (known: draft, full; did you mean 'draft'?)*"])


def test_run_preset_changes_fields_and_keeps_baselines_apart(pytester: pytest.Pytester) -> None:
    write(pytester, "presets.yaml", PRESETS)
    write(pytester, "r.yaml", RENDER.replace("    frames: 17\n", ""))
    r = run(pytester, "--ltx-create-missing")
    r.assert_outcomes(passed=1)
    full = results(pytester)["items"][0]
    assert full["item"] == "noise[subject=robot,seed=0,preset=full]"
    fields = full["provenance"]["spec"]["fields"]
    assert fields["steps"]["value"] == 2 and fields["steps"]["origin"]["kind"] == "preset"
    assert full["provenance"]["encode"]["faststart"] is True  # the encode settings are provenance too

    pytester.makeini("[pytest]\nltx_preset = draft\n")  # the ini key, as a nightly/PR config would
    r = run(pytester, "--ltx-create-missing")
    r.assert_outcomes(passed=1)
    draft = results(pytester)["items"][0]
    assert draft["item"] == "noise[subject=robot,seed=0,preset=draft]"
    f = draft["provenance"]["spec"]["fields"]
    assert (f["steps"]["value"], f["frames"]["value"]) == (1, 9)
    assert f["preset"]["origin"] == {"kind": "option", "where": "--ltx-preset"}
    assert draft["params"]["steps"] == 1 and draft["params"]["frames"] == 9
    base = pytester.path / "baselines" / "specs" / "r"
    assert sorted(p.name for p in base.iterdir()) == ["noise[subject=robot,seed=0,preset=draft]",
                                                      "noise[subject=robot,seed=0,preset=full]"]
    # a whole-suite run of one tier never calls the other tier's baselines unused
    r = run(pytester, "--ltx-prune-baselines")
    r.assert_outcomes(passed=1)
    assert len(list(base.iterdir())) == 2
    pytester.makeini("[pytest]\n")
    r = run(pytester, "--ltx-prune-baselines")
    r.assert_outcomes(passed=1)
    assert len(list(base.iterdir())) == 2


def test_explain_prints_every_field_with_its_origin(pytester: pytest.Pytester, capsys) -> None:
    from pytest_ltx.cli import main

    write(pytester, "presets.yaml", PRESETS)
    write(pytester, "r.yaml", RENDER)
    old = os.getcwd()
    os.chdir(pytester.path)
    try:
        code = main(["explain", "specs/r.yaml::noise[subject=robot,seed=0,preset=draft]", "--preset", "draft"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "prompt           a robot" in out and "template         a {subject}" in out
        assert "subject = robot   (vars.subject[0])" in out
        lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ") and len(ln.split()) > 1}
        assert "option (--ltx-preset)" in lines["preset"]
        assert "clip (specs/r.yaml:10)" in lines["frames"] and lines["frames"].split()[1] == "17"
        assert "preset draft (specs/presets.yaml:6)" in lines["steps"] and lines["steps"].split()[1] == "1"
        assert "file defaults (specs/r.yaml:4)" in lines["width"]
        assert "built-in default" in lines["fps"]
        assert "file defaults (specs/r.yaml:2)" in lines["model"]
        cache_line = lines["cache"]
        key = cache_line.split()[2]
        assert len(key) == 64 and "not rendered yet" in cache_line

        code = main(["explain", "specs/r.yaml", "--json"])
        doc = json.loads(capsys.readouterr().out)
        assert doc[0]["nodeid"] == "specs/r.yaml::noise[subject=robot,seed=0,preset=full]"
        assert doc[0]["fields"]["frames"]["origin"]["kind"] == "clip"
        assert doc[0]["cache_key"] != key  # another preset, another render
        assert main(["explain", "specs/r.yaml::nothing"]) == 2
    finally:
        os.chdir(old)


def test_baselines_under_positional_names_are_found_and_moved(pytester: pytest.Pytester) -> None:
    from dataclasses import replace

    from pytest_ltx.baseline import BaselineStore

    write(pytester, "c.yaml", """\
defaults: {expect: {motion: {}}}
clips:
  - id: cards
    prompts: [a red card, a blue card]
    testcard: {width: 64, height: 64, frames: 9, fps: 24, seed: 1}
""")
    run(pytester, "--ltx-create-missing").assert_outcomes(passed=2)
    store = BaselineStore(pytester.path / "baselines")
    # pretend they were written by the release that numbered prompts
    for new, old in (("cards[red-card]", "cards[p0]"), ("cards[blue-card]", "cards[p1]")):
        rec = store.load(f"specs/c/{new}", "testcard")
        store.queue(replace(rec, item_key=f"specs/c/{old}"))
    store.flush()
    store.prune([(f"specs/c/{n}", "testcard") for n in ("cards[red-card]", "cards[blue-card]")])
    base = pytester.path / "baselines" / "specs" / "c"
    assert sorted(p.name for p in base.iterdir()) == ["cards[p0]", "cards[p1]"]

    r = run(pytester)
    r.assert_outcomes(passed=2)
    r.stdout.fnmatch_lines(["*old positional name 'specs/c/cards[[]p0[]]'*--ltx-update-baselines* moves it*"])
    r = run(pytester, "--ltx-update-baselines")
    r.assert_outcomes(passed=2)
    assert sorted(p.name for p in base.iterdir()) == ["cards[blue-card]", "cards[red-card]"]
    run(pytester).assert_outcomes(passed=2)
