"""Parameter checks with one message format (scikit-learn style).

>>> check_open_unit("epsilon", 0.05, owner="Certifier")
0.05
>>> check_open_unit("epsilon", 1.5, owner="Certifier")
Traceback (most recent call last):
...
labelsieve.errors.ParameterError: The 'epsilon' parameter of Certifier must be in (0, 1). Got 1.5 instead.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any, TypeVar

import numpy as np

from labelsieve.errors import InputError, ParameterError


def _fail(name: str, owner: str, domain: str, value: Any) -> ParameterError:
    return ParameterError(f"The '{name}' parameter of {owner} must be {domain}. Got {value!r} instead.")


def check_open_unit(name: str, value: float, *, owner: str) -> float:
    """Check ``0 < value < 1``."""
    if not isinstance(value, (int, float, np.floating)) or not (0.0 < float(value) < 1.0):
        raise _fail(name, owner, "in (0, 1)", value)
    return float(value)


def check_interval(
    name: str, value: float, *, owner: str, low: float, high: float, closed: str = "both"
) -> float:
    """Check ``value`` lies in an interval; ``closed`` in {'both', 'left', 'right', 'neither'}."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not math.isnan(float(value))
    if ok:
        v = float(value)
        lo_ok = v >= low if closed in ("both", "left") else v > low
        hi_ok = v <= high if closed in ("both", "right") else v < high
        ok = lo_ok and hi_ok
    if not ok:
        lb = "[" if closed in ("both", "left") else "("
        rb = "]" if closed in ("both", "right") else ")"
        raise _fail(name, owner, f"in {lb}{low}, {high}{rb}", value)
    return float(value)


def check_positive_int(name: str, value: int, *, owner: str, minimum: int = 1) -> int:
    """Check ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise _fail(name, owner, f"an int >= {minimum}", value)
    return int(value)


_Option = TypeVar("_Option", str, bool)


def check_option(name: str, value: _Option, *, owner: str, options: Collection[_Option]) -> _Option:
    """Check ``value`` is one of ``options`` (names, or ``(True, False)`` for a flag)."""
    if value not in options:
        raise _fail(name, owner, "one of " + ", ".join(repr(o) for o in sorted(options)), value)
    return value


def check_finite_2d(X: Any, *, what: str = "X") -> np.ndarray:
    """Return ``X`` as a 2-D float array, raising :class:`InputError` naming the first bad row."""
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise InputError(f"{what} must be 2-D (n_samples, n_features); got shape {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{what} must be numeric; got dtype {arr.dtype}.")
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(f"{what} has a non-finite value ({arr[row, col]}) at row {row}, column {col}.")
    return arr
