"""Reports are pure functions of result records: results.json round trip, terminal / Markdown / JUnit
summaries, the HTML page rebuilt from results.json and its media, escaping of everything a user wrote or a
clip said, unique media names, file modes and unwritable report folders."""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from pytest_ltx.report.files import ReportWriteError, file_mode, media_name, write_atomic
from pytest_ltx.report.html import outcome_table
from pytest_ltx.report.results import ItemResult, read_results, write_results
from pytest_ltx.report.summary import (
    environment_line,
    junit_properties,
    markdown,
    md_text,
    pr_comment,
    regressions,
    terminal_lines,
)

HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>'
HOSTILE_FILE = 'specs/x<details open ontoggle="alert(1)">.yaml'


def _items() -> list[ItemResult]:
    ok = ItemResult(nodeid="specs/a.yaml::a[seed=0]", spec="specs/a.yaml", clip_id="a", item="a[seed=0]",
                    source="render", status="passed", timings={"render_s": 1.25, "cached": False},
                    outcomes=[{"check": "format.frames", "status": "passed", "message": "frame count 25"},
                              {"check": "budget.vram_gb", "status": "unmeasured", "message": "no CUDA"}])
    bad = ItemResult(nodeid="specs/a.yaml::b", spec="specs/a.yaml", clip_id="b", item="b", source="testcard",
                     status="failed",
                     outcomes=[{"check": "motion.cuts", "status": "failed",
                                "message": "1 cut found, 0 allowed: cut at frame 24 (1.00 s)", "measured": 1,
                                "allowed": 0},
                               {"check": "baseline.motion.flicker_score", "status": "failed",
                                "message": "moved 0.004 → 0.031", "measured": 0.031, "allowed": 0.01,
                                "baseline": 0.004},
                               {"check": "av_sync.offset", "status": "unmeasured", "message": "no audio"}],
                     baseline={"status": "compared", "comparison": {"environment_diff": ["torch 2.4 → 2.5"]}})
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
    # one item per line (a rerun's diff names the items that changed), the header indented
    lines = path.read_text().splitlines()
    assert [json.loads(line.rstrip(","))["nodeid"] for line in lines if line.startswith("    {")] == \
        sorted(i.nodeid for i in _items())
    assert '  "summary": {' in lines
    write_results(path, [])
    assert read_results(path)[0]["items"] == []


