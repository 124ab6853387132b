"""Validation and integer coding of a long crowd table ``task, worker, label`` (done once per fit).

Every aggregator converts its input with :func:`encode_table` and then works on NumPy integer
codes only. Messages name the row (DataFrame index label, or the file line when ``line_offset``
is given) and the offending value, so the CLI can print them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from labelsieve.errors import InputError, ParameterError

REQUIRED_COLUMNS = ("task", "worker", "label")

#: Accuracy given to a worker absent from the accuracy table when ``unknown_worker="prior"``:
#: the posterior mean a / (a + b) of the default Beta(1, 1) prior of :func:`estimate_accuracies`
#: for a labeler with no gold answers, i.e. 0.5.
DEFAULT_ACCURACY_PRIOR = (1.0, 1.0)
DEFAULT_UNKNOWN_ACCURACY = DEFAULT_ACCURACY_PRIOR[0] / sum(DEFAULT_ACCURACY_PRIOR)


def show(value: Any) -> str:
    """repr of a value with NumPy scalars shown as plain Python values (5, not np.int64(5))."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _where(df: pd.DataFrame, pos: int, source: str, line_offset: int | None) -> str:
    if line_offset is not None:
        return f"{source}, line {pos + line_offset}"
    return f"{source}, row {show(df.index[pos])}"


@dataclass(frozen=True)
class CrowdTable:
    """A crowd table as integer codes.

    Attributes
    ----------
    task, worker, label : ndarray of shape (n_labels,)
        Integer codes into ``tasks``, ``workers`` and ``classes``.
    tasks, workers, classes : pandas.Index
        Distinct tasks (order of first appearance), distinct workers (order of first appearance),
        and classes (declared order, or sorted unique labels).
    """

    task: np.ndarray
    worker: np.ndarray
    label: np.ndarray
    tasks: pd.Index
    workers: pd.Index
    classes: pd.Index

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def n_workers(self) -> int:
        return len(self.workers)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_labels(self) -> int:
        return int(self.task.size)

    def labels_per_task(self) -> np.ndarray:
        """Number of labels of each task, shape (n_tasks,)."""
        return np.bincount(self.task, minlength=self.n_tasks)

    def task_matrix(self) -> sparse.csr_matrix:
        """Incidence matrix of shape (n_tasks, n_labels): ``M @ v`` sums ``v`` over each task's labels."""
        n = self.n_labels
        return sparse.csr_matrix(
            (np.ones(n), (self.task, np.arange(n))), shape=(self.n_tasks, n)
        )


def encode_table(
    data: pd.DataFrame,
    *,
    classes: Sequence[Any] | None = None,
    source: str = "labels",
    line_offset: int | None = None,
) -> CrowdTable:
    """Check a ``task, worker, label`` table and convert it to integer codes.

    Parameters
    ----------
    data : DataFrame with columns ``task``, ``worker``, ``label`` (others are ignored)
    classes : sequence, optional
        Declared classes; labels outside them raise :class:`InputError`. Default: sorted unique labels.
    source : str
        Name used in error messages (a file name for the CLI).
    line_offset : int, optional
        When given, errors say ``line (position + line_offset)`` instead of the index label.

    Raises
    ------
    InputError
        Not a DataFrame, a missing column, an empty table, a missing value (NaN/None), a label
        outside ``classes``, or a (task, worker) pair present twice.

    Examples
    --------
    >>> t = encode_table(pd.DataFrame({"task": ["a", "a", "b"], "worker": [1, 2, 1], "label": [1, 0, 1]}))
    >>> t.task.tolist(), t.worker.tolist(), t.label.tolist(), list(t.classes)
    ([0, 0, 1], [0, 1, 0], [1, 0, 1], [0, 1])
    """
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"{source}: expected a pandas DataFrame with columns task, worker, label; "
                         f"got {type(data).__name__}.")
    missing = [c for c in REQUIRED_COLUMNS if c not in data.columns]
    if missing:
        raise InputError(f"{source}: missing required column(s) {', '.join(missing)}; "
                         f"found {', '.join(map(str, data.columns)) or 'none'}.")
    if len(data) == 0:
        raise InputError(f"{source}: the table has no rows (need at least one task, worker, label).")
    for col in REQUIRED_COLUMNS:
        isna = data[col].isna().to_numpy()
        if isna.any():
            pos = int(np.flatnonzero(isna)[0])
            raise InputError(f"{_where(data, pos, source, line_offset)}: missing value in column '{col}'.")

    task_codes, tasks = pd.factorize(data["task"], sort=False)
    worker_codes, workers = pd.factorize(data["worker"], sort=False)
    if classes is None:
        label_codes, class_index = pd.factorize(data["label"], sort=True)
    else:
        class_index = pd.Index(list(classes))
        if len(class_index) == 0:
            raise ParameterError("The 'classes' parameter must hold at least one class. Got [] instead.")
        if class_index.has_duplicates:
            raise ParameterError(f"The 'classes' parameter must not repeat a class. Got {list(classes)!r} instead.")
        label_codes = class_index.get_indexer(data["label"])
        bad = label_codes < 0
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{_where(data, pos, source, line_offset)}: label {show(data['label'].iloc[pos])} is not one of "
                f"the declared classes {list(class_index)!r}."
            )

    task_codes = np.asarray(task_codes, dtype=np.int64)
    worker_codes = np.asarray(worker_codes, dtype=np.int64)
    key = task_codes * len(workers) + worker_codes
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    dup = np.flatnonzero(sorted_key[1:] == sorted_key[:-1])
    if dup.size:
        first, second = sorted((int(order[dup[0]]), int(order[dup[0] + 1])))
        raise InputError(
            f"{_where(data, second, source, line_offset)}: task {show(data['task'].iloc[second])} was already "
            f"labeled by worker {show(data['worker'].iloc[second])} "
            f"({_where(data, first, source, line_offset)}); one label per (task, worker) pair."
        )
    return CrowdTable(
        task=task_codes,
        worker=worker_codes,
        label=np.asarray(label_codes, dtype=np.int64),
        tasks=pd.Index(tasks, name="task"),
        workers=pd.Index(workers, name="worker"),
        classes=pd.Index(class_index, name="label"),
    )


