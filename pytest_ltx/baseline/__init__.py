"""Golden baselines: a small reviewable record per clip item and model, compared with tolerance.

``record``: the record and its on-disk form; ``store``: read, queue, flush atomically, unused, prune;
``compare``: tolerances and every baseline-relative measurement (per-keyframe CLIP cosine, SSIM, audio
spectra, the paired prompt-score drop) → outcomes; ``keyframes``: the one keyframe-alignment policy they
all use (by timestamp); ``calibrate``: run-to-run spread.
"""

from __future__ import annotations

from .calibrate import Calibration, MetricSpread, calibrate_records, calibration_seeds, derived_tolerance, spread_of
from .compare import (
    DEFAULT_TOLERANCES,
    ArrayCheck,
    ArrayKind,
    BaselineComparison,
    DeltaKind,
    MetricDelta,
    PromptScoreDelta,
    Tolerance,
    ToleranceSource,
    compare,
    environment_diff,
    missing_outcome,
    resolve_tolerance,
    structural_similarity,
    unmeasured_outcomes,
)
from .keyframes import KeyframeAlignment, KeyframePair, align_keyframes
from .record import (
    BaselineError,
    BaselineRecord,
    collect_environment,
    make_item_key,
    make_model_key,
    make_structural_thumbs,
    make_thumbnails,
    storable_scalars,
)
from .store import BaselineChange, BaselineStore, ChangeKind, MetricMove, UpdateSummary

__all__ = [
    "ArrayCheck",
    "ArrayKind",
    "BaselineChange",
    "BaselineComparison",
    "BaselineError",
    "BaselineRecord",
    "BaselineStore",
    "Calibration",
    "ChangeKind",
    "KeyframeAlignment",
    "KeyframePair",
    "DEFAULT_TOLERANCES",
    "DeltaKind",
    "MetricDelta",
    "MetricMove",
    "MetricSpread",
    "PromptScoreDelta",
    "Tolerance",
    "ToleranceSource",
    "UpdateSummary",
    "align_keyframes",
    "calibrate_records",
    "calibration_seeds",
    "collect_environment",
    "compare",
    "derived_tolerance",
    "environment_diff",
    "make_item_key",
    "make_model_key",
    "make_structural_thumbs",
    "make_thumbnails",
    "missing_outcome",
    "resolve_tolerance",
    "spread_of",
    "storable_scalars",
    "structural_similarity",
    "unmeasured_outcomes",
]
