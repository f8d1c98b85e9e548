"""Templates, variables, prompt packs and value-named item ids."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pytest_ltx.spec import SpecFileError, expand, load_spec_file, load_spec_text
from pytest_ltx.spec.presets import Project
from pytest_ltx.spec.vars import prompt_label, template_fields, value_slug

MATRIX = """\
defaults:
  model: tiny
clips:
  - id: hero
    prompt: "A {subject} in {style}"
    seeds: [0, 1]
    vars:
      subject: [robot, cat, astronaut]
      style: [noir, pastel]
"""


def _names(text: str, tmp_path: Path | None = None) -> list[str]:
    if tmp_path is None:
        return [i.name for i in expand(load_spec_text(text))]
    (tmp_path / "s.yaml").write_text(text, encoding="utf-8")
    return [i.name for i in expand(load_spec_file(tmp_path / "s.yaml", project=Project(root=tmp_path)))]


def _errors(text: str, tmp_path: Path, name: str = "s.yaml") -> list[str]:
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(SpecFileError) as e:
        load_spec_file(tmp_path / name, project=Project(root=tmp_path))
    return [str(x) for x in e.value.errors]


def test_a_3x2_matrix_with_2_seeds_is_12_value_named_items() -> None:
    items = expand(load_spec_text(MATRIX))
    assert len(items) == 12
    names = [i.name for i in items]
    assert len(set(names)) == 12
    assert names[:4] == [
        "hero[subject=robot,style=noir,seed=0]",
        "hero[subject=robot,style=noir,seed=1]",
        "hero[subject=robot,style=pastel,seed=0]",
        "hero[subject=robot,style=pastel,seed=1]",
    ]
    by = {i.name: i for i in items}
    it = by["hero[subject=astronaut,style=pastel,seed=1]"]
    assert it.prompt == "A astronaut in pastel" and it.template == "A {subject} in {style}"
    assert it.vars == {"subject": "astronaut", "style": "pastel"} and it.seed == 1
    assert it.to_render_request("tiny").prompt == "A astronaut in pastel"


def test_inserting_or_reordering_values_renames_no_existing_item() -> None:
    before = set(_names(MATRIX))
    inserted = MATRIX.replace("[robot, cat, astronaut]", "[dragon, robot, cat, knight, astronaut]").replace(
        "[noir, pastel]", "[pastel, sepia, noir]")
    after = _names(inserted)
    assert before <= set(after)
    assert len(after) == 5 * 3 * 2


def test_a_single_value_fills_the_template_but_stays_out_of_the_id() -> None:
    text = MATRIX.replace("      style: [noir, pastel]\n", "      style: noir\n")
    items = expand(load_spec_text(text))
    assert [i.name for i in items][:2] == ["hero[subject=robot,seed=0]", "hero[subject=robot,seed=1]"]
    assert items[0].prompt == "A robot in noir"


def test_zip_pairs_rows_and_a_name_column_labels_them() -> None:
    text = """\
clips:
  - id: ad
    prompt: "{product} in {color} on {surface}"
    negative_prompt: "a {color} logo"
    vars:
      zip:
        name: [x1, x2]
        product: [Acme X1, Acme X2]
        color: [red, blue]
      surface: [sand, snow]
