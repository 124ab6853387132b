"""The query-strategy interface: which pool items to send to humans next, and the registry of
strategies by name (``TBAL(strategy=NAME)``, the CLI's ``--strategy``, the contract suite)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from labelsieve._registry import Registry
from labelsieve.errors import ParameterError
from labelsieve.models.base import Classifier, Scores


@dataclass(frozen=True)
class QueryState:
    """What a strategy may look at.

    Attributes
    ----------
    model : trained classifier (or None before the first round)
    X_pool : features of the unlabeled candidates, shape (m, d)
    pool_scores : the model's scores on ``X_pool`` (computed once per round by the loop), or None
    X_labeled, y_labeled : the human-labeled training set so far
    """

    model: Classifier | None
    X_pool: np.ndarray
    pool_scores: Scores | None = None
    X_labeled: np.ndarray | None = None
    y_labeled: np.ndarray | None = None


@runtime_checkable
class QueryStrategy(Protocol):
    def query(self, state: QueryState, n: int, rng: np.random.Generator) -> np.ndarray:
        """Return ``min(n, m)`` distinct positions into ``state.X_pool``."""
        ...


def _check_strategy(member: Any) -> None:
    if not (isinstance(member, type) and callable(getattr(member, "query", None))):
        raise TypeError(f"a query strategy must be a class with a query(state, n, rng) method. Got {member!r}.")


#: Every query strategy by name. Flag ``tbal``: whether ``TBAL(strategy=NAME)`` can build it with no
#: arguments and run it in its loop. The influence-based strategies (``tbal=False``) need a labeled
#: validation set of their own (``X_val``, ``y_val``); TBAL's validation labels certify the
#: thresholds and must not steer training, so TBAL refuses them by name.
QUERY_STRATEGIES: Registry[type] = Registry("query strategy", parameter="strategy", flags={"tbal": True},
                                            check=_check_strategy)


def register_strategy(name: str, *, tbal: bool = True) -> Any:
    """Class decorator: ``@register_strategy("margin")`` (``tbal=False`` when TBAL cannot run it)."""
    return QUERY_STRATEGIES.register(name, tbal=tbal)


def get_strategy(name: str) -> type:
    """The strategy class called ``name``; :class:`~labelsieve.errors.ParameterError` listing the names.

    (Importing this module imports the package ``labelsieve.active`` first, which registers them all.)

    >>> from labelsieve.active import get_strategy
    >>> get_strategy("badge").__name__
    'BadgeQuery'
    """
    return QUERY_STRATEGIES.resolve(name)


def loop_strategy(name: str, *, owner: str = "TBAL") -> type:
    """The class of a strategy the TBAL loop can build by name (registry flag ``tbal``).

    Unknown names and strategies that need their own validation set raise
    :class:`~labelsieve.errors.ParameterError` naming the ones that work (for ``"isal"``: it needs
    its own validation set; pass ``ISALQuery(X_val=..., y_val=...)`` on other labeled data instead).
    """
    usable = ", ".join(repr(n) for n in QUERY_STRATEGIES.names(tbal=True))
    if not isinstance(name, str) or name not in QUERY_STRATEGIES:
        raise ParameterError(f"The 'strategy' parameter of {owner} must be one of {usable} or a query strategy "
                             f"instance. Got {name!r} instead.")
    cls = QUERY_STRATEGIES[name]
    if not QUERY_STRATEGIES.flags(name)["tbal"]:
        raise ParameterError(
            f"The 'strategy' parameter of {owner} cannot be {name!r}: {cls.__name__} needs a labeled validation "
            f"set of its own (X_val, y_val), and {owner}'s validation labels certify the thresholds, so they must "
            f"not steer which points are labeled. Pass {cls.__name__}(X_val=..., y_val=...) built on other "
            f"labeled data, or one of {usable}."
        )
    return cls
