"""An oracle whose answers come from (simulated) crowd labelers, aggregated by GTX.

Each queried item is labeled by several simulated labelers (one-coin accuracies drawn as in the
GTX paper, U(0.6, 0.9) or U(0.8, 1.0), or a user's table), collected with the GTX
confidence-threshold strategy (tau, kappa) or with uncertainty sampling, and aggregated by GTX with
labeler accuracies estimated on a gold set. The oracle answers ``ask(ids)`` with the aggregated
labels and ``label_confidence(ids)`` with the posterior of the given label, made conservative
by evaluating it at the worst accuracies inside simultaneous Clopper-Pearson limits (probability
``delta_accuracy``), so :class:`~labelsieve.autolabel.noisy.NoiseAwareCertifier` can bound the
error against the true labels. ``answers_spent`` and ``cost`` count individual labeler answers.

Item difficulty is shared with the model: a reference classifier's probability of the true class
ranks items from hard (near the decision boundary) to easy, and labeler j answers item i correctly
with probability ``expit(logit(alpha_j) + difficulty * z_i)`` (z_i the item's normal score). With
``confusion="model"`` wrong answers go to the classes the reference model confuses the item with,
so crowd errors and model errors coincide, as they do with real people.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
from scipy import special, stats

from labelsieve._validation import check_interval, check_open_unit, check_option, check_positive_int
from labelsieve.autolabel.noisy import accuracy_limits, conservative_label_confidence
from labelsieve.autolabel.oracles import Answers
from labelsieve.data.dataset import UNLABELED, Dataset
from labelsieve.errors import InputError, ParameterError

log = logging.getLogger(__name__)

STRATEGIES = ("threshold", "uncertainty")
CONFUSIONS = ("model", "uniform")
ACCURACY_SOURCES = ("gold", "true")


def reference_probabilities(dataset: Dataset, *, random_state: int | None = 0) -> np.ndarray:
    """Out-of-fold class probabilities of a logistic regression on the dataset's truth, (n, K).

    Defines item difficulty (how close each item is to the decision boundary) for the simulated
    labelers. Uses the ground truth, so only for simulation.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if not dataset.has_truth or dataset.y is None or (dataset.y == UNLABELED).any():
        raise InputError(f"dataset '{dataset.name}' lacks ground truth for some items; cannot simulate labelers.")
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
    cv = StratifiedKFold(5, shuffle=True, random_state=random_state)
    return cross_val_predict(clf, dataset.X, dataset.y, cv=cv, method="predict_proba")


def item_ease(true_class_prob: np.ndarray) -> np.ndarray:
    """Normal scores of the items ranked by the reference's probability of the true class.

    Mean ~0, sd ~1; the hardest items (nearest the boundary or on its wrong side) get the lowest.

    >>> item_ease(np.array([0.2, 0.9, 0.6])).round(3).tolist()
    [-0.967, 0.967, 0.0]
    """
    r = stats.rankdata(true_class_prob, method="average")
    return stats.norm.ppf((r - 0.5) / len(r))


def labeler_item_accuracy(alpha: np.ndarray, ease: np.ndarray, difficulty: float) -> np.ndarray:
    """P(labeler j right on item i) = expit(logit(alpha_j) + difficulty * ease_i), shape (n, J)."""
    a = np.clip(np.asarray(alpha, dtype=np.float64), 1e-9, 1 - 1e-9)
    return special.expit(special.logit(a)[None, :] + difficulty * np.asarray(ease)[:, None])


