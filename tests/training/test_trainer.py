"""Training behaviour: every option trains, early stopping and clipping do their jobs, runs repeat exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

import strata
from strata.data.batches import TensorSet
from strata.recipe import Recipe, TrainConfig
from strata.training.trainer import Trainer
from tests.conftest import tiny_recipe


def train(frame: pd.DataFrame, **sections: object) -> strata.TrainResult:
    return strata.train(tiny_recipe(**sections), data=frame, quiet=True)


def loss_fell(result: strata.TrainResult) -> bool:
    losses = [h["train_loss"] for h in result.history]
    return losses[-1] < losses[0] and all(np.isfinite(losses))


TRAIN = {"epochs": 15, "batch_size": 16}


@pytest.mark.parametrize(
    "optimizer",
    [
        {"name": "sgd", "lr": 0.05},
        {"name": "sgd", "lr": 0.02, "momentum": 0.9, "nesterov": True},
        {"name": "adam"},
        {"name": "adamw", "weight_decay": 0.01},
        {"name": "rmsprop", "lr": 0.002},
    ],
)
def test_every_optimizer_lowers_the_loss(mixed_frame, optimizer):
    assert loss_fell(train(mixed_frame, train={**TRAIN, "optimizer": optimizer}))


@pytest.mark.parametrize(
    "schedule",
    [
        {"name": "step", "step_size": 5},
        {"name": "exponential", "gamma": 0.9},
        {"name": "cosine", "warmup_epochs": 2},
        {"name": "cyclic", "cycle_epochs": 4},
        {"name": "onecycle"},
        {"name": "none", "warmup_epochs": 1},
    ],
)
def test_every_schedule_lowers_the_loss_and_sets_the_lr(mixed_frame, schedule):
    result = train(mixed_frame, train={**TRAIN, "optimizer": {"name": "adam", "lr": 0.01}, "schedule": schedule})
    assert loss_fell(result)
    lrs = [h["lr"] for h in result.history]
    assert len(set(lrs)) > 1  # the schedule moved the learning rate


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid"])
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_every_activation_and_norm_lowers_the_loss(mixed_frame, activation, norm):
    model = {"hidden": [16, 16], "activation": activation, "norm": norm, "dropout": 0.1}
    assert loss_fell(train(mixed_frame, model=model, train={**TRAIN, "optimizer": {"name": "adam", "lr": 0.01}}))


@pytest.mark.parametrize("init", ["auto", "kaiming", "xavier", "default"])
def test_every_initialisation_trains(mixed_frame, init):
    assert loss_fell(train(mixed_frame, model={"hidden": [16], "init": init}, train=TRAIN))


@pytest.mark.parametrize(
    "loss",
    [
        {"name": "cross_entropy"},
        {"name": "cross_entropy", "label_smoothing": 0.1},
        {"name": "cross_entropy", "class_weights": "balanced"},
        {"name": "auto", "class_weights": {"high": 2.0}},
    ],
)
def test_classification_losses(mixed_frame, loss):
    assert loss_fell(train(mixed_frame, train={**TRAIN, "loss": loss}))


@pytest.mark.parametrize("loss", ["bce", "cross_entropy"])
def test_binary_losses(mixed_frame, loss):
    frame = mixed_frame.assign(label=np.where(mixed_frame["label"] == "high", "yes", "no"))
    result = train(frame, train={**TRAIN, "loss": {"name": loss, "label_smoothing": 0.05, "class_weights": "balanced"}})
    assert loss_fell(result)
    assert result.model.head.size == (1 if loss == "bce" else 2)
    assert result.model.predict_proba(frame).shape == (len(frame), 2)


@pytest.mark.parametrize("loss", ["mse", "mae", {"name": "huber", "huber_delta": 0.5}])
def test_regression_losses(regression_frame, loss):
    result = train(regression_frame, train={**TRAIN, "loss": loss})
    assert loss_fell(result)
    assert result.metrics["test"]["r2"] > 0.3


def test_multi_target_regression(regression_frame):
    frame = regression_frame.assign(other=regression_frame["a"] * 4 - 1)
    result = strata.train(
        tiny_recipe(
            data={"target": ["label", "other"]}, model={"hidden": [32]}, train={"epochs": 40, "batch_size": 16}
        ),
        data=frame,
        quiet=True,
    )
    assert result.model.predict(frame).shape == (len(frame), 2)
    assert set(result.metrics["test"]["per_target"]) == {"label", "other"}
    assert result.metrics["test"]["per_target"]["other"]["r2"] > 0.9


def test_loss_that_does_not_fit_the_task_is_named(regression_frame):
    with pytest.raises(strata.RecipeError, match=r"train.loss.name: 'cross_entropy' does not fit a regression target"):
        train(regression_frame, train={**TRAIN, "loss": "cross_entropy"})


def test_unknown_class_weight_key_is_named(mixed_frame):
    with pytest.raises(strata.RecipeError, match=r"class_weights: unknown class 'hgh' \(did you mean 'high'\?\)"):
        train(mixed_frame, train={**TRAIN, "loss": {"class_weights": {"hgh": 2}}})


def test_l1_penalty_shrinks_weights(mixed_frame):
    def weight_mass(result):
        return sum(p.abs().sum().item() for p in result.model.network.parameters() if p.ndim >= 2)

    plain = train(mixed_frame, train={**TRAIN, "epochs": 30})
    sparse = train(mixed_frame, train={**TRAIN, "epochs": 30, "l1": 0.01})
    assert weight_mass(sparse) < 0.8 * weight_mass(plain)


# ------------------------------------------------------------------------- early stopping
def overfit_frame() -> pd.DataFrame:
    """Few rows, pure-noise labels: validation loss must start rising early."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 10))
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(10)]).assign(label=rng.choice(["a", "b"], 120))


