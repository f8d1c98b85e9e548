"""One clip item's life, step by step, apart from pytest:

1. :func:`obtain` the clip (render through the cache, a file, a drawn test card — ``runner.py``);
2. :func:`load_baseline` — the stored record this item is compared with (``golden.py``);
3. :func:`measure` it: one streaming decode feeding every metric, the report's media and the keyframes
   (``evaluate.py``);
4. :func:`check`: the metric outcomes, the outcomes of how the clip was made (export, budget, determinism),
   the comparison with the baseline or the record to write (``golden.py``), the result and its media.

:func:`prepare` runs 1–3 (an :class:`~pytest_ltx.runner.InfraError` there is a pytest *error*), :func:`check`
runs 4 (a failed outcome there is a pytest *failure*). Between 1 and 2, :func:`recall` looks for the
conclusion an earlier run reached from exactly the same inputs (:func:`remembered_key`); when there is one,
2–3 are skipped and 4 restates it, making only the checks of how the clip was made afresh. ``--ltx-calibrate N`` runs go through the same
:func:`measure` and record building (:func:`calibration_records`). Each step takes the item's
:class:`ItemState` and an :class:`~pytest_ltx.item.ItemContext`, never the pytest session.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pytest_ltx.item.context import ItemContext
from pytest_ltx.item.key import ItemKey
from pytest_ltx.outcome import Outcome, Status
from pytest_ltx.report.results import ItemResult

if TYPE_CHECKING:
    from pytest_ltx.baseline import BaselineRecord
    from pytest_ltx.evaluate import Evaluation, MetricContext
    from pytest_ltx.golden import GoldenStep
    from pytest_ltx.runner import BudgetUnmet, ClipRun
    from pytest_ltx.spec import ItemSpec
    from pytest_ltx.stream import MediaSource

__all__ = ["ItemState", "ItemVerdict", "calibration_records", "check", "compare_with_baseline", "expectations",
           "load_baseline", "make_result", "measure", "metric_context", "obtain", "prepare", "recall",
           "remembered_key", "write_media"]

#: golden warnings summarised once per session (finish.py) rather than per item
_SESSION_WARNINGS = ("baseline made in a different environment",)


@dataclass
class ItemState:
    """One item's work in progress: what each step produced (the pytest item keeps it from setup to
    runtest and drops the clip's data at teardown)."""

    spec: "ItemSpec"
    key: ItemKey
    #: the item's pytest node id (results.json, report media folder, the command a message suggests)
    nodeid: str
    started: float = field(default_factory=time.perf_counter)
    run: "ClipRun | None" = None
    evaluation: "Evaluation | None" = None
    baseline: "BaselineRecord | None" = None
    baseline_error: str | None = None
    #: the VRAM planner refused the request before rendering: a failure in :func:`check`
    unmet: "BudgetUnmet | None" = None
    metric_s: float = 0.0
    #: this run's record when the baseline is missing or did not match (``baselines accept``)
    candidate: dict[str, Any] | None = None
    #: the record to write at session end (JSON payload), or None
    baseline_payload: dict[str, Any] | None = None
    result: ItemResult | None = None
    #: the identity of everything this item's measurement and comparison depend on (:func:`remembered_key`)
    remembered_key: str | None = None
    #: what an earlier run measured and concluded from exactly those inputs (:func:`recall`)
    remembered: dict[str, Any] | None = None

    @classmethod
    def start(cls, spec: "ItemSpec", key: ItemKey, nodeid: str | None = None) -> "ItemState":
        return cls(spec=spec, key=key, nodeid=key.nodeid if nodeid is None else nodeid)

    def release(self) -> None:
        """Drop the clip's data (frames of a clip can be hundreds of MB)."""
        self.run = None
        self.evaluation = None


@dataclass(frozen=True)
class ItemVerdict:
    """What :func:`check` decided: every outcome, the result, and the warnings to show on the item."""

    result: ItemResult
    outcomes: list[Outcome]
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(o.failed for o in self.outcomes)


def expectations(spec: "ItemSpec") -> Any:
    """The item's expectations, with the format the request implies filled in."""
    return spec.expect.model_copy(update={"format": spec.expected_format()})


# -- 1. obtain --------------------------------------------------------------------------------------------
def obtain(ctx: ItemContext, state: ItemState) -> "ClipRun":
    from pytest_ltx.runner import obtain_clip

    state.run = obtain_clip(state.spec, ctx, state.nodeid)
    return state.run


