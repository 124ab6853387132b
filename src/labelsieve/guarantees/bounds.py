"""Upper confidence bounds on a binomial error rate, as objects in one registry.

A bound turns ``k`` errors among ``n`` points into an upper limit on the population error rate that
holds with probability >= 1 - delta (for the *guaranteed* ones). Every member has a ``name``, a flag
``guaranteed``, a vectorised ``upper(k, n, delta)``, a decision ``passes(k, n, epsilon, delta)``
(``upper <= epsilon``, possibly computed without inverting the bound) and ``min_n(errors, epsilon,
delta)``, the smallest ``n`` at which ``errors`` errors still certify ``epsilon``.

* ``clopper-pearson`` (default, exact): the ``1 - delta`` quantile of Beta(k + 1, n - k).
* ``hoeffding``: k/n + sqrt(log(1/delta) / (2n)).
* ``sigma`` (heuristic, TBAL authors' code): k/n + C1 * sqrt(ê (1 - ê)), C1 = 0.25, no 1/sqrt(n).
* ``tbal-hoeffding`` (heuristic, TBAL authors' code): k/n + C1 * sqrt(1/n).

Adding a bound is one subclass (its ``_upper``) plus one :func:`register_bound` line; the scan,
the certificates, ``GUARANTEED_BOUNDS`` and the CLI choices read the registry.

>>> get_bound("clopper-pearson").min_n(0, 0.05, 0.05)  # (1 - 0.05)^59 <= 0.05: rule of three
59
>>> sorted(GUARANTEED_BOUNDS)
['clopper-pearson', 'hoeffding']
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labelsieve._validation import check_option
from labelsieve.errors import ParameterError

#: C1 used in all experiments of the TBAL authors' code.
TBAL_C1 = 0.25
#: Largest n the bisection of :meth:`Bound.min_n` looks at.
_MAX_N = 10**9

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class Bound:
    """Base class: subclasses set ``name`` and ``guaranteed`` and implement :meth:`_upper`."""

    name: ClassVar[str] = ""
    guaranteed: ClassVar[bool] = False

    def _upper(self, k: FloatArray, n: FloatArray, e_hat: FloatArray, delta: float) -> FloatArray:
        """The bound where n > 0 (before clipping at 1); ``e_hat = k / n``."""
        raise NotImplementedError

    def upper(self, k: ArrayLike, n: ArrayLike, delta: float) -> FloatArray:
        """Upper bound on the error rate from ``k`` errors in ``n`` points, vectorised; 1 where n = 0."""
        kf = np.asarray(k, dtype=np.float64)
        nf = np.asarray(n, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            e_hat = np.where(nf > 0, kf / np.maximum(nf, 1), 1.0)
            u = self._upper(kf, nf, e_hat, delta)
        out: FloatArray = np.where(nf > 0, np.minimum(u, 1.0), 1.0)
        return out

    def passes(self, k: ArrayLike, n: ArrayLike, epsilon: float, delta: float) -> BoolArray:
        """``upper(k, n, delta) <= epsilon``, elementwise."""
        out: BoolArray = self.upper(k, n, delta) <= epsilon
        return out

    def zero_error_n(self, epsilon: float, delta: float) -> int:
        """Smallest n for which 0 errors in n points certifies ``epsilon`` (used in messages)."""
        return self.min_n(0, epsilon, delta)

    def min_n(self, errors: int, epsilon: float, delta: float) -> int:
        """Smallest n at which ``errors`` errors in n points still certify ``epsilon`` (bisection on n).

        It depends on (epsilon, delta, bound) only, never on labels, so starting a fixed-sequence
        scan there keeps its validity.
        """
        if errors < 0:
            raise ParameterError(f"errors must be >= 0; got {errors}.")
        k = np.array([errors])

        def ok(m: int) -> bool:
            return bool(self.passes(k, np.array([m]), epsilon, delta)[0])

        lo, hi = max(errors + 1, 1), max(errors + 1, 2)
        while not ok(hi):
            lo, hi = hi, hi * 2
            if hi > _MAX_N:
                return hi
        while lo < hi:
            mid = (lo + hi) // 2
            if ok(mid):
                hi = mid
            else:
                lo = mid + 1
        return int(lo)

    def with_c1(self, c1: float) -> Bound:
        """This bound with the heuristics' constant C1 (bounds without one ignore it)."""
        return self


