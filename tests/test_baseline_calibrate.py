"""Calibration: mean and σ per metric from N runs, k·σ tolerances with a floor, and the point of it all —
the gate lets run-to-run noise through and stops a real regression."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_ltx.baseline.calibrate import calibrate_records, calibration_seeds, derived_tolerance, spread_of
from pytest_ltx.baseline.compare import compare
from pytest_ltx.baseline.record import BaselineRecord
from pytest_ltx.expect import BaselineExpect

ITEM = "specs/robots/robot-dance[seed=1]"
MODEL = "tiny-0123456789ab"


def test_spread_of_small_exact_example() -> None:
    cal = spread_of([{"m.x": 1.0, "m.n": 2}, {"m.x": 2.0, "m.n": 2}, {"m.x": 3.0, "m.n": 2}, {"m.x": 4.0, "m.n": 2}])
    assert cal.runs == 4
    assert cal.scalars == {"m.n": 2, "m.x": 2.5}
    assert isinstance(cal.scalars["m.n"], int)
    assert cal.spread["m.x"] == pytest.approx(math.sqrt(5 / 3), rel=1e-5)  # ddof=1
    assert cal.spread["m.n"] == 0.0


def test_spread_of_known_distribution() -> None:
    rng = np.random.default_rng(42)
    runs = [{"motion.flicker_score": float(v), "av_sync.offset_ms": float(w)}
            for v, w in zip(rng.normal(0.02, 0.0025, 4000), rng.normal(-10.0, 8.0, 4000))]
    cal = spread_of(runs)
    assert cal.scalars["motion.flicker_score"] == pytest.approx(0.02, abs=0.0002)
    assert cal.spread["motion.flicker_score"] == pytest.approx(0.0025, rel=0.05)
    assert cal.scalars["av_sync.offset_ms"] == pytest.approx(-10.0, abs=0.5)
    assert cal.spread["av_sync.offset_ms"] == pytest.approx(8.0, rel=0.05)


def test_spread_of_mixed_kinds() -> None:
    cal = spread_of([
        {"m.cuts": 0, "m.flag": True, "m.offset": 10.0, "m.once": 1.0},
        {"m.cuts": 1, "m.flag": True, "m.offset": None},
        {"m.cuts": 0, "m.flag": False, "m.offset": 14.0, "m.nan": float("nan")},
    ])
    assert cal.scalars["m.cuts"] == pytest.approx(1 / 3, abs=1e-6) and cal.spread["m.cuts"] > 0
    assert cal.scalars["m.flag"] is True and "m.flag" not in cal.spread
    assert cal.scalars["m.offset"] == 12.0 and cal.metrics["m.offset"].n == 2
    assert cal.scalars["m.once"] == 1.0 and "m.once" not in cal.spread  # one value says nothing about noise
    assert cal.scalars["m.nan"] is None
    assert cal.unstable == ["m.offset", "m.once"]
    assert cal.to_dict()["runs"] == 3


def test_calibration_seeds() -> None:
    assert calibration_seeds(7, 3) == [7, 7, 7]
    assert calibration_seeds(7, 3, neighbouring=True) == [7, 8, 9]
    with pytest.raises(ValueError):
        calibration_seeds(0, 0)


def test_derived_tolerance() -> None:
    assert derived_tolerance(0.0025, 4, 0.002) == pytest.approx(0.01)
    assert derived_tolerance(0.0, 4, 0.002) == 0.002
    with pytest.raises(ValueError):
        derived_tolerance(-1, 4, 0)


def _run(seed: int, flicker: float, offset: float) -> BaselineRecord:
    return BaselineRecord(
        ITEM, MODEL,
        scalars={"motion.flicker_score": flicker, "av_sync.offset_ms": offset, "motion.cuts": 0},
        arrays={"clip_embeddings": np.eye(2, 8) * (seed + 1)},
        keyframe_frames=[0, 24],
        provenance={"seed": seed, "steps": 8},
    )


def test_calibrate_records_merges_runs() -> None:
    runs = [_run(s, f, o) for s, f, o in [(1, 0.010, 5.0), (2, 0.014, 9.0), (3, 0.012, 7.0)]]
    rec = calibrate_records(runs)
    assert rec.samples == 3
    assert rec.scalars == {"av_sync.offset_ms": 7.0, "motion.cuts": 0, "motion.flicker_score": 0.012}
    assert rec.spread["motion.flicker_score"] == pytest.approx(0.002)
    assert rec.spread["av_sync.offset_ms"] == pytest.approx(2.0)
    assert rec.spread["motion.cuts"] == 0.0
    assert rec.provenance["calibration"] == {"runs": 3, "seeds": [1, 2, 3]}
    np.testing.assert_array_equal(rec.arrays["clip_embeddings"], runs[0].arrays["clip_embeddings"])
    with pytest.raises(ValueError, match="different items"):
        calibrate_records([runs[0], BaselineRecord("specs/other/x", MODEL)])
    with pytest.raises(ValueError):
        calibrate_records([])


def test_calibrated_gate_passes_noise_and_stops_a_regression() -> None:
    """σ=0.0025 run-to-run noise on a flicker score: 20 calibration runs, then 500 fresh noise runs must
    (almost) all pass, and a +0.03 regression (12σ) must always fail — where the fixed default (±0.01)
    would have flagged noisy runs only by luck and let a 0.009 drift through silently."""
    rng = np.random.default_rng(7)
    sigma, mean = 0.0025, 0.02
    runs = [_run(1, float(v), 0.0) for v in rng.normal(mean, sigma, 20)]
    base = calibrate_records(runs)
    expect = BaselineExpect(sigma_k=4)

    def fails(value: float) -> bool:
        cur = BaselineRecord(ITEM, MODEL, scalars={"motion.flicker_score": value, "av_sync.offset_ms": 0.0,
                                                   "motion.cuts": 0})
        return not compare(cur, base, expect).ok

    noise = rng.normal(mean, sigma, 500)
    false_alarms = sum(fails(float(v)) for v in noise)
    assert false_alarms <= 5  # ≤ 1 %
    assert all(fails(float(v) + 0.03) for v in noise[:50])
    # deterministic metrics (σ = 0 here: offset and cuts) are gated at their floor, not at zero
    assert not compare(BaselineRecord(ITEM, MODEL, scalars={**base.scalars, "motion.cuts": 1}), base, expect).ok
    assert compare(BaselineRecord(ITEM, MODEL, scalars={**base.scalars, "av_sync.offset_ms": 4.0}), base, expect).ok
    assert not compare(BaselineRecord(ITEM, MODEL, scalars={**base.scalars, "av_sync.offset_ms": 6.0}), base, expect).ok
