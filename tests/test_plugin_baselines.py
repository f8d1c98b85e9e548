"""End-to-end tests of the golden-baseline lifecycle through the plugin (pytester).

missing → created on request → pass → a changed clip fails with a readable diff → update → pass → an
orphan is reported (only when the whole suite ran) → pruned on request; the same under xdist; a flush
killed half-way; calibration; a baseline from another environment; a corrupt baseline; the GitHub step
summary. The lifecycle and calibration run both in one process and under ``-n 2`` (``xdist_args``). Test cards are the clips (deterministic, ~0.1 s each); calibration uses the tiny render model.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.fixtures.plugin import WRITE_LOG_CONFTEST

pytestmark = [
    pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning"),
    pytest.mark.usefixtures("plugin_warm_modules"),  # see tests/fixtures/plugin.py
]

#: a baseline record directory holds exactly these
RECORD_FILES = {"record.json", "keyframes.npz", "keyframes.jpg"}


def cards(a: str = "seed: 1", b: str | None = "seed: 2") -> str:
    """Two 64×64, 9-frame test-card items ``a`` and ``b`` with motion metrics (so baselines hold
    scalars as well as keyframe thumbnails); ``b=None`` drops item b from the spec."""
    body = f"""
    defaults:
      expect:
        motion: {{}}
    clips:
      - id: a
        testcard: {{width: 64, height: 64, frames: 9, fps: 24, {a}}}
    """
    if b is not None:
        body += f"""  - id: b
        testcard: {{width: 64, height: 64, frames: 9, fps: 24, {b}}}
    """
    return textwrap.dedent(body)


#: card a, changed: another scene (seed) panning faster — structure and motion move
A_CHANGED = "seed: 5, pan: [0.5, 0.3]"

TINY = """
defaults:
  model: tiny
  width: 64
  height: 64
  frames: 9
  fps: 24
  steps: 1
  guidance: {stg_blocks: [1]}
clips:
  - id: noise
    prompt: a robot
    expect:
      motion: {}