@dataclass(frozen=True)
class ClopperPearson(Bound):
    """Exact binomial bound: the 1 - delta quantile of Beta(k + 1, n - k) (Clopper & Pearson 1934)."""

    name: ClassVar[str] = "clopper-pearson"
    guaranteed: ClassVar[bool] = True

    def _upper(self, k: FloatArray, n: FloatArray, e_hat: FloatArray, delta: float) -> FloatArray:
        from scipy.special import betaincinv  # lazy: keeps `import labelsieve.guarantees` light

        # 1-delta quantile of Beta(k+1, n-k); equals 1 when k == n.
        out: FloatArray = np.where(k < n, betaincinv(k + 1, np.maximum(n - k, 1e-300), 1.0 - delta), 1.0)
        return out

    def passes(self, k: ArrayLike, n: ArrayLike, epsilon: float, delta: float) -> BoolArray:
        """U <= eps  <=>  P(Bin(n, eps) <= k) <= delta (the binomial CDF is decreasing in p and
        equals delta at p = U): one ``bdtr`` call instead of ``betaincinv``, and only where needed."""
        from scipy.special import bdtr, xlogy  # lazy: keeps `import labelsieve.guarantees` light

        ki = np.asarray(k, dtype=np.int64)
        ni = np.asarray(n, dtype=np.int64)
        e_hat = ki / np.maximum(ni, 1)
        # U > k/n, so k/n >= eps fails for sure; the Chernoff bound P(Bin(n, eps) <= k) <=
        # exp(-n KL(k/n || eps)) passes for sure when that is <= delta. Only the band in between
        # needs the binomial CDF.
        kl = xlogy(e_hat, e_hat / epsilon) + xlogy(1 - e_hat, (1 - e_hat) / (1 - epsilon))
        sure_pass = (e_hat < epsilon) & (ni * kl >= math.log(1.0 / delta) * (1 + 1e-9))
        out: BoolArray = sure_pass & (ni > 0)
        band = np.flatnonzero((e_hat < epsilon) & ~sure_pass & (ni > 0))
        if len(band):
            out[band] = bdtr(ki[band], ni[band], epsilon) <= delta
        return out

    def zero_error_n(self, epsilon: float, delta: float) -> int:
        return math.ceil(math.log(delta) / math.log(1.0 - epsilon))  # (1 - eps)^n <= delta


@dataclass(frozen=True)
class Hoeffding(Bound):
    """k/n + sqrt(log(1/delta) / (2n)) (Hoeffding 1963)."""

    name: ClassVar[str] = "hoeffding"
    guaranteed: ClassVar[bool] = True

    def _upper(self, k: FloatArray, n: FloatArray, e_hat: FloatArray, delta: float) -> FloatArray:
        out: FloatArray = e_hat + np.sqrt(np.log(1.0 / delta) / (2.0 * np.maximum(n, 1)))
        return out

    def zero_error_n(self, epsilon: float, delta: float) -> int:
        return math.ceil(math.log(1.0 / delta) / (2.0 * epsilon**2))


@dataclass(frozen=True)
class Sigma(Bound):
    """HEURISTIC of the TBAL authors' code: k/n + C1 sqrt(ê (1 - ê)) (no 1/sqrt(n), no delta)."""

    name: ClassVar[str] = "sigma"
    guaranteed: ClassVar[bool] = False
    c1: float = TBAL_C1

    def _upper(self, k: FloatArray, n: FloatArray, e_hat: FloatArray, delta: float) -> FloatArray:
        out: FloatArray = e_hat + self.c1 * np.sqrt(e_hat * (1.0 - e_hat))
        return out

    def zero_error_n(self, epsilon: float, delta: float) -> int:
        return 1

    def with_c1(self, c1: float) -> Bound:
        return self if c1 == self.c1 else replace(self, c1=c1)


@dataclass(frozen=True)
class TBALHoeffding(Bound):
    """HEURISTIC of the TBAL authors' code: k/n + C1 sqrt(1/n) (no delta)."""

    name: ClassVar[str] = "tbal-hoeffding"
    guaranteed: ClassVar[bool] = False
    c1: float = TBAL_C1

    def _upper(self, k: FloatArray, n: FloatArray, e_hat: FloatArray, delta: float) -> FloatArray:
        out: FloatArray = e_hat + self.c1 * np.sqrt(1.0 / np.maximum(n, 1))
        return out

    def zero_error_n(self, epsilon: float, delta: float) -> int:
        return math.ceil((self.c1 / epsilon) ** 2)

    def with_c1(self, c1: float) -> Bound:
        return self if c1 == self.c1 else replace(self, c1=c1)


# ----------------------------------------------------------------------------- the registry
#: Every bound by name, in registration order.
BOUNDS: dict[str, Bound] = {}


