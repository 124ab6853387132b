"""Common frame of the aggregators: crowd-kit's ``fit / fit_predict / fit_predict_proba`` over a
``task, worker, label`` table, scikit-learn's parameter and learned-state conventions.

Hard labels break ties towards the **lowest class code** (the first class in ``classes``, which
is the sorted order when classes are inferred). Confidence is the posterior of the chosen class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from labelsieve._registry import Registry
from labelsieve._validation import check_option
from labelsieve.crowd._table import (
    DEFAULT_UNKNOWN_ACCURACY,
    CrowdTable,
    accuracy_mapping,
    encode_table,
    worker_accuracy_codes,
)
from labelsieve.crowd.distributed import TaskBlock, TaskBlocks, fit_table
from labelsieve.errors import NotFittedError, ParameterError


def vote_scores(
    task: np.ndarray,
    label: np.ndarray,
    same: np.ndarray,
    other: np.ndarray,
    n_tasks: int,
    n_classes: int,
) -> np.ndarray:
    """Sum per-label class scores by task.

    Label ``r`` adds ``same[r]`` to the class it names and ``other[r]`` to every other class.

    Parameters
    ----------
    task, label : int arrays of shape (n_labels,)
    same, other : float arrays of shape (n_labels,)

    Returns
    -------
    ndarray of shape (n_tasks, n_classes)

    >>> vote_scores(np.array([0, 0, 1]), np.array([1, 0, 1]), np.ones(3), np.zeros(3), 2, 2)
    array([[1., 1.],
           [0., 1.]])
    """
    flat = np.bincount(task * n_classes + label, weights=same - other, minlength=n_tasks * n_classes)
    base = np.bincount(task, weights=other, minlength=n_tasks)
    return flat.reshape(n_tasks, n_classes) + base[:, None]


def normalize_rows(scores: np.ndarray) -> np.ndarray:
    """Divide each row by its sum (vote shares), shape preserved."""
    return scores / scores.sum(axis=1, keepdims=True)


class Aggregator:
    """Base class: subclasses implement ``_fit_table(table) -> probas (n_tasks, n_classes)`` and
    declare their *block statistics* for the engine path (``block_setup`` / ``block_posterior``,
    plus ``block_statistics`` and ``fit_blocks`` for iterative ones; see
    :mod:`labelsieve.crowd.distributed`), and register with :func:`register_aggregator`.

    Learned attributes: ``probas_`` (DataFrame tasks x classes), ``labels_`` (Series by task),
    ``confidence_`` (Series), ``n_labels_`` (Series), ``classes_`` (Index). Reading one before
    ``fit`` raises :class:`~labelsieve.errors.NotFittedError`.
    """

    _owner: str = "Aggregator"
    #: True when the aggregator takes labeler accuracies (``accuracies=``; the CLI's --gold/--accuracies).
    uses_accuracies: bool = False

    def __init__(self, *, classes: Sequence[Any] | None = None) -> None:
        self.classes = classes

    # --- public API ---------------------------------------------------------------------------
    def fit(self, data: pd.DataFrame, *, engine: Any = None, block_size: int | None = None) -> Aggregator:
        """Aggregate a long table with columns ``task, worker, label``; returns ``self``.

        ``engine`` (``"local"``, ``"ray"`` or an engine instance; default: in process, no blocks)
        runs the aggregation over blocks of whole tasks (:mod:`labelsieve.crowd.distributed`).
        """
        self._check_params()
        table = encode_table(data, classes=self.classes, source=self._owner)
        if engine is None:
            probas = self._fit_table(table)
        else:
            probas = fit_table(self, table, engine, block_size=block_size)
        self._set_outputs(table, probas)
        return self

    def fit_predict(self, data: pd.DataFrame) -> pd.Series:
        """Hard labels, a Series indexed by task (ties: lowest class code)."""
        return self.fit(data).labels_

    def fit_predict_proba(self, data: pd.DataFrame) -> pd.DataFrame:
        """Posterior per class, a DataFrame of shape (n_tasks, n_classes) indexed by task."""
        return self.fit(data).probas_

    # --- hooks ----------------------------------------------------------------------------------
    def _check_params(self) -> None:
        pass

    def _fit_table(self, table: CrowdTable) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- block statistics: the fit over blocks of whole tasks on an engine ---------------------
    def block_setup(self, table: CrowdTable) -> Any:
        """Driver side, once per fit: what every block needs besides its labels (``params`` of
        :meth:`block_posterior`); may set learned attributes computed from the whole table."""
        raise ParameterError(
            f"{type(self).__name__} declares no block statistics (block_setup / block_posterior), so it "
            f"has no engine path; fit it without engine=."
        )

    def block_posterior(self, block: TaskBlock, params: Any) -> np.ndarray:  # pragma: no cover - abstract
        """Posteriors (block.n_tasks, n_classes) of the tasks of one block under ``params``."""
        raise NotImplementedError

    def fit_blocks(self, table: CrowdTable, blocks: TaskBlocks) -> np.ndarray:
        """Posteriors of every task computed through ``blocks`` only; default: one map of
        :meth:`block_posterior` under :meth:`block_setup`'s parameters."""
        return blocks.posteriors(self.block_posterior, self.block_setup(table))

    def __getattr__(self, name: str) -> Any:
        # only called for attributes that do not exist: a learned one (``*_``) means "not fitted"
        if name.endswith("_") and not name.startswith("__"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; call 'fit' first "
                                 f"(no '{name}').")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _set_outputs(self, table: CrowdTable, probas: np.ndarray) -> None:
        self.table_ = table
        self.classes_ = table.classes
        self.probas_ = pd.DataFrame(probas, index=table.tasks, columns=table.classes)
        codes = probas.argmax(axis=1)
        self.labels_ = pd.Series(table.classes.take(codes), index=table.tasks, name="agg_label")
        self.confidence_ = pd.Series(probas[np.arange(len(codes)), codes], index=table.tasks,
                                     name="confidence")
        self.n_labels_ = pd.Series(table.labels_per_task(), index=table.tasks, name="n_labels")