# -- 2. the baseline --------------------------------------------------------------------------------------
def load_baseline(ctx: ItemContext, state: ItemState) -> "BaselineRecord | None":
    """The stored record of this item and model (None without one, or with baselines off); a record that
    cannot be read leaves its reason in ``state.baseline_error``."""
    from pytest_ltx.golden import load_baseline as load

    assert state.run is not None
    if not state.spec.expect.baseline.enabled:  # the store is not even opened
        state.baseline, state.baseline_error = None, None
        return None
    state.baseline, state.baseline_error = load(state.spec, state.key, state.run, ctx.stores.baselines)
    return state.baseline


# -- 3. measure -------------------------------------------------------------------------------------------
def metric_context(ctx: ItemContext, spec: "ItemSpec", run: "ClipRun | None") -> "MetricContext":
    """What the metrics need besides the pixels: prompt, CLIP profile — never the baseline (every
    baseline-relative number is measured by the baseline comparison, in the golden step)."""
    from pytest_ltx.evaluate import MetricContext

    clip_model = ctx.models.clip_profile() if spec.expect.clip is not None else None
    image = (run.provenance.get("image") or {}) if run is not None else {}
    conditioning = image.get("path") if isinstance(image, dict) else None
    art = spec.expect.artifacts
    if conditioning is None and art is not None and art.first_frame_image is not None:
        from pytest_ltx.confine import PathPolicy

        # checked at collection already (file, line, field); resolved again: the same confinement
        conditioning = str(PathPolicy.from_settings(ctx.settings).resolve(art.first_frame_image, spec.base_dir))
    return MetricContext(prompt=spec.prompt, clip_model=clip_model, conditioning_image=conditioning)


def measure(ctx: ItemContext, spec: "ItemSpec", run: "ClipRun | None", media: "MediaSource", *,
            base: "BaselineRecord | None" = None, cached: bool = True, report_media: bool = True) -> "Evaluation":
    """One streaming decode of ``media`` feeding every metric the expectations ask for (and, with
    ``report_media``, the report's pictures), keyframes included. ``cached``: through the evaluation
    cache (``--ltx-no-cache`` recomputes); calibration runs are never cached."""
    from pytest_ltx.evaluate import evaluate

    kw: dict[str, Any] = {}
    if cached:
        kw.update(cache=ctx.stores.evaluations, refresh=ctx.settings.no_cache)
    if report_media:
        from pytest_ltx.report.media import media_consumer

        kw["extras"] = [media_consumer(base)]
    return evaluate(media, expect=expectations(spec), context=metric_context(ctx, spec, run),
                    keyframes=True, **kw)


def prepare(ctx: ItemContext, state: ItemState) -> None:
    """Steps 1–3. Raises :class:`~pytest_ltx.runner.InfraError` when the clip cannot be produced or
    decoded; a budget the planner cannot meet is kept in ``state.unmet`` for :func:`check` to fail."""
    from pytest_ltx.media import ClipReadError
    from pytest_ltx.runner import BudgetUnmet, InfraError

    try:
        run = obtain(ctx, state)
        if recall(ctx, state):
            return
        load_baseline(ctx, state)
        t0 = time.perf_counter()
        try:
            state.evaluation = measure(ctx, state.spec, run, run.media, base=state.baseline)
        except ClipReadError as e:
            raise InfraError(f"{state.key.spec}:{state.spec.line}: {e}") from None
        state.metric_s = time.perf_counter() - t0
    except BudgetUnmet as e:  # fails in check (a failure, not an error), before anything rendered
        state.unmet = e


# -- a remembered measurement -----------------------------------------------------------------------------
#: bump when what a remembered measurement holds changes
REMEMBERED_FORMAT = 1
#: run provenance that changes from run to run without changing the clip (how long each render attempt took)
_VOLATILE_PROVENANCE = ("attempts",)


