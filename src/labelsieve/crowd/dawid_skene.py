"""Dawid-Skene EM (full confusion matrices) and its one-coin variant, for when no gold set exists.

Dawid & Skene (1979), "Maximum likelihood estimation of observer error-rates using the EM
algorithm", JRSS C 28(1). The one-coin model is the GTX model (GTX paper eq. 1-3) with the
accuracies learned: its E-step with fixed accuracies *is* :func:`~labelsieve.crowd.gtx.gtx_posterior`.

Both start from majority-vote posteriors, then alternate M-step and E-step, so the final
``probas_`` is always the E-step under the final ``errors_``/``skills_`` and ``prior_``.
The table is coded once; each step is a sparse matrix product (no pandas inside the loop).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning

from labelsieve._validation import check_interval, check_positive_int
from labelsieve.crowd._base import Aggregator, register_aggregator, vote_scores
from labelsieve.crowd._table import CrowdTable
from labelsieve.crowd.distributed import TaskBlock, TaskBlocks
from labelsieve.crowd.gtx import gtx_terms
from labelsieve.crowd.majority_vote import majority_vote_proba

logger = logging.getLogger(__name__)

#: Probabilities are clipped to [EPS, 1 - EPS] before taking logs (a worker who was never wrong).
EPS = 1e-10


def _log_clip(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, EPS, None))


def ds_incidence(task: np.ndarray, worker: np.ndarray, label: np.ndarray, n_tasks: int, n_workers: int,
                 n_classes: int) -> sparse.csr_matrix:
    """(n_workers * K, n_tasks) incidence: entry (w * K + l, i) = 1 when worker w gave label l to task i."""
    return sparse.csr_matrix(
        (np.ones(task.size), (worker * n_classes + label, task)), shape=(n_workers * n_classes, n_tasks)
    )


def ds_counts(counts_matrix: sparse.csr_matrix, post: np.ndarray, n_workers: int) -> np.ndarray:
    """Sufficient statistics of the M-step, additive over blocks of tasks.

    ``counts[w, k, l]`` = sum of ``post[i, k]`` over the tasks ``i`` that worker ``w`` labeled ``l``
    (D&S eq. 2.3, before normalising); shape (n_workers, K_true, K_observed).
    """
    k = post.shape[1]
    return np.asarray(counts_matrix @ post).reshape(n_workers, k, k).transpose(0, 2, 1)


def ds_params(
    counts: np.ndarray, post_sum: np.ndarray, n_tasks: int, smoothing: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Confusion matrices and class prior from the summed statistics (D&S eq. 2.3-2.4)."""
    k = counts.shape[1]
    counts = counts + smoothing
    totals = counts.sum(axis=2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        errors = np.where(totals > 0, counts / totals, 1.0 / k)
    return errors, post_sum / n_tasks


def ds_m_step(
    counts_matrix: sparse.csr_matrix,
    post: np.ndarray,
    n_workers: int,
    smoothing: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Full Dawid-Skene M-step: :func:`ds_params` of :func:`ds_counts`.

    Parameters
    ----------
    counts_matrix : sparse (n_workers * K, n_tasks)
        Entry (w * K + l, i) = 1 when worker w gave label l to task i.
    post : (n_tasks, K) posterior of the true class.
    smoothing : Dirichlet pseudo-count added to every confusion cell.

    Returns
    -------
    errors : (n_workers, K_true, K_observed), rows sum to 1: P(worker says l | truth k).
    prior : (K,)
    """
    return ds_params(ds_counts(counts_matrix, post, n_workers), post.sum(axis=0), post.shape[0], smoothing)


def ds_e_step(
    task_by_wl: sparse.csr_matrix, errors: np.ndarray, prior: np.ndarray
) -> tuple[np.ndarray, float]:
    """Full Dawid-Skene E-step: posterior (n_tasks, K) and the log-likelihood of the labels (D&S eq. 2.5).

    ``task_by_wl`` is the transpose of the M-step ``counts_matrix``.
    """
    n_workers, k, _ = errors.shape
    log_err = _log_clip(errors).transpose(0, 2, 1).reshape(n_workers * k, k)  # row w*K+l -> log P(l|k)
    scores = np.asarray(task_by_wl @ log_err) + _log_clip(prior)
    norm = logsumexp(scores, axis=1, keepdims=True)
    return np.exp(scores - norm), float(norm.sum())


def one_coin_counts(
    task: np.ndarray, worker: np.ndarray, label: np.ndarray, post: np.ndarray, n_workers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sufficient statistics of the one-coin M-step, additive over blocks of tasks: per worker, the
    summed posterior of the labels it gave, and its number of labels."""
    hit = post[task, label]
    return np.bincount(worker, weights=hit, minlength=n_workers), np.bincount(worker, minlength=n_workers)


def one_coin_params(
    hits: np.ndarray, n: np.ndarray, post_sum: np.ndarray, n_tasks: int
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracies (clipped to [EPS, 1 - EPS]) and prior from the summed statistics."""
    return np.clip(hits / np.maximum(n, 1), EPS, 1.0 - EPS), post_sum / n_tasks


def one_coin_m_step(
    task: np.ndarray, worker: np.ndarray, label: np.ndarray, post: np.ndarray, n_workers: int
) -> tuple[np.ndarray, np.ndarray]:
    """One-coin M-step: accuracy = mean posterior of the label each worker gave; prior = mean posterior."""
    hits, n = one_coin_counts(task, worker, label, post, n_workers)
    return one_coin_params(hits, n, post.sum(axis=0), post.shape[0])


def one_coin_e_step(
    task: np.ndarray, worker: np.ndarray, label: np.ndarray, acc: np.ndarray, prior: np.ndarray, n_tasks: int
) -> tuple[np.ndarray, float]:
    """One-coin E-step = the GTX posterior (GTX eq. 3) with the current accuracies and prior."""
    same, other = gtx_terms(acc[worker], prior.size)
    scores = vote_scores(task, label, same, other, n_tasks, prior.size) + _log_clip(prior)
    norm = logsumexp(scores, axis=1, keepdims=True)
    return np.exp(scores - norm), float(norm.sum())


class _EMAggregator(Aggregator):
    def __init__(
        self,
        *,
        max_iter: int = 100,
        tol: float = 1e-5,
        classes: Sequence[Any] | None = None,
    ) -> None:
        super().__init__(classes=classes)
        self.max_iter = max_iter
        self.tol = tol

    def _check_params(self) -> None:
        check_positive_int("max_iter", self.max_iter, owner=self._owner)
        check_interval("tol", self.tol, owner=self._owner, low=0.0, high=np.inf, closed="left")

    def _run(self, table: CrowdTable, m_step: Any, e_step: Any) -> np.ndarray:
        post = majority_vote_proba(table.task, table.label, table.n_tasks, table.n_classes)
        return self._em(table.n_labels, m_step(post), e_step, m_step)

    def _em(self, n_labels: int, params: Any, e_step: Any, m_step: Any) -> Any:
        """EM from ``params``: ``e_step(params) -> (state, loglik)``, ``m_step(state) -> params``.

        ``state`` is the posterior in process, or the summed block statistics on an engine
        (:mod:`labelsieve.crowd.distributed`). Returns the last E-step's state; ``params_`` are the
        parameters it used.
        """
        history: list[float] = []
        converged = False
        state: Any = None
        for it in range(1, self.max_iter + 1):
            if it > 1:
                params = m_step(state)
            state, loglik = e_step(params)
            history.append(-loglik / n_labels)
            if len(history) > 1 and abs(history[-2] - history[-1]) < self.tol:
                converged = True
                break
        self.n_iter_ = it
        self.loss_history_ = history
        self.params_ = params
        if not converged and self.max_iter > 1:
            warnings.warn(
                f"{self._owner} did not converge in max_iter={self.max_iter} iterations "
                f"(last loss change {abs(history[-2] - history[-1]):.3g} >= tol={self.tol}).",
                ConvergenceWarning,
                stacklevel=4,
            )
        return state


    # --- block statistics: each EM iteration sums the blocks' M-step statistics ----------------
    def block_statistics(self, block: TaskBlock, params: Any) -> tuple[Any, np.ndarray, float]:
        """(M-step statistics, summed posterior, log-likelihood) of one block's E-step under
        ``params`` (``None``: majority-vote posteriors, the EM start); all additive over blocks."""
        raise NotImplementedError  # pragma: no cover

    def params_from_statistics(self, stats: Any, post_sum: np.ndarray, table: CrowdTable) -> Any:
        """M-step parameters from the statistics summed over all blocks."""
        raise NotImplementedError  # pragma: no cover

    def _block_start(self, block: TaskBlock) -> np.ndarray:
        return majority_vote_proba(block.task, block.label, block.n_tasks, block.n_classes)

    def fit_blocks(self, table: CrowdTable, blocks: TaskBlocks) -> np.ndarray:
        def e_step(params: Any) -> tuple[Any, float]:
            stats, post_sum, loglik = blocks.sum(self.block_statistics, params)
            return (stats, post_sum), float(loglik)

        def m_step(state: Any) -> Any:
            return self.params_from_statistics(state[0], state[1], table)

        init_state, _ = e_step(None)  # majority-vote posteriors' statistics
        self._em(table.n_labels, m_step(init_state), e_step, m_step)
        post = blocks.posteriors(self.block_posterior, self.params_)
        self._set_params(table)
        return post

    def _set_params(self, table: CrowdTable) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


@register_aggregator("ds")
class DawidSkene(_EMAggregator):
    """Dawid-Skene EM with one full confusion matrix per worker.

    Parameters
    ----------
    max_iter : int >= 1
        Maximum number of EM iterations (one M-step then one E-step each).
    tol : float >= 0
        Stop when the mean negative log-likelihood per label changes by less than ``tol``.
    smoothing : float >= 0
        Pseudo-count added to every confusion-matrix cell (0 = the MLE of the paper).
    classes : sequence, optional

    Attributes
    ----------
    errors_ : DataFrame with a (worker, true label) MultiIndex and one column per observed label
    prior_ : Series, class prior
    probas_, labels_, confidence_, n_labels_ : outputs indexed by task
    n_iter_ : int; loss_history_ : list of float (mean negative log-likelihood per label)

    Examples
    --------
    >>> df = pd.DataFrame({"task": [0, 0, 0, 1, 1, 1], "worker": list("abcabc"), "label": [1, 1, 0, 0, 0, 0]})
    >>> DawidSkene(smoothing=0.1).fit_predict(df).tolist()
    [1, 0]
    """

    _owner = "DawidSkene"

    def __init__(
        self,
        *,
        max_iter: int = 100,
        tol: float = 1e-5,
        smoothing: float = 0.0,
        classes: Sequence[Any] | None = None,
    ) -> None:
        super().__init__(max_iter=max_iter, tol=tol, classes=classes)
        self.smoothing = smoothing

    def _check_params(self) -> None:
        super()._check_params()
        check_interval("smoothing", self.smoothing, owner=self._owner, low=0.0, high=np.inf, closed="left")

    def _fit_table(self, table: CrowdTable) -> np.ndarray:
        nw = table.n_workers
        wl_by_task = ds_incidence(table.task, table.worker, table.label, table.n_tasks, nw, table.n_classes)
        task_by_wl = wl_by_task.T.tocsr()
        post = self._run(
            table,
            lambda p: ds_m_step(wl_by_task, p, nw, self.smoothing),
            lambda params: ds_e_step(task_by_wl, *params),
        )
        self._set_params(table)
        return post

    def _set_params(self, table: CrowdTable) -> None:
        k, nw = table.n_classes, table.n_workers
        errors, prior = self.params_
        index = pd.MultiIndex.from_product([table.workers, table.classes], names=["worker", "true_label"])
        self.errors_ = pd.DataFrame(errors.reshape(nw * k, k), index=index, columns=table.classes)
        self.prior_ = pd.Series(prior, index=table.classes, name="prior")

    def _block_incidence(self, block: TaskBlock) -> sparse.csr_matrix:
        return ds_incidence(block.task, block.worker, block.label, block.n_tasks, block.n_workers, block.n_classes)

    def block_statistics(self, block: TaskBlock, params: Any) -> tuple[Any, np.ndarray, float]:
        wl_by_task = self._block_incidence(block)
        if params is None:
            post, loglik = self._block_start(block), 0.0
        else:
            post, loglik = ds_e_step(wl_by_task.T.tocsr(), *params)
        return ds_counts(wl_by_task, post, block.n_workers), post.sum(axis=0), loglik

    def block_posterior(self, block: TaskBlock, params: Any) -> np.ndarray:
        return ds_e_step(self._block_incidence(block).T.tocsr(), *params)[0]

    def params_from_statistics(self, stats: Any, post_sum: np.ndarray, table: CrowdTable) -> Any:
        return ds_params(stats, post_sum, table.n_tasks, float(self.smoothing))


@register_aggregator("onecoin")
class OneCoinDawidSkene(_EMAggregator):
    """One-coin Dawid-Skene: one accuracy per worker, errors spread uniformly over the other classes.

    Its E-step is the GTX posterior; ``GTX(accuracies=m.skills_, prior=m.prior_)`` reproduces
    ``m.probas_``.

    Parameters
    ----------
    max_iter, tol, classes : as in :class:`DawidSkene`

    Attributes
    ----------
    skills_ : Series, accuracy of each worker; prior_ : Series; and the outputs of :class:`DawidSkene`.

    Examples
    --------
    >>> df = pd.DataFrame({"task": [0, 0, 0, 1, 1, 1], "worker": list("abcabc"), "label": [1, 1, 0, 0, 0, 0]})
    >>> OneCoinDawidSkene().fit_predict(df).tolist()
    [1, 0]
    """

    _owner = "OneCoinDawidSkene"

    def _fit_table(self, table: CrowdTable) -> np.ndarray:
        t, w, y = table.task, table.worker, table.label
        post = self._run(
            table,
            lambda p: one_coin_m_step(t, w, y, p, table.n_workers),
            lambda params: one_coin_e_step(t, w, y, params[0], params[1], table.n_tasks),
        )
        self._set_params(table)
        return post

    def _set_params(self, table: CrowdTable) -> None:
        acc, prior = self.params_
        self.skills_ = pd.Series(acc, index=table.workers, name="accuracy")
        self.prior_ = pd.Series(prior, index=table.classes, name="prior")

    def block_statistics(self, block: TaskBlock, params: Any) -> tuple[Any, np.ndarray, float]:
        t, w, y = block.task, block.worker, block.label
        if params is None:
            post, loglik = self._block_start(block), 0.0
        else:
            post, loglik = one_coin_e_step(t, w, y, params[0], params[1], block.n_tasks)
        return one_coin_counts(t, w, y, post, block.n_workers), post.sum(axis=0), loglik

    def block_posterior(self, block: TaskBlock, params: Any) -> np.ndarray:
        return one_coin_e_step(block.task, block.worker, block.label, params[0], params[1], block.n_tasks)[0]

    def params_from_statistics(self, stats: Any, post_sum: np.ndarray, table: CrowdTable) -> Any:
        return one_coin_params(stats[0], stats[1], post_sum, table.n_tasks)
