"""Thresholds with an error guarantee: the certifier TBAL uses (a thin alias of :mod:`labelsieve.guarantees`).

The math lives in :mod:`labelsieve.guarantees` (bounds as registered objects, the fixed-sequence
scan, the scope/delta split, the :class:`~labelsieve.guarantees.certificate.Certificate`); this
module keeps the names every caller imported from here.

>>> from labelsieve.guarantees import certify_thresholds as pure
>>> certify_thresholds is pure
True
"""

from __future__ import annotations

from labelsieve.guarantees.bounds import (
    BOUNDS,
    GUARANTEED_BOUNDS,
    HEURISTIC_BOUNDS,
    TBAL_C1,
    Bound,
    get_bound,
    min_points_for_errors,
    min_points_for_zero_errors,
    passes,
    register_bound,
    upper_bound,
)
from labelsieve.guarantees.certificate import Certificate
from labelsieve.guarantees.certify import certify_thresholds, check_certify_inputs
from labelsieve.guarantees.scan import (
    SCANS,
    TBAL_MIN_N,
    ScanResult,
    resolve_min_n,
    scan_sorted,
    scan_threshold,
)
from labelsieve.guarantees.scope import SCOPES, scan_by_scope

__all__ = [
    "BOUNDS",
    "GUARANTEED_BOUNDS",
    "HEURISTIC_BOUNDS",
    "SCANS",
    "SCOPES",
    "TBAL_C1",
    "TBAL_MIN_N",
    "Bound",
    "Certificate",
    "ScanResult",
    "certify_thresholds",
    "check_certify_inputs",
    "get_bound",
    "min_points_for_errors",
    "min_points_for_zero_errors",
    "passes",
    "register_bound",
    "resolve_min_n",
    "scan_by_scope",
    "scan_sorted",
    "scan_threshold",
    "upper_bound",
]
