"""The threshold-based auto-labeling (TBAL) loop (Vishwakarma et al., NeurIPS 2023, Algorithm 1).

Each round: train on the human-labeled training set, fit the confidence function, certify
thresholds on held-out human-labeled validation data, auto-label the pool points that clear them,
then query the next batch of human labels. Only orchestration lives here; the math is in
:mod:`labelsieve.autolabel.certify`.

How delta is spent. The validation set is one uniform random sample of the pool, labeled up front.
By default (``delta_schedule="last"``) only the final round certifies, with all of delta, on
validation data no earlier choice depended on. With ``geometric`` or ``uniform``, round r
certifies -- as in the paper -- on the validation points that earlier rounds' rules would not have
auto-labeled, with delta_r and sum_r delta_r = delta over the planned rounds: by the union bound all
rounds' certificates hold together with probability >= 1 - delta, and the error of everything
auto-labeled -- a weighted average of per-round (and per-class) errors, each <= epsilon -- is
<= epsilon. Per-class scope further splits delta_r evenly over the classes.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from labelsieve._validation import (
    check_open_unit,
    check_option,
    check_positive_int,
)
from labelsieve.active.base import QueryState, QueryStrategy, loop_strategy
from labelsieve.autolabel.certify import BOUNDS, SCANS, SCOPES, Certificate, certify_thresholds
from labelsieve.autolabel.oracles import Oracle, SimulatedOracle, as_answers
from labelsieve.confidence.base import ConfidenceFunction, MaxSoftmax
from labelsieve.data.dataset import UNLABELED, Dataset
from labelsieve.engine import resolve_engine
from labelsieve.engine.local import score_in_blocks
from labelsieve.errors import InputError
from labelsieve.models.base import Classifier

log = logging.getLogger(__name__)

DELTA_SCHEDULES = ("uniform", "geometric", "last")
HUMAN, AUTO = "human", "auto"


def delta_schedule(delta: float, rounds: int, kind: str = "uniform") -> np.ndarray:
    """Per-round failure probabilities summing to ``delta`` (union bound over rounds).

    ``uniform``: delta / R each. ``geometric``: proportional to 2^r, so later rounds -- with more
    labels and better models -- get more (the last about half). ``last``: everything on the last
    round; earlier rounds only train and query (active learning), and auto-label nothing.

    >>> delta_schedule(0.05, 4).tolist()
    [0.0125, 0.0125, 0.0125, 0.0125]
    >>> np.round(delta_schedule(0.07, 3, "geometric"), 4).tolist()
    [0.01, 0.02, 0.04]
    """
    if kind == "uniform":
        return np.full(rounds, delta / rounds)
    if kind == "last":
        out = np.zeros(rounds)
        out[-1] = delta
        return out
    w = 2.0 ** np.arange(rounds)
    return delta * w / w.sum()


@dataclass
class TBALResult:
    """What a run produced.

    ``labels``: one row per labeled item: id, label (class name), code, source (human/auto),
    confidence, threshold, round. ``history``: one row per round. ``metrics``: the run summary.
    """

    labels: pd.DataFrame
    history: pd.DataFrame
    metrics: dict[str, Any]
    certificates: list[Certificate] = field(default_factory=list)
    rules: list[tuple[Classifier, ConfidenceFunction, Certificate]] = field(default_factory=list, repr=False)
    #: what the last certifying round certified on and applied to (for threshold exploration):
    #: ``round``, the validation points' ``val_index, val_pred, val_conf, val_label,
    #: val_label_confidence`` exactly as given to the certifier, and the pool's ``pool_index,
    #: pool_pred, pool_conf`` before that round auto-labeled. Empty when no round certified.
    evidence: dict[str, Any] = field(default_factory=dict, repr=False)

    def apply(
        self, X: np.ndarray, *, block_size: int = 65_536, engine: Any = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply the run's auto-labeling rule to new items from the same distribution.

        Round by round, as in the run: an item takes the label of the first round whose
        threshold it clears. Returns (mask auto-labeled, label codes (-1 where not), round (0 where not)).
        The run's guarantee covers this rule's population error. ``engine``: where the scoring
        blocks run (:mod:`labelsieve.engine`; default in process).
        """
        n = len(X)
        labels = np.full(n, UNLABELED, dtype=np.int64)
        rounds = np.zeros(n, dtype=np.int64)
        open_ = np.ones(n, dtype=bool)
        for r, (model, cf, cert) in enumerate(self.rules, start=1):
            idx = np.flatnonzero(open_)
            if len(idx) == 0:
                break
            if engine is None:
                pred, conf = cf.confidence(score_in_blocks(model.scores, X[idx], block_size=block_size))
                ok = cert.accept(pred, conf)
            else:
                _, pred, conf, ok = resolve_engine(engine).autolabel(model, cf, cert, X[idx], block_size=block_size)
            labels[idx[ok]], rounds[idx[ok]] = pred[ok], r
            open_[idx[ok]] = False
        return ~open_, labels, rounds


