"""Plots rendered to PNG bytes (so a bundle can be written in one atomic step)."""

from __future__ import annotations

import io
from typing import Any


def _figure(rows: int, cols: int, size: tuple[float, float]) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=size, constrained_layout=True)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def learning_curve(history: list[dict[str, float]], best_epoch: int | None = None, title: str = "") -> bytes:
    """Loss per epoch (train and validation) beside the validation metric, with the LR on a twin axis."""
    epochs = [h["epoch"] for h in history]
    metric = next((k for k in ("val_accuracy", "val_r2") if k in history[0]), None)
    fig, axes = _figure(1, 2 if metric else 1, (11 if metric else 6.5, 4))
    axes = axes if metric else [axes]
    loss_ax = axes[0]
    loss_ax.plot(epochs, [h["train_loss"] for h in history], label="train loss", color="tab:blue")
    if "val_loss" in history[0]:
        loss_ax.plot(epochs, [h["val_loss"] for h in history], label="validation loss", color="tab:orange")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss")
    lr_ax = loss_ax.twinx()
    lr_ax.plot(epochs, [h["lr"] for h in history], color="tab:gray", linestyle=":", label="learning rate")
    lr_ax.set_ylabel("learning rate", color="tab:gray")
    lr_ax.tick_params(axis="y", labelcolor="tab:gray")
    if metric:
        axes[1].plot(epochs, [h[metric] for h in history], color="tab:green")
        axes[1].set(xlabel="epoch", ylabel=metric.removeprefix("val_"), title=f"Validation {metric[4:]}")
    for ax in axes:
        ax.grid(alpha=0.3)
        if best_epoch:
            ax.axvline(best_epoch, color="tab:red", linestyle="--", linewidth=1, label=f"best epoch ({best_epoch})")
    handles = loss_ax.get_legend_handles_labels()
    lr_handles = lr_ax.get_legend_handles_labels()
    loss_ax.legend(handles[0] + lr_handles[0], handles[1] + lr_handles[1], loc="upper right", fontsize=8)
    if title:
        fig.suptitle(title)
    return _png(fig)
