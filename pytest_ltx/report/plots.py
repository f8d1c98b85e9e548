"""Plots of an item's measurements, drawn (matplotlib, Agg) from its result record and the media files it
names — never from live objects, so ``pytest-ltx report results.json`` redraws them.

Each plot is written once beside the item's media as ``plot-<kind>-<hash>.png``, the hash covering its
inputs: rebuilding a report redraws only what changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from pytest_ltx.report.files import write_atomic

__all__ = ["Plot", "item_plots", "history_plot"]

_EVENT_COLOUR = {"cut": "#c62828", "jump": "#6a1b9a", "freeze": "#1565c0", "flicker": "#ef6c00"}


class Plot(dict):
    """``{"kind", "title", "file"}`` (file relative to the report folder)."""


def _mpl() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "figure.dpi": 100, "text.usetex": False})
    return plt


def _save(fig: Any) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=100)
    _mpl().close(fig)
    return buf.getvalue()


def _cached(report_dir: Path, media_dir: str, kind: str, inputs: Any, draw: Callable[[], bytes]) -> str:
    h = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:10]
    rel = f"{media_dir}/plot-{kind}-{h}.png"
    path = report_dir / rel
    if not path.is_file():
        write_atomic(path, draw())
    return rel


def _events(ax: Any, events: list[dict[str, Any]], *, fps: float | None, time_axis: bool) -> None:
    seen = set()
    for ev in events:
        kind = str(ev.get("kind", "event"))
        c = _EVENT_COLOUR.get(kind, "#444")
        a, b = ev.get("start_frame", 0), ev.get("end_frame", ev.get("start_frame", 0))
        if time_axis and fps:
            a, b = a / fps, b / fps
        lab = None if kind in seen else kind
        seen.add(kind)
        if b > a:
            ax.axvspan(a, b, color=c, alpha=0.18, label=lab)
        else:
            ax.axvline(a, color=c, lw=1.5, ls="--", label=lab)


def _motion(item: dict[str, Any]) -> Callable[[], bytes] | None:
    m = (item.get("evaluation") or {}).get("motion") or {}
    s = m.get("series") or {}
    x = s.get("pair_frame")
    if not x:
        return None
    groups = [("frame change", ["diff", "hist_distance", "content"]),
              ("motion", ["flow_mean", "flow_top5", "warp_error", "motion_gain"]),
              ("brightness", ["luma_mean"])]
    groups = [(t, [k for k in ks if isinstance(s.get(k), list) and len(s[k]) == len(x)]) for t, ks in groups]
    groups = [(t, ks) for t, ks in groups if ks]
    if not groups:
        return None

    def draw() -> bytes:
        plt = _mpl()
        fig, axes = plt.subplots(len(groups), 1, figsize=(8, 1.6 * len(groups) + 0.4), sharex=True, squeeze=False)
        for ax, (title, keys) in zip(axes[:, 0], groups):
            for k in keys:
                ax.plot(x, [v if v is not None else float("nan") for v in s[k]], lw=1, label=k)
            _events(ax, m.get("events") or [], fps=m.get("fps"), time_axis=False)
            ax.set_ylabel(title)
            ax.legend(loc="upper right", fontsize=7, ncol=4)
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("frame (the change between frame i−1 and i)")
        n = len(m.get("events") or [])
        axes[0, 0].set_title(f"motion signals per frame — {n} event{'s' if n != 1 else ''} marked")
        return _save(fig)

    return draw


def _av(item: dict[str, Any], report_dir: Path) -> tuple[Callable[[], bytes], Any] | None:
    av = (item.get("evaluation") or {}).get("av_sync")
    sig_rel = (item.get("artifacts") or {}).get("signals")
    if not av or not sig_rel or not (report_dir / sig_rel).is_file():
        return None
    sig = json.loads((report_dir / sig_rel).read_text(encoding="utf-8"))
    rms, vis, fps = sig.get("audio_rms"), sig.get("visual_change"), sig.get("fps") or 0
    if not rms and not vis:
        return None
    offset = av.get("offset_ms")

    def draw() -> bytes:
        plt = _mpl()
        fig, axes = plt.subplots(2, 1, figsize=(8, 3.4), sharex=True)
        if rms:
            hop = sig.get("audio_hop_s") or 0.005
            t = [i * hop for i in range(len(rms))]
            axes[0].plot(t, rms, lw=0.8, color="#1565c0", label="audio RMS")
            if offset is not None:
                axes[1].plot([v - offset / 1000 for v in t], [r / (max(rms) or 1) * (max(vis or [1]) or 1) for r in rms],
                             lw=0.8, color="#1565c0", alpha=0.5, label=f"audio shifted by {-offset:+.0f} ms")
        for te in av.get("audio_event_times_s") or []:
            axes[0].axvline(te, color="#1565c0", lw=0.8, ls=":")
        if vis and fps:
            axes[1].plot([i / fps for i in range(len(vis))], vis, lw=1, color="#2e7d32", label="visual change")
        for te in av.get("visual_event_times_s") or []:
            axes[1].axvline(te, color="#2e7d32", lw=0.8, ls=":")
        axes[0].set_ylabel("audio")
        axes[1].set_ylabel("video")
        axes[1].set_xlabel("time (s); dotted lines: detected events")
        for ax in axes:
            ax.legend(loc="upper right", fontsize=7)
            ax.grid(alpha=0.3)
        status = av.get("status")
        title = (f"A/V sync: audio {abs(offset):.0f} ms {'late' if offset >= 0 else 'early'}"
                 f" (confidence {av.get('confidence') or 0:.2f})" if offset is not None else f"A/V sync: {status}")
        axes[0].set_title(title)
        return _save(fig)

    return draw, [av, sig]


def _keyframes(item: dict[str, Any]) -> tuple[Callable[[], bytes], Any] | None:
    ev = item.get("evaluation") or {}
    series: dict[str, tuple[list[Any], list[Any]]] = {}
    for kf in (ev.get("clip_similarity") or {}).get("keyframes") or []:
        for k in ("prompt_score", "consistency"):
            if kf.get(k) is not None:
                xs, ys = series.setdefault(f"CLIP {k}", ([], []))
                xs.append(kf["frame"])
                ys.append(kf[k])
    # what was measured against the golden baseline lives in the baseline comparison (one alignment)
    label = {"embedding": "CLIP baseline_similarity", "structural": "structural SSIM vs golden"}
    for a in (((item.get("baseline") or {}).get("comparison") or {}).get("arrays") or []):
        name = label.get(a.get("kind"))
        pts = [(f, v) for f, v in zip(a.get("frames") or [], a.get("values") or []) if f is not None]
        if name and pts:
            series[name] = ([f for f, _ in pts], [v for _, v in pts])
    if not series:
        return None
    bounds = [(o["check"], o["allowed"]) for o in item.get("outcomes", [])
              if o.get("check", "").startswith(("clip.", "baseline.structural.", "baseline.clip_similarity."))
              and isinstance(o.get("allowed"), (int, float))
              and not isinstance(o.get("allowed"), bool)]

    def draw() -> bytes:
        plt = _mpl()
        fig, ax = plt.subplots(figsize=(8, 2.4))
        for name, (xs, ys) in series.items():
            ax.plot(xs, ys, marker="o", ms=3, lw=1, label=name)
        for check, a in bounds:
            ax.axhline(a, color="#c62828", lw=0.8, ls="--")
            ax.annotate(f"{check} ≥ {a:g}", (0, a), fontsize=7, color="#c62828", va="bottom")
        ax.set_xlabel("frame")
        ax.set_title("per-keyframe similarity")
        ax.legend(loc="lower right", fontsize=7)
        ax.grid(alpha=0.3)
        return _save(fig)

    # keyed on what is drawn: not on the whole outcomes, whose messages (a render's seconds, "cached")
    # change from run to run and would redraw an identical plot
    return draw, [series, bounds]


def _ocr(item: dict[str, Any], report_dir: Path) -> tuple[Callable[[], bytes], Any] | None:
    frames = (item.get("artifacts") or {}).get("ocr_frames") or []
    dets = ((item.get("evaluation") or {}).get("text") or {}).get("detections") or []
    frames = [f for f in frames if (report_dir / f["file"]).is_file()]
    if not frames or not dets:
        return None

    def draw() -> bytes:
        import cv2

        plt = _mpl()
        from matplotlib.patches import Rectangle

        n = len(frames)
        cols = min(3, n)
        rows = (n + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, f in zip(axes.flat, frames):
            bgr = cv2.imread(str(report_dir / f["file"]))
            if bgr is None:
                raise OSError(f"cannot read keyframe {report_dir / f['file']}")
            img = bgr[..., ::-1]
            ax.imshow(img)
            for d in dets:
                if d.get("frame") != f["frame"] or not d.get("box"):
                    continue
                x0, y0, x1, y1 = d["box"]
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#ffeb3b", lw=1.5))
                # parse_math=False: OCR text is data, never mathtext ($…$) or markup
                ax.text(x0, max(0, y0 - 2), f"{d.get('text', '')} ({d.get('confidence', 0):.2f})", color="black",
                        fontsize=7, va="bottom", parse_math=False,
                        bbox={"facecolor": "#ffeb3b", "edgecolor": "none", "pad": 1})
            ax.set_title(f"frame {f['frame']}", fontsize=8)
        fig.suptitle("text found by OCR (boxes as detected)", fontsize=9)
        return _save(fig)

    return draw, [dets, frames]


def item_plots(item: dict[str, Any], report_dir: Path) -> list[Plot]:
    """Draw (or reuse) the item's plots; a plot whose data is absent is simply not drawn."""
    report_dir = Path(report_dir)
    mdir = (item.get("artifacts") or {}).get("dir")
    if not mdir:
        from pytest_ltx.report.files import media_name
        from pytest_ltx.report.media import MEDIA_DIR

        mdir = f"{MEDIA_DIR}/{media_name(item.get('nodeid', ''))}"
    out: list[Plot] = []
    ev = item.get("evaluation") or {}
    d = _motion(item)
    if d is not None:
        out.append(Plot(kind="motion", title="Motion signals and events",
                        file=_cached(report_dir, mdir, "motion", ev.get("motion"), d)))
    a = _av(item, report_dir)
    if a is not None:
        out.append(Plot(kind="av_sync", title="Audio and visual envelopes",
                        file=_cached(report_dir, mdir, "av", a[1], a[0])))
    k = _keyframes(item)
    if k is not None:
        out.append(Plot(kind="keyframes", title="Similarity per keyframe",
                        file=_cached(report_dir, mdir, "keyframes", k[1], k[0])))
    o = _ocr(item, report_dir)
    if o is not None:
        out.append(Plot(kind="text", title="Text found by OCR", file=_cached(report_dir, mdir, "ocr", o[1], o[0])))
    return out


def history_plot(report_dir: Path, mdir: str, key: str, runs: list[tuple[str, Any]],
                 baseline: Any = None, allowed: Any = None) -> str:
    """A small line plot of one metric across runs (oldest left), with the baseline ± tolerance band."""
    vals = [v for _, v in runs]

    def draw() -> bytes:
        plt = _mpl()
        fig, ax = plt.subplots(figsize=(3.2, 1.1))
        ax.plot(range(len(vals)), [float("nan") if v is None else v for v in vals], marker="o", ms=2.5, lw=1)
        if isinstance(baseline, (int, float)):
            ax.axhline(baseline, color="#555", lw=0.7, ls=":")
            if isinstance(allowed, (int, float)) and allowed > 0:
                ax.axhspan(baseline - allowed, baseline + allowed, color="#2e7d32", alpha=0.12)
        ax.set_xticks([])
        ax.tick_params(labelsize=6)
        ax.set_title(key, fontsize=7)
        return _save(fig)

    safe = hashlib.sha256(key.encode()).hexdigest()[:8]
    return _cached(report_dir, mdir, f"history-{safe}", [key, runs, baseline, allowed], draw)
