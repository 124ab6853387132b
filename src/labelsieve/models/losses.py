"""Train-time losses and the training hooks they need (PyTorch).

Four ways to train the classifier whose scores TBAL thresholds ("train-time methods" of
Vishwakarma et al., NeurIPS 2024):

``ce``
    Plain cross-entropy.
``squentropy``
    Hui, Belkin & Wright (2023): cross-entropy plus the mean squared logit of the wrong classes.
``crl``
    Moon et al. (2020), Confidence-aware Ranking Loss: cross-entropy plus a margin ranking loss that
    asks samples classified correctly more often during training to get higher max-softmax confidence.
``fmfp``
    Zhu et al. (2022), flat minima for failure prediction: cross-entropy minimized with
    sharpness-aware minimization (SAM) and stochastic weight averaging (SWA).

Pure functions compute each formula; :class:`Objective` subclasses bundle a loss with its hooks
(correctness history for CRL, SAM + SWA for FMFP) for the trainer in :mod:`labelsieve.models.mlp`.
This module imports torch at the top: import it only once torch is known to be installed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelsieve.errors import ParameterError

LOSSES = ("ce", "squentropy", "crl", "fmfp")

#: Accepted ``loss_params`` keys and their defaults, per loss.
LOSS_PARAM_DEFAULTS: dict[str, dict[str, float]] = {
    "ce": {},
    "squentropy": {},
    "crl": {"weight": 1.0},
    "fmfp": {"rho": 0.05, "swa_start": 0.75},
}


# --------------------------------------------------------------------------- pure loss functions
def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy ``-log softmax(z)_y``; logits (n, C), y (n,) int64 -> scalar."""
    return F.cross_entropy(logits, y)


def squentropy(logits: Tensor, y: Tensor) -> Tensor:
    """Squentropy loss (Hui et al. 2023, eq. 1): CE + mean_i (1/(C-1)) sum_{j != y_i} z_ij^2.

    >>> z = torch.tensor([[2.0, 0.0, 1.0]]); y = torch.tensor([0])
    >>> round(float(squentropy(z, y) - cross_entropy(z, y)), 6)  # (0^2 + 1^2) / 2
    0.5
    """
    n_classes = logits.shape[1]
    wrong = torch.ones_like(logits, dtype=torch.bool)
    wrong[torch.arange(len(y)), y] = False
    sq = (logits.square() * wrong).sum(dim=1) / (n_classes - 1)
    return F.cross_entropy(logits, y) + sq.mean()


def crl_ranking_loss(conf_a: Tensor, conf_b: Tensor, hist_a: Tensor, hist_b: Tensor) -> Tensor:
    """Confidence-aware ranking term (Moon et al. 2020, eq. 3), mean over pairs.

    For a pair with correctness histories ``c_a, c_b`` and confidences ``k_a, k_b``:
    ``max(0, -sign(c_a - c_b) * (k_a - k_b) + |c_a - c_b|)``. Zero when the more often correct
    sample is more confident by at least the history gap; pairs with equal history cost nothing.

    >>> t = torch.tensor
    >>> float(crl_ranking_loss(t([0.9]), t([0.3]), t([1.0]), t([0.5])))  # agrees: 0.6 >= 0.5
    0.0
    >>> round(float(crl_ranking_loss(t([0.3]), t([0.9]), t([1.0]), t([0.5]))), 6)  # 0.6 + 0.5
    1.1
    """
    diff_hist = hist_a - hist_b
    return F.relu(-torch.sign(diff_hist) * (conf_a - conf_b) + diff_hist.abs()).mean()


def crl_loss(logits: Tensor, y: Tensor, history: Tensor, weight: float = 1.0) -> Tensor:
    """CRL objective: CE + ``weight`` * ranking loss over pairs (i, i+1 mod n) of the minibatch.

    ``history`` (n,) is each sample's fraction of past epochs in which it was classified correctly.
    """
    ce = F.cross_entropy(logits, y)
    if len(y) < 2 or weight == 0:
        return ce
    conf = F.softmax(logits, dim=1).max(dim=1).values
    rank = crl_ranking_loss(conf, torch.roll(conf, -1), history, torch.roll(history, -1))
    return ce + weight * rank


