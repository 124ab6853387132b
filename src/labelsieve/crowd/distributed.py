"""Aggregation on an engine: blocks of whole tasks, the same pure step functions as in process.

The coded label table (:func:`~labelsieve.crowd._table.encode_table`, on the driver) is sorted by
task and cut into blocks that never split a task -- a group-by over tasks. Then:

* majority vote, weighted/soft vote and GTX: each block's posteriors are
  :func:`~labelsieve.crowd._base.vote_scores` of its labels (one map over the blocks);
* Dawid-Skene (full and one-coin): every EM iteration maps the E-step over the blocks
  (:func:`~labelsieve.crowd.dawid_skene.ds_e_step` / ``one_coin_e_step``), each block returns the
  *sufficient statistics* of the next M-step (:func:`ds_counts` / :func:`one_coin_counts`, the
  summed posterior, the log-likelihood), the engine sums them (map-reduce), and the driver turns the
  sums into parameters (:func:`ds_params` / :func:`one_coin_params`). A last map computes the
  posteriors under the final parameters.

Only parameters (n_workers x K x K numbers) cross the network per iteration, never per-task data.
Results equal the in-process fit up to floating-point summation order (the tests check 1e-9).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from labelsieve.crowd._base import AdditiveAggregator, Aggregator, vote_scores
from labelsieve.crowd._table import CrowdTable
from labelsieve.crowd.dawid_skene import (
    DawidSkene,
    OneCoinDawidSkene,
    ds_counts,
    ds_e_step,
    ds_params,
    one_coin_counts,
    one_coin_e_step,
    one_coin_params,
)
from labelsieve.crowd.majority_vote import majority_vote_proba
from labelsieve.engine import ArraySource, partition_by_key, resolve_engine
from labelsieve.errors import LabelsieveError, ParameterError

#: Labels per block by default (a block never splits a task, so blocks can be a little larger).
DEFAULT_LABEL_BLOCK = 1_000_000


def task_blocks(table: CrowdTable, block_size: int) -> ArraySource:
    """The label table partitioned by task: blocks of about ``block_size`` labels of whole tasks.

    Block columns: ``task`` (global task code), ``worker``, ``label`` (and the engine's ``_key``).
    """
    cols = {"task": table.task, "worker": table.worker, "label": table.label}
    return partition_by_key(table.task, cols, block_size)


def _local(block: dict[str, np.ndarray]) -> tuple[np.ndarray, int, int]:
    """Task codes local to a block (its tasks are a contiguous run of sorted codes)."""
    t = block["task"]
    first = int(t[0])
    return t - first, first, int(t[-1]) - first + 1


# ------------------------------------------------------------------------------- vote aggregators
def _vote_block(block: dict[str, np.ndarray], same_w: np.ndarray, other_w: np.ndarray, init: np.ndarray,
                agg: AdditiveAggregator) -> dict[str, np.ndarray]:
    local, first, n = _local(block)
    w = block["worker"]
    scores = vote_scores(local, block["label"], same_w[w], other_w[w], n, init.size) + init
    return {"task": np.arange(first, first + n), "probas": agg.proba_from_scores(scores)}


# ---------------------------------------------------------------------------------- Dawid-Skene
def _ds_matrix(block: dict[str, np.ndarray], local: np.ndarray, n: int, n_workers: int, k: int) -> sparse.csr_matrix:
    """(n_workers * K, n_local_tasks) incidence of (worker, label) and task, as in the in-process fit."""
    return sparse.csr_matrix(
        (np.ones(local.size), (block["worker"] * k + block["label"], local)), shape=(n_workers * k, n)
    )


def _ds_block(block: dict[str, np.ndarray], params: Any, n_workers: int, k: int, smoothing: float,
              want: str) -> Any:
    local, first, n = _local(block)
    wl_by_task = _ds_matrix(block, local, n, n_workers, k)
    if params is None:  # the EM starts from majority-vote posteriors
        post, loglik = majority_vote_proba(local, block["label"], n, k), 0.0
    else:
        post, loglik = ds_e_step(wl_by_task.T.tocsr(), *params)
    if want == "posterior":
        return {"task": np.arange(first, first + n), "probas": post}
    return ds_counts(wl_by_task, post, n_workers), post.sum(axis=0), loglik


def _one_coin_block(block: dict[str, np.ndarray], params: Any, n_workers: int, k: int, want: str) -> Any:
    local, first, n = _local(block)
    w, y = block["worker"], block["label"]
    if params is None:
        post, loglik = majority_vote_proba(local, y, n, k), 0.0
    else:
        post, loglik = one_coin_e_step(local, w, y, params[0], params[1], n)
    if want == "posterior":
        return {"task": np.arange(first, first + n), "probas": post}
    hits, counts = one_coin_counts(local, w, y, post, n_workers)
    return (hits, counts), post.sum(axis=0), loglik


def _add(a: tuple, b: tuple) -> tuple:
    """Sum two statistics tuples element-wise (nested tuples too)."""
    return tuple(_add(x, y) if isinstance(x, tuple) else x + y for x, y in zip(a, b, strict=True))


# ------------------------------------------------------------------------------------- dispatch
def fit_table(agg: Aggregator, table: CrowdTable, engine: Any, *, block_size: int | None = None) -> np.ndarray:
    """Posteriors (n_tasks, n_classes) of ``agg`` on ``table``, computed over task blocks on ``engine``.

    Sets the same learned attributes as the in-process fit (``skills_``, ``errors_``, ``prior_``,
    ``n_iter_``, ``loss_history_``, ``params_``).
    """
    eng = resolve_engine(engine)
    bs = DEFAULT_LABEL_BLOCK if block_size is None else block_size
    if isinstance(bs, bool) or not isinstance(bs, (int, np.integer)) or bs < 1:
        raise ParameterError(f"The 'block_size' parameter of {agg._owner}.fit must be an int >= 1. Got {bs!r} instead.")
    src = task_blocks(table, int(bs))
    k, nw = table.n_classes, table.n_workers

    def collect(fn: Any) -> np.ndarray:
        out = eng.group_map(fn, src, block_size=int(bs))
        if not np.array_equal(out["task"], np.arange(table.n_tasks)):
            raise LabelsieveError(f"engine returned {len(out['task'])} task posteriors for {table.n_tasks} tasks.")
        return out["probas"]

    if isinstance(agg, AdditiveAggregator):
        acc = agg.resolve_accuracies(table.workers)
        agg.skills_ = pd.Series(acc, index=table.workers, name="accuracy")
        same_w, other_w = agg.label_terms(acc, k)
        init = np.asarray(agg.initial_scores(table.classes), dtype=float)
        return collect(lambda b: _vote_block(b, same_w, other_w, init, agg))

    if isinstance(agg, (DawidSkene, OneCoinDawidSkene)):
        full = isinstance(agg, DawidSkene)

        def block_fn(params: Any, want: str) -> Any:
            if full:
                smoothing = float(agg.smoothing)
                return lambda b: _ds_block(b, params, nw, k, smoothing, want)
            return lambda b: _one_coin_block(b, params, nw, k, want)

        def e_step(params: Any) -> tuple[Any, float]:
            stats, post_sum, loglik = eng.map_reduce(block_fn(params, "stats"), src, _add, block_size=int(bs))
            return (stats, post_sum), float(loglik)

        def m_step(state: Any) -> Any:
            stats, post_sum = state
            if full:
                return ds_params(stats, post_sum, table.n_tasks, float(agg.smoothing))
            return one_coin_params(stats[0], stats[1], post_sum, table.n_tasks)

        init_state, _ = e_step(None)  # majority-vote posteriors' statistics
        agg._em(table.n_labels, m_step(init_state), e_step, m_step)
        post = collect(block_fn(agg.params_, "posterior"))
        agg._set_params(table)
        return post

    raise ParameterError(
        f"{type(agg).__name__} has no engine path; use MajorityVote, WeightedMajorityVote, SoftVote, GTX, "
        f"DawidSkene or OneCoinDawidSkene, or fit without engine=."
    )
