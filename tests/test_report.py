"""Reports are pure functions of result records: results.json round trip, summaries, HTML table."""

from __future__ import annotations

from pathlib import Path

from pytest_ltx.report.html import _outcome_table
from pytest_ltx.report.results import ItemResult, read_results, write_results
from pytest_ltx.report.summary import markdown, terminal_lines


def _items() -> list[ItemResult]:
    ok = ItemResult(nodeid="specs/a.yaml::a[seed=0]", spec="specs/a.yaml", clip_id="a", item="a[seed=0]",
                    source="render", status="passed", timings={"render_s": 1.25, "cached": False},
                    outcomes=[{"check": "format.frames", "status": "passed", "message": "frame count 25"}])
    bad = ItemResult(nodeid="specs/a.yaml::b", spec="specs/a.yaml", clip_id="b", item="b", source="testcard",
                     status="failed",
                     outcomes=[{"check": "motion.cuts", "status": "failed",
                                "message": "1 cut found, 0 allowed: cut at frame 24 (1.00 s)"},
                               {"check": "av_sync.offset", "status": "unmeasured", "message": "no audio"}])
    err = ItemResult(nodeid="specs/a.yaml::c[seed=0]", spec="specs/a.yaml", clip_id="c", item="c[seed=0]",
                     source="render", status="error", error="unknown model profile 'x'")
    return [bad, err, ok]


def test_results_file_round_trip_sorted_with_counts(tmp_path: Path) -> None:
    path = tmp_path / "r" / "results.json"
    doc = write_results(path, _items(), meta={"settings": {"model": None}})
    assert doc["summary"] == {"items": 3, "passed": 1, "failed": 1, "error": 1, "regression": 1, "infrastructure": 1}
    again, items = read_results(path)
    assert again == doc
    assert [i.nodeid for i in items] == sorted(i.nodeid for i in _items())
    assert not list(path.parent.glob("*.part"))  # written atomically, no leftovers


def test_terminal_lines_name_failures_and_unmeasured_checks() -> None:
    lines = terminal_lines(_items())
    assert lines[0] == "PASSED  specs/a.yaml::a[seed=0]  (rendered in 1.2 s)"
    assert "        motion.cuts: 1 cut found, 0 allowed: cut at frame 24 (1.00 s)" in lines
    assert "        av_sync.offset (unmeasured): no audio" in lines
    assert "ERROR   specs/a.yaml::c[seed=0]  (not rendered)" in lines
    assert "        unknown model profile 'x'" in lines


def test_markdown_summary_table() -> None:
    md = markdown(_items(), extra_sections=["### baselines: 2 created"])
    assert "3 clips: 1 passed, 1 failed, 1 errors" in md
    assert "| ❌ | `specs/a.yaml::b` | testcard | `motion.cuts` 1 cut found, 0 allowed: cut at frame 24 (1.00 s) |" in md
    assert "| 💥 | `specs/a.yaml::c[seed=0]` | not rendered | unknown model profile 'x' |" in md
    assert md.rstrip().endswith("### baselines: 2 created")


def test_html_outcome_table_lists_failures_first_and_escapes() -> None:
    item = _items()[0].to_dict()
    item["outcomes"].append({"check": "text.none", "status": "passed", "message": "no <text>"})
    html = _outcome_table(item)
    assert html.index("motion.cuts") < html.index("av_sync.offset") < html.index("text.none")
    assert "no &lt;text&gt;" in html