def threshold_collect(
    answers: np.ndarray, acc: np.ndarray, log_prior: np.ndarray, *, tau: float, kappa: int
) -> tuple[np.ndarray, np.ndarray]:
    """GTX confidence-threshold collection (strategy 1), vectorised over items.

    ``answers[i, t]`` is the t-th answer item i would get and ``acc[i, t]`` the (estimated)
    accuracy of its labeler. Labels are taken in order until the GTX posterior's maximum reaches
    ``tau`` or ``kappa`` labels are in.

    Returns
    -------
    n_labels : int array (n,) — labels used per item
    posterior : float array (n, K) — GTX posterior from those labels (eq. 3)
    """
    from labelsieve.crowd.gtx import gtx_terms, softmax_rows

    k_cls = len(log_prior)
    n, t_max = answers.shape
    kappa = min(kappa, t_max)
    same, other = gtx_terms(acc[:, :kappa], k_cls)
    onehot = answers[:, :kappa, None] == np.arange(k_cls)[None, None, :]
    step = other[:, :, None] + onehot * (same - other)[:, :, None]
    scores = log_prior[None, None, :] + np.cumsum(step, axis=1)  # (n, kappa, K)
    post = softmax_rows(scores)
    done = post.max(axis=2) >= tau
    done[:, -1] = True
    first = np.argmax(done, axis=1)
    return first + 1, post[np.arange(n), first]


