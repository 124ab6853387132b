"""The price of each guarantee: a budget planner from a pilot sample of human labels.

Three ways to keep a model's labels, three promises, three prices (epsilon = target error):

* ``tbal`` (subset guarantee, TBAL): m human labels certify a confidence threshold; with
  probability >= 1 - delta the error rate among the auto-labeled items is <= epsilon (Clopper-Pearson,
  fixed-sequence scan: :func:`labelsieve.guarantees.scan_threshold`). The rest of the pool stays
  unlabeled. Coverage = auto-labeled / pool.
* ``pac`` (whole-data-set guarantee, PAC labeling, Candès, Ilyas & Zrnic 2025): an audit of m draws
  picks an uncertainty threshold; items above it go to humans; with probability >= 1 - delta the
  share of wrong labels in the FINAL data set (human + model labels, all items) is <= epsilon
  (:mod:`labelsieve.guarantees.pac`). Coverage = "saved" = model-labeled / pool; humans label the rest.
* ``conformal`` (expected guarantee, conformal labeling, Huang et al. 2025): m calibration labels give
  conformal p-values and Benjamini-Hochberg selects; only the EXPECTED wrong-label share among the
  auto-labeled items is <= epsilon (:mod:`labelsieve.guarantees.conformal`). Cheaper, weaker.

The planner estimates, for the user's own pool and model, each procedure's coverage as a function of
m, the human labels spent on the validation / audit / calibration sample.

How the estimate is made (:func:`simulate_coverage`)
----------------------------------------------------
One replicate b = 1..B:

1. resample the pilot with replacement (bootstrap);
2. fit the error-vs-confidence curve g_b(c) = P(model wrong | confidence c) on the resample
   (:func:`error_curve`: isotonic, non-increasing in c, each block shrunk toward the model's own
   stated error 1 - c with ``prior_strength`` pseudo-items, linear between block centres);
3. draw the m human-labeled items as a real run would (uniform without replacement for tbal and
   conformal; the PAC audit with replacement from its sampling distribution), give them simulated
   wrong flags ~ Bernoulli(g_b(confidence)), run the procedure on the real pool's confidences and
   record its coverage. Budgets are nested within a replicate (the first m of one draw), so the
   curves are comparable across m.

The point estimate at m is the median over replicates, the interval the central ``level``
percentile interval; ``mean`` is the average (the expected coverage).

What the interval means, and its limits
---------------------------------------
[low, high] is an approximate ``level`` PREDICTION interval for the coverage of ONE future run of
the procedure on this pool with m fresh human labels: it spreads over both the pilot's estimation
error (bootstrap) and the run's own randomness (which items get labeled). It is not a confidence
interval for the expected coverage and not a guarantee (only the procedures themselves carry
guarantees). It assumes: the pilot is a uniform random sample of the pool; the model is fixed
(single-round runs: a TBAL run that retrains between rounds will usually do better); human labels
are correct; the error depends on the data through the confidence only. The pilot cannot show
errors at confidences it never reached; with very few pilot errors the curve leans on the model's
stated confidence. How often it covers real runs is measured in ``benchmarks/plan_calibration.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import isotonic_regression

from labelsieve._validation import check_interval, check_open_unit, check_option, check_positive_int
from labelsieve.errors import InputError, NotEnoughDataError
from labelsieve.guarantees import conformal as _conformal
from labelsieve.guarantees import pac as _pac
from labelsieve.guarantees.scan import scan_threshold as _scan_threshold

PROCEDURES = ("tbal", "pac", "conformal")
#: guarantee strength per procedure, as printed in every header
GUARANTEES = {
    "tbal": "subset: P(error of auto-labels <= eps) >= 1-delta",
    "pac": "dataset: P(error of ALL final labels <= eps) >= 1-delta",
    "conformal": "expected only: E[error of auto-labels] <= eps (weaker)",
}
#: the planner's minimum pilot size (below it the bootstrap curve is meaningless)
MIN_PILOT = 20
#: confidences are clipped to [CONF_CLIP, 1 - CONF_CLIP] before the logit
CONF_CLIP = 1e-6
CURVES = ("platt", "isotonic")
#: PAC threshold candidates: a fixed grid of pool quantiles (still a valid fixed sequence; the planned
#: threshold is coarser than a real run's by at most pool / PAC_MAX_CANDIDATES items)
PAC_MAX_CANDIDATES = 256


# --------------------------------------------------------------------------------------------------
# the error-vs-confidence curve
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorCurve:
    """A non-increasing estimate of P(wrong | confidence), linear between block centres."""

    knots: np.ndarray  #: block centres (mean confidence per block), increasing
    rates: np.ndarray  #: error rate per block, non-increasing

    def __call__(self, confidence: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.interp(np.asarray(confidence, dtype=np.float64), self.knots, self.rates)
        return out


@dataclass(frozen=True)
class PlattCurve:
    """P(wrong | confidence c) = sigmoid(a + b logit(c)) (a calibrated model has a = 0, b = -1)."""

    a: float
    b: float

    def __call__(self, confidence: np.ndarray) -> np.ndarray:
        return _expit(self.a + self.b * _logit(confidence))


def _logit(c: Any) -> np.ndarray:
    c = np.clip(np.asarray(c, dtype=np.float64), CONF_CLIP, 1.0 - CONF_CLIP)
    out: np.ndarray = np.log(c) - np.log1p(-c)
    return out


def _expit(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def platt_curve(
    confidence: np.ndarray, wrong: np.ndarray, *, prior_strength: float = 1.0, iterations: int = 50
) -> PlattCurve:
    """Logistic fit of the wrong flags on logit(confidence), ridge-penalised toward (a, b) = (0, -1).

    Maximises sum_i log-lik_i - (prior_strength / 2) ((a - 0)^2 + (b + 1)^2) by Newton's method
    (2 x 2 system per step; vectorised over the items). The penalty pulls a pilot with few or no
    errors toward the model's stated error 1 - c instead of toward 0 (a pilot cannot prove 0).
    Two parameters, no per-block selection: unlike an isotonic fit, the tail is not estimated by the
    minimum of many averages (which is optimistic).

    >>> rng = np.random.default_rng(0); c = rng.uniform(0.5, 1.0, 20000)
    >>> f = platt_curve(c, rng.random(20000) > c, prior_strength=0.0)     # calibrated: a=0, b=-1
    >>> round(f.a, 1) + 0.0, round(f.b, 1)
    (0.0, -1.0)
    """
    z = _logit(confidence)
    w = np.asarray(wrong, dtype=np.float64)
    theta = np.array([0.0, -1.0])
    prior = np.array([0.0, -1.0])
    lam = float(prior_strength)
    X = np.stack([np.ones_like(z), z], axis=1)

    def objective(t: np.ndarray) -> float:  # penalised log-likelihood (stable log-sigmoid)
        x = X @ t
        return float(-np.sum(w * np.logaddexp(0.0, -x) + (1.0 - w) * np.logaddexp(0.0, x))
                     - 0.5 * lam * np.sum((t - prior) ** 2))

    f = objective(theta)
    for _ in range(iterations):  # damped Newton: halve the step until the objective does not drop
        p = _expit(X @ theta)
        grad = X.T @ (w - p) - lam * (theta - prior)
        h = X.T @ (X * (p * (1.0 - p))[:, None]) + (lam + 1e-9) * np.eye(2)
        step = np.linalg.solve(h, grad)
        for _ in range(30):
            f_new = objective(theta + step)
            if f_new >= f - 1e-12:
                break
            step = step / 2.0
        theta, f = theta + step, f_new
        if np.max(np.abs(step)) < 1e-9:
            break
    return PlattCurve(float(theta[0]), float(theta[1]))


def error_curve(confidence: np.ndarray, wrong: np.ndarray, *, prior_strength: float = 1.0) -> ErrorCurve:
    """Isotonic (non-increasing in confidence) error rate, shrunk toward the stated error 1 - c.

    Each isotonic block with n items, k wrong and mean stated error e0 = mean(1 - c) gets rate
    (k + a e0) / (n + a), a = ``prior_strength``: a block with no pilot error keeps a small
    error instead of exactly 0 (the pilot cannot prove 0). Rates are re-made monotone after the
    shrinkage (isotonic again, weighted by block size).

    >>> c = error_curve(np.array([0.6, 0.7, 0.8, 0.9]), np.array([1, 0, 1, 0]), prior_strength=0.0)
    >>> c.rates.tolist(), c.knots.round(3).tolist()    # blocks {0.6}, {0.7, 0.8}, {0.9}
    ([1.0, 0.5, 0.0], [0.6, 0.75, 0.9])
    >>> error_curve(np.array([0.9, 0.9]), np.array([0, 0]), prior_strength=1.0).rates.round(4).tolist()
    [0.0333]
    """
    c = np.asarray(confidence, dtype=np.float64)
    w = np.asarray(wrong, dtype=np.float64)
    order = np.argsort(c, kind="stable")
    c, w = c[order], w[order]
    # collapse ties: isotonic regression over distinct confidences
    uc, start, counts = np.unique(c, return_index=True, return_counts=True)
    k = np.add.reduceat(w, start)
    res = isotonic_regression(k / counts, weights=counts.astype(np.float64), increasing=False)
    blocks = np.asarray(res.blocks)  # start of each block (in distinct-value index) + end
    bn = np.add.reduceat(counts, blocks[:-1]).astype(np.float64)
    bk = np.add.reduceat(k, blocks[:-1])
    bc = np.add.reduceat(uc * counts, blocks[:-1]) / bn  # block centre
    e0 = np.clip(1.0 - bc, 0.0, 1.0)
    rate = (bk + prior_strength * e0) / (bn + prior_strength)
    if len(rate) > 1:
        rate = isotonic_regression(rate, weights=bn, increasing=False).x
    return ErrorCurve(bc, np.clip(rate, 0.0, 1.0))


def fit_curve(confidence: np.ndarray, wrong: np.ndarray, curve: str, prior_strength: float) -> Any:
    """The error curve of kind ``curve`` ("platt" or "isotonic")."""
    check_option("curve", curve, owner="fit_curve", options=CURVES)
    if curve == "platt":
        return platt_curve(confidence, wrong, prior_strength=prior_strength)
    return error_curve(confidence, wrong, prior_strength=prior_strength)


# --------------------------------------------------------------------------------------------------
# one procedure on one simulated run
# --------------------------------------------------------------------------------------------------


def tbal_auto_count(
    pool_sorted: np.ndarray, val_conf: np.ndarray, val_wrong: np.ndarray, *, epsilon: float, delta: float,
    bound: str = "clopper-pearson",
) -> int:
    """Pool items (other than the validation items) that TBAL's certified threshold auto-labels.

    ``pool_sorted``: the pool's confidences, increasing; ``val_*``: the m validation items (part of
    the pool). Global scope, one round.
    """
    res = _scan_threshold(val_conf, val_wrong, epsilon=epsilon, delta=delta, bound=bound)
    if not math.isfinite(res.threshold):
        return 0
    above = len(pool_sorted) - int(np.searchsorted(pool_sorted, res.threshold, side="left"))
    return above - int(np.sum(val_conf >= res.threshold))


def conformal_auto_count(
    pool_desc: np.ndarray, drawn_mask_desc: np.ndarray, cal_conf: np.ndarray, cal_wrong: np.ndarray, *, epsilon: float
) -> int:
    """Pool items conformal labeling selects; ``pool_desc`` sorted by decreasing confidence and
    ``drawn_mask_desc`` (same order) marking the calibration items, which are not in the test pool."""
    return _conformal.conformal_coverage_sorted(pool_desc[~drawn_mask_desc], cal_conf, cal_wrong, epsilon)


def pac_auto_count(
    uncertainty: np.ndarray, pi: np.ndarray, draws: np.ndarray, losses: np.ndarray, *, epsilon: float, delta: float,
    bound: str = "betting", u_sorted: np.ndarray | None = None,
) -> int:
    """Items PAC labeling keeps the model label for: uncertainty <= threshold and not audited.

    The adapter to :func:`labelsieve.guarantees.pac.pac_threshold` (one place to change if it does).
    """
    r = _pac.pac_threshold(uncertainty, draws, losses, pi, epsilon=epsilon, alpha=delta, bound=bound,
                           max_candidates=PAC_MAX_CANDIDATES)
    if r.threshold == -np.inf:
        return 0
    su = np.sort(uncertainty) if u_sorted is None else u_sorted
    below = int(np.searchsorted(su, r.threshold, side="right"))
    audited = np.unique(draws)
    return below - int(np.sum(uncertainty[audited] <= r.threshold))


# --------------------------------------------------------------------------------------------------
# the simulation
# --------------------------------------------------------------------------------------------------


def simulate_coverage(
    pilot_conf: np.ndarray,
    pilot_wrong: np.ndarray,
    pool_conf: np.ndarray,
    budgets: Sequence[int],
    *,
    epsilon: float,
    delta: float,
    n_bootstrap: int = 200,
    procedures: Sequence[str] = PROCEDURES,
    tbal_bound: str = "clopper-pearson",
    pac_bound: str = "betting",
    pac_prior: str = "uniform",
    prior_strength: float = 1.0,
    curve: str = "platt",
    random_state: int | np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Auto-labeled counts of B simulated runs per procedure and budget (see module docstring).

    Returns
    -------
    dict procedure -> int array of shape (n_bootstrap, len(budgets)): items that keep the model's
    label (coverage = count / len(pool_conf)).
    """
    rng = np.random.default_rng(random_state)
    pc = np.asarray(pilot_conf, dtype=np.float64)
    pw = np.asarray(pilot_wrong, dtype=bool)
    pool = np.asarray(pool_conf, dtype=np.float64)
    n, npool = len(pc), len(pool)
    ms = np.asarray(budgets, dtype=np.int64)
    m_max = int(ms.max())
    out = {p: np.zeros((n_bootstrap, len(ms)), dtype=np.int64) for p in procedures}
    desc = np.argsort(-pool, kind="stable")
    pool_desc = pool[desc]
    rank_desc = np.empty(npool, dtype=np.int64)
    rank_desc[desc] = np.arange(npool)
    pool_inc = pool_desc[::-1].copy()
    u = 1.0 - pool
    u_sorted = np.sort(u)
    pi = _pac.pac_sampling_probs(u, pac_prior) if "pac" in procedures else np.empty(0)
    for b in range(n_bootstrap):  # loop over replicates; everything inside is vectorised
        boot = rng.integers(0, n, n)
        g = fit_curve(pc[boot], pw[boot], curve, prior_strength)
        if "tbal" in procedures or "conformal" in procedures:
            drawn = rng.choice(npool, size=min(m_max, npool), replace=False)
            dc = pool[drawn]
            dw = rng.random(len(drawn)) < g(dc)
            for j, m in enumerate(ms):
                if "tbal" in procedures:
                    out["tbal"][b, j] = tbal_auto_count(pool_inc, dc[:m], dw[:m], epsilon=epsilon, delta=delta,
                                                        bound=tbal_bound)
                if "conformal" in procedures:
                    mask = np.zeros(npool, dtype=bool)
                    mask[rank_desc[drawn[:m]]] = True
                    out["conformal"][b, j] = conformal_auto_count(pool_desc, mask, dc[:m], dw[:m], epsilon=epsilon)
        if "pac" in procedures:
            draws = _pac.draw_audit(pi, m_max, rng)
            uniq, inv = np.unique(draws, return_inverse=True)
            wrong_u = rng.random(len(uniq)) < g(pool[uniq])  # one flag per item, repeats agree
            losses = wrong_u[inv].astype(np.float64)
            for j, m in enumerate(ms):
                out["pac"][b, j] = pac_auto_count(u, pi, draws[:m], losses[:m], epsilon=epsilon, delta=delta,
                                                  bound=pac_bound, u_sorted=u_sorted)
    return out