class TBAL:
    """Threshold-based auto-labeling with a guaranteed auto-labeling error.

    Parameters
    ----------
    model : Classifier
        Unfitted template; deep-copied and fitted every round.
    confidence : ConfidenceFunction, optional
        Unfitted template (default :class:`MaxSoftmax`). If it has ``requires_fit = True``, each
        round splits the active validation points: ``calibration_fraction`` fit it, the rest certify.
    epsilon, delta : float in (0, 1)
        Target auto-labeling error and failure probability of the whole run.
    budget : int
        Human labels in all, validation included.
    rounds : int
        Planned rounds (delta is split over them).
    seed_size, batch_size : int, optional
        Initial random training labels and labels queried per round. Defaults split the training
        budget evenly over the rounds.
    val_fraction : float in (0, 1)
        Share of the budget spent on the validation set.
    scope : "global" | "per-class"
    bound : one of ``certify.BOUNDS`` (``clopper-pearson`` default; ``sigma``/``tbal-hoeffding`` are heuristics)
    scan : "fixed-sequence" (valid) | "any" (the multiple-testing trap, for comparison)
    strategy : a registered query-strategy name (``active.QUERY_STRATEGIES``, flag ``tbal``) or an instance
    delta_schedule : "last" (default) | "geometric" | "uniform"
        ``last``: only the final round certifies and auto-labels; earlier rounds train and query
        (active learning). The guarantee is then one certification on validation data that no
        earlier choice touched. ``geometric``/``uniform`` auto-label every round, reusing validation
        points across rounds (see docs/guarantee.md for what is and is not proven there).
    certifier : callable, optional
        Replaces :func:`certify_thresholds` (same keyword arguments). When the oracle's
        :class:`~labelsieve.autolabel.oracles.Answers` carry ``p_correct`` (P(true label == given
        label), e.g. a crowd posterior), the loop passes ``label_confidence=`` for the validation
        points (1 for certain answers), and the certifier must use it; when they carry a
        ``posterior``, a custom certifier gets ``error_probability=`` (upper bounds of
        P(true label != prediction) = 1 - posterior[i, prediction]) as well.
    random_state : int, optional
    progress : bool
        Show a progress bar over rounds.
    engine : None, "local", "ray" or an engine instance
        Where each round's pool scoring and auto-labeling run, block by block
        (:mod:`labelsieve.engine`); training and certification stay in this process. ``None``
        (default): in process, as before. Results are the same on every engine.
    """

    def __init__(
        self,
        *,
        model: Classifier,
        confidence: ConfidenceFunction | None = None,
        epsilon: float = 0.05,
        delta: float = 0.05,
        budget: int = 400,
        rounds: int = 5,
        seed_size: int | None = None,
        batch_size: int | None = None,
        val_fraction: float = 0.4,
        calibration_fraction: float = 0.5,
        scope: str = "global",
        bound: str = "clopper-pearson",
        scan: str = "fixed-sequence",
        min_n: int | str = "auto",
        strategy: str | QueryStrategy = "margin-random",
        delta_schedule: str = "last",
        random_state: int | None = None,
        progress: bool = False,
        block_size: int = 65_536,
        certifier: Callable[..., Certificate] | None = None,
        engine: Any = None,
    ) -> None:
        self.model = model
        self.confidence = confidence
        self.epsilon = epsilon
        self.delta = delta
        self.budget = budget
        self.rounds = rounds
        self.seed_size = seed_size
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.calibration_fraction = calibration_fraction
        self.scope = scope
        self.bound = bound
        self.scan = scan
        self.min_n = min_n
        self.strategy = strategy
        self.delta_schedule = delta_schedule
        self.random_state = random_state
        self.progress = progress
        self.block_size = block_size
        self.certifier = certifier
        self.engine = engine

    # ------------------------------------------------------------------ parameters
    def _plan(self, n_items: int) -> tuple[int, int, int]:
        owner = "TBAL"
        check_open_unit("epsilon", self.epsilon, owner=owner)
        check_open_unit("delta", self.delta, owner=owner)
        check_open_unit("val_fraction", self.val_fraction, owner=owner)
        check_open_unit("calibration_fraction", self.calibration_fraction, owner=owner)
        check_positive_int("budget", self.budget, owner=owner, minimum=2)
        check_positive_int("rounds", self.rounds, owner=owner)
        check_option("scope", self.scope, owner=owner, options=SCOPES)
        check_option("bound", self.bound, owner=owner, options=BOUNDS)
        check_option("scan", self.scan, owner=owner, options=SCANS)
        check_option("delta_schedule", self.delta_schedule, owner=owner, options=DELTA_SCHEDULES)
        if isinstance(self.strategy, str):
            loop_strategy(self.strategy, owner=owner)
        if n_items == 0:
            raise InputError("the pool is empty: nothing to label.")
        if self.budget > n_items:
            raise InputError(f"budget {self.budget} exceeds the pool size {n_items}.")
        n_val = round(self.val_fraction * self.budget)
        n_train = self.budget - n_val
        if n_val < 1 or n_train < 1:
            raise InputError(
                f"budget {self.budget} with val_fraction {self.val_fraction} leaves no training or no validation labels."
            )
        seed = self.seed_size if self.seed_size is not None else max(1, n_train // self.rounds)
        check_positive_int("seed_size", seed, owner=owner)
        if seed > n_train:
            raise InputError(
                f"seed_size {seed} exceeds the training budget {n_train} (= budget - validation)."
            )
        if self.batch_size is not None:
            batch = check_positive_int("batch_size", self.batch_size, owner=owner)
        else:
            batch = max(1, math.ceil((n_train - seed) / max(self.rounds - 1, 1)))
        return n_val, seed, batch

    # ------------------------------------------------------------------ the loop
    def run(
        self,
        dataset: Dataset,
        oracle: Oracle | None = None,
        *,
        on_round: Callable[[dict], None] | None = None,
    ) -> TBALResult:
        """Auto-label ``dataset``; ``oracle`` defaults to a noiseless simulated oracle on its truth."""
        n = len(dataset)
        n_val, seed_size, batch = self._plan(n)
        K = dataset.n_classes
        oracle = oracle if oracle is not None else SimulatedOracle(dataset, random_state=self.random_state)
        rng = np.random.default_rng(self.random_state)
        strategy = loop_strategy(self.strategy)() if isinstance(self.strategy, str) else self.strategy
        conf_template = self.confidence if self.confidence is not None else MaxSoftmax()
        needs_cal = bool(getattr(conf_template, "requires_fit", False))
        deltas = delta_schedule(self.delta, self.rounds, self.delta_schedule)
        engine = None if self.engine is None else resolve_engine(self.engine)

        label = np.full(n, UNLABELED, dtype=np.int64)
        source = np.full(n, "", dtype=object)
        conf_out = np.full(n, np.nan)
        thr_out = np.full(n, np.nan)
        round_out = np.zeros(n, dtype=np.int64)
        in_pool = np.ones(n, dtype=bool)  # neither human- nor auto-labeled yet
        role = np.full(n, "", dtype=object)  # what a label was used for: validation | train | auto

        # what the answers say of their own noise, per item: NaN where an answer is certain
        p_correct = np.full(n, np.nan)
        posterior: np.ndarray | None = None  # (n, K), allocated with the first posterior

        def ask(idx: np.ndarray, rnd: int, what: Any = "train") -> np.ndarray:
            nonlocal posterior
            ans = as_answers(oracle.ask(dataset.ids[idx]))
            if len(ans) != len(idx):
                raise InputError(f"the oracle answered {len(ans)} of {len(idx)} items")
            if ans.posterior is not None and ans.posterior.shape[1] != K:
                raise InputError(f"the oracle's posterior has {ans.posterior.shape[1]} classes; the dataset has {K}")
            y = ans.labels
            label[idx], source[idx], round_out[idx], in_pool[idx], role[idx] = y, HUMAN, rnd, False, what
            pc = ans.label_probability()
            p_correct[idx] = np.nan if pc is None else pc
            if ans.posterior is not None and posterior is None:
                posterior = np.full((n, K), np.nan)
            if posterior is not None:
                posterior[idx] = np.nan if ans.posterior is None else ans.posterior
            return y

        perm = rng.permutation(n)
        val_idx = np.sort(perm[:n_val])
        train_idx = np.sort(perm[n_val : n_val + seed_size])
        # one request for the validation set and the seed set (a file oracle asks humans once)
        ask(np.concatenate([val_idx, train_idx]), 0, np.repeat(["validation", "train"], [n_val, seed_size]))
        val_active = np.ones(n_val, dtype=bool)
        spent = n_val + seed_size
        truth = dataset.y if dataset.has_truth else None

        rows: list[dict[str, Any]] = []
        certs: list[Certificate] = []
        rules: list[tuple[Classifier, ConfidenceFunction, Certificate]] = []
        bound_mass = 0.0  # sum over auto-labeled pool points of their cell's upper bound
        evidence: dict[str, Any] = {}
        bar = _progress(self.rounds, self.progress)
        for r in range(1, self.rounds + 1):
            model = copy.deepcopy(self.model).fit(dataset.X[train_idx], label[train_idx])
            score = model.scores
            act = val_idx[val_active]
            val_scores = score_in_blocks(score, dataset.X[act], block_size=self.block_size)
            cf = copy.deepcopy(conf_template)
            th_sel = np.ones(len(act), dtype=bool)
            if needs_cal:
                cal = rng.random(len(act)) < self.calibration_fraction
                cf.fit(val_scores.take(np.flatnonzero(cal)), label[act[cal]])
                th_sel = ~cal
            v_pred, v_conf = cf.confidence(val_scores)
            d_r = float(deltas[r - 1])
            extra: dict[str, Any] = _noise_arguments(
                act[th_sel], v_pred[th_sel], label, p_correct, posterior, with_error=self.certifier is not None
            )
            cert = (self.certifier or certify_thresholds)(
                v_pred[th_sel],
                v_conf[th_sel],
                label[act[th_sel]],
                n_classes=K,
                epsilon=self.epsilon,
                delta=d_r if d_r > 0 else self.delta,
                bound=self.bound,
                scope=self.scope,
                min_n=self.min_n,
                scan=self.scan,
                **extra,
            )
            if d_r == 0:  # this round spends no delta: it certifies nothing
                cert = replace(
                    cert,
                    thresholds=np.full(K, np.inf),
                    delta=0.0,
                    reasons={c: "no delta spent in this round" for c in range(K)},
                )
            certs.append(cert)
            rules.append((model, cf, cert))
            # Validation points this round's rule covers no longer describe the remaining pool.
            val_active[np.flatnonzero(val_active)[cert.accept(v_pred, v_conf)]] = False

            pool = np.flatnonzero(in_pool)
            if engine is None:
                pool_scores = score_in_blocks(score, dataset.X[pool], block_size=self.block_size)
                p_pred, p_conf = cf.confidence(pool_scores)
                acc = cert.accept(p_pred, p_conf)
            else:  # the same three steps, block by block where the engine runs blocks
                pool_scores, p_pred, p_conf, acc = engine.autolabel(
                    model, cf, cert, dataset.X[pool], block_size=self.block_size
                )
            if d_r > 0:
                evidence = {
                    "round": r, "val_index": act[th_sel], "val_pred": v_pred[th_sel], "val_conf": v_conf[th_sel],
                    "val_label": label[act[th_sel]], "val_label_confidence": extra.get("label_confidence"),
                    "pool_index": pool, "pool_pred": np.asarray(p_pred), "pool_conf": np.asarray(p_conf),
                }
            newly = pool[acc]
            label[newly], source[newly], round_out[newly], in_pool[newly] = p_pred[acc], AUTO, r, False
            role[newly] = AUTO
            conf_out[newly], thr_out[newly] = p_conf[acc], cert.thresholds[p_pred[acc]]
            if len(newly):
                uppers = np.array([s.upper for s in cert.scans])
                per_class = np.broadcast_to(uppers, (K,)) if len(uppers) == 1 else uppers
                bound_mass += float(np.nansum(per_class[p_pred[acc]]))

            # Query the next batch from what is left (not in the last round).
            q = 0
            if r < self.rounds and spent < self.budget and in_pool.any():
                remaining = np.flatnonzero(in_pool)
                keep = ~acc
                state = QueryState(
                    model=model,
                    X_pool=dataset.X[remaining],
                    pool_scores=pool_scores.take(np.flatnonzero(keep)),
                    X_labeled=dataset.X[train_idx],
                    y_labeled=label[train_idx],
                )
                pick = strategy.query(state, min(batch, self.budget - spent), rng)
                new_idx = remaining[pick]
                ask(new_idx, r)
                train_idx = np.sort(np.concatenate([train_idx, new_idx]))
                spent += len(new_idx)
                q = len(new_idx)
            row = self._round_row(
                r, cert, len(newly), label, source, truth, n, spent, int(val_active.sum()), q, bound_mass
            )
            rows.append(row)
            if on_round:
                on_round(row)
            bar.update(1)
            bar.set_postfix(coverage=f"{row['coverage']:.3f}", auto=row["n_auto_total"])
            if not in_pool.any():
                break
        bar.close()
        history = pd.DataFrame(rows)
        labeled = np.flatnonzero(source != "")
        labels = pd.DataFrame(
            {
                "id": dataset.ids[labeled],
                "label": np.asarray(dataset.classes, dtype=object)[label[labeled]],
                "code": label[labeled],
                "source": source[labeled],
                "role": role[labeled],
                "confidence": conf_out[labeled],
                "threshold": thr_out[labeled],
                "round": round_out[labeled],
            }
        )
        metrics = self._metrics(history, certs, n, spent, dataset)
        return TBALResult(labels=labels, history=history, metrics=metrics, certificates=certs, rules=rules,
                          evidence=evidence)

    def _round_row(
        self, r, cert, n_new, label, source, truth, n, spent, n_val_active, n_queried, bound_mass
    ) -> dict[str, Any]:
        auto = source == AUTO
        n_auto = int(auto.sum())
        err = float("nan")
        if truth is not None and n_auto:
            known = auto & (truth != UNLABELED)
            err = float((label[known] != truth[known]).mean()) if known.any() else float("nan")
        return {
            "round": r,
            "n_auto_round": int(n_new),
            "n_auto_total": n_auto,
            "coverage": n_auto / n,
            "auto_label_error": err,
            "error_bound": self._run_bound(n_auto, bound_mass),
            "human_labels": int(spent),
            "n_queried": int(n_queried),
            "n_validation_active": n_val_active,
            "delta_round": cert.delta,
            "thresholds": [None if not np.isfinite(t) else float(t) for t in cert.thresholds],
            "reasons": _reasons(cert, self.scope),
        }

    def _run_bound(self, n_auto: int, bound_mass: float) -> float:
        if n_auto == 0:
            return 0.0
        if self.bound in ("clopper-pearson", "hoeffding") and self.scan == "fixed-sequence":
            return float(self.epsilon)  # what the run certifies (see the module docstring)
        return bound_mass / n_auto  # heuristic: auto-label-weighted mean of the heuristic's values

    def _metrics(
        self, history: pd.DataFrame, certs: list[Certificate], n: int, spent: int, dataset: Dataset
    ) -> dict[str, Any]:
        last = history.iloc[-1]
        n_auto = int(last["n_auto_total"])
        certifying = [r for r, c in enumerate(certs, start=1) if c.delta > 0]
        final = certifying[-1] if certifying else len(certs)
        guaranteed = bool(certs[final - 1].guaranteed)
        spent_how = (
            "certified once, in the final round, with all of delta"
            if self.delta_schedule == "last"
            else f"delta split over {self.rounds} rounds ({self.delta_schedule})"
        )
        err = last["auto_label_error"]
        return {
            "dataset": dataset.name,
            "n_items": n,
            "coverage": float(last["coverage"]),
            "coverage_of_unlabeled": n_auto / max(n - spent, 1),
            "n_auto_labeled": n_auto,
            "auto_label_error": None if (isinstance(err, float) and math.isnan(err)) else float(err),
            "error_bound": float(last["error_bound"]),
            "guaranteed": guaranteed,
            "bound": self.bound,
            "scan": self.scan,
            "scope": self.scope,
            "bound_statement": (
                f"with probability >= {1 - self.delta:g}, the population error rate of the auto-labeling rule "
                f"is <= {self.epsilon:g} ({self.bound} bound, fixed-sequence scan, {spent_how}"
                + (", and over classes" if self.scope == "per-class" else "")
                + ")"
                if guaranteed
                else f"HEURISTIC ({self.bound}, {self.scan} scan): no guarantee"
            ),
            "human_labels": int(spent),
            "epsilon": float(self.epsilon),
            "delta": float(self.delta),
            "seed": self.random_state,
            "rounds_run": len(history),
            "rounds_planned": int(self.rounds),
            "no_threshold_reasons": {k: f"round {final}: {v}" for k, v in _reasons(certs[final - 1], self.scope).items()},
        }


def _reasons(cert: Certificate, scope: str) -> dict[str, str]:
    """Why classes got no threshold: keyed by class code, or ``"global"`` for one global threshold."""
    if not cert.reasons:
        return {}
    if scope == "global":
        return {"global": next(iter(cert.reasons.values()))}
    return {str(k): v for k, v in cert.reasons.items()}


class _NoBar:
    def update(self, n: int) -> None: ...
    def set_postfix(self, **kw: Any) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, show: bool) -> Any:
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="TBAL rounds", unit="round")


def _noise_arguments(
    val: np.ndarray,
    pred: np.ndarray,
    label: np.ndarray,
    p_correct: np.ndarray,
    posterior: np.ndarray | None,
    *,
    with_error: bool,
) -> dict[str, np.ndarray]:
    """The certifier's ``label_confidence`` / ``error_probability`` for validation points ``val``.

    Nothing when every answer is certain. ``label_confidence`` is 1 for certain answers;
    ``error_probability`` (only ``with_error``, i.e. a custom certifier) is ``1 - posterior[pred]``
    where an answer has a posterior, else what its ``p_correct`` implies (1 on disagreement).
    """
    out: dict[str, np.ndarray] = {}
    pc = p_correct[val]
    known = ~np.isnan(pc)
    if not known.any():
        return out
    q = np.where(known, pc, 1.0)
    out["label_confidence"] = q
    if with_error and posterior is not None:
        post = posterior[val]
        have = ~np.isnan(post).any(axis=1)
        err = np.where(pred == label[val], 1.0 - q, 1.0)
        err[have] = np.clip(1.0 - post[have, pred[have]], 0.0, 1.0)
        out["error_probability"] = err
    return out
