"""Human summaries of a run, rendered from result records only: terminal lines and GitHub markdown."""

from __future__ import annotations

from typing import Iterable

from pytest_ltx.report.results import ItemResult

__all__ = ["terminal_lines", "markdown"]

_ICON = {"passed": "✅", "failed": "❌", "error": "💥"}


def _timing(r: ItemResult) -> str:
    t = r.timings or {}
    if r.source != "render":
        return r.source
    if t.get("cached"):
        return "cached render"
    s = t.get("render_s")
    return f"rendered in {s:.1f} s" if isinstance(s, (int, float)) else "not rendered"


def terminal_lines(results: Iterable[ItemResult]) -> list[str]:
    """One line per item, then the failing checks indented under it."""
    lines: list[str] = []
    for r in sorted(results, key=lambda r: r.nodeid):
        lines.append(f"{r.status.upper():7} {r.nodeid}  ({_timing(r)})")
        if r.error:
            lines.append(f"        {r.error.splitlines()[0] if r.error else ''}")
        for o in r.outcomes:
            if o.get("status") in ("failed", "error"):
                lines.append(f"        {o['check']}: {o['message']}")
            elif o.get("status") == "unmeasured":
                lines.append(f"        {o['check']} (unmeasured): {o['message']}")
    return lines


def markdown(results: Iterable[ItemResult], *, extra_sections: Iterable[str] = ()) -> str:
    """A GitHub step summary: a table of items and, for each failure, what moved."""
    rs = sorted(results, key=lambda r: r.nodeid)
    counts = {s: sum(1 for r in rs if r.status == s) for s in ("passed", "failed", "error")}
    out = [
        "## pytest-ltx",
        "",
        f"{len(rs)} clips: {counts['passed']} passed, {counts['failed']} failed, {counts['error']} errors",
        "",
        "| | clip | source | checks |",
        "|---|---|---|---|",
    ]
    for r in rs:
        failed = r.failed_outcomes()
        checks = "<br>".join(f"`{o['check']}` {o['message']}".replace("|", "\\|") for o in failed) or (
            (r.error or "").splitlines()[0].replace("|", "\\|") if r.error else f"{len(r.outcomes)} passed")
        out.append(f"| {_ICON.get(r.status, '')} | `{r.nodeid}` | {_timing(r)} | {checks} |")
    for s in extra_sections:
        if s:
            out += ["", s]
    return "\n".join(out) + "\n"
