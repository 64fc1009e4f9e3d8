"""Plots rendered to PNG bytes (so a bundle can be written in one atomic step).

Figures are drawn with matplotlib's object API on an Agg canvas, never through pyplot, so the
user's matplotlib backend (a notebook's inline plots, say) is left as it is.
"""

from __future__ import annotations

import io
import math
from typing import Any


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _png(fig: Any) -> bytes:
    import warnings

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # attaches an Agg canvas to the figure; pyplot is never involved
    buf = io.BytesIO()
    with warnings.catch_warnings():  # labels in a script the font lacks (CJK, say) draw as boxes, once, quietly
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def learning_curve(history: list[dict[str, float]], best_epoch: int | None = None, title: str = "") -> bytes:
    """Loss per epoch (train and validation) beside the validation metric, with the LR on a twin axis."""
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    metric = next((k for k in ("val_accuracy", "val_r2") if k in history[0]), None)
    fig = _figure(11 if metric else 6.5, 4.4)
    axes = fig.subplots(1, 2 if metric else 1, squeeze=False)[0]
    marker = "o" if len(epochs) <= 30 else None  # a short run still shows its points
    loss_ax = axes[0]
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker=marker, ms=3, label="train loss", color="tab:blue")
    if "val_loss" in history[0]:
        loss_ax.plot(
            epochs, [h["val_loss"] for h in history], marker=marker, ms=3, label="validation loss", color="tab:orange"
        )
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss")
    finite = [v for h in history for k, v in h.items() if k in ("train_loss", "val_loss") and math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 100:  # an exploding epoch flattens the rest
        loss_ax.set_yscale("log")
        loss_ax.set_ylabel("loss (log scale)")
    rates = [h["lr"] for h in history]
    lr_ax = loss_ax.twinx()
    if max(rates) > min(rates):  # a schedule: draw it on its own axis
        lr_ax.plot(epochs, rates, color="tab:gray", linestyle=":", label="learning rate")
        lr_ax.set_ylabel("learning rate", color="tab:gray")
        lr_ax.tick_params(axis="y", labelcolor="tab:gray")
        lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    else:  # constant: a flat line on a meaningless scale says less than the legend
        lr_ax.set_axis_off()
        lr_ax.plot([], [], " ", label=f"learning rate {rates[0]:g} (constant)")
    if metric:
        axes[1].plot(epochs, [h[metric] for h in history], marker=marker, ms=3, color="tab:green")
        axes[1].set(xlabel="epoch", ylabel=metric.removeprefix("val_"), title=f"Validation {metric[4:]}")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(epochs) < 4:
            ax.set_xlim(0.5, len(epochs) + 0.5)
        if best_epoch:
            ax.axvline(best_epoch, color="tab:red", linestyle="--", linewidth=1, label=f"best epoch ({best_epoch})")
    handles, labels = loss_ax.get_legend_handles_labels()
    lr_handles, lr_labels = lr_ax.get_legend_handles_labels()
    fig.legend(handles + lr_handles, labels + lr_labels, loc="outside lower center", ncols=4, fontsize=9)
    if title:
        fig.suptitle(title)
    return _png(fig)


def _short(label: object, width: int = 14) -> str:
    text = str(label)
    return text if len(text) <= width else text[: width - 1] + "…"


def confusion(matrix: list[list[int]], classes: list, split: str) -> bytes:
    """Counts and row-normalised shares (recall on the diagonal), side by side."""
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    k = len(classes)
    size = min(4.0 + 0.45 * k, 14.0)
    fig = _figure(2 * size + 1, size)
    labels = [_short(c) for c in classes]
    for ax, values, title, fmt in zip(fig.subplots(1, 2), (counts, shares), ("counts", "share of each true class"),
                                      ("{:.0f}", "{:.2f}"), strict=True):  # fmt: skip
        image = ax.imshow(values, cmap="Blues", vmin=0)
        fig.colorbar(image, ax=ax, shrink=0.8)
        ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title=f"Confusion matrix: {title}")
        ax.set_xticklabels(labels, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
        ax.set_yticklabels(labels)
        if k <= 20:
            high = values.max() / 2 if values.max() else 1
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=8 if k > 8 else 10,
                            color="white" if values[i, j] > high else "black")  # fmt: skip
    fig.suptitle(f"{split} split ({int(counts.sum())} rows)")
    return _png(fig)


def _curves(kind: str, codes: Any, proba: Any, classes: list, split: str) -> bytes:
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    k = proba.shape[1]
    which = [1] if k == 2 else [c for c in range(k) if 0 < (codes == c).sum() < len(codes)]
    fig = _figure(6.5, 5.5)
    ax = fig.subplots()
    for c in which[:12]:  # beyond a dozen classes the picture is unreadable
        truth, score = codes == c, proba[:, c]
        if kind == "roc":
            fpr, tpr, _ = roc_curve(truth, score)
            ax.plot(fpr, tpr, label=f"{_short(classes[c])} (AUC {auc(fpr, tpr):.3f})")
        else:
            from sklearn.metrics import average_precision_score

            precision, recall, _ = precision_recall_curve(truth, score)
            ap = average_precision_score(truth, score)
            ax.plot(recall, precision, label=f"{_short(classes[c])} (AP {ap:.3f}; base rate {truth.mean():.2f})")
    if kind == "roc":
        ax.plot([0, 1], [0, 1], color="gray", linestyle=":", label="chance")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC curves ({split} split)")
    else:
        ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall curves ({split} split)")
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right" if kind == "roc" else "lower left",
              title="one vs rest" if k > 2 else f"positive: {_short(classes[1])}")  # fmt: skip
    return _png(fig)


