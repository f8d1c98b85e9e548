"""Collection: YAML spec files become ``SpecFile`` collectors, each clip × prompt × seed an ``LtxItem``.

An item produces its clip in ``setup`` (render, cache, file, test card) so that an infrastructure problem
is a pytest *error*, and checks it in ``runtest`` so that a regression is a pytest *failure*: a broken
runner never looks like a bad clip, nor the other way round.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from pytest_ltx.outcome import Outcome, Status
from pytest_ltx.report.results import ItemResult
from pytest_ltx.report.summary import junit_properties
from pytest_ltx.session import get_session

if TYPE_CHECKING:
    from pytest_ltx.evaluate import Evaluation
    from pytest_ltx.runner import ClipRun
    from pytest_ltx.spec import ItemSpec

__all__ = ["InvalidSpec", "LtxCheckFailed", "LtxItem", "SpecFile", "is_spec_file", "note_collection"]

_SPEC_SUFFIXES = (".yaml", ".yml")
#: YAML under a folder of this name is a prompt pack, not a spec
PACKS_DIR = "packs"


def is_spec_file(path: Path, config: pytest.Config) -> bool:
    """A YAML file is a clip spec when it lies under one of the ``ltx_specs`` folders, or was named on the
    command line itself (``pytest my/clip.yaml``). Other YAML (CI configs, data) is left alone."""
    if path.suffix not in _SPEC_SUFFIXES:
        return False
    from pytest_ltx.spec.presets import PRESET_FILES

    if path.name in PRESET_FILES or PACKS_DIR in path.parent.parts:
        return False  # the project's presets and prompt packs are read by specs, not specs themselves
    s = get_session(config)
    root = s.settings.rootdir
    for d in s.settings.specs:
        base = (root / d).resolve()
        try:
            path.resolve().relative_to(base)
            return True
        except ValueError:
            continue
    for arg in config.args:
        a = Path(arg.split("::")[0])
        a = a if a.is_absolute() else Path(config.invocation_params.dir) / a
        if a.resolve() == path.resolve():
            return True
    return False


class LtxCheckFailed(Exception):
    """Some expectations failed; carries the outcomes for a traceback-free, reviewer-style report."""

    def __init__(self, item: "LtxItem", outcomes: list[Outcome]) -> None:
        self.item = item
        self.outcomes = outcomes
        super().__init__("; ".join(o.message for o in outcomes if o.failed))


class SpecFile(pytest.File):
    """One YAML spec file. A malformed file becomes a single erroring item for this file only, one line
    per problem (file:line: field: what is wrong): a pytest collection error would interrupt the whole
    session, and the other spec files must still run."""

    def collect(self) -> Iterator[pytest.Item]:
        from pytest_ltx.confine import PathPolicy
        from pytest_ltx.spec import SpecFileError, expand, load_spec_file

        rel = _relpath(self.path, Path(self.config.rootpath))
        try:  # paths in a spec (image:, file:, audio:) must stay inside the project or an allowed folder
            session = get_session(self.config)
            spec = load_spec_file(self.path, confine=PathPolicy.from_settings(session.settings),
                                  project=session.project())
        except SpecFileError as e:
            yield InvalidSpec.from_parent(self, name=INVALID_SPEC, message=str(e), spec_rel=rel)
            return
        for item_spec in expand(spec):
            yield LtxItem.from_parent(self, name=item_spec.name, spec=item_spec, spec_rel=rel)


#: name of the item that stands for a spec file that could not be loaded
INVALID_SPEC = "invalid-spec"


class InvalidSpec(pytest.Item):
    """Stands for a malformed spec file: errors in setup (no traceback) with one line per problem."""

    def __init__(self, *, message: str, spec_rel: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message
        self.spec_rel = spec_rel
        self.add_marker("ltx")

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, 0, f"invalid clip spec {self.spec_rel}"

    def setup(self) -> None:
        n = len(self.message.splitlines())
        pytest.fail(f"invalid clip spec ({n} problem{'s' if n != 1 else ''}), nothing in it was run:\n"
                    f"{self.message}", pytrace=False)

    def runtest(self) -> None:  # pragma: no cover - setup always fails
        raise AssertionError("unreachable")

    def decorate_report(self, report: pytest.TestReport) -> None:
        if report.when != "setup":
            return
        report.ltx = {"result": ItemResult(  # type: ignore[attr-defined]
            nodeid=self.nodeid, spec=self.spec_rel, clip_id="", item=self.name, source="spec",
            status="error", error=self.message, failure_kind="regression").to_dict(), "baseline": None,
            "item_key": None}


def _relpath(p: Path, root: Path) -> str:
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return p.resolve().as_posix()


class LtxItem(pytest.Item):
    """One clip item. ``setup`` obtains the clip and measures it; ``runtest`` checks it."""

    def __init__(self, *, spec: "ItemSpec", spec_rel: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.spec_rel = spec_rel
        #: baseline identity: spec path relative to the rootdir (no suffix) + item name
        self.item_key = f"{spec_rel.rsplit('.', 1)[0]}/{spec.name}"  # = baseline.make_item_key
        self.run: ClipRun | None = None
        self.evaluation: Evaluation | None = None
        self.result: ItemResult | None = None
        self.baseline_payload: dict[str, Any] | None = None
        self._baseline: tuple[Any, str | None] = (None, None)
        self._metric_s = 0.0
        self._t0 = 0.0
        self.add_marker("ltx")
        self.add_marker(f"ltx_{spec.source_kind.value}")
        for m in spec.marks:
            self.add_marker(m)

    # -- pytest protocol ------------------------------------------------------------------------------
    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, (self.spec.line or 1) - 1, f"ltx clip {self.name}"

    def setup(self) -> None:
        """Produce the clip and measure it: one streaming decode feeding every metric (or nothing at all
        when the evaluation cache has every result). A clip that cannot be produced or decoded is an
        infrastructure error, reported as a pytest error."""
        from pytest_ltx.evaluate import evaluate
        from pytest_ltx.golden import load_baseline
        from pytest_ltx.media import ClipReadError
        from pytest_ltx.runner import BudgetUnmet, InfraError, obtain_clip

        self._t0 = time.perf_counter()
        session = get_session(self.config)
        self._unmet: BudgetUnmet | None = None
        try:
            self.run = obtain_clip(self.spec, session)
            run = self.run
            self._baseline = load_baseline(self.spec, self.item_key, run, session)
            t0 = time.perf_counter()
            try:
                from pytest_ltx.report.media import media_consumer

                self.evaluation = evaluate(run.media, expect=self._expect(),
                                           context=self._metric_context(self._baseline[0]),
                                           cache=session.eval_cache, refresh=session.settings.no_cache,
                                           keyframes=True, extras=[media_consumer(self._baseline[0])])
            except ClipReadError as e:
                raise InfraError(f"{self.spec_rel}:{self.spec.line}: {e}") from None
            self._metric_s = time.perf_counter() - t0
        except BudgetUnmet as e:  # fails in runtest (a failure, not an error), before anything rendered
            self._unmet = e
        except InfraError as e:
            self.result = self._make_result("error", error=str(e))
            pytest.fail(f"pytest-ltx could not produce the clip (infrastructure error, not a regression):\n{e}",
                        pytrace=False)

    def _expect(self) -> Any:
        return self.spec.expect.model_copy(update={"format": self.spec.expected_format()})

    def runtest(self) -> None:
        from pytest_ltx.golden import golden_step
        from pytest_ltx.runner import clip_outcomes

        if getattr(self, "_unmet", None) is not None:
            o = Outcome("budget.vram_plan", Status.FAILED, str(self._unmet), details={"plan": self._unmet.plan})
            self.result = self._make_result("failed", outcomes=[o])
            raise LtxCheckFailed(self, [o])
        assert self.run is not None and self.evaluation is not None
        session = get_session(self.config)
        run = self.run
        base, base_error = self._baseline
        outcomes = list(self.evaluation.outcomes) + clip_outcomes(run, self.spec, self.evaluation, session)
        golden = golden_step(self.spec, self.item_key, self.nodeid, run, self.evaluation, session,
                             baseline=base, read_error=base_error, calibration=self._calibration_runs(self._expect()))
        outcomes += golden.outcomes
        self.baseline_payload = golden.payload
        self._candidate = golden.candidate
        for w in golden.warnings:
            # environment differences are summarised once for the session (finish.py), not per item
            if not w.startswith("baseline made in a different environment"):
                self.warn(pytest.PytestWarning(f"{self.name}: {w}"))
        failed = [o for o in outcomes if o.failed]
        self.result = self._make_result("failed" if failed else "passed", outcomes=outcomes,
                                        timings={"metrics_s": round(self._metric_s, 4),
                                                 "metrics_cached": list(self.evaluation.cached)},
                                        baseline=golden.info)
        self._write_media(base)
        for name, value in junit_properties(self.result.to_dict()):
            self.user_properties.append((name, value))
        if failed:
            raise LtxCheckFailed(self, outcomes)

    def _write_media(self, base: Any) -> None:
        """The report's pictures and the clip, beside the report; a full or read-only report folder is
        recorded on the result (and summarised once at session end), never a failure of the clip."""
        from dataclasses import replace

        from pytest_ltx.report.files import ReportWriteError
        from pytest_ltx.report.media import write_item_media

        assert self.result is not None and self.run is not None
        try:
            assert self.evaluation is not None
            text = self.evaluation.results.get("text")
            frames = self.evaluation.extras.get("report_media")
            if frames is None:
                raise ReportWriteError(self.run.mp4 or Path(self.nodeid), OSError("report media could not be collected"))
            artifacts = write_item_media(get_session(self.config).settings.report_dir, self.nodeid,
                                         frames, mp4=self.run.mp4,
                                         evaluation=self.result.evaluation, baseline=base,
                                         ocr_images=getattr(text, "frame_images", None))
        except ReportWriteError as e:
            artifacts = {"error": str(e)}
        self.result = replace(self.result, artifacts=artifacts)

    def _metric_context(self, base: Any) -> Any:
        """What the metrics need besides the pixels: prompt, CLIP profile, the baseline's arrays."""
        from pytest_ltx.evaluate import MetricContext

        clip_model = get_session(self.config).clip_profile() if self.spec.expect.clip is not None else None
        image = (self.run.provenance.get("image") or {}) if self.run is not None else {}
        return MetricContext(prompt=self.spec.prompt, clip_model=clip_model,
                             baseline_arrays=dict(base.arrays) if base is not None else {},
                             baseline_scalars=dict(base.scalars) if base is not None else {},
                             conditioning_image=image.get("path") if isinstance(image, dict) else None)

    def _calibration_runs(self, expect: Any) -> list[Any]:
        """With ``--ltx-calibrate N``: N-1 more runs of this item, evaluated the same way, as baseline
        records (their spread becomes the baseline's noise model). Renders bypass the cache (same-seed
        runs would otherwise all be one cached clip and the spread 0)."""
        from pytest_ltx.baseline import calibration_seeds
        from pytest_ltx.evaluate import evaluate
        from pytest_ltx.golden import current_record
        from pytest_ltx.runner import render_variant

        session = get_session(self.config)
        n = session.settings.calibrate
        if n < 2 or self.run is None:
            return []
        records = []
        if self.run.source == "render":
            assert self.spec.seed is not None
            seeds = calibration_seeds(self.spec.seed, n, neighbouring=session.settings.calibrate_seeds == "neighbouring")
            for seed in seeds[1:]:
                with render_variant(self.spec, session, seed) as media:
                    ev = evaluate(media, expect=expect, context=self._metric_context(None), keyframes=True)
                records.append(current_record(self.spec, self.item_key, self.run, ev))
        else:  # a file or test card is the same clip every time: its spread is the metrics' own (zero)
            for _ in range(n - 1):
                records.append(current_record(self.spec, self.item_key, self.run, self.evaluation))
        return records

    def teardown(self) -> None:
        # frames of a clip can be hundreds of MB: do not keep them past the item
        self.run = None
        self.evaluation = None

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, LtxCheckFailed):
            return format_failure(self, excinfo.value.outcomes)
        return super().repr_failure(excinfo, style=style)

    # -- results --------------------------------------------------------------------------------------
    def _make_result(self, status: str, *, outcomes: list[Outcome] | None = None, error: str | None = None,
                     timings: dict[str, Any] | None = None, baseline: dict[str, Any] | None = None) -> ItemResult:
        run = self.run
        t: dict[str, Any] = {"total_s": round(time.perf_counter() - self._t0, 4)}
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
        artifacts: dict[str, Any] = {}
        evaluation = self.evaluation.to_dict() if self.evaluation is not None else None
        if evaluation is not None:
            evaluation.pop("outcomes", None)  # kept once, at the item level
            if run is not None and run.truth is not None:
                evaluation["truth"] = run.truth
        return ItemResult(
            nodeid=self.nodeid,
            spec=self.spec_rel,
            clip_id=self.spec.clip_id,
            item=self.name,
            source=self.spec.source_kind.value,
            status=status,
            params=self._params(),
            provenance={**(run.provenance if run is not None else {}), "spec": self._spec_provenance()},
            timings=t,
            evaluation=evaluation,
            outcomes=[o.to_dict() for o in (outcomes or [])],
            baseline=baseline,
            artifacts=artifacts,
            error=error,
            failure_kind=_kind(status, outcomes or []),
            candidate=getattr(self, "_candidate", None),
            description=self.spec.clip.description,
            line=self.spec.line,
        )

    def _params(self) -> dict[str, Any]:
        """How the clip was asked for; the prompt is kept for file clips too (it is what CLIP scores and
        what a reviewer reads next to the clip)."""
        if self.run is None:
            return self.spec.to_dict()
        params = dict(self.run.params)
        if self.spec.prompt and "prompt" not in params:
            params["prompt"] = self.spec.prompt
        return params

    def _spec_provenance(self) -> dict[str, Any]:
        """How the spec made this item: every effective field with its origin, the template and its
        values, the preset (what ``pytest-ltx explain`` prints; the report shows it per item)."""
        sp = self.spec
        return {"fields": sp.effective_fields(run_model=get_session(self.config).settings.model),
                "template": sp.template, "vars": dict(sp.vars), "preset": sp.preset,
                "legacy_name": sp.legacy_name}

    def decorate_report(self, report: pytest.TestReport) -> None:
        """Ship the result on the report (it crosses xdist's process boundary) and add HTML extras."""
        if not (report.when == "call" or (report.when == "setup" and report.failed)):
            return
        if self.result is None or (report.when == "call" and report.failed and self.result.status == "passed"):
            # the item crashed before producing a result (a bug in a metric, say)
            self.result = self._make_result("error", error=_crash_message(report))
        report.ltx = {"result": self.result.to_dict(), "baseline": self.baseline_payload,  # type: ignore[attr-defined]
                      "item_key": self.item_key}
        if self.config.getoption("htmlpath", None):  # pictures and base64 clips only when a report is made
            report.extras = list(getattr(report, "extras", [])) + _html_extras(self)  # type: ignore[attr-defined]


