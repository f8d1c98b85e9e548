"""pytest-html extras for a clip item, built from its result record and the media beside the report.

One ``html`` extra per item, nothing in pytest-html's media viewer: its viewer shows one asset at a time
and never loads a video placed after an image. The block holds the outcome table, the clip in a plain
``<video>`` element, the keyframe strip (click to open it full size) and a link to the item's section in
``index.html``. All text is escaped. With ``--self-contained-html`` the strip is inlined and the clip
too when it is small (:data:`MAX_EMBED_BYTES`); otherwise both are linked beside the report.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any

__all__ = ["extras_for", "escape_results_row", "MAX_EMBED_BYTES", "outcome_table"]

#: clips up to this size are inlined in a self-contained pytest-html report; larger ones are linked
MAX_EMBED_BYTES = 2 * 1024 * 1024

_COLOUR = {"passed": "#2e7d32", "failed": "#c62828", "error": "#c62828", "unmeasured": "#8d6e00"}
_ORDER = {"error": 0, "failed": 0, "unmeasured": 1}


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def outcome_table(result: dict[str, Any]) -> str:
    """The item's checks, failures first: check, status, measured, allowed, baseline, detail."""
    rows = []
    for o in sorted(result.get("outcomes", []), key=lambda o: _ORDER.get(o.get("status", ""), 2)):
        status = o.get("status", "")
        rows.append(
            f"<tr><td><code>{_e(o.get('check'))}</code></td>"
            f"<td style='color:{_COLOUR.get(status, '#555')};font-weight:bold'>{_e(status)}</td>"
            f"<td>{_e(_num(o.get('measured')))}</td><td>{_e(_num(o.get('allowed')))}</td>"
            f"<td>{_e(_num(o.get('baseline')))}</td><td>{_e(o.get('message', ''))}</td></tr>"
        )
    if not rows:
        return ""
    diff = (result.get("baseline") or {}).get("manifest_diff") or []
    changed = ""
    if diff:
        changed = ("<p><b>pipeline changed since the baseline</b></p><ul class='ltx-manifest-diff'>"
                   + "".join(f"<li><code>{html.escape(str(d))}</code></li>" for d in diff) + "</ul>")
    return changed + ("<table class='ltx-outcomes' style='border-collapse:collapse'><tr><th align=left>check</th>"
                      "<th align=left>status</th><th align=left>measured</th><th align=left>allowed</th>"
                      "<th align=left>baseline</th><th align=left>detail</th></tr>" + "".join(rows) + "</table>")


def _num(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        import json

        return json.dumps(v)[:120]
    return v


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def _href(path: Path, html_dir: Path) -> str:
    from urllib.parse import quote

    return quote(Path(os.path.relpath(path.resolve(), html_dir.resolve())).as_posix())


def extras_for(result: dict[str, Any], *, report_dir: Path, html_dir: Path,
               self_contained: bool = False) -> list[dict[str, Any]]:
    try:
        from pytest_html import extras
    except ImportError:  # pytest-html not installed: nothing to attach
        return []
    from pytest_ltx.report.files import media_name

    art = result.get("artifacts") or {}
    report_dir = Path(report_dir)
    parts = []
    prompt = (result.get("params") or {}).get("prompt")
    head = f"<p><b>{_e(result.get('item'))}</b> — source: {_e(result.get('source'))}"
    if prompt:
        head += f" — prompt: <q>{_e(prompt)}</q>"
    parts.append(head + "</p>")
    if result.get("description"):
        parts.append(f"<p>{_e(result['description'])}</p>")
    media = []
    clip = report_dir / art["clip"] if art.get("clip") else None
    if clip is not None and clip.is_file():
        if self_contained and clip.stat().st_size <= MAX_EMBED_BYTES:
            src = _data_uri(clip, "video/mp4")
        else:
            src = _href(clip, html_dir)
        media.append(f"<video class='ltx-clip' controls preload='metadata' playsinline width='384' "
                     f"src='{_e(src)}'></video>")
    strip = report_dir / art["strip"] if art.get("strip") else None
    if strip is not None and strip.is_file():
        src = _data_uri(strip, "image/jpeg") if self_contained else _href(strip, html_dir)
        target = _href(strip, html_dir)
        media.append(f"<a href='{_e(target)}' target='_blank' rel='noopener'><img class='ltx-strip' "
                     f"alt='keyframes' src='{_e(src)}' style='max-width:100%;height:auto'></a>")
    if media:
        parts.append("<div style='display:flex;gap:12px;align-items:flex-start;flex-wrap:wrap'>"
                     + "".join(media) + "</div>")
    index = report_dir / "index.html"
    parts.append(f"<p><a href='{_e(_href(index, html_dir))}#item-{_e(media_name(result.get('nodeid', '')))}'>"
                 "full report: golden vs now, plots, provenance</a></p>")
    if art.get("error"):
        parts.append(f"<p style='color:#8d6e00'>{_e(art['error'])}</p>")
    parts.append(outcome_table(result))
    return [extras.html("<div class='ltx-item'>" + "".join(parts) + "</div>")]


def escape_results_row(report: Any, cells: list[str]) -> None:
    """Rewrite pytest-html's test-id cell with the id escaped (for every test of the session, not only
    ours: the id is text wherever it comes from)."""
    test_id = report.nodeid + ("" if report.when == "call" else f"::{report.when}")
    for i, c in enumerate(cells):
        if c.startswith('<td class="col-testId">'):
            cells[i] = f'<td class="col-testId">{_e(test_id)}</td>'