def sam_perturbation(grads: Sequence[Tensor | None], rho: float, eps: float = 1e-12) -> list[Tensor | None]:
    """SAM ascent step (Foret et al. 2021, eq. 2): ``e = rho * g / ||g||_2`` with the norm over all tensors.

    >>> e = sam_perturbation([torch.tensor([3.0]), torch.tensor([4.0])], rho=0.5)
    >>> [round(float(t), 6) for t in e]
    [0.3, 0.4]
    """
    present = [g for g in grads if g is not None]
    if not present:
        return [None for _ in grads]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in present]))
    scale = rho / (norm + eps)
    return [None if g is None else g * scale for g in grads]


def sam_step(params: Sequence[nn.Parameter], closure: Callable[[], Tensor], optimizer: torch.optim.Optimizer,
             rho: float) -> Tensor:
    """One SAM update: gradient at ``w``, move to ``w + e``, gradient there, restore ``w``, step.

    ``closure`` must zero nothing itself; it recomputes the loss (forward pass) and returns it.
    Returns the loss at the unperturbed weights.
    """
    optimizer.zero_grad(set_to_none=True)
    loss = closure()
    loss.backward()
    with torch.no_grad():
        e = sam_perturbation([p.grad for p in params], rho)
        for p, ep in zip(params, e, strict=True):
            if ep is not None:
                p.add_(ep)
    optimizer.zero_grad(set_to_none=True)
    closure().backward()
    with torch.no_grad():
        for p, ep in zip(params, e, strict=True):
            if ep is not None:
                p.sub_(ep)
    optimizer.step()
    return loss.detach()


# --------------------------------------------------------------------------- hooks
class CorrectnessHistory:
    """Per-sample count of epochs in which the training forward pass classified the sample correctly.

    ``record`` accumulates the current epoch; ``end_epoch`` folds it into the counts, so the history
    read during an epoch only reflects completed epochs (0 for all samples during the first).

    >>> h = CorrectnessHistory(3)
    >>> h.record(torch.tensor([0, 2]), torch.tensor([True, False])); h.end_epoch()
    >>> h.record(torch.tensor([0, 1, 2]), torch.tensor([True, True, True])); h.end_epoch()
    >>> h.fraction(torch.tensor([0, 1, 2])).tolist()
    [1.0, 0.5, 0.5]
    """

    def __init__(self, n_samples: int):
        self.counts = torch.zeros(n_samples)
        self._epoch = torch.zeros(n_samples)
        self.epochs = 0

    def record(self, idx: Tensor, correct: Tensor) -> None:
        self._epoch[idx] = correct.to(self._epoch.dtype)

    def end_epoch(self) -> None:
        self.counts += self._epoch
        self._epoch.zero_()
        self.epochs += 1

    def fraction(self, idx: Tensor) -> Tensor:
        return self.counts[idx] / max(self.epochs, 1)


class SWA:
    """Stochastic weight averaging over epochs ``>= start`` (Izmailov et al. 2018).

    Wraps ``torch.optim.swa_utils.AveragedModel`` (equal-weight running mean of the snapshots taken
    at each ``end_epoch`` call from epoch ``start`` on). Our networks have no batch-norm, so no
    statistics need recomputing afterwards.
    """

    def __init__(self, model: nn.Module, start: int):
        from torch.optim.swa_utils import AveragedModel

        self.start = start
        self.averaged = AveragedModel(model)
        self.n_snapshots = 0

    def end_epoch(self, model: nn.Module, epoch: int) -> None:
        if epoch >= self.start:
            self.averaged.update_parameters(model)
            self.n_snapshots += 1

    def result(self, model: nn.Module) -> nn.Module:
        """The averaged module, or ``model`` itself when no snapshot was taken."""
        return self.averaged.module if self.n_snapshots else model


