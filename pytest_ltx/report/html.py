"""pytest-html extras for a clip item, built from its result record and its clip."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

__all__ = ["extras_for", "MAX_EMBED_BYTES"]

#: clips up to this size are embedded in the report; larger ones are linked (the report stays loadable)
MAX_EMBED_BYTES = 4 * 1024 * 1024


def _outcome_table(result: dict[str, Any]) -> str:
    rows = []
    order = {"failed": 0, "error": 0, "unmeasured": 1}
    for o in sorted(result.get("outcomes", []), key=lambda o: order.get(o.get("status", ""), 2)):
        status = o.get("status", "")
        colour = {"passed": "#2e7d32", "failed": "#c62828", "error": "#c62828", "unmeasured": "#8d6e00"}.get(
            status, "#555")
        rows.append(
            f"<tr><td><code>{html.escape(o.get('check', ''))}</code></td>"
            f"<td style='color:{colour};font-weight:bold'>{html.escape(status)}</td>"
            f"<td>{html.escape(o.get('message', ''))}</td></tr>"
        )
    if not rows:
        return ""
    prov = result.get("provenance", {})
    fp = prov.get("fingerprint")
    head = (f"<p><b>{html.escape(result.get('item', ''))}</b> — source: {html.escape(result.get('source', ''))}"
            + (f", model fingerprint <code>{html.escape(fp[:12])}</code>" if fp else "") + "</p>")
    return (head + "<table class='ltx-outcomes' style='border-collapse:collapse'>"
            "<tr><th align=left>check</th><th align=left>status</th><th align=left>detail</th></tr>"
            + "".join(rows) + "</table>")


def extras_for(result: dict[str, Any], *, strip_png: bytes | None, clip_path: Path | None,
               motion_png: bytes | None = None) -> list[dict[str, Any]]:
    """The keyframe strip, the playable clip, a motion plot and the outcome table."""
    try:
        from pytest_html import extras
    except ImportError:  # pytest-html not installed: nothing to attach
        return []
    out: list[dict[str, Any]] = []
    table = _outcome_table(result)
    if table:
        out.append(extras.html(table))
    if strip_png:
        out.append(extras.png(base64.b64encode(strip_png).decode(), name="Keyframes"))
    if motion_png:
        out.append(extras.png(base64.b64encode(motion_png).decode(), name="Motion signal"))
    if clip_path is not None and clip_path.is_file():
        if clip_path.stat().st_size <= MAX_EMBED_BYTES:
            out.append(extras.mp4(base64.b64encode(clip_path.read_bytes()).decode(), name="Clip"))
        else:
            out.append(extras.url(clip_path.resolve().as_uri(), name="Clip (mp4)"))
    return out
