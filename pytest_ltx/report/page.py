"""The HTML report (``<report dir>/index.html``): a pure function of ``results.json`` and the media files
its items name, so ``pytest-ltx report ltx-report/results.json`` rebuilds it without rendering anything.

Jinja2 with autoescaping renders every value: ids, file names, prompts, descriptions, OCR text and error
messages reach the page as text, never as markup; the page also carries a Content-Security-Policy that
allows no script at all. Media stay beside the page as files; ``self_contained=True`` inlines them as
data URIs instead (the page then costs roughly the item's clip size × 4/3 plus ~100–300 kB of images
per item).
"""

from __future__ import annotations

import base64
import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import quote

from pytest_ltx.report.files import ReportFiles, media_name, write_atomic
from pytest_ltx.report.results import ItemResult, read_results

__all__ = ["REPORT_FILE", "ReportBuild", "build_report", "render_report"]

REPORT_FILE = "index.html"


@dataclass(frozen=True)
class ReportBuild:
    path: Path
    items: int
    bytes: int
    self_contained: bool

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "items": self.items, "bytes": self.bytes, "self_contained": self.self_contained}


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        s = json.dumps(v, ensure_ascii=False)
        return s if len(s) <= 160 else s[:159] + "…"
    return str(v)


class _Media:
    """Turns a report-relative media path into what the page links: a relative URL, or a data URI."""

    def __init__(self, report_dir: Path, page_dir: Path, self_contained: bool) -> None:
        self.report_dir = report_dir
        self.page_dir = page_dir
        self.self_contained = self_contained
        self._files = ReportFiles(report_dir)
        self._page = page_dir.resolve()
        self._links: dict[str, str | None] = {}

    def __call__(self, rel: str | None) -> str | None:
        if not rel:
            return None
        if rel not in self._links:
            self._links[rel] = self._link(rel)
        return self._links[rel]

    def _link(self, rel: str) -> str | None:
        p = self._files.file(rel)  # an artifact path in a (possibly edited) results file never leaves the report
        if p is None:
            return None
        if self.self_contained:
            mime = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
            return f"data:{mime};base64," + base64.b64encode(p.read_bytes()).decode()
        import os

        return quote(Path(os.path.relpath(p, self._page)).as_posix())


def _params(r: ItemResult) -> list[tuple[str, str]]:
    p = r.params or {}
    prov = r.provenance or {}
    out: list[tuple[str, str]] = []
    if r.source == "render":
        for label, key in (("prompt", "prompt"), ("negative prompt", "negative_prompt"), ("seed", "seed")):
            if p.get(key) not in (None, ""):
                out.append((label, _fmt(p[key])))
        if p.get("width"):
            out.append(("size", f"{p.get('width')}×{p.get('height')}, {p.get('frames')} frames at {_fmt(p.get('fps'))} fps"))
        for label, key in (("steps", "steps"), ("guidance", "guidance"), ("image", "image"), ("model profile", "profile")):
            if p.get(key) not in (None, "", {}):
                out.append((label, _fmt(p[key])))
        model = prov.get("model") or {}
        if model:
            out.append(("model", ", ".join(f"{k} {_fmt(v)}" for k, v in model.items() if v not in (None, ""))))
        if prov.get("fingerprint"):
            out.append(("weights fingerprint", str(prov["fingerprint"])[:16]))
        pl = prov.get("placement") or {}
        dev = prov.get("device") or pl.get("device")
        if dev:
            out.append(("device", f"{dev} {prov.get('dtype') or pl.get('dtype') or ''}".strip()
                        + (f", GPU {prov['gpu']}" if prov.get("gpu") else "")))
    elif r.source == "file":
        if p.get("prompt"):
            out.append(("prompt", _fmt(p["prompt"])))
        out += [("file", _fmt(p.get("file"))), ("audio file", _fmt(p.get("audio")))]
    elif r.source == "testcard":
        keys = ("width", "height", "frames", "fps", "seed", "cuts", "jumps", "freezes", "flickers", "text", "audio")
        out += [(k, _fmt(p[k])) for k in keys if k in p and p[k] not in (None, [], {})]
    t = r.timings or {}
    if r.source == "render":
        rs = t.get("render_s")
        out.append(("render", ("cached; " if t.get("cached") else "")
                    + (f"{rs:.2f} s" if isinstance(rs, (int, float)) else "not rendered")
                    + (f", peak VRAM {t['peak_vram_gb']:.1f} GB" if isinstance(t.get("peak_vram_gb"), (int, float))
                       else ", peak VRAM not measured")))
    if isinstance(t.get("total_s"), (int, float)):
        how = ("conclusion remembered from an earlier run with the same inputs" if t.get("remembered")
               else f"metrics {_fmt(t.get('metrics_s'))} s")
        out.append(("item time", f"{t['total_s']:.2f} s ({how})"))
    return out


