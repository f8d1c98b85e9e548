"""End-to-end tests of the plugin with pytester: collection, ids, options, errors, results, cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning"),
    pytest.mark.usefixtures("plugin_warm_modules"),  # see tests/fixtures/plugin.py
]

TINY = """
defaults:
  model: tiny
  width: 64
  height: 64
  frames: 9
  fps: 24
  steps: 1
  guidance: {stg_blocks: [1]}
  expect:
    baseline: {enabled: false}   # baselines have their own lifecycle tests (test_plugin_baselines.py)
"""


def write_spec(pytester: pytest.Pytester, name: str, body: str) -> Path:
    d = pytester.path / "specs"
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_text(body)
    return p


def results(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "ltx-report" / "results.json").read_text())


def test_help_lists_every_option_with_its_ini_key(pytester: pytest.Pytester) -> None:
    from pytest_ltx.options import OPTIONS

    r = pytester.runpytest("--help")
    out = r.stdout.str()
    assert "pytest-ltx: creative CI for LTX-2 clips" in out
    for o in OPTIONS:
        assert o.flag in out, o.flag
        assert f"{o.ini} (" in out or f"{o.ini}:" in out or o.ini in out, o.ini


@pytest.mark.parametrize(
    ("ini", "cli", "expected"),
    [
        (None, None, "ltx-report"),
        ("ini-dir", None, "ini-dir"),
        ("ini-dir", "cli-dir", "cli-dir"),
        (None, "cli-dir", "cli-dir"),
    ],
)
def test_option_precedence_cli_over_ini_over_default(pytester: pytest.Pytester, ini, cli, expected) -> None:
    if ini:
        pytester.makeini(f"[pytest]\nltx_report_dir = {ini}\n")
    pytester.makeconftest(
        """
        def pytest_sessionfinish(session):
            from pytest_ltx.session import get_session
            print("REPORT_DIR=" + get_session(session.config).settings.report_dir.name)
        """
    )
    args = ["-s"] + ([f"--ltx-report-dir={cli}"] if cli else [])
    r = pytester.runpytest(*args)
    r.stdout.fnmatch_lines([f"*REPORT_DIR={expected}*"])


@pytest.mark.parametrize(
    ("ini", "cli", "expected"),
    [(None, False, False), ("true", False, True), ("false", True, True), (None, True, True)],
)
def test_boolean_option_precedence(pytester: pytest.Pytester, ini, cli, expected) -> None:
    if ini:
        pytester.makeini(f"[pytest]\nltx_no_cache = {ini}\n")
    pytester.makeconftest(
        """
        def pytest_sessionfinish(session):
            from pytest_ltx.session import get_session
            print("NO_CACHE=%s" % get_session(session.config).settings.no_cache)
        """
    )
    r = pytester.runpytest("-s", *(["--ltx-no-cache"] if cli else []))
    r.stdout.fnmatch_lines([f"*NO_CACHE={expected}*"])


def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nltx_calibrate = many\n")
    pytester.makeconftest(
        """
        def pytest_sessionstart(session):
            from pytest_ltx.session import get_session
            get_session(session.config)
        """
    )
    r = pytester.runpytest("--ltx-calibrate=-3")
    assert r.ret != 0
    r.stderr.fnmatch_lines(["*--ltx-calibrate*>= 0*"])


def test_collects_seed_matrix_with_readable_ids(pytester: pytest.Pytester) -> None:
    write_spec(pytester, "clips.yaml", TINY + """
clips:
  - id: robot
    prompt: a robot
    seeds: [0, 1, 7]
  - id: variants
    prompts: [a cat, a dog]
    seed: 3
