"""Hostile input as a pull request would bring it: paths out of the project, YAML bombs, oversized specs,
CLIP settings that say one thing and mean another, clips whose audio or frames would eat the runner, VFR
clips, a baseline npz that inflates to gigabytes. Each is refused with one clear line naming the file and
the limit (and how to raise it), never a hang or a traceback. See docs/reliability.md.
"""

from __future__ import annotations

import io
import os
import stat
import time
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from pytest_ltx.confine import OutsideRoot, PathPolicy
from pytest_ltx.limits import Limits, current, parse_limits, set_limits
from pytest_ltx.spec import SpecFileError, load_spec_file, load_spec_text

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning")


@pytest.fixture
def limits():
    """Set process limits for one test and restore the previous ones after it."""
    before = current()

    def apply(**kw: int) -> Limits:
        lim = parse_limits([f"{k}={v}" for k, v in kw.items()])
        set_limits(lim)
        return lim

    yield apply
    set_limits(before)


def _png(path: Path) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))
    return path


RENDER = """
clips:
  - id: robot
    prompt: a robot
    width: 64
    height: 64
    frames: 9
    image: {image}
"""


# ---------------------------------------------------------------------------------------------- paths


@pytest.mark.parametrize("image", ["/etc/passwd", "../../../secret.png"])
def test_image_outside_the_project_is_refused_at_collection(tmp_path: Path, image: str) -> None:
    root = tmp_path / "proj"
    spec = root / "specs" / "a.yaml"
    spec.parent.mkdir(parents=True)
    _png(tmp_path / "secret.png")
    spec.write_text(RENDER.format(image=image))
    with pytest.raises(SpecFileError) as e:
        load_spec_file(spec, confine=PathPolicy(root))
    msg = str(e.value)
    assert msg.startswith(f"{spec}:8: clips[0].image: ") and "outside the project root" in msg
    assert "--ltx-allow-dirs" in msg


def test_image_in_an_allowed_folder_or_with_outside_root_is_read(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    spec = root / "specs" / "a.yaml"
    spec.parent.mkdir(parents=True)
    shared = _png(tmp_path / "shared" / "ref.png")
    spec.write_text(RENDER.format(image=shared))
    assert load_spec_file(spec, confine=PathPolicy(root, allow_dirs=(shared.parent,))).clips[0].image
    assert load_spec_file(spec, confine=PathPolicy(root, anywhere=True)).clips[0].image
    inside = _png(root / "specs" / "img" / "ok.png")
    spec.write_text(RENDER.format(image="img/ok.png"))
    assert load_spec_file(spec, confine=PathPolicy(root)).clips[0].image == "img/ok.png"
    assert inside.is_file()


def test_a_symlink_inside_the_project_pointing_out_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "specs").mkdir(parents=True)
    secret = _png(tmp_path / "secret.png")
    (root / "specs" / "innocent.png").symlink_to(secret)
    with pytest.raises(OutsideRoot, match="resolves to .*secret.png"):
        PathPolicy(root).resolve("innocent.png", root / "specs")


def test_allow_dirs_may_not_be_root_or_home(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nltx_allow_dirs = /\n")
    r = pytester.runpytest_subprocess("--co")
    assert "ltx_allow_dirs: '/' is the file-system root" in r.stderr.str()
    r = pytester.runpytest_subprocess("--co", "--ltx-allow-dirs", "~")
    assert "is the home folder" in r.stderr.str()


def test_plugin_reports_an_escaping_image_as_an_invalid_spec(pytester: pytest.Pytester) -> None:
    d = pytester.path / "specs"
    d.mkdir()
    (d / "a.yaml").write_text(RENDER.format(image="/etc/passwd"))
    r = pytester.runpytest_subprocess("specs/", "-p", "no:cacheprovider")
    r.assert_outcomes(errors=1)
    out = r.stdout.str()
    assert "specs/a.yaml:8: clips[0].image: /etc/passwd is outside the project root" in out
    assert "Traceback" not in out


# ------------------------------------------------------------------------------------- the YAML loader


def test_merge_key_bomb_stops_at_the_budget_quickly(tmp_path: Path) -> None:
    # each level merges the previous one twice: 2^40 key copies if expanded
    lines = ["l0: &l0 {a: 1, b: 2}"]
    for i in range(1, 41):
        lines.append(f"l{i}: &l{i} {{<<: [*l{i - 1}, *l{i - 1}], k{i}: {i}}}")
    lines.append("clips: [{id: x, <<: *l40}]")
    t0 = time.perf_counter()
    with pytest.raises(SpecFileError) as e:
        load_spec_text("\n".join(lines) + "\n", tmp_path / "bomb.yaml")
    assert time.perf_counter() - t0 < 30  # not a timing test: a hang would take hours
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'bomb.yaml'}:") and "more than 100000 nodes" in msg
    assert "--ltx-limits yaml_nodes=" in msg


