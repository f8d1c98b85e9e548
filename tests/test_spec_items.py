"""Expanding a spec into test items: one per prompt variant × seed, with stable readable names."""

from __future__ import annotations

import json
import pickle
import textwrap
from pathlib import Path

import pytest

from pytest_ltx.spec import ItemSpec, SourceKind, expand, load_spec_file, load_spec_text
from pytest_ltx.spec.items import item_name, legacy_item_name, preset_of

SPEC = """\
defaults:
  model: tiny
  width: 64
  height: 64
  frames: 25
  fps: 24
  steps: 2
clips:
  - id: robot-dance
    prompt: A robot dancing
    negative_prompt: blurry
    seeds: [0, 1]
    guidance: {scale: 3.0, stg_blocks: [28]}
    image: img/cond.png
    marks: [slow]
  - id: balls
    prompts: [A red ball, A blue ball]
    seeds: [7, 3]
  - id: single
    prompt: one
  - id: bunny
    file: {path: media/bunny.mp4, audio: media/bunny.wav}
    prompts: [A rabbit, A hare]
  - id: card
    testcard: {frames: 9, width: 32, height: 32}
"""


@pytest.fixture
def spec_items(tmp_path: Path) -> list[ItemSpec]:
    (tmp_path / "img").mkdir()
    (tmp_path / "media").mkdir()
    for name in ("img/cond.png", "media/bunny.mp4", "media/bunny.wav"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "s.yaml").write_text(SPEC, encoding="utf-8")
    return expand(load_spec_file(tmp_path / "s.yaml"))


def test_one_item_per_prompt_variant_and_seed_in_file_order(spec_items: list[ItemSpec]) -> None:
    assert [i.name for i in spec_items] == [
        "robot-dance[seed=0]",
        "robot-dance[seed=1]",
        "balls[red-ball,seed=7]",
        "balls[red-ball,seed=3]",
        "balls[blue-ball,seed=7]",
        "balls[blue-ball,seed=3]",
        "single[seed=0]",
        "bunny[rabbit]",
        "bunny[hare]",
        "card",
    ]
    assert len({i.name for i in spec_items}) == len(spec_items)
    balls = [i for i in spec_items if i.clip_id == "balls"]
    assert [(i.prompt, i.prompt_index, i.seed) for i in balls] == [
        ("A red ball", 0, 7),
        ("A red ball", 0, 3),
        ("A blue ball", 1, 7),
        ("A blue ball", 1, 3),
    ]


def test_items_know_their_line_and_source(spec_items: list[ItemSpec]) -> None:
    lines = SPEC.splitlines()
    by = {i.name: i for i in spec_items}
    for name, text in [("robot-dance[seed=1]", "- id: robot-dance"), ("bunny[hare]", "- id: bunny"), ("card", "- id: card")]:
        assert lines[by[name].line - 1].strip() == text  # type: ignore[operator]
    assert by["robot-dance[seed=0]"].source_kind is SourceKind.RENDER
    assert by["bunny[rabbit]"].source_kind is SourceKind.FILE and by["bunny[rabbit]"].seed is None
    assert by["card"].source_kind is SourceKind.TESTCARD and by["card"].prompt is None
    assert by["robot-dance[seed=0]"].marks == ("slow",) and by["card"].marks == ()


def test_paths_resolve_against_the_spec_folder(spec_items: list[ItemSpec], tmp_path: Path) -> None:
    by = {i.name: i for i in spec_items}
    robot, bunny, card = by["robot-dance[seed=0]"], by["bunny[rabbit]"], by["card"]
    assert robot.image_path == (tmp_path / "img" / "cond.png").absolute()
    assert robot.file_path is None and robot.audio_path is None
    assert bunny.file_path == (tmp_path / "media" / "bunny.mp4").absolute()
    assert bunny.audio_path == (tmp_path / "media" / "bunny.wav").absolute()
    assert card.image_path is None and card.file_path is None
    assert robot.spec_path == (tmp_path / "s.yaml").absolute() and robot.base_dir == tmp_path.absolute()


def test_render_request_carries_the_clip(spec_items: list[ItemSpec], tmp_path: Path) -> None:
    req = spec_items[1].to_render_request()
    assert (req.prompt, req.negative_prompt, req.seed) == ("A robot dancing", "blurry", 1)
    assert (req.width, req.height, req.frames, req.fps, req.steps) == (64, 64, 25, 24.0, 2)
    assert dict(req.guidance) == {"scale": 3.0, "stg_blocks": (28,)}
    assert req.image == (tmp_path / "img" / "cond.png").absolute()
    assert req.profile == "tiny"
    assert spec_items[1].to_render_request(profile="ltx23").profile == "ltx23"
    with pytest.raises(ValueError, match=r"card: a testcard clip is not rendered"):
        spec_items[-1].to_render_request()


