"""labelsieve.metrics: coverage, auto-labeling error, calibration and classification metrics.

Plotting helpers live in :mod:`labelsieve.metrics.plots` (imported on demand: matplotlib).
"""

from labelsieve.metrics.core import (
    PRF,
    ReliabilityCurve,
    accuracy,
    auto_labeling_error,
    confusion_matrix,
    coverage,
    expected_calibration_error,
    mae,
    precision_recall_f1,
    reliability_curve,
)

__all__ = [
    "PRF",
    "ReliabilityCurve",
    "accuracy",
    "auto_labeling_error",
    "confusion_matrix",
    "coverage",
    "expected_calibration_error",
    "mae",
    "precision_recall_f1",
    "reliability_curve",
]