def test_item_result_json_is_computed_once_and_copied_at_the_top(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_ltx.report import results

    item = _items()[0]
    calls: list[int] = []
    real = results.jsonable
    monkeypatch.setattr(results, "jsonable", lambda x: (calls.append(1), real(x))[1])
    a = item.to_dict()
    a["status"] = "edited by a caller"
    b = item.to_dict()
    assert b["status"] == "failed" and b == real({k: getattr(item, k) for k in item.__dataclass_fields__})
    assert len(calls) == 1
    from dataclasses import replace

    assert replace(item, status="passed").to_dict()["status"] == "passed"  # a new value, a new JSON form


# ---- terminal ----------------------------------------------------------------------------------------


def test_terminal_names_each_failure_once_and_counts_unmeasured_apart() -> None:
    lines = terminal_lines(_items())
    assert lines[0] == "3 clips: 1 passed, 1 failed, 1 errors; 2 checks unmeasured"
    # the failure's message is printed by pytest (FAILURES); here only the names of the failed checks
    assert "FAILED  specs/a.yaml::b  (testcard): motion.cuts, baseline.motion.flicker_score" in lines
    assert not any("1 cut found" in line for line in lines)
    assert "ERROR   specs/a.yaml::c[seed=0]  (not rendered): unknown model profile 'x'" in lines
    assert not any(line.startswith("PASSED") for line in lines)
    assert "unmeasured (not counted as passed): av_sync.offset, budget.vram_gb" in lines
    assert lines[-1] == "1 baseline(s) made in a different environment (compared anyway): torch 2.4 → 2.5"


def test_environment_differences_are_one_line_with_counts() -> None:
    rs = [ItemResult(nodeid=f"s.yaml::{i}", spec="s.yaml", clip_id=str(i), item=str(i), source="testcard",
                     status="passed", baseline={"comparison": {"environment_diff": env}})
          for i, env in enumerate([["torch 1 → 2", "numpy 1 → 2"], ["torch 1 → 2"], []])]
    assert environment_line(rs) == ("2 baseline(s) made in a different environment (compared anyway): "
                                    "numpy 1 → 2 (1); torch 1 → 2")
    assert environment_line(rs[2:]) is None


# ---- Markdown ----------------------------------------------------------------------------------------


def test_md_text_makes_user_text_inert() -> None:
    s = md_text(HOSTILE + " | `code` [link](javascript:alert(1)) @team **b**\nnext line")
    assert "<" not in s and ">" not in s and "\n" not in s
    assert "\\|" in s and "\\`" in s and "\\[" in s and "\\*\\*" in s
    assert "@" not in s and "javascript:" not in s  # no mentions, no autolinked scheme


def test_step_summary_counts_unmeasured_as_unmeasured_and_escapes() -> None:
    items = _items()
    items.append(ItemResult(nodeid=HOSTILE_FILE + "::z", spec=HOSTILE_FILE, clip_id="z", item="z",
                            source="file", status="failed",
                            outcomes=[{"check": "text.none", "status": "failed", "message": f"'{HOSTILE}' at frame 3"}]))
    md = markdown(items, extra_sections=["### baselines: 2 created"])
    assert "4 clips: 1 passed, 2 failed, 1 errors; 2 checks unmeasured" in md
    row = next(line for line in md.splitlines() if "a\\.yaml&#58;&#58;a\\[seed=0\\]" in line)
    assert "⚠️ unmeasured **budget\\.vram\\_gb** no CUDA" in row and "1 passed" in row  # not "2 passed"
    assert "<script" not in md and "<img" not in md and "<details" not in md
    assert "&lt;script&gt;" in md and "&lt;details open ontoggle=\"alert\\(1\\)\"&gt;" in md
    assert md.rstrip().endswith("### baselines: 2 created")


def test_pr_comment_lists_worst_regressions_first_with_links() -> None:
    md = pr_comment(_items(), report_url="https://ci.example/report/index.html",
                    run_url="https://github.com/o/r/actions/runs/1")
    rows = [line for line in md.splitlines() if line.startswith("| 💥") or line.startswith("| ❌")]
    # the error first, then the flicker score (2.7 tolerances), then the cut (a bound: 1 + 1/…)
    assert "error" in rows[0] and "flicker" in rows[1] and "motion\\.cuts" in rows[2], rows
    anchor = "item-" + media_name("specs/a.yaml::b")
    assert f"(https://ci.example/report/index.html#{anchor})" in rows[1]
    assert "artifacts of [this run](https://github.com/o/r/actions/runs/1)" in md
    assert [(o or {}).get("check") for _, _, o in regressions(_items())] == [
        None, "baseline.motion.flicker_score", "motion.cuts"]


def test_junit_properties_carry_every_check_with_values() -> None:
    props = dict(junit_properties(_items()[0].to_dict()))
    assert props["ltx.status"] == "failed"
    assert props["ltx.baseline.motion.flicker_score"] == "failed measured=0.031 allowed=0.01 baseline=0.004"
    assert props["ltx.av_sync.offset"] == "unmeasured measured=— allowed=—"


# ---- files -------------------------------------------------------------------------------------------


def test_media_names_are_derived_unique_and_safe() -> None:
    a = media_name("specs/a/clips.yaml::robot[seed=0]")
    b = media_name("specs/b/clips.yaml::robot[seed=0]")
    assert a != b and a.startswith("clips-yaml-robot-seed-0-") and b.startswith("clips-yaml-robot-seed-0-")
    h = media_name(HOSTILE_FILE + "::" + HOSTILE)
    assert re.fullmatch(r"[A-Za-z0-9-]+", h), h
    assert media_name("../../etc/passwd::x").startswith("passwd-x-")


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_report_files_get_the_mode_open_would_give(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        assert file_mode() == mode
        p = write_atomic(tmp_path / "d" / "results.json", "{}")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == mode


def test_full_report_folder_is_one_clear_line_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*a: object, **k: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(ReportWriteError) as e:
        write_atomic(tmp_path / "results.json", "{}")
    assert str(e.value) == (f"could not write report file {tmp_path / 'results.json'}: No space left on device "
                            "(the run's results are unaffected)")
    assert list(tmp_path.iterdir()) == []  # no .part left behind


def test_report_folder_that_is_a_file_is_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "ltx-report"
    blocker.write_text("not a folder")
    with pytest.raises(ReportWriteError, match=r"^could not write report file .*ltx-report/index.html: "):
        write_atomic(blocker / "index.html", "x")


# ---- HTML --------------------------------------------------------------------------------------------


def test_outcome_table_lists_failures_first_and_escapes() -> None:
    item = _items()[0].to_dict()
    item["outcomes"].append({"check": "text.none", "status": "passed", "message": f"no {HOSTILE}"})
    html = outcome_table(item)
    assert html.index("motion.cuts") < html.index("av_sync.offset") < html.index("text.none")
    assert "<script" not in html and "&lt;script&gt;" in html


def _clip(frames: int = 9, size: int = 64, seed: int = 0):  # noqa: ANN202
    from pytest_ltx.media import Clip

    rng = np.random.default_rng(seed)
    sr = 16000
    audio = (rng.standard_normal((1, int(sr * frames / 24))) * 0.1).astype(np.float32)
    return Clip(frames=rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8), fps=24.0, audio=audio,
                sample_rate=sr)


def _baseline(clip):  # noqa: ANN001, ANN202
    from pytest_ltx.baseline import BaselineRecord, make_thumbnails

    return BaselineRecord(item_key="specs/x/a", model_key="testcard", scalars={"motion.cuts": 0},
                          keyframe_frames=[0, 4, 8], fps=24.0, thumbnails=make_thumbnails(clip.frames[[0, 4, 8]]))


def _hostile_results(tmp_path: Path) -> Path:
    """A results.json of one failing rendered item whose every user-written field is hostile, with its media
    written as the plugin writes them, plus a new metric family no report code knows about."""
    from pytest_ltx.report.media import write_item_media

    report = tmp_path / "ltx-report"
    nodeid = HOSTILE_FILE + "::robot[seed=0]"
    clip = _clip()
    golden = _baseline(_clip(seed=1))
    evaluation = {
        "text": {"detections": [{"frame": 4, "time_s": 0.17, "text": HOSTILE + " $x^2$", "confidence": 0.9,
                                 "box": [2, 3, 40, 20]}], "scalars": {"detections": 1}},
        "motion": {"fps": 24.0, "events": [{"kind": "cut", "start_frame": 4, "end_frame": 4}],
                   "series": {"pair_frame": list(range(1, 9)), "diff": [1, 1, 1, 9, 1, 1, 1, 1]},
                   "scalars": {"cuts": 1}},
        "audio_qc": {"scalars": {"loudness_lufs": -31.5, "clipped_samples": 12}},
    }
    art = write_item_media(report, nodeid, clip, mp4=None, evaluation=evaluation, baseline=golden)
    item = ItemResult(
        nodeid=nodeid, spec=HOSTILE_FILE, clip_id="robot", item="robot[seed=0]", source="render", status="failed",
        params={"prompt": HOSTILE, "negative_prompt": "blurry", "seed": 0, "width": 64, "height": 64, "frames": 9,
                "fps": 24.0, "steps": 2, "guidance": {"stg_blocks": [1]}, "profile": "tiny"},
        provenance={"model": {"name": "tiny", "variant": "2.3"}, "fingerprint": "ab" * 32, "device": "cpu",
                    "dtype": "float32", "versions": {"torch": "2.14.1"}},
        timings={"render_s": 0.5, "cached": False, "total_s": 1.0, "metrics_s": 0.2},
        evaluation=evaluation, artifacts=art, description=f"desc {HOSTILE}", line=3,
        outcomes=[{"check": "audio_qc.loudness", "status": "failed", "message": "-31.5 LUFS, at least -24 allowed",
                   "measured": -31.5, "allowed": -24},
                  {"check": "text.none", "status": "failed", "message": f"'{HOSTILE}' at frame 4"},
                  {"check": "baseline.motion.cuts", "status": "failed", "message": "moved 0 → 1", "measured": 1,
                   "allowed": 0, "baseline": 0}],
        baseline={"status": "compared", "path": "baselines/x", "request_changes": [f"prompt 'a' → '{HOSTILE}'"],
                  "comparison": {"ok": False, "environment_diff": ["torch 2.0.0 → 2.14.1"],
                                 "metrics": [{"key": "motion.cuts", "baseline": 0, "current": 1, "delta": 1,
                                              "allowed": 0, "ok": False}],
                                 # SSIM per paired keyframe, listed in another order than the golden row:
                                 # the page pairs them by the stored keyframe each was compared with
                                 "arrays": [{"name": "structural.thumbnails", "kind": "structural",
                                             "values": [0.9, 0.2, 0.3], "frames": [8, 0, 4],
                                             "baseline_frames": [8, 0, 4], "threshold": 0.7},
                                            {"name": "clip_similarity.embeddings", "kind": "embedding",
                                             "values": [0.99, 0.97, 0.5], "frames": [0, 4, 8],
                                             "baseline_frames": [0, 4, 8], "threshold": 0.9}]}},
    )
    path = report / "results.json"
    write_results(path, [item])
    return path


def test_page_shows_everything_a_reviewer_needs_and_escapes_all_of_it(tmp_path: Path) -> None:
    from pytest_ltx.report.page import build_report

    results = _hostile_results(tmp_path)
    build = build_report(results)
    html = build.path.read_text()
    # nothing hostile survives as markup, anywhere (table, params, description, OCR, messages, ids)
    assert "<script" not in html.replace("script-src", "") and "<img src=x" not in html and "ontoggle=\"" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;") >= 4
    assert "x&lt;details open ontoggle=&#34;alert(1)&#34;&gt;.yaml" in html
    assert "script-src 'none'" in html  # and the page allows no script at all
    # per item: clip facts, prompt, seed, parameters, description, provenance, request change, environment
    for text in ("negative prompt", "blurry", "64×64, 9 frames at 24 fps", "weights fingerprint", "abababab",
                 "baseline made from a different request", "torch 2.0.0 → 2.14.1", "desc &lt;script&gt;"):
        assert text in html, text
    # golden vs now vs difference, with the per-keyframe SSIM (failing ones marked)
    art = json.loads(results.read_text())["items"][0]["artifacts"]
    for row in ("golden", "now", "diff"):
        assert art["baseline_keyframes"][row] in html
    assert "SSIM 0.200" in html and "SSIM 0.900" in html
    golden_ssim = re.findall(r"SSIM (\d\.\d+)", html)
    assert golden_ssim[:3] == ["0.200", "0.300", "0.900"], golden_ssim  # frames 0, 4, 8
    # keyframes enlarge (a CSS lightbox per keyframe: no script, works in a self-contained page too)
    assert len(art["keyframes"]) == 8 and html.count('class="lightbox"') == 8
    # a metric family the report has no code for shows its check and its values
    assert "audio_qc.loudness" in html and "loudness_lufs" in html and "-31.5" in html
    # plots drawn from results + media (motion with its cut, OCR boxes), written beside the page
    plots = re.findall(r'src="(media/[^"]+/plot-[^"]+\.png)"', html)
    # (and the per-keyframe similarity to the golden baseline, from the baseline comparison)
    assert {p.split("/plot-")[1].split("-")[0] for p in plots} >= {"motion", "ocr", "keyframes"}
    assert all((results.parent / p).stat().st_size > 2000 for p in plots)


def test_plots_are_redrawn_only_when_what_they_draw_changes(tmp_path: Path) -> None:
    """An outcome's message (a render's seconds, "cached") changes from run to run; the keyframe
    similarity plot only draws values and thresholds, so it is not redrawn (nor a new file left) for it."""
    from pytest_ltx.report.page import build_report

    results = _hostile_results(tmp_path)
    build_report(results)
    media = results.parent / "media"
    before = sorted(p.name for p in media.rglob("plot-*.png"))
    doc = json.loads(results.read_text())
    for o in doc["items"][0]["outcomes"]:
        o["message"] += " (this run: 0.31 s)"
    results.write_text(json.dumps(doc))
    build_report(results)
    assert sorted(p.name for p in media.rglob("plot-*.png")) == before
    doc["items"][0]["baseline"]["comparison"]["arrays"][0]["values"] = [0.9, 0.25, 0.3]  # a value drawn
    results.write_text(json.dumps(doc))
    build_report(results)
    after = sorted(p.name for p in media.rglob("plot-*.png"))
    assert [n.split("-")[1] for n in sorted(set(after) - set(before))] == ["keyframes"]


def test_page_links_only_files_inside_the_report_folder(tmp_path: Path) -> None:
    """A results file comes from an untrusted run: whatever its artifact paths say (absolute, ``..``, a
    symlink to a file or a folder outside), the page links or inlines only regular files of the report."""
    from pytest_ltx.report.page import build_report

    results = _hostile_results(tmp_path)
    report = results.parent
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"\xff\xd8 not for the page")
    doc = json.loads(results.read_text())
    art = doc["items"][0]["artifacts"]
    kf = art["keyframes"]
    (report / "media" / "link.jpg").symlink_to(secret)
    (report / "media" / "outside").symlink_to(tmp_path)
    (report / "media" / "inside.jpg").symlink_to(report / kf[1]["file"])
    kf[0]["file"] = "../secret.jpg"
    kf[2]["file"] = str(secret)
    kf[3]["file"] = "media/link.jpg"
    kf[4]["file"] = "media/outside/secret.jpg"
    kf[5]["file"] = "media"
    kf[6]["file"] = "media/inside.jpg"  # a symlink that stays inside is fine
    results.write_text(json.dumps(doc))
    for contained in (False, True):
        html = build_report(results, self_contained=contained).path.read_text()
        assert "secret" not in html and "bm90IGZvciB0aGUgcGFnZQ" not in html  # nor its base64
        assert html.count('class="lightbox"') == 3  # keyframes 1, 6 and 7