""")
    r = pytester.runpytest("--collect-only", "-q", "specs/")
    r.stdout.fnmatch_lines([
        "specs/clips.yaml::robot[[]seed=0[]]",
        "specs/clips.yaml::robot[[]seed=1[]]",
        "specs/clips.yaml::robot[[]seed=7[]]",
        "specs/clips.yaml::variants[[]cat,seed=3[]]",
        "specs/clips.yaml::variants[[]dog,seed=3[]]",
        "*5 tests collected*",
    ])
    r = pytester.runpytest("--collect-only", "-q", "specs/", "-k", "variants and dog")
    r.stdout.fnmatch_lines(["*variants[[]dog,seed=3[]]*", "*1/5 tests collected (4 deselected)*"])


def test_yaml_outside_spec_dirs_is_not_collected(pytester: pytest.Pytester) -> None:
    (pytester.path / "config.yaml").write_text("clips: not a spec\n")
    write_spec(pytester, "one.yaml", TINY + "clips:\n  - id: a\n    prompt: a\n")
    r = pytester.runpytest("--collect-only", "-q")
    r.stdout.fnmatch_lines(["specs/one.yaml::a[[]seed=0[]]", "*1 test collected*"])


def test_spec_marks_and_source_markers_select_items(pytester: pytest.Pytester) -> None:
    write_spec(pytester, "m.yaml", TINY + """
clips:
  - id: heavy
    prompt: a
    marks: [slow]
  - id: light
    prompt: b
""")
    pytester.makeini("[pytest]\nmarkers =\n    slow: heavy\n")
    r = pytester.runpytest("--collect-only", "-q", "-m", "not slow", "specs/")
    r.stdout.fnmatch_lines(["*light*", "*1/2 tests collected (1 deselected)*"])
    r = pytester.runpytest("--collect-only", "-q", "-m", "ltx_render", "specs/")
    r.stdout.fnmatch_lines(["*2 tests collected*"])


def test_malformed_spec_errors_for_that_file_only_and_the_others_still_run(pytester: pytest.Pytester) -> None:
    bad = write_spec(pytester, "bad.yaml", TINY + """
clips:
  - id: broken
    prompt: a
    frames: 24
    negativ_prompt: x
""")
    write_spec(pytester, "good.yaml", TINY + "clips:\n  - id: fine\n    prompt: a\n")
    r = pytester.runpytest("specs/", "-p", "no:cacheprovider")
    r.assert_outcomes(passed=1, errors=1)
    out = r.stdout.str()
    line = bad.read_text().splitlines().index("    frames: 24") + 1
    assert f"bad.yaml:{line}: clips[0].frames: 24 is not 8k+1 (nearest valid: 17 or 25)" in out
    assert "did you mean 'negative_prompt'" in out
    assert "invalid clip spec (2 problems), nothing in it was run" in out
    assert "Traceback" not in out and "Interrupted" not in out
    doc = results(pytester)
    assert [(i["item"], i["status"]) for i in doc["items"]] == [("invalid-spec", "error"), ("fine[seed=0]", "passed")]
    r = pytester.runpytest("--collect-only", "-q", "specs/")
    r.stdout.fnmatch_lines(["specs/bad.yaml::invalid-spec", "specs/good.yaml::fine[[]seed=0[]]"])


def test_render_passes_writes_results_and_second_run_hits_the_cache(pytester: pytest.Pytester) -> None:
    write_spec(pytester, "smoke.yaml", TINY + """
clips:
  - id: robot
    prompt: a robot dancing
    seeds: [0, 1]
    expect:
      format: {audio: true}
      budget: {render_seconds_max: 600, vram_gb_max: 40}
""")
    r = pytester.runpytest("specs/", "-p", "no:cacheprovider")
    r.assert_outcomes(passed=2)
    doc = results(pytester)
    assert doc["summary"] == {"items": 2, "passed": 2, "failed": 0, "error": 0, "regression": 0, "infrastructure": 0}
    item = doc["items"][0]
    assert item["nodeid"] == "specs/smoke.yaml::robot[seed=0]"
    assert item["source"] == "render"
    assert item["params"]["seed"] == 0 and item["params"]["frames"] == 9
    assert item["provenance"]["fingerprint"]
    assert item["evaluation"]["clip"]["frames"] == 9
    assert item["evaluation"]["clip"]["audio_sample_rate"] == 48000
    assert item["timings"]["cached"] is False
    checks = {o["check"]: o["status"] for o in item["outcomes"]}
    assert checks["format.frames"] == "passed" and checks["format.audio"] == "passed"
    assert checks["budget.render_seconds"] == "passed"
    assert checks["budget.vram_gb"] == "unmeasured"  # no CUDA here: reported, not passed

    r = pytester.runpytest("specs/", "-p", "no:cacheprovider")
    r.assert_outcomes(passed=2)
    assert all(i["timings"]["cached"] for i in results(pytester)["items"])

    r = pytester.runpytest("specs/", "-p", "no:cacheprovider", "--ltx-no-cache")
    r.assert_outcomes(passed=2)
    assert not any(i["timings"]["cached"] for i in results(pytester)["items"])


def test_failed_expectation_reads_like_a_review_comment(pytester: pytest.Pytester) -> None:
    write_spec(pytester, "f.yaml", TINY + """
