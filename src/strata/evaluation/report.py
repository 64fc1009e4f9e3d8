"""One self-contained HTML report for a trained model: the recipe, the data, metrics with their
confidence intervals, every plot (embedded as base64 PNG), the diagnosis and the fingerprint.
It opens in any browser, offline, and can be mailed as one file."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import BundleError, StrataError
from strata.evaluation.metrics import FORECAST

if TYPE_CHECKING:
    from strata.bundle import TrainedModel

PLOT_ORDER = ("learning_curve", "confusion_matrix", "roc", "precision_recall", "reliability", "regression_fit",
              "target_balance")  # fmt: skip
WIDE = ("learning_curve", "confusion_matrix", "regression_fit", "target_balance")  # drawn wide: a row of their own
CLASSIFICATION = ("accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc", "pr_auc", "log_loss",
                  "brier", "ece", "f1_weighted")  # fmt: skip
REGRESSION = ("mae", "rmse", "r2", "mape", "median_ae")

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1f2328;
       background: #f6f8fa; }
header { background: #0b3d5c; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; } header p { margin: 0; opacity: .85; }
main { max-width: 1180px; margin: 0 auto; padding: 8px 32px 40px; }
section { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 4px 20px 16px; margin: 18px 0; }
h2 { font-size: 18px; border-bottom: 1px solid #eaeef2; padding-bottom: 6px; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #eaeef2; padding: 4px 12px; text-align: right; }
th:first-child, td:first-child { text-align: left; } th { background: #f6f8fa; }
.verdict { border-left: 6px solid; padding: 10px 16px; border-radius: 4px; background: #f6f8fa; }
.well-fit { border-color: #1a7f37; } .overfitting, .underfitting, .not-converged { border-color: #bf8700; }
.unstable { border-color: #cf222e; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 0 18px; }
.plots .wide { grid-column: 1 / -1; }
figure { margin: 14px 0; } figure img { max-width: 100%; border: 1px solid #eaeef2; border-radius: 4px; }
figcaption { color: #57606a; font-size: 13px; }
pre { background: #f6f8fa; padding: 12px; border-radius: 6px; overflow-x: auto; font-size: 13px; }
.ci { color: #57606a; font-size: 13px; }
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return _number(value)
    return html.escape(str(value))


def _number(value: float) -> str:
    """Four decimals for scores and shares (0.9900, not 0.99); four significant digits otherwise."""
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.4g}"


def with_interval(values: dict[str, Any], name: str) -> str:
    """'0.962 [0.941, 0.979]' when a bootstrap interval exists, else the value alone."""
    value = values.get(name)
    interval = values.get("ci", {}).get(name)
    if value is None or not interval:
        return _fmt(value)
    return f'{_fmt(value)} <span class="ci">[{_number(interval[0])}, {_number(interval[1])}]</span>'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _metrics(model: TrainedModel) -> str:
    metrics = model.meta.get("metrics", {})
    names = {"regression": REGRESSION, "forecast": FORECAST}.get(model.task, CLASSIFICATION)
    splits = [s for s in ("val", "test") if s in metrics]
    rows = [[n, *(with_interval(metrics[s], n) for s in splits)] for n in names if any(n in metrics[s] for s in splits)]
    level = next((metrics[s].get("ci_level") for s in splits if metrics[s].get("ci_level")), None)
    note = (f"<p class='ci'>[low, high]: {level:.0%} bootstrap interval over {metrics[splits[-1]].get('bootstrap')} "
            f"resamples of the split's rows.</p>") if level else ""  # fmt: skip
    parts = [_table(["metric", *splits], rows) + note if rows else "<p>No held-out split.</p>"]
    last = metrics.get(splits[-1], {}) if splits else {}
    if "per_class" in last:
        parts.append(f"<h3>Per class ({splits[-1]})</h3>" + _table(
            ["class", "precision", "recall", "f1", "support"],
            [[html.escape(c), *(_fmt(v[k]) for k in ("precision", "recall", "f1", "support"))]
             for c, v in last["per_class"].items()]))  # fmt: skip
    if "baselines" in last:  # a forecast: the naive forecasts of the same windows, beside the model
        compared = {"model": last, **last["baselines"]}
        cells = [[n, *(_fmt(v.get(n)) for v in compared.values())] for n in FORECAST[:-1]]
        parts.append(f"<h3>Against the baselines ({splits[-1]}; MASE &lt; 1 beats that baseline's one-step "
                     "in-sample error)</h3>" + _table(["metric", *compared], cells))  # fmt: skip
    if "per_target" in last:
        parts.append(f"<h3>Per target ({splits[-1]})</h3>" + _table(
            ["target", *REGRESSION], [[html.escape(t), *(with_interval(v, n) for n in REGRESSION)]
                                      for t, v in last["per_target"].items()]))  # fmt: skip
    return "".join(parts)


def _plots(model: TrainedModel, folder: Path | None, images: dict[str, bytes]) -> str:
    found = dict(images)
    if folder is not None:
        for path in sorted(folder.glob("*.png")):
            found.setdefault(path.stem, path.read_bytes())
    if "learning_curve" not in found and model.meta.get("history"):  # plots were turned off: draw this one
        from strata.evaluation.plots import learning_curve

        found["learning_curve"] = learning_curve(model.meta["history"], model.meta.get("best_epoch"), "learning curve")
    ranked = sorted(found, key=lambda n: (PLOT_ORDER.index(n) if n in PLOT_ORDER else len(PLOT_ORDER), n))
    figures = "".join(
        f'<figure{" class=wide" if name.startswith(WIDE) else ""}><img alt="{html.escape(name)}" '
        f'src="data:image/png;base64,{base64.b64encode(found[name]).decode()}">'
        f"<figcaption>{html.escape(name.replace('_', ' '))}</figcaption></figure>"
        for name in ranked
    )
    return f'<div class="plots">{figures}</div>' if figures else "<p>No plots in this bundle.</p>"


def _diagnosis(model: TrainedModel) -> str:
    found = model.meta.get("diagnosis")
    history = model.meta.get("history")
    if not found and history:  # a bundle from before diagnoses were recorded: read its curves now
        from strata.evaluation.diagnosis import diagnose

        found = diagnose(history).to_dict()
    if not found:
        return "<p>No diagnosis recorded.</p>"
    tips = "".join(f"<li>{html.escape(t)}</li>" for t in found.get("suggestions", []))
    css = found["verdict"].replace(" ", "-")
    return (f'<div class="verdict {css}"><strong>{html.escape(found["verdict"])}</strong>: '
            f"{html.escape(found['detail'])}{f'<ul>{tips}</ul>' if tips else ''}</div>")  # fmt: skip


def _data(model: TrainedModel) -> str:
    meta = model.meta
    rows = meta.get("rows", {})
    source = html.escape(str(meta.get("data", {}).get("source", "unknown")))
    parts = [f"<p>Source: {source}. Rows: " + ", ".join(f"{k} {v}" for k, v in rows.items()) + ".</p>"]
    parts.append(_table(["feature", "type"], [[html.escape(c["name"]), c["kind"]] for c in model.pipeline.columns]))
    shown = tuple(f"{c['name']}: " for c in model.pipeline.columns)
    notes = [n for n in meta.get("feature_notes", []) if not n.strip().startswith(shown)]  # the table says those
    if notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    return "".join(parts)


def _fingerprint(model: TrainedModel) -> str:
    meta = model.meta
    rows = [[f"{k} hash", f"<code>{html.escape(str(v))}</code>"] for k, v in meta.get("fingerprint", {}).items()]
    rows += [[html.escape(k), _fmt(v)] for k, v in meta.get("versions", {}).items()]
    if meta.get("git"):
        dirty = " (dirty)" if meta["git"]["dirty"] else ""
        rows.append(["git commit", html.escape(meta["git"]["commit"][:12] + dirty)])
    if meta.get("run"):
        rows.append(["run", html.escape(f"{meta['run']['id']} ({meta['run']['tracking_uri']})")])
    return _table(["", ""], rows)


def render(model: TrainedModel, folder: Path | None = None, images: dict[str, bytes] | None = None) -> str:
    """The report of `model`; plots come from `images` and the bundle `folder` (its *.png files)."""
    import yaml

    meta, recipe = model.meta, model.recipe
    title = html.escape(meta.get("name", recipe.display_name))
    stopped = html.escape(meta.get("stopped") or "all epochs ran")
    sections = [
        ("Diagnosis", _diagnosis(model)),
        ("Metrics", _metrics(model)),
        ("Plots", _plots(model, folder, images or {})),
        ("Data", _data(model)),
        ("Training", f"<p>{meta.get('epochs_run')} of {recipe.train.epochs} epochs; best epoch "
                     f"{meta.get('best_epoch') or '—'}; {stopped}. {meta.get('n_parameters', 0):,} parameters, loss "
                     f"{html.escape(str(meta.get('loss')))}.</p>"),
        ("Recipe", f"<pre>{html.escape(yaml.safe_dump(recipe.to_dict(), sort_keys=False))}</pre>"),
        ("Fingerprint and environment", _fingerprint(model)),
    ]  # fmt: skip
    body = "".join(f"<section><h2>{name}</h2>{content}</section>" for name, content in sections)
    subtitle = f"{model.task} · created {html.escape(str(meta.get('created', '')))}"
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title} — Strata report</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{STYLE}</style></head>"
            f"<body><header><h1>{title}</h1><p>{subtitle}</p></header><main>{body}</main></body></html>")  # fmt: skip


def write(source: str | Path, out: str | Path = "report.html", tracking_uri: str | None = None) -> Path:
    """Render the report of a bundle folder, or of a tracked run (its id or the start of one), to `out`."""
    import os
    import tempfile

    from strata._files import write_atomically
    from strata.bundle import load

    out = Path(out)
    if out.is_dir():
        raise StrataError(f"--out '{out}' is a folder; give a file name such as {out / 'report.html'}")
    with tempfile.TemporaryDirectory() as tmp:
        if Path(source).is_dir():
            folder = Path(source)
        elif "/" in str(source) or os.sep in str(source) or Path(source).exists():
            raise BundleError(f"'{source}' is not a bundle folder (nor a run id)")
        else:
            from strata.track.store import Store

            store = Store.open(tracking_uri)
            run = store.run(str(source))
            folder = store.download(run.info.run_id, "bundle", Path(tmp))
        page = render(load(folder), folder)
        write_atomically(out, page)
    return out