"""


def write_spec(pytester: pytest.Pytester, body: str, name: str = "life.yaml") -> Path:
    d = pytester.path / "specs"
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_text(body)
    return p


def run(pytester: pytest.Pytester, *args: str, subprocess: bool = False) -> pytest.RunResult:
    # the inner run sees the plugin already imported by this process: not the warning under test here
    argv = ("specs/", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning", *args)
    return pytester.runpytest_subprocess(*argv) if subprocess else pytester.runpytest(*argv)


def base_dir(pytester: pytest.Pytester, item: str, model: str = "testcard", spec: str = "life") -> Path:
    return pytester.path / "baselines" / "specs" / spec / item / model


def record(pytester: pytest.Pytester, item: str, **kw: str) -> dict:
    return json.loads((base_dir(pytester, item, **kw) / "record.json").read_text())


def results(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "ltx-report" / "results.json").read_text())


def outcomes(doc: dict, item: str) -> dict[str, dict]:
    (it,) = [i for i in doc["items"] if i["item"] == item]
    return {o["check"]: o for o in it["outcomes"]}


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path → bytes)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---- the lifecycle ---------------------------------------------------------------------------------


def _lifecycle(pytester: pytest.Pytester, *xargs: str, subprocess: bool = False) -> None:
    """The whole walk; ``xargs`` are added to every run (``-n 2`` for xdist)."""

    def go(*args: str) -> pytest.RunResult:
        return run(pytester, *xargs, *args, subprocess=subprocess)

    write_spec(pytester, cards())

    # 1. missing: fails, says where the baseline would be and the exact command that creates it
    r = go()
    r.assert_outcomes(failed=2)
    out = r.stdout.str()
    assert ("no golden baseline for specs/life/a [testcard] (expected baselines/specs/life/a/testcard): "
            "create it with `pytest 'specs/life.yaml::a' --ltx-update-baselines`") in out
    assert "Traceback" not in out
    assert not (pytester.path / "baselines").exists()

    # 2. created on request (--ltx-create-missing): passes, says so, writes complete records
    r = go("--ltx-create-missing")
    r.assert_outcomes(passed=2)
    r.stdout.fnmatch_lines(["*baselines: 2 created in *baselines",
                            "*created  specs/life/a [[]testcard[]]",
                            "*created  specs/life/b [[]testcard[]]"])
    for item in ("a", "b"):
        assert {p.name for p in base_dir(pytester, item).iterdir()} == RECORD_FILES
        rec = record(pytester, item)
        assert rec["item_key"] == f"specs/life/{item}" and rec["samples"] == 1
        assert rec["scalars"]["motion.cuts"] == 0 and "motion.flow_mean" in rec["scalars"]
    a_created = snapshot(base_dir(pytester, "a"))

    # 3. pass: compared metric by metric, nothing rewritten
    r = go()
    r.assert_outcomes(passed=2)
    assert "baselines:" not in r.stdout.str()
    checks = outcomes(results(pytester), "a")
    assert checks["baseline.motion.flow_mean"]["status"] == "passed"
    assert checks["baseline.structural.thumbnails"]["status"] == "passed"
    assert snapshot(base_dir(pytester, "a")) == a_created

    # ... and --ltx-update-baselines on an unchanged clip does not churn the files either
    r = go("--ltx-update-baselines")
    r.assert_outcomes(passed=2)
    r.stdout.fnmatch_lines(["*baselines: 2 unchanged*"])
    assert snapshot(base_dir(pytester, "a")) == a_created

    # 4. the clip changes: a readable diff, baseline → now, with the tolerance; b is untouched
    write_spec(pytester, cards(a=A_CHANGED))
    r = go()
    r.assert_outcomes(failed=1, passed=1)
    out = r.stdout.str()
    assert "specs/life.yaml:" in out and "a: " in out and "checks failed" in out
    old_flow = record(pytester, "a")["scalars"]["motion.flow_mean"]
    r.stdout.fnmatch_lines([f"*baseline.motion.flow_mean: motion.flow_mean moved {old_flow:.4g} → * (+*; tolerance ±*"])
    r.stdout.fnmatch_lines(["*baseline.structural.thumbnails: keyframe SSIM to the baseline fell to * at keyframe *"
                            "(frame *, * s); min allowed 0.70*"])
    assert "Traceback" not in out
    assert snapshot(base_dir(pytester, "a")) == a_created  # a failing run never writes

    # 5. update: passes, the summary names what moved; then a plain run passes on the new baseline
    r = go("--ltx-update-baselines")
    r.assert_outcomes(passed=2)
    r.stdout.fnmatch_lines(["*baselines: 1 updated, 1 unchanged in *",
                            "*updated  specs/life/a [[]testcard[]]",
                            f"*motion.flow_mean {old_flow:.4g} → *",
                            "*arrays changed: *structural.thumbnails*",
                            "*provenance changed: testcard_sha256*"])
    new = record(pytester, "a")
    assert new["scalars"]["motion.flow_mean"] != old_flow
    assert new["created"] == json.loads(a_created["record.json"])["created"]  # created survives updates
    r = go()
    r.assert_outcomes(passed=2)

    # 6. b leaves the spec: its baseline is reported unused, the run is not failed by it
    write_spec(pytester, cards(a=A_CHANGED, b=None))
    write_spec(pytester, cards(), name="other.yaml")  # another spec's baselines are never b's business
    r = go("--ltx-create-missing")
    assert r.ret == 0
    r.stdout.fnmatch_lines(["*1 baseline(s) unused (remove with --ltx-prune-baselines):",
                            "*specs/life/b [[]testcard[]]"])
    assert results(pytester)["meta"]["unused_baselines"] == [["specs/life/b", "testcard"]]

    # ... but only when the whole suite ran: not with -k (nor is anything pruned then)
    r = go("-k", "not other", "--ltx-prune-baselines")
    assert r.ret == 0
    assert "unused" not in r.stdout.str() and "removed" not in r.stdout.str()
    assert base_dir(pytester, "b").is_dir()

    # 7. pruned on request: b's folder goes (and its now-empty parent), everything else stays
    r = go("--ltx-prune-baselines")
    assert r.ret == 0
    r.stdout.fnmatch_lines(["*1 baseline(s) removed:", "*specs/life/b [[]testcard[]]"])
    assert not (pytester.path / "baselines" / "specs" / "life" / "b").exists()
    assert base_dir(pytester, "a").is_dir()
    assert base_dir(pytester, "a", spec="other").is_dir() and base_dir(pytester, "b", spec="other").is_dir()
    r = go()
    r.assert_outcomes(passed=3)
    assert "unused" not in r.stdout.str()


@pytest.mark.parametrize("xdist_args", [pytest.param((), id="serial"),
                                        pytest.param(("-n", "2"), id="xdist", marks=pytest.mark.slow)], indirect=True)
def test_lifecycle_missing_create_pass_change_update_orphan_prune(pytester: pytest.Pytester,
                                                                 xdist_args: tuple[str, ...]) -> None:
    """The whole walk, in one process and under ``-n 2``. Under xdist the items run on workers; their
    records reach the controller, which writes each one once (and nobody else writes), and learns the
    collection from the workers for orphan reporting."""
    if not xdist_args:
        _lifecycle(pytester)
        return
    log = pytester.path / "writes.log"
    pytester.makeconftest(WRITE_LOG_CONFTEST.format(log=str(log)))
    _lifecycle(pytester, *xdist_args, subprocess=True)
    writes = [line for line in log.read_text().splitlines() if " baseline " in line]
    # created a, b (other.yaml: a, b); updated a — each exactly once, all by the controller
    assert sorted(writes) == sorted(f"controller baseline {k}" for k in [
        "specs/life/a", "specs/life/b", "specs/life/a", "specs/other/a", "specs/other/b"])


def test_baseline_walk_create_pass_fail_update(pytester: pytest.Pytester, xdist_args: tuple[str, ...]) -> None:
    """The short walk, in one process and under ``-n 2`` (the full one above is slow under xdist):
    missing fails → created → passes → a changed clip fails, nothing written → updated → passes."""

    def go(*args: str) -> pytest.RunResult:
        return run(pytester, *xdist_args, *args, subprocess=bool(xdist_args))

    write_spec(pytester, cards(b=None))
    go().assert_outcomes(failed=1)
    assert not (pytester.path / "baselines").exists()
    r = go("--ltx-create-missing")
    r.assert_outcomes(passed=1)
    r.stdout.fnmatch_lines(["*created  specs/life/a [[]testcard[]]"])
    created = snapshot(base_dir(pytester, "a"))
    go().assert_outcomes(passed=1)
    write_spec(pytester, cards(a=A_CHANGED, b=None))
    r = go()
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*baseline.structural.thumbnails: keyframe SSIM to the baseline fell to *"])
    assert snapshot(base_dir(pytester, "a")) == created
    assert outcomes(results(pytester), "a")["baseline.structural.thumbnails"]["status"] == "failed"
    r = go("--ltx-update-baselines")
    r.assert_outcomes(passed=1)
    r.stdout.fnmatch_lines(["*updated  specs/life/a [[]testcard[]]"])
    assert snapshot(base_dir(pytester, "a")) != created
    go().assert_outcomes(passed=1)


def test_the_command_a_missing_baseline_suggests_creates_just_that_one(pytester: pytest.Pytester) -> None:
    """The missing message's command (a node id + --ltx-update-baselines) creates that item's baseline
    only; a node-id run is not the whole suite, so the other item's absence is not 'unused' talk."""
    write_spec(pytester, cards())
    run(pytester).assert_outcomes(failed=2)
    r = pytester.runpytest("specs/life.yaml::a", "-p", "no:cacheprovider", "--ltx-update-baselines")
    r.assert_outcomes(passed=1)
    r.stdout.fnmatch_lines(["*baselines: 1 created*", "*created  specs/life/a [[]testcard[]]"])
    assert base_dir(pytester, "a").is_dir() and not (pytester.path / "baselines" / "specs" / "life" / "b").exists()
    r = run(pytester)
    r.assert_outcomes(passed=1, failed=1)
    r.stdout.fnmatch_lines(["*no golden baseline for specs/life/b [[]testcard[]]*"])


