"""`strata drift BUNDLE new.csv`: new rows against the training rows the bundle remembers."""

from __future__ import annotations

from typing import Any

from strata.errors import BundleError


def predictions_for_drift(model: Any, frame: Any) -> Any:
    """What the reference holds for the predictions: class probabilities, or values in target units."""
    if model.task == "regression":
        return model.predict(frame)
    return model.predict_proba(frame)


def offline_drift(model: Any, data: Any) -> tuple[dict[str, Any], bytes]:
    """(the drift report, its plot as PNG) of `data` against the bundle's training reference."""
    from strata.monitoring import drift, drift_plot

    ref = model.reference
    if ref is None:
        raise BundleError("this model has no training reference (reference.json): forecasts and image models are "
                          "not monitored, and bundles trained before Strata wrote one need retraining")  # fmt: skip
    frame = model.read(data)
    report = drift(ref, frame, predictions_for_drift(model, frame))
    drifted = report["drifted"]
    report["summary"] = (f"{report['verdict']}: {len(drifted)} of {len(report['features'])} features drifted"
                         + (f" ({', '.join(drifted[:8])})" if drifted else "")
                         + (f"; predictions: {report['predictions']['verdict']}" if report.get("predictions") else "")
                         + f" ({report['rows']} rows)")  # fmt: skip
    return report, drift_plot(ref, frame, report)
