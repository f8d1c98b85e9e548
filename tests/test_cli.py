"""``pytest-ltx`` command line: evaluate (JSON and readable), schema, doctor, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_ltx.cli import main


@pytest.fixture(scope="module")
def cli_cut_card(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A test card with a cut at frame 24 and audio 120 ms late, written to mp4."""
    from pytest_ltx.testcard import TestCardSpec, write

    spec = TestCardSpec(width=192, height=160, frames=73, fps=24, seed=11, cuts=(24,),
                        audio={"sample_rate": 16000, "offset_ms": 120})
    path = tmp_path_factory.mktemp("cli") / "card.mp4"
    truth = write(spec, path)
    return path, truth.to_dict()


def test_evaluate_json_has_the_documented_sections(cli_cut_card, capsys) -> None:
    path, truth = cli_cut_card
    assert main(["evaluate", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["clip"] == {
        "frames": 73, "fps": 24.0, "width": 192, "height": 160, "duration_s": pytest.approx(73 / 24, abs=1e-4),
        "audio_sample_rate": 16000, "audio_channels": 2, "audio_duration_s": doc["clip"]["audio_duration_s"],
    }
    events = doc["motion"]["events"]
    assert [(e["kind"], e["start_frame"], e["end_frame"]) for e in events] == [("cut", 24, 24)]
    assert truth["cuts"][0]["frame"] == 24
    sync = doc["av_sync"]
    assert set(sync) >= {"offset_ms", "confidence", "status"}
    # the card has a cut, which is also a visual event; either a measured offset near +120 ms or an
    # honest "cannot measure" — never a confident wrong number
    if sync["offset_ms"] is not None and sync["confidence"] >= 0.3:
        assert sync["offset_ms"] == pytest.approx(120, abs=20)
    else:
        assert sync["status"] != "measured" or sync["confidence"] < 0.3


def test_evaluate_readable_summary(cli_cut_card, capsys) -> None:
    path, _ = cli_cut_card
    assert main(["evaluate", str(path), "--metrics", "motion"]) == 0
    out = capsys.readouterr().out
    assert "73 frames 192×160 @ 24 fps" in out and "16000 Hz audio" in out
    assert "cut" in out and "frames 24–24" in out
    assert "av_sync" not in out


def test_evaluate_unknown_metric_is_a_usage_error(cli_cut_card, capsys) -> None:
    path, _ = cli_cut_card
    assert main(["evaluate", str(path), "--metrics", "motion,vibes"]) == 2
    assert "unknown metric(s) vibes" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "reason"), [(b"", "empty"), (b"not a video at all" * 50, "not a readable")])
def test_evaluate_bad_file_names_it(tmp_path: Path, capsys, content: bytes, reason: str) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(content)
    assert main(["evaluate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and reason in err


def test_schema_prints_a_json_schema(capsys) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "clips" in schema["properties"]


def test_doctor_reports_each_piece(tmp_path: Path, monkeypatch, capsys) -> None:
    """This environment has everything the tiny model needs: every line is ok (or information) and the exit
    code says so."""
    monkeypatch.chdir(tmp_path)  # no pyproject: the embedded tiny profile only
    rc = main(["doctor"])
    out = capsys.readouterr().out
    for piece in ("torch", "diffusers", "OCR weights", "mp4 encoding", "model profiles", "device"):
        assert any(line[4:].startswith(piece) for line in out.splitlines()), (piece, out)
    lines = out.splitlines()
    assert lines and all(line.startswith(("ok  ", "--  ")) for line in lines), out
    assert rc == 0, out


def test_doctor_fails_on_a_broken_piece(tmp_path: Path, monkeypatch, capsys) -> None:
    """One unusable declared profile is a NO line and exit code 1, the rest still reported."""
    (tmp_path / "pyproject.toml").write_text('[tool.pytest-ltx.models.gone]\npath = "/nonexistent/ltx"\n')
    monkeypatch.chdir(tmp_path)
    rc = main(["doctor"])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert any(line.startswith("NO  gone:") for line in out.splitlines()), out
    assert "ok  torch" in out and "ok  mp4 encoding" in out


def test_doctor_reports_a_declared_checkpoints_variant_and_recipes(render_tiny_dir: Path, render_tiny_extras,
                                                                   tmp_path: Path, monkeypatch, capsys) -> None:
    """A declared checkpoint: where it is, which LTX-2 generation (and the evidence), which recipes it can
    render and what is missing; a declared variant that contradicts the checkpoint is a NO line."""
    (tmp_path / "pyproject.toml").write_text(f"""
[tool.pytest-ltx.models.full]
path = "{render_tiny_dir}"
device = "cpu"
upsampler = "{render_tiny_extras['upsampler']}"
distilled_lora = {{path = "{render_tiny_extras['distilled_lora']}", scale = 1.0}}

[tool.pytest-ltx.models.bare]
path = "{render_tiny_dir}"
recipe = "two-stage"

[tool.pytest-ltx.models.wrong]
path = "{render_tiny_dir}"
variant = "2.0"
""")
    monkeypatch.chdir(tmp_path)
    rc = main(["doctor"])
    out = capsys.readouterr().out
    assert "ok  full: variant" in out and "LTX-2.3 (detected: text_encoder/config.json: model_type=gemma3" in out
    assert "full: reference" in out and "30 steps, STG blocks [28], cross-timestep on, image CRF 33" in out
    for recipe in ("dev", "distilled", "two-stage"):
        assert f"ok  full: recipe {recipe}" in out
    # the default recipe of `bare` cannot run: a failing line naming both missing pieces
    assert "NO  bare: recipe two-stage" in out and "latent upsampler" in out and "distilled LoRA" in out
    assert "--  bare: recipe distilled" in out  # not its default: information only
    assert "NO  wrong: variant" in out and "declares variant '2.0', but the checkpoint is LTX-2.3" in out
    assert rc == 1