def test_orphans_only_within_the_spec_files_that_ran(pytester: pytest.Pytester) -> None:
    """Running one spec file judges only that file's baselines: not those of ``specs/life/sub.yaml``
    (whose item keys start with ``specs/life/`` too)."""
    write_spec(pytester, cards())
    (pytester.path / "specs" / "life").mkdir()
    write_spec(pytester, cards(), name="life/sub.yaml")
    run(pytester, "--ltx-create-missing").assert_outcomes(passed=4)
    r = pytester.runpytest("specs/life.yaml", "-p", "no:cacheprovider", "--ltx-prune-baselines")
    r.assert_outcomes(passed=2)
    assert "unused" not in r.stdout.str() and "removed" not in r.stdout.str()
    assert base_dir(pytester, "a", spec="life/sub").is_dir() and base_dir(pytester, "b", spec="life/sub").is_dir()


def test_baselines_of_a_deleted_spec_file_are_unused_when_its_folder_ran(pytester: pytest.Pytester) -> None:
    """A renamed or deleted spec file leaves baselines no file claims: a run of the whole spec folder
    reports them (and prunes on request); a run of one file does not judge them."""
    write_spec(pytester, cards())
    write_spec(pytester, cards(), name="gone.yaml")
    run(pytester, "--ltx-create-missing").assert_outcomes(passed=4)
    (pytester.path / "specs" / "gone.yaml").unlink()

    r = pytester.runpytest("specs/life.yaml", "-p", "no:cacheprovider")
    assert "baseline(s) unused" not in r.stdout.str()
    r = run(pytester)
    r.assert_outcomes(passed=2)
    r.stdout.fnmatch_lines(["*2 baseline(s) unused (remove with --ltx-prune-baselines):*",
                            "*specs/gone/a [[]testcard[]]*", "*specs/gone/b [[]testcard[]]*"])
    run(pytester, "--ltx-prune-baselines").assert_outcomes(passed=2)
    assert not base_dir(pytester, "a", spec="gone").exists()
    assert base_dir(pytester, "a").is_dir()


