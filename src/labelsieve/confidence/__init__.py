"""labelsieve.confidence: confidence functions for threshold-based auto-labeling.

Every function follows :class:`~labelsieve.confidence.base.ConfidenceFunction`: ``fit(scores, y)``
on human-labeled calibration data, ``confidence(scores) -> (predicted codes, confidence)`` where the
predicted code is always the classifier's arg-max, and ``requires_fit`` tells the TBAL loop whether
to set calibration data aside.

Colander needs PyTorch; it is imported lazily (``labelsieve.confidence.Colander`` works without
torch until it is fitted).
"""

from __future__ import annotations

from typing import Any

from labelsieve.confidence.base import (
    CONFIDENCE_FUNCTIONS,
    ConfidenceFunction,
    MaxSoftmax,
    get_confidence,
    register_confidence,
)
from labelsieve.confidence.colander import Colander
from labelsieve.confidence.dirichlet import DirichletCalibration
from labelsieve.confidence.histogram import HistogramBinning, top_label_ece
from labelsieve.confidence.scaling_binning import ScalingBinning
from labelsieve.confidence.temperature import TemperatureScaling

__all__ = [
    "CONFIDENCE_FUNCTIONS",
    "Colander",
    "ConfidenceFunction",
    "DirichletCalibration",
    "HistogramBinning",
    "MaxSoftmax",
    "ScalingBinning",
    "TemperatureScaling",
    "get_confidence",
    "make_confidence",
    "register_confidence",
    "top_label_ece",
]

def make_confidence(name: str, **params: Any) -> Any:
    """Build a registered confidence function by name; ``random_state`` is dropped where the class
    takes none.

    >>> make_confidence("temperature").__class__.__name__
    'TemperatureScaling'
    """
    import inspect

    cls = get_confidence(name)
    if "random_state" in params and "random_state" not in inspect.signature(cls).parameters:
        params = {k: v for k, v in params.items() if k != "random_state"}
    return cls(**params)