def accuracy_mapping(accuracies: Any, *, owner: str, name: str = "accuracies") -> pd.Series:
    """Return labeler accuracies as a float Series indexed by worker, each in the open interval (0, 1).

    Accepts a mapping ``worker -> accuracy``, a Series indexed by worker, or a DataFrame with
    columns ``worker`` and ``accuracy`` (e.g. from :func:`estimate_accuracies` after renaming).
    """
    if isinstance(accuracies, pd.DataFrame):
        if not {"worker", "accuracy"} <= set(accuracies.columns):
            raise ParameterError(
                f"The '{name}' parameter of {owner} as a DataFrame needs columns worker, accuracy. "
                f"Got columns {list(accuracies.columns)!r} instead."
            )
        acc = pd.Series(accuracies["accuracy"].to_numpy(), index=accuracies["worker"].to_numpy())
    elif isinstance(accuracies, pd.Series):
        acc = accuracies
    elif isinstance(accuracies, Mapping):
        acc = pd.Series(dict(accuracies), dtype=object)
    else:
        raise ParameterError(
            f"The '{name}' parameter of {owner} must be a mapping worker -> accuracy, a Series or a "
            f"DataFrame. Got {type(accuracies).__name__} instead."
        )
    if acc.index.has_duplicates:
        w = acc.index[acc.index.duplicated()][0]
        raise ParameterError(f"The '{name}' parameter of {owner} lists worker {show(w)} twice.")
    values = pd.to_numeric(acc, errors="coerce").to_numpy(dtype=float)
    bad = ~((values > 0.0) & (values < 1.0))
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ParameterError(
            f"The '{name}' parameter of {owner} must hold accuracies in (0, 1). Got {show(acc.iloc[pos])} "
            f"for worker {show(acc.index[pos])} instead (use a Beta posterior mean rather than a raw MLE of 0 or 1)."
        )
    return pd.Series(values, index=acc.index, dtype=float)


def worker_accuracy_codes(
    table_workers: pd.Index,
    accuracies: pd.Series,
    *,
    unknown_worker: str,
    unknown_accuracy: float,
    owner: str,
) -> np.ndarray:
    """Accuracy of each coded worker, shape (n_workers,); unknown workers get ``unknown_accuracy``
    (``unknown_worker="prior"``) or raise :class:`InputError` (``"error"``)."""
    pos = accuracies.index.get_indexer(table_workers)
    missing = pos < 0
    if missing.any() and unknown_worker == "error":
        w = table_workers[int(np.flatnonzero(missing)[0])]
        raise InputError(
            f"{owner}: worker {show(w)} has no accuracy ({int(missing.sum())} worker(s) missing); "
            f"give one or use unknown_worker='prior'."
        )
    values = accuracies.to_numpy(dtype=float)
    return np.where(missing, unknown_accuracy, values[np.where(missing, 0, pos)] if values.size else 0.0)
