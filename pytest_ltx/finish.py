"""End of session: gather the results shipped on reports, write results.json, flush queued baselines
once (atomically), report unused baselines, and print / publish the summaries."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import pytest

from pytest_ltx.item.key import ItemKey
from pytest_ltx.report.results import ItemResult, write_results
from pytest_ltx.session import LtxSession

__all__ = ["EXIT_INFRASTRUCTURE", "SessionReporter", "flush_baselines", "unused_baselines"]

#: exit status of a run whose only problems are infrastructure errors (no regression): EX_TEMPFAIL from
#: sysexits.h, "try again later" — CI can retry the job; a regression keeps pytest's 1
EXIT_INFRASTRUCTURE = 75


class SessionReporter:
    """Registered as a plugin object bound to the session, so its hooks can reach the session state."""

    def __init__(self, session: LtxSession) -> None:
        self.s = session
        self.results_path: Path | None = None
        self.baseline_summary: Any = None
        self.unused: list[tuple[str, str]] = []
        self.pruned: list[tuple[str, str]] = []
        self.problems: list[str] = []
        #: report files that could not be written: told in one line each, the run's verdict unaffected
        self.report_problems: list[str] = []
        self.report_page: Path | None = None
        self.session: pytest.Session | None = None
        #: items were deselected (-k/-m are seen by note_collection; --lf, --sw and plugins only here)
        self.deselected = False
        self._xdist_collected = False
        #: failed/errored reports of tests that are not clip items (those are always regressions)
        self.other_failures = 0
        self.exit_kind: str | None = None
        self.exit_status = 0

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        if items:
            self.deselected = True

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Under xdist the controller collects nothing (its pytest_collection_finish never runs), so it
        learns the collected items from the workers' node ids: without them no baseline is ever unused."""
        if self._xdist_collected or self.session is None:
            return
        from pytest_ltx.collect import note_collection

        self._xdist_collected = True
        note_collection(self.session)  # whole-suite check (-k/-m/node ids); its items are empty here
        from pytest_ltx.shard import plain_nodeid

        # under --dist loadgroup a grouped item's id ends in "@<group>": not part of its key
        self.s.collected_keys = {k for k in (ItemKey.from_nodeid(plain_nodeid(i)) for i in ids) if k is not None}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, "ltx", None)
        if not payload:
            if report.failed:
                self.other_failures += 1
            return
        self.s.results.append(ItemResult.from_dict(payload["result"], json_form=True))  # a worker's to_dict
        if payload.get("baseline"):
            self.s.baseline_payloads.append(payload["baseline"])

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        s = self.s
        if s.is_worker:
            return
        if s.baseline_payloads:
            self._flush_baselines()
        if self.problems:  # a requested write that failed must not look like a green run
            session.exitstatus = max(int(session.exitstatus), int(pytest.ExitCode.TESTS_FAILED))
        self._exit_kind(session)
        if self._whole_suite(session) and getattr(s, "collected_specs", None):
            self._unused_baselines()
        if s.results:
            self._write_reports()
            self._step_summary()
            if s.settings.durations is not None:  # what balances the next --ltx-shard run
                try:
                    from pytest_ltx.shard import update_durations

                    update_durations(s.settings.durations, [r.to_dict() for r in s.results])
                except OSError as e:
                    self.problems.append(f"could not update durations {s.settings.durations}: {e}")

    def _write_reports(self) -> None:
        """results.json, then the HTML page and the PR-comment Markdown built from it. A full or
        read-only report folder costs one line in the summary, never the run."""
        from pytest_ltx.report.files import ReportWriteError

        s = self.s
        media_errors = [r.artifacts["error"] for r in s.results if (r.artifacts or {}).get("error")]
        if media_errors:
            self.report_problems.append(f"report media missing for {len(media_errors)} item(s): {media_errors[0]}")
        path = s.settings.report_dir / "results.json"
        try:
            write_results(path, s.results, meta={
                "settings": s.settings.to_dict(),
                "baselines": None if self.baseline_summary is None else _to_dict(self.baseline_summary),
                "unused_baselines": [list(k) for k in self.unused],
                "exit": {"status": self.exit_status, "kind": self.exit_kind},
            })
        except ReportWriteError as e:
            self.report_problems.append(f"{e}; no HTML report either")
            return
        self.results_path = path
        try:
            from pytest_ltx.report.page import build_report
            from pytest_ltx.report.summary import pr_comment

            self.report_page = build_report(path, history=s.settings.history).path
            from pytest_ltx.report.files import write_atomic

            write_atomic(s.settings.report_dir / "summary.md", pr_comment(s.results, run_url=_run_url()))
        except ReportWriteError as e:
            self.report_problems.append(str(e))
        except Exception as e:  # a report bug must not take the run's verdict with it
            self.report_problems.append(f"could not build the HTML report ({e.__class__.__name__}: {e}); "
                                        f"rebuild it with `pytest-ltx report {path}`")

    def _exit_kind(self, session: pytest.Session) -> None:
        """Regression (exit 1) vs infrastructure only (exit :data:`EXIT_INFRASTRUCTURE`)."""
        self.exit_status = int(session.exitstatus)
        kinds = {r.failure_kind for r in self.s.results if r.failure_kind}
        if "regression" in kinds or self.other_failures or self.problems:
            self.exit_kind = "regression" if kinds or self.other_failures else None
            return
        if "infrastructure" in kinds:
            self.exit_kind = "infrastructure"
            if int(session.exitstatus) == int(pytest.ExitCode.TESTS_FAILED):
                session.exitstatus = EXIT_INFRASTRUCTURE
                self.exit_status = EXIT_INFRASTRUCTURE

    def _flush_baselines(self) -> None:
        self.baseline_summary, problems = flush_baselines(self.s.store, self.s.baseline_payloads, self.s.results)
        self.problems += problems

    def _whole_suite(self, session: pytest.Session) -> bool:
        """Only a run that selected every item of its spec files may call a baseline unused: not with
        -k/-m/node ids (note_collection), nor when --lf, --sw or a plugin deselected items."""
        opts = session.config.option
        if self.deselected or getattr(opts, "lf", False) or getattr(opts, "stepwise", False):
            return False
        return bool(self.s.whole_suite)

    def _unused_baselines(self) -> None:
        s = self.s
        try:
            known = s.store.all_keys()
        except Exception as e:
            self.problems.append(f"could not list baselines: {e}")
            return
        self.unused = unused_baselines(known, s.collected_keys, s.results, covered_dirs=self._covered_spec_dirs(),
                                       run_preset=s.settings.preset)
        if self.unused and s.settings.prune_baselines:
            self._announce_prune()
            try:
                summary = s.store.prune(self.unused)
            except Exception as e:  # each removal is atomic; report, do not crash the session
                self.problems.append(f"pruning baselines failed: {e.__class__.__name__}: {e}")
                return
            self.pruned = [(c.item_key, c.model_key) for c in summary.pruned]
            for c in summary.failed:
                self.problems.append(f"baseline store {s.store.root}: could not remove {c.path or c.item_key}: "
                                     f"{c.notes[0] if c.notes else 'unknown error'}; it was kept")

    def _announce_prune(self) -> None:
        """List what --ltx-prune-baselines is about to delete *before* deleting it (a log of a run cut
        short still says what went)."""
        if self.session is None:
            return
        tr = self.session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None:
            return
        tr.write_line("")
        tr.write_line(f"pytest-ltx: pruning {len(self.unused)} unused baseline(s) from {self.s.store.root}:")
        for ik, mk in self.unused:
            tr.write_line(f"  delete {ik} [{mk}] ({self.s.store.path_for(ik, mk)})")

    def _covered_spec_dirs(self) -> list[str]:
        """The ``ltx_specs`` folders (rootdir-relative, posix) this run collected entirely: named on the
        command line, or inside a folder that was."""
        s = self.s
        if self.session is None:
            return []
        config = self.session.config
        root = s.settings.rootdir.resolve()
        args = [Path(a.split("::")[0]) for a in config.args]
        args = [(a if a.is_absolute() else Path(config.invocation_params.dir) / a).resolve() for a in args]
        out = []
        for d in s.settings.specs:
            spec_dir = (root / d).resolve()
            if any(a.is_dir() and (a == spec_dir or a in spec_dir.parents) for a in args):
                try:
                    out.append(spec_dir.relative_to(root).as_posix())
                except ValueError:
                    continue
        return out

    def _step_summary(self) -> None:
        target = os.environ.get("GITHUB_STEP_SUMMARY")
        if not target:
            return
        from pytest_ltx.report.summary import markdown

        extra = []
        if self.baseline_summary is not None and hasattr(self.baseline_summary, "to_markdown"):
            extra.append(self.baseline_summary.to_markdown())
        try:
            with open(target, "a", encoding="utf-8") as f:
                f.write(markdown(self.s.results, extra_sections=extra))
        except OSError as e:
            self.report_problems.append(f"could not write GITHUB_STEP_SUMMARY {target}: {e.strerror or e}")

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        s = self.s
        if s.is_worker or not (s.results or self.problems or self.unused or self.report_problems):
            return
        from pytest_ltx.report.summary import terminal_lines

        tr = terminalreporter
        tr.write_sep("=", "pytest-ltx")
        for line in terminal_lines(s.results):
            tr.write_line(line)
        if self.baseline_summary is not None:
            tr.write_line("")
            tr.write_line(self.baseline_summary.to_text() if hasattr(self.baseline_summary, "to_text")
                          else str(self.baseline_summary))
        if self.unused:
            verb = "removed" if self.pruned else "unused (remove with --ltx-prune-baselines)"
            tr.write_line("")
            tr.write_line(f"{len(self.unused)} baseline(s) {verb}:")
            for ik, mk in self.unused:
                tr.write_line(f"  {ik} [{mk}]")
        for p in self.problems + self.report_problems:
            tr.write_line(f"pytest-ltx: {p}", red=True)
        if self.exit_kind == "infrastructure":
            tr.write_line(f"pytest-ltx: infrastructure errors only, no regression: exit status {EXIT_INFRASTRUCTURE} "
                          "(retry the job)", yellow=True)
        if self.report_page is not None:
            tr.write_line(f"report: {self.report_page}  (results: {self.results_path})")
        elif self.results_path is not None:
            tr.write_line(f"results: {self.results_path}")


