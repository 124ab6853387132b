"""Label collection under a fixed budget (GTX paper §2.3), live or simulated.

We never choose *who* labels: a labeler (human in the web app, or the simulator) asks
:meth:`next_item`, answers, and the answer comes back through :meth:`add_label`. One worker labels
an item at most once (labelers are drawn without replacement per item). Both collectors keep, per
item, the additive state of an :class:`~labelsieve.crowd._base.AdditiveAggregator` (MV, WMV, SV,
GTX), so one label costs O(n_classes).

- :class:`ThresholdCollector` (strategy 1): items in arrival order; keep asking about the current
  item until its confidence reaches ``tau`` or it has ``kappa`` labels (``tau=None``: always
  ``kappa`` labels, the fixed-k baseline used for MV/WMV in Table 1). Streaming-friendly.
- :class:`UncertaintyCollector` (strategy 2): always the item with the largest
  ``u_i = 1 - max_y P(y | L(i))`` (eq. 5); ties go to the item with fewer labels, then the one
  added first, so every item gets one label before any gets a second.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from labelsieve._validation import check_interval, check_positive_int
from labelsieve.crowd._base import AdditiveAggregator, vote_scores
from labelsieve.errors import InputError, NotEnoughDataError, ParameterError

logger = logging.getLogger(__name__)


def uncertainty(proba: np.ndarray) -> np.ndarray:
    """Eq. 5: ``1 - max_y P(y | labels)`` for posteriors of shape (..., n_classes).

    >>> uncertainty(np.array([[0.5, 0.5], [0.9, 0.1]])).round(2).tolist()
    [0.5, 0.1]
    """
    return 1.0 - np.max(proba, axis=-1)


class _Collector:
    _owner = "Collector"

    def __init__(self, aggregator: AdditiveAggregator, *, classes: Sequence[Any], budget: int) -> None:
        if not isinstance(aggregator, AdditiveAggregator):
            raise ParameterError(
                f"The 'aggregator' parameter of {self._owner} must be one of MajorityVote, "
                f"WeightedMajorityVote, SoftVote, GTX. Got {type(aggregator).__name__} instead."
            )
        self.aggregator = aggregator
        self.classes = pd.Index(list(classes))
        if len(self.classes) < 1 or self.classes.has_duplicates:
            raise ParameterError(f"The 'classes' parameter of {self._owner} must list distinct classes. "
                                 f"Got {list(classes)!r} instead.")
        self.budget = check_positive_int("budget", budget, owner=self._owner, minimum=0)
        aggregator._check_params()
        self._k = len(self.classes)
        self._code = {c: i for i, c in enumerate(self.classes)}
        self._init = aggregator.initial_scores(self.classes)
        self._tasks: list[Hashable] = []
        self._index: dict[Hashable, int] = {}
        self._scores = np.empty((0, self._k))
        self._n = np.empty(0, dtype=np.int64)
        self._seen: set[tuple[Hashable, Hashable]] = set()
        self._acc: dict[Hashable, tuple[float, float]] = {}
        self._log: list[tuple[Hashable, Hashable, Any]] = []

    # --- items ----------------------------------------------------------------------------------
    def add_items(self, tasks: Iterable[Hashable]) -> None:
        """Register new items (streaming: may be called any time)."""
        new = list(tasks)
        for t in new:
            if t in self._index:
                raise InputError(f"{self._owner}: item {t!r} was added twice.")
            self._index[t] = len(self._tasks)
            self._tasks.append(t)
        self._scores = np.vstack([self._scores, np.tile(self._init, (len(new), 1))])
        self._n = np.concatenate([self._n, np.zeros(len(new), dtype=np.int64)])
        self._on_items_added(len(self._tasks) - len(new), len(self._tasks))

    def _on_items_added(self, start: int, stop: int) -> None:
        pass

    @property
    def n_spent(self) -> int:
        """Labels collected so far."""
        return len(self._log)

    @property
    def budget_left(self) -> int:
        return self.budget - len(self._log)

    # --- labels ---------------------------------------------------------------------------------
    def _terms(self, worker: Hashable) -> tuple[float, float]:
        if worker not in self._acc:
            acc = self.aggregator.resolve_accuracies(pd.Index([worker]))
            same, other = self.aggregator.label_terms(acc, self._k)
            self._acc[worker] = (float(same[0]), float(other[0]))
        return self._acc[worker]

    def add_label(self, task: Hashable, worker: Hashable, label: Any) -> None:
        """Record ``worker``'s answer ``label`` for ``task`` and update its posterior."""
        i = self._index.get(task)
        if i is None:
            raise InputError(f"{self._owner}: unknown item {task!r}; call add_items first.")
        code = self._code.get(label, -1)
        if code < 0:
            raise InputError(f"{self._owner}: label {label!r} for item {task!r} is not one of the classes "
                             f"{list(self.classes)!r}.")
        if (task, worker) in self._seen:
            raise InputError(f"{self._owner}: worker {worker!r} already labeled item {task!r}.")
        if self.budget_left <= 0:
            raise NotEnoughDataError(f"{self._owner}: the budget of {self.budget} labels is spent.")
        same, other = self._terms(worker)
        self._scores[i] += other
        self._scores[i, code] += same - other
        self._n[i] += 1
        self._seen.add((task, worker))
        self._log.append((task, worker, label))
        self._on_label(i)

    def _on_label(self, i: int) -> None:
        pass

    def set_aggregator(self, aggregator: AdditiveAggregator) -> None:
        """Swap the aggregator (e.g. for re-estimated accuracies) and recompute every item's state
        from the labels collected so far, in one vectorised pass."""
        if not isinstance(aggregator, AdditiveAggregator):
            raise ParameterError(f"{self._owner}.set_aggregator needs an additive aggregator (MV, WMV, SV, GTX). "
                                 f"Got {type(aggregator).__name__} instead.")
        aggregator._check_params()
        self.aggregator = aggregator
        self._acc = {}
        self._init = aggregator.initial_scores(self.classes)
        scores = np.tile(self._init, (len(self._tasks), 1))
        if self._log:
            ti = np.fromiter((self._index[t] for t, _, _ in self._log), dtype=np.int64, count=len(self._log))
            codes = np.fromiter((self._code[y] for _, _, y in self._log), dtype=np.int64, count=len(self._log))
            wcode, workers = pd.factorize(pd.Series([w for _, w, _ in self._log], dtype=object))
            same, other = aggregator.label_terms(aggregator.resolve_accuracies(pd.Index(workers)), self._k)
            scores += vote_scores(ti, codes, same[wcode], other[wcode], len(self._tasks), self._k)
        self._scores = scores
        self._on_rescored()

    def _on_rescored(self) -> None:
        pass

    def proba_array(self, idx: np.ndarray | int | slice = slice(None)) -> np.ndarray:
        """Posteriors of items by position, shape (..., n_classes)."""
        return self.aggregator.proba_from_scores(self._scores[idx])

    def posterior(self, task: Hashable) -> pd.Series:
        """Current posterior of one item, a Series indexed by class."""
        if task not in self._index:
            raise InputError(f"{self._owner}: unknown item {task!r}.")
        return pd.Series(self.proba_array(self._index[task]), index=self.classes, name=task)

    def labels(self) -> pd.DataFrame:
        """All collected labels as a ``task, worker, label`` table (collection order)."""
        return pd.DataFrame(self._log, columns=["task", "worker", "label"])

    def result(self) -> pd.DataFrame:
        """One row per item with at least one label: ``task, label, confidence, n_labels``."""
        has = self._n > 0
        proba = self.proba_array(has)
        codes = proba.argmax(axis=1)
        return pd.DataFrame({
            "task": np.asarray(self._tasks, dtype=object)[has],
            "label": self.classes.take(codes),
            "confidence": proba[np.arange(len(codes)), codes],
            "n_labels": self._n[has],
        })

    def next_item(self) -> Hashable | None:  # pragma: no cover - abstract
        raise NotImplementedError