class CrowdOracle:
    """Answers queries with GTX-aggregated labels of simulated crowd labelers.

    Parameters
    ----------
    dataset : Dataset with ground truth (the simulation's truth)
    n_workers : int
        Size of the labeler pool (each labeler answers an item at most once).
    accuracy_range : (low, high)
        Labeler accuracies alpha_j ~ U(low, high) (GTX paper: (0.6, 0.9) or (0.8, 1.0)).
    accuracies : sequence or mapping worker -> accuracy, optional
        A user's labeler table instead of drawing (``n_workers`` is then its length).
    strategy : "threshold" (GTX tau/kappa) | "uncertainty" (GTX eq. 5)
    tau, kappa : stopping rule of the threshold strategy; ``kappa=1`` is one answer per item.
    answers_per_item : float
        Uncertainty strategy: answers spent per batch = this x batch size.
    gold_size : int
        Items with expert labels that every labeler answers; their accuracies are estimated there
        (GTX eq. 4; Beta(1, 1) posterior means aggregate). ``accuracy_source="true"`` skips the gold
        set and uses the true alphas (no accuracy uncertainty).
    delta_accuracy : float in (0, 1)
        Failure probability spent on the accuracies: ``label_confidence`` is the posterior at the
        worst accuracies inside simultaneous Clopper-Pearson limits. Add it to TBAL's delta.
    conservative : bool
        False: ``label_confidence`` is the plain GTX posterior at the posterior-mean accuracies.
    difficulty : float >= 0
        Strength of the item-difficulty effect (0: plain one-coin labelers).
    confusion : "model" | "uniform"
        Where wrong answers go (see the module docstring).
    reference : float array (n, K), optional
        Reference class probabilities for difficulty/confusion (default: out-of-fold logistic
        regression on the truth, :func:`reference_probabilities`).
    expert_cost, crowd_cost : float
        Price of an expert (gold) label and of one crowd answer.
    random_state : int, optional
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        n_workers: int = 10,
        accuracy_range: tuple[float, float] = (0.6, 0.9),
        accuracies: Any = None,
        strategy: str = "threshold",
        tau: float = 0.95,
        kappa: int = 5,
        answers_per_item: float = 3.0,
        gold_size: int = 50,
        accuracy_source: str = "gold",
        delta_accuracy: float = 0.01,
        conservative: bool = True,
        difficulty: float = 0.75,
        confusion: str = "model",
        reference: np.ndarray | None = None,
        expert_cost: float = 5.0,
        crowd_cost: float = 1.0,
        random_state: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.n_workers = n_workers
        self.accuracy_range = accuracy_range
        self.accuracies = accuracies
        self.strategy = strategy
        self.tau = tau
        self.kappa = kappa
        self.answers_per_item = answers_per_item
        self.gold_size = gold_size
        self.accuracy_source = accuracy_source
        self.delta_accuracy = delta_accuracy
        self.conservative = conservative
        self.difficulty = difficulty
        self.confusion = confusion
        self.reference = reference
        self.expert_cost = expert_cost
        self.crowd_cost = crowd_cost
        self.random_state = random_state
        self._ready = False

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        if self._ready:
            return
        owner = "CrowdOracle"
        ds = self.dataset
        if not ds.has_truth or ds.y is None or (ds.y == UNLABELED).any():
            raise InputError(f"dataset '{ds.name}' lacks ground truth for some items; a simulated crowd cannot answer.")
        check_option("strategy", self.strategy, owner=owner, options=STRATEGIES)
        check_option("confusion", self.confusion, owner=owner, options=CONFUSIONS)
        check_option("accuracy_source", self.accuracy_source, owner=owner, options=ACCURACY_SOURCES)
        check_open_unit("delta_accuracy", self.delta_accuracy, owner=owner)
        check_interval("tau", self.tau, owner=owner, low=0.5, high=1.0, closed="right")
        check_interval("difficulty", self.difficulty, owner=owner, low=0.0, high=np.inf, closed="left")
        check_interval("answers_per_item", self.answers_per_item, owner=owner, low=1.0, high=np.inf, closed="left")
        check_interval("expert_cost", self.expert_cost, owner=owner, low=0.0, high=np.inf, closed="left")
        check_interval("crowd_cost", self.crowd_cost, owner=owner, low=0.0, high=np.inf, closed="left")
        rng = np.random.default_rng(self.random_state)
        if self.accuracies is not None:
            vals = self.accuracies.values() if isinstance(self.accuracies, Mapping) else self.accuracies
            alpha = np.asarray(list(vals), dtype=np.float64)
            if alpha.ndim != 1 or len(alpha) == 0:
                raise ParameterError(f"The 'accuracies' parameter of {owner} must list one accuracy per labeler. "
                                     f"Got {self.accuracies!r} instead.")
            bad = ~((alpha > 0) & (alpha <= 1))
            if bad.any():
                raise ParameterError(f"The 'accuracies' parameter of {owner} must hold values in (0, 1]. "
                                     f"Got {alpha[bad][0]!r} instead.")
        else:
            check_positive_int("n_workers", self.n_workers, owner=owner)
            lo, hi = self.accuracy_range
            if not 0.0 < lo <= hi <= 1.0:
                raise ParameterError(f"The 'accuracy_range' parameter of {owner} must satisfy 0 < low <= high <= 1. "
                                     f"Got {self.accuracy_range!r} instead.")
            alpha = rng.uniform(lo, hi, size=self.n_workers)
        n_w = len(alpha)
        check_positive_int("kappa", self.kappa, owner=owner)
        if self.kappa > n_w:
            raise ParameterError(f"The 'kappa' parameter of {owner} must be <= the number of labelers ({n_w}). "
                                 f"Got {self.kappa!r} instead.")
        check_positive_int("gold_size", self.gold_size, owner=owner, minimum=0)
        n, k = len(ds), ds.n_classes
        y = ds.y
        ref = self.reference
        if ref is None and (self.difficulty > 0 or self.confusion == "model"):
            ref = reference_probabilities(ds, random_state=0)
        if ref is not None:
            ref = np.asarray(ref, dtype=np.float64)
            if ref.shape != (n, k):
                raise InputError(f"reference must have shape ({n}, {k}); got {ref.shape}.")
        ease = item_ease(ref[np.arange(n), y]) if ref is not None else np.zeros(n)
        p_right = labeler_item_accuracy(alpha, ease, float(self.difficulty))  # (n, J)
        right = rng.random((n, n_w)) < p_right
        if self.confusion == "model" and ref is not None:
            w = ref.copy()
            w[np.arange(n), y] = 0.0
            w = w + 1e-3 / k  # every wrong class stays possible
            w[np.arange(n), y] = 0.0
            cum = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)
            u = rng.random((n, n_w))
            wrong = np.minimum((u[:, :, None] > cum[:, None, :]).sum(axis=2), k - 1)
        else:
            wrong = (y[:, None] + rng.integers(1, k, size=(n, n_w))) % k
        self.answers_ = np.where(right, y[:, None], wrong)  # (n, J) the answer j would give i
        self.order_ = np.argsort(rng.random((n, n_w)), axis=1)  # order labelers reach each item
        self.alpha_ = alpha
        self.true_accuracies_ = p_right.mean(axis=0)
        if self.accuracy_source == "gold" and self.gold_size > 0:
            gold = rng.choice(n, size=min(self.gold_size, n), replace=False)
            n_gold = np.full(n_w, len(gold))
            n_correct = (self.answers_[gold] == y[gold, None]).sum(axis=0)
            self.gold_ = np.sort(gold)
            self.acc_mean_ = (n_correct + 1.0) / (n_gold + 2.0)
            self.acc_lower_, self.acc_upper_ = accuracy_limits(n_correct, n_gold, self.delta_accuracy)
        else:
            self.gold_ = np.empty(0, dtype=np.int64)
            self.acc_mean_ = np.clip(self.true_accuracies_, 1e-6, 1 - 1e-6)
            self.acc_lower_ = self.acc_upper_ = self.acc_mean_
        self._log_prior = np.full(k, -np.log(k))
        self._pos = {i: p for p, i in enumerate(ds.ids)}
        self.label_ = np.full(n, UNLABELED, dtype=np.int64)
        self.confidence_ = np.full(n, np.nan)
        self.min_posterior_ = np.full((n, k), np.nan)
        self.n_answers_ = np.zeros(n, dtype=np.int64)
        self._ready = True

    # ------------------------------------------------------------------ collection
    def _positions(self, ids: np.ndarray) -> np.ndarray:
        try:
            return np.array([self._pos[i] for i in ids], dtype=np.int64)
        except KeyError as exc:
            raise InputError(f"unknown item id {str(exc.args[0])!r}") from None

    def _collect(self, pos: np.ndarray) -> None:
        if len(pos) == 0:
            return
        n_w = len(self.alpha_)
        rows = np.arange(len(pos))[:, None]
        order = self.order_[pos]
        ans = self.answers_[pos][rows, order]  # answers in the order labelers arrive
        acc = self.acc_mean_[order]
        if self.strategy == "threshold":
            n_lab, _ = threshold_collect(ans, acc, self._log_prior, tau=self.tau, kappa=self.kappa)
        else:
            n_lab = self._uncertainty_collect(pos, ans, order)
        # the label table of these items: (task, label, worker) for the labels used
        used = np.arange(n_w)[None, :] < n_lab[:, None]
        task = np.broadcast_to(np.arange(len(pos))[:, None], used.shape)[used]
        label = ans[used]
        worker = order[used]
        from labelsieve.crowd.gtx import gtx_posterior

        post = gtx_posterior(task, label, self.acc_mean_[worker], self._log_prior, len(pos))
        given = post.argmax(axis=1)
        k = self.dataset.n_classes
        if self.conservative:  # smallest posterior of every class over the accuracy box (loop over classes)
            low = np.stack([conservative_label_confidence(task, label, worker, np.full(len(pos), c), self.acc_lower_,
                                                          self.acc_upper_, self._log_prior) for c in range(k)], axis=1)
        else:
            low = post
        q = low[np.arange(len(pos)), given]
        self.label_[pos] = given
        self.confidence_[pos] = q
        self.min_posterior_[pos] = low
        self.n_answers_[pos] = n_lab

    def _uncertainty_collect(self, pos: np.ndarray, ans: np.ndarray, order: np.ndarray) -> np.ndarray:
        """Live GTX uncertainty sampling (eq. 5) over the batch, answers_per_item x batch labels."""
        from labelsieve.crowd import GTX, UncertaintyCollector

        n_w = len(self.alpha_)
        budget = round(self.answers_per_item * len(pos))
        agg = GTX(accuracies={j: float(a) for j, a in enumerate(self.acc_mean_)},
                  classes=list(range(self.dataset.n_classes)))
        col = UncertaintyCollector(agg, classes=list(range(self.dataset.n_classes)), budget=budget, max_labels=n_w)
        col.add_items(range(len(pos)))
        n_lab = np.zeros(len(pos), dtype=np.int64)
        while (t := col.next_item()) is not None:  # one label per step: the live protocol
            i = cast(int, t)  # the items were added as range(len(pos))
            c = n_lab[i]
            col.add_label(i, int(order[i, c]), int(ans[i, c]))
            n_lab[i] += 1
        return n_lab

    # ------------------------------------------------------------------ the Oracle protocol
    def ask(self, ids: np.ndarray) -> Answers:
        """Aggregated (GTX) labels of ``ids`` with their (conservative) posteriors; collects answers
        for items not seen before."""
        self._setup()
        pos = self._positions(ids)
        new = np.unique(pos[self.label_[pos] == UNLABELED])
        self._collect(new)
        return Answers(self.label_[pos].copy(), p_correct=self.confidence_[pos].copy(),
                       posterior=np.clip(self.min_posterior_[pos], 0.0, 1.0))

    def label_confidence(self, ids: np.ndarray) -> np.ndarray:
        """P(true label == the given label | answers) for items already asked (conservative)."""
        self._setup()
        pos = self._positions(ids)
        missing = self.label_[pos] == UNLABELED
        if missing.any():
            raise InputError(f"item {ids[int(np.flatnonzero(missing)[0])]!r} was never asked; no posterior yet.")
        return self.confidence_[pos].copy()

    def prediction_error_probability(self, ids: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """Upper bound of P(true label != predicted | answers): 1 - the smallest posterior of the
        predicted class over the accuracy limits (exact for ``conservative=False``).

        Where the prediction agrees with the aggregated label this is ``1 - label_confidence``;
        where it disagrees it is below 1 (the noise-aware certifier otherwise counts 1).
        """
        self._setup()
        pos = self._positions(ids)
        pred = np.asarray(predicted, dtype=np.int64)
        if pred.shape != pos.shape:
            raise InputError(f"predicted must have shape {pos.shape}; got {pred.shape}.")
        missing = self.label_[pos] == UNLABELED
        if missing.any():
            raise InputError(f"item {ids[int(np.flatnonzero(missing)[0])]!r} was never asked; no posterior yet.")
        return np.clip(1.0 - self.min_posterior_[pos, pred], 0.0, 1.0)

    # ------------------------------------------------------------------ cost
    @property
    def answers_spent(self) -> int:
        """Crowd answers on queried items (the gold set's answers excluded)."""
        return int(self.n_answers_.sum()) if self._ready else 0

    @property
    def gold_answers(self) -> int:
        return int(len(self.gold_) * len(self.alpha_)) if self._ready else 0

    @property
    def cost(self) -> float:
        """Total price: crowd answers (queries and gold set) and the gold set's expert labels."""
        if not self._ready:
            return 0.0
        return float(self.crowd_cost * (self.answers_spent + self.gold_answers) + self.expert_cost * len(self.gold_))

    def summary(self) -> dict[str, Any]:
        self._setup()
        asked = self.label_ != UNLABELED
        y = self.dataset.y
        assert y is not None, "_setup checked the dataset has ground truth"
        return {
            "items_asked": int(asked.sum()),
            "answers_spent": self.answers_spent,
            "answers_per_item": float(self.n_answers_[asked].mean()) if asked.any() else 0.0,
            "gold_items": len(self.gold_),
            "cost": self.cost,
            "label_error": float((self.label_[asked] != y[asked]).mean()) if asked.any() else float("nan"),
            "mean_label_confidence": float(self.confidence_[asked].mean()) if asked.any() else float("nan"),
        }