def _provenance(r: ItemResult) -> list[tuple[str, str]]:
    prov = r.provenance or {}
    out = []
    for k, v in prov.items():
        if k == "request":
            continue
        if k == "spec" and isinstance(v, dict):  # every effective spec field with where it came from
            if v.get("preset"):
                out.append(("spec preset", _fmt(v["preset"])))
            if v.get("vars"):
                out.append(("spec template", _fmt(v.get("template"))))
            for name, f in (v.get("fields") or {}).items():
                if isinstance(f, dict):
                    out.append((f"spec {name}", f"{_fmt(f.get('value'))}  ← {f.get('origin_text', '')}"))
            continue
        if isinstance(v, dict):
            out += [(f"{k}.{kk}", _fmt(vv)) for kk, vv in v.items()]
        else:
            out.append((k, _fmt(v)))
    return out


def _measurements(r: ItemResult) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every evaluation section's flat ``scalars``: a new metric family shows up here with no code."""
    out = []
    for fam, sec in sorted((r.evaluation or {}).items()):
        if isinstance(sec, dict) and isinstance(sec.get("scalars"), dict) and sec["scalars"]:
            out.append((fam, [(k, _fmt(v)) for k, v in sorted(sec["scalars"].items())]))
    return out


_ORDER = {"error": 0, "failed": 0, "unmeasured": 1}


def _baseline_pass(o: dict[str, Any]) -> bool:
    """A baseline metric within tolerance: listed in "values vs golden", not repeated among the checks."""
    return str(o.get("check", "")).startswith("baseline.") and o.get("status") == "passed"


def _item_view(r: ItemResult, media: _Media, report_dir: Path, history: dict[str, Any] | None,
               plots: bool) -> dict[str, Any]:
    from pytest_ltx.report.summary import _timing

    art = r.artifacts or {}
    d = r.to_dict()
    view: dict[str, Any] = {
        "golden": None, "baseline": None, "comparison": [], "plots": [], "history": [],
        "r": r, "anchor": "item-" + media_name(r.nodeid), "timing": _timing(r),
        "bad": [o["check"] for o in r.outcomes if o.get("status") in ("failed", "error")],
        "unmeasured": [o["check"] for o in r.outcomes if o.get("status") == "unmeasured"],
        "clip": media(art.get("clip")), "clip_external": art.get("clip_external"),
        "art_error": art.get("error"),
        "params": _params(r), "provenance": _provenance(r), "measurements": _measurements(r),
        "outcomes": [{"check": o.get("check"), "status": o.get("status"), "message": o.get("message", ""),
                      "measured": _fmt(o.get("measured")), "allowed": _fmt(o.get("allowed")),
                      "baseline": _fmt(o.get("baseline"))}
                     for o in sorted(r.outcomes, key=lambda o: _ORDER.get(o.get("status", ""), 2))
                     if not _baseline_pass(o) or not (r.baseline or {}).get("comparison")],
        "hidden_baseline_passes": sum(1 for o in r.outcomes if _baseline_pass(o))
        if (r.baseline or {}).get("comparison") else 0,
    }
    view["keyframes"] = [{"frame": k["frame"], "time_s": k.get("time_s"), "src": src}
                         for k in art.get("keyframes", []) if (src := media(k.get("file")))]
    b = r.baseline or {}
    if b:
        cmp = b.get("comparison") or {}
        view["baseline"] = {"status": b.get("status"), "path": b.get("path"), "ok": cmp.get("ok", True),
                            "request_changes": b.get("request_changes") or [],
                            "manifest_diff": b.get("manifest_diff") or [],
                            "environment": cmp.get("environment_diff") or []}
        view["comparison"] = [{"key": m.get("key"), "baseline": _fmt(m.get("baseline")), "current": _fmt(m.get("current")),
                               "delta": _fmt(m.get("delta")), "allowed": _fmt(m.get("allowed")), "ok": m.get("ok", True)}
                              for m in sorted(cmp.get("metrics") or [], key=lambda m: (m.get("ok", True), m.get("key", "")))]
        bk = art.get("baseline_keyframes")
        if bk and all(media(bk.get(k)) for k in ("golden", "now", "diff")):
            arrays = {a.get("name"): a for a in cmp.get("arrays") or []}
            st = arrays.get("structural.thumbnails") or {}
            ssim, thr = st.get("values") or [], st.get("threshold")
            # SSIM per golden keyframe: the comparison says which stored keyframe each value was paired with
            by_frame = {bf: v for bf, v in zip(st.get("baseline_frames") or [], ssim) if bf is not None}
            frames = []
            for i, f in enumerate(bk.get("frames") or []):
                v = by_frame.get(f.get("frame")) if by_frame else (ssim[i] if i < len(ssim) else None)
                frames.append({**f, "ssim": v, "ssim_failed": v is not None and thr is not None and v < thr})
            view["golden"] = {"frames": frames, **{k: media(bk[k]) for k in ("golden", "now", "diff")}}
    if plots:
        from pytest_ltx.report.plots import item_plots

        view["plots"] = [{"title": p["title"], "src": media(p["file"])} for p in item_plots(d, report_dir)]
    if history:
        view["history"] = _history_rows(r, history, report_dir, media)
    return view


