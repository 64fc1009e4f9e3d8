"""Losses: each recipe option changes the loss the way its documentation says."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from sklearn.utils.class_weight import compute_class_weight
from torch.nn import functional as F

from strata.errors import RecipeError
from strata.recipe import LossConfig
from strata.training.losses import class_weights, make, resolve


@pytest.fixture
def logits() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(16, 3, generator=gen) * 2, torch.randint(0, 3, (16,), generator=gen)


def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-row binary cross-entropy, written out."""
    p = torch.sigmoid(logits)
    return -(target * p.log() + (1 - target) * (1 - p).log())


# ---------------------------------------------------------------------------- cross-entropy
def test_label_smoothing_mixes_in_the_uniform_distribution(logits):
    outputs, codes = logits
    eps = 0.2
    log_p = outputs.log_softmax(1)
    expected = ((1 - eps) * -log_p[torch.arange(16), codes] + eps * -log_p.mean(1)).mean()
    smoothed = make("cross_entropy", LossConfig(label_smoothing=eps), None)(outputs, codes)
    plain = make("cross_entropy", LossConfig(), None)(outputs, codes)
    assert smoothed == pytest.approx(expected.item(), rel=1e-5)
    assert smoothed == pytest.approx(F.cross_entropy(outputs, codes, label_smoothing=eps).item(), rel=1e-6)
    assert abs(smoothed.item() - plain.item()) > 1e-3


def test_cross_entropy_class_weights_give_a_weighted_mean(logits):
    outputs, codes = logits
    weights = torch.tensor([1.0, 3.0, 0.5])
    per_row = -outputs.log_softmax(1)[torch.arange(16), codes]
    expected = (per_row * weights[codes]).sum() / weights[codes].sum()
    assert make("cross_entropy", LossConfig(), weights)(outputs, codes) == pytest.approx(expected.item(), rel=1e-5)


# ------------------------------------------------------------------------------------- bce
def test_binary_smoothing_targets_move_towards_one_half(logits):
    outputs, codes = logits[0][:, :1], logits[1] % 2
    eps = 0.1
    target = codes.float() * (1 - eps) + eps / 2
    loss = make("bce", LossConfig(label_smoothing=eps), None)(outputs, codes)
    assert loss == pytest.approx(bce(outputs[:, 0], target).mean().item(), rel=1e-5)
    assert abs(loss.item() - make("bce", LossConfig(), None)(outputs, codes).item()) > 1e-3


def test_binary_class_weights_give_a_weighted_mean(logits):
    outputs, codes = logits[0][:, :1], logits[1] % 2
    weights = torch.tensor([1.0, 4.0])
    w = weights[codes]
    expected = (bce(outputs[:, 0], codes.float()) * w).sum() / w.sum()
    assert make("bce", LossConfig(), weights)(outputs, codes) == pytest.approx(expected.item(), rel=1e-5)


def test_balanced_weights_are_scikit_learns():
    codes = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2])
    got = class_weights(LossConfig(class_weights="balanced"), codes, ["a", "b", "c"])
    expected = compute_class_weight("balanced", classes=np.arange(3), y=codes)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


# ---------------------------------------------------------------------------------- huber
def test_huber_delta_reaches_the_loss():
    outputs, target = torch.tensor([[0.0], [0.0], [0.0]]), torch.tensor([[0.3], [2.0], [-4.0]])
    default = make("huber", LossConfig(name="huber"), None)
    half = make("huber", LossConfig(name="huber", huber_delta=0.5), None)
    assert default(outputs, target) == pytest.approx(torch.nn.HuberLoss(delta=1.0)(outputs, target).item())
    assert half(outputs, target) == pytest.approx(torch.nn.HuberLoss(delta=0.5)(outputs, target).item())
    assert half(outputs, target) != pytest.approx(default(outputs, target).item())


# ------------------------------------------------------------------------- fit to the task
@pytest.mark.parametrize(
    ("name", "task", "message"),
    [
        ("bce", "multiclass", r"train.loss.name: 'bce' does not fit a multiclass target; use one of cross_entropy"),
        (
            "cross_entropy",
            "regression",
            r"'cross_entropy' does not fit a regression target; use one of mse, mae, huber",
        ),
        ("mse", "binary", r"'mse' does not fit a binary target; use one of bce, cross_entropy"),
    ],
)
def test_a_loss_that_does_not_fit_the_task_is_an_error(name, task, message):
    with pytest.raises(RecipeError, match=message):
        resolve(LossConfig(name=name), task, n_classes=3, n_targets=1)


def test_classification_options_on_a_regression_target_are_an_error():
    with pytest.raises(RecipeError, match=r"label_smoothing apply to classification, but the target is regression"):
        resolve(LossConfig(label_smoothing=0.1), "regression", n_classes=0, n_targets=1)


@pytest.mark.parametrize(("task", "kind", "size"), [("binary", "sigmoid", 1), ("multiclass", "softmax", 4)])
def test_auto_picks_the_loss_and_head(task, kind, size):
    name, head = resolve(LossConfig(), task, n_classes=4, n_targets=1)
    assert (head.kind, head.size) == (kind, size)
    assert name == ("bce" if task == "binary" else "cross_entropy")


# -------------------------------------------------------------------------- class weights
def test_class_weight_keys_match_float_class_labels():
    # A 0/1 target read as floats (a CSV column with gaps elsewhere) has classes 0.0 and 1.0;
    # the recipe says {1: 2.0}, as a user writes it.
    cfg = LossConfig(class_weights=yaml.safe_load("{1: 2.0}"))
    assert cfg.class_weights == {"1": 2.0}
    assert class_weights(cfg, np.array([0, 1, 1]), [0.0, 1.0]).tolist() == [1.0, 2.0]


def test_yaml_yes_no_keys_get_a_hint():
    cfg = LossConfig(class_weights=yaml.safe_load("{no: 2.0}"))  # YAML 1.1 reads `no` as false
    with pytest.raises(
        RecipeError,
        match=r"unknown class 'false' .*\(classes: no, yes\) \(YAML reads yes/no/on/off as true/false: quote them\)$",
    ):
        class_weights(cfg, np.array([0, 1]), ["no", "yes"])
