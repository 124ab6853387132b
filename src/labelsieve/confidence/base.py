"""The confidence-function interface, the registry of confidence functions by name, and the
baseline max-softmax score."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from labelsieve._registry import Registry
from labelsieve.errors import ParameterError
from labelsieve.models.base import Scores


@runtime_checkable
class ConfidenceFunction(Protocol):
    """Maps :class:`Scores` to (predicted class, confidence in that prediction).

    ``fit(scores, y)`` learns on human-labeled calibration data; ``confidence`` is pure.
    The predicted class is always the classifier's arg-max, never anything that needs the truth.
    """

    def fit(self, scores: Scores, y: np.ndarray) -> ConfidenceFunction: ...

    def confidence(self, scores: Scores) -> tuple[np.ndarray, np.ndarray]:
        """Return (predicted codes of shape (n,), confidences of shape (n,), higher = surer)."""
        ...


def _check_confidence(member: Any) -> None:
    ok = isinstance(member, type) and callable(getattr(member, "fit", None)) and callable(
        getattr(member, "confidence", None)) and isinstance(getattr(member, "requires_fit", None), bool)
    if not ok:
        raise TypeError(f"a confidence function must be a class with fit(scores, y), confidence(scores) and a "
                        f"bool 'requires_fit'. Got {member!r}.")


#: Every confidence function by name (``make_confidence``, the contract suite).
CONFIDENCE_FUNCTIONS: Registry[type] = Registry("confidence function", parameter="confidence",
                                                check=_check_confidence)


def register_confidence(name: str) -> Any:
    """Class decorator: ``@register_confidence("temperature")``."""
    return CONFIDENCE_FUNCTIONS.register(name)


def get_confidence(name: str) -> type:
    """The confidence-function class called ``name``; :class:`~labelsieve.errors.ParameterError`
    listing the names otherwise. (Importing this module imports ``labelsieve.confidence``, which
    registers the built-in ones.)"""
    return CONFIDENCE_FUNCTIONS.resolve(name)


@register_confidence("softmax")
class MaxSoftmax:
    """Confidence = max softmax probability (the TBAL paper's default; needs no fitting).

    >>> import numpy as np
    >>> pred, conf = MaxSoftmax().confidence(Scores(np.log(np.array([[0.2, 0.8], [0.6, 0.4]]))))
    >>> pred.tolist(), np.round(conf, 3).tolist()
    ([1, 0], [0.8, 0.6])
    """

    requires_fit = False  #: the TBAL loop certifies on all validation points

    def fit(self, scores: Scores, y: np.ndarray) -> MaxSoftmax:
        return self

    def confidence(self, scores: Scores) -> tuple[np.ndarray, np.ndarray]:
        return max_softmax(scores.logits)


def seeded_rng(random_state: Any, *, owner: str) -> np.random.Generator:
    """``np.random.default_rng(random_state)``; a value it cannot seed from raises ParameterError.

    >>> seeded_rng("seed", owner="ScalingBinning")
    Traceback (most recent call last):
    ...
    labelsieve.errors.ParameterError: The 'random_state' parameter of ScalingBinning must be None, an int >= 0 or a numpy Generator. Got 'seed' instead.
    """
    try:
        if isinstance(random_state, (bool, str, float)):
            raise TypeError
        return np.random.default_rng(random_state)
    except (TypeError, ValueError):
        raise ParameterError(f"The 'random_state' parameter of {owner} must be None, an int >= 0 or a numpy "
                             f"Generator. Got {random_state!r} instead.") from None


def max_softmax(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arg-max and max softmax probability, 1 / sum_j exp(z_j - z_max), without the full softmax."""
    z = np.asarray(logits)
    pred = np.argmax(z, axis=1)
    zmax = np.take_along_axis(z, pred[:, None], axis=1)
    conf = 1.0 / np.exp((z - zmax).astype(np.float64, copy=False)).sum(axis=1)
    return pred, conf


def top_label_matrix(p: np.ndarray, pred: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """Per-class probabilities from a top-label calibrator: the predicted class gets ``conf``
    (clipped to [0, 1]); the other classes share ``1 - conf`` in proportion to ``p`` (n, C)."""
    conf = np.clip(conf, 0.0, 1.0)
    rows = np.arange(p.shape[0])
    rest = 1.0 - p[rows, pred]
    scale = np.where(rest > 0, (1.0 - conf) / np.where(rest > 0, rest, 1.0), 0.0)
    q = p * scale[:, None]
    q[rows, pred] = conf
    return q
