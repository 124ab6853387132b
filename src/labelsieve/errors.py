"""Exceptions raised for bad user input and invalid parameters.

Every error names what is wrong (file, row, field, value) so the CLI can print it on one line.
"""

from __future__ import annotations


class LabelsieveError(Exception):
    """Base class of every error labelsieve raises on purpose."""


class InputError(LabelsieveError, ValueError):
    """Bad user data: a file, a column, a row or a value that cannot be used."""


class ParameterError(LabelsieveError, ValueError):
    """A hyper-parameter outside its domain."""


class NotEnoughDataError(LabelsieveError):
    """Too few points for what was asked (e.g. a bound that cannot be certified)."""


class MissingDependencyError(LabelsieveError, ImportError):
    """An optional extra is needed; the message says how to install it."""


class NotFittedError(LabelsieveError, ValueError, AttributeError):
    """A learned attribute was needed before ``fit`` was called.

    The same bases as scikit-learn's ``sklearn.exceptions.NotFittedError`` (``ValueError`` and
    ``AttributeError``), but not a subclass of it: that would import scikit-learn here, and this
    module stays stdlib-only. Catch it as ``LabelsieveError``, ``ValueError`` or this class.
    """

    @classmethod
    def check(cls, estimator: object, *attributes: str, hint: str = "call 'fit' first") -> None:
        """Raise unless ``estimator`` has every one of ``attributes`` (its learned state).

        >>> NotFittedError.check(object(), "coef_")
        Traceback (most recent call last):
        ...
        labelsieve.errors.NotFittedError: This object instance is not fitted yet; call 'fit' first.
        """
        if not all(hasattr(estimator, a) for a in attributes):
            raise cls(f"This {type(estimator).__name__} instance is not fitted yet; {hint}.")
