"""Colander (Vishwakarma et al., 2024, "Pearls from Pebbles: Improved Confidence Functions for
Auto-labeling"): a confidence function *trained for* threshold-based auto-labeling.

A small network ``g`` reads the classifier's outputs ``[logits || penultimate features]``:
``Linear(d, 2d) -> tanh -> Linear(2d, k) -> softmax``. The confidence of a point is
``g(x)[y_hat]`` with ``y_hat`` the classifier's arg-max. One threshold ``t_c`` per class is learned
jointly. With ``e_i = 1`` where the classifier is wrong and
``S_i = sigmoid(alpha * (g_{y_hat}(x_i) - t_{y_hat}))`` the minibatch surrogates are (paper Sec. 4,
the "practical version" of the optimisation problem, Eq. P2)::

    coverage  C = mean_i S_i
    error     E = sum_i S_i e_i / sum_i S_i
    loss      = -C + lambda * E

optimised with Adam (weight decay) and a cosine learning-rate schedule; the epoch whose measured
coverage (:func:`selection_score`) is best on a held-out part of the calibration data is kept.

Leak-freedom by construction: :meth:`Colander.confidence` takes only :class:`Scores`; the labels
enter :meth:`Colander.fit` alone (the authors' released code indexed ``g`` with the *true* label
at prediction time until 2026, which inflates coverage).

Deviations from the authors' code, on purpose: inputs are standardised with the calibration
mean/std (logits and embeddings have arbitrary scales; std floored, values clipped, see
:func:`feature_scale`); the model selection uses an internal
``selection_fraction`` split of the calibration data (their code used a separate labelled set);
"measured coverage" there is the mean, over the error levels epsilon/4, epsilon/2 and epsilon,
of the largest share of selection points whose top-scored set has empirical error <= that level. The thresholds used for auto-labeling are *not* ``t``: the TBAL loop
estimates them on its own threshold split with a valid bound.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np

from labelsieve._validation import check_interval, check_open_unit, check_option, check_positive_int
from labelsieve.confidence.base import register_confidence, seeded_rng
from labelsieve.confidence.temperature import check_calibration_data, check_scores
from labelsieve.errors import InputError, MissingDependencyError, NotFittedError, ParameterError
from labelsieve.models.base import Scores

logger = logging.getLogger(__name__)

__all__ = ["Colander", "colander_surrogate", "empirical_coverage", "selection_score"]

#: Hyper-parameters :class:`Colander` may choose among with ``search``.
SEARCHABLE = ("lam", "alpha", "lr", "weight_decay", "epochs")


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "Colander needs PyTorch: pip install 'labelsieve[torch]' (CPU: pip install torch==2.13.0)."
        ) from exc
    return torch


def colander_surrogate(g_pred: Any, t_pred: Any, err: Any, alpha: float, lam: float) -> tuple[Any, Any, Any]:
    """Colander's minibatch loss ``-C + lam * E`` and its two surrogates (torch tensors).

    Parameters
    ----------
    g_pred : tensor, shape (n,)
        ``g(x_i)[y_hat_i]``.
    t_pred : tensor, shape (n,)
        ``t[y_hat_i]``.
    err : tensor, shape (n,)
        1.0 where the classifier is wrong, else 0.0.
    alpha, lam : float
        Sigmoid sharpness and error weight.

    Returns
    -------
    (loss, coverage_surrogate, error_surrogate) : scalar tensors

    >>> import torch
    >>> loss, c, e = colander_surrogate(torch.tensor([.9, .1]), torch.tensor([.5, .5]),
    ...                                 torch.tensor([0., 1.]), alpha=1000.0, lam=10.0)
    >>> round(float(c), 3), round(float(e), 3), round(float(loss), 3)
    (0.5, 0.0, -0.5)
    """
    torch = _torch()
    s = torch.sigmoid(alpha * (g_pred - t_pred))
    cov = s.mean()
    err_sur = (s * err).sum() / torch.clamp(s.sum(), min=1e-12)
    return -cov + lam * err_sur, cov, err_sur


#: Standardised inputs are clipped to +-CLIP (pool points far outside the calibration range).
CLIP = 5.0


def feature_scale(X: np.ndarray) -> np.ndarray:
    """Per-feature std, floored at 0.1 x the median std.

    Penultimate ReLU units that are almost always 0 on a small calibration set have a tiny std;
    dividing by it blows the rare pool activations up to hundreds and saturates ``g``'s tanh layer
    (on digits this halved Colander's coverage). The floor keeps such features on a common scale.

    >>> feature_scale(np.array([[0.0, 0.0, 0.0], [2.0, 2.0, 1e-6]])).tolist()
    [1.0, 1.0, 0.1]
    """
    sd = X.std(axis=0)
    return np.maximum(sd, 0.1 * max(float(np.median(sd)), 1e-12))


def standardize(X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``clip((X - mean) / scale, -CLIP, CLIP)``."""
    return np.clip((X - mean) / scale, -CLIP, CLIP)


def selection_score(conf: np.ndarray, wrong: np.ndarray, epsilon: float) -> float:
    """Mean of :func:`empirical_coverage` at ``epsilon / 4``, ``epsilon / 2`` and ``epsilon``.

    Coverage at ``epsilon`` alone saturates at 1 whenever the classifier's overall error is below
    ``epsilon`` (every ranking then scores 1, and an untrained ``g`` would be kept); a certifier
    with a valid bound needs the top of the ranking clean, which the stricter levels measure.

    >>> round(selection_score(np.array([.9, .8, .7, .6]), np.array([0, 0, 1, 0]), 0.4), 3)
    0.667
    """
    return float(np.mean([empirical_coverage(conf, wrong, f * epsilon) for f in (0.25, 0.5, 1.0)]))


def empirical_coverage(conf: np.ndarray, wrong: np.ndarray, epsilon: float) -> float:
    """Largest share of points whose top-``m`` by ``conf`` have empirical error <= ``epsilon``.

    Ties are kept together (a threshold cannot split equal scores).

    >>> empirical_coverage(np.array([.9, .8, .7, .6]), np.array([0, 0, 1, 0]), 0.3)
    1.0
    >>> empirical_coverage(np.array([.9, .8, .7, .6]), np.array([0, 0, 1, 0]), 0.2)
    0.5
    """
    n = conf.size
    if n == 0:
        return 0.0
    order = np.argsort(-conf, kind="stable")
    c = conf[order]
    rate = np.cumsum(wrong[order]) / np.arange(1, n + 1)
    last_of_tie = np.append(c[1:] != c[:-1], True)  # positions where a threshold can cut
    ok = np.flatnonzero((rate <= epsilon) & last_of_tie)
    return 0.0 if ok.size == 0 else float(ok[-1] + 1) / n


@register_confidence("colander")
class Colander:
    """Learned confidence function for threshold-based auto-labeling.

    Parameters
    ----------
    lam : float, default 10.0
        Weight of the error surrogate (paper's MNIST value).
    alpha : float, default 1.0
        Sigmoid sharpness in ``S = sigmoid(alpha (g - t))`` (paper: 0.01 MNIST, 1 squentropy, 0.1 FMFP).
    lr : float, default 0.01
    weight_decay : float, default 1e-3
    epochs : int, default 60
    batch_size : int, default 64
    epsilon : float in (0, 1), default 0.05
        Error level at which the epoch selection measures coverage (see :func:`selection_score`).
    selection_fraction : float in [0, 1), default 0.2
        Share of the calibration data held out to pick the best epoch; with 0 (or fewer than 20
        held-out points) the training part itself is used.
    use_embeddings : bool, default True
        Append ``Scores.embeddings`` (when present) to the logits.
    search : dict of lists, optional
        Hyper-parameters to choose among (keys: ``lam``, ``alpha``, ``lr``, ``weight_decay``,
        ``epochs``), e.g. ``{"lam": [1, 10, 100]}``. Every combination is trained on the same split and
        the one with the best coverage on the held-out selection part is kept (``best_params_``):
        hyper-parameters are chosen on calibration data only, never on the pool.
    random_state : int, optional

    Attributes
    ----------
    net_ : torch module g
    thresholds_ : array (k,)   learned t (diagnostic only)
    best_epoch_ : int
    history_ : list of (epoch, loss, measured coverage)
    best_params_ : dict
        The chosen values of the ``search`` keys (empty without ``search``).

    Notes
    -----
    The authors pin, for MNIST, ``lam=10, lr=0.1, weight_decay=1.0, 500 epochs, batch 64,
    alpha=0.01`` (squentropy: ``lr=0.01, alpha=1``; FMFP: ``lam=100, alpha=0.1``). On our small
    calibration sets (100-500 points) those values drove ``g`` to a constant (with Adam, weight
    decay 1.0 dominates gradients scaled by ``alpha=0.01``), so the defaults here are
    ``lr=0.01, weight_decay=1e-3, alpha=1, 60 epochs``; pass the paper's values explicitly, or
    let ``search`` choose on held-out calibration data.
    """

    requires_fit: bool = True

    def __init__(
        self,
        *,
        lam: float = 10.0,
        alpha: float = 1.0,
        lr: float = 0.01,
        weight_decay: float = 1e-3,
        epochs: int = 60,
        batch_size: int = 64,
        epsilon: float = 0.05,
        selection_fraction: float = 0.2,
        use_embeddings: bool = True,
        search: dict[str, list] | None = None,
        random_state: int | None = None,
    ) -> None:
        self.lam = lam
        self.alpha = alpha
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.epsilon = epsilon
        self.selection_fraction = selection_fraction
        self.use_embeddings = use_embeddings
        self.search = search
        self.random_state = random_state

    # ------------------------------------------------------------------------------------------
    def _validate_params(self) -> None:
        o = "Colander"
        check_interval("lam", self.lam, owner=o, low=0, high=np.inf, closed="left")
        check_interval("alpha", self.alpha, owner=o, low=0, high=np.inf, closed="neither")
        check_interval("lr", self.lr, owner=o, low=0, high=np.inf, closed="neither")
        check_interval("weight_decay", self.weight_decay, owner=o, low=0, high=np.inf, closed="left")
        check_positive_int("epochs", self.epochs, owner=o)
        check_positive_int("batch_size", self.batch_size, owner=o)
        check_open_unit("epsilon", self.epsilon, owner=o)
        check_interval("selection_fraction", self.selection_fraction, owner=o, low=0, high=1, closed="left")
        check_option("use_embeddings", self.use_embeddings, owner=o, options=(True, False))
        if self.search is not None:
            if not isinstance(self.search, dict) or not self.search:
                raise ParameterError(
                    f"The 'search' parameter of Colander must be a non-empty dict of lists. Got {self.search!r} instead."
                )
            for key, values in self.search.items():
                check_option("search key", key, owner=o, options=SEARCHABLE)
                if not isinstance(values, (list, tuple)) or not values:
                    raise ParameterError(
                        f"The 'search' parameter of Colander must map {key!r} to a non-empty list. Got {values!r} instead."
                    )

    def _features(self, scores: Scores, z: np.ndarray) -> np.ndarray:
        if self.use_embeddings and scores.embeddings is not None:
            return np.hstack([z, np.asarray(scores.embeddings, dtype=np.float64)])
        return z

    def fit(self, scores: Scores, y: np.ndarray) -> Colander:
        """Train ``g`` and ``t`` on calibration scores and true labels ``y`` (the only use of ``y``)."""
        self._validate_params()
        torch = _torch()
        z, y_arr = check_calibration_data(scores, y, owner="Colander", min_samples=2)
        X = self._features(scores, z)
        n, k = z.shape
        d = X.shape[1]
        self.n_classes_, self.n_features_in_ = k, d
        self.mean_ = X.mean(axis=0)
        self.scale_ = feature_scale(X)
        Xs = standardize(X, self.mean_, self.scale_)
        pred = np.argmax(z, axis=1)
        wrong = (pred != y_arr).astype(np.float64)

        rng = seeded_rng(self.random_state, owner="Colander")
        perm = rng.permutation(n)
        n_sel = round(self.selection_fraction * n)
        if n_sel >= 20 and n - n_sel >= 2:
            i_sel, i_tr = perm[:n_sel], perm[n_sel:]
        else:
            i_sel = i_tr = perm
        seed = int(rng.integers(2**31 - 1))

        from sklearn.model_selection import ParameterGrid

        candidates = list(ParameterGrid(self.search)) if self.search else [{}]
        n_threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a tiny MLP: one thread is fastest and does not fight other work
        try:
            best: tuple[Any, dict[str, Any]] | None = None
            for params in candidates:
                trial = copy.copy(self)
                for key, value in params.items():
                    setattr(trial, key, value)
                trial._validate_params()
                trial._train(torch, Xs, pred, wrong, i_tr, i_sel, seed, k)
                if best is None or trial.selection_coverage_ > best[0].selection_coverage_:
                    best = (trial, params)
        finally:
            torch.set_num_threads(n_threads)
        assert best is not None, "the search grid has at least one candidate"
        trial, self.best_params_ = best
        for attr in ("net_", "thresholds_", "best_epoch_", "selection_coverage_", "history_"):
            setattr(self, attr, getattr(trial, attr))
        logger.debug("Colander: best epoch %d, selection coverage %.3f", self.best_epoch_, self.selection_coverage_)
        return self

    def _train(
        self, torch: Any, Xs: np.ndarray, pred: np.ndarray, wrong: np.ndarray,
        i_tr: np.ndarray, i_sel: np.ndarray, seed: int, k: int,
    ) -> None:
        d = Xs.shape[1]
        Xs = Xs.astype(np.float32)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = torch.nn.Sequential(
                torch.nn.Linear(d, 2 * d), torch.nn.Tanh(), torch.nn.Linear(2 * d, k)
            )
            t = torch.nn.Parameter(torch.full((k,), 0.5))
            opt = torch.optim.Adam(
                [{"params": net.parameters(), "weight_decay": self.weight_decay}, {"params": [t], "weight_decay": 0.0}],
                lr=self.lr,
            )
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs)
            Xt = torch.from_numpy(Xs[i_tr])
            pt = torch.from_numpy(pred[i_tr])
            et = torch.from_numpy(wrong[i_tr].astype(np.float32))
            Xsel = torch.from_numpy(Xs[i_sel])
            psel = torch.from_numpy(pred[i_sel])
            gen = torch.Generator().manual_seed(seed)
            best = (-1.0, 0, copy.deepcopy(net.state_dict()), t.detach().clone())
            self.history_ = []
            bs = self.batch_size
            for epoch in range(self.epochs):
                net.train()
                order = torch.randperm(len(i_tr), generator=gen)
                total = 0.0
                for start in range(0, len(i_tr), bs):
                    b = order[start : start + bs]
                    pb = pt[b]
                    g = torch.softmax(net(Xt[b]), dim=1).gather(1, pb[:, None]).squeeze(1)
                    loss, _, _ = colander_surrogate(g, t[pb], et[b], self.alpha, self.lam)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(b)
                sched.step()
                with torch.no_grad():
                    net.eval()
                    conf = torch.softmax(net(Xsel), dim=1).gather(1, psel[:, None]).squeeze(1).numpy()
                cov = selection_score(conf, wrong[i_sel], self.epsilon)
                self.history_.append((epoch, total / len(i_tr), cov))
                if cov >= best[0]:  # ties go to the later (more trained) epoch
                    best = (cov, epoch, copy.deepcopy(net.state_dict()), t.detach().clone())
            net.load_state_dict(best[2])
            net.eval()
        self.net_ = net
        self.thresholds_ = best[3].numpy()
        self.best_epoch_ = best[1]
        self.selection_coverage_ = best[0]

    def _g(self, scores: Scores) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "net_"):
            raise NotFittedError("Colander is not fitted yet; call fit(scores, y) first.")
        torch = _torch()
        z = check_scores(scores)
        X = self._features(scores, z)
        if X.shape[1] != self.n_features_in_ or z.shape[1] != self.n_classes_:
            raise InputError(
                f"scores have {z.shape[1]} classes + {X.shape[1] - z.shape[1]} embedding columns; Colander was "
                f"fitted on {self.n_classes_} classes + {self.n_features_in_ - self.n_classes_}."
            )
        Xs = standardize(X, self.mean_, self.scale_).astype(np.float32)
        out = np.empty((X.shape[0], self.n_classes_))
        with torch.no_grad():
            for start in range(0, X.shape[0], 65536):  # bounded memory on big pools
                xb = torch.from_numpy(Xs[start : start + 65536])
                out[start : start + 65536] = torch.softmax(self.net_(xb), dim=1).numpy()
        return np.argmax(z, axis=1), out

    def predict_proba(self, scores: Scores) -> np.ndarray:
        """``g(x)``: Colander's per-class scores, shape (n, C) (rows sum to 1; not calibrated)."""
        return self._g(scores)[1]

    def confidence(self, scores: Scores) -> tuple[np.ndarray, np.ndarray]:
        """(``scores.predicted``, ``g(x)[predicted]``). Needs no label: leak-free by construction."""
        pred, g = self._g(scores)
        return pred, g[np.arange(g.shape[0]), pred]
