"""Plots rendered to PNG bytes (so a bundle can be written in one atomic step).

Figures are drawn with matplotlib's object API on an Agg canvas, never through pyplot, so the
user's matplotlib backend (a notebook's inline plots, say) is left as it is.
"""

from __future__ import annotations

import io
from typing import Any


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # attaches an Agg canvas to the figure; pyplot is never involved
    buf = io.BytesIO()
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
    lr_ax = loss_ax.twinx()
    lr_ax.plot(epochs, [h["lr"] for h in history], color="tab:gray", linestyle=":", label="learning rate")
    lr_ax.set_ylabel("learning rate", color="tab:gray")
    lr_ax.tick_params(axis="y", labelcolor="tab:gray")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
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
