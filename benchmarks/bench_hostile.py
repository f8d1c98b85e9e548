"""What hostile input costs now, as ratios against a reference measured in the same run.

- **A/V sync on 4 MHz audio**: ``avsync.analyze`` of a 3 s test card whose audio is repeated up to
  ~4 MHz, against the same card at 48 kHz (the reference). Before the fix the STFT ran at the declared
  rate (window and frame count both grow with it); the old envelope cost is shown by computing
  ``audio_envelope`` at 4 MHz on a short slice and scaling it to the clip's length.
- **Merge-key bomb**: parsing a 40-level ``<<`` bomb (refused at the node budget) against parsing the
  shipped ``specs/canaries.yaml``.
- **npz bomb**: reading a baseline whose ``keyframes.npz`` declares 512 MB (refused from the zip
  directory) against reading an ordinary record.

    .venv/bin/python benchmarks/bench_hostile.py
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _t(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def avsync_cost() -> None:
    from pytest_ltx import testcard as tc
    from pytest_ltx.media import Clip
    from pytest_ltx.metrics import avsync
    from tests.fixtures.avsync import avsync_spec

    clip = tc.draw(avsync_spec(25.0, 48000, 80.0, seconds=3.0)).clip
    hot = Clip(frames=clip.frames, fps=clip.fps, audio=np.repeat(clip.audio, 83, axis=1), sample_rate=3_984_000)
    avsync.analyze(clip)  # calibration (per configuration) out of the timings
    avsync.analyze(hot)
    ref = _t(lambda: avsync.analyze(clip))
    now = _t(lambda: avsync.analyze(hot))
    sr = 3_984_000
    n_fft, hop = avsync.stft_params(sr)
    piece = hot.mono()[: int(0.1 * sr)]
    old_env = _t(lambda: avsync.audio_envelope(piece, sr, n_fft=n_fft, hop=hop), 1) * (hot.audio.shape[1] / len(piece))
    print(f"A/V sync, 3 s card: 48 kHz {ref:.2f} s (reference); ~4 MHz now {now:.2f} s = {now / ref:.1f}x; "
          f"the old 4 MHz envelope alone ~{old_env:.0f} s = {old_env / ref:.0f}x")


def bomb_cost() -> None:
    from pytest_ltx.spec import SpecFileError, load_spec_text

    spec = (Path(__file__).resolve().parents[1] / "specs" / "canaries.yaml").read_text()
    lines = ["l0: &l0 {a: 1, b: 2}"] + [f"l{i}: &l{i} {{<<: [*l{i - 1}, *l{i - 1}], k{i}: {i}}}" for i in range(1, 41)]
    bomb = "\n".join(lines) + "\nclips: [{id: x, <<: *l40}]\n"

    def parse_bomb() -> None:
        try:
            load_spec_text(bomb)
        except SpecFileError:
            pass

    ref = _t(lambda: load_spec_text(spec))
    now = _t(parse_bomb)
    print(f"merge-key bomb (2^40 key copies if expanded): {now * 1000:.0f} ms = {now / ref:.1f}x parsing canaries.yaml")


def npz_cost() -> None:
    from pytest_ltx.baseline import BaselineError, BaselineRecord

    rec = BaselineRecord("specs/a/x", "m", arrays={"t": np.zeros((8, 32, 32), np.uint8)},
                         thumbnails=np.zeros((8, 72, 72, 3), np.uint8))
    with tempfile.TemporaryDirectory() as d:
        ok, bad = Path(d) / "ok", Path(d) / "bad"
        for p in (ok, bad):
            p.mkdir()
            for name, data in rec.files().items():
                (p / name).write_bytes(data)
        member = io.BytesIO()
        np.lib.format.write_array(member, np.zeros(512 * 2**20, np.uint8))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("t.npy", member.getvalue())
        (bad / "keyframes.npz").write_bytes(buf.getvalue())

        def read_bad() -> None:
            try:
                BaselineRecord.read_dir(bad)
            except BaselineError:
                pass

        ref = _t(lambda: BaselineRecord.read_dir(ok))
        now = _t(read_bad)
        print(f"npz bomb ({len(buf.getvalue()) // 1024} kB inflating to 512 MB): refused in {now * 1000:.1f} ms = "
              f"{now / ref:.1f}x reading an ordinary record")


if __name__ == "__main__":
    bomb_cost()
    npz_cost()
    avsync_cost()