def _history_rows(r: ItemResult, history: dict[str, Any], report_dir: Path, media: _Media) -> list[dict[str, Any]]:
    from pytest_ltx.report.history import item_series
    from pytest_ltx.report.plots import history_plot

    rows = []
    mdir = (r.artifacts or {}).get("dir") or f"media/{media_name(r.nodeid)}"
    for s in item_series(r, history):
        src = media(history_plot(report_dir, mdir, s.key, s.points, s.baseline, s.allowed))
        rows.append({"key": s.key, "src": src, "series_text": " → ".join(_fmt(v) for _, v in s.points[-6:]),
                     "drift": "—" if s.drift is None else f"{s.drift:+.2f}", "alarm": s.alarm})
    return rows


def render_report(doc: dict[str, Any], items: Sequence[ItemResult], *, report_dir: Path, page_dir: Path,
                  self_contained: bool = False, history: dict[str, Any] | None = None, plots: bool = True,
                  results_name: str = "results.json") -> str:
    """The page's HTML for a results document (``read_results``) whose media lie under ``report_dir``."""
    import jinja2

    from pytest_ltx.report.summary import _counts, environment_line

    env = jinja2.Environment(loader=jinja2.PackageLoader("pytest_ltx.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=False)
    media = _Media(Path(report_dir), Path(page_dir), self_contained)
    order = {"error": 0, "failed": 0, "passed": 1}
    rs = sorted(items, key=lambda r: (order.get(r.status, 2), r.nodeid))
    meta = doc.get("meta") or {}
    bl = meta.get("baselines") or {}
    counts = bl.get("counts") if isinstance(bl, dict) else None
    headline = ("baselines: " + ", ".join(f"{n} {k}" for k, n in counts.items())) if counts else None
    c = _counts(list(rs))
    return env.get_template("report.html.j2").render(
        items=[_item_view(r, media, Path(report_dir), history, plots) for r in rs],
        counts=c, headline=f"{c['passed']} passed, {c['failed']} failed, {c['error']} errors",
        created=doc.get("created", ""), tool_version=(doc.get("tool") or {}).get("version", ""),
        results_name=results_name, env_line=environment_line(rs), baselines_headline=headline,
        unused=[" [".join(map(str, u)) + "]" for u in meta.get("unused_baselines") or []],
        history_runs=len(history["runs"]) if history else 0,
    )


def build_report(results: Path, out: Path | None = None, *, self_contained: bool = False,
                 history: Iterable[Path] = (), plots: bool = True) -> ReportBuild:
    """Read ``results`` and write the page (default: ``index.html`` beside it); media are looked up in
    the results file's folder. Raises ``ReportWriteError`` when the page cannot be written."""
    from pytest_ltx.report.history import load_history

    results = Path(results)
    doc, items = read_results(results)
    report_dir = results.parent
    out = Path(out) if out is not None else report_dir / REPORT_FILE
    hist = load_history(list(history), current=(doc, items), exclude=results) if history else None
    html = render_report(doc, items, report_dir=report_dir, page_dir=out.parent, self_contained=self_contained,
                         history=hist, plots=plots, results_name=results.name)
    data = html.encode("utf-8")
    write_atomic(out, data)
    return ReportBuild(out, len(items), len(data), self_contained)
