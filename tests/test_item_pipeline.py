"""The item pipeline without pytest: ItemKey, obtain (test card; a render through a fake renderer),
measure, compare with a baseline store in tmp_path, calibration, the end-of-session baseline functions.

Clips are 64×64 test cards of 9 frames (their truth is known: the card's seed and motion); the fake
renderer returns such a card, so the render path is exercised without a model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_ltx.item import ItemContext, ItemKey, Stores, pipeline
from pytest_ltx.options import Settings

REPO = Path(__file__).resolve().parents[1]

CARDS = """
defaults:
  expect:
    motion: {}
clips:
  - id: a
    testcard: {width: 64, height: 64, frames: 9, fps: 24, seed: 1}
  - id: b
    testcard: {width: 64, height: 64, frames: 9, fps: 24, seed: 5, pan: [0.5, 0.3]}
"""

RENDERED = """
defaults:
  model: tiny
  width: 64
  height: 64
  frames: 9
  fps: 24
  steps: 1
clips:
  - id: r
    prompt: a robot
    seeds: [7]
    expect:
      motion: {}
"""


def settings(root: Path, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(
        rootdir=root, specs=("specs",), model=None, preset=None, device=None, no_cache=False,
        recheck_determinism=False, cache_dir=root / ".cache", report_dir=root / "ltx-report", history=(),
        baselines=root / "baselines", update_baselines=False, create_missing=False, prune_baselines=False,
        calibrate=0, calibrate_seeds="neighbouring", allow_outside_root=False)
    base.update(kw)
    return Settings(**base)


def items(root: Path, body: str, name: str = "life.yaml") -> dict[str, Any]:
    from pytest_ltx.spec import expand, load_spec_file

    d = root / "specs"
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_text(body)
    return {it.name: it for it in expand(load_spec_file(p))}


def state_of(root: Path, spec: Any) -> pipeline.ItemState:
    return pipeline.ItemState.start(spec, ItemKey.of(spec.spec_path, spec.name, root))


# ---- ItemKey ------------------------------------------------------------------------------------------


def test_item_key_names_node_id_baseline_and_report_folder(tmp_path: Path) -> None:
    from pytest_ltx.baseline.record import key_to_relpath, make_item_key

    k = ItemKey.of(tmp_path / "specs" / "sub" / "life.yaml", "hero[subject=robot,seed=0,preset=draft]", tmp_path)
    assert k == ItemKey("specs/sub/life.yaml", "hero[subject=robot,seed=0,preset=draft]")
    assert k.nodeid == "specs/sub/life.yaml::hero[subject=robot,seed=0,preset=draft]"
    assert k.baseline == "specs/sub/life/hero[subject=robot,seed=0,preset=draft]"
    assert k.baseline == make_item_key("specs/sub/life.yaml", k.name)
    assert k.clip_id == "hero" and k.preset == "draft" and k.spec_stem == "specs/sub/life"
    assert ItemKey.of("specs/sub/life.yaml", k.name, tmp_path) == k  # relative to the rootdir
    assert ItemKey.from_nodeid(k.nodeid) == k
    assert k.renamed("hero[p1-seed=0]").baseline == "specs/sub/life/hero[p1-seed=0]"
    assert ItemKey.split_baseline(k.baseline) == ("specs/sub/life", k.name)
    assert key_to_relpath(k.baseline, "testcard").parts[:3] == ("specs", "sub", "life")
    # a Python test, a parametrized test, a non-spec file: not clip items
    for other in ("tests/test_x.py::test_y", "tests/test_x.py::T::test_y", "specs/a.yaml", "specs/a.txt::x"):
        assert ItemKey.from_nodeid(other) is None, other
    assert ItemKey("specs/a.yml", "x").baseline == "specs/a/x"
    with pytest.raises(ValueError, match="empty"):
        ItemKey("specs/a.yaml", "")


def test_the_committed_baselines_are_found_under_the_keys_of_todays_items() -> None:
    """Item ids and baseline paths are a contract: every record in the repository's baselines/ lies where
    the store looks for its key, and that key is the ItemKey of an item the example specs define."""
    from pytest_ltx.baseline import BaselineStore
    from pytest_ltx.spec import expand, load_spec_file
    from pytest_ltx.spec.presets import Project, load_presets

    records = sorted((REPO / "baselines").rglob("record.json"))
    if not records:
        pytest.skip("no committed baselines")
    project = Project(root=REPO, presets=load_presets(REPO, ("specs",)), run_preset=None, run_model=None)
    keys = set()
    for spec in sorted((REPO / "specs").rglob("*.yaml")):
        if spec.name == "presets.yaml" or "packs" in spec.relative_to(REPO).parts:
            continue
        keys |= {ItemKey.of(spec, it.name, REPO).baseline for it in expand(load_spec_file(spec, project=project))}
    store = BaselineStore(REPO / "baselines", recover=False)
    for rec in records:
        doc = json.loads(rec.read_text())
        assert store.path_for(doc["item_key"], doc["model_key"]) == rec.parent, rec
        assert doc["item_key"] in keys, doc["item_key"]


# ---- obtain -------------------------------------------------------------------------------------------


def test_obtain_draws_a_test_card_once_and_publishes_it_in_the_report_folder(tmp_path: Path) -> None:
    from pytest_ltx.report.media import item_media_dir

    a = items(tmp_path, CARDS)["a"]
    ctx = ItemContext.for_project(settings(tmp_path))
    st = state_of(tmp_path, a)
    run = pipeline.obtain(ctx, st)
    assert run.source == "testcard" and run.model_key == "testcard" and not run.cached
    assert run.mp4 == item_media_dir(tmp_path / "ltx-report", "specs/life.yaml::a") / "clip.mp4"
    assert run.mp4.is_file() and run.truth is not None
    again = pipeline.obtain(ctx, state_of(tmp_path, a))
    assert again.cached and again.mp4 == run.mp4
    assert again.provenance == run.provenance


@dataclass
class FakeIdentity:
    fingerprint: str = "f" * 64

    def summary(self) -> dict[str, Any]:
        return {"pipeline": "Fake", "fingerprint": self.fingerprint, "components": {}}


class FakeModels:
    """The built-in tiny profile, with a made-up identity (no weights are built or hashed)."""

    def profile(self, name: str, *, device: str | None = None) -> Any:
        from pytest_ltx.models import TINY_PROFILE

        assert name == "tiny"
        return TINY_PROFILE

    def identity(self, profile: Any) -> FakeIdentity:
        return FakeIdentity()

    def clip_profile(self) -> Any:
        return None


class FakeRenderer:
    """Returns a drawn test card whose seed is the request's: different seeds, different clips."""

    def __init__(self) -> None:
        self.seeds: list[int] = []

    def render(self, req: Any, guard: Any = None) -> Any:
        from pytest_ltx.render.base import RenderResult
        from pytest_ltx.testcard import TestCardSpec, draw

        self.seeds.append(req.seed)
        card = draw(TestCardSpec(width=req.width, height=req.height, frames=req.frames, fps=req.fps,
                                 seed=req.seed, audio={"sample_rate": 16000}))
        return RenderResult(clip=card.clip, seconds=0.01, peak_vram_gb=None, device="cpu", dtype="float32",
                            provenance={"renderer": "fake"})