def test_early_stopping_stops_and_restores_the_best_epoch():
    frame = overfit_frame()
    result = train(
        frame,
        model={"hidden": [256, 256]},
        split={"val": 0.3},
        train={
            "epochs": 300,
            "batch_size": 8,
            "optimizer": {"name": "adam", "lr": 0.01},
            "early_stopping": {"patience": 5},
        },
    )
    meta = result.model.meta
    assert meta["epochs_run"] < 300
    assert meta["epochs_run"] == meta["best_epoch"] + 5
    assert "did not improve for 5 epochs" in meta["stopped"]
    best = result.history[meta["best_epoch"] - 1]["val_loss"]
    assert best == min(h["val_loss"] for h in result.history)
    # the weights kept are the best epoch's: their validation log loss is the best validation loss
    assert result.metrics["val"]["log_loss"] == pytest.approx(best, rel=1e-4)


def test_early_stopping_on_a_maximised_metric(mixed_frame):
    result = train(
        mixed_frame, train={**TRAIN, "epochs": 60, "early_stopping": {"monitor": "val_accuracy", "patience": 3}}
    )
    best = result.model.meta["best_epoch"]
    assert result.history[best - 1]["val_accuracy"] == max(h["val_accuracy"] for h in result.history)


def test_early_stopping_monitor_errors(mixed_frame):
    with pytest.raises(
        strata.RecipeError, match=r"monitor: 'val_acc' is not one of .* \(did you mean 'val_accuracy'\?\)"
    ):
        train(mixed_frame, train={**TRAIN, "early_stopping": {"monitor": "val_acc"}})
    with pytest.raises(
        strata.RecipeError,
        match=r"'val_r2' is not measured for a multiclass target.*available: train_loss, val_loss, val_accuracy",
    ):
        train(mixed_frame, train={**TRAIN, "early_stopping": {"monitor": "val_r2"}})
    with pytest.raises(strata.RecipeError, match=r"needs a validation split but split\.val is 0"):
        train(mixed_frame, split={"val": 0.0}, train={**TRAIN, "early_stopping": True})


def test_diverged_training_is_an_error_and_saves_nothing(mixed_frame, tmp_path):
    recipe = tiny_recipe(
        model={"hidden": [64]}, train={**TRAIN, "optimizer": {"name": "sgd", "lr": 1e6, "momentum": 0.9}}
    )
    with pytest.raises(strata.TrainingError, match=r"diverged, nothing was saved: training loss became nan in epoch 1"):
        strata.train(recipe, data=mixed_frame, out=tmp_path / "m", quiet=True)
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------------------ clipping
def one_sgd_step(clip: dict | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Size of the parameter change after one full-batch SGD step with lr 1 and huge gradients."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(32, 4) * 100, torch.randn(32, 1) * 100
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    cfg = TrainConfig(epochs=1, batch_size=32, optimizer={"name": "sgd", "lr": 1.0}, clip=clip)
    Trainer(model, torch.nn.MSELoss(), cfg, Recipe.from_dict({"data": {"target": "y"}}).seeds).fit(
        TensorSet({"input": x}, y)
    )
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    return (after - before), before


def test_clipping_by_norm_bounds_the_update():
    free, _ = one_sgd_step(None)
    clipped, _ = one_sgd_step({"norm": 0.5})
    assert free.norm() > 10
    assert clipped.norm() == pytest.approx(0.5, rel=1e-4)


def test_clipping_by_value_bounds_each_element():
    clipped, _ = one_sgd_step({"value": 0.1})
    assert clipped.abs().max() <= 0.1 + 1e-6


# ------------------------------------------------------------------------- reproducibility
def weights(result: strata.TrainResult) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in result.model.network.state_dict().items()}


def test_same_recipe_twice_is_bit_identical(mixed_frame):
    sections = {"model": {"hidden": [32, 16], "dropout": 0.2, "norm": "batch"}, "train": {**TRAIN, "epochs": 8}}
    a, b = train(mixed_frame, **sections), train(mixed_frame, **sections)
    wa, wb = weights(a), weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.history == [dict(h, seconds=h2["seconds"]) for h, h2 in zip(b.history, a.history, strict=True)]
    assert a.metrics == b.metrics


