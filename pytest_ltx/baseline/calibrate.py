"""Calibration: render an item N times, measure each metric's run-to-run spread, gate on k·σ.

A fixed tolerance is either too tight for a metric that wobbles between runs (flaky CI) or too loose for
one that never moves (regressions slip through). With ``--ltx-calibrate N`` each item is rendered N times
(same seed on a nondeterministic GPU, or neighbouring seeds), and the baseline stores the mean of each
scalar and its sample standard deviation σ. The gate then allows ``max(floor, k·σ)``: the floor keeps a
perfectly deterministic metric (σ = 0) from failing on rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from .record import BaselineRecord, round_sig

__all__ = ["MetricSpread", "Calibration", "calibration_seeds", "spread_of", "calibrate_records", "derived_tolerance"]


@dataclass(frozen=True)
class MetricSpread:
    """One metric over N runs. ``values`` keeps None for runs where it was unmeasurable."""

    key: str
    values: tuple[float | int | bool | None, ...]
    mean: float | int | bool | None
    sigma: float | None
    #: runs in which the metric had a number
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "values": list(self.values), "mean": self.mean, "sigma": self.sigma, "n": self.n}


@dataclass(frozen=True)
class Calibration:
    metrics: dict[str, MetricSpread] = field(default_factory=dict)
    runs: int = 0

    @property
    def scalars(self) -> dict[str, float | int | bool | None]:
        return {k: m.mean for k, m in self.metrics.items()}

    @property
    def spread(self) -> dict[str, float]:
        return {k: m.sigma for k, m in self.metrics.items() if m.sigma is not None}

    @property
    def unstable(self) -> list[str]:
        """Metrics that were a number in some runs and unmeasurable in others: no σ can describe that."""
        return sorted(k for k, m in self.metrics.items() if 0 < m.n < self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
                "unstable": self.unstable}


def calibration_seeds(seed: int, n: int, *, neighbouring: bool = False) -> list[int]:
    """Seeds of the N calibration runs: the same seed N times (measures nondeterminism), or ``seed,
    seed+1, …`` (also measures how much the metric depends on the seed)."""
    if n < 1:
        raise ValueError("calibration needs at least one run")
    return [seed + i for i in range(n)] if neighbouring else [seed] * n


def spread_of(samples: Sequence[Mapping[str, Any]]) -> Calibration:
    """Mean and sample σ (ddof=1) per metric key over N runs' scalar dicts.

    A metric missing or None in some runs is kept with the runs that measured it (and listed as
    ``unstable``). Integers stay integers when every run agrees; booleans keep the majority value and get
    no σ; a metric measured in fewer than two runs gets no σ (a single value says nothing about noise).
    """
    keys = sorted({k for s in samples for k in s})
    metrics: dict[str, MetricSpread] = {}
    for key in keys:
        raw = tuple(_plain(s.get(key)) for s in samples)
        nums = [v for v in raw if isinstance(v, (int, float)) and not isinstance(v, bool)]
        bools = [v for v in raw if isinstance(v, bool)]
        if bools and not nums:
            majority = sum(bools) * 2 >= len(bools)
            metrics[key] = MetricSpread(key, raw, majority, None, len(bools))
            continue
        if not nums:
            metrics[key] = MetricSpread(key, raw, None, None, 0)
            continue
        n = len(nums)
        mean = math.fsum(nums) / n
        if n < 2:
            sigma = None
        elif len(set(nums)) == 1:
            sigma = 0.0  # identical runs: exactly no spread (the float mean would leave ~1e-16)
        else:
            sigma = math.sqrt(math.fsum((v - mean) ** 2 for v in nums) / (n - 1))
        if all(isinstance(v, int) for v in nums) and len(set(nums)) == 1:
            value: float | int = nums[0]
        else:
            value = round_sig(mean)
        metrics[key] = MetricSpread(key, raw, value, None if sigma is None else round_sig(sigma), n)
    return Calibration(metrics, len(samples))


def calibrate_records(records: Sequence[BaselineRecord]) -> BaselineRecord:
    """Merge N runs of one item into one calibrated baseline.

    Scalars become the means, ``spread`` the σ, ``samples`` N. Arrays, keyframes and thumbnails come from
    the first run (the representative one: the item's own seed); the provenance records every run's seed.
    """
    if not records:
        raise ValueError("no runs to calibrate from")
    first = records[0]
    for r in records[1:]:
        if r.key != first.key:
            raise ValueError(f"calibration runs of different items: {first.key} vs {r.key}")
    cal = spread_of([r.scalars for r in records])
    seeds = [r.provenance.get("seed") for r in records]
    provenance = dict(first.provenance)
    provenance["calibration"] = {"runs": len(records), "seeds": seeds}
    if cal.unstable:
        provenance["calibration"]["unstable"] = cal.unstable
    return replace(first, scalars=cal.scalars, spread=cal.spread, samples=len(records), provenance=provenance)


def derived_tolerance(sigma: float, k: float, floor: float) -> float:
    """``max(floor, k·σ)``: the calibrated allowance for one metric."""
    if sigma < 0 or k <= 0 or floor < 0:
        raise ValueError("σ and floor must be ≥ 0 and k > 0")
    return max(floor, k * sigma)


def _plain(v: Any) -> Any:
    """numpy scalars → Python; NaN/inf → None (unmeasurable)."""
    if hasattr(v, "item") and not isinstance(v, (bool, int, float)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