"""
    items = expand(load_spec_text(text))
    assert [i.name for i in items] == ["ad[x1,surface=sand,seed=0]", "ad[x1,surface=snow,seed=0]",
                                       "ad[x2,surface=sand,seed=0]", "ad[x2,surface=snow,seed=0]"]
    assert items[2].prompt == "Acme X2 in blue on sand" and items[2].negative_prompt == "a blue logo"
    assert items[2].to_render_request().negative_prompt == "a blue logo"


def test_values_become_safe_id_parts() -> None:
    assert value_slug("Acme X1 / Red") == "acme-x1-red"
    assert value_slug(0.5) == "0.5" and value_slug(3.0) == "3"
    assert value_slug("日本").startswith("h")  # nothing id-safe left: a stable hash
    text = MATRIX.replace("[robot, cat, astronaut]", '["Robot Arm", "robot-arm"]')
    errs = []
    try:
        load_spec_text(text, Path("s.yaml"))
    except SpecFileError as e:
        errs = [str(x) for x in e.errors]
    assert errs and "give the same item id" in errs[0] and "add a 'name' column" in errs[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('clips:\n  - id: a\n    prompt: "A {subject}"\n',
         "s.yaml:3: clips[0].prompt: placeholder {subject} has no variable (this clip has no vars)"),
        ('clips:\n  - id: a\n    prompt: "A {subject}"\n    vars:\n      subject: [x]\n      mood: [y]\n',
         "s.yaml:6: clips[0].vars.mood: variable 'mood' is not used by any template"),
        ('clips:\n  - id: a\n    prompt: "A {subject!r}"\n    vars: {subject: [x]}\n',
         "s.yaml:3: clips[0].prompt: placeholder '{subject!r}' is not a variable name"),
        ('clips:\n  - id: a\n    prompt: "A {x}"\n    vars:\n      zip: {x: [1, 2], y: [a]}\n',
         "s.yaml:5: clips[0].vars.zip: zip lists must have the same length (x: 2, y: 1)"),
        ('clips:\n  - id: a\n    prompt: "A {x}"\n    vars:\n      x: [a, b, a]\n',
         "s.yaml:5: clips[0].vars.x[2]: value 'a' is listed twice (first at [0])"),
        ('defaults:\n  vars: {x: [a]}\nclips:\n  - id: a\n    prompt: "plain"\n',
         "s.yaml:2: defaults.vars.x: variable 'x' is not used by any template"),
    ],
)
def test_undefined_and_unused_variables_are_file_line_errors(tmp_path: Path, text: str, expected: str) -> None:
    errs = _errors(text, tmp_path)
    assert any(e.endswith(expected) or expected in e for e in errs), errs
    assert all(e.startswith(str(tmp_path / "s.yaml")) for e in errs)


def test_literal_braces_are_doubled() -> None:
    items = expand(load_spec_text('clips:\n  - id: a\n    prompt: "a {{json}} sign"\n'))
    assert items[0].prompt == "a {json} sign" and template_fields("a {{json}} sign") == []


# --- prompts: named by content or by name, never by position -----------------------------------


def test_prompts_are_named_by_label_or_name_not_position() -> None:
    text = """\
clips:
  - id: dance
    prompts:
      - "A robot dancing in a neon-lit alley, rain"
      - {name: wide, prompt: "A robot dancing, wide shot"}