def render_context(root: Path, **kw: Any) -> tuple[ItemContext, FakeRenderer]:
    fake = FakeRenderer()
    return ItemContext.for_project(settings(root, **kw), models=FakeModels(), renderer_for=lambda p: fake), fake


def test_obtain_renders_through_the_renderer_and_the_render_cache(tmp_path: Path) -> None:
    r = items(tmp_path, RENDERED)["r[seed=7]"]
    ctx, fake = render_context(tmp_path)
    run = pipeline.obtain(ctx, state_of(tmp_path, r))
    assert fake.seeds == [7]
    assert run.source == "render" and not run.cached and run.mp4 is not None and run.mp4.is_file()
    assert run.model_key == "tiny-" + "f" * 12 and run.provenance["fingerprint"] == "f" * 64
    assert run.provenance["model_identity"]["pipeline"] == "Fake"
    again = pipeline.obtain(ctx, state_of(tmp_path, r))
    assert fake.seeds == [7] and again.cached and again.mp4 == run.mp4  # from the cache: not rendered
    nocache, fake2 = render_context(tmp_path, no_cache=True)
    assert not pipeline.obtain(nocache, state_of(tmp_path, r)).cached and fake2.seeds == [7]


# ---- measure, compare, result -------------------------------------------------------------------------


