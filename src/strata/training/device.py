"""Where and how the trainer computes: `train.device`, `train.precision`, `train.compile`.

Each option asks for something this machine may not have. What cannot be had is never silently
ignored: a one-line StrataWarning says what was asked, why it cannot be done here and what runs
instead (the CLI prints it as `warning: ...`). Unset, the options leave training as it always
was: fp32 on the CPU, no per-step work added.

Choices: bf16 runs on the CPU too (torch's CPU autocast supports it; it saves memory, and is fast
only on CPUs with bf16 instructions). fp16 needs CUDA: on the CPU it falls back to fp32.
torch.compile is used on CUDA only: on the CPU it needs a C++ compiler and takes minutes to
start, more than it saves on the small networks trained there.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from strata.errors import StrataWarning
from strata.recipe import TrainConfig


@dataclass(frozen=True)
class Placement:
    device: torch.device
    autocast: torch.dtype | None = None  # mixed precision's lower dtype; None: fp32
    scale: bool = False  # fp16 needs a GradScaler (its range is too small for small gradients)
    compile: bool = False

    @property
    def moved(self) -> bool:
        """True when batches must be copied to another device than the CPU they are made on."""
        return self.device.type != "cpu"


def _warn(text: str) -> None:
    warnings.warn(text, StrataWarning, stacklevel=4)


def _device(asked: str | None) -> torch.device:
    if asked in (None, "cpu"):
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if asked == "cuda":
        _warn("train.device: cuda was asked for but this torch sees no CUDA GPU; training on the CPU")
    return torch.device("cpu")


def _precision(asked: str | None, device: torch.device) -> tuple[torch.dtype | None, bool]:
    if asked in (None, "fp32"):
        return None, False
    if device.type == "cpu" and asked == "fp16":
        _warn("train.precision: fp16 needs a CUDA GPU; training in fp32 on the CPU (bf16 works on the CPU)")
        return None, False
    if device.type == "cuda" and asked == "bf16" and not torch.cuda.is_bf16_supported():
        _warn("train.precision: this GPU has no bf16 support; training in fp32 (fp16 may work: set precision: fp16)")
        return None, False
    return (torch.bfloat16, False) if asked == "bf16" else (torch.float16, True)


def _compile(asked: bool | None, device: torch.device) -> bool:
    if not asked:
        return False
    if device.type == "cpu":
        _warn("train.compile: torch.compile is used on CUDA only (on the CPU it needs a C++ compiler and minutes "
              "to start); training without it")  # fmt: skip
        return False
    return True


def place(cfg: TrainConfig) -> Placement:
    """The device, precision and compilation this machine can give the recipe's train section."""
    device = _device(cfg.device)
    dtype, scale = _precision(cfg.precision, device)
    return Placement(device, dtype, scale, _compile(cfg.compile, device))


def has_conv2d(model: nn.Module) -> bool:
    """Image networks run faster on CUDA with channels-last tensors (NHWC, what tensor cores read)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def to_device(tensor: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """A CPU tensor on `device`, copied from pinned memory without waiting; images channels-last."""
    if tensor.device.type == "cpu":
        tensor = tensor.pin_memory().to(device, non_blocking=True)
    if channels_last and tensor.ndim == 4:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor
