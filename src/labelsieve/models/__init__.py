"""Trainable classifiers that produce :class:`~labelsieve.models.base.Scores` (logits, embeddings).

>>> make_model("logreg", n_classes=3, random_state=0)
LogisticRegressionClassifier(n_classes=3, random_state=0)
"""

from __future__ import annotations

from typing import Any

from labelsieve._validation import check_option
from labelsieve.models.base import Classifier, Scores
from labelsieve.models.logreg import (
    MISSING_CLASS_LOGIT_GAP,
    LogisticRegressionClassifier,
    fill_missing_logits,
)
from labelsieve.models.mlp import LOSSES, MLPClassifier

MODELS = {"logreg": LogisticRegressionClassifier, "mlp": MLPClassifier}

__all__ = [
    "LOSSES",
    "MISSING_CLASS_LOGIT_GAP",
    "MODELS",
    "Classifier",
    "LogisticRegressionClassifier",
    "MLPClassifier",
    "Scores",
    "fill_missing_logits",
    "make_model",
]


def make_model(name: str, *, n_classes: int, random_state: Any = None, **kw: Any) -> Classifier:
    """Build an unfitted model by CLI name (``'logreg'`` or ``'mlp'``); ``kw`` go to its constructor."""
    check_option("name", name, owner="make_model", options=MODELS)
    return MODELS[name](n_classes=n_classes, random_state=random_state, **kw)
