"""A PyTorch multi-layer perceptron with logits, penultimate embeddings and a choice of train-time loss.

Torch is an optional extra (``pip install torch==2.13.0``); it is imported when the model is fitted.
Classes absent from the training labels get the logit described in :mod:`labelsieve.models.logreg`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from labelsieve._validation import check_interval, check_option, check_positive_int
from labelsieve.errors import MissingDependencyError, ParameterError
from labelsieve.models.base import Scores
from labelsieve.models.logreg import (
    check_fit_data,
    check_n_classes,
    check_predict_data,
    fill_missing_logits,
    require_fitted,
)

LOSSES = ("ce", "squentropy", "crl", "fmfp")
_SCORE_CHUNK = 8192


def import_torch() -> Any:
    """Import torch or raise :class:`MissingDependencyError` with the install command."""
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            "MLPClassifier needs PyTorch, which is not installed; run: pip install torch==2.13.0 "
            "(or pip install 'labelsieve[torch]' after installing that CPU wheel)."
        ) from exc
    return torch


def _seed_from(random_state: Any) -> int:
    """A 63-bit seed drawn from ``random_state`` (int, Generator, SeedSequence or None)."""
    return int(np.random.default_rng(random_state).integers(2**62))


@contextmanager
def _torch_threads(torch: Any, n_threads: int | None) -> Iterator[None]:
    """Use ``n_threads`` torch intra-op threads inside the block, then restore the previous number."""
    if n_threads is None or n_threads == torch.get_num_threads():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class MLPClassifier(BaseEstimator):
    """Fully connected ReLU network trained with Adam on one of four train-time losses.

    Inputs are standardized inside the model (mean/std of the training features; constant features
    are only centred). ``scores`` returns the logits and, as ``embeddings``, the activations of the
    last hidden layer (float32).

    Parameters
    ----------
    n_classes : int
        Number of output classes (>= 2), fixed even if ``y`` lacks some.
    hidden : int or sequence of int
        Hidden layer widths, e.g. ``(128,)``; at least one layer.
    loss : {'ce', 'squentropy', 'crl', 'fmfp'}
        Train-time method; see :mod:`labelsieve.models.losses`.
    epochs, batch_size : int
        Passes over the data and minibatch size (the last minibatch of an epoch may be smaller).
    lr, weight_decay : float
        Adam learning rate (> 0) and L2 weight decay (>= 0).
    random_state : int, Generator or None
        Seeds weight initialisation and minibatch order; equal seeds give identical models.
    device : str
        Torch device, ``'cpu'`` by default.
    loss_params : dict, optional
        ``crl``: ``weight`` (ranking-term weight, default 1). ``fmfp``: ``rho`` (SAM radius, default
        0.05), ``swa_start`` (fraction of epochs after which weights are averaged, default 0.75).
    n_threads : int or None
        Torch intra-op threads used *during* ``fit``/``scores`` only (the previous setting is restored
        afterwards). 1 by default: small networks gain nothing from more, and on a busy machine
        multi-threaded tiny matmuls run 10-30x slower. ``None`` keeps torch's current setting.

    Attributes
    ----------
    module_ : torch.nn.Sequential
        Trained network with ``body`` (hidden layers) and ``head`` (output layer); the SWA average for fmfp.
    classes_ : int array, shape (k,)
        Class codes present in the training labels.
    mean_, scale_ : float32 arrays, shape (n_features,)
        Standardization statistics.
    loss_curve_ : list of float
        Mean training loss per epoch.

    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(n_classes=3, hidden=(16,), epochs=30, random_state=0).fit(X, y)
    >>> s = clf.scores(X[:5]); s.logits.shape, s.embeddings.shape
    ((5, 3), (5, 16))
    """

    def __init__(
        self,
        *,
        n_classes: int,
        hidden: int | Sequence[int] = (128,),
        loss: str = "ce",
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        random_state: Any = None,
        device: str = "cpu",
        loss_params: Mapping[str, Any] | None = None,
        n_threads: int | None = 1,
    ):
        self.n_classes = n_classes
        self.hidden = hidden
        self.loss = loss
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.device = device
        self.loss_params = loss_params
        self.n_threads = n_threads

    def _check_params(self) -> tuple[int, ...]:
        owner = type(self).__name__
        check_n_classes(self.n_classes, owner=owner)
        hidden = (self.hidden,) if isinstance(self.hidden, (int, np.integer)) else self.hidden
        ok = (
            isinstance(hidden, Sequence) and not isinstance(hidden, str) and len(hidden) > 0
            and all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1 for h in hidden)
        )
        if not ok:
            raise ParameterError(f"The 'hidden' parameter of {owner} must be a positive int or a non-empty "
                                 f"sequence of positive ints. Got {self.hidden!r} instead.")
        check_option("loss", self.loss, owner=owner, options=LOSSES)
        check_positive_int("epochs", self.epochs, owner=owner)
        check_positive_int("batch_size", self.batch_size, owner=owner)
        check_interval("lr", self.lr, owner=owner, low=0.0, high=np.inf, closed="neither")
        check_interval("weight_decay", self.weight_decay, owner=owner, low=0.0, high=np.inf, closed="left")
        if not isinstance(self.device, str):
            raise ParameterError(f"The 'device' parameter of {owner} must be a str. Got {self.device!r} instead.")
        if self.n_threads is not None:
            check_positive_int("n_threads", self.n_threads, owner=owner)
        if self.loss_params is not None and not isinstance(self.loss_params, Mapping):
            raise ParameterError(f"The 'loss_params' parameter of {owner} must be a dict or None. "
                                 f"Got {self.loss_params!r} instead.")
        return tuple(int(h) for h in hidden)

    def fit(self, X: np.ndarray, y: np.ndarray) -> MLPClassifier:
        """Train on features ``X`` (n, d) and class codes ``y`` (n,) in ``[0, n_classes)``."""
        hidden = self._check_params()
        torch = import_torch()
        with _torch_threads(torch, self.n_threads):
            return self._fit(torch, X, y, hidden)

    def _fit(self, torch: Any, X: np.ndarray, y: np.ndarray, hidden: tuple[int, ...]) -> MLPClassifier:
        owner = type(self).__name__
        from labelsieve.models.losses import check_loss_params, make_objective

        params = check_loss_params(self.loss, self.loss_params, owner=owner)
        X, y = check_fit_data(X, y, self.n_classes, owner=owner)
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ParameterError(f"The 'device' parameter of {owner} must name a torch device. "
                                 f"Got {self.device!r} instead.") from exc

        mean = X.mean(axis=0)
        std = X.std(axis=0)
        self.mean_ = mean.astype(np.float32)
        self.scale_ = np.where(std > 0, std, 1.0).astype(np.float32)
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        n = X.shape[0]

        seed = _seed_from(self.random_state)
        with torch.random.fork_rng(devices=[]):  # seed init without leaving global RNG state changed
            torch.manual_seed(seed)
            module = self._build(torch, X.shape[1], hidden, int(self.n_classes)).to(device)
        gen = torch.Generator().manual_seed(seed + 1)

        Xt = torch.from_numpy(self._standardize(X)).to(device)
        yt = torch.from_numpy(y).to(device)
        objective = make_objective(self.loss, n, int(self.epochs), params)
        trainable = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trainable, lr=float(self.lr), weight_decay=float(self.weight_decay))
        bs = int(self.batch_size)
        curve = []
        module.train()
        for epoch in range(int(self.epochs)):
            perm = torch.randperm(n, generator=gen).to(device)
            total = 0.0
            for start in range(0, n, bs):
                idx = perm[start:start + bs]
                loss = objective.step(module, trainable, optimizer, Xt[idx], yt[idx], idx.cpu())
                total += float(loss) * len(idx)
            objective.end_epoch(module, epoch)
            curve.append(total / n)
        module = objective.finalize(module)
        module.eval()
        self.module_ = module
        self.loss_curve_ = curve
        return self

    @staticmethod
    def _build(torch: Any, n_features: int, hidden: tuple[int, ...], n_classes: int) -> Any:
        from collections import OrderedDict

        nn = torch.nn
        layers: list[Any] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        net = nn.Sequential(OrderedDict(body=nn.Sequential(*layers), head=nn.Linear(width, n_classes)))
        return net.to(torch.float32)  # inputs are float32 whatever torch's global default dtype is

    def _standardize(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float32) - self.mean_) / self.scale_).astype(np.float32, copy=False)

    def scores(self, X: np.ndarray) -> Scores:
        """Logits (n, n_classes) and penultimate-layer embeddings (n, hidden[-1]), float32."""
        require_fitted(self, "module_")
        X = check_predict_data(X, self.n_features_in_, owner=type(self).__name__)
        torch = import_torch()
        device = next(self.module_.parameters()).device
        # torch types nn.Module.__getattr__ as Tensor | Module, so named submodules are not callable to mypy
        net: Any = self.module_
        Z = self._standardize(X)
        logits, embs = [], []
        with torch.no_grad(), _torch_threads(torch, self.n_threads):
            for start in range(0, max(len(Z), 1), _SCORE_CHUNK):
                xb = torch.from_numpy(Z[start:start + _SCORE_CHUNK]).to(device)
                e = net.body(xb)
                logits.append(net.head(e).cpu().numpy())
                embs.append(e.cpu().numpy())
        out = np.concatenate(logits)
        if len(self.classes_) < self.n_classes:
            out = fill_missing_logits(out[:, self.classes_], self.classes_, self.n_classes)
        return Scores(logits=out.astype(np.float32, copy=False), embeddings=np.concatenate(embs))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax of the logits, shape (n, n_classes)."""
        return self.scores(X).probs

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Arg-max class codes, shape (n,)."""
        return self.scores(X).predicted