def test_recursive_merge_is_an_error_not_a_hang(tmp_path: Path) -> None:
    with pytest.raises(SpecFileError, match="recursive"):
        load_spec_text("a: &a {<<: *a, x: 1}\nclips: []\n", tmp_path / "r.yaml")


def test_oversized_spec_is_refused_before_reading_and_the_limit_can_be_raised(tmp_path: Path, limits) -> None:
    spec = tmp_path / "big.yaml"
    spec.write_text("clips:\n  - id: a\n    testcard: {}\n# " + "x" * (2 * 1024 * 1024) + "\n")
    with pytest.raises(SpecFileError) as e:
        load_spec_file(spec)
    msg = str(e.value)
    assert msg.startswith(f"{spec}: the file is 2048 kB, over the 1024 kB limit for a spec file")
    assert "--ltx-limits spec_kb=2048" in msg
    limits(spec_kb=4096)
    assert load_spec_file(spec).clips[0].id == "a"


def test_clip_id_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecFileError, match="id"):
        load_spec_text('clips:\n  - id: "robot\\n"\n    testcard: {}\n', tmp_path / "n.yaml")


def test_bad_limits_setting_names_the_known_limits(pytester: pytest.Pytester) -> None:
    r = pytester.runpytest_subprocess("--co", "--ltx-limits", "clip_gb=3")
    assert "--ltx-limits" in r.stderr.str() and "clip_mb" in r.stderr.str()


# ---------------------------------------------------------------------------------- CLIP settings


def test_clip_booleans_parse_strictly() -> None:
    from pytest_ltx.metrics.clip_score import ClipModelError, ClipModelProfile

    base = {"arch": "ViT-B-32", "weights": "/models/clip.safetensors"}
    assert ClipModelProfile.from_config({**base, "allow_pickle": "false"}).allow_pickle is False
    assert ClipModelProfile.from_config({**base, "allow_pickle": "No"}).allow_pickle is False
    assert ClipModelProfile.from_config({**base, "allow_pickle": "yes"}).allow_pickle is True
    assert ClipModelProfile.from_config({**base, "allow_network": 1}).allow_network is True
    for bad in ("flase", "", "on", 2, [True]):
        with pytest.raises(ClipModelError, match="allow_pickle must be true or false"):
            ClipModelProfile.from_config({**base, "allow_pickle": bad})


@pytest.mark.parametrize("folder", ["/", "~", str(Path.home().parent)])
def test_trusted_folder_may_not_be_root_or_home(folder: str) -> None:
    from pytest_ltx.metrics.clip_score import ClipModelError, ClipModelProfile

    with pytest.raises(ClipModelError, match="would trust every file"):
        ClipModelProfile.from_config({"arch": "ViT-B-32", "weights": "/m/c.safetensors", "trusted_dirs": [folder]})


def test_trusted_dirs_as_one_string_is_one_folder(tmp_path: Path) -> None:
    from pytest_ltx.metrics.clip_score import ClipModelProfile

    p = ClipModelProfile.from_config({"arch": "A", "weights": "/m/c.safetensors", "trusted_dirs": str(tmp_path)})
    assert p.trusted_dirs == (str(tmp_path.resolve()),)


def test_pickles_are_recognised_by_content_not_name(tmp_path: Path) -> None:
    import pickle

    from pytest_ltx.metrics import clip_score as cs

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch should-never-exist",))

    pk = tmp_path / "clip.dat"
    pk.write_bytes(pickle.dumps(Boom(), protocol=4))
    disguised = tmp_path / "clip.safetensors"
    disguised.write_bytes(pk.read_bytes())
    zipped = tmp_path / "clip.weights"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("archive/data.pkl", pk.read_bytes())
    assert cs.weights_format(pk) == "pickle" and cs.weights_format(disguised) == "pickle"
    assert cs.weights_format(zipped) == "torch-zip"
    for f in (pk, disguised, zipped):
        prof = cs.ClipModelProfile(arch="ViT-B-32", weights=str(f))
        with pytest.raises(cs.ClipModelError, match="Refusing to load pickle checkpoint"):
            cs._check_weights(prof)
    assert not Path("should-never-exist").exists()