def test_another_process_trains_the_same_weights(mixed_frame, tmp_path):
    """A run repeats in a fresh interpreter (another hash seed, fresh RNGs), not just in this one."""
    mixed_frame.to_csv(tmp_path / "table.csv", index=False)
    recipe = tiny_recipe(
        data={"path": str(tmp_path / "table.csv"), "target": "label"},
        model={"hidden": [16], "dropout": 0.2, "norm": "batch"},
        train={**TRAIN, "epochs": 4},
    )
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    script = (
        "import sys, json, torch, strata\n"
        "from safetensors.torch import save_file\n"
        "torch.set_num_threads(int(sys.argv[2]))\n"
        "model = strata.train(sys.argv[1], quiet=True).model\n"
        "save_file(model.network.state_dict(), sys.argv[3])\n"
        "print(json.dumps(model.pipeline.to_json()))\n"
    )
    args = [str(tmp_path / "recipe.yaml"), str(torch.get_num_threads()), str(tmp_path / "there.safetensors")]
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    there = subprocess.run([sys.executable, "-c", script, *args], check=True, env=env, capture_output=True, text=True)
    here = strata.train(tmp_path / "recipe.yaml", quiet=True).model
    assert json.loads(there.stdout) == json.loads(json.dumps(here.pipeline.to_json()))
    theirs, ours = load_file(tmp_path / "there.safetensors"), here.network.state_dict()
    assert theirs.keys() == ours.keys()
    assert all(torch.equal(theirs[k], ours[k]) for k in ours)


def test_a_different_seed_gives_different_weights(mixed_frame):
    a = train(mixed_frame, seed=1, train=TRAIN)
    b = train(mixed_frame, seed=2, train=TRAIN)
    assert not torch.equal(weights(a)["head.weight"], weights(b)["head.weight"])


def test_training_leaves_the_global_rng_alone(mixed_frame):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(mixed_frame, model={"hidden": [8], "dropout": 0.5}, train=TRAIN)
    assert torch.equal(torch.rand(3), expected)


def test_batches_are_index_slices_of_a_seeded_permutation():
    data = TensorSet({"x": torch.arange(10).float()[:, None]}, torch.arange(10))
    first = [y.tolist() for _, y in data.batches(4, torch.Generator().manual_seed(0))]
    again = [y.tolist() for _, y in data.batches(4, torch.Generator().manual_seed(0))]
    assert first == again
    assert sorted(i for batch in first for i in batch) == list(range(10))
    assert first[0] == torch.randperm(10, generator=torch.Generator().manual_seed(0))[:4].tolist()
    # a trailing batch of one row is left out (batch norm cannot train on it)
    nine = TensorSet({"x": torch.zeros(9, 1)}, torch.zeros(9))
    assert [len(y) for _, y in nine.batches(4, torch.Generator())] == [4, 4]
    assert nine.n_batches(4) == 2 and data.n_batches(4) == 3


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(3, 2)

    def forward(self, numeric):
        return self.layer(numeric)


def test_outputs_in_chunks_equal_one_pass():
    """Chunked predictions are written into one tensor as they come (a list of chunk outputs kept
    ~1 KB per row of glibc heap alive); every row, the uneven last chunk included, is where it was."""
    from strata.models.heads import run
    from strata.recipe import Seeds

    net = _Net()
    x = torch.randn(23, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = net(x)
    torch.testing.assert_close(run(net, {"numeric": x}, 2, chunk=5), whole, rtol=0, atol=1e-6)
    assert run(net, {"numeric": x[:0]}, 2).shape == (0, 2)
    trainer = Trainer(net, torch.nn.CrossEntropyLoss(), TrainConfig(epochs=1, batch_size=4), Seeds(0, 0, 0))
    data = TensorSet({"numeric": x}, torch.zeros(23, dtype=torch.int64))
    torch.testing.assert_close(trainer.outputs(data, chunk=4), whole, rtol=0, atol=1e-6)


def test_training_does_not_hold_the_table_it_read(tmp_path, mixed_frame, monkeypatch):
    """A table read from a file is let go once its rows are tensors (and summarised for drift), so
    it is not held beside them while training; the drift reference and slice metrics still come out."""
    import gc
    import weakref

    import strata.data.sources as sources
    from strata.training.callbacks import Callback

    mixed_frame.to_parquet(tmp_path / "t.parquet", index=False)
    read, alive = [], []
    real = sources.load_frame

    def load_frame(*args, **kwargs):
        frame = real(*args, **kwargs)
        read.append(weakref.ref(frame))
        return frame

    class Watch(Callback):
        def on_epoch_end(self, trainer, row):
            gc.collect()
            alive.append(read[0]() is not None)

    monkeypatch.setattr(sources, "load_frame", load_frame)
    recipe = tiny_recipe(data={"target": "label", "path": str(tmp_path / "t.parquet")}, card={"slices": ["flag"]})
    result = strata.train(recipe, quiet=True, callbacks=[Watch()])
    assert read and alive == [False] * 5
    assert set(result.model.meta["slices"]) == {"flag"}
    from strata.api import as_recipe
    from strata.data.split import part_sizes

    reference = json.loads(result.model.artifacts["reference.json"])
    assert reference["rows"] == part_sizes(len(mixed_frame), as_recipe(recipe).split)["train"]
    assert set(reference["features"]) == {"x1", "x2", "colour", "flag"} and reference["predictions"] is not None