def remembered_key(ctx: ItemContext, state: ItemState) -> str | None:
    """The identity of everything this item's measurement and baseline comparison depend on: the
    evaluation-cache key of every measurement (the clip's bytes, each family's configuration, library and
    code versions), the stored baseline's files, the item's spec and expectations, the run's settings and how
    the clip was made. None when this run must measure and compare afresh: ``--ltx-no-cache``, baseline
    updates or calibration, a baseline that is missing or cannot be vouched for, a metric that cannot
    be keyed."""
    from pytest_ltx.cache import canonical_json
    from pytest_ltx.evaluate import evaluation_keys

    st, spec, run = ctx.settings, state.spec, state.run
    if run is None or st.no_cache or st.update_baselines or st.calibrate >= 2 or spec.legacy_name is not None:
        return None
    if spec.expect.baseline.enabled:
        base = ctx.stores.baselines.record_digest(state.key.baseline, run.model_key)
        if base is None:  # a missing baseline's outcome also looks at other models' records: compared afresh
            return None
    else:
        base = "off"
    cache = ctx.stores.evaluations
    keys = evaluation_keys(run.media, expect=expectations(spec), context=metric_context(ctx, spec, run), cache=cache)
    if keys is None:
        return None
    identity = {
        "format": REMEMBERED_FORMAT, "nodeid": state.nodeid, "measurements": keys, "baseline": base,
        # not the item's line: an edit above it in the file moves it, and the result takes its line afresh
        "spec": {k: v for k, v in spec.to_dict().items() if k != "line"},
        "expect": spec.expect.model_dump(mode="json"), "settings": st.to_dict(),
        "run": {"source": run.source, "model_key": run.model_key, "render_key": run.render_key,
                "provenance": {k: v for k, v in run.provenance.items() if k not in _VOLATILE_PROVENANCE}},
    }
    try:
        return cache.key("item", "remembered", {"identity": canonical_json(identity)})
    except (TypeError, ValueError):  # something in it has no exact JSON form: not remembered
        return None


def recall(ctx: ItemContext, state: ItemState) -> bool:
    """Whether an earlier run measured and compared this item with exactly these inputs, and its report
    media are still in place: then steps 2–3 are skipped and :func:`check` restates that run's conclusion
    (nothing is decoded, loaded or compared). The checks of how the clip was made (export, budget,
    determinism) are always made afresh."""
    state.remembered_key = key = remembered_key(ctx, state)
    if key is None:
        return False
    v = ctx.stores.evaluations.get_remembered(key)
    if v is None or v.get("format") != REMEMBERED_FORMAT:
        return False
    from pytest_ltx.report.media import intact_media

    if intact_media(ctx.settings.report_dir, state.nodeid, v.get("media_key")) != v.get("artifacts"):
        return False  # the pictures were removed or redrawn for other inputs: measured again
    state.remembered = v
    return True


def _remember(ctx: ItemContext, state: ItemState, evaluation: "Evaluation", golden: "GoldenStep") -> None:
    """Keep what this run measured and concluded under :func:`remembered_key`, when it is a settled
    answer: compared (or baselines off), nothing to write, no error, its media written."""
    from pytest_ltx.outcome import BaselineStatus, jsonable
    from pytest_ltx.report.media import media_key_of

    result = state.result
    if state.remembered_key is None or result is None or golden.payload is not None:
        return
    if golden.info.get("status") not in (BaselineStatus.COMPARED, BaselineStatus.DISABLED):
        return
    if any(o.status is Status.ERROR for o in (*evaluation.outcomes, *golden.outcomes)):
        return
    if not result.artifacts or result.artifacts.get("error"):
        return
    media_key = media_key_of(ctx.settings.report_dir, state.nodeid)
    if media_key is None:
        return
    ev = {k: v for k, v in (result.evaluation or {}).items() if k != "truth"}
    ev["metric_seconds"] = {k: 0.0 for k in ev.get("metric_seconds") or {}}
    families = list(evaluation.results)
    ev["cached_metrics"] = families
    ctx.stores.evaluations.put_remembered(state.remembered_key, {
        "format": REMEMBERED_FORMAT, "evaluation": ev, "families": families,
        "evaluation_outcomes": [o.to_dict() for o in evaluation.outcomes],
        "golden_outcomes": [o.to_dict() for o in golden.outcomes], "warnings": list(golden.warnings),
        "baseline": jsonable(golden.info), "candidate": golden.candidate,
        "artifacts": result.artifacts, "media_key": media_key})


def _recalled(ctx: ItemContext, state: ItemState, warn: Callable[[str], None] | None) -> ItemVerdict:
    """Step 4 for a remembered item: the earlier run's outcomes (with the clip's own checks made now)."""
    from pytest_ltx.runner import clip_outcomes

    v = state.remembered
    run = state.run
    assert v is not None and run is not None
    outcomes = [Outcome.from_dict(d) for d in v["evaluation_outcomes"]] + clip_outcomes(run, state.spec, ctx)
    outcomes += [Outcome.from_dict(d) for d in v["golden_outcomes"]]
    warnings = _item_warnings(state, v["warnings"], warn)
    state.candidate = v.get("candidate")
    failed = any(o.failed for o in outcomes)
    result = make_result(ctx, state, "failed" if failed else "passed", outcomes=outcomes,
                         timings={"metrics_s": 0.0, "metrics_cached": list(v["families"]), "remembered": True},
                         baseline=v["baseline"], evaluation=dict(v["evaluation"]))
    state.result = replace(result, artifacts=v["artifacts"])
    return ItemVerdict(state.result, outcomes, warnings)


