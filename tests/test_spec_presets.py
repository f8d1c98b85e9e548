"""Presets: loading, precedence (built-in < preset < file defaults < clip < option), per-model refinements,
identity, and where each effective field came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_ltx.spec import SpecFileError, expand, load_spec_file
from pytest_ltx.spec.presets import Project, load_presets

PRESETS = """\
presets:
  draft:
    description: cheap PR gate
    steps: 4
    frames: 49
    seeds: [0]
    expect:
      motion: {cuts: 0}
    models:
      tiny: {steps: 1, width: 32, height: 32, frames: 9}
  full:
    steps: 40
    width: 768
"""

SPEC = """\
defaults:
  model: tiny
  preset: full
  fps: 25
clips:
  - id: hero
    prompt: a robot
    width: 64
  - id: card
    testcard: {width: 32, height: 32, frames: 9}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "presets.yaml").write_text(PRESETS, encoding="utf-8")
    (tmp_path / "specs" / "s.yaml").write_text(SPEC, encoding="utf-8")
    return tmp_path


def _items(root: Path, run_preset: str | None = None, run_model: str | None = None):
    proj = Project(root=root, presets=load_presets(root), run_preset=run_preset, run_model=run_model)
    return {i.clip_id: i for i in expand(load_spec_file(root / "specs" / "s.yaml", project=proj))}


def test_presets_load_from_the_specs_folder_and_pyproject(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.pytest-ltx.presets.nightly]\nsteps = 30\n')
    p = load_presets(project)
    assert p.names() == ["draft", "full", "nightly"] and not p.errors
    assert p.presets["draft"].description == "cheap PR gate"
    assert p.presets["draft"].where == "specs/presets.yaml:2"


def test_precedence_builtin_preset_defaults_clip(project: Path) -> None:
    hero = _items(project)["hero"]
    c = hero.clip
    assert (c.steps, c.width, c.fps, c.frames, c.model) == (40, 64, 25.0, 121, "tiny")
    f = hero.effective_fields()
    assert f["steps"]["origin"] == {"kind": "preset", "where": "preset full (specs/presets.yaml:12)"}
    assert f["width"]["origin"]["kind"] == "clip"
    assert f["fps"]["origin"] == {"kind": "defaults", "where": "specs/s.yaml:4"}
    assert f["frames"]["origin"]["kind"] == "built-in"
    assert f["preset"]["value"] == "full" and f["preset"]["origin"]["kind"] == "defaults"
    assert hero.name == "hero[seed=0,preset=full]"


def test_run_preset_replaces_the_files_choice_and_refines_per_model(project: Path) -> None:
    items = _items(project, run_preset="draft")
    hero = items["hero"]
    c = hero.clip
    # draft on the tiny model: steps/frames from models.tiny; width stays the clip's own
    assert (c.steps, c.frames, c.width, c.height) == (1, 9, 64, 32)
    assert hero.name == "hero[seed=0,preset=draft]"
    f = hero.effective_fields()
    assert f["preset"]["origin"] == {"kind": "option", "where": "--ltx-preset"}
    assert f["steps"]["origin"]["where"] == "preset draft (specs/presets.yaml:10)"
    assert f["expect.motion"]["origin"]["kind"] == "preset"
    # on another model the base draft applies
    other = _items(project, run_preset="draft", run_model="ltx23")["hero"]
    assert (other.clip.steps, other.clip.frames) == (4, 49)
    assert other.effective_fields(run_model="ltx23")["model"]["origin"] == {"kind": "option", "where": "--ltx-model"}


def test_a_test_card_takes_a_presets_expectations_but_keeps_its_id(project: Path) -> None:
    card = _items(project, run_preset="draft")["card"]
    assert card.name == "card" and card.clip.steps is None
    assert card.clip.expect.motion is not None and card.clip.expect.motion.cuts == 0


def test_draft_and_full_items_have_different_baseline_keys(project: Path) -> None:
    full = _items(project)["hero"].name
    draft = _items(project, run_preset="draft")["hero"].name
    assert full != draft


@pytest.mark.parametrize(
    ("presets", "expected"),
    [
        ("presets:\n  draft:\n    stepz: 4\n", "specs/presets.yaml:3: presets.draft: unknown key 'stepz' (did you mean 'steps'?)"),
        ("presets:\n  draft:\n    frames: 24\n", "specs/presets.yaml:3: presets.draft.frames: 24 is not 8k+1"),
        ("presets:\n  draft:\n    prompt: hi\n", "specs/presets.yaml:3: presets.draft.prompt: a preset cannot set 'prompt'"),
        ("presets:\n  draft:\n    models:\n      tiny: {steps: 0}\n", "presets.draft.models.tiny.steps: must be >= 1"),
        ("draft: {steps: 1}\n", "specs/presets.yaml:1: expected a mapping `presets: {NAME: {clip fields}}`"),
    ],
)
def test_bad_presets_are_file_line_errors_in_the_specs_that_use_them(project: Path, presets: str, expected: str) -> None:
    (project / "specs" / "presets.yaml").write_text(presets, encoding="utf-8")
    p = load_presets(project)
    assert any(expected in str(e) for e in p.errors), [str(e) for e in p.errors]
    with pytest.raises(SpecFileError) as e:
        _items(project, run_preset=None)
    assert expected in str(e.value) or "unknown preset 'full'" in str(e.value)


def test_an_unknown_preset_names_the_known_ones(project: Path) -> None:
    (project / "specs" / "s.yaml").write_text(SPEC.replace("preset: full", "preset: ful"))
    with pytest.raises(SpecFileError) as e:
        _items(project)
    assert "specs/s.yaml:3: defaults.preset: unknown preset 'ful' (known: draft, full)" in str(e.value)


def test_presets_json_schema_validates_the_shipped_presets() -> None:
    import yaml

    from pytest_ltx.spec.presets import presets_json_schema

    jsonschema = pytest.importorskip("jsonschema")

    schema = presets_json_schema()
    shipped = yaml.safe_load((Path(__file__).parents[1] / "specs" / "presets.yaml").read_text())
    jsonschema.validate(shipped, schema)
    assert {"draft", "full"} <= set(shipped["presets"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"presets": {"draft": {"prompt": "x"}}}, schema)


def test_the_report_lists_each_spec_field_with_its_origin() -> None:
    from pytest_ltx.report.page import _provenance
    from pytest_ltx.report.results import ItemResult

    r = ItemResult(nodeid="s.yaml::a[seed=0,preset=draft]", spec="s.yaml", clip_id="a", item="a[seed=0,preset=draft]",
                   source="render", status="passed",
                   provenance={"fingerprint": "sha256:x", "spec": {
                       "preset": "draft", "template": None, "vars": {},
                       "fields": {"steps": {"value": 1, "origin": {"kind": "preset", "where": "preset draft (p.yaml:3)"},
                                            "origin_text": "preset draft (p.yaml:3)"}}}})
    rows = dict(_provenance(r))
    assert rows["spec preset"] == "draft"
    assert rows["spec steps"] == "1  ← preset draft (p.yaml:3)"
