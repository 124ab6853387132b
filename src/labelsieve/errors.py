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