def test_last_failed_rerun_never_prunes_the_items_it_skipped(pytester: pytest.Pytester) -> None:
    """``--lf`` deselects the items that passed last time: their baselines are not unused."""
    write_spec(pytester, cards())
    args = ("specs/", "-W", "ignore::pytest.PytestAssertRewriteWarning")
    pytester.runpytest(*args, "--ltx-create-missing").assert_outcomes(passed=2)
    write_spec(pytester, cards(a=A_CHANGED))
    pytester.runpytest(*args).assert_outcomes(failed=1, passed=1)
    r = pytester.runpytest(*args, "--lf", "--ltx-prune-baselines", "--ltx-update-baselines")
    r.assert_outcomes(passed=1)
    assert "unused" not in r.stdout.str() and "removed" not in r.stdout.str()
    assert base_dir(pytester, "b").is_dir()


# ---- crash safety ----------------------------------------------------------------------------------

KILLER = """
    import os
    import pytest_ltx.baseline.store as store

    _real, _calls = store._rename, [0]

    def _rename(src, dst):
        _calls[0] += 1
        if _calls[0] == {at}:
            {action}
        return _real(src, dst)

    store._rename = _rename
"""


@pytest.mark.parametrize("kill_at", [2, 3, 4])
def test_killed_update_leaves_each_baseline_old_or_new_and_next_run_recovers(
    pytester: pytest.Pytester, kill_at: int
) -> None:
    """A flush swaps records in with two renames each (old → aside, new → in), a then b. The process is
    killed (os._exit) before rename ``kill_at``: 2 = between a's two renames, 3 = a done, b not
    started, 4 = between b's two renames. No visible baseline is ever partial; the next run restores
    whatever was moved aside, and an update then finishes the job."""
    write_spec(pytester, cards())
    run(pytester, "--ltx-create-missing").assert_outcomes(passed=2)
    old = {i: snapshot(base_dir(pytester, i)) for i in ("a", "b")}

    write_spec(pytester, cards(a=A_CHANGED, b="seed: 6"))
    pytester.makeconftest(KILLER.format(at=kill_at, action="os._exit(9)"))
    r = run(pytester, "--ltx-update-baselines", subprocess=True)
    assert r.ret == 9, r.stdout.str()
    (pytester.path / "conftest.py").unlink()

    from pytest_ltx.baseline import BaselineRecord

    # right after the kill, before anyone recovers: every visible record is complete and consistent
    def leftovers() -> list[Path]:  # a record's temp/aside copies lie beside it, hidden
        return [p for i in ("a", "b") for p in base_dir(pytester, i).parent.iterdir() if p.name.startswith(".")]

    assert leftovers()
    for i in ("a", "b"):
        d = base_dir(pytester, i)
        if d.exists():
            assert {p.name for p in d.iterdir()} == RECORD_FILES
            BaselineRecord.read_dir(d)  # digests of npz/jpg match record.json: not a mix of two versions

    # the next (plain) run recovers: leftovers gone, each record old (fails: the cards changed) or new
    r = run(pytester)
    assert not leftovers()
    now = {i: snapshot(base_dir(pytester, i)) for i in ("a", "b")}
    a_new, b_new = now["a"] != old["a"], now["b"] != old["b"]
    assert (a_new, b_new) == {2: (False, False), 3: (True, False), 4: (True, False)}[kill_at]
    for i, is_new in (("a", a_new), ("b", b_new)):
        assert {p.name for p in base_dir(pytester, i).iterdir()} == RECORD_FILES
        if is_new:  # a complete new record: the new card's provenance, its own files
            assert record(pytester, i)["provenance"]["testcard_sha256"] != json.loads(
                old[i]["record.json"])["provenance"]["testcard_sha256"]
    r.assert_outcomes(passed=int(a_new) + int(b_new), failed=2 - int(a_new) - int(b_new))

    run(pytester, "--ltx-update-baselines").assert_outcomes(passed=2)
    run(pytester).assert_outcomes(passed=2)


