"""One certificate for every guarantee labelsieve gives, with one sentence saying what it is.

``guarantee`` says what the certificate is about:

* ``"subset"`` (TBAL, the noise-aware certifier, threshold tuning): with probability >= 1 - delta,
  the population error rate of the points auto-labeled by these thresholds is <= epsilon;
* ``"precision"`` (box thresholds): the same statement for accepted boxes, read as precision
  >= 1 - epsilon;
* ``"dataset"`` (PAC labeling): with probability >= 1 - delta, the error of the *whole* labeled
  data set (auto-labels below one uncertainty threshold, human labels above) is <= epsilon; the
  bound is computed on an audit sample of ``n_validation`` items out of ``n_items``.

:meth:`Certificate.statement` composes the sentence for every kind (``describe`` is an alias).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from labelsieve.guarantees.bounds import GUARANTEED_BOUNDS
from labelsieve.guarantees.scan import ScanResult

GUARANTEES = ("subset", "precision", "dataset")


@dataclass(frozen=True)
class Certificate:
    """Thresholds and what they guarantee.

    ``thresholds[c]`` applies to points *predicted* as class ``c`` (all equal in the global scope;
    ``classes[c]`` names the class when codes are not 0..K-1, e.g. box category ids);
    ``+inf`` means class ``c`` gets no auto-labels (``reasons[c]`` says why).
    With a guaranteed bound and the fixed-sequence scan: with probability >= 1 - delta, the
    population error rate of the points auto-labeled by these thresholds is <= epsilon (per class
    with per-class scope, hence also overall). For ``guarantee="dataset"`` the single threshold is
    on *uncertainty* (items below it are auto-labeled) and the statement is about all items.
    """

    thresholds: NDArray[np.float64]
    epsilon: float
    delta: float
    bound: str
    scope: str
    min_n: int
    delta_per_test: float
    n_validation: int  #: points the bound saw: validation points, verified boxes, or the audit sample
    scan: str
    scans: tuple[ScanResult, ...]
    reasons: dict[int, str] = field(default_factory=dict)
    guarantee: str = "subset"  #: "subset" | "precision" | "dataset"
    noise_aware: bool = False  #: the bound is against the true labels, validation labels being noisy
    n_items: int | None = None  #: dataset guarantee: items of the whole data set
    classes: tuple[int, ...] | None = None  #: what ``thresholds[c]`` belongs to (default: class code c)
    bound_guaranteed: bool | None = None  #: for bounds outside the registry (e.g. "betting", "clt")

    @property
    def guaranteed(self) -> bool:
        """A guarantee (not a heuristic): a guaranteed bound and the fixed-sequence scan."""
        ok = self.bound in GUARANTEED_BOUNDS if self.bound_guaranteed is None else self.bound_guaranteed
        return bool(ok) and self.scan == "fixed-sequence"

    def accept(self, predicted: NDArray[np.integer], confidence: NDArray[np.floating]) -> NDArray[np.bool_]:
        """Boolean mask of the points these thresholds auto-label (subset / precision certificates)."""
        out: NDArray[np.bool_] = np.asarray(confidence) >= self.thresholds[np.asarray(predicted)]
        return out

    def statement(self, *, delta: float | None = None, spent: str | None = None) -> str:
        """What this certificate says, in one sentence.

        ``delta`` (default: the certificate's) is the failure probability stated, and ``spent`` how
        it was spent (default: per test, per class); a run whose rounds share delta passes both.

        >>> c = Certificate(np.full(2, 0.9), 0.05, 0.1, "clopper-pearson", "per-class", 93, 0.05, 400,
        ...                 "fixed-sequence", ())
        >>> c.statement()
        'with probability >= 0.9, the population error rate of the auto-labeling rule is <= 0.05 (clopper-pearson bound, fixed-sequence scan, delta 0.1 split over 2 classes: 0.05 per test)'
        >>> Certificate(np.full(2, 0.9), 0.05, 0.1, "clopper-pearson", "global", 93, 0.1, 400, "any", ()).statement()
        'HEURISTIC (clopper-pearson, any scan): no guarantee'
        """
        if not self.guaranteed:
            return f"HEURISTIC ({self.bound}, {self.scan} scan): no guarantee"
        d = self.delta if delta is None else delta
        if self.guarantee == "dataset":
            n = f"all {self.n_items} labels" if self.n_items is not None else "all labels"
            u = float(self.thresholds[0]) if len(self.thresholds) else float("nan")
            return (
                f"with probability >= {1 - d:g}, the error of the whole labeled data set ({n}: the model's "
                f"label below uncertainty {u:.4g}, a human label above) is <= {self.epsilon:g} "
                f"({self.bound} bound on an audit sample of {self.n_validation} items, {self.scan} scan)"
            )
        if spent is None:
            k = len(self.thresholds)
            spent = (
                f"delta {self.delta:g} split over {k} classes: {self.delta_per_test:.3g} per test"
                if self.scope == "per-class"
                else f"delta {self.delta_per_test:.3g} per test"
            )
            over = ""
        else:
            over = ", and over classes" if self.scope == "per-class" else ""
        what = (
            "the precision of the accepted boxes is >= " + f"{1 - self.epsilon:g}"
            if self.guarantee == "precision"
            else "the population error rate of the auto-labeling rule"
            + (" against the TRUE labels" if self.noise_aware else "")
            + f" is <= {self.epsilon:g}"
        )
        how = (
            f"noise-aware bound: Poisson-binomial quantile of the true errors + {self.bound}"
            if self.noise_aware
            else f"{self.bound} bound"
        )
        return f"with probability >= {1 - d:g}, {what} ({how}, {self.scan} scan, {spent}{over})"

    def describe(self) -> str:
        """Alias of :meth:`statement`."""
        return self.statement()
