"""Collection: YAML spec files become ``SpecFile`` collectors, each clip × prompt × seed an ``LtxItem``.

An item produces its clip in ``setup`` (render, cache, file, test card) so that an infrastructure problem
is a pytest *error*, and checks it in ``runtest`` so that a regression is a pytest *failure*: a broken
runner never looks like a bad clip, nor the other way round.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from pytest_ltx.item.key import SPEC_SUFFIXES, ItemKey, spec_relpath
from pytest_ltx.item.pipeline import ItemState
from pytest_ltx.outcome import Outcome, Status
from pytest_ltx.report.results import ItemResult
from pytest_ltx.report.summary import junit_properties
from pytest_ltx.session import get_session

if TYPE_CHECKING:
    from pytest_ltx.item.context import ItemContext
    from pytest_ltx.runner import ClipRun
    from pytest_ltx.spec import ItemSpec

__all__ = ["InvalidSpec", "LtxCheckFailed", "LtxItem", "SpecFile", "is_spec_file", "note_collection"]

#: YAML under a folder of this name is a prompt pack, not a spec
PACKS_DIR = "packs"


def is_spec_file(path: Path, config: pytest.Config) -> bool:
    """A YAML file is a clip spec when it lies under one of the ``ltx_specs`` folders, or was named on the
    command line itself (``pytest my/clip.yaml``). Other YAML (CI configs, data) is left alone."""
    if path.suffix not in SPEC_SUFFIXES:
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

        rel = spec_relpath(self.path, Path(self.config.rootpath))
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


class LtxItem(pytest.Item):
    """One clip item: a thin pytest adapter over the item pipeline (``item/pipeline.py``). ``setup``
    obtains the clip and measures it (a problem there is a pytest error), ``runtest`` checks it (a
    regression there is a pytest failure)."""

    def __init__(self, *, spec: "ItemSpec", spec_rel: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.spec_rel = spec_rel
        #: the item's identity: node id, baseline key, report name
        self.key = ItemKey(spec_rel, spec.name)
        self.state: ItemState | None = None
        self.add_marker("ltx")
        self.add_marker(f"ltx_{spec.source_kind.value}")
        for m in spec.marks:
            self.add_marker(m)

    @property
    def plain_nodeid(self) -> str:
        """The node id without the ``@group`` suffix ``--dist loadgroup`` adds: what results.json, the media
        folder and the durations are keyed by, the same in every kind of run."""
        from pytest_ltx.shard import plain_nodeid

        return plain_nodeid(self.nodeid)

    @property
    def item_key(self) -> str:
        """The baseline key (``specs/a/clip[seed=0]``)."""
        return self.key.baseline

    @property
    def run(self) -> "ClipRun | None":
        return self.state.run if self.state is not None else None

    @property
    def result(self) -> ItemResult | None:
        return self.state.result if self.state is not None else None

    @property
    def baseline_payload(self) -> dict[str, Any] | None:
        return self.state.baseline_payload if self.state is not None else None

    def _context(self) -> "ItemContext":
        return get_session(self.config).item_context()

    # -- pytest protocol ------------------------------------------------------------------------------
    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, (self.spec.line or 1) - 1, f"ltx clip {self.name}"

    def setup(self) -> None:
        """Produce the clip and measure it: one streaming decode feeding every metric (or nothing at all
        when the evaluation cache has every result). A clip that cannot be produced or decoded is an
        infrastructure error, reported as a pytest error."""
        from pytest_ltx.item.pipeline import make_result, prepare
        from pytest_ltx.runner import InfraError

        ctx = self._context()
        self.state = state = ItemState.start(self.spec, self.key, self.plain_nodeid)
        try:
            prepare(ctx, state)
        except InfraError as e:
            state.result = make_result(ctx, state, "error", error=str(e))
            pytest.fail(f"pytest-ltx could not produce the clip (infrastructure error, not a regression):\n{e}",
                        pytrace=False)

    def runtest(self) -> None:
        from pytest_ltx.item.pipeline import check

        assert self.state is not None
        verdict = check(self._context(), self.state, warn=lambda w: self.warn(pytest.PytestWarning(w)))
        for name, value in junit_properties(verdict.result.to_dict()):
            self.user_properties.append((name, value))
        if verdict.failed:
            raise LtxCheckFailed(self, verdict.outcomes)

    def teardown(self) -> None:
        # frames of a clip can be hundreds of MB: do not keep them past the item
        if self.state is not None:
            self.state.release()

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, LtxCheckFailed):
            return format_failure(self, excinfo.value.outcomes)
        return super().repr_failure(excinfo, style=style)

    def decorate_report(self, report: pytest.TestReport) -> None:
        """Ship the result on the report (it crosses xdist's process boundary) and add HTML extras."""
        if not (report.when == "call" or (report.when == "setup" and report.failed)):
            return
        if self.state is None:
            self.state = ItemState.start(self.spec, self.key, self.plain_nodeid)
        state = self.state
        if state.result is None or (report.when == "call" and report.failed and state.result.status == "passed"):
            # the item crashed before producing a result (a bug in a metric, say)
            from pytest_ltx.item.pipeline import make_result

            state.result = make_result(self._context(), state, "error", error=_crash_message(report))
        report.ltx = {"result": state.result.to_dict(), "baseline": state.baseline_payload,  # type: ignore[attr-defined]
                      "item_key": self.item_key}
        if self.config.getoption("htmlpath", None):  # pictures and base64 clips only when a report is made
            report.extras = list(getattr(report, "extras", [])) + _html_extras(self)  # type: ignore[attr-defined]


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
    s.collected_keys = {i.key for i in session.items if isinstance(i, LtxItem)}