def test_failed_baseline_write_is_reported_and_fails_the_run(pytester: pytest.Pytester) -> None:
    """A flush that raises (disk full, permissions) keeps the old baselines, says so in the terminal
    summary and makes the exit status non-zero: a requested update that did not happen is not green."""
    write_spec(pytester, cards())
    run(pytester, "--ltx-create-missing").assert_outcomes(passed=2)
    old = snapshot(pytester.path / "baselines")
    write_spec(pytester, cards(a=A_CHANGED))
    pytester.makeconftest(KILLER.format(at=1, action="raise OSError(28, 'No space left on device')"))
    r = run(pytester, "--ltx-update-baselines", subprocess=True)
    r.assert_outcomes(passed=2)
    assert r.ret == 1
    r.stdout.fnmatch_lines(["  not written specs/life/a [[]testcard[]]",
                            "*pytest-ltx: baseline store *baselines: 1 of 2 baseline(s) NOT written "
                            "(first: specs/life/a/testcard: no space left on the device); each kept its previous "
                            "version*"])
    (pytester.path / "conftest.py").unlink()
    run(pytester).assert_outcomes(passed=1, failed=1)  # recovered: a is still the old baseline
    assert snapshot(pytester.path / "baselines") == old


def test_update_never_writes_a_baseline_from_a_crashed_metric(pytester: pytest.Pytester) -> None:
    """A metric that raised is an error outcome; writing that run as the baseline would record the
    metric as unmeasured and stop gating it. The old baseline stays, and the item says why."""
    write_spec(pytester, cards())
    run(pytester, "--ltx-create-missing").assert_outcomes(passed=2)
    old = snapshot(pytester.path / "baselines")
    pytester.makeconftest("""
        import pytest_ltx.metrics.motion as motion

        def _broken(self, frame):
            raise RuntimeError("simulated metric bug")

        motion.MotionConsumer.feed = _broken
    """)
    # --ltx-no-cache: the first run's results are in the evaluation cache and would be read back
    r = run(pytester, "--ltx-update-baselines", "--ltx-no-cache", subprocess=True)
    r.assert_outcomes(failed=2)
    r.stdout.fnmatch_lines(["*ERROR motion.error: motion could not be computed: RuntimeError: simulated metric bug*",
                            "*ERROR baseline.update: baseline baselines/specs/life/a/testcard not written: motion.error "
                            "could not be computed in this run (the old baseline stays)*"])
    assert snapshot(pytester.path / "baselines") == old
    assert "baselines:" not in r.stdout.str()


# ---- calibration -----------------------------------------------------------------------------------