def test_missing_baseline_fails_then_created_record_passes_and_a_changed_clip_fails(tmp_path: Path) -> None:
    """The baseline walk on pipeline steps alone: missing → queued on create → written → compared."""
    from pytest_ltx.finish import flush_baselines

    specs = items(tmp_path, CARDS)
    st = settings(tmp_path)
    ctx = ItemContext.for_project(st)
    s = state_of(tmp_path, specs["a"])
    pipeline.prepare(ctx, s)
    assert s.evaluation is not None and s.baseline is None and s.baseline_error is None
    verdict = pipeline.check(ctx, s)
    assert verdict.failed and verdict.result.status == "failed"
    assert {o.check for o in verdict.outcomes if o.failed} == {"baseline.missing"}
    assert verdict.result.nodeid == "specs/life.yaml::a" and verdict.result.item == "a"
    assert verdict.result.spec == "specs/life.yaml" and verdict.result.failure_kind == "regression"
    assert verdict.result.candidate is not None and s.baseline_payload is None
    assert verdict.result.artifacts and "error" not in verdict.result.artifacts

    create = ItemContext.for_project(settings(tmp_path, create_missing=True))
    s = state_of(tmp_path, specs["a"])
    pipeline.prepare(create, s)
    verdict = pipeline.check(create, s)
    assert not verdict.failed and verdict.result.baseline["status"] == "created"
    assert s.baseline_payload is not None
    summary, problems = flush_baselines(create.stores.baselines, [s.baseline_payload], [verdict.result])
    assert problems == [] and summary is not None
    assert (tmp_path / "baselines" / "specs" / "life" / "a" / "testcard" / "record.json").is_file()

    s = state_of(tmp_path, specs["a"])
    pipeline.prepare(ctx, s)
    assert s.baseline is not None and s.baseline.item_key == "specs/life/a"
    verdict = pipeline.check(ctx, s)
    assert not verdict.failed, [o.message for o in verdict.outcomes if o.failed]
    checks = {o.check: o.status.value for o in verdict.outcomes}
    assert checks["baseline.structural.thumbnails"] == "passed" and verdict.result.baseline["status"] == "compared"
    assert verdict.result.timings["metrics_cached"]  # the same card again: measured from the evaluation cache


def test_compare_with_baseline_given_a_record_in_a_store(tmp_path: Path) -> None:
    """compare_with_baseline alone: item b's record stored under a's key is another clip (another scene,
    panning faster) — the keyframe structure fails; a's own record passes."""
    from pytest_ltx.baseline import BaselineStore
    from pytest_ltx.golden import current_record

    specs = items(tmp_path, CARDS)
    store = BaselineStore(tmp_path / "store")
    ctx = ItemContext.for_project(settings(tmp_path), stores=Stores(settings(tmp_path), baselines=store))
    measured = {}
    for name in ("a", "b"):
        s = state_of(tmp_path, specs[name])
        pipeline.prepare(ctx, s)
        measured[name] = s
    a, b = measured["a"], measured["b"]
    assert a.run is not None and b.run is not None and a.evaluation is not None and b.evaluation is not None

    a.baseline = current_record(a.spec, a.key, a.run, a.evaluation)
    step = pipeline.compare_with_baseline(ctx, a)
    assert step.info["status"] == "compared" and not any(o.failed for o in step.outcomes)
    assert step.payload is None and step.candidate is None

    from dataclasses import replace

    a.baseline = replace(current_record(b.spec, b.key, b.run, b.evaluation), item_key=a.key.baseline)
    step = pipeline.compare_with_baseline(ctx, a)
    failed = {o.check for o in step.outcomes if o.failed}
    assert "baseline.structural.thumbnails" in failed, step.outcomes
    assert step.candidate is not None  # what `pytest-ltx baselines accept` would write
    assert not any(store.root.rglob("*"))  # comparing never writes