class ThresholdCollector(_Collector):
    """Confidence-threshold collection (GTX §2.3, strategy 1).

    Parameters
    ----------
    aggregator : MajorityVote, WeightedMajorityVote, SoftVote or GTX (with its accuracies)
    classes : sequence of the classes
    budget : int >= 0, total number of labels
    tau : float in (0.5, 1] or None
        Stop asking about an item once its confidence is >= tau; None: always ``kappa`` labels.
    kappa : int >= 1, maximum labels per item

    Examples
    --------
    >>> from labelsieve.crowd import GTX
    >>> c = ThresholdCollector(GTX(accuracies={"a": 0.9, "b": 0.95}), classes=[0, 1], budget=10, tau=0.95, kappa=3)
    >>> c.add_items(["img1", "img2"])
    >>> c.next_item()
    'img1'
    >>> c.add_label("img1", "a", 1); c.next_item()  # 0.9 < 0.95: ask again
    'img1'
    >>> c.add_label("img1", "b", 1); c.next_item()  # 0.994 >= 0.95: next item
    'img2'
    """

    _owner = "ThresholdCollector"

    def __init__(
        self,
        aggregator: AdditiveAggregator,
        *,
        classes: Sequence[Any],
        budget: int,
        tau: float | None = 0.95,
        kappa: int = 5,
    ) -> None:
        super().__init__(aggregator, classes=classes, budget=budget)
        if tau is not None:
            check_interval("tau", tau, owner=self._owner, low=0.5, high=1.0, closed="right")
        self.tau = tau
        self.kappa = check_positive_int("kappa", kappa, owner=self._owner)
        self._cursor = 0

    def is_done(self, i: int) -> bool:
        """Whether the item at position ``i`` needs no more labels."""
        if self._n[i] >= self.kappa:
            return True
        if self.tau is None or self._n[i] == 0:
            return False
        return bool(self.proba_array(i).max() >= self.tau)

    def next_item(self) -> Hashable | None:
        """The first item in arrival order that still needs labels, or None (budget spent / no item)."""
        if self.budget_left <= 0:
            return None
        while self._cursor < len(self._tasks) and self.is_done(self._cursor):
            self._cursor += 1
        return self._tasks[self._cursor] if self._cursor < len(self._tasks) else None