def test_calibrate_render_neighbouring_and_same_seeds(pytester: pytest.Pytester) -> None:
    """``--ltx-calibrate 3`` stores means, σ and samples=3. Neighbouring seeds (0, 1, 2) give the tiny
    model's noise clips a nonzero spread on some motion metric; the same seed three times on CPU renders
    identical clips, so the spread is zero (up to float summation: ~1e-16)."""
    write_spec(pytester, TINY, name="r.yaml")
    r = run(pytester, "--ltx-calibrate", "3", "--ltx-calibrate-seeds", "neighbouring")
    r.assert_outcomes(passed=1)
    r.stdout.fnmatch_lines(["*baselines: 1 created*"])
    model = next((pytester.path / "baselines" / "specs" / "r" / "noise[seed=0]").iterdir()).name
    rec = record(pytester, "noise[seed=0]", model=model, spec="r")
    assert rec["samples"] == 3
    assert rec["provenance"]["calibration"]["seeds"] == [0, 1, 2]
    assert set(rec["spread"]) >= {"motion.flow_mean", "motion.cuts"}
    assert max(rec["spread"].values()) > 0, rec["spread"]

    r = run(pytester, "--ltx-calibrate", "3", "--ltx-calibrate-seeds", "same")
    r.assert_outcomes(passed=1)
    r.stdout.fnmatch_lines(["*updated  specs/r/noise[[]seed=0[]]*", "*spread recalibrated (3 → 3 runs)*"])
    rec = record(pytester, "noise[seed=0]", model=model, spec="r")
    assert rec["samples"] == 3 and rec["provenance"]["calibration"]["seeds"] == [0, 0, 0]
    assert max(rec["spread"].values()) < 1e-12, rec["spread"]

    # the calibrated spread now sets the tolerances of a plain run
    run(pytester).assert_outcomes(passed=1)
    tol = outcomes(results(pytester), "noise[seed=0]")["baseline.motion.flow_mean"]["details"]["tolerance"]
    assert tol["source"] == "calibrated", tol


def test_calibrate_testcard_stores_zero_spread(pytester: pytest.Pytester, xdist_args: tuple[str, ...]) -> None:
    write_spec(pytester, cards(b=None))
    r = run(pytester, "--ltx-calibrate", "3", *xdist_args, subprocess=bool(xdist_args))
    r.assert_outcomes(passed=1)
    rec = record(pytester, "a")
    # the same clip three times: σ is exactly zero
    assert rec["samples"] == 3 and rec["spread"] and max(rec["spread"].values()) == 0.0, rec["spread"]


# ---- environment, corruption -------------------------------------------------------------------------


def test_baseline_from_another_environment_is_compared_with_a_warning(pytester: pytest.Pytester) -> None:
    from importlib.metadata import version

    write_spec(pytester, cards(b=None))
    run(pytester, "--ltx-create-missing").assert_outcomes(passed=1)
    p = base_dir(pytester, "a") / "record.json"
    doc = json.loads(p.read_text())
    doc["environment"]["libraries"]["torch"] = "2.0.0"
    doc["environment"]["device"] = "cuda"
    p.write_text(json.dumps(doc, indent=2, sort_keys=True))

    r = run(pytester)
    r.assert_outcomes(passed=1)  # no warning per item: one line for the session
    r.stdout.fnmatch_lines([f"1 baseline(s) made in a different environment (compared anyway): "
                            f"device cuda → (none); torch 2.0.0 → {version('torch')}"])
    item = results(pytester)["items"][0]
    assert item["baseline"]["status"] == "compared"
    assert item["baseline"]["comparison"]["environment_diff"] == ["device cuda → (none)",
                                                                  f"torch 2.0.0 → {version('torch')}"]
    assert outcomes(results(pytester), "a")["baseline.motion.flow_mean"]["status"] == "passed"

    # a regression against it names the environment difference in the failure itself
    write_spec(pytester, cards(a=A_CHANGED, b=None))
    r = run(pytester)
    r.assert_outcomes(failed=1, warnings=1)
    r.stdout.fnmatch_lines(["*baseline.motion.flow_mean: * [[]baseline environment differs: device cuda → (none);*"])
    # and the changed clip definition itself is named, so nobody wonders why it moved
    r.stdout.fnmatch_lines(["*PytestWarning: a: baseline made from a different request*: testcard content changed"])