def roc(codes: Any, proba: Any, classes: list, split: str) -> bytes:
    return _curves("roc", codes, proba, classes, split)


def precision_recall(codes: Any, proba: Any, classes: list, split: str) -> bytes:
    return _curves("pr", codes, proba, classes, split)


def reliability(codes: Any, proba: Any, split: str, bins: int = 10) -> bytes:
    """Accuracy against confidence of the predicted class, per confidence bin, with the counts below."""
    import numpy as np

    confidence, correct = proba.max(1), proba.argmax(1) == codes
    edges = np.linspace(0, 1, bins + 1)
    which = np.minimum(np.digitize(confidence, edges) - 1, bins - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    filled = [b for b in range(bins) if (which == b).any()]
    fig = _figure(6.5, 6.5)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], color="gray", linestyle=":", label="perfect calibration")
    top.bar([centres[b] for b in filled], [correct[which == b].mean() for b in filled], width=1 / bins,
            edgecolor="black", alpha=0.7, label="accuracy in bin")  # fmt: skip
    top.plot([confidence[which == b].mean() for b in filled], [correct[which == b].mean() for b in filled], "o-",
             color="tab:red", label="mean confidence vs accuracy")  # fmt: skip
    floor = 1 / proba.shape[1]  # the top class's probability is never below 1/k: start the axis there
    top.set(ylabel="accuracy", title=f"Reliability diagram ({split} split)", xlim=(floor, 1), ylim=(0, 1.02))
    top.legend(fontsize=8, loc="upper left")
    top.grid(alpha=0.3)
    bottom.bar(centres, [(which == b).sum() for b in range(bins)], width=1 / bins, edgecolor="black", color="tab:gray")
    bottom.set(xlabel="confidence of the predicted class", ylabel="rows", xlim=(floor, 1))
    return _png(fig)


def regression_fit(y: Any, pred: Any, name: str, split: str) -> bytes:
    """Predicted against actual; residuals against predicted; the residuals' histogram."""
    import numpy as np

    residual = y - pred
    fig = _figure(15, 4.6)
    scatter, spread, hist = fig.subplots(1, 3)
    low, high = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    scatter.scatter(y, pred, s=12, alpha=0.6)
    scatter.plot([low, high], [low, high], color="tab:red", linestyle="--", label="predicted = actual")
    scatter.set(xlabel=f"actual {name}", ylabel=f"predicted {name}", title="Predicted vs actual")
    scatter.legend(fontsize=8)
    spread.scatter(pred, residual, s=12, alpha=0.6)
    spread.axhline(0, color="tab:red", linestyle="--")
    spread.set(xlabel=f"predicted {name}", ylabel="residual (actual - predicted)", title="Residuals vs predicted")
    from matplotlib.ticker import MaxNLocator

    try:
        hist.hist(residual, bins=min(40, max(10, len(residual) // 10)), color="tab:gray", edgecolor="black")
    except ValueError:  # residuals too large for finite bins (a model far off): say so, do not fail
        hist.text(0.5, 0.5, "residuals too large to bin", ha="center", transform=hist.transAxes)
    hist.yaxis.set_major_locator(MaxNLocator(integer=True))  # rows are counted, not measured
    hist.axvline(0, color="tab:red", linestyle="--")
    hist.set(
        xlabel="residual", ylabel="rows", title=f"Residuals (mean {np.mean(residual):.3g}, sd {np.std(residual):.3g})"
    )
    for ax in (scatter, spread, hist):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{name}, {split} split ({len(y)} rows)")
    return _png(fig)


def target_balance(parts: dict[str, Any], classes: list | None, name: str) -> bytes:
    """Class counts per split (classification) or the target's histogram per split (regression)."""
    import numpy as np

    fig = _figure(8, 4.6)
    ax = fig.subplots()
    if classes is not None:
        k, n = len(classes), len(parts)
        width = 0.8 / n
        for i, (split, codes) in enumerate(parts.items()):
            counts = np.bincount(codes, minlength=k)
            ax.bar(
                np.arange(k) + (i - (n - 1) / 2) * width,
                counts / max(counts.sum(), 1),
                width,
                label=f"{split} ({len(codes)})",
            )
        ax.set_xticks(range(k))
        ax.set_xticklabels([_short(c) for c in classes], rotation=45 if k > 5 else 0, ha="right" if k > 5 else "center")
        ax.set(ylabel="share of rows", title=f"Class balance of {name} by split")
    else:
        for split, values in parts.items():
            ax.hist(values, bins=30, alpha=0.5, density=True, label=f"{split} ({len(values)})")
        ax.set(xlabel=name, ylabel="density", title=f"Distribution of {name} by split")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)


def lr_range(lrs: list[float], losses: list[float], suggestion: float | None) -> bytes:
    """The LR range test: smoothed loss against learning rate (log scale), the suggestion marked."""
    fig = _figure(7, 4.6)
    ax = fig.subplots()
    ax.plot(lrs, losses, color="tab:blue")
    ax.set_xscale("log")
    if suggestion:
        ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested lr {suggestion:.2g}")
        ax.legend(fontsize=9)
    ax.set(xlabel="learning rate (log scale)", ylabel="smoothed training loss", title="Learning-rate range test")
    ax.grid(alpha=0.3, which="both")
    return _png(fig)
