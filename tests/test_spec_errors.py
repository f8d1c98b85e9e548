"""Malformed spec files: every problem is one readable line ``file:line: field: what``, all at once."""

from __future__ import annotations

import pickle
import random
import textwrap
from pathlib import Path

import pytest

from pytest_ltx.spec import SpecError, SpecFileError, load_spec_file, load_spec_text

GOOD_CLIP = """\
clips:
  - id: ok
    prompt: fine
"""


def _errors(tmp_path: Path, text: str, **kw: object) -> list[str]:
    """The error lines for ``text`` written as spec.yaml, with the folder left out of the path."""
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(SpecFileError) as info:
        load_spec_file(path, **kw)  # type: ignore[arg-type]
    err = info.value
    assert err.path == path
    assert all(isinstance(e, SpecError) for e in err.errors)
    assert str(err) == "\n".join(str(e) for e in err.errors)
    return [line.replace(str(tmp_path) + "/", "") for line in str(err).splitlines()]


CASES: list[tuple[str, str, list[str]]] = [
    ("empty file", "", ["spec.yaml:1: the file is empty: expected a mapping with a 'clips' list"]),
    ("only a comment", "# nothing here\n", ["spec.yaml:1: the file is empty: expected a mapping with a 'clips' list"]),
    (
        "top level is a list",
        "- id: a\n  prompt: x\n",
        ["spec.yaml:1: expected a mapping with a 'clips' list at the top level, got a list"],
    ),
    (
        "clips missing",
        "defaults: {width: 64}\n",
        ["spec.yaml:1: clips: missing: a spec needs a 'clips' list with at least one clip"],
    ),
    ("clips empty", "version: 1\nclips: []\n", ["spec.yaml:2: clips: is empty: a spec needs at least one clip"]),
    ("clips null", "clips:\n", ["spec.yaml:1: clips: is empty: a spec needs at least one clip"]),
    ("clips a mapping", "clips: {id: a}\n", ["spec.yaml:1: clips: expected a list, got a mapping"]),
    (
        "yaml syntax error",
        "clips:\n  - id: a\n    prompt: [unclosed\n",
        [
            "spec.yaml:4: invalid YAML: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence at line 3)"
        ],
    ),
    (
        "bad indentation",
        "clips:\n  - id: a\n   prompt: x\n",
        [
            "spec.yaml:3: invalid YAML: expected <block end>, but found '<block mapping start>' "
            "(while parsing a block collection at line 2)"
        ],
    ),
    (
        "two documents",
        GOOD_CLIP + "---\n" + GOOD_CLIP,
        ["spec.yaml:4: invalid YAML: expected a single document in the stream, but found another document"],
    ),
    (
        "duplicate key",
        "clips:\n  - id: a\n    prompt: x\n    prompt: y\n",
        ["spec.yaml:4: clips[0].prompt: duplicate key (first at line 3)"],
    ),
    (
        "python tag",
        "clips: !!python/object/apply:os.system ['true']\n",
        [
            "spec.yaml:1: clips: unsupported YAML tag '!!python/object/apply:os.system' (spec files are plain YAML)",
            "spec.yaml:1: clips[0]: expected a mapping, got 'true'",
        ],
    ),
    (
        "custom tag on a scalar",
        "clips:\n  - id: a\n    prompt: !env PROMPT\n",
        ["spec.yaml:3: clips[0].prompt: unsupported YAML tag '!env' (spec files are plain YAML)"],
    ),
    (
        "boolean key",
        "clips:\n  - id: a\n    prompt: x\n    on: 1\n",
        ["spec.yaml:4: clips[0]: key 'on' is not a string (YAML reads it as True); quote it"],
    ),
    (
        "recursive alias",
        "x-loop: &a [*a]\n" + GOOD_CLIP,
        ["spec.yaml:1: x-loop[0]: recursive alias (an anchor used inside itself)"],
    ),
    (
        "unknown top-level key",
        "clip:\n  - id: a\n    prompt: x\n",
        [
            "spec.yaml:1: unknown key 'clip' (did you mean 'clips'?)",
            "spec.yaml:1: clips: missing: a spec needs a 'clips' list with at least one clip",
        ],
    ),
    (
        "unsupported version",
        "version: 2\n" + GOOD_CLIP,
        ["spec.yaml:1: version: 2 is not supported (this pytest-ltx reads version 1)"],
    ),
    (
        "misspelt clip key",
        "clips:\n  - id: a\n    prompt: x\n    negativ_prompt: blurry\n",
        ["spec.yaml:4: clips[0]: unknown key 'negativ_prompt' (did you mean 'negative_prompt'?)"],
    ),
    (
        "unknown key, nothing close",
        "clips:\n  - id: a\n    prompt: x\n    guidance: {zzz: 1}\n",
        [
            "spec.yaml:4: clips[0].guidance: unknown key 'zzz' (allowed: audio_modality_scale, audio_rescale, "
            "audio_scale, audio_stg_scale, modality_scale, rescale, scale, stg_blocks, stg_scale)"
        ],
    ),
    (
        "frames not 8k+1",
        "clips:\n  - id: a\n    prompt: x\n  - id: b\n    prompt: y\n  - id: c\n    prompt: z\n    frames: 24\n",
        ["spec.yaml:8: clips[2].frames: 24 is not 8k+1 (nearest valid: 17 or 25)"],
    ),
    (
        "frames too few",
        "clips:\n  - id: a\n    prompt: x\n    frames: 1\n",
        ["spec.yaml:4: clips[0].frames: 1 is out of range 9..1025 (nearest valid: 9)"],
    ),
    (
        "width not a multiple of 32",
        "clips:\n  - id: a\n    prompt: x\n    width: 100\n",
        ["spec.yaml:4: clips[0].width: 100 is not a multiple of 32 (nearest valid: 96 or 128)"],
    ),
    (
        "height out of range",
        "clips:\n  - id: a\n    prompt: x\n    height: 8192\n",
        ["spec.yaml:4: clips[0].height: 8192 is out of range 32..4096"],
    ),
    (
        "fps zero and steps too many",
        "clips:\n  - id: a\n    prompt: x\n    fps: 0\n    steps: 501\n",
        ["spec.yaml:4: clips[0].fps: must be > 0, got 0", "spec.yaml:5: clips[0].steps: must be <= 500, got 501"],
    ),
    (
        "wrong types",
        "clips:\n  - id: a\n    prompt: 42\n    width: '64'\n    fps: fast\n    marks: slow\n",
        [
            "spec.yaml:3: clips[0].prompt: expected a string, got 42; quote it",
            "spec.yaml:4: clips[0].width: expected an integer, got '64'",
            "spec.yaml:5: clips[0].fps: expected a number, got 'fast'",
            "spec.yaml:6: clips[0].marks: expected a list, got 'slow'",
        ],
    ),
    (
        "negative and boolean seeds",
        "clips:\n  - id: a\n    prompt: x\n    seeds:\n      - 0\n      - -1\n      - true\n",
        [
            "spec.yaml:6: clips[0].seeds[1]: must be >= 0, got -1",
            "spec.yaml:7: clips[0].seeds[2]: expected an integer, got true",
        ],
    ),
    (
        "repeated seed",
        "clips:\n  - id: a\n    prompt: x\n    seeds: [1, 2, 1]\n",
        ["spec.yaml:4: clips[0].seeds: seed 1 is listed twice"],
    ),
    (
        "empty seeds",
        "clips:\n  - id: a\n    prompt: x\n    seeds: []\n",
        ["spec.yaml:4: clips[0].seeds: is empty (leave it out for seed 0, or give at least one seed)"],
    ),
    (
        "prompt and prompts",
        "clips:\n  - id: a\n    prompt: x\n    prompts: [y, z]\n",
        ["spec.yaml:4: clips[0].prompts: give either 'prompt' or 'prompts', not both"],
    ),
    (
        "seed and seeds",
        "clips:\n  - id: a\n    prompt: x\n    seed: 3\n    seeds: [1]\n",
        ["spec.yaml:5: clips[0].seeds: give either 'seed' or 'seeds', not both"],
    ),
    (
        "blank prompt",
        "clips:\n  - id: a\n    prompt: '   '\n",
        ["spec.yaml:3: clips[0].prompt: is blank"],
    ),
    (
        "repeated prompt variant",
        "clips:\n  - id: a\n    prompts: [x, y, x]\n",
        ["spec.yaml:3: clips[0].prompts: prompts[2] repeats prompts[0] ('x')"],
    ),
    (
        "file and testcard",
        "clips:\n  - id: a\n    file: a.mp4\n    testcard: {frames: 9}\n",
        ["spec.yaml:4: clips[0].testcard: give either 'file' or 'testcard', not both (a clip has one source)"],
    ),
    (
        "no source",
        "clips:\n  - id: a\n    description: nothing to render\n",
        [
            "spec.yaml:2: clips[0]: no source: give 'prompt' (or 'prompts') to render, 'file' for a "
            "pre-rendered clip, or 'testcard' for a synthetic one"
        ],
    ),
    (
        "render field on a file clip",
        "clips:\n  - id: a\n    file: a.mp4\n    frames: 25\n    steps: 4\n",
        [
            "spec.yaml:4: clips[0].frames: applies only to rendered clips; this clip's source is 'file'",
            "spec.yaml:5: clips[0].steps: applies only to rendered clips; this clip's source is 'file'",
        ],
    ),
    (
        "render field on a testcard clip",
        "clips:\n  - id: a\n    testcard: {frames: 9}\n    seeds: [0, 1]\n",
        ["spec.yaml:4: clips[0].seeds: applies only to rendered clips; this clip's source is 'testcard'"],
    ),
    (
        "bad testcard field",
        "clips:\n  - id: a\n    testcard:\n      frames: many\n      fsp: 24\n",
        [
            "spec.yaml:4: clips[0].testcard.frames: expected an integer, got 'many'",
            "spec.yaml:5: clips[0].testcard: unknown key 'fsp' (did you mean 'fps'?)",
        ],
    ),
    (
        "file mapping without path",
        "clips:\n  - id: a\n    file: {audio: a.wav}\n",
        ["spec.yaml:3: clips[0].file: missing required key 'path'"],
    ),
    (
        "duplicate clip id",
        "clips:\n  - id: same\n    prompt: x\n  - id: other\n    prompt: y\n  - id: same\n    prompt: z\n",
        ["spec.yaml:6: clips[2].id: duplicate id 'same' (first used by clips[0], line 2)"],
    ),
    (
        "invalid id",
        "clips:\n  - id: Robot Dance!\n    prompt: x\n",
        [
            "spec.yaml:2: clips[0].id: 'Robot Dance!' is not a valid id: use a-z, 0-9, '.', '_', '-' "
            "(e.g. 'robot-dance')"
        ],
    ),
    (
        "YAML reads a date and a boolean",
        "clips:\n  - id: 2024-01-01\n    prompt: yes\n",
        [
            "spec.yaml:2: clips[0].id: expected a string, got 2024-01-01 (a date to YAML); quote it",
            "spec.yaml:3: clips[0].prompt: expected a string, got true; quote it",
        ],
    ),
    (
        "file neither path nor mapping",
        "clips:\n  - id: a\n    file: [a.mp4]\n",
        ["spec.yaml:3: clips[0].file: expected a path or a mapping {path, audio}, got a list"],
    ),
    (
        "conflicting defaults reported once, at the default",
        "defaults:\n  prompt: x\n  prompts: [y]\nclips:\n  - id: a\n  - id: b\n",
        ["spec.yaml:3: defaults.prompts: give either 'prompt' or 'prompts', not both"],
    ),
    ("missing id", "clips:\n  - prompt: x\n", ["spec.yaml:2: clips[0]: missing required key 'id'"]),
    ("clip not a mapping", "clips:\n  - just-a-string\n", ["spec.yaml:2: clips[0]: expected a mapping, got 'just-a-string'"]),
    (
        "unknown expectation family",
        "clips:\n  - id: a\n    prompt: x\n    expect:\n      motoin: {cuts: 0}\n",
        ["spec.yaml:5: clips[0].expect: unknown expectation family 'motoin' (did you mean 'motion'?)"],
    ),
    (
        "unknown preset",
        "clips:\n  - id: a\n    prompt: x\n    expect:\n      av_sync: {preset: itu-bt1359-detectible}\n",
        [
            "spec.yaml:5: clips[0].expect.av_sync.preset: 'itu-bt1359-detectible' is not one of "
            "'itu-bt1359-detectable', 'itu-bt1359-acceptable' or 'ebu-r37' (did you mean 'itu-bt1359-detectable'?)"
        ],
    ),
    (
        "expectation value out of range",
        "clips:\n  - id: a\n    prompt: x\n    expect:\n      motion:\n        cuts: -1\n",
        ["spec.yaml:6: clips[0].expect.motion.cuts: must be >= 0, got -1"],
    ),
    (
        "bad mark name",
        "clips:\n  - id: a\n    prompt: x\n    marks: [slow, not a mark]\n",
        ["spec.yaml:4: clips[0].marks: 'not a mark' is not a pytest mark name"],
    ),
    (
        "nested test-card and expectation problems",
        "clips:\n  - id: a\n    testcard:\n      objects: [{kind: bounc}]\n"
        "    expect:\n      text:\n        expected: [{text: hi, frames: [1]}]\n",
        [
            "spec.yaml:4: clips[0].testcard.objects[0].kind: 'bounc' is not one of 'linear', 'bounce', "
            "'start_stop' or 'flash' (did you mean 'bounce'?)",
            "spec.yaml:7: clips[0].expect.text.expected[0].frames: too few items (item [1] is missing)",
        ],
    ),
    (
        "id in defaults",
        "defaults:\n  id: x\n" + GOOD_CLIP,
        ["spec.yaml:2: defaults: 'id' cannot be a default (each clip names itself)"],
    ),
    (
        "bad default reported once, at the default",
        "defaults:\n  frames: 24\nclips:\n  - id: a\n    prompt: x\n  - id: b\n    prompt: y\n",
        ["spec.yaml:2: defaults.frames: 24 is not 8k+1 (nearest valid: 17 or 25)"],
    ),
    (
        "bad default guidance knob, reported at the default",
        "defaults:\n  guidance: {rescale: 2}\nclips:\n  - id: a\n    prompt: x\n    guidance: {scale: 3}\n",
        ["spec.yaml:2: defaults.guidance.rescale: must be <= 1, got 2"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_spec_reports_exact_lines(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert _errors(tmp_path, text, check_paths=False) == expected


def test_case_table_is_broad() -> None:
    assert len(CASES) >= 15
    assert len({c[0] for c in CASES}) == len(CASES)


def test_every_problem_in_a_file_is_reported_once_in_line_order(tmp_path: Path) -> None:
    text = """\
        version: 1
        defaults:
          frames: 24
        clips:
          - id: a
            prompt: x
            width: 100
          - id: b
            prompt: y
            negativ_prompt: z
          - id: a
            file: a.mp4
            steps: 3
        """
    assert _errors(tmp_path, text, check_paths=False) == [
        "spec.yaml:3: defaults.frames: 24 is not 8k+1 (nearest valid: 17 or 25)",
        "spec.yaml:7: clips[0].width: 100 is not a multiple of 32 (nearest valid: 96 or 128)",
        "spec.yaml:10: clips[1]: unknown key 'negativ_prompt' (did you mean 'negative_prompt'?)",
        "spec.yaml:11: clips[2].id: duplicate id 'a' (first used by clips[0], line 5)",
        "spec.yaml:13: clips[2].steps: applies only to rendered clips; this clip's source is 'file'",
    ]


def test_missing_files_are_reported_at_their_keys(tmp_path: Path) -> None:
    (tmp_path / "there.png").write_bytes(b"")
    text = """\
        clips:
          - id: a
            prompt: x
            image: there.png
          - id: b
            prompt: y
            image: nowhere.png
          - id: c
            file: clips/c.mp4
          - id: d
            file:
              path: there.png
              audio: d.wav
        """
    assert _errors(tmp_path, text) == [
        "spec.yaml:7: clips[1].image: nowhere.png not found (looked for nowhere.png)",
        "spec.yaml:9: clips[2].file: clips/c.mp4 not found (looked for clips/c.mp4)",
        "spec.yaml:13: clips[3].file.audio: d.wav not found (looked for d.wav)",
    ]
    # the same file loads when paths are not checked
    load_spec_file(tmp_path / "spec.yaml", check_paths=False)


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(SpecFileError, match=r"nope\.yaml: cannot read: No such file or directory"):
        load_spec_file(tmp_path / "nope.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"clips:\n  - id: a\n    prompt: caf\xe9\n")
    with pytest.raises(SpecFileError) as info:
        load_spec_file(bad)
    assert str(info.value) == f"{bad}:3: not UTF-8 text"


def test_alias_bomb_is_refused_not_expanded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    with pytest.raises(SpecFileError) as info:
        load_spec_text("\n".join(lines) + "\n", Path("bomb.yaml"))
    assert str(info.value).startswith("bomb.yaml:1: YAML expands to more than 100000 nodes")
    assert "--ltx-limits yaml_nodes=200000" in str(info.value)


def test_text_without_path_has_bare_line_numbers() -> None:
    with pytest.raises(SpecFileError) as info:
        load_spec_text("clips:\n  - id: a\n    prompt: x\n    frames: 10\n")
    assert str(info.value) == "line 4: clips[0].frames: 10 is not 8k+1 (nearest valid: 9 or 17)"


def test_spec_file_error_pickles_for_xdist() -> None:
    err = SpecFileError(Path("a.yaml"), [SpecError(Path("a.yaml"), 3, "clips[0].frames", "bad")])
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) == "a.yaml:3: clips[0].frames: bad"
    assert back.errors == err.errors
    assert err.errors[0].to_dict() == {"path": "a.yaml", "line": 3, "field": "clips[0].frames", "message": "bad"}


_FUZZ_VALUES = ["", "~", "-1", "1.5", "yes", "[]", "{}", "{a: 1}", "*nope", "!!str 3", "!tag x", "2024-01-01",
                "<<", ".nan", "[[[", "'", "@", "- x", "9999999999999999999999"]


def _mutate(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(lines))
        op = rng.random()
        if op < 0.25:
            del lines[i]
        elif op < 0.5 and ":" in lines[i]:
            lines[i] = lines[i].split(":", 1)[0] + ": " + rng.choice(_FUZZ_VALUES)
        elif op < 0.65:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op < 0.8:
            lines[i] = " " * rng.randint(1, 3) + lines[i]
        else:
            j = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:j] + rng.choice("x:-[]{}#&*!'\"\t ") + lines[i][j:]
        lines = lines or ["x"]
    return "\n".join(lines) + "\n"


def test_mangled_specs_fail_only_with_one_line_spec_errors() -> None:
    """Whatever the damage, the loader answers with a SpecFile or SpecFileError lines — never a crash."""
    from tests.test_spec import EXAMPLE

    rng = random.Random(1234)
    failed = 0
    for _ in range(300):
        text = _mutate(EXAMPLE, rng)
        try:
            load_spec_text(text, Path("f.yaml"))
        except SpecFileError as e:
            failed += 1
            lines = str(e).splitlines()
            assert len(lines) == len(e.errors) >= 1, text
            assert all(line.startswith("f.yaml:") for line in lines), text
    assert failed > 200  # the mutations do break things