clips:
  - id: short
    prompt: a robot
    expect:
      format: {frames: 17, audio: false}
""")
    r = pytester.runpytest("specs/", "-p", "no:cacheprovider")
    r.assert_outcomes(failed=1)
    out = r.stdout.str()
    assert "2 of" in out and "checks failed" in out
    assert "format.frames: frame count 9, expected 17" in out
    assert "format.audio: audio track present, but the spec forbids audio" in out
    assert "Traceback" not in out and "def runtest" not in out
    item = results(pytester)["items"][0]
    assert item["status"] == "failed"


def test_unknown_model_profile_is_an_error_not_a_failure(pytester: pytest.Pytester) -> None:
    write_spec(pytester, "m.yaml", TINY + "clips:\n  - id: x\n    prompt: a\n    model: ltx23\n")
    r = pytester.runpytest("specs/", "-p", "no:cacheprovider")
    r.assert_outcomes(errors=1)
    out = r.stdout.str()
    assert "infrastructure error, not a regression" in out
    assert "unknown model profile 'ltx23'" in out and "[tool.pytest-ltx.models.ltx23]" in out
    assert results(pytester)["items"][0]["status"] == "error"


def test_determinism_renders_twice_and_passes_bit_identical(pytester: pytest.Pytester) -> None:
    write_spec(pytester, "d.yaml", TINY + """
clips:
  - id: det
    prompt: a robot
    expect:
      determinism: {}
""")
    r = pytester.runpytest("specs/", "-p", "no:cacheprovider")
    r.assert_outcomes(passed=1)
    outs = {o["check"]: o for o in results(pytester)["items"][0]["outcomes"]}
    assert outs["determinism.frames"]["status"] == "passed"
    assert "bit-identical" in outs["determinism.frames"]["message"]
    assert outs["determinism.audio"]["status"] == "passed"
    # proven once: remembered for this request and environment, not rendered twice again
    pytester.runpytest("specs/", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    item = results(pytester)["items"][0]
    outs = {o["check"]: o for o in item["outcomes"]}
    assert "proven at" in outs["determinism.frames"]["message"] and outs["determinism.frames"]["status"] == "passed"
    assert item["timings"]["cached"] is True and "render_call_s" not in item["timings"]
    # forced: rendered twice again
    pytester.runpytest("specs/", "-p", "no:cacheprovider", "--ltx-recheck-determinism").assert_outcomes(passed=1)
    item = results(pytester)["items"][0]
    outs = {o["check"]: o for o in item["outcomes"]}
    assert outs["determinism.frames"]["message"] == "second render is bit-identical (frames)"


def test_warm_rerun_renders_nothing_and_computes_nothing(pytester: pytest.Pytester) -> None:
    write_spec(pytester, "w.yaml", TINY + """
clips:
  - id: r
    prompt: a robot
    expect:
      motion: {}
  - id: card
    testcard: {width: 64, height: 64, frames: 25, fps: 24, cuts: [12], audio: {sample_rate: 16000}}
    expect:
      motion: {cuts: 1}
      av_sync: {}