# -- calibration ------------------------------------------------------------------------------------------
def calibration_records(ctx: ItemContext, state: ItemState) -> list["BaselineRecord"]:
    """With ``--ltx-calibrate N``: N-1 more runs of this item, measured the same way, as baseline records
    (their spread becomes the baseline's noise model). Renders bypass the cache (same-seed runs would
    otherwise all be one cached clip and the spread 0)."""
    from pytest_ltx.baseline import calibration_seeds
    from pytest_ltx.golden import current_record
    from pytest_ltx.runner import render_variant

    n = ctx.settings.calibrate
    run = state.run
    if n < 2 or run is None:
        return []
    records = []
    if run.source == "render":
        assert state.spec.seed is not None and state.evaluation is not None
        seeds = calibration_seeds(state.spec.seed, n, neighbouring=ctx.settings.calibrate_seeds == "neighbouring")
        for seed in seeds[1:]:
            with render_variant(state.spec, ctx, seed) as media:
                ev = measure(ctx, state.spec, run, media, cached=False, report_media=False)
            records.append(current_record(state.spec, state.key, run, ev))
    else:  # a file or test card is the same clip every time: its spread is the metrics' own (zero)
        assert state.evaluation is not None
        for _ in range(n - 1):
            records.append(current_record(state.spec, state.key, run, state.evaluation))
    return records


# -- 4. check ---------------------------------------------------------------------------------------------
def compare_with_baseline(ctx: ItemContext, state: ItemState,
                          calibration: "list[BaselineRecord] | None" = None) -> "GoldenStep":
    """Compare this run with ``state.baseline``, or queue a new record (update / create-missing /
    calibrate). ``calibration``: the extra runs' records (by default :func:`calibration_records`)."""
    from pytest_ltx.golden import golden_step

    assert state.run is not None and state.evaluation is not None
    if calibration is None:
        calibration = calibration_records(ctx, state)
    step = golden_step(state.spec, state.key, state.nodeid, state.run, state.evaluation,
                       store=ctx.stores.baselines, settings=ctx.settings, baseline=state.baseline,
                       read_error=state.baseline_error, calibration=calibration)
    state.baseline_payload = step.payload
    state.candidate = step.candidate
    return step


def check(ctx: ItemContext, state: ItemState, *, warn: Callable[[str], None] | None = None) -> ItemVerdict:
    """Step 4 (after :func:`prepare`): every outcome, the baseline step, the result with its report media.
    ``warn`` is told each warning as it arises (they are also on the verdict)."""
    if state.unmet is not None:
        o = Outcome("budget.vram_plan", Status.FAILED, str(state.unmet), details={"plan": state.unmet.plan})
        state.result = make_result(ctx, state, "failed", outcomes=[o])
        return ItemVerdict(state.result, [o])
    if state.remembered is not None:
        return _recalled(ctx, state, warn)
    from pytest_ltx.runner import clip_outcomes

    run, evaluation = state.run, state.evaluation
    assert run is not None and evaluation is not None
    outcomes = list(evaluation.outcomes) + clip_outcomes(run, state.spec, ctx)
    golden = compare_with_baseline(ctx, state)
    outcomes += golden.outcomes
    warnings = _item_warnings(state, golden.warnings, warn)
    failed = any(o.failed for o in outcomes)
    state.result = make_result(ctx, state, "failed" if failed else "passed", outcomes=outcomes,
                               timings={"metrics_s": round(state.metric_s, 4),
                                        "metrics_cached": list(evaluation.cached)},
                               baseline=golden.info)
    state.result = write_media(ctx, state, state.result)
    _remember(ctx, state, evaluation, golden)
    return ItemVerdict(state.result, outcomes, warnings)


def _item_warnings(state: ItemState, golden_warnings: list[str], warn: Callable[[str], None] | None) -> list[str]:
    """The golden step's warnings shown on the item (told to ``warn`` as well); the environment one is
    summarised once per session instead."""
    warnings = [f"{state.key.name}: {w}" for w in golden_warnings if not w.startswith(_SESSION_WARNINGS)]
    for w in warnings:
        if warn is not None:
            warn(w)
    return warnings


