"""The README is the contract: its two set-up commands install the pinned environment CI tested, and
`.ci/run` runs exactly those commands. These tests fail clearly when the lock and pyproject.toml drift."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _lock() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for n, line in enumerate((ROOT / "requirements.lock").read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        assert m, f"requirements.lock:{n}: not an exact pin 'name==version': {line!r}"
        pins[canonicalize_name(m.group(1))] = Version(m.group(2))
    return pins


def _requirements() -> list[tuple[str, Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [("dependencies", Requirement(r)) for r in project["dependencies"]]
    for extra, items in project.get("optional-dependencies", {}).items():
        reqs += [(f"optional-dependencies.{extra}", Requirement(r)) for r in items]
    return reqs


def test_lock_pins_every_dependency_within_its_range() -> None:
    pins = _lock()
    problems = []
    for where, req in _requirements():
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req} ({where}) is not pinned in requirements.lock")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req} ({where}) but requirements.lock pins {req.name}=={pins[name]}")
    assert not problems, ("requirements.lock and pyproject.toml disagree — run `bash .ci/lock`, review the diff "
                          "and commit it:\n  " + "\n  ".join(problems))


def _readme_commands() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    cmds = re.findall(r"^(python3 -m venv \.venv && .+)$", text, flags=re.M)
    main = [c for c in cmds if "pytest specs/" in c]
    suite = [c for c in cmds if "'.[test]'" in c and "pytest specs/" not in c]
    assert main and suite, "the README must show the main-job and the test-suite commands"
    return {"main": main[0], "suite": suite[0]}


@pytest.mark.parametrize("which", ["main", "suite"])
def test_readme_commands_install_from_the_lock(which: str) -> None:
    cmd = _readme_commands()[which]
    assert "pip install -c requirements.lock " in cmd, cmd


@pytest.mark.parametrize("which", ["main", "suite"])
def test_ci_runs_the_readme_commands_verbatim(which: str) -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert _readme_commands()[which] in ci, f".ci/run does not run the README's {which} command verbatim"


def test_ci_runs_the_readme_static_checks_verbatim() -> None:
    text = (ROOT / "README.md").read_text()
    cmds = re.findall(r"^(\.venv/bin/ruff check.*)$", text, flags=re.M)
    assert cmds, "the README must show the static-checks command"
    assert "mypy" in cmds[0], cmds[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert cmds[0] in ci, ".ci/run does not run the README's static-checks command verbatim"
    # the tools are in the test extra, so the test-suite venv that runs the command has them
    extra = {canonicalize_name(r.name) for where, r in _requirements() if where == "optional-dependencies.test"}
    assert {"ruff", "mypy"} <= extra, extra


def test_ci_starts_from_a_fresh_venv_and_fails_on_no_tests() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "rm -rf .venv" in ci  # never a warm venv, even on a machine that ran CI before
    assert '"$2" -eq 5' in ci  # pytest's "no tests collected" must not pass silently