"""
    names = [i.name for i in expand(load_spec_text(text))]
    assert names == ["dance[robot-dancing-neon-lit,seed=0]", "dance[wide,seed=0]"]
    inserted = text.replace("    prompts:\n", "    prompts:\n      - \"A cat sleeping\"\n")
    assert set(names) <= set(_names(inserted))
    assert prompt_label("The {subject} of the day") == "day"


def test_prompts_with_the_same_label_are_told_apart_by_content() -> None:
    text = 'clips:\n  - id: a\n    prompts: ["A red ball on grass", "A red ball on grass, at night", "a red ball!"]\n'
    names = [i.name for i in expand(load_spec_text(text))]
    assert len(set(names)) == 3 and all(n.startswith("a[red-ball-grass") or n.startswith("a[red-ball") for n in names)


def test_items_keep_their_positional_legacy_name_for_baseline_migration() -> None:
    items = expand(load_spec_text('clips:\n  - id: a\n    prompts: [one cat, two dogs]\n    seeds: [3]\n'))
    assert [(i.name, i.legacy_name) for i in items] == [("a[one-cat,seed=3]", "a[p0-seed=3]"),
                                                       ("a[two-dogs,seed=3]", "a[p1-seed=3]")]
    single = expand(load_spec_text("clips:\n  - id: a\n    prompt: x\n"))[0]
    assert single.name == "a[seed=0]" and single.legacy_name is None


# --- prompt packs --------------------------------------------------------------------------------


def _pack_spec(pack: str) -> str:
    return textwrap.dedent(f"""\
        clips:
          - id: product
            prompt: "A {{product}} on a {{surface}}"
            vars:
              from: {pack}
        """)


def test_a_csv_pack_makes_one_item_per_row(tmp_path: Path) -> None:
    (tmp_path / "packs").mkdir()
    rows = "\n".join(f"sku-{i},Sneaker {i},table" for i in range(200))
    (tmp_path / "packs" / "p.csv").write_text("name,product,surface\n" + rows + "\n", encoding="utf-8")
    (tmp_path / "s.yaml").write_text(_pack_spec("packs/p.csv"), encoding="utf-8")
    items = expand(load_spec_file(tmp_path / "s.yaml", project=Project(root=tmp_path)))
    assert len(items) == 200
    assert items[7].name == "product[sku-7,seed=0]" and items[7].prompt == "A Sneaker 7 on a table"
    assert items[7].var_sources["product"] == "packs/p.csv:9 (row 8)"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("p.csv", "product,surface\nshoe,table\nhat\n", "packs/p.csv:3: row 2: 1 cells, the header has 2"),
        ("p.csv", "product,surface\nshoe,table\nhat,  \n", "packs/p.csv:3: row 2.surface: is empty"),
        ("p.csv", "product,surface,notes\nshoe,table,x\n", "clips[0].vars.from: pack column 'notes' is not used"),
        ("p.jsonl", '{"product": "shoe", "surface": "t"}\n{"product": "hat"\n',
         "packs/p.jsonl:2: row 2: invalid JSON"),
        ("p.jsonl", '{"product": "shoe", "surface": "t"}\n{"product": "hat", "surf": "t"}\n',
         "packs/p.jsonl:2: row 2: columns differ from the first row's (missing 'surface'; unknown 'surf')"),
        ("p.yaml", "- {product: shoe, surface: t}\n- [hat]\n", "packs/p.yaml:2: row 2: expected a mapping"),
        ("p.yaml", "- {product: shoe, surface: [t]}\n", "packs/p.yaml:1: row 1.surface: expected a string or a number"),
    ],
)
def test_a_malformed_pack_row_names_the_file_and_row(tmp_path: Path, name: str, content: str, expected: str) -> None:
    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / name).write_text(content, encoding="utf-8")
    errs = _errors(_pack_spec(f"packs/{name}"), tmp_path)
    assert any(expected in e for e in errs), errs


def test_jsonl_and_yaml_packs_read_like_csv(tmp_path: Path) -> None:
    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / "p.jsonl").write_text('{"product": "shoe", "surface": "t"}\n\n{"product": "hat", "surface": 2}\n')
    (tmp_path / "packs" / "p.yaml").write_text("rows:\n  - {product: shoe, surface: t}\n  - {product: hat, surface: 2}\n")
    for pack in ("packs/p.jsonl", "packs/p.yaml"):
        names = _names(_pack_spec(pack), tmp_path)
        assert names == ["product[product=shoe,surface=t,seed=0]", "product[product=hat,surface=2,seed=0]"]


def test_a_pack_outside_the_project_or_too_big_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (tmp_path / "outside.csv").write_text("product,surface\na,b\n")
    errs = _errors(_pack_spec("../outside.csv"), proj)
    assert any("is outside the project" in e for e in errs), errs
    from dataclasses import replace

    from pytest_ltx.limits import current, set_limits

    (proj / "big.csv").write_text("product,surface\n" + "".join(f"a{i},b\n" for i in range(1200)))
    old = current()
    try:
        set_limits(replace(old, pack_kb=1))
        errs = _errors(_pack_spec("big.csv"), proj)
        assert any("big.csv" in e and "over the 1 kB limit" in e and "--ltx-limits pack_kb=" in e for e in errs), errs
        set_limits(replace(old, pack_rows=1000))
        errs = _errors(_pack_spec("big.csv"), proj)
        assert any("big.csv:1002: row 1001: more than 1000 rows" in e for e in errs), errs
    finally:
        set_limits(old)
    errs = _errors(_pack_spec("missing.csv"), proj)
    assert any("prompt pack 'missing.csv' not found" in e for e in errs), errs


def test_vars_in_json_schema() -> None:
    from pytest_ltx.spec import json_schema

    s = json_schema()
    props = s["$defs"]["ClipSpec"]["properties"]
    assert {"vars", "preset", "encode"} <= set(props)
    assert "from" in json.dumps(props["vars"]) and "zip" in json.dumps(props["vars"])


def test_shipped_specs_validate_against_the_json_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    from pytest_ltx.spec import json_schema

    schema = json_schema()
    specs = Path(__file__).parents[1] / "specs"
    for f in ("smoke.yaml", "products.yaml", "canaries.yaml"):
        jsonschema.validate(yaml.safe_load((specs / f).read_text()), schema)


def test_shipped_specs_load_with_their_presets_and_pack() -> None:
    from pytest_ltx.spec.presets import load_presets

    root = Path(__file__).parents[1]
    project = Project(root=root, presets=load_presets(root))
    items = expand(load_spec_file(root / "specs" / "products.yaml", project=project))
    assert [i.name for i in items] == ["product-shot[sneaker,seed=0,preset=full]",
                                       "product-shot[watch,seed=0,preset=full]",
                                       "product-shot[bottle,seed=0,preset=full]"]
    assert items[0].clip.width == 64 and items[0].clip.expect.export is not None
    draft = Project(root=root, presets=load_presets(root), run_preset="draft")
    smoke = expand(load_spec_file(root / "specs" / "smoke.yaml", project=draft))
    assert all(i.name.endswith(",preset=draft]") for i in smoke)
    assert {i.clip.frames for i in smoke if i.clip_id == "robot-dance"} == {9}