def test_page_is_a_pure_function_of_results_and_media(tmp_path: Path) -> None:
    from pytest_ltx.cli import main
    from pytest_ltx.report.page import build_report

    results = _hostile_results(tmp_path)
    first = build_report(results).path.read_bytes()
    (results.parent / "index.html").unlink()
    assert main(["report", str(results)]) == 0
    assert (results.parent / "index.html").read_bytes() == first
    # a report moved elsewhere (a downloaded CI artifact) rebuilds the same from its own folder
    import shutil

    moved = tmp_path / "downloaded"
    shutil.copytree(results.parent, moved)
    assert build_report(moved / "results.json").path.read_bytes() == first


def test_self_contained_page_inlines_media(tmp_path: Path) -> None:
    from pytest_ltx.report.page import build_report

    results = _hostile_results(tmp_path)
    b = build_report(results, tmp_path / "one.html", self_contained=True)
    html = b.path.read_text()
    assert 'src="media/' not in html and html.count('src="data:image/') >= 8 + 3
    assert b.bytes < 2_000_000, b.bytes


def test_history_shows_a_slow_drift_before_it_fails(tmp_path: Path) -> None:
    from pytest_ltx.report.page import build_report

    results = _hostile_results(tmp_path)
    doc = json.loads(results.read_text())
    hist = tmp_path / "artifacts"
    for i, v in enumerate([-26.0, -28.0, -30.0]):  # loudness falling run after run
        d = json.loads(json.dumps(doc))
        d["created"] = f"2026-01-0{i + 1}T00:00:00Z"
        d["items"][0]["evaluation"]["audio_qc"]["scalars"]["loudness_lufs"] = v
        d["items"][0]["baseline"]["comparison"]["metrics"].append(
            {"key": "audio_qc.loudness_lufs", "baseline": -24.0, "current": v, "allowed": 3.0, "ok": True})
        (hist / f"run{i}").mkdir(parents=True)
        (hist / f"run{i}" / "results.json").write_text(json.dumps(d))
    (hist / "broken").mkdir()
    (hist / "broken" / "results.json").write_text("{not json")
    doc["items"][0]["baseline"]["comparison"]["metrics"].append(
        {"key": "audio_qc.loudness_lufs", "baseline": -24.0, "current": -31.5, "allowed": 3.0, "ok": False})
    results.write_text(json.dumps(doc))
    html = build_report(results, history=[hist]).path.read_text()
    row = html[html.index("<code>audio_qc.loudness_lufs</code></td><td><img"):]
    row = row[: row.index("</tr>")]
    assert "-26 → -28 → -30 → -31.5" in row and "-1.83" in row and 'class="num failed"' in row
    assert "this run and 3 earlier run(s)" in html


