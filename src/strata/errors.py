"""Errors a user can act on. Each message names the key path, column, file or row at fault."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class StrataError(Exception):
    """Base class: a mistake in what the user gave Strata (not a bug in Strata)."""


class RecipeError(StrataError, ValueError):
    """A recipe key is unknown, has the wrong type or a value outside its choices."""


class DataError(StrataError, ValueError):
    """The data does not match what the recipe or the trained model expects."""


class NotFittedError(StrataError, AttributeError):
    """A model or pipeline was used before it was trained."""


class BundleError(StrataError, OSError):
    """A saved model folder is missing, incomplete or from an unknown format version."""


class StrataWarning(UserWarning):
    """Something was handled but the user should know (unseen categories, skipped columns)."""


def did_you_mean(value: object, choices: Iterable[object]) -> str:
    """' (did you mean 'adam'?)' when a close choice exists, else ''."""
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def one_of(value: object, choices: Iterable[object]) -> str:
    """ "'adamm' is not one of sgd, adam (did you mean 'adam'?)"."""
    choices = list(choices)
    listed = ", ".join(str(c) for c in choices)
    return f"{value!r} is not one of {listed}{did_you_mean(value, choices)}"