def _kind(status: str, outcomes: list[Outcome]) -> str | None:
    from pytest_ltx.outcome import failure_kind

    k = failure_kind(status, outcomes)
    return None if k is None else k.value


def _crash_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return str(crash.message)[:2000]
    return str(report.longreprtext).strip().splitlines()[-1][:2000] if report.longreprtext else "unknown error"


def _html_extras(item: LtxItem) -> list[dict[str, Any]]:
    from pytest_ltx.report.html import extras_for

    if item.result is None:
        return []
    htmlpath = Path(item.config.getoption("htmlpath"))
    return extras_for(item.result.to_dict(), report_dir=get_session(item.config).settings.report_dir,
                      html_dir=htmlpath.parent if htmlpath.is_absolute() else
                      Path(item.config.invocation_params.dir) / htmlpath.parent,
                      self_contained=bool(item.config.getoption("self_contained_html", False)))


def format_failure(item: LtxItem, outcomes: list[Outcome]) -> str:
    """Reviewer-style failure text: one line per failed check, then the passing ones briefly."""
    failed = [o for o in outcomes if o.failed]
    lines = [f"{item.spec_rel}:{item.spec.line} {item.name}: {len(failed)} of {len(outcomes)} checks failed"]
    for o in failed:
        tag = "ERROR " if o.status is Status.ERROR else ""
        lines.append(f"  ✗ {tag}{o.check}: {o.message}")
    unmeasured = [o for o in outcomes if o.status is Status.UNMEASURED]
    for o in unmeasured:
        lines.append(f"  ? {o.check}: {o.message}")
    passed = [o.check for o in outcomes if o.status is Status.PASSED]
    if passed:
        lines.append(f"  ✓ passed: {', '.join(passed)}")
    diff = ((item.result.baseline if item.result is not None else None) or {}).get("manifest_diff")
    if diff:
        from pytest_ltx.render.manifest import format_changes

        lines.append(f"  pipeline changed since the baseline: {format_changes(diff)}")
    if item.run is not None and item.run.mp4 is not None:
        lines.append(f"  clip: {item.run.mp4}")
    return "\n".join(lines)


def note_collection(session: pytest.Session) -> None:
    """Remember which spec files were collected whole (no -k/-m/node-id selection): only for those may
    baselines nobody used be called unused."""
    s = get_session(session.config)
    opts = session.config.option
    selective = bool(getattr(opts, "keyword", "") or getattr(opts, "markexpr", "")) or any(
        "::" in a for a in session.config.args)
    s.whole_suite = not selective and not session.config.getoption("deselect", None)
    s.collected_item_keys = {i.item_key for i in session.items if isinstance(i, LtxItem)}
    s.collected_specs = {i.spec_rel for i in session.items if isinstance(i, LtxItem)}