def write_media(ctx: ItemContext, state: ItemState, result: ItemResult) -> ItemResult:
    """The report's pictures and the clip, beside the report; a full or read-only report folder is
    recorded on the result (and summarised once at session end), never a failure of the clip."""
    from pytest_ltx.report.files import ReportWriteError
    from pytest_ltx.report.media import write_item_media

    run = state.run
    assert run is not None
    try:
        assert state.evaluation is not None
        text = state.evaluation.results.get("text")
        frames = state.evaluation.extras.get("report_media")
        if frames is None:
            raise ReportWriteError(run.mp4 or Path(state.nodeid), OSError("report media could not be collected"))
        artifacts = write_item_media(ctx.settings.report_dir, state.nodeid, frames, mp4=run.mp4,
                                     evaluation=result.evaluation, baseline=state.baseline,
                                     ocr_images=getattr(text, "frame_images", None))
    except ReportWriteError as e:
        artifacts = {"error": str(e)}
    return replace(result, artifacts=artifacts)


# -- the result ---------------------------------------------------------------------------------------------
def make_result(ctx: ItemContext, state: ItemState, status: str, *, outcomes: list[Outcome] | None = None,
                error: str | None = None, timings: dict[str, Any] | None = None,
                baseline: dict[str, Any] | None = None, evaluation: dict[str, Any] | None = None) -> ItemResult:
    """The item's entry in results.json from what the steps produced so far (``evaluation``: the JSON form
    of a remembered evaluation, when this run measured nothing)."""
    from pytest_ltx.outcome import failure_kind

    run = state.run
    from pytest_ltx.worker import cpu_budget

    # the CPU threads this process had (its share under xdist): explains the seconds, never the bits
    t: dict[str, Any] = {"total_s": round(time.perf_counter() - state.started, 4), "cpu_budget": cpu_budget()}
    if run is not None:
        t.update({k: round(v, 4) for k, v in run.timings.items()})
        t["cached"] = run.cached
        if run.render_seconds is not None:
            t["render_s"] = round(run.render_seconds, 4)
        if run.peak_vram_gb is not None:
            t["peak_vram_gb"] = round(run.peak_vram_gb, 3)
        plan = run.provenance.get("vram_plan") if isinstance(run.provenance, dict) else None
        if plan:  # planned vs measured peak, side by side
            t["planned_peak_vram_gb"] = plan.get("planned_peak_gb")
    t.update(timings or {})
    if state.evaluation is not None:
        evaluation = state.evaluation.to_dict()
    if evaluation is not None:
        evaluation.pop("outcomes", None)  # kept once, at the item level
        if run is not None and run.truth is not None:
            evaluation["truth"] = run.truth
    kind = failure_kind(status, outcomes or [])
    spec = state.spec
    return ItemResult(
        nodeid=state.nodeid,
        spec=state.key.spec,
        clip_id=spec.clip_id,
        item=state.key.name,
        source=spec.source_kind.value,
        status=status,
        params=_params(spec, run),
        provenance={**(run.provenance if run is not None else {}), "spec": _spec_provenance(ctx, spec)},
        timings=t,
        evaluation=evaluation,
        outcomes=[o.to_dict() for o in (outcomes or [])],
        baseline=baseline,
        artifacts={},
        error=error,
        failure_kind=None if kind is None else kind.value,
        candidate=state.candidate,
        description=spec.clip.description,
        line=spec.line,
    )


def _params(spec: "ItemSpec", run: "ClipRun | None") -> dict[str, Any]:
    """How the clip was asked for; the prompt is kept for file clips too (it is what CLIP scores and
    what a reviewer reads next to the clip)."""
    if run is None:
        return spec.to_dict()
    params = dict(run.params)
    if spec.prompt and "prompt" not in params:
        params["prompt"] = spec.prompt
    return params


def _spec_provenance(ctx: ItemContext, spec: "ItemSpec") -> dict[str, Any]:
    """How the spec made this item: every effective field with its origin, the template and its
    values, the preset (what ``pytest-ltx explain`` prints; the report shows it per item)."""
    return {"fields": spec.effective_fields(run_model=ctx.settings.model),
            "template": spec.template, "vars": dict(spec.vars), "preset": spec.preset,
            "legacy_name": spec.legacy_name}
