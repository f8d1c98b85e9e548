"""``pytest-ltx explain``: what a spec item really is — every effective field with where it came from
(clip / file defaults / preset / option / built-in default), the resolved prompt (template and values)
and the render cache key. The items are collected by pytest itself, so the answer is exactly what
``pytest`` would run with the same rootdir, ini file, presets and options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_ltx.collect import LtxItem

__all__ = ["ExplainCollector", "explain_item", "render_text"]


def explain_item(item: "LtxItem") -> dict[str, Any]:
    """The explanation of one collected item (JSON-ready)."""
    from pytest_ltx.session import get_session

    session = get_session(item.config)
    sp = item.spec
    entry: dict[str, Any] = {
        "nodeid": item.nodeid,
        "where": f"{item.spec_rel}:{sp.line}" if sp.line else item.spec_rel,
        "source": sp.source_kind.value,
        "prompt": sp.prompt,
        "negative_prompt": sp.negative_prompt,
        "template": sp.template if sp.vars else None,
        "vars": [{"name": k, "value": v, "from": sp.var_sources.get(k, "")} for k, v in sp.vars.items()],
        "preset": sp.preset,
        "baseline_key": item.item_key,
        "legacy_name": sp.legacy_name,
        "fields": sp.effective_fields(run_model=session.settings.model),
    }
    entry["cache_key"], entry["cache_note"] = _cache_key(item)
    return entry


def _cache_key(item: "LtxItem") -> tuple[str | None, str]:
    from pytest_ltx.session import get_session

    sp = item.spec
    if sp.source_kind.value != "render":
        return None, f"a {sp.source_kind.value} clip is not rendered (no render cache entry)"
    from pytest_ltx.render import RenderError
    from pytest_ltx.runner import InfraError, _request, render_provenance

    session = get_session(item.config)
    try:
        profile, req = _request(sp, session.item_context())
        fp = session.fingerprint(profile)
    except (InfraError, RenderError) as e:
        return None, f"unavailable: {str(e).splitlines()[0]}"
    key = session.cache.key(render_provenance(profile, fp, req, sp.encode))
    hit = session.cache.entry_dir(key).is_dir()
    return key, f"{'cached' if hit else 'not rendered yet'} ({session.cache.entry_dir(key)})"


class ExplainCollector:
    """A pytest plugin object that keeps the explanations of the collected clip items."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.invalid: list[tuple[str, str]] = []

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from pytest_ltx.collect import InvalidSpec, LtxItem

        for it in session.items:
            if isinstance(it, LtxItem):
                self.items.append(explain_item(it))
            elif isinstance(it, InvalidSpec):
                self.invalid.append((it.nodeid, it.message))


def _show(v: Any) -> str:
    import json

    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=False, default=str)


def render_text(e: dict[str, Any]) -> str:
    """One item as a reviewer reads it: header, prompt, cache key, then a field | value | origin table."""
    lines = [f"{e['nodeid']}   ({e['where']}, {e['source']})"]
    if e.get("prompt") is not None:
        lines.append(f"  prompt           {e['prompt']}")
    if e.get("negative_prompt"):
        lines.append(f"  negative prompt  {e['negative_prompt']}")
    if e.get("template"):
        lines.append(f"  template         {e['template']}")
        for v in e["vars"]:
            lines.append(f"    {v['name']} = {_show(v['value'])}   ({v['from']})")
    if e.get("preset"):
        lines.append(f"  preset           {e['preset']}")
    lines.append(f"  cache key        {e['cache_key'] or '-'}   {e['cache_note']}")
    lines.append(f"  baseline         {e['baseline_key']}"
                 + (f"   (formerly {e['legacy_name']})" if e.get("legacy_name") else ""))
    fields = {k: v for k, v in e["fields"].items() if not k.startswith("vars.")}
    width = max((len(k) for k in fields), default=5)
    vals = {k: _show(v["value"]) for k, v in fields.items()}
    vwidth = min(48, max((len(v) for v in vals.values()), default=5))
    lines.append(f"  {'field'.ljust(width)}  {'value'.ljust(vwidth)}  origin")
    for k, f in fields.items():
        v = vals[k]
        if len(v) > 48:
            v = v[:45] + "..."
        lines.append(f"  {k.ljust(width)}  {v.ljust(vwidth)}  {f['origin_text']}")
    return "\n".join(lines)