def test_pytest_html_results_table_test_id_is_escaped() -> None:
    from types import SimpleNamespace

    from pytest_ltx.report.html import escape_results_row

    rep = SimpleNamespace(nodeid=HOSTILE_FILE + "::x", when="setup")
    cells = ['<td class="col-result">Passed</td>', f'<td class="col-testId">{rep.nodeid}::setup</td>',
             '<td class="col-duration">1 ms</td>']
    escape_results_row(rep, cells)
    assert cells[1] == ('<td class="col-testId">specs/x&lt;details open ontoggle=&quot;alert(1)&quot;&gt;.yaml'
                        '::x::setup</td>')
    assert cells[0] == '<td class="col-result">Passed</td>'


# ---- a warm rerun's report: nothing redrawn, nothing rewritten ----------------------------------------------


def test_report_file_holding_the_same_bytes_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write_atomic(tmp_path / "a.json", "{}")
    renames: list[object] = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renames.append(b), real(a, b)))
    write_atomic(p, "{}")
    assert renames == [] and p.read_text() == "{}"
    write_atomic(p, "{} ")  # same length or not: other bytes are written
    write_atomic(p, "[]")
    assert len(renames) == 2 and p.read_text() == "[]"


def test_report_frames_keep_pictures_encoded_not_pixels() -> None:
    """What the streaming pass keeps for the report is cached with the metrics and read back by every warm
    run: JPEGs of the keyframes as shown (and the strip), a tenth of their pixels' size."""
    import pickle

    import cv2

    from pytest_ltx.media import Clip
    from pytest_ltx.report import media
    from pytest_ltx.stream import run_stream

    y, x = np.mgrid[0:192, 0:256]
    frames = np.stack([np.dstack([(x + 8 * i) % 256, y, (x + y) // 2]).astype(np.uint8) for i in range(16)])
    rf = run_stream(Clip(frames=frames, fps=24.0), [media.media_consumer(None)]).results["report_media"]
    assert len(rf.keyframes) == 8 and rf.strip is not None
    pixels = sum(frames[0].nbytes for _ in rf.keyframes)
    assert len(pickle.dumps(rf)) < pixels / 10
    f, jpeg = rf.keyframes[3]
    shown = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert shown.shape == frames[f].shape and np.abs(shown.astype(int) - frames[f]).mean() < 3
    # a tiny clip's keyframes are enlarged (nearest) to be looked at
    tiny = run_stream(Clip(frames=frames[:, :64, :64], fps=24.0), [media.media_consumer(None)]).results["report_media"]
    assert cv2.imdecode(np.frombuffer(tiny.keyframes[0][1], np.uint8), cv2.IMREAD_COLOR).shape == (192, 192, 3)


def test_item_media_are_drawn_once_per_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_ltx.report import media
    from pytest_ltx.stream import run_stream

    report = tmp_path / "ltx-report"
    clip, golden = _clip(), _baseline(_clip(seed=1))
    frames = run_stream(clip, [media.media_consumer(golden)]).results["report_media"]
    mp4 = tmp_path / "clip.mp4"
    mp4.write_bytes(b"not really an mp4")
    first = media.write_item_media(report, "specs/a.yaml::a", frames, mp4=mp4, baseline=golden)
    assert first["keyframes"] and first["baseline_keyframes"] and first["clip"]
    drawn: list[int] = []
    real = media._jpeg
    monkeypatch.setattr(media, "_jpeg", lambda *a, **k: (drawn.append(1), real(*a, **k))[1])
    again = media.write_item_media(report, "specs/a.yaml::a", frames, mp4=mp4, baseline=golden)
    assert again == first and drawn == []  # the same inputs: the manifest is read back
    # any input that changes a picture redraws: another baseline, another clip file, a lost file
    for change in ("baseline", "clip", "lost file"):
        media.write_item_media(report, "specs/a.yaml::a", frames, mp4=mp4, baseline=golden)
        drawn.clear()
        if change == "baseline":
            media.write_item_media(report, "specs/a.yaml::a", frames, mp4=mp4, baseline=_baseline(_clip(seed=3)))
        elif change == "clip":
            mp4.write_bytes(b"another clip, another size")
            media.write_item_media(report, "specs/a.yaml::a", frames, mp4=mp4, baseline=golden)
        else:
            (report / first["keyframes"][0]["file"]).unlink()
            out = media.write_item_media(report, "specs/a.yaml::a", frames, mp4=mp4, baseline=golden)
            assert (report / out["keyframes"][0]["file"]).is_file()
        assert drawn, change
    # a manifest naming a file outside the report is never trusted
    d = media.item_media_dir(report, "specs/a.yaml::a")
    rec = json.loads((d / media.MANIFEST).read_text())
    rec["artifacts"]["strip"] = "../../etc/passwd"
    (d / media.MANIFEST).write_text(json.dumps(rec))
    drawn.clear()
    out = media.write_item_media(report, "specs/a.yaml::a", frames, mp4=mp4, baseline=golden)
    assert drawn and out["strip"] != "../../etc/passwd"
