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

from labelsieve.confidence.base import ConfidenceFunction, MaxSoftmax
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
    "make_confidence",
    "top_label_ece",
]

#: Registry name -> class, in the order the paper's grid lists the post-hoc methods.
CONFIDENCE_FUNCTIONS: dict[str, type] = {
    "softmax": MaxSoftmax,
    "temperature": TemperatureScaling,
    "histogram": HistogramBinning,
    "scaling-binning": ScalingBinning,
    "dirichlet": DirichletCalibration,
    "colander": Colander,
}


def make_confidence(name: str, **params: Any) -> Any:
    """Build a confidence function by registry name; ``random_state`` is dropped where unused.

    >>> make_confidence("temperature").__class__.__name__
    'TemperatureScaling'
    """
    from labelsieve._validation import check_option

    check_option("name", name, owner="make_confidence", options=CONFIDENCE_FUNCTIONS)
    cls = CONFIDENCE_FUNCTIONS[name]
    if "random_state" in params and cls not in (ScalingBinning, Colander):
        params = {k: v for k, v in params.items() if k != "random_state"}
    return cls(**params)
