"""Human summaries of a run, rendered from result records only: the terminal section, the GitHub step
summary, a Markdown file fit for a PR comment, and per-item JUnit XML properties.

Everything a user wrote (ids, file names, prompts) or a clip said (OCR text) reaches these through
:func:`md_text`, which makes it inert in GitHub Markdown: HTML escaped, Markdown punctuation
backslash-escaped, mentions defused, one line.
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from typing import Any, Iterable

from pytest_ltx.report.results import ItemResult

__all__ = ["terminal_lines", "environment_line", "markdown", "pr_comment", "junit_properties", "md_text",
           "regressions"]

_ICON = {"passed": "✅", "failed": "❌", "error": "💥"}
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def md_text(s: Any, limit: int = 400) -> str:
    """Untrusted text as inert, single-line GitHub Markdown (safe inside a table cell)."""
    s = " ".join(str(s).split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    s = _MD_SPECIAL.sub(r"\\\1", s)  # Markdown first: the entities below must keep their '#'
    s = html.escape(s, quote=False)
    return s.replace("@", "&#64;").replace(":", "&#58;")  # no @mentions, no autolinked javascript: URLs


def _timing(r: ItemResult) -> str:
    t = r.timings or {}
    if r.source != "render":
        return r.source
    if t.get("cached"):
        return "cached render"
    s = t.get("render_s")
    return f"rendered in {s:.1f} s" if isinstance(s, (int, float)) else "not rendered"


def _by_status(r: ItemResult, status: str) -> list[dict[str, Any]]:
    return [o for o in r.outcomes if o.get("status") == status]


def _counts(rs: list[ItemResult]) -> dict[str, int]:
    c = {s: sum(1 for r in rs if r.status == s) for s in ("passed", "failed", "error")}
    c["unmeasured"] = sum(len(_by_status(r, "unmeasured")) for r in rs)
    return c


def _headline(rs: list[ItemResult]) -> str:
    c = _counts(rs)
    return (f"{len(rs)} clips: {c['passed']} passed, {c['failed']} failed, {c['error']} errors; "
            f"{c['unmeasured']} checks unmeasured")


def environment_line(results: Iterable[ItemResult]) -> str | None:
    """All the environment differences between baselines and this run, in one line (or None)."""
    items = 0
    diffs: Counter[str] = Counter()
    for r in results:
        env = ((r.baseline or {}).get("comparison") or {}).get("environment_diff") or []
        if env:
            items += 1
            diffs.update(env)
    if not items:
        return None
    return (f"{items} baseline(s) made in a different environment (compared anyway): "
            + "; ".join(d if n == items else f"{d} ({n})" for d, n in sorted(diffs.items())))


def terminal_lines(results: Iterable[ItemResult]) -> list[str]:
    """The pytest-ltx terminal section. Each failure's details are printed once, by pytest, in FAILURES;
    here each item that did not pass gets one line naming its failed checks, unmeasured checks are
    counted per check, and environment differences take one line."""
    rs = sorted(results, key=lambda r: r.nodeid)
    lines = [_headline(rs)]
    for r in rs:
        if r.status == "passed":
            continue
        bad = [o["check"] for o in r.outcomes if o.get("status") in ("failed", "error")]
        what = ", ".join(bad) if bad else (r.error or "").strip().splitlines()[0][:160] if r.error else ""
        lines.append(f"{r.status.upper():7} {r.nodeid}  ({_timing(r)})" + (f": {what}" if what else ""))
    unmeasured = Counter(o["check"] for r in rs for o in _by_status(r, "unmeasured"))
    if unmeasured:
        lines.append("unmeasured (not counted as passed): "
                     + ", ".join(f"{k} ×{n}" if n > 1 else k for k, n in sorted(unmeasured.items())))
    env = environment_line(rs)
    if env:
        lines.append(env)
    return lines


def _severity(o: dict[str, Any]) -> float:
    """How far past its allowance a failed check went: |measured − reference| / allowed for checks with
    numbers (a baseline move, a bound), errors first (infinite), a failed check without numbers 1."""
    if o.get("status") == "error":
        return math.inf

    def num(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    m: Any = o.get("measured")
    a: Any = o.get("allowed")
    b: Any = o.get("baseline")
    if num(m) and num(a) and num(b):  # a baseline move: how many tolerances it moved
        return abs(m - b) / max(abs(a), 1e-9)
    if num(m) and num(a):  # a bound: 1 + how far past it, relative (at most 2)
        return 1.0 + abs(m - a) / max(abs(a), abs(m), 1e-9)
    return 1.0


def regressions(results: Iterable[ItemResult]) -> list[tuple[float, ItemResult, dict[str, Any] | None]]:
    """Every failed or errored check (or item error), worst first."""
    out: list[tuple[float, ItemResult, dict[str, Any] | None]] = []
    for r in results:
        bad = [o for o in r.outcomes if o.get("status") in ("failed", "error")]
        if r.status == "error" and not bad:
            out.append((math.inf, r, None))
        out += [(_severity(o), r, o) for o in bad]
    return sorted(out, key=lambda t: (-t[0], t[1].nodeid, (t[2] or {}).get("check", "")))


def _anchor(r: ItemResult) -> str:
    from pytest_ltx.report.files import media_name

    return "item-" + media_name(r.nodeid)


def markdown(results: Iterable[ItemResult], *, extra_sections: Iterable[str] = ()) -> str:
    """A GitHub step summary: counts (unmeasured counted apart), then one row per item."""
    rs = sorted(results, key=lambda r: r.nodeid)
    out = ["## pytest-ltx", "", _headline(rs), "", "| | clip | source | checks |", "|---|---|---|---|"]
    for r in rs:
        cells = [f"**{md_text(o['check'])}** {md_text(o.get('message', ''))}"
                 for o in r.outcomes if o.get("status") in ("failed", "error")]
        if r.error and not cells:
            cells.append(md_text(r.error.strip().splitlines()[0] if r.error.strip() else r.error))
        cells += [f"⚠️ unmeasured **{md_text(o['check'])}** {md_text(o.get('message', ''))}"
                  for o in _by_status(r, "unmeasured")]
        n_pass = len(_by_status(r, "passed"))
        if n_pass:
            cells.append(f"{n_pass} passed")
        out.append(f"| {_ICON.get(r.status, '')} | {md_text(r.nodeid)} | {md_text(_timing(r))} | "
                   f"{'<br>'.join(cells) or '—'} |")
    for s in extra_sections:
        if s:
            out += ["", s]
    return "\n".join(out) + "\n"


def pr_comment(results: Iterable[ItemResult], *, report_url: str | None = None, run_url: str | None = None,
               limit: int = 20) -> str:
    """Markdown for a PR comment: the headline, the worst regressions first (linked to the report's item
    section when ``report_url`` is given), and where the artifacts are."""
    rs = sorted(results, key=lambda r: r.nodeid)
    out = ["## pytest-ltx", "", _headline(rs), ""]
    regs = regressions(rs)
    if regs:
        out += ["| | clip | check | what |", "|---|---|---|---|"]
        for _sev, r, o in regs[:limit]:
            name = md_text(r.nodeid)
            if report_url:
                name = f"[{name}]({report_url}#{_anchor(r)})"
            if o is None:
                out.append(f"| 💥 | {name} | error | {md_text((r.error or '').strip().splitlines()[0] if r.error else '')} |")
            else:
                icon = "💥" if o.get("status") == "error" else "❌"
                out.append(f"| {icon} | {name} | {md_text(o['check'])} | {md_text(o.get('message', ''))} |")
        if len(regs) > limit:
            out += ["", f"… and {len(regs) - limit} more failed checks."]
    else:
        out.append("No regressions.")
    unmeasured = Counter(o["check"] for r in rs for o in _by_status(r, "unmeasured"))
    if unmeasured:
        out += ["", "Unmeasured (not counted as passed): "
                + ", ".join(md_text(f"{k} ×{n}" if n > 1 else k) for k, n in sorted(unmeasured.items()))]
    env = environment_line(rs)
    if env:
        out += ["", md_text(env, limit=1000)]
    if run_url:
        out += ["", f"Report, clips and results.json: artifacts of [this run]({run_url})."]
    return "\n".join(out) + "\n"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "—" if v is None else str(v)


def junit_properties(result: dict[str, Any]) -> list[tuple[str, str]]:
    """Per-item ``<property>`` pairs for JUnit XML: the status, the model, and one per check with its
    status, measured, allowed and baseline values (pytest's junitxml escapes them)."""
    props = [("ltx.status", str(result.get("status", ""))), ("ltx.source", str(result.get("source", "")))]
    fp = (result.get("provenance") or {}).get("fingerprint")
    if fp:
        props.append(("ltx.model_fingerprint", str(fp)))
    for o in result.get("outcomes", []):
        parts = [str(o.get("status")), f"measured={_fmt(o.get('measured'))}", f"allowed={_fmt(o.get('allowed'))}"]
        if o.get("baseline") is not None:
            parts.append(f"baseline={_fmt(o.get('baseline'))}")
        props.append((f"ltx.{o.get('check')}", " ".join(parts)))
    return props