class AdditiveAggregator(Aggregator):
    """Aggregators whose per-task state is a sum of one K-vector per label (MV, WMV, SV, GTX).

    This makes them usable label by label in :mod:`labelsieve.crowd.collection`: the state of a
    task is ``scores`` of shape (n_classes,), one label adds ``other`` everywhere and
    ``same - other`` to the named class, and :meth:`proba_from_scores` turns states into posteriors.
    """

    uses_accuracies: bool = True

    def __init__(
        self,
        *,
        accuracies: Any = None,
        classes: Sequence[Any] | None = None,
        unknown_worker: str = "prior",
        unknown_accuracy: float | None = None,
    ) -> None:
        super().__init__(classes=classes)
        self.accuracies = accuracies
        self.unknown_worker = unknown_worker
        self.unknown_accuracy = unknown_accuracy

    def _check_params(self) -> None:
        check_option("unknown_worker", self.unknown_worker, owner=self._owner, options=("prior", "error"))
        if self.unknown_accuracy is not None:
            v = self.unknown_accuracy
            if not isinstance(v, (int, float, np.floating)) or not (0.0 < float(v) < 1.0):
                raise ParameterError(
                    f"The 'unknown_accuracy' parameter of {self._owner} must be in (0, 1) or None. "
                    f"Got {v!r} instead."
                )
        if self.uses_accuracies and self.accuracies is not None:
            accuracy_mapping(self.accuracies, owner=self._owner)

    # pieces the collector reuses -----------------------------------------------------------------
    def _unknown_acc(self) -> float:
        return DEFAULT_UNKNOWN_ACCURACY if self.unknown_accuracy is None else float(self.unknown_accuracy)

    def resolve_accuracies(self, workers: pd.Index) -> np.ndarray:
        """Accuracy of each worker in ``workers``, shape (n_workers,); applies the unknown-worker rule.

        Without ``accuracies`` every worker is unknown (so ``unknown_worker='error'`` then raises).
        """
        self._check_params()
        if not self.uses_accuracies:
            return np.ones(len(workers))
        acc = (pd.Series(dtype=float) if self.accuracies is None
               else accuracy_mapping(self.accuracies, owner=self._owner))
        return worker_accuracy_codes(workers, acc, unknown_worker=self.unknown_worker,
                                     unknown_accuracy=self._unknown_acc(), owner=self._owner)

    def label_terms(self, acc: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """(same, other) score added by labels from workers with accuracies ``acc``."""
        raise NotImplementedError  # pragma: no cover

    def initial_scores(self, classes: pd.Index) -> np.ndarray:
        """State of a task with no label, shape (n_classes,)."""
        return np.zeros(len(classes))

    def proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """Posterior from states of shape (..., n_classes); a task without labels gets the prior."""
        total = scores.sum(axis=-1, keepdims=True)
        k = scores.shape[-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = scores / total
        return np.where(total > 0, out, 1.0 / k)

    def _fit_table(self, table: CrowdTable) -> np.ndarray:
        return self.block_posterior(TaskBlock.whole(table), self.block_setup(table))

    # block statistics: none to sum; every block needs the per-worker terms and the initial state
    def block_setup(self, table: CrowdTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        acc = self.resolve_accuracies(table.workers)
        self.skills_ = pd.Series(acc, index=table.workers, name="accuracy")
        same_w, other_w = self.label_terms(acc, table.n_classes)  # per worker, gathered per label below
        return same_w, other_w, np.asarray(self.initial_scores(table.classes), dtype=float)

    def block_posterior(self, block: TaskBlock, params: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        same_w, other_w, init = params
        w = block.worker
        scores = vote_scores(block.task, block.label, same_w[w], other_w[w], block.n_tasks, init.size)
        return self.proba_from_scores(scores + init)


def _check_aggregator(member: Any) -> None:
    if not (isinstance(member, type) and issubclass(member, Aggregator)):
        raise TypeError(f"an aggregator must be a subclass of labelsieve.crowd.Aggregator. Got {member!r}.")


#: Every aggregator by CLI name (``labelsieve aggregate --method NAME``).
AGGREGATORS: Registry[type[Aggregator]] = Registry("aggregator", parameter="method", check=_check_aggregator)


def register_aggregator(name: str) -> Any:
    """Class decorator: ``@register_aggregator("mv")`` makes ``--method mv`` and the contract
    suite (``tests/test_contracts.py``) know the class."""
    return AGGREGATORS.register(name)


def get_aggregator(name: str) -> type[Aggregator]:
    """The aggregator class called ``name``; :class:`ParameterError` listing the names otherwise.

    (Importing this module imports the package ``labelsieve.crowd`` first, which registers the
    built-in aggregators.)

    >>> from labelsieve.crowd import get_aggregator
    >>> get_aggregator("mv").__name__
    'MajorityVote'
    """
    return AGGREGATORS.resolve(name)
