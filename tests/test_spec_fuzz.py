"""Property-based fuzz of the spec loader (Hypothesis): random YAML-ish text, random bytes and random
mutations of the shipped specs never give a traceback or a hang — either a valid spec or a
``SpecFileError`` whose every line names the file and a line number inside it.

Bounded and quick: a few hundred examples per property, each under a deadline; the YAML node budget is
what keeps a generated alias bomb from hanging (see test_hostile_input.py for the targeted bombs).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_ltx.spec import SpecFile, SpecFileError, load_spec_file, load_spec_text

#: the shipped spec files (presets.yaml holds presets, not clips)
SPECS = sorted(p for p in (Path(__file__).resolve().parents[1] / "specs").glob("*.yaml") if p.name != "presets.yaml")
PATH = Path("specs/fuzz.yaml")

FUZZ = settings(max_examples=200, deadline=3000, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
                database=None)

#: characters that mean something to YAML, plus a few words the spec schema knows
YAML_BITS = st.sampled_from(
    list(" \n\n  :-[]{},&*!|>'\"#<?%@`\t") + ["clips", "id", "<<", "*a", "&a", "testcard", "expect", "motion",
                                               "- ", ": ", "\n  ", "\n    ", "!!python/object", "!!binary",
                                               "1e9", "-1", "null", "yes", "~", "2024-01-01", "\ufeff", "\x00"])


def _check(text: str, spec_path: Path = PATH) -> None:
    try:
        out = load_spec_text(text, spec_path)
    except SpecFileError as e:
        n_lines = text.count("\n") + 2
        assert e.errors, "an error without a problem"
        for err in e.errors:
            assert err.path == spec_path
            assert isinstance(err.line, int) and 1 <= err.line <= n_lines, f"{err} (text has {n_lines} lines)"
            assert str(err).startswith(f"{spec_path}:{err.line}: ")
            assert "Traceback" not in str(err)
        return
    assert isinstance(out, SpecFile)


@FUZZ
@given(st.lists(YAML_BITS | st.text(max_size=4), max_size=120).map("".join))
def test_random_yaml_never_crashes_and_always_names_file_and_line(text: str) -> None:
    _check(text)


@st.composite
def mutated_spec(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SPECS)).read_text()
    for _ in range(draw(st.integers(1, 4))):
        n = len(text)
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, min(n, i + 40)))
        op = draw(st.sampled_from(["delete", "duplicate", "insert", "swap_lines", "retype"]))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.lists(YAML_BITS, max_size=6).map("".join)) + text[i:]
        elif op == "swap_lines":
            lines = text.split("\n")
            a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
        else:  # a value of the wrong kind where a value stood
            k = text.find(": ", i)
            if k >= 0:
                end = text.find("\n", k)
                end = len(text) if end < 0 else end
                text = text[: k + 2] + draw(st.sampled_from(["[]", "{}", "-3", "1.5", "yes", "'x'", "*nope",
                                                              "[[[[", "null", "2e400"])) + text[end:]
    return text


@pytest.mark.skipif(not SPECS, reason="no shipped specs")
@FUZZ
@given(mutated_spec())
def test_mutated_shipped_specs_never_crash_and_always_name_file_and_line(text: str) -> None:
    _check(text)


@settings(max_examples=100, deadline=3000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_bytes_from_disk_are_a_clear_error(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("fuzz", numbered=True) / "bytes.yaml"
    p.write_bytes(data)
    try:
        load_spec_file(p, check_paths=False)
    except SpecFileError as e:
        for err in e.errors:
            assert err.path == p and isinstance(err.line, int) and err.line >= 1, str(err)


def test_shipped_specs_load() -> None:
    assert {p.name for p in SPECS} >= {"smoke.yaml", "products.yaml", "canaries.yaml"}  # never an empty loop
    for p in SPECS:
        assert load_spec_text(p.read_text(), p).clips, p
