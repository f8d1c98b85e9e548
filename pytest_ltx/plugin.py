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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order clip items by model (and mark their xdist group), then keep only this run's ``--ltx-shard``."""
    from pytest_ltx.session import get_session

    s = get_session(config)
    from pytest_ltx.shard import model_of, read_durations, select_shard

    models = {id(it): model_of(it, s.settings.model) for it in items}
    if any(models.values()):
        for it in items:
            if models[id(it)]:
                it.add_marker(pytest.mark.xdist_group(name=f"ltx-model-{models[id(it)]}"))
        first: dict[str | None, int] = {}
        for n, it in enumerate(items):
            first.setdefault(models[id(it)], n)
        items.sort(key=lambda it: first[models[id(it)]])  # stable: a model's items together, in order
    if s.settings.shard is not None:
        kept, dropped = select_shard(items, s.settings.shard, read_durations(s.settings.durations))
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = kept


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


def pytest_unconfigure(config: pytest.Config) -> None:
    s = config.stash.get(SESSION_KEY, None)
    if s is not None:
        s.close()
    from pytest_ltx.families import deactivate_for_run

    deactivate_for_run(config)