def test_real_safetensors_passes_the_content_check(models_tiny_clip_files) -> None:
    from pytest_ltx.metrics import clip_score as cs

    weights, _ = models_tiny_clip_files
    assert cs.weights_format(Path(weights)) == "safetensors"


# ------------------------------------------------------------------------------------------- media


def _write_wav(path: Path, rate: int, seconds: float) -> Path:
    import av

    n = int(rate * seconds)
    with av.open(str(path), "w", format="wav") as out:
        s = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, n), np.int16), format="s16", layout="mono")
        frame.sample_rate = rate
        for pkt in s.encode(frame):
            out.mux(pkt)
        for pkt in s.encode(None):
            out.mux(pkt)
    return path


def test_audio_rate_over_the_budget_is_refused_with_the_limit(tmp_path: Path, limits) -> None:
    from pytest_ltx.media import ClipReadError, read_audio_file

    wav = _write_wav(tmp_path / "hostile.wav", 4_000_000, 0.05)
    with pytest.raises(ClipReadError) as e:
        read_audio_file(wav)
    msg = str(e.value)
    assert msg.startswith(str(wav)) and "4000000 Hz is over the 192000 Hz limit" in msg
    assert "--ltx-limits audio_hz=" in msg
    limits(audio_hz=4_000_000)
    audio, sr = read_audio_file(wav)
    assert sr == 4_000_000 and audio.shape[-1] == 200_000


def test_audio_longer_than_the_budget_is_refused_while_decoding(tmp_path: Path, limits) -> None:
    from pytest_ltx.media import ClipReadError, read_audio_file

    wav = _write_wav(tmp_path / "long.wav", 8000, 3.0)
    limits(audio_s=1)
    with pytest.raises(ClipReadError, match=r"over the 1 s limit.*audio_s="):
        read_audio_file(wav)


def test_avsync_analyses_high_rate_audio_at_48k(avsync_card) -> None:
    """A 4 MHz track used to cost minutes (STFT window and frame count both grow with the rate)."""
    from pytest_ltx.media import Clip
    from pytest_ltx.metrics import avsync

    clip, truth = avsync_card(25.0, 48000, 80.0)
    up = np.repeat(clip.audio, 20, axis=1)  # 960 kHz, same events
    hot = Clip(frames=clip.frames, fps=clip.fps, audio=up, sample_rate=960_000)
    r = avsync.analyze(hot)
    assert r.config["analysis_rate"] == 48000 and r.config["n_fft"] <= 512
    assert r.offset_ms is not None and abs(r.offset_ms - 80.0) < 15


def test_decoded_clip_over_the_budget_is_refused_before_decoding(tmp_path: Path, limits) -> None:
    from pytest_ltx.media import ClipReadError, read_clip
    from pytest_ltx.testcard import TestCardSpec, write

    mp4 = tmp_path / "c.mp4"
    write(TestCardSpec(width=256, height=256, frames=25, audio=None), mp4)
    limits(clip_mb=4)  # 25 × 256 × 256 × 3 = 4.7 MB
    with pytest.raises(ClipReadError) as e:
        read_clip(mp4)
    assert str(e.value).startswith(f"{mp4}: decoding 25 frames of 256x256 needs 5 MB, over the 4 MB limit")
    assert read_clip(mp4, max_side=128).num_frames == 25  # the downscale on decode fits


