"""Conformal labeling: auto-labels whose wrong-label rate is controlled IN EXPECTATION (FDR).

Huang, Liao, Xi, Zeng, Zhao & Wei, "Selective Labeling with False Discovery Rate Control"
(v2: "Model-agnostic Selective Labeling with Provable Statistical Guarantees"), arXiv:2510.14581,
2025, built on conformal selection (Jin & Candès, "Selection by Prediction with Conformal p-values",
JMLR 24, 2023, arXiv:2210.01408).

What it promises, and what it does not
--------------------------------------
For a calibration set of labeled items and a pool of unlabeled items, all exchangeable (e.g. i.i.d.
from one distribution), the selected (auto-labeled) set S satisfies

    FDR = E[ #{j in S : model label of j is wrong} / max(|S|, 1) ] <= epsilon          (C3)

The expectation is over the draw of the calibration set AND the pool. It is NOT a high-probability
bound: in a single run the realised wrong-label share of S can exceed epsilon (it often does, in
roughly half the runs when the bound is tight). It is cheaper than the subset guarantee of TBAL
(P(error of S <= epsilon) >= 1 - delta) and than PAC labeling's guarantee on the whole data set, and
weaker than both. Every result here says so (:attr:`ConformalResult.guarantee`, :meth:`statement`).

The construction (the stored copy of arXiv:2510.14581 holds only its abstract and introduction, so
the equation labels C1-C3 below are this module's own; the construction is the standard conformal
selection with the clipped score, which is what the abstract describes: "a conformal p-value for
each test instance by comparing the AI model's predicted confidence to those of calibration
instances mislabeled by the AI model", then "instances whose p-values are below a data-dependent
threshold", i.e. Benjamini-Hochberg):

* Null hypothesis of pool item j: H_j = "the model's label of j is wrong".
* Conformal p-value (Jin & Candès 2023, Sec. 2, clipped score V(x, a) = M 1{a = correct} - conf(x),
  deterministic tie handling):

      p_j = (1 + #{i in calibration : wrong_i and conf_i >= conf_j}) / (n + 1)          (C1)

  Correct calibration items never count (their clipped score is above every null score). When j is
  wrong, p_j equals the rank p-value of j among the n + 1 exchangeable scores, so
  P(p_j <= t, H_j true) <= t.
* Benjamini-Hochberg at level epsilon over the m pool items (Benjamini & Hochberg 1995):

      k* = max{k : p_(k) <= epsilon k / m},  S = {j : p_j <= epsilon k* / m}            (C2)

  With the clipped (monotone) score the p-values are dependent but BH still controls the FDR at
  epsilon (Jin & Candès 2023, the FDR theorem for monotone scores of Sec. 2).

p_j is non-increasing in conf_j, so S is always "every pool item with confidence >= a cut": a
threshold rule, like TBAL's, chosen by a different (expectation) criterion. Note that the null
p-values are NOT uniform conditionally on H_j (their scale is n_wrong / n), so BH here is not
conservative by the error rate: the FDR is close to epsilon when many items are selected.

Everything is vectorised: one sort of the wrong calibration confidences, one ``searchsorted`` for
the pool, one sort of the pool p-values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelsieve._validation import check_open_unit
from labelsieve.errors import InputError, NotEnoughDataError

GUARANTEE = "expected"
#: One line every output carries: what conformal labeling does and does not promise.
GUARANTEE_NOTE = (
    "expected wrong-label rate (FDR) among auto-labeled items <= epsilon, averaged over random "
    "calibration and pool draws; NOT a high-probability bound: a single run may exceed epsilon"
)


def _conf_array(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise InputError(f"{name} must be 1-D; got shape {a.shape}.")
    bad = ~np.isfinite(a)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise InputError(f"{name}[{r}] = {a[r]} is not finite.")
    return a


def conformal_pvalues(cal_confidence: np.ndarray, cal_wrong: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Conformal p-values of "the model label is wrong" for each pool item (eq. C1).

    Parameters
    ----------
    cal_confidence : array of shape (n,)
        Model confidence of the calibration items.
    cal_wrong : bool array of shape (n,)
        True where the model's prediction of a calibration item disagrees with its human label.
    confidence : array of shape (m,)
        Model confidence of the pool items.

    Returns
    -------
    array of shape (m,) with values in {1/(n+1), ..., (n_wrong+1)/(n+1)}.

    >>> conformal_pvalues([0.9, 0.8, 0.7, 0.6], [False, True, False, True], [0.85, 0.8, 0.65, 0.5]).tolist()
    [0.2, 0.4, 0.4, 0.6]
    """
    cal = _conf_array(cal_confidence, "cal_confidence")
    wrong = np.asarray(cal_wrong, dtype=bool)
    if wrong.shape != cal.shape:
        raise InputError(f"cal_wrong has shape {wrong.shape}; expected {cal.shape}, one flag per calibration item.")
    conf = _conf_array(confidence, "confidence")
    w = np.sort(cal[wrong])
    # number of wrong calibration items with conf_i >= conf_j (ties count: conservative)
    at_least = len(w) - np.searchsorted(w, conf, side="left")
    return (1.0 + at_least) / (len(cal) + 1.0)  # eq. C1