def test_to_dict_is_json_ready(spec_items: list[ItemSpec]) -> None:
    for item in spec_items:
        d = json.loads(json.dumps(item.to_dict()))
        assert d["name"] == item.name and d["source_kind"] == item.source_kind.value
    card = spec_items[-1].to_dict()
    assert card["clip"]["testcard"]["frames"] == 9 and card["seed"] is None


def test_names_are_stable_across_loads_and_unrelated_edits() -> None:
    a = [i.name for i in expand(load_spec_text(SPEC))]
    edited = SPEC.replace("negative_prompt: blurry", "negative_prompt: blurry, text").replace("steps: 2", "steps: 3")
    b = [i.name for i in expand(load_spec_text(edited))]
    assert a == b


def test_items_of_a_spec_built_without_a_file_resolve_against_cwd() -> None:
    spec = load_spec_text(textwrap.dedent("""\
        clips:
          - id: a
            prompt: x
            seed: 4
        """))
    (item,) = expand(spec)
    assert item.name == "a[seed=4]" and item.line == 2 and item.spec_path is None
    assert item.base_dir == Path.cwd()


@pytest.mark.parametrize(
    ("kind", "n_prompts", "p", "seed", "expected"),
    [
        (SourceKind.RENDER, 1, 0, 0, "x[seed=0]"),
        (SourceKind.RENDER, 3, 2, 5, "x[p2-seed=5]"),
        (SourceKind.FILE, 1, 0, None, "x"),
        (SourceKind.TESTCARD, 2, 1, None, "x[p1]"),
    ],
)
def test_legacy_item_name(kind: SourceKind, n_prompts: int, p: int, seed: int | None, expected: str) -> None:
    assert legacy_item_name("x", kind, n_prompts, p, seed) == expected


def test_item_name_is_values_then_seed_then_preset() -> None:
    assert item_name("x") == "x"
    assert item_name("x", ("wide", "style=noir"), 3) == "x[wide,style=noir,seed=3]"
    assert item_name("x", (), 0, "draft") == "x[seed=0,preset=draft]"
    assert preset_of("x[seed=0,preset=draft]") == "draft"
    assert preset_of("x[seed=0]") is None and preset_of("x") is None


def test_items_hash_and_pickle(spec_items: list[ItemSpec]) -> None:
    assert len(set(spec_items)) == len(spec_items)
    back = pickle.loads(pickle.dumps(spec_items))
    assert back == spec_items and [i.name for i in back] == [i.name for i in spec_items]


def test_expected_format_fills_in_what_the_clip_asked_for(tmp_path: Path) -> None:
    text = """\
clips:
  - id: r
    prompt: x
    width: 64
    height: 96
    frames: 17
    fps: 25
    expect:
      format: {fps: 24, audio: true}
  - id: t
    testcard: {width: 48, height: 32, frames: 10, fps: 12}
  - id: f
    file: a.mp4
    expect:
      format: {frames: 132}
"""
    r, t, f = expand(load_spec_text(text))
    assert r.expected_format().model_dump(exclude_none=True) == {
        "frames": 17, "fps": 24.0, "width": 64, "height": 96, "audio": True, "duration_tolerance_s": 0.25,
    }
    fmt = t.expected_format()
    assert (fmt.frames, fmt.fps, fmt.width, fmt.height) == (10, 12.0, 48, 32)
    fmt = f.expected_format()
    assert (fmt.frames, fmt.fps, fmt.width, fmt.height) == (132, None, None, None)


def test_recipe_is_a_clip_field_and_steps_default_to_the_recipe() -> None:
    spec = load_spec_text(textwrap.dedent("""
        defaults: {width: 128, height: 128, frames: 9, recipe: two-stage}
        clips:
          - id: a
            prompt: p
          - id: b
            prompt: p
            recipe: distilled
            steps: 8
    """))
    a, b = expand(spec)
    ra, rb = a.to_render_request(), b.to_render_request()
    assert (ra.recipe, ra.steps) == ("two-stage", None)  # unset steps: the recipe's reference count
    assert (rb.recipe, rb.steps) == ("distilled", 8)
    assert ra.to_dict()["recipe"] == "two-stage"


def test_unknown_recipe_is_a_spec_error() -> None:
    from pytest_ltx.spec import SpecFileError

    with pytest.raises(SpecFileError, match=r"line 4: clips\[0\].recipe: 'turbo' is not one of 'dev', 'distilled'"):
        load_spec_text("clips:\n  - id: a\n    prompt: p\n    recipe: turbo\n")
