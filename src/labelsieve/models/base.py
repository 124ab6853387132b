"""The classifier interface and the :class:`Scores` a scorer hands to confidence functions.

A *Scorer* maps a block of items to :class:`Scores`. Trained classifiers implement
:class:`Classifier`; zero-shot labelers and imported score files produce ``Scores`` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from scipy.special import log_softmax, softmax


@dataclass(frozen=True)
class Scores:
    """Per-class scores for a block of items.

    Attributes
    ----------
    logits : float array, shape (n, n_classes)
        Un-normalised log-scores (for probabilistic models, log-probabilities up to a constant).
    embeddings : float array, shape (n, h), optional
        Penultimate-layer features, where the model has them.
    """

    logits: np.ndarray
    embeddings: np.ndarray | None = None

    @property
    def probs(self) -> np.ndarray:
        """Softmax of the logits, shape (n, n_classes)."""
        return softmax(np.asarray(self.logits, dtype=np.float64), axis=1)

    @property
    def log_probs(self) -> np.ndarray:
        return log_softmax(np.asarray(self.logits, dtype=np.float64), axis=1)

    @property
    def predicted(self) -> np.ndarray:
        """Arg-max class code, shape (n,)."""
        return np.argmax(self.logits, axis=1)

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    def take(self, index: np.ndarray) -> Scores:
        emb = None if self.embeddings is None else self.embeddings[index]
        return Scores(self.logits[index], emb)


@runtime_checkable
class Classifier(Protocol):
    """What the TBAL loop needs of a trainable model.

    Implementations follow scikit-learn: hyper-parameters in ``__init__``, ``fit`` returns ``self``,
    learned state ends in ``_``. ``n_classes`` is fixed at construction so a model trained on a
    subset lacking some class still scores every class.
    """

    n_classes: int

    def fit(self, X: np.ndarray, y: np.ndarray) -> Classifier: ...

    def scores(self, X: np.ndarray) -> Scores:
        """Logits (and embeddings where they exist) for ``X``."""
        ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...