def flush_baselines(store: Any, payloads: list[dict[str, Any]],
                    results: list[ItemResult]) -> tuple[Any, list[str]]:
    """Write the queued records (atomically, each), then remove those the results say were moved from an
    old positional name. (the store's summary or None, the problems to report: a requested write that did
    not happen must not look like success)."""
    from pytest_ltx.baseline import BaselineRecord

    problems: list[str] = []
    for p in payloads:
        store.queue(BaselineRecord.from_payload(p))
    try:
        summary = store.flush()
    except Exception as e:  # never a half-written baseline: the store's flush is atomic per record
        return None, [f"writing baselines failed: {e.__class__.__name__}: {e}"]
    line = summary.failure_line()
    if line:
        problems.append(line)
    # baselines found under an item's old positional name were rewritten under the new one: move
    moved = [tuple(r.baseline["moved_from"]) for r in results
             if isinstance(r.baseline, dict) and r.baseline.get("moved_from")]
    if moved:
        try:
            store.prune(moved)
        except Exception as e:
            problems.append(f"removing baselines stored under old names failed: {e}")
    return summary, problems


def unused_baselines(known: Iterable[tuple[str, str]], collected: Iterable[ItemKey], results: Iterable[ItemResult],
                     *, covered_dirs: Iterable[str] = (), run_preset: str | None = None) -> list[tuple[str, str]]:
    """The stored (item key, model key) pairs no collected item uses, of a run that collected every item
    of its spec files (``collected``): a baseline of a collected spec file's item that is gone, a baseline
    of a spec file that was deleted when its whole spec folder ran (``covered_dirs``, rootdir-relative),
    and a baseline of a collected item under another identity of the model the item now compares with
    (``results``' baseline info). Another profile's baselines and another preset's (draft vs full) are
    never judged: ``run_preset``, else the presets of the collected items."""
    from pytest_ltx.baseline.record import model_key_profile
    from pytest_ltx.spec.items import preset_of

    collected = set(collected)
    stems = {k.spec_stem for k in collected}
    used = {k.baseline for k in collected}
    covered = list(covered_dirs)
    # the model keys items really compared against: a baseline of the same profile under another model
    # identity (the weights changed) is no longer in use; another profile's baselines are left alone
    models_used: dict[str, set[str]] = {}
    for r in results:
        b = r.baseline or {}
        if b.get("item_key") and b.get("model_key"):
            models_used.setdefault(b["item_key"], set()).add(b["model_key"])

    def superseded(ik: str, mk: str) -> bool:
        now = models_used.get(ik, set())
        return mk not in now and any(model_key_profile(m) == model_key_profile(mk) for m in now)

    tiers = {run_preset} if run_preset else {k.preset for k in collected}

    def stale(ik: str, mk: str) -> bool:
        if ik in used:
            return superseded(ik, mk)
        stem, name = ItemKey.split_baseline(ik)
        # item names hold no "/": the spec part is matched exactly (a prefix would also catch
        # specs/a/b.yaml's baselines when only specs/a.yaml ran); a spec file that was deleted or renamed
        # belongs to no collected file, and is only judged when the run covered its whole spec folder
        return preset_of(name) in tiers and (stem in stems or any(ik.startswith(d + "/") for d in covered))

    return sorted((ik, mk) for ik, mk in known if stale(ik, mk))


def _run_url() -> str | None:
    """The GitHub Actions run page (where the report artifact is), when running in Actions."""
    env = os.environ
    if env.get("GITHUB_SERVER_URL") and env.get("GITHUB_REPOSITORY") and env.get("GITHUB_RUN_ID"):
        return f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return None


def _to_dict(x: Any) -> Any:
    return x.to_dict() if hasattr(x, "to_dict") else str(x)
