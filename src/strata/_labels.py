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


def prediction_table(index: object, classes: list, target_names: list[str], labels: object, outputs: object) -> object:
    """The table `predict_frame` returns, for bundles, ensembles and the ONNX runtime alike: for
    classifiers (`labels` given) `prediction` (`labels`) and `proba_<class>` columns from `outputs`;
    for regression `prediction` (one target) or `prediction_<target>` columns from `outputs` (values)."""
    import pandas as pd

    result = pd.DataFrame(index=index)
    if labels is not None:
        result["prediction"] = labels
        for i, c in enumerate(classes):
            result[f"proba_{level_key(c)}"] = outputs[:, i]  # type: ignore[index]
        return result
    for i, value in enumerate(outputs.T):  # type: ignore[attr-defined]
        result["prediction" if len(target_names) == 1 else f"prediction_{target_names[i]}"] = value
    return result