def summarize(counts: np.ndarray, npool: int, level: float) -> dict[str, np.ndarray]:
    """Median, percentile interval, mean and share of zero coverage per column of ``counts``.

    >>> s = summarize(np.array([[0, 10], [10, 20], [20, 30]]), 100, 0.5)
    >>> [s[k].round(3).tolist() for k in ("estimate", "low", "high", "mean")]
    [[0.1, 0.2], [0.05, 0.15], [0.15, 0.25], [0.1, 0.2]]
    """
    cov = counts / float(npool)
    a = (1.0 - level) / 2.0
    return {
        "estimate": np.median(cov, axis=0),
        "low": np.quantile(cov, a, axis=0),
        "high": np.quantile(cov, 1.0 - a, axis=0),
        "mean": cov.mean(axis=0),
        "p_zero": (counts == 0).mean(axis=0),
    }


def default_budgets(npool: int) -> list[int]:
    """25, 50, 100, 200, 500, ... up to half the pool (at least three values).

    >>> default_budgets(3000)
    [25, 50, 100, 200, 500, 1000]
    >>> default_budgets(100)
    [10, 20, 30, 50]
    """
    grid = [25, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000]
    out = [m for m in grid if m <= npool // 2]
    if len(out) < 3:
        out = sorted({max(1, round(npool * f)) for f in (0.1, 0.2, 0.3, 0.5)})
    return out


# --------------------------------------------------------------------------------------------------
# the class
# --------------------------------------------------------------------------------------------------


class BudgetPlanner:
    """Estimate coverage vs human labels under three guarantees, from a pilot sample of labels.

    Parameters
    ----------
    epsilon, delta : float in (0, 1)
        Target error and failure probability (delta unused by conformal labeling, whose promise is
        in expectation).
    budgets : sequence of int, optional
        Human labels m (validation / audit / calibration sample size) to evaluate. Default:
        :func:`default_budgets` of the pool size.
    n_bootstrap : int
        Simulated runs per budget (B).
    level : float in (0, 1)
        Level of the percentile intervals (default 0.9: the 5th and 95th percentiles).
    procedures : subset of ``PROCEDURES``
    tbal_bound : "clopper-pearson" or "hoeffding"
    pac_bound : "betting" (finite-sample) or "clt" (asymptotic)
    pac_prior : "uniform" or "uncertainty"
    prior_strength : float >= 0
        Pseudo-items shrinking each error-curve block toward the model's stated error.
    max_pool : int
        Larger pools are represented by a fixed random subsample of this many confidences
        (coverages are fractions; the subsample changes them by O(1/sqrt(max_pool))).
    random_state : int or Generator, optional

    Attributes
    ----------
    n_pilot_, n_pool_, pilot_error_ : sizes and the pilot's error rate
    error_curve_ : ErrorCurve fitted on the whole pilot (for display)
    counts_ : dict procedure -> (B, len(budgets)) simulated auto-labeled counts (after :meth:`plan`)
    target_ : dict procedure -> budget needed for ``target_coverage`` (after ``plan(target)``)

    Examples
    --------
    >>> rng = np.random.default_rng(0); conf = rng.uniform(0.7, 1.0, 3000)
    >>> wrong = rng.random(3000) > conf                                   # a calibrated model
    >>> p = BudgetPlanner(0.1, 0.05, budgets=[100, 400], n_bootstrap=20, random_state=0)
    >>> df = p.fit(np.zeros(200), conf[:200], wrong[:200].astype(int), conf, np.zeros(3000)).plan()
    >>> sorted(df["procedure"].unique()), bool((df["low"] <= df["estimate"]).all())
    (['conformal', 'pac', 'tbal'], True)
    """

    def __init__(
        self,
        epsilon: float = 0.05,
        delta: float = 0.05,
        *,
        budgets: Sequence[int] | None = None,
        n_bootstrap: int = 200,
        level: float = 0.9,
        procedures: Sequence[str] = PROCEDURES,
        tbal_bound: str = "clopper-pearson",
        pac_bound: str = "betting",
        pac_prior: str = "uniform",
        prior_strength: float = 1.0,
        curve: str = "platt",
        max_pool: int = 50_000,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.epsilon = epsilon
        self.delta = delta
        self.budgets = budgets
        self.n_bootstrap = n_bootstrap
        self.level = level
        self.procedures = procedures
        self.tbal_bound = tbal_bound
        self.pac_bound = pac_bound
        self.pac_prior = pac_prior
        self.prior_strength = prior_strength
        self.curve = curve
        self.max_pool = max_pool
        self.random_state = random_state

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_open_unit("epsilon", self.epsilon, owner=owner)
        check_open_unit("delta", self.delta, owner=owner)
        check_open_unit("level", self.level, owner=owner)
        check_positive_int("n_bootstrap", self.n_bootstrap, owner=owner, minimum=2)
        check_positive_int("max_pool", self.max_pool, owner=owner, minimum=100)
        check_interval("prior_strength", self.prior_strength, owner=owner, low=0.0, high=math.inf, closed="left")
        check_option("tbal_bound", self.tbal_bound, owner=owner, options=("clopper-pearson", "hoeffding"))
        check_option("pac_bound", self.pac_bound, owner=owner, options=_pac.BOUNDS)
        check_option("pac_prior", self.pac_prior, owner=owner, options=_pac.PRIORS)
        check_option("curve", self.curve, owner=owner, options=CURVES)
        if not self.procedures or any(p not in PROCEDURES for p in self.procedures):
            raise InputError(f"procedures must be a non-empty subset of {PROCEDURES}; got {list(self.procedures)}.")

    def fit(
        self, pilot_pred: Any, pilot_conf: Any, pilot_y: Any, pool_conf: Any, pool_pred: Any | None = None
    ) -> BudgetPlanner:
        """Store the pilot (prediction, confidence, human label) and the pool (confidence, prediction)."""
        self._check_params()
        pred, y = np.asarray(pilot_pred), np.asarray(pilot_y)
        pc = _conf(pilot_conf, "pilot_conf")
        if not (pred.shape == y.shape == pc.shape):
            raise InputError(
                f"pilot_pred {pred.shape}, pilot_conf {pc.shape} and pilot_y {y.shape} must have equal length."
            )
        if len(pc) < MIN_PILOT:
            raise NotEnoughDataError(f"the pilot has {len(pc)} labeled items; the planner needs at least {MIN_PILOT}.")
        pool = _conf(pool_conf, "pool_conf")
        if pool_pred is not None and np.asarray(pool_pred).shape != pool.shape:
            raise InputError(f"pool_pred has shape {np.asarray(pool_pred).shape}; expected {pool.shape}.")
        if len(pool) < 2:
            raise InputError(f"the pool has {len(pool)} items; need at least 2.")
        rng = np.random.default_rng(self.random_state)
        self.n_pool_ = len(pool)
        if len(pool) > self.max_pool:
            pool = pool[rng.choice(len(pool), self.max_pool, replace=False)]
        self._rng = rng
        self._pool = pool
        self.pilot_conf_ = pc
        self.pilot_wrong_ = pred != y
        self.n_pilot_ = len(pc)
        self.pilot_error_ = float(self.pilot_wrong_.mean())
        self.error_curve_ = fit_curve(pc, self.pilot_wrong_, self.curve, self.prior_strength)
        budgets = default_budgets(self.n_pool_) if self.budgets is None else list(self.budgets)
        for m in budgets:
            check_positive_int("budgets", m, owner=type(self).__name__)
            if m >= self.n_pool_:
                raise InputError(f"budget {m} is not below the pool size {self.n_pool_}.")
        self.budgets_ = sorted({int(m) for m in budgets})
        return self

    def _scale(self, m: int) -> int:
        """A budget in pool units -> in units of the (sub-sampled) simulation pool."""
        return max(1, round(m * len(self._pool) / self.n_pool_))

    def _simulate(self, budgets: Sequence[int]) -> dict[str, np.ndarray]:
        counts = simulate_coverage(
            self.pilot_conf_, self.pilot_wrong_, self._pool, [self._scale(m) for m in budgets],
            epsilon=float(self.epsilon), delta=float(self.delta), n_bootstrap=self.n_bootstrap,
            procedures=tuple(self.procedures), tbal_bound=self.tbal_bound, pac_bound=self.pac_bound,
            pac_prior=self.pac_prior, prior_strength=self.prior_strength, curve=self.curve, random_state=self._rng,
        )
        return counts

    def plan(self, target_coverage: float | None = None) -> Any:
        """Coverage per procedure and budget, with intervals, as a pandas DataFrame (long format).

        Columns: ``procedure, guarantee, human_labels`` (m), ``estimate`` (median coverage), ``low``,
        ``high`` (``level`` percentile interval), ``mean``, ``p_zero`` (share of simulated runs with no
        auto-label), ``auto_labels`` (median count), ``total_human_labels`` (m for tbal/conformal, whose
        other items stay unlabeled; pool minus model-labeled items for pac, whose final data set is
        complete). With ``target_coverage``, :attr:`target_` holds the budgets needed
        (see :meth:`budget_for`) and ``df.attrs["target"]`` the same.
        """
        import pandas as pd

        self.counts_ = self._simulate(self.budgets_)
        rows = []
        for proc in self.procedures:
            s = summarize(self.counts_[proc], len(self._pool), float(self.level))
            for j, m in enumerate(self.budgets_):
                auto = round(s["estimate"][j] * self.n_pool_)
                rows.append({
                    "procedure": proc, "guarantee": GUARANTEES[proc], "human_labels": m,
                    "estimate": s["estimate"][j], "low": s["low"][j], "high": s["high"][j], "mean": s["mean"][j],
                    "p_zero": s["p_zero"][j], "auto_labels": auto,
                    "total_human_labels": (self.n_pool_ - auto) if proc == "pac" else m,
                })
        df = pd.DataFrame(rows)
        df.attrs.update({"epsilon": float(self.epsilon), "delta": float(self.delta), "level": float(self.level),
                         "n_pilot": self.n_pilot_, "n_pool": self.n_pool_, "n_bootstrap": self.n_bootstrap,
                         "pilot_error": self.pilot_error_})
        if target_coverage is not None:
            self.target_ = self.budget_for(target_coverage)
            df.attrs["target"] = self.target_
        return df

    def budget_for(self, target_coverage: float, *, n_grid: int = 12) -> dict[str, dict[str, Any]]:
        """Smallest budget on a geometric grid up to half the pool (plus ``budgets_``) whose coverage
        reaches the target.

        Per procedure: ``budget`` (median coverage >= target), ``budget_confident`` (the interval's low
        end >= target: reached in most runs), ``more_labels`` = budget - n_pilot (pilot labels count
        towards the budget when the pilot is a random sample of the pool), and ``best_coverage`` /
        ``best_budget``: the highest median coverage on the grid (up to ``max_budget``) and where.
        Resolution: the grid. Coverage is model-labeled items / pool, so it cannot exceed 1 - m / pool.
        """
        t = check_interval("target_coverage", target_coverage, owner=type(self).__name__, low=0.0, high=1.0,
                           closed="right")
        top = max(max(self.budgets_), self.n_pool_ // 2)
        grid = np.unique(np.concatenate([
            np.round(np.geomspace(max(10, min(self.budgets_)), top, n_grid)).astype(np.int64),
            np.asarray(self.budgets_, dtype=np.int64)]))
        counts = self._simulate([int(m) for m in grid if 1 <= m <= top])
        out: dict[str, dict[str, Any]] = {}
        for proc in self.procedures:
            s = summarize(counts[proc], len(self._pool), float(self.level))
            hit = np.flatnonzero(s["estimate"] >= t)
            hit_lo = np.flatnonzero(s["low"] >= t)
            m = grid[int(hit[0])] if len(hit) else None
            m_lo = grid[int(hit_lo[0])] if len(hit_lo) else None
            out[proc] = {
                "target_coverage": t,
                "budget": m,
                "budget_confident": m_lo,
                "more_labels": None if m is None else max(0, m - self.n_pilot_),
                "best_coverage": float(s["estimate"].max()),
                "best_budget": grid[int(np.argmax(s["estimate"]))],
                "max_budget": grid[-1],
            }
        return out


def _conf(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise InputError(f"{name} must be 1-D; got shape {a.shape}.")
    bad = ~np.isfinite(a) | (a < 0) | (a > 1)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise InputError(f"{name}[{r}] = {a[r]!r}: confidences must be finite and in [0, 1].")
    return a