class Objective:
    """Cross-entropy training; subclasses add a regularizer or change the update.

    The trainer calls, per minibatch, ``step(model, params, optimizer, xb, yb, idx)`` and, per epoch,
    ``end_epoch(model, epoch)``; after training, ``finalize(model)`` returns the module to keep.
    """

    def __init__(self, n_samples: int, epochs: int, **params: float):
        self.n_samples, self.epochs = n_samples, epochs

    def loss(self, logits: Tensor, y: Tensor, idx: Tensor) -> Tensor:
        return cross_entropy(logits, y)

    def step(self, model: nn.Module, params: Sequence[nn.Parameter], optimizer: torch.optim.Optimizer,
             xb: Tensor, yb: Tensor, idx: Tensor) -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = self.loss(model(xb), yb, idx)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def end_epoch(self, model: nn.Module, epoch: int) -> None:
        return None

    def finalize(self, model: nn.Module) -> nn.Module:
        return model


class SquentropyObjective(Objective):
    def loss(self, logits: Tensor, y: Tensor, idx: Tensor) -> Tensor:
        return squentropy(logits, y)


class CRLObjective(Objective):
    """CE + ``weight`` * CRL ranking term, tracking each sample's correctness across epochs."""

    def __init__(self, n_samples: int, epochs: int, weight: float = 1.0):
        super().__init__(n_samples, epochs)
        self.weight = weight
        self.history = CorrectnessHistory(n_samples)

    def loss(self, logits: Tensor, y: Tensor, idx: Tensor) -> Tensor:
        idx = idx.cpu()
        with torch.no_grad():
            self.history.record(idx, (logits.argmax(dim=1) == y).cpu())
        return crl_loss(logits, y, self.history.fraction(idx).to(logits.device), self.weight)

    def end_epoch(self, model: nn.Module, epoch: int) -> None:
        self.history.end_epoch()


class FMFPObjective(Objective):
    """CE with SAM updates (radius ``rho``) and SWA over epochs from ``swa_start * epochs`` on."""

    def __init__(self, n_samples: int, epochs: int, rho: float = 0.05, swa_start: float = 0.75):
        super().__init__(n_samples, epochs)
        self.rho = rho
        self.swa_start = min(int(swa_start * epochs), epochs - 1)
        self._swa: SWA | None = None

    def step(self, model: nn.Module, params: Sequence[nn.Parameter], optimizer: torch.optim.Optimizer,
             xb: Tensor, yb: Tensor, idx: Tensor) -> Tensor:
        return sam_step(params, lambda: cross_entropy(model(xb), yb), optimizer, self.rho)

    def end_epoch(self, model: nn.Module, epoch: int) -> None:
        if self._swa is None and epoch >= self.swa_start:
            self._swa = SWA(model, self.swa_start)
        if self._swa is not None:
            self._swa.end_epoch(model, epoch)

    def finalize(self, model: nn.Module) -> nn.Module:
        return model if self._swa is None else self._swa.result(model)


_OBJECTIVES: dict[str, type[Objective]] = {
    "ce": Objective, "squentropy": SquentropyObjective, "crl": CRLObjective, "fmfp": FMFPObjective,
}


def check_loss_params(loss: str, loss_params: Mapping[str, Any] | None, *, owner: str) -> dict[str, float]:
    """Merge ``loss_params`` over the defaults of ``loss``; unknown keys or bad values raise ParameterError."""
    defaults = LOSS_PARAM_DEFAULTS[loss]
    given = dict(loss_params or {})
    head = f"The 'loss_params' parameter of {owner} must"
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        allowed = "be empty or None" if not defaults else "only have keys " + ", ".join(map(repr, defaults))
        raise ParameterError(f"{head} {allowed} for loss={loss!r}. Got {given!r} instead.")
    domains = {"weight": ("[0, inf)", lambda v: v >= 0), "rho": ("(0, inf)", lambda v: v > 0),
               "swa_start": ("[0, 1)", lambda v: 0 <= v < 1)}
    out = {**defaults, **given}
    for key, val in out.items():
        domain, inside = domains[key]
        number = isinstance(val, (int, float)) and not isinstance(val, bool) and math.isfinite(val)
        if not (number and inside(val)):
            raise ParameterError(f"{head} have {key!r} in {domain} for loss={loss!r}. Got {given!r} instead.")
    return {k: float(v) for k, v in out.items()}


def make_objective(loss: str, n_samples: int, epochs: int, params: Mapping[str, float]) -> Objective:
    """Build the training objective named ``loss`` (one of :data:`LOSSES`)."""
    return _OBJECTIVES[loss](n_samples, epochs, **params)