def _write_vfr(path: Path, durations_ms: list[int]) -> Path:
    import av

    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width = vs.height = 64
        vs.pix_fmt = "yuv420p"
        vs.time_base = Fraction(1, 1000)
        vs.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for i, d in enumerate(durations_ms):
            img = np.full((64, 64, 3), (i * 20) % 255, np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = pts
            f.time_base = Fraction(1, 1000)
            pts += d
            for pkt in vs.encode(f):
                out.mux(pkt)
        for pkt in vs.encode(None):
            out.mux(pkt)
    return path


def test_variable_frame_rate_is_refused_not_misread(tmp_path: Path) -> None:
    from pytest_ltx.media import ClipReadError, read_clip

    cfr = _write_vfr(tmp_path / "cfr.mp4", [40] * 12)
    assert read_clip(cfr, audio=False).num_frames == 12
    vfr = _write_vfr(tmp_path / "vfr.mp4", [40] * 5 + [120] + [40] * 6)
    with pytest.raises(ClipReadError) as e:
        read_clip(vfr, audio=False)
    msg = str(e.value)
    assert msg.startswith(str(vfr)) and "variable frame rate" in msg and "120.0 ms" in msg
    assert "fps_mode cfr" in msg


def test_written_clips_are_readable_by_others(tmp_path: Path) -> None:
    from pytest_ltx.testcard import TestCardSpec, write

    old = os.umask(0o022)
    try:
        mp4 = tmp_path / "c.mp4"
        write(TestCardSpec(width=64, height=64, frames=9, audio=None), mp4)
    finally:
        os.umask(old)
    assert stat.S_IMODE(mp4.stat().st_mode) == 0o644


# ------------------------------------------------------------------------------------ baseline npz


def _bomb_npz(mb: int) -> bytes:
    buf = io.BytesIO()
    member = io.BytesIO()
    np.lib.format.write_array(member, np.zeros(mb * 2**20, np.uint8))
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("structural.thumbnails.npy", member.getvalue())
    return buf.getvalue()


def test_npz_inflating_past_the_budget_is_refused_before_inflating(tmp_path: Path, monkeypatch, limits) -> None:
    from pytest_ltx.baseline import BaselineError, BaselineRecord
    from pytest_ltx.baseline.record import ARRAYS_FILE

    rec = BaselineRecord("specs/a/x", "testcard", arrays={"structural.thumbnails": np.zeros((2, 4, 4), np.uint8)})
    d = tmp_path / "rec"
    d.mkdir()
    for name, data in rec.files().items():
        (d / name).write_bytes(data)
    data = _bomb_npz(80)
    assert len(data) < 200_000  # 80 MB of zeros in < 200 kB
    (d / ARRAYS_FILE).write_bytes(data)
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load reached: the npz was inflated"))
    with pytest.raises(BaselineError) as e:
        BaselineRecord.read_dir(d)
    msg = str(e.value)
    assert msg.startswith(str(d / ARRAYS_FILE)) and "decompresses to 80 MB, over the 64 MB limit" in msg
    assert "--ltx-limits npz_mb=" in msg


def test_a_spec_asking_for_a_huge_clip_is_refused_before_drawing(pytester: pytest.Pytester) -> None:
    d = pytester.path / "specs"
    d.mkdir()
    (d / "huge.yaml").write_text(
        "clips:\n  - id: huge\n    testcard: {width: 4096, height: 4096, frames: 100000}\n"
        "    expect: {baseline: {enabled: false}, motion: {}}\n")
    t0 = time.perf_counter()
    r = pytester.runpytest_subprocess("specs/", "-p", "no:cacheprovider")
    r.assert_outcomes(errors=1)
    out = r.stdout.str()
    assert "specs/huge.yaml:2: testcard of 100000 frames at 4096x4096 decodes to 4800000 MB, over the 2048 MB" in out
    assert "nothing was drawn" in out and "--ltx-limits clip_mb=" in out and "Traceback" not in out
    assert time.perf_counter() - t0 < 120  # drawing it would take days
    assert not list((pytester.path / "ltx-report").rglob("*.mp4"))


@pytest.mark.parametrize(("ini", "expected"), [("NO", "False"), ("Yes", "True"), ("0", "False"),
                                               ("flase", "error"), ("off", "error")])
def test_ini_booleans_parse_strictly(pytester: pytest.Pytester, ini: str, expected: str) -> None:
    pytester.makeini(f"[pytest]\nltx_update_baselines = {ini}\n")
    pytester.makeconftest("""
        def pytest_collection_finish(session):
            from pytest_ltx.session import get_session
            print("UPDATE=%s" % get_session(session.config).settings.update_baselines)
    """)
    r = pytester.runpytest_subprocess("--co", "-s", "-p", "no:cacheprovider")
    if expected == "error":
        assert r.ret != 0
        assert f"ini ltx_update_baselines: expected a boolean (true/false/1/0/yes/no), got '{ini}'" in r.stderr.str()
    else:
        r.stdout.fnmatch_lines([f"*UPDATE={expected}*"])
