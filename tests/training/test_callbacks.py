"""EarlyStopping, driven by made-up epoch logs: when it stops, what it keeps, what it resumes from."""

from __future__ import annotations

import pytest
import torch

from strata.errors import RecipeError
from strata.training.callbacks import EarlyStopping


class FakeTrainer:
    """What a callback may touch: the model, `stop`, and `best_epoch`."""

    def __init__(self):
        self.model = torch.nn.Linear(2, 1)
        self.stop_reason: str | None = None
        self.best_epoch: int | None = None

    def stop(self, reason: str) -> None:
        self.stop_reason = reason


def run(callback: EarlyStopping, values: list[float], monitor: str = "val_loss") -> tuple[FakeTrainer, int | None]:
    """Feed one epoch per value (the weights are set to the epoch number); returns the trainer and
    the epoch after which the callback asked to stop."""
    trainer = FakeTrainer()
    stopped_at = None
    for epoch, value in enumerate(values, start=1):
        with torch.no_grad():
            trainer.model.weight.fill_(epoch)  # in place, as an optimizer step is
        callback.on_epoch_end(trainer, {"epoch": epoch, "train_loss": 1.0, monitor: value})
        if trainer.stop_reason:
            stopped_at = epoch
            break
    callback.on_train_end(trainer)
    return trainer, stopped_at


def test_stops_after_patience_epochs_without_improvement():
    trainer, stopped_at = run(EarlyStopping(patience=3), [1.0, 0.8, 0.9, 0.85, 0.81, 0.7])
    assert stopped_at == 5
    assert trainer.stop_reason == "early stopping: val_loss did not improve for 3 epochs (best 0.8 at epoch 2)"
    assert trainer.best_epoch == 2


def test_an_improvement_resets_the_count():
    _, stopped_at = run(EarlyStopping(patience=3), [1.0, 0.9, 0.95, 0.96, 0.8, 0.85, 0.86, 0.87])
    assert stopped_at == 8


def test_improvements_smaller_than_min_delta_do_not_count():
    trainer, stopped_at = run(EarlyStopping(patience=3, min_delta=0.1), [1.0, 0.95, 0.91, 0.905])
    assert stopped_at == 4 and trainer.best_epoch == 1
    _, stopped_at = run(EarlyStopping(patience=3, min_delta=0.1), [1.0, 0.85, 0.7, 0.55, 0.4])
    assert stopped_at is None  # each step improves by more than min_delta


@pytest.mark.parametrize(
    ("monitor", "mode", "values", "best_epoch"),
    [
        ("val_accuracy", "auto", [0.5, 0.6, 0.7, 0.65], 3),  # accuracy: higher is better
        ("val_loss", "auto", [0.5, 0.6, 0.7, 0.65], 1),  # loss: lower is better
        ("val_r2", "auto", [0.1, 0.3, 0.2, 0.25], 2),
        ("val_rmse", "auto", [3.0, 2.0, 2.5, 2.1], 2),
        ("val_loss", "max", [0.5, 0.6, 0.7, 0.65], 3),  # an explicit mode wins
        ("val_accuracy", "min", [0.5, 0.6, 0.7, 0.65], 1),
    ],
)
def test_mode_decides_which_direction_is_better(monitor, mode, values, best_epoch):
    trainer, _ = run(EarlyStopping(monitor, mode=mode, patience=10), values, monitor=monitor)
    assert trainer.best_epoch == best_epoch


def test_restore_best_puts_back_the_best_epochs_weights():
    trainer, _ = run(EarlyStopping(patience=2, restore_best=True), [1.0, 0.5, 0.7, 0.8])
    assert torch.all(trainer.model.weight == 2.0)  # the weights of epoch 2, not of epoch 4


def test_without_restore_best_the_last_weights_stay():
    trainer, _ = run(EarlyStopping(patience=2, restore_best=False), [1.0, 0.5, 0.7, 0.8])
    assert torch.all(trainer.model.weight == 4.0)
    assert trainer.best_epoch == 2


def test_state_round_trip_resumes_the_count():
    first = EarlyStopping(patience=3)
    run(first, [1.0, 0.5, 0.6, 0.7])  # two epochs without improvement so far
    resumed = EarlyStopping(patience=3)
    resumed.load_state_dict(first.state_dict())
    state = resumed.state_dict()
    assert {k: v for k, v in state.items() if k != "best_weights"} == {"best": 0.5, "best_epoch": 2, "wait": 2}
    assert torch.all(state["best_weights"]["weight"] == 2.0)  # the best epoch's weights go with the count
    trainer = FakeTrainer()
    resumed.on_epoch_end(trainer, {"epoch": 5, "val_loss": 0.55})  # not better than 0.5: the third
    assert trainer.stop_reason is not None and "best 0.5 at epoch 2" in trainer.stop_reason


def test_a_monitor_that_is_not_logged_lists_what_is():
    with pytest.raises(
        RecipeError,
        match=r"monitor: 'val_los' is not measured \(did you mean 'val_loss'\?\); available: train_loss, val_loss$",
    ):
        EarlyStopping("val_los").on_epoch_end(
            FakeTrainer(), {"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "lr": 0.1}
        )
