"""How a category or class value is spelled as a key (JSON, recipe, column names)."""

from __future__ import annotations

import numbers


def level_key(value: object) -> str:
    """2007, 2007.0 and '2007' are one level; True is 'true'. Works for numpy scalars too."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "true" if value else "false"
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and float(value).is_integer():
        return str(int(value))
    return str(value)
