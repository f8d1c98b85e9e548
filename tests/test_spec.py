"""Valid spec files: defaults merging, sources, line numbers, the JSON Schema, import cost."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from pytest_ltx.expect import Expectations
from pytest_ltx.spec import (
    ClipSpec,
    FileSource,
    SourceKind,
    SpecFile,
    json_schema,
    load_spec_file,
    load_spec_text,
)
from pytest_ltx.spec.schema import nearest_frames, nearest_multiple

REPO = Path(__file__).resolve().parents[1]

EXAMPLE = """\
version: 1
x-looks: &looks
  motion: {cuts: 0, jumps: 0, max_freeze_frames: 6}
defaults:
  model: tiny
  width: 64
  height: 64
  frames: 25
  fps: 24
  steps: 2
  guidance: {stg_blocks: [1]}
  expect:
    text: {none: true}
    budget: {render_seconds_max: 90}
clips:
  - id: robot-dance
    description: "A robot, two seeds"
    prompt: "A robot dancing"
    negative_prompt: "blurry"
    seeds: [0, 1]
    guidance: {scale: 3.0, audio_scale: 7.0, stg_scale: 1.0, audio_stg_scale: 1.0, stg_blocks: [28],
               modality_scale: 3.0, audio_modality_scale: 3.0, rescale: 0.7, audio_rescale: 0.7}
    marks: [slow]
    expect:
      <<: *looks
      av_sync: {preset: itu-bt1359-detectable}
      clip: {prompt_score_min: 0.22, baseline_similarity_min: 0.92}
  - id: variants
    prompts: ["A red ball", "A blue ball"]
    seed: 3
    width: 96
    frames: 9
    image: cond.png
  - id: bunny
    file: {path: clips/bunny.mp4, audio: clips/bunny.wav}
    prompt: "A rabbit in a meadow"
    expect:
      format: {frames: 132, fps: 25}
  - id: card
    testcard: {width: 64, height: 64, frames: 17, fps: 24, cuts: [8]}
    expect:
      motion: {cuts: 1}
