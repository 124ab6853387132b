"""Breiman's waveform generator (version 1: 3 classes, 21 noisy features).

Breiman, Friedman, Olshen & Stone (1984), *Classification and Regression Trees*, Sec. 2.6.2.
Three triangular base waves on ``i = 1..21``::

    h1(i) = max(6 - |i - 11|, 0),   h2(i) = h1(i - 4),   h3(i) = h1(i + 4)

and, with ``u ~ U(0, 1)`` drawn per sample and equiprobable classes,

    class 0: x = u*h1 + (1-u)*h2 + eps
    class 1: x = u*h1 + (1-u)*h3 + eps
    class 2: x = u*h2 + (1-u)*h3 + eps,      eps ~ N(0, I_21)

The Bayes error of the noisy version is about 14% (CART book), so linear models reach ~80-86%.
"""

from __future__ import annotations

import numpy as np

from labelsieve._validation import check_positive_int
from labelsieve.data.dataset import Dataset, row_ids

#: Number of features of the waveform data.
N_FEATURES = 21

#: Class names: which two base waves are mixed.
WAVEFORM_CLASSES: tuple[str, ...] = ("h1+h2", "h1+h3", "h2+h3")


def base_waves() -> np.ndarray:
    """The three base waves ``h1, h2, h3`` evaluated at ``i = 1..21``.

    Returns
    -------
    H : float array, shape (3, 21)

    >>> H = base_waves()
    >>> H.shape, H[:, [10, 14, 6]].diagonal().tolist()   # peaks at i = 11, 15, 7
    ((3, 21), [6.0, 6.0, 6.0])
    """
    i = np.arange(1, N_FEATURES + 1, dtype=np.float64)

    def h1(t: np.ndarray) -> np.ndarray:
        return np.maximum(6.0 - np.abs(t - 11.0), 0.0)

    return np.stack([h1(i), h1(i - 4.0), h1(i + 4.0)])


#: For each class, the (first, second) base wave: x = u*H[first] + (1-u)*H[second].
_PAIRS = np.array([[0, 1], [0, 2], [1, 2]])


def waveform_class_means() -> np.ndarray:
    """Closed-form class-conditional means ``E[x | class] = (H[a] + H[b]) / 2`` (E[u] = 1/2).

    Returns
    -------
    means : float array, shape (3, 21)
    """
    H = base_waves()
    return 0.5 * (H[_PAIRS[:, 0]] + H[_PAIRS[:, 1]])


def waveform_arrays(
    n_samples: int, *, noise: bool = True, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n_samples`` waveform points (pure array function).

    Returns
    -------
    X : float64 array, shape (n_samples, 21)
    y : int64 array, shape (n_samples,), values in {0, 1, 2}
    """
    H = base_waves()
    y = rng.integers(0, 3, size=n_samples).astype(np.int64)
    u = rng.random(n_samples)[:, None]
    X = u * H[_PAIRS[y, 0]] + (1.0 - u) * H[_PAIRS[y, 1]]
    if noise:
        X = X + rng.standard_normal((n_samples, N_FEATURES))
    return X, y


def make_waveform(
    n_samples: int = 5000,
    *,
    noise: bool = True,
    random_state: int | np.random.Generator | None = None,
) -> Dataset:
    """Breiman's waveform data set (version 1) as a :class:`Dataset`.

    Parameters
    ----------
    n_samples : int
        Number of points.
    noise : bool
        Add independent N(0, 1) noise to each of the 21 features.
    random_state : int, Generator or None
        Seed or generator; same seed gives the same data.

    Returns
    -------
    Dataset
        ``X`` float32 (n_samples, 21), ``y`` in {0, 1, 2} with classes
        ``("h1+h2", "h1+h3", "h2+h3")``, ids ``"wf-00000"``..., name ``"waveform"``.

    >>> ds = make_waveform(10, random_state=0)
    >>> ds.X.shape, ds.classes, ds.ids[0]
    ((10, 21), ('h1+h2', 'h1+h3', 'h2+h3'), 'wf-00000')
    """
    n = check_positive_int("n_samples", n_samples, owner="make_waveform")
    rng = np.random.default_rng(random_state)
    X, y = waveform_arrays(n, noise=bool(noise), rng=rng)
    width = max(5, len(str(n - 1)))
    ids = row_ids(n, "wf-", width)
    return Dataset(
        ids=ids,
        X=X.astype(np.float32),
        classes=WAVEFORM_CLASSES,
        y=y,
        raw=None,
        name="waveform",
        source="generated:waveform",
        meta={"generator": "Breiman et al. (1984) waveform v1", "noise": bool(noise)},
    )
