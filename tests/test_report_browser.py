"""The report as a user meets it: a real run (two spec folders with the same file names and clip ids, a
spec file with a hostile name, a clip whose prompt carries markup, a failing baseline, two xdist workers),
then the generated pages opened in a real headless Chromium: every image loads, every clip loads its
metadata and plays (with its audio decoded), and no script of the user's runs — the hostile text is on
the page as text."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fixtures.browser import open_page, page_state, play_videos

pytestmark = [
    pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning"),
    pytest.mark.usefixtures("plugin_warm_modules"),  # see tests/fixtures/plugin.py
]

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"
HOSTILE_SPEC = 'x<details open ontoggle="alert(1)">.yaml'


def _card(frames: int, seed: int, cuts: str = "[]") -> str:
    return f"""
clips:
  - id: card
    description: "a card with audio"
    testcard: {{width: 96, height: 64, frames: {frames}, fps: 24, seed: {seed}, cuts: {cuts}, audio: {{sample_rate: 16000}}}}
    expect:
      motion: {{}}
"""


def _project(pytester: pytest.Pytester) -> None:
    from pytest_ltx.testcard import TestCardSpec, write

    specs = pytester.path / "specs"
    for folder, frames, seed in (("a", 17, 1), ("b", 25, 2)):
        (specs / folder).mkdir(parents=True)
        (specs / folder / "clips.yaml").write_text(_card(frames, seed))
    write(TestCardSpec(width=64, height=64, frames=17, fps=24, seed=3, audio={"sample_rate": 16000}),
          specs / "export.mp4")
    (specs / HOSTILE_SPEC).write_text(f"""
clips:
  - id: export
    file: export.mp4
    prompt: {json.dumps(HOSTILE)}
    description: {json.dumps("described as " + HOSTILE)}
    expect:
      motion: {{}}
""")


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("specs/", "-p", "no:cacheprovider", "-W",
                                         "ignore::pytest.PytestAssertRewriteWarning", *args)


@pytest.fixture
def built(pytester: pytest.Pytester) -> Path:
    """The project after two runs: baselines created, then folder a's card changed (a cut) and the suite
    run again on two workers with both report flavours and JUnit XML. Returns the project folder."""
    pytest.importorskip("xdist")
    pytest.importorskip("pytest_html")
    _project(pytester)
    _run(pytester, "--ltx-create-missing").assert_outcomes(passed=3)
    (pytester.path / "specs" / "a" / "clips.yaml").write_text(_card(17, 1, "[9]"))
    old = os.umask(0o022)
    try:
        r = _run(pytester, "-n", "2", "--html=ltx-report/report.html", "--junitxml=junit.xml")
    finally:
        os.umask(old)
    r.assert_outcomes(passed=2, failed=1)
    return pytester.path


def test_report_run_end_to_end_in_a_real_browser(built: Path, chromium) -> None:  # noqa: ANN001
    report = built / "ltx-report"
    doc = json.loads((report / "results.json").read_text())
    items = {i["nodeid"]: i for i in doc["items"]}
    a, b = items["specs/a/clips.yaml::card"], items["specs/b/clips.yaml::card"]

    # same file names, same clip ids, two workers: each item has its own media, holding its own clip
    assert a["artifacts"]["dir"] != b["artifacts"]["dir"]
    from pytest_ltx.media import probe

    for it in (a, b):
        assert probe(report / it["artifacts"]["clip"]).frames == it["evaluation"]["clip"]["frames"]
    assert a["status"] == "failed" and "baseline_keyframes" in a["artifacts"]
    # media names are derived, never the raw file name
    assert all("<" not in p.name and '"' not in p.name for p in report.rglob("*"))
    # files readable by the CI user that uploads them
    for p in [report / "results.json", report / "index.html", report / "summary.md",
              *(report / a["artifacts"]["dir"]).iterdir()]:
        assert p.stat().st_mode & 0o777 == 0o644, p

    # JUnit XML: parses, carries the per-check properties, the hostile id is data
    import xml.etree.ElementTree as ET

    cases = list(ET.parse(built / "junit.xml").getroot().iter("testcase"))
    props = [{p.get("name"): p.get("value") for p in c.iter("property")} for c in cases]
    assert len(cases) == 3 and all(p.get("ltx.status") for p in props)
    assert any((p.get("ltx.baseline.motion.cuts") or "").startswith("failed measured=1") for p in props), props
    assert any("ontoggle" in (c.get("classname") or "") + (c.get("name") or "") for c in cases)

    for page in (report / "index.html", report / "report.html"):
        open_page(chromium, page, "" if page.name == "index.html" else "collapsed=")  # pytest-html: expand all
        state = page_state(chromium)
        assert state["alerts"] == [] and state["real_alert"] is None, (page.name, state["alerts"])
        assert HOSTILE in state["text"], page.name  # on the page, visible, as text
        broken = [i["src"] for i in state["images"] if not i["ok"]]
        assert state["images"] and not broken, (page.name, broken)
        videos = play_videos(chromium)
        assert len(videos) == 3, (page.name, videos)
        for v in videos:
            assert v["mediaError"] is None and v["error"] is None, v
            assert v["duration"] > 0.5, v
            assert v["currentTime"] > 0.3, v  # it played
            assert v["audioBytes"] > 0 and v["videoBytes"] > 0, v  # and its audio was decoded

    # the golden / now / difference rows of the failing baseline are on the page and loaded
    open_page(chromium, report / "index.html")
    loaded = chromium.execute_script(
        "return [...document.querySelectorAll('table.golden img')].map(i => i.naturalWidth)")
    assert len(loaded) == 3 * 3 and min(loaded) > 100, loaded  # golden, now, difference for each compared item


# ---- the terminal and a report folder that refuses files, as a user meets them ----------------------

TINY_FAILING = """
clips:
  - id: robot
    model: tiny
    prompt: "a robot"
    seed: 0
    width: 64
    height: 64
    frames: 9
    fps: 24
    steps: 1
    guidance: {stg_blocks: [1]}
    expect:
      format: {frames: 17}
      baseline: {enabled: false}
"""


def test_terminal_prints_a_failure_once_without_progress_bars(pytester: pytest.Pytester) -> None:
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "r.yaml").write_text(TINY_FAILING)
    r = pytester.runpytest_subprocess("specs/", "-p", "no:cacheprovider", "--ltx-no-cache")
    r.assert_outcomes(failed=1)
    out = r.stdout.str() + r.stderr.str()
    assert out.count("frame count 9, expected 17") == 1, out
    assert "FAILED  specs/r.yaml::robot[seed=0]  (rendered in" in out and ": format.frames" in out
    for bar in ("Loading pipeline components", "Loading weights", "it/s]", "█"):
        assert bar not in out, bar


def test_unwritable_report_folder_costs_one_line_not_the_run(pytester: pytest.Pytester) -> None:
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "c.yaml").write_text(_card(9, 1))
    (pytester.path / "blocked").write_text("a file where the report folder should be")
    r = pytester.runpytest("specs/", "-p", "no:cacheprovider", "--ltx-report-dir=blocked", "--ltx-create-missing")
    r.assert_outcomes(passed=1)
    assert r.ret == 0
    lines = [line for line in r.stdout.lines if line.startswith("pytest-ltx: ")]
    assert len(lines) == 2, lines  # the item's media, then results.json: one line each, no traceback
    assert all("could not write report file" in line and "blocked" in line for line in lines), lines
    assert "Traceback" not in r.stdout.str()