"""


@pytest.fixture
def spec_example_dir(tmp_path: Path) -> Path:
    (tmp_path / "clips").mkdir()
    for name in ("cond.png", "clips/bunny.mp4", "clips/bunny.wav"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "example.yaml").write_text(EXAMPLE, encoding="utf-8")
    return tmp_path


def test_example_loads_with_defaults_merged(spec_example_dir: Path) -> None:
    spec = load_spec_file(spec_example_dir / "example.yaml")
    assert [c.id for c in spec.clips] == ["robot-dance", "variants", "bunny", "card"]
    robot, variants, bunny, card = spec.clips

    # render clip: own values win, defaults fill the rest
    assert (robot.width, robot.height, robot.frames, robot.fps, robot.steps, robot.model) == (64, 64, 25, 24.0, 2, "tiny")
    assert robot.seeds == (0, 1) and robot.seed_list == (0, 1)
    assert robot.guidance is not None and robot.guidance.stg_blocks == (28,) and robot.guidance.rescale == 0.7
    assert robot.marks == ("slow",)
    # expect: merged per family; the YAML merge key brought `motion` in
    assert robot.expect is not None
    assert robot.expect.motion is not None and robot.expect.motion.max_freeze_frames == 6
    assert robot.expect.text is not None and robot.expect.text.none is True  # from defaults
    assert robot.expect.budget is not None and robot.expect.budget.render_seconds_max == 90
    assert robot.expect.av_sync is not None and robot.expect.av_sync.preset == "itu-bt1359-detectable"

    # guidance merged per knob: the default stg_blocks stays
    assert variants.guidance is not None and variants.guidance.to_dict() == {"stg_blocks": [1]}
    assert (variants.width, variants.height, variants.frames) == (96, 64, 9)
    assert variants.seed == 3 and variants.seed_list == (3,)
    assert variants.prompt_variants == ("A red ball", "A blue ball")

    # file clip: render defaults are not applied, the format expectation is the clip's own
    assert bunny.source_kind is SourceKind.FILE
    assert bunny.file == FileSource(path="clips/bunny.mp4", audio="clips/bunny.wav")
    assert (bunny.width, bunny.frames, bunny.model, bunny.steps, bunny.guidance) == (None, None, None, None, None)
    assert bunny.seed_list == (None,)
    assert bunny.expect is not None and bunny.expect.format.frames == 132
    assert bunny.expect.text is not None  # expectations from defaults still apply

    # testcard clip: validated as the test-card model
    from pytest_ltx.testcard import TestCardSpec

    assert card.source_kind is SourceKind.TESTCARD
    assert isinstance(card.testcard, TestCardSpec)
    assert card.testcard.cuts == (8,) and card.testcard.frames == 17
    assert card.prompt is None and card.prompt_variants == (None,)

    assert spec.path == (spec_example_dir / "example.yaml").absolute()
    assert spec.directory == spec_example_dir.absolute()


def test_line_numbers_point_at_keys_and_items(spec_example_dir: Path) -> None:
    spec = load_spec_file(spec_example_dir / "example.yaml")
    lines = EXAMPLE.splitlines()

    def line(text: str) -> int:
        return [i for i, s in enumerate(lines, 1) if s.strip() == text][0]

    assert spec.line_of("clips", 0) == line("- id: robot-dance")
    assert spec.line_of("clips", 1, "frames") == line("frames: 9")
    assert spec.line_of("clips", 0, "seeds", 1) == line("seeds: [0, 1]")
    assert spec.line_of("clips", 0, "expect", "motion") == line("motion: {cuts: 0, jumps: 0, max_freeze_frames: 6}")
    # a key nobody wrote falls back to the enclosing item
    assert spec.line_of("clips", 3, "steps") == spec.line_of("clips", 3) == line("- id: card")
    assert spec.line_of() == 1


def test_minimal_render_clip_gets_render_defaults() -> None:
    spec = load_spec_text("clips:\n  - id: a\n    prompt: x\n")
    (clip,) = spec.clips
    assert (clip.width, clip.height, clip.frames, clip.fps) == (768, 512, 121, 24.0)
    assert clip.steps is None and clip.recipe is None  # the model profile's recipe decides
    assert clip.seed_list == (0,)
    assert clip.model is None  # the run's --ltx-model decides
    assert clip.expect == Expectations()
    assert spec.version == 1 and spec.defaults is None


def test_clip_alternatives_replace_the_defaults_alternatives() -> None:
    text = """\
        defaults:
          prompt: default prompt
          seed: 5
          width: 64
          testcard: {frames: 9}
        clips:
          - id: a
            prompts: [one, two]
            testcard: null
            file: a.mp4
          - id: b
          - id: c
            file: c.mp4
        """
    a, b, c = load_spec_text(textwrap.dedent(text)).clips
    assert a.prompts == ("one", "two") and a.prompt is None
    assert a.source_kind is SourceKind.FILE and a.seeds is None and a.seed is None and a.width is None
    assert b.source_kind is SourceKind.TESTCARD and b.prompt == "default prompt" and b.seed is None
    assert c.source_kind is SourceKind.FILE and c.testcard is None and c.prompt == "default prompt"


def test_file_shorthand_and_mapping_are_the_same() -> None:
    a = ClipSpec.model_validate({"id": "a", "file": "x.mp4"})
    b = ClipSpec.model_validate({"id": "a", "file": {"path": "x.mp4"}})
    assert a == b and a.file == FileSource(path="x.mp4")


def test_models_are_frozen_and_strict() -> None:
    clip = ClipSpec.model_validate({"id": "a", "prompt": "x", "width": 64})
    with pytest.raises(ValidationError):
        clip.width = 128  # type: ignore[misc]
    with pytest.raises(ValidationError):
        ClipSpec.model_validate({"id": "a", "prompt": "x", "width": 64.0})
    with pytest.raises(ValidationError):
        ClipSpec.model_validate({"id": "a", "prompt": "x", "steps": True})
    # an int is a fine float
    assert ClipSpec.model_validate({"id": "a", "prompt": "x", "fps": 25}).fps == 25.0
    assert hash(clip.seed_list) == hash((0,))


def test_python_built_spec_validates_like_a_file() -> None:
    spec = SpecFile.model_validate(
        {"defaults": {"width": 64, "height": 64}, "clips": [{"id": "a", "prompt": "x"}, {"id": "b", "prompt": "y"}]}
    )
    assert [c.width for c in spec.clips] == [64, 64]
    assert spec.path is None and spec.line_of("clips", 0) is None
    with pytest.raises(ValidationError):
        SpecFile.model_validate({"clips": [{"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"}]})


@pytest.mark.parametrize(
    ("v", "expected"),
    [(24, [17, 25]), (25, [25, 33]), (10, [9, 17]), (1, [9]), (2000, [1025])],
)
def test_nearest_frames(v: int, expected: list[int]) -> None:
    assert nearest_frames(v) == expected


@pytest.mark.parametrize(("v", "expected"), [(100, [96, 128]), (20, [32]), (5000, [4096]), (64, [64])])
def test_nearest_multiple(v: int, expected: list[int]) -> None:
    assert nearest_multiple(v) == expected


def test_project_smoke_spec_loads() -> None:
    path = REPO / "specs" / "smoke.yaml"
    if not path.exists():
        pytest.skip("no specs/smoke.yaml in this checkout")
    spec = load_spec_file(path)
    assert spec.clips


# --- JSON Schema --------------------------------------------------------------------------------


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _options(schema: dict[str, Any], root: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        return [o for s in schema["anyOf"] for o in _options(s, root)]
    return [schema]


def _conforms(data: Any, schema: dict[str, Any], root: dict[str, Any]) -> bool:
    """A small structural validator (types, keys, items, numeric bounds) for when jsonschema is absent."""
    for opt in _options(schema, root):
        t = opt.get("type")
        if not opt or t is None and "properties" not in opt:
            return True
        if isinstance(data, dict) and (t == "object" or "properties" in opt):
            props = opt.get("properties", {})
            patterns = opt.get("patternProperties", {})
            if any(k not in props and not any(k.startswith(p.lstrip("^")) for p in patterns) for k in data):
                if opt.get("additionalProperties", True) is False or props:
                    continue
            if any(k not in data for k in opt.get("required", [])):
                continue
            if all(_conforms(v, props[k], root) for k, v in data.items() if k in props):
                return True
        elif isinstance(data, list) and t == "array":
            items = opt.get("items", {})
            if len(data) >= opt.get("minItems", 0) and all(_conforms(v, items, root) for v in data):
                return True
        elif t == "string" and isinstance(data, str):
            return True
        elif t == "integer" and isinstance(data, int) and not isinstance(data, bool):
            if data >= opt.get("minimum", data) and data <= opt.get("maximum", data):
                if data % opt.get("multipleOf", 1) == 0:
                    return True
        elif t == "number" and isinstance(data, (int, float)) and not isinstance(data, bool):
            return True
        elif t == "boolean" and isinstance(data, bool):
            return True
        elif t == "null" and data is None:
            return True
        elif "const" in opt and data == opt["const"] or "enum" in opt and data in opt["enum"]:
            return True
    return False


def test_json_schema_describes_the_format() -> None:
    schema = json_schema()
    json.dumps(schema)  # serializable
    assert schema["title"] == "pytest-ltx clip spec"
    assert schema["required"] == ["clips"]
    assert set(schema["properties"]) == {"version", "defaults", "clips"}
    clip = schema["$defs"]["ClipSpec"]
    assert clip["required"] == ["id"]
    assert clip["additionalProperties"] is False
    for name, prop in clip["properties"].items():
        assert prop.get("description"), f"ClipSpec.{name} has no description"
    (width,) = [o for o in _options(clip["properties"]["width"], schema) if o.get("type") == "integer"]
    assert (width["multipleOf"], width["minimum"], width["maximum"]) == (32, 32, 4096)
    # `file` takes a path or a mapping; `testcard` is the test-card model
    file_opts = _options(clip["properties"]["file"], schema)
    assert {"string", "object"} <= {o.get("type") for o in file_opts}
    assert "cuts" in schema["$defs"]["TestCardSpec"]["properties"]
    assert "motion" in schema["$defs"]["Expectations"]["properties"]


def _example_data() -> Any:
    data = yaml.safe_load(EXAMPLE)
    data["clips"][0]["expect"] = {**data["clips"][0]["expect"]}  # merge key already resolved by safe_load
    return data


def test_example_validates_against_json_schema() -> None:
    schema = json_schema()
    data = _example_data()
    assert _conforms(data, schema, schema)
    bad = json.loads(json.dumps(data))
    bad["clips"][0]["negativ_prompt"] = "x"
    assert not _conforms(bad, schema, schema)
    bad = json.loads(json.dumps(data))
    bad["clips"][1]["width"] = 100
    assert not _conforms(bad, schema, schema)


def test_example_validates_with_jsonschema_when_installed() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    jsonschema.validate(_example_data(), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"clips": [{"id": "a", "widht": 64}]}, schema)


# --- import cost --------------------------------------------------------------------------------


def test_importing_the_spec_package_stays_cheap() -> None:
    code = (
        "import sys, pytest_ltx.spec as s\n"
        "s.load_spec_text('clips: [{id: a, prompt: x}]')\n"
        "heavy = [m for m in ('numpy', 'torch', 'av', 'cv2', 'librosa', 'diffusers', 'pytest_ltx.media') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == ""


def test_yaml_merge_keys_lose_to_own_keys_wherever_they_stand() -> None:
    text = """\
x-size: &size {width: 64, height: 64}
clips:
  - id: a
    prompt: x
    height: 96
    <<: *size
    frames: 17
"""
    spec = load_spec_text(text)
    (clip,) = spec.clips
    assert (clip.width, clip.height, clip.frames) == (64, 96, 17)
    assert spec.line_of("clips", 0, "height") == 5
    assert spec.line_of("clips", 0, "width") == 1  # from the anchor