@pytest.mark.parametrize(
    ("file", "damage", "says"),
    [
        ("record.json", b'{"format": 1, "item_key": ', "corrupt JSON"),
        ("record.json", b"<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> theirs\n", "contains git merge-conflict markers"),
        ("keyframes.npz", b"PK\x03\x04 not really a zip", "corrupt"),
        ("keyframes.jpg", None, "missing (record.json lists thumbnails)"),
    ],
    ids=["truncated-json", "merge-conflict", "bad-npz", "missing-strip"],
)
def test_corrupt_baseline_is_an_error_on_that_item_naming_the_file(
    pytester: pytest.Pytester, file: str, damage: bytes | None, says: str
) -> None:
    write_spec(pytester, cards())
    run(pytester, "--ltx-create-missing").assert_outcomes(passed=2)
    target = base_dir(pytester, "a") / file
    if damage is None:
        target.unlink()
    else:
        target.write_bytes(damage)

    r = run(pytester)
    assert r.ret == 1  # failed tests, not an internal error or a crash
    r.assert_outcomes(failed=1, passed=1)
    out = r.stdout.str()
    assert "INTERNALERROR" not in out and "Traceback" not in out
    r.stdout.fnmatch_lines([f"*ERROR baseline.read: {target}: {says}*regenerat* it with "
                            "`pytest 'specs/life.yaml::a' --ltx-update-baselines`*"])
    assert outcomes(results(pytester), "a")["baseline.read"]["status"] == "error"

    # --ltx-create-missing does not paper over it; --ltx-update-baselines replaces it
    run(pytester, "--ltx-create-missing").assert_outcomes(failed=1, passed=1)
    r = run(pytester, "--ltx-update-baselines")
    r.assert_outcomes(passed=2)
    r.stdout.fnmatch_lines(["*updated  specs/life/a [[]testcard[]]", "*replaced an unusable baseline: *"])
    run(pytester).assert_outcomes(passed=2)


# ---- GitHub step summary ------------------------------------------------------------------------------


def test_github_step_summary_has_items_and_baseline_changes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    write_spec(pytester, cards())
    run(pytester, "--ltx-create-missing").assert_outcomes(passed=2)
    text = summary.read_text()
    assert "2 clips: 2 passed, 0 failed, 0 errors; 0 checks unmeasured" in text
    # user-written ids are escaped text (HTML and Markdown), not code spans that a backtick could end
    assert "| ✅ | specs/life\\.yaml&#58;&#58;a | testcard |" in text
    assert "| ✅ | specs/life\\.yaml&#58;&#58;b | testcard |" in text
    assert "### baselines: 2 created" in text
    assert "| created | specs/life/a | `testcard` | — |" in text

    summary.unlink()
    write_spec(pytester, cards(a=A_CHANGED))
    run(pytester).assert_outcomes(failed=1, passed=1)
    text = summary.read_text()
    assert "| ❌ | specs/life\\.yaml&#58;&#58;a | testcard |" in text and "baselines:" not in text

    summary.unlink()
    run(pytester, "--ltx-update-baselines").assert_outcomes(passed=2)
    text = summary.read_text()
    assert "### baselines: 1 updated, 1 unchanged" in text
    row = next(line for line in text.splitlines() if line.startswith("| updated |"))
    assert "| specs/life/a |" in row and "`motion.flow_mean " in row and "→" in row
    assert "1 baseline(s) unchanged." in text


# ---- render manifest ---------------------------------------------------------------------------------


def test_baseline_from_another_pipeline_shows_the_manifest_diff(pytester: pytest.Pytester) -> None:
    """A baseline recorded with another diffusers and another STG default: the run names both changes
    (warning, results.json); when the baseline then fails, the failure text names them too."""
    from importlib.metadata import version

    write_spec(pytester, TINY, name="r.yaml")
    run(pytester, "--ltx-create-missing").assert_outcomes(passed=1)
    model = next((pytester.path / "baselines" / "specs" / "r" / "noise[seed=0]").iterdir()).name
    p = base_dir(pytester, "noise[seed=0]", model=model, spec="r") / "record.json"
    doc = json.loads(p.read_text())
    stage = doc["provenance"]["manifest"]["stages"][0]
    assert stage["name"] == "base" and stage["args"]["stg_scale"] == 1.0 and stage["args"]["sigmas"] == [1.0]
    stage["args"]["stg_scale"] = 0.0
    doc["environment"]["libraries"]["diffusers"] = "0.41.0"
    p.write_text(json.dumps(doc, indent=2, sort_keys=True))

    diff = f"diffusers 0.41.0 → {version('diffusers')}: base.stg_scale 0 → 1"
    r = run(pytester)
    r.assert_outcomes(passed=1, warnings=1)  # the pipeline change (the environment has one session line)
    r.stdout.fnmatch_lines([f"*PytestWarning: noise[[]seed=0[]]: pipeline changed since the baseline: {diff}"])
    (item,) = results(pytester)["items"]
    assert item["baseline"]["manifest_diff"] == [f"diffusers 0.41.0 → {version('diffusers')}", "base.stg_scale 0 → 1"]

    doc["scalars"] = {k: (v * 10 + 5 if isinstance(v, float) else v) for k, v in doc["scalars"].items()}
    p.write_text(json.dumps(doc, indent=2, sort_keys=True))
    r = run(pytester)
    r.assert_outcomes(failed=1, warnings=1)
    r.stdout.fnmatch_lines([f"*  pipeline changed since the baseline: {diff}"])


