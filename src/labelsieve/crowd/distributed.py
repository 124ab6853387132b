"""Aggregation on an engine: blocks of whole tasks, the same pure step functions as in process.

The coded label table (:func:`~labelsieve.crowd._table.encode_table`, on the driver) is sorted by
task and cut into blocks that never split a task -- a group-by over tasks. What runs on a block is
declared by each aggregator (its *block statistics*, see :class:`~labelsieve.crowd._base.Aggregator`):

* ``block_setup(table)`` on the driver, once: what every block needs besides its labels (the
  per-worker vote terms of majority/weighted/soft vote and GTX); ``None`` for an EM start;
* ``block_posterior(block, params)``: the posteriors of a block's tasks (one map over the blocks);
* iterative aggregators (Dawid-Skene, one-coin) also ``block_statistics(block, params)``: the
  *sufficient statistics* of the next M-step, additive over blocks, which :meth:`TaskBlocks.sum`
  adds up on the engine (map-reduce); the driver turns the sums into parameters.

This module knows no aggregator by name: a new one declares its block statistics and runs here.
Only parameters (n_workers x K x K numbers) cross the network per iteration, never per-task data.
Results equal the in-process fit up to floating-point summation order (the tests check 1e-9).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelsieve.crowd._table import CrowdTable
from labelsieve.engine import ArraySource, Engine, partition_by_key, resolve_engine
from labelsieve.errors import LabelsieveError, ParameterError

#: Labels per block by default (a block never splits a task, so blocks can be a little larger).
DEFAULT_LABEL_BLOCK = 1_000_000


@dataclass(frozen=True)
class TaskBlock:
    """The labels of a run of whole tasks.

    ``task`` holds codes local to the block (``0 .. n_tasks - 1``); ``first`` is the global code of
    local task 0; ``worker`` and ``label`` are global codes (``n_workers``, ``n_classes`` of the
    whole table). The in-process fit is the one block :meth:`whole` of the table.
    """

    task: np.ndarray
    worker: np.ndarray
    label: np.ndarray
    first: int
    n_tasks: int
    n_workers: int
    n_classes: int

    @classmethod
    def from_columns(cls, block: dict[str, np.ndarray], n_workers: int, n_classes: int) -> TaskBlock:
        """A block of :func:`task_blocks` (global task codes, a contiguous sorted run)."""
        t = block["task"]
        first = int(t[0])
        return cls(t - first, block["worker"], block["label"], first, int(t[-1]) - first + 1, n_workers, n_classes)

    @classmethod
    def whole(cls, table: CrowdTable) -> TaskBlock:
        return cls(table.task, table.worker, table.label, 0, table.n_tasks, table.n_workers, table.n_classes)


def task_blocks(table: CrowdTable, block_size: int) -> ArraySource:
    """The label table partitioned by task: blocks of about ``block_size`` labels of whole tasks.

    Block columns: ``task`` (global task code), ``worker``, ``label`` (and the engine's ``_key``).
    """
    cols = {"task": table.task, "worker": table.worker, "label": table.label}
    return partition_by_key(table.task, cols, block_size)


def add_statistics(a: Any, b: Any) -> Any:
    """Sum two block statistics element-wise: arrays, numbers, and tuples of them (nested too)."""
    if isinstance(a, tuple):
        return tuple(add_statistics(x, y) for x, y in zip(a, b, strict=True))
    return a + b


def _hyperparameters_only(agg: Any) -> Any:
    """A shallow copy of ``agg`` without learned state (``*_``): what is shipped to the workers, so a
    refitted aggregator does not send its previous posteriors with every block function."""
    shell = object.__new__(type(agg))
    shell.__dict__.update({k: v for k, v in vars(agg).items() if not k.endswith("_")})
    return shell


class _OnBlock:
    """``method(agg, TaskBlock(block), params)``: a picklable block function for the engine; with
    ``posterior=True`` the result is keyed by global task code for :meth:`BaseEngine.group_map`."""

    def __init__(self, method: Callable[..., Any], params: Any, table: CrowdTable, *,
                 posterior: bool = False) -> None:
        self.agg = _hyperparameters_only(method.__self__)  # type: ignore[attr-defined]
        self.func = method.__func__  # type: ignore[attr-defined]
        self.params = params
        self.shape = (table.n_workers, table.n_classes)
        self.posterior = posterior

    def __call__(self, block: dict[str, np.ndarray]) -> Any:
        b = TaskBlock.from_columns(block, *self.shape)
        out = self.func(self.agg, b, self.params)
        if self.posterior:
            return {"task": np.arange(b.first, b.first + b.n_tasks), "probas": out}
        return out


class TaskBlocks:
    """A label table cut into blocks of whole tasks on an engine: what an aggregator's
    ``fit_blocks`` may do with it (sum block statistics, collect block posteriors)."""

    def __init__(self, table: CrowdTable, engine: Engine, block_size: int) -> None:
        self.table = table
        self.engine = engine
        self.block_size = block_size
        self.source = task_blocks(table, block_size)

    def sum(self, statistics: Callable[[TaskBlock, Any], Any], params: Any) -> Any:
        """``statistics(block, params)`` of every block, added up (:func:`add_statistics`, in block order)."""
        return self.engine.map_reduce(_OnBlock(statistics, params, self.table), self.source, add_statistics,
                                      block_size=self.block_size)

    def posteriors(self, posterior: Callable[[TaskBlock, Any], np.ndarray], params: Any) -> np.ndarray:
        """``posterior(block, params)`` of every block, stacked into (n_tasks, n_classes)."""
        out = self.engine.group_map(_OnBlock(posterior, params, self.table, posterior=True), self.source,
                                    block_size=self.block_size)
        n = self.table.n_tasks
        if not np.array_equal(out.get("task", np.empty(0)), np.arange(n)):
            raise LabelsieveError(f"engine returned {len(out.get('task', ()))} task posteriors for {n} tasks.")
        return out["probas"]


def fit_table(agg: Any, table: CrowdTable, engine: Any, *, block_size: int | None = None) -> np.ndarray:
    """Posteriors (n_tasks, n_classes) of ``agg`` on ``table``, computed over task blocks on ``engine``.

    The aggregator's ``fit_blocks`` sets the same learned attributes as its in-process fit.
    """
    eng = resolve_engine(engine)
    bs = DEFAULT_LABEL_BLOCK if block_size is None else block_size
    if isinstance(bs, bool) or not isinstance(bs, (int, np.integer)) or bs < 1:
        raise ParameterError(f"The 'block_size' parameter of {agg._owner}.fit must be an int >= 1. Got {bs!r} instead.")
    return agg.fit_blocks(table, TaskBlocks(table, eng, int(bs)))