class UncertaintyCollector(_Collector):
    """Uncertainty sampling (GTX §2.3, strategy 2, eq. 5).

    Parameters
    ----------
    aggregator, classes, budget : as in :class:`ThresholdCollector`
    max_labels : int >= 1, optional
        Items with this many labels are not asked again (set it to the size of the labeler pool,
        since a labeler labels an item at most once). Default: no limit.

    Examples
    --------
    >>> from labelsieve.crowd import MajorityVote
    >>> c = UncertaintyCollector(MajorityVote(), classes=["no", "yes"], budget=4)
    >>> c.add_items(["x", "y"])
    >>> c.next_item(); c.add_label("x", "w1", "yes")
    'x'
    >>> c.next_item(); c.add_label("y", "w1", "no"); c.add_label("y", "w2", "yes")
    'y'
    >>> c.next_item()  # y is split 50/50
    'y'
    """

    _owner = "UncertaintyCollector"

    def __init__(
        self,
        aggregator: AdditiveAggregator,
        *,
        classes: Sequence[Any],
        budget: int,
        max_labels: int | None = None,
    ) -> None:
        super().__init__(aggregator, classes=classes, budget=budget)
        if max_labels is not None:
            check_positive_int("max_labels", max_labels, owner=self._owner)
        self.max_labels = max_labels
        self._heap: list[tuple[float, int, int, int]] = []
        self._version: list[int] = []

    def _push(self, i: int) -> None:
        if self.max_labels is not None and self._n[i] >= self.max_labels:
            return
        u = float(uncertainty(self.proba_array(i)))
        heapq.heappush(self._heap, (-u, int(self._n[i]), i, self._version[i]))

    def _on_items_added(self, start: int, stop: int) -> None:
        self._version.extend([0] * (stop - start))
        for i in range(start, stop):
            self._push(i)

    def _on_label(self, i: int) -> None:
        self._version[i] += 1
        self._push(i)

    def _on_rescored(self) -> None:
        self._heap = []
        self._version = [v + 1 for v in self._version]
        for i in range(len(self._tasks)):
            self._push(i)

    def next_item(self) -> Hashable | None:
        """The most uncertain item (ties: fewer labels, then earlier), or None."""
        if self.budget_left <= 0:
            return None
        heap = self._heap
        while heap and heap[0][3] != self._version[heap[0][2]]:
            heapq.heappop(heap)
        return self._tasks[heap[0][2]] if heap else None