def register_bound(bound: Bound) -> Bound:
    """Add ``bound`` to :data:`BOUNDS` under ``bound.name`` (returns it, so it can decorate an instance)."""
    if not isinstance(bound, Bound):
        raise TypeError(f"a bound must be a Bound instance; got {bound!r}.")
    name = bound.name
    if not isinstance(name, str) or not name or name != name.strip():
        raise TypeError(f"a bound needs a non-empty name without spaces; got {name!r}.")
    if name in BOUNDS and BOUNDS[name] != bound:
        raise TypeError(f"bound {name!r} is already registered ({BOUNDS[name]!r}).")
    BOUNDS[name] = bound
    return bound


def unregister_bound(name: str) -> None:
    """Remove a bound (tests that register a throw-away one)."""
    BOUNDS.pop(name, None)


def get_bound(bound: str | Bound, *, c1: float | None = None, owner: str = "get_bound") -> Bound:
    """The registered bound called ``bound`` (a :class:`Bound` passes through), with ``c1`` applied.

    Raises :class:`ParameterError` listing the registered names for an unknown name.

    >>> get_bound("wilson")
    Traceback (most recent call last):
    ...
    labelsieve.errors.ParameterError: The 'bound' parameter of get_bound must be one of 'clopper-pearson', 'hoeffding', 'sigma', 'tbal-hoeffding'. Got 'wilson' instead.
    """
    if isinstance(bound, Bound):
        b = bound
    else:
        if not isinstance(bound, str) or bound not in BOUNDS:
            raise ParameterError(
                f"The 'bound' parameter of {owner} must be one of "
                f"{', '.join(repr(o) for o in sorted(BOUNDS))}. Got {bound!r} instead."
            )
        b = BOUNDS[bound]
    return b if c1 is None else b.with_c1(c1)


def check_bound(bound: str, *, owner: str) -> str:
    """Check ``bound`` names a registered bound (the usual parameter message); returns it."""
    return check_option("bound", bound, owner=owner, options=BOUNDS)


class BoundNames(Sequence[str]):
    """Live, read-only view of the registered bound names with ``guaranteed == flag`` (or all).

    Behaves like the tuple it replaces (``in``, iteration, indexing, ``==`` with a tuple) and sees
    bounds registered after import.
    """

    def __init__(self, guaranteed: bool | None = None) -> None:
        self._guaranteed = guaranteed

    def _names(self) -> tuple[str, ...]:
        return tuple(n for n, b in BOUNDS.items() if self._guaranteed is None or b.guaranteed == self._guaranteed)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(self._names())

    def __repr__(self) -> str:
        return repr(self._names())


#: Names of the bounds that are guarantees / heuristics, derived from the registry.
GUARANTEED_BOUNDS = BoundNames(guaranteed=True)
HEURISTIC_BOUNDS = BoundNames(guaranteed=False)

register_bound(ClopperPearson())
register_bound(Hoeffding())
register_bound(Sigma())
register_bound(TBALHoeffding())


def bound_choices() -> tuple[str, ...]:
    """The registered names (for argparse ``choices`` read at parse time)."""
    return tuple(BOUNDS)



# ----------------------------------------------------------------------------- functional forms
def upper_bound(
    k: ArrayLike, n: ArrayLike, delta: float, method: str | Bound = "clopper-pearson", *, c1: float = TBAL_C1
) -> FloatArray:
    """``get_bound(method, c1=c1).upper(k, n, delta)``: the bound's value, vectorised.

    >>> float(np.round(upper_bound(0, 59, 0.05), 4))  # (1 - 0.05)^(1/59) rule of three
    0.0495
    >>> float(np.round(upper_bound(2, 100, 0.05, "hoeffding"), 4))
    0.1424
    """
    return get_bound(method, c1=c1, owner="upper_bound").upper(k, n, delta)


def passes(
    k: ArrayLike, n: ArrayLike, epsilon: float, delta: float, method: str | Bound, *, c1: float = TBAL_C1
) -> BoolArray:
    """``get_bound(method, c1=c1).passes(k, n, epsilon, delta)``: ``upper <= epsilon``, elementwise."""
    return get_bound(method, c1=c1, owner="passes").passes(k, n, epsilon, delta)


def min_points_for_zero_errors(epsilon: float, delta: float, method: str | Bound = "clopper-pearson") -> int:
    """Smallest n for which 0 errors in n points certifies ``epsilon`` (used in messages).

    >>> min_points_for_zero_errors(0.05, 0.05)
    59
    """
    return get_bound(method, owner="min_points_for_zero_errors").zero_error_n(epsilon, delta)


def min_points_for_errors(errors: int, epsilon: float, delta: float, method: str | Bound = "clopper-pearson") -> int:
    """Smallest n at which ``errors`` errors in n points still certify ``epsilon`` (:meth:`Bound.min_n`).

    >>> min_points_for_errors(1, 0.05, 0.05)
    93
    """
    return get_bound(method, owner="min_points_for_errors").min_n(errors, epsilon, delta)
