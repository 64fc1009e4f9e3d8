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


class TrackingError(StrataError, RuntimeError):
    """The tracking store (MLflow) cannot be reached, or a run, model or alias is not in it."""


class StrataWarning(UserWarning):
    """Something was handled but the user should know (unseen categories, skipped columns)."""


class TrainingError(StrataError, RuntimeError):
    """Training could not produce a usable model (for example the loss diverged to NaN)."""


def did_you_mean(value: object, choices: Iterable[object]) -> str:
    """' (did you mean 'adam'?)' when a close choice exists, else ''. Case is ignored when matching."""
    names = {str(c).lower(): str(c) for c in choices}
    close = difflib.get_close_matches(str(value).lower(), list(names), n=1, cutoff=0.6)
    return f" (did you mean '{names[close[0]]}'?)" if close else ""


def plural(count: int, word: str, suffix: str = "s") -> str:
    """'1 row', '3 rows'."""
    return f"{count} {word}{'' if count == 1 else suffix}"


def rows_have(count: int) -> str:
    """'1 row has', '3 rows have'."""
    return f"{plural(count, 'row')} {'has' if count == 1 else 'have'}"


def rows_text(labels: Iterable[object], total: int, shown: int = 5) -> str:
    """'row 7', 'rows 3, 8', 'rows 3, 8, 12, 20, 31 and 95 more' (table rows, counted from 0)."""
    labels = list(labels)[:shown]
    head = ", ".join(str(label) for label in labels)
    more = f" and {total - len(labels)} more" if total > len(labels) else ""
    return f"{'row' if total == 1 else 'rows'} {head}{more}"


def one_of(value: object, choices: Iterable[object]) -> str:
    """ "'adamm' is not one of sgd, adam (did you mean 'adam'?)"."""
    choices = list(choices)
    listed = ", ".join(str(c) for c in choices)
    return f"{value!r} is not one of {listed}{did_you_mean(value, choices)}"