def test_clip_keyframes_are_gated_by_the_baseline_step(pytester: pytest.Pytester, models_tiny_clip_files) -> None:
    """CLIP keyframe embeddings reach the baseline comparison (``baseline.keyframe_cosine_min``): a test card
    passes against its own baseline; the same card with another scene at its last keyframe (frame 24,
    2.00 s) fails there. Random CLIP weights: the cosine of a changed keyframe is ~0.93, hence 0.99."""
    weights, cfg = models_tiny_clip_files
    (pytester.path / "pyproject.toml").write_text(
        f'[tool.pytest-ltx.clip]\narch = "pytest-ltx-test-tiny"\nweights = "{weights}"\nconfig = "{cfg}"\n')

    def spec(extra: str = "") -> str:
        return textwrap.dedent(f"""
        clips:
          - id: c
            testcard: {{width: 96, height: 64, frames: 25, fps: 12, seed: 1{extra}}}
            expect:
              clip: {{}}
              baseline: {{keyframe_cosine_min: 0.99}}
          - id: d
            testcard: {{width: 96, height: 64, frames: 25, fps: 12, seed: 2}}
            expect:
              clip: {{baseline_similarity_min: 0.99}}
        """)

    def by_id() -> dict[str, dict]:
        return {i["clip_id"]: {x["check"]: x for x in i["outcomes"]} | {"_ev": i["evaluation"]}
                for i in results(pytester)["items"]}

    write_spec(pytester, spec())
    created = run(pytester, "--ltx-create-missing")
    created.assert_outcomes(passed=2)
    assert "clip_similarity.embeddings" in json.loads(
        (base_dir(pytester, "c") / "record.json").read_text())["arrays"]
    # not compared yet: the clip's baseline check says so (never passed, never absent)
    o = by_id()["d"]["clip.baseline_similarity"]
    assert o["status"] == "unmeasured" and "the baseline is created by this run" in o["message"]
    run(pytester).assert_outcomes(passed=2)
    items = by_id()
    o = items["c"]["baseline.clip_similarity.embeddings"]
    assert o["status"] == "passed" and o["allowed"] == 0.99 and o["measured"] > 0.999
    assert "clip_similarity" in items["c"]["_ev"] and "baseline_similarity" not in json.dumps(items["c"]["_ev"])
    # clip.baseline_similarity_min sets the threshold of the same gate, under its own name: one gate, not two
    o = items["d"]["clip.baseline_similarity"]
    assert o["status"] == "passed" and o["allowed"] == 0.99 and "baseline.clip_similarity.embeddings" not in items["d"]

    write_spec(pytester, spec(", cuts: [24]"))
    changed = run(pytester)
    changed.assert_outcomes(failed=1, passed=1)
    item = next(i for i in results(pytester)["items"] if i["clip_id"] == "c")
    o = {x["check"]: x for x in item["outcomes"]}["baseline.clip_similarity.embeddings"]
    assert o["status"] == "failed" and o["details"]["worst_frame"] == 24
    assert "at keyframe 4 (frame 24, 2.00 s); min allowed 0.99" in o["message"]
    per_kf = dict(zip(o["details"]["frames"], o["details"]["per_keyframe"]))
    assert all(per_kf[f] > 0.999 for f in (0, 6, 12, 18)) and per_kf[24] < 0.99
    changed.stdout.fnmatch_lines(["*keyframe CLIP cosine to the baseline fell to*frame 24*"])