def bh_select(pvalues: np.ndarray, level: float) -> np.ndarray:
    """Benjamini-Hochberg at ``level``: boolean mask of the rejected hypotheses (eq. C2).

    >>> bh_select(np.array([0.01, 0.04, 0.03, 0.5]), 0.1).tolist()    # p_(3) = 0.04 <= 0.1 * 3 / 4
    [True, True, True, False]
    >>> bh_select(np.array([0.2, 0.3]), 0.1).tolist()
    [False, False]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    if m == 0:
        return np.zeros(0, dtype=bool)
    ps = np.sort(p)
    ok = ps <= level * np.arange(1, m + 1) / m
    if not ok.any():
        return np.zeros(m, dtype=bool)
    k = int(np.flatnonzero(ok)[-1]) + 1  # k* of eq. C2
    return p <= level * k / m


def min_calibration_size(epsilon: float) -> int:
    """Fewest calibration items with which anything can be selected: 1/(n+1) <= epsilon.

    (BH needs p_(k) <= epsilon k / m for some k <= m, and the smallest p-value is 1/(n+1).)

    >>> min_calibration_size(0.05)
    19
    """
    return max(1, math.ceil(1.0 / epsilon - 1.0 - 1e-12))


@dataclass(frozen=True)
class ConformalResult:
    """Outcome of :func:`conformal_label` on one pool.

    ``selected``: mask of the pool items that keep the model's label (auto-labeled).
    ``threshold``: the lowest selected confidence (``+inf`` when nothing is selected); every pool
    item with confidence >= threshold is selected.
    """

    selected: np.ndarray
    pvalues: np.ndarray
    threshold: float
    epsilon: float
    n_calibration: int
    n_calibration_wrong: int
    guarantee: str = GUARANTEE

    @property
    def coverage(self) -> float:
        """Share of the pool that is auto-labeled."""
        return float(self.selected.mean()) if len(self.selected) else 0.0

    @property
    def guaranteed(self) -> bool:
        """False: the promise is on the expected rate only (kept as a bool so reports can compare)."""
        return False

    def statement(self) -> str:
        return (
            f"conformal labeling (Huang et al. 2025): {int(self.selected.sum())} of {len(self.selected)} pool items "
            f"auto-labeled (confidence >= {self.threshold:.6g}) from {self.n_calibration} calibration labels "
            f"({self.n_calibration_wrong} wrong); promise: {GUARANTEE_NOTE} (epsilon={self.epsilon:g}); "
            "assumes calibration and pool items are exchangeable and human labels are correct"
        )


def conformal_label(
    cal_predicted: np.ndarray,
    cal_confidence: np.ndarray,
    cal_y: np.ndarray,
    confidence: np.ndarray,
    *,
    epsilon: float = 0.05,
) -> ConformalResult:
    """Choose the pool items whose model labels are kept, with FDR <= epsilon in expectation (C1-C3).

    Parameters
    ----------
    cal_predicted, cal_confidence, cal_y : arrays of shape (n,)
        Model prediction, confidence and human label of each calibration item (any comparable
        label values).
    confidence : array of shape (m,)
        Model confidence of the pool items (their predictions are not needed).
    epsilon : float in (0, 1)

    Returns
    -------
    ConformalResult

    >>> r = conformal_label([0, 1, 1, 0], [0.9, 0.8, 0.7, 0.6], [0, 0, 1, 1], [0.95, 0.85, 0.65], epsilon=0.5)
    >>> r.pvalues.tolist(), r.selected.tolist(), r.guarantee
    ([0.2, 0.2, 0.4], [True, True, True], 'expected')
    """
    epsilon = check_open_unit("epsilon", epsilon, owner="conformal_label")
    pred = np.asarray(cal_predicted)
    y = np.asarray(cal_y)
    cal = _conf_array(cal_confidence, "cal_confidence")
    if not (pred.shape == y.shape == cal.shape):
        raise InputError(
            f"cal_predicted {pred.shape}, cal_confidence {cal.shape} and cal_y {y.shape} must have equal length."
        )
    wrong = pred != y
    return _select(cal, wrong, _conf_array(confidence, "confidence"), epsilon)


def _select(cal: np.ndarray, wrong: np.ndarray, conf: np.ndarray, epsilon: float) -> ConformalResult:
    p = conformal_pvalues(cal, wrong, conf)
    sel = bh_select(p, epsilon)
    thr = float(conf[sel].min()) if sel.any() else math.inf
    return ConformalResult(sel, p, thr, epsilon, len(cal), int(wrong.sum()))


def conformal_coverage_sorted(
    pool_sorted_desc: np.ndarray, cal_confidence: np.ndarray, cal_wrong: np.ndarray, epsilon: float
) -> int:
    """Number of pool items conformal labeling selects, for a pool already sorted by decreasing
    confidence (the fast path the planner uses; same answer as ``conformal_label(...).selected.sum()``).

    >>> conformal_coverage_sorted(np.array([0.95, 0.85, 0.65]), np.array([0.9, 0.8, 0.7, 0.6]),
    ...                           np.array([False, True, False, True]), 0.5)
    3
    """
    m = len(pool_sorted_desc)
    if m == 0:
        return 0
    p = conformal_pvalues(cal_confidence, cal_wrong, pool_sorted_desc)  # non-decreasing along the pool
    ok = p <= epsilon * np.arange(1, m + 1) / m
    if not ok.any():
        return 0
    k = int(np.flatnonzero(ok)[-1]) + 1
    return int(np.searchsorted(p, epsilon * k / m, side="right"))


class ConformalLabeler:
    """Conformal labeling (Huang et al. 2025) in scikit-learn style.

    ``fit`` stores the calibration items (human labels); ``select`` applies eq. C1-C2 to a pool.

    Parameters
    ----------
    epsilon : float in (0, 1)
        Bound on the EXPECTED share of wrong model labels among the auto-labeled items (FDR). Not a
        high-probability bound: see the module docstring.

    Attributes
    ----------
    cal_confidence_, cal_wrong_ : the calibration confidences and wrong-prediction flags
    result_ : ConformalResult of the last :meth:`select`

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> conf = rng.uniform(0.5, 1.0, 3000); wrong = rng.random(3000) > conf   # calibrated model
    >>> lab = ConformalLabeler(epsilon=0.1).fit(np.zeros(500), conf[:500], wrong[:500].astype(int))
    >>> r = lab.select(conf[500:])
    >>> bool(0.0 < r.coverage < 1.0), r.guarantee
    (True, 'expected')
    """

    def __init__(self, epsilon: float = 0.05) -> None:
        self.epsilon = epsilon

    def fit(self, predicted: np.ndarray, confidence: np.ndarray, y: np.ndarray) -> ConformalLabeler:
        check_open_unit("epsilon", self.epsilon, owner=type(self).__name__)
        pred, yy = np.asarray(predicted), np.asarray(y)
        conf = _conf_array(confidence, "confidence")
        if not (pred.shape == yy.shape == conf.shape):
            raise InputError(f"predicted {pred.shape}, confidence {conf.shape} and y {yy.shape} must have equal length.")
        if len(conf) < min_calibration_size(self.epsilon):
            raise NotEnoughDataError(
                f"{len(conf)} calibration labels: conformal labeling at epsilon={self.epsilon:g} needs at least "
                f"{min_calibration_size(self.epsilon)} to select anything (smallest p-value 1/(n+1) <= epsilon)."
            )
        self.cal_confidence_ = conf
        self.cal_wrong_ = pred != yy
        return self

    def select(self, confidence: np.ndarray) -> ConformalResult:
        self.result_ = _select(self.cal_confidence_, self.cal_wrong_, _conf_array(confidence, "confidence"),
                               float(self.epsilon))
        return self.result_