""")
    pytester.runpytest("specs/", "-p", "no:cacheprovider").assert_outcomes(passed=2)
    first = {i["clip_id"]: i for i in results(pytester)["items"]}
    assert first["r"]["timings"]["metrics_cached"] == [] and first["r"]["timings"]["cached"] is False
    pytester.runpytest("specs/", "-p", "no:cacheprovider").assert_outcomes(passed=2)
    second = {i["clip_id"]: i for i in results(pytester)["items"]}
    assert second["r"]["timings"]["cached"] is True and second["card"]["timings"]["cached"] is True
    assert second["r"]["timings"]["metrics_cached"] == ["motion", "structural", "audio"]  # audio QC always runs
    assert second["card"]["timings"]["metrics_cached"] == ["motion", "av_sync", "structural", "audio"]
    for k in ("r", "card"):
        assert second[k]["evaluation"]["motion"] == first[k]["evaluation"]["motion"]
        assert second[k]["outcomes"] == first[k]["outcomes"]
    # a changed test card is a new clip: drawn and measured again
    (pytester.path / "specs" / "w.yaml").write_text(
        (pytester.path / "specs" / "w.yaml").read_text().replace("cuts: [12]", "cuts: [13]"))
    pytester.runpytest("specs/", "-p", "no:cacheprovider").assert_outcomes(passed=2)
    third = {i["clip_id"]: i for i in results(pytester)["items"]}
    assert third["card"]["timings"]["cached"] is False and third["card"]["timings"]["metrics_cached"] == []
    assert third["r"]["timings"]["metrics_cached"] == ["motion", "structural", "audio"]


def test_warm_rerun_loads_no_decoder_no_model_and_no_plotting(pytester: pytest.Pytester) -> None:
    """A warm rerun reads cached answers only: no PyAV (the export probe's facts are cached too), no
    OpenCV, matplotlib, torch or OCR — importing them would cost more than the whole cached run."""
    write_spec(pytester, "w.yaml", """
defaults:
  expect:
    baseline: {enabled: false}
clips:
  - id: card
    testcard: {width: 64, height: 64, frames: 25, fps: 24, cuts: [12], audio: {sample_rate: 48000, channels: 2}}
    expect:
      motion: {cuts: 1}
      export: {preset: web}  # a test card is not faststart nor colour-tagged: fails, the same way twice
""")
    pytester.makeconftest(
        """
        import sys
        HEAVY = ("torch", "diffusers", "cv2", "av", "easyocr", "open_clip", "librosa", "matplotlib")

        def pytest_sessionfinish(session):
            print("\\nHEAVY_LOADED=" + ",".join(sorted(m for m in HEAVY if m in sys.modules)))
        """
    )
    first = pytester.runpytest_subprocess("specs/", "-p", "no:cacheprovider", "-s")
    first.assert_outcomes(failed=1)
    first.stdout.fnmatch_lines(["HEAVY_LOADED=*av*"])  # the cold run probed and decoded
    cold = results(pytester)["items"][0]["outcomes"]
    warm = pytester.runpytest_subprocess("specs/", "-p", "no:cacheprovider", "-s")
    warm.assert_outcomes(failed=1)
    warm.stdout.fnmatch_lines(["HEAVY_LOADED="])
    again = results(pytester)["items"][0]["outcomes"]
    assert [o for o in again if o["check"].startswith("export.")] == [o for o in cold if o["check"].startswith("export.")]
    assert {o["check"] for o in again if o["status"] == "failed"} == {"export.faststart", "export.color"}


def test_xdist_workers_results_are_merged(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    write_spec(pytester, "x.yaml", TINY + "clips:\n  - id: x\n    prompt: a\n    seeds: [0, 1, 2]\n")
    r = pytester.runpytest_subprocess("specs/", "-p", "no:cacheprovider", "-n", "2")
    r.assert_outcomes(passed=3)
    doc = results(pytester)
    assert [i["item"] for i in doc["items"]] == ["x[seed=0]", "x[seed=1]", "x[seed=2]"]


CARDS = """
defaults:
  expect:
    baseline: {enabled: false}
clips:
  - id: still
    testcard: {width: 64, height: 64, frames: 9, fps: 24, seed: 1}
    expect: {motion: {cuts: 0}}
  - id: cut
    testcard: {width: 64, height: 64, frames: 25, fps: 24, cuts: [12]}
    expect: {motion: {cuts: 1}}
  - id: wrong
    testcard: {width: 64, height: 64, frames: 25, fps: 24, cuts: [12]}
    expect: {motion: {cuts: 0}}
"""


def test_results_json_and_report_are_written_once_by_the_controller(pytester: pytest.Pytester,
                                                                    xdist_args: tuple[str, ...]) -> None:
    """In one process and under ``-n 2``: every item's result reaches results.json exactly once, written
    once, by the controller; each item's media are written once, by the process that ran it."""
    from tests.fixtures.plugin import WRITE_LOG_CONFTEST

    log = pytester.path / "writes.log"
    pytester.makeconftest(WRITE_LOG_CONFTEST.format(log=str(log)))
    write_spec(pytester, "c.yaml", CARDS)
    argv = ("specs/", "-p", "no:cacheprovider", *xdist_args)
    r = pytester.runpytest_subprocess(*argv) if xdist_args else pytester.runpytest(*argv)
    r.assert_outcomes(passed=2, failed=1)
    r.stdout.fnmatch_lines(["*motion.cuts*"])
    doc = results(pytester)
    assert sorted((i["item"], i["status"]) for i in doc["items"]) == [
        ("cut", "passed"), ("still", "passed"), ("wrong", "failed")]
    assert doc["summary"]["items"] == 3 and doc["summary"]["regression"] == 1
    writes = [line.split(" ") for line in log.read_text().splitlines()]
    assert [w for w in writes if w[1] == "results"] == [["controller", "results", "results.json"]]
    media = sorted((w[2], w[0]) for w in writes if w[1] == "media")
    assert [n for n, _ in media] == [f"specs/c.yaml::{k}" for k in ("cut", "still", "wrong")]
    roles = {role for _, role in media}
    assert roles == {"controller"} if not xdist_args else roles <= {"gw0", "gw1"}, roles
    for item in doc["items"]:  # the clip and keyframes each result names are there
        assert item["artifacts"] and "error" not in item["artifacts"], item["artifacts"]
    assert (pytester.path / "ltx-report" / "index.html").is_file()


def test_html_report_has_keyframes_and_clip(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_html")
    write_spec(pytester, "h.yaml", TINY + "clips:\n  - id: h\n    prompt: a\n")
    r = pytester.runpytest("specs/", "-p", "no:cacheprovider", "--html=report.html", "--self-contained-html")
    r.assert_outcomes(passed=1)
    html = (pytester.path / "report.html").read_text()
    # one HTML block per item: the clip inlined (small), the keyframe strip, the checks, a link to index.html
    assert "ltx-clip" in html and "data:video/mp4;base64," in html and "ltx-strip" in html
    assert "format.frames" in html and "index.html#item-" in html


def test_file_clip_outside_the_project_needs_permission(pytester: pytest.Pytester,
                                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    from pytest_ltx.testcard import TestCardSpec, write

    outside = tmp_path_factory.mktemp("elsewhere") / "export.mp4"
    write(TestCardSpec(width=64, height=64, frames=9, audio=None), outside)
    write_spec(pytester, "f.yaml", f"""
clips:
  - id: export
    file: {outside}
    expect: {{baseline: {{enabled: false}}, motion: {{cuts: 0}}}}
""")
    r = pytester.runpytest("specs/", "-p", "no:cacheprovider")
    r.assert_outcomes(errors=1)
    assert "outside" in r.stdout.str() and str(outside) in r.stdout.str()
    r = pytester.runpytest("specs/", "-p", "no:cacheprovider", "--ltx-allow-outside-root")
    r.assert_outcomes(passed=1)
    item = results(pytester)["items"][0]
    assert item["source"] == "file" and item["provenance"]["file_sha256"]


def test_plugin_import_and_collection_do_not_load_heavy_libraries(pytester: pytest.Pytester) -> None:
    """`pytest --help` and collection stay fast: torch, diffusers, cv2, PyAV, easyocr, open_clip and
    librosa are imported only when a clip is produced or measured."""
    write_spec(pytester, "c.yaml", TINY + "clips:\n  - id: a\n    prompt: a\n")
    pytester.makeconftest(
        """
        import sys
        HEAVY = ("torch", "diffusers", "transformers", "cv2", "av", "easyocr", "open_clip", "librosa")

        def pytest_collection_finish(session):
            loaded = sorted(m for m in HEAVY if m in sys.modules)
            print("HEAVY_LOADED=" + ",".join(loaded))
        """
    )
    r = pytester.runpytest_subprocess("--collect-only", "-q", "-s", "specs/")
    r.stdout.fnmatch_lines(["HEAVY_LOADED="])
