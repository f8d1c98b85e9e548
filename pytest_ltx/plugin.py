"""pytest hooks of pytest-ltx: options, collection of YAML clip specs, report wiring. Logic lives elsewhere:
``collect.py`` (spec files and items), ``item/`` (an item's pipeline: obtain, measure, compare, result),
``session.py`` (per-session state), ``report/`` (results.json, HTML extras, summaries).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Generator

import pytest

from pytest_ltx.options import add_options
from pytest_ltx.session import SESSION_KEY, LtxSession


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_ltx import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ltx: a pytest-ltx clip item (rendered or loaded, then checked)")
    config.addinivalue_line("markers", "ltx_render: the clip is rendered by a model profile")
    config.addinivalue_line("markers", "ltx_file: the clip is a pre-rendered file")
    config.addinivalue_line("markers", "ltx_testcard: the clip is a synthetic test card")
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist --dist loadgroup: run on one worker")
    from pytest_ltx.worker import apply_thread_budget, freeze_at_exit

    if hasattr(config, "workerinput"):  # an xdist worker: its share of the CPUs, before torch is imported
        apply_thread_budget()
    freeze_at_exit()
    from pytest_ltx.families import activate_for_run

    activate_for_run(config)
    session = LtxSession(config)
    config.stash[SESSION_KEY] = session
    session.check_run_preset()
    from pytest_ltx.finish import SessionReporter

    config.pluginmanager.register(SessionReporter(session), "pytest-ltx-reporter")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    from pytest_ltx.collect import SpecFile, is_spec_file

    if is_spec_file(file_path, parent.config):
        return SpecFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> Generator[None, None, None]:
    """Before every other plugin: under ``--dist loadgroup``, mark each GPU model's items with its xdist group
    (xdist's own hook turns the mark into the group it schedules by). After all of them: order clip items
    by model, then keep only this run's ``--ltx-shard``. See ``shard.py``."""
    from pytest_ltx.session import get_session
    from pytest_ltx.shard import group_node_ids, mark_gpu_groups, order_by_model, read_durations, select_shard

    s = get_session(config)
    if getattr(config.option, "loadgroup", False):  # set by xdist on its workers; nothing else reads the mark
        mark_gpu_groups(items, s)
    result = yield
    if getattr(config.option, "loadgroup", False):
        group_node_ids(items)  # where xdist's own suffix did not take (pytest >= 9)
    order_by_model(items, s.settings.model)
    if s.settings.shard is not None:
        kept, dropped = select_shard(items, s.settings.shard, read_durations(s.settings.durations))
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    return result


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> None:
    """A failed clip's message is already printed in full (FAILURES) and named in the pytest-ltx section;
    keep pytest's short summary to its first line, also on CI where pytest would repeat all of it."""
    if report.failed and "ltx" in getattr(report, "keywords", {}):  # a CollectReport has none
        config.option.force_short_summary = True


def pytest_collection_finish(session: pytest.Session) -> None:
    from pytest_ltx.collect import note_collection

    note_collection(session)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    from pytest_ltx.collect import InvalidSpec, LtxItem

    if isinstance(item, (LtxItem, InvalidSpec)):
        item.decorate_report(report)
    return report


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
    """pytest-html puts the test id into its results table as markup: a spec *file name* such as
    ``x<details open ontoggle=alert(1)>.yaml`` would run script in whoever opens the report."""
    from pytest_ltx.report.html import escape_results_row

    escape_results_row(report, cells)


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    s = config.stash.get(SESSION_KEY, None)
    if s is not None:
        s.close()
    from pytest_ltx.families import deactivate_for_run
    from pytest_ltx.worker import freeze_finished_worker

    deactivate_for_run(config)
    # after the session's terminal summary (where other plugins may still import, e.g. Hypothesis, whose
    # register_random warns when the heap is already frozen), before pytest's unconfigure GC passes
    freeze_finished_worker(hasattr(config, "workerinput"))
