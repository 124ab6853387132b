"""All certification math, on NumPy and SciPy only (no scikit-learn, pandas or torch).

* :mod:`~labelsieve.guarantees.bounds` -- binomial upper bounds as objects in one registry
  (``BOUNDS``, :func:`register_bound`, :func:`get_bound`);
* :mod:`~labelsieve.guarantees.scan` -- the one fixed-sequence scan, fed by evidence (error counts,
  or Poisson-binomial quantiles of the true errors);
* :mod:`~labelsieve.guarantees.scope` -- global vs per-class thresholds (Bonferroni split of delta);
* :mod:`~labelsieve.guarantees.certificate` -- the :class:`Certificate` every guarantee returns;
* :mod:`~labelsieve.guarantees.certify` / :mod:`~labelsieve.guarantees.noisy` -- the certifiers
  for true and for noisy validation labels.

Layering (asserted by ``tests/test_layers.py``): this package imports only itself and the pure
modules :mod:`labelsieve.errors` and :mod:`labelsieve._validation`.
"""

from labelsieve.guarantees.bounds import (
    BOUNDS,
    GUARANTEED_BOUNDS,
    HEURISTIC_BOUNDS,
    TBAL_C1,
    Bound,
    ClopperPearson,
    Hoeffding,
    Sigma,
    TBALHoeffding,
    bound_choices,
    get_bound,
    min_points_for_errors,
    min_points_for_zero_errors,
    passes,
    register_bound,
    unregister_bound,
    upper_bound,
)
from labelsieve.guarantees.certificate import GUARANTEES, Certificate
from labelsieve.guarantees.certify import certify_thresholds, check_certify_inputs
from labelsieve.guarantees.noisy import (
    NoiseAwareCertifier,
    PoissonBinomialEvidence,
    certify_thresholds_noisy,
    error_probabilities,
    expected_wrong_labels,
    noisy_upper_bound,
    poisson_binomial_pmf,
    poisson_binomial_quantile,
    prefix_quantiles,
)
from labelsieve.guarantees.scan import (
    SCANS,
    TBAL_MIN_N,
    CountEvidence,
    Evidence,
    ScanResult,
    resolve_min_n,
    scan_sorted,
    scan_threshold,
)
from labelsieve.guarantees.scope import SCOPES, delta_per_test, scan_by_scope

__all__ = [
    "BOUNDS",
    "GUARANTEED_BOUNDS",
    "GUARANTEES",
    "HEURISTIC_BOUNDS",
    "SCANS",
    "SCOPES",
    "TBAL_C1",
    "TBAL_MIN_N",
    "Bound",
    "Certificate",
    "ClopperPearson",
    "CountEvidence",
    "Evidence",
    "Hoeffding",
    "NoiseAwareCertifier",
    "PoissonBinomialEvidence",
    "ScanResult",
    "Sigma",
    "TBALHoeffding",
    "bound_choices",
    "certify_thresholds",
    "certify_thresholds_noisy",
    "check_certify_inputs",
    "delta_per_test",
    "error_probabilities",
    "expected_wrong_labels",
    "get_bound",
    "min_points_for_errors",
    "min_points_for_zero_errors",
    "noisy_upper_bound",
    "passes",
    "poisson_binomial_pmf",
    "poisson_binomial_quantile",
    "prefix_quantiles",
    "register_bound",
    "resolve_min_n",
    "scan_by_scope",
    "scan_sorted",
    "scan_threshold",
    "unregister_bound",
    "upper_bound",
]