def test_unreadable_baseline_is_an_error_outcome_naming_the_item(tmp_path: Path) -> None:
    a = items(tmp_path, CARDS)["a"]
    ctx = ItemContext.for_project(settings(tmp_path))
    rec = tmp_path / "baselines" / "specs" / "life" / "a" / "testcard"
    rec.mkdir(parents=True)
    (rec / "record.json").write_text("{not json")
    s = state_of(tmp_path, a)
    pipeline.prepare(ctx, s)
    assert s.baseline is None and s.baseline_error and "record.json" in s.baseline_error
    verdict = pipeline.check(ctx, s)
    (o,) = [o for o in verdict.outcomes if o.failed]
    assert o.check == "baseline.read" and o.status.value == "error"


def test_calibration_renders_other_seeds_through_the_same_measure(tmp_path: Path) -> None:
    r = items(tmp_path, RENDERED)["r[seed=7]"]
    ctx, fake = render_context(tmp_path, calibrate=3, update_baselines=True)
    s = state_of(tmp_path, r)
    pipeline.prepare(ctx, s)
    records = pipeline.calibration_records(ctx, s)
    assert fake.seeds == [7, 8, 9] and len(records) == 2
    assert all(rec.item_key == "specs/life/r[seed=7]" for rec in records)
    step = pipeline.compare_with_baseline(ctx, s, calibration=records)
    assert step.payload is not None and step.info["status"] == "created"
    assert step.payload["record"]["samples"] == 3
    assert step.payload["record"]["provenance"]["calibration"]["seeds"] == [7, 8, 9]
    # different cards per seed: a nonzero spread on a motion metric
    assert max(step.payload["record"]["spread"].values()) > 0


def test_budget_the_planner_cannot_meet_fails_in_check_before_anything_renders(tmp_path: Path) -> None:
    from pytest_ltx.runner import BudgetUnmet

    a = items(tmp_path, CARDS)["a"]
    ctx = ItemContext.for_project(settings(tmp_path))
    s = state_of(tmp_path, a)
    s.unmet = BudgetUnmet("no placement fits 1 GiB", {"chosen": None})
    verdict = pipeline.check(ctx, s)
    assert verdict.failed and [o.check for o in verdict.outcomes] == ["budget.vram_plan"]
    assert verdict.result.status == "failed" and verdict.result.evaluation is None


# ---- end of session -----------------------------------------------------------------------------------


def test_unused_baselines_judge_only_the_collected_spec_files_and_preset() -> None:
    from pytest_ltx.finish import unused_baselines
    from pytest_ltx.report.results import ItemResult

    collected = {ItemKey("specs/a.yaml", "x[seed=0]"), ItemKey("specs/a.yaml", "y[seed=0]")}
    known = [("specs/a/x[seed=0]", "tiny-aaa"), ("specs/a/gone[seed=0]", "tiny-aaa"),
             ("specs/a/b/z", "testcard"),                     # specs/a/b.yaml did not run: not a's
             ("specs/a/gone[seed=0,preset=draft]", "tiny-aaa"),  # another preset's tier
             ("specs/a/y[seed=0]", "tiny-old"), ("specs/a/y[seed=0]", "other-1"),
             ("specs/deleted/q", "testcard")]
    results = [ItemResult(nodeid="specs/a.yaml::y[seed=0]", spec="specs/a.yaml", clip_id="y", item="y[seed=0]",
                          source="render", status="passed",
                          baseline={"item_key": "specs/a/y[seed=0]", "model_key": "tiny-new"})]
    got = unused_baselines(known, collected, results)
    # y's baseline of the old tiny identity is superseded; another profile's is left alone
    assert got == [("specs/a/gone[seed=0]", "tiny-aaa"), ("specs/a/y[seed=0]", "tiny-old")]
    got = unused_baselines(known, collected, results, covered_dirs=["specs"])
    assert ("specs/deleted/q", "testcard") in got and ("specs/a/b/z", "testcard") in got
    # a draft run judges the draft tier (and the superseded identity of a collected item, whatever its tier)
    assert unused_baselines(known, collected, results, run_preset="draft") == [
        ("specs/a/gone[seed=0,preset=draft]", "tiny-aaa"), ("specs/a/y[seed=0]", "tiny-old")]
    assert unused_baselines(known, set(), results) == []  # nothing collected: nothing judged
