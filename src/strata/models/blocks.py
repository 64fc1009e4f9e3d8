"""Layers shared by the model builders: activations, normalisation and weight initialisation."""

from __future__ import annotations

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def norm_layer(kind: str, width: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


def dense_block(n_in: int, n_out: int, activation: str, norm: str, dropout: float) -> nn.Sequential:
    """Linear -> norm -> activation -> dropout. The linear bias is dropped when batch norm follows."""
    layers: list[nn.Module] = [
        nn.Linear(n_in, n_out, bias=norm != "batch"),
        norm_layer(norm, n_out),
        ACTIVATIONS[activation](),
    ]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])


def initialise(module: nn.Module, scheme: str, activation: str) -> None:
    """Kaiming (He) for the ReLU family, Xavier (Glorot) for tanh/sigmoid; biases start at zero.

    `scheme` is auto, kaiming, xavier or default (PyTorch's own initialisation, left as is).
    """
    if scheme == "default":
        return
    if scheme == "auto":
        scheme = "xavier" if activation in ("tanh", "sigmoid") else "kaiming"
    for layer in module.modules():
        if not isinstance(layer, nn.Linear):
            continue
        if scheme == "kaiming":
            slope = 0.01 if activation == "leaky_relu" else 0.0
            nn.init.kaiming_normal_(layer.weight, a=slope, nonlinearity="leaky_relu" if slope else "relu")
        else:
            gain = nn.init.calculate_gain(activation) if activation in ("tanh", "sigmoid") else 1.0
            nn.init.xavier_uniform_(layer.weight, gain=gain)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
