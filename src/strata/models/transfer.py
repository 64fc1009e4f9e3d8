"""Transfer learning: start a network from a trained model's weights.

`model.pretrained` names the source (a bundle folder or `models:/NAME@ALIAS`); the new network must
have the same layers (the same model settings and input shape), and every weight is copied except
the output head's when the classes differ (then the head starts fresh). Two ways to train on:

    feature_extraction  the backbone (a conv network's convolutions; an MLP's hidden layers) is
                        frozen, batch-norm statistics included; the classifier on top learns
    fine_tune           everything learns, the backbone at `backbone_lr` x the learning rate
                        (discriminative rates, 0.1 by default); with `unfreeze_every: N` the backbone
                        starts frozen and one more stage thaws every N epochs, from the top down
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from strata.errors import RecipeError
from strata.training.callbacks import Callback

if TYPE_CHECKING:
    from strata.bundle import TrainedModel
    from strata.training.trainer import Trainer


def _core(network: nn.Module) -> nn.Module:
    """The network that has the `head` (a 1-D network sits inside its column adapter)."""
    return getattr(network, "network", network) if not hasattr(network, "head") else network


CLASSIFIER = ("hidden", "head")  # a conv network's dense layers on top of the features, and the output


def classifier_prefixes(network: nn.Module) -> tuple[str, ...]:
    """Parameter-name prefixes of the classifier: the output head, and a conv network's dense layers."""
    core = _core(network)
    inner = "network." if core is not network else ""
    names = [n for n in CLASSIFIER if hasattr(core, n)] if hasattr(core, "pool") else ["head"]
    return tuple(f"{inner}{n}." for n in names)


def head_prefix(network: nn.Module) -> str:
    return "network.head." if _core(network) is not network else "head."


def backbone(network: nn.Module) -> list[nn.Module]:
    """The feature extractor: a conv network's convolutions and pooling; an MLP's embeddings and
    hidden layers (everything but its output layer)."""
    core = _core(network)
    skip = CLASSIFIER if hasattr(core, "pool") else ("head",)
    return [module for name, module in core.named_children() if name not in skip]


def stages(network: nn.Module) -> list[nn.Module]:
    """Backbone parts from the input up: embeddings or the stem, then each stage of the body."""
    parts: list[nn.Module] = []
    for module in backbone(network):
        children = list(module.children())
        parts += children if isinstance(module, nn.Sequential) and children else [module]
    return [p for p in parts if any(True for _ in p.parameters())]


def copy_weights(network: nn.Module, source: TrainedModel, reference: str, same_classes: bool) -> list[str]:
    """Load the source's weights into `network`; notes on what was kept. The head is copied only when
    it predicts the same classes (or targets)."""
    mine, theirs = network.state_dict(), source.network.state_dict()
    head = head_prefix(network)
    missing = [k for k in mine if k not in theirs]
    extra = [k for k in theirs if k not in mine]
    if missing or extra:
        layer = (missing or extra)[0]
        raise RecipeError(
            f"model.pretrained: '{reference}' has different layers ('{layer}' is only in "
            f"{'this' if missing else 'that'} network); use its model settings: {_settings(source)}"
        )
    for key, value in theirs.items():
        if value.shape != mine[key].shape and not (key.startswith(head) and not same_classes):
            raise RecipeError(
                f"model.pretrained: layer '{key}' is {tuple(value.shape)} in '{reference}' and "
                f"{tuple(mine[key].shape)} here; use the same model settings and input size: {_settings(source)}"
            )
    keep_head = same_classes and all(theirs[k].shape == mine[k].shape for k in mine if k.startswith(head))
    network.load_state_dict({k: v for k, v in theirs.items() if keep_head or not k.startswith(head)}, strict=False)
    return [f"weights from '{reference}'" + ("" if keep_head else "; a new output head (the classes differ)")]


def _settings(source: TrainedModel) -> str:
    cfg = source.recipe.model.model_dump(exclude={"pretrained", "transfer", "backbone_lr", "unfreeze_every"})
    return ", ".join(f"{k}: {v}" for k, v in cfg.items())


def freeze(modules: list[nn.Module], frozen: bool = True) -> None:
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(not frozen)


class GradualUnfreezing(Callback):
    """Backbone frozen at the start; every `every` epochs the next stage from the top thaws."""

    def __init__(self, parts: list[nn.Module], every: int):
        self.parts, self.every = parts, every
        self.thawed = 0

    def on_train_begin(self, trainer: Trainer) -> None:
        freeze(self.parts)
        self.thawed = 0

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if int(logs["epoch"]) % self.every == 0 and self.thawed < len(self.parts):
            self.thawed += 1
            freeze([self.parts[-self.thawed]], frozen=False)

    def frozen(self) -> list[nn.Module]:
        """Parts still frozen: kept in eval mode, so their batch-norm statistics stay as trained."""
        return self.parts[: len(self.parts) - self.thawed]

    def state_dict(self) -> dict[str, Any]:
        return {"thawed": self.thawed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.thawed = state["thawed"]
        freeze(self.parts)
        freeze(self.parts[len(self.parts) - self.thawed :], frozen=False)
