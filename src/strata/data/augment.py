"""Seeded augmentation of whole training batches: every random parameter is a tensor with one value per sample.

No per-sample Python loop: a step draws its parameters for the batch at once from the caller's generator, so
two runs seeded alike see the same augmented batches. Consecutive geometric steps (translate, rotate,
resized_crop) are composed into one affine matrix per sample and resampled once, which costs one
interpolation instead of one per step.

>>> import torch
>>> from strata.data.augment_spec import parse_steps
>>> augment = Augmenter(parse_steps(["flip", "noise"]), n_classes=10)
>>> x, y = augment(torch.zeros(8, 3, 16, 16), torch.zeros(8, dtype=torch.long), torch.Generator().manual_seed(0))
>>> tuple(x.shape), y.dtype
((8, 3, 16, 16), torch.int64)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from strata.data.augment_spec import (
    STEP_NAMES,
    AugmentStep,
    Cutout,
    DataKind,
    Flip,
    Jitter,
    Mixup,
    Noise,
    ResizedCrop,
    Rotate,
    Translate,
    applies_to,
    kinds_for,
    parse_steps,
)
from strata.errors import DataError

GEOMETRIC = ("translate", "rotate", "resized_crop")
_KIND_OF_RANK: dict[int, DataKind] = {2: "table", 3: "signal", 4: "image"}
_SHAPES = {"table": "tables (N, F)", "signal": "signals (N, C, L)", "image": "images (N, C, H, W)"}


def data_kind(x: Tensor) -> DataKind:
    """A batch's kind from its rank: tables (N, F), signals (N, C, L) or images (N, C, H, W)."""
    if x.dim() not in _KIND_OF_RANK:
        raise DataError(
            f"augmentation takes a batch of {', '.join(_SHAPES.values())}; got shape {tuple(x.shape)}. "
            "Remove `augment:` from the recipe for other inputs."
        )
    return _KIND_OF_RANK[x.dim()]


# ----------------------------------------------------------------------------------- random draws
# Drawn on the generator's device (usually the CPU), then moved, so any generator serves any batch.
def _uniform(g: torch.Generator, n: int, low: float, high: float, x: Tensor) -> Tensor:
    return (torch.rand(n, generator=g, device=g.device) * (high - low) + low).to(x.device, x.dtype)


def _chosen(g: torch.Generator, n: int, p: float, x: Tensor) -> Tensor:
    """A Bernoulli(p) mask (n,): which samples this step touches."""
    return (torch.rand(n, generator=g, device=g.device) < p).to(x.device)


def _per_sample(values: Tensor, x: Tensor) -> Tensor:
    """Shape (n,) → (n, 1, ..., 1), to broadcast against the batch."""
    return values.view(-1, *[1] * (x.dim() - 1))


def _beta(g: torch.Generator, alpha: float, n: int) -> Tensor:
    """n draws of Beta(alpha, alpha), determined by the generator.

    torch's Beta and Gamma samplers take no generator and Beta has no icdf, so NumPy samples it from a
    seed drawn with the generator: the same generator state gives the same lambdas.
    """
    seed = int(torch.randint(2**62, (1,), generator=g, device=g.device))
    return torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, n))


# ------------------------------------------------------------------------------- value-level steps
def _flip(x: Tensor, step: Flip, g: torch.Generator) -> Tensor:
    # Exact mirrors (torch.flip) rather than resampling: a flip should not blur.
    for enabled, dim in ((step.horizontal, -1), (step.vertical, -2)):
        if enabled:
            chosen = _chosen(g, len(x), step.p, x)
            x = torch.where(_per_sample(chosen, x), x.flip(dim), x)
    return x


def _jitter(x: Tensor, step: Jitter, g: torch.Generator) -> Tensor:
    n = len(x)
    shift = _per_sample(_uniform(g, n, -step.brightness, step.brightness, x), x)
    factor = _per_sample(_uniform(g, n, 1 - step.contrast, 1 + step.contrast, x), x)
    chosen = _per_sample(_chosen(g, n, step.p, x), x)
    mean = x.mean(dim=tuple(range(1, x.dim())), keepdim=True)  # each sample's own mean
    return torch.where(chosen, (x - mean) * factor + mean + shift, x)


def _noise(x: Tensor, step: Noise, g: torch.Generator) -> Tensor:
    noise = torch.randn(x.shape, generator=g, device=g.device).to(x.device, x.dtype) * step.std
    chosen = _per_sample(_chosen(g, len(x), step.p, x), x)
    return x + torch.where(chosen, noise, 0.0)


def _cutout(x: Tensor, step: Cutout, g: torch.Generator) -> Tensor:
    """Zero a box of `size` of each side (a span for signals), wholly inside, across all channels."""
    n, spatial = len(x), x.shape[2:]
    box = _per_sample(_chosen(g, n, step.p, x), x)  # (n, 1, 1[, 1]); narrowed axis by axis
    for axis, side in enumerate(spatial):
        width = max(1, round(step.size * side))
        start = torch.randint(0, side - width + 1, (n, 1), generator=g, device=g.device).to(x.device)
        pos = torch.arange(side, device=x.device)
        inside = (pos >= start) & (pos < start + width)  # (n, side)
        shape = [n, 1] + [1] * len(spatial)
        shape[2 + axis] = side
        box = box & inside.view(shape)
    return x.masked_fill(box, 0.0)


# ---------------------------------------------------------------------------------- geometric steps
# Each returns (n, 3, 3) matrices in grid_sample's normalised coordinates ([-1, 1] across each side)
# mapping an output position to the input position it reads from.
def _identity(n: int, x: Tensor) -> Tensor:
    return torch.eye(3, device=x.device, dtype=x.dtype).expand(n, 3, 3).clone()


def _translation(step: Translate, g: torch.Generator, x: Tensor, size: tuple[int, int]) -> Tensor:
    """Whole-pixel shifts: on their own they move content exactly, with no interpolation blur."""
    m = _identity(len(x), x)
    for row, side in enumerate(size[::-1]):  # x (width) first, then y (height)
        most = math.floor(step.fraction * side)
        shift = torch.randint(-most, most + 1, (len(x),), generator=g, device=g.device).to(x.device, x.dtype)
        m[:, row, 2] = -2 * shift / side  # content moves by +shift pixels
    return m


def _rotation(step: Rotate, g: torch.Generator, x: Tensor, size: tuple[int, int]) -> Tensor:
    """Counter-clockwise as displayed for a positive angle; corrected for aspect so pixels stay square."""
    h, w = size
    angle = torch.deg2rad(_uniform(g, len(x), *step.degrees, x))
    cos, sin = torch.cos(angle), torch.sin(angle)
    m = _identity(len(x), x)
    m[:, 0, 0], m[:, 0, 1] = cos, -sin * h / w
    m[:, 1, 0], m[:, 1, 1] = sin * w / h, cos
    return m


def _crop(step: ResizedCrop, g: torch.Generator, x: Tensor, size: tuple[int, int]) -> Tensor:
    """A box of area `scale` and pixel aspect `ratio`, clamped to the image and placed wholly inside."""
    h, w = size
    area = _uniform(g, len(x), *step.scale, x)
    ratio = torch.exp(_uniform(g, len(x), math.log(step.ratio[0]), math.log(step.ratio[1]), x))
    half_w = torch.sqrt(area * ratio * h / w).clamp(max=1.0)  # fractions of the side = half-widths in [-1, 1]
    half_h = torch.sqrt(area / ratio * w / h).clamp(max=1.0)
    m = _identity(len(x), x)
    m[:, 0, 0], m[:, 0, 2] = half_w, _uniform(g, len(x), -1, 1, x) * (1 - half_w)
    m[:, 1, 1], m[:, 1, 2] = half_h, _uniform(g, len(x), -1, 1, x) * (1 - half_h)
    return m


_MATRICES: dict[str, Callable[..., Tensor]] = {"translate": _translation, "rotate": _rotation, "resized_crop": _crop}


def _warp(x: Tensor, steps: Sequence[AugmentStep], g: torch.Generator) -> Tensor:
    """Apply consecutive geometric steps with one affine_grid + grid_sample for the whole batch."""
    image = x if x.dim() == 4 else x.unsqueeze(2)  # a signal is an image one pixel high
    n, size = len(x), (image.shape[2], image.shape[3])
    theta, moved = _identity(n, x), torch.zeros(n, dtype=torch.bool, device=x.device)
    for step in steps:  # output(p) = input(M1 M2 ... p): the first step listed acts first
        chosen = _chosen(g, n, step.p, x)
        theta = theta @ torch.where(chosen.view(n, 1, 1), _MATRICES[step.name](step, g, x, size), _identity(n, x))
        moved |= chosen
    grid = F.affine_grid(theta[:, :2], list(image.shape), align_corners=False)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False).view(x.shape)
    return torch.where(_per_sample(moved, x), out, x)  # untouched samples stay bit-identical


# ---------------------------------------------------------------------------------------- mixup
def _mixup(x: Tensor, y: Tensor, step: Mixup, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Blend each sample with a partner from a permutation of the batch; y must already be soft targets."""
    n = len(x)
    chosen = _chosen(g, n, step.p, x)
    partner = torch.randperm(n, generator=g, device=g.device).to(x.device)
    lam = torch.where(chosen, _beta(g, step.alpha, n).to(x.device, x.dtype), 1.0)  # (n,)
    lx, ly = _per_sample(lam, x), lam.view(-1, *[1] * (y.dim() - 1)).to(y.dtype)
    return lx * x + (1 - lx) * x[partner], ly * y + (1 - ly) * y[partner]


_VALUE_STEPS: dict[str, Callable[..., Tensor]] = {"flip": _flip, "jitter": _jitter, "noise": _noise, "cutout": _cutout}


def _stages(steps: Sequence[AugmentStep]) -> list[tuple[str, tuple[AugmentStep, ...]]]:
    """Steps in the listed order, with each run of consecutive geometric steps merged into one 'warp' stage."""
    stages: list[tuple[str, tuple[AugmentStep, ...]]] = []
    for step in steps:
        if step.name in GEOMETRIC and stages and stages[-1][0] == "warp":
            stages[-1] = ("warp", (*stages[-1][1], step))
        else:
            stages.append(("warp" if step.name in GEOMETRIC else step.name, (step,)))
    return stages


def _misfit(index: int, step: AugmentStep, kind: DataKind) -> str:
    """Which step does not fit, where it would, and what fits this data instead."""
    what = f"'{step.name}' with vertical: true" if isinstance(step, Flip) and step.vertical else repr(step.name)
    fits = [name for name in STEP_NAMES if applies_to(parse_steps([name])[0], kind)]
    return (
        f"augment[{index}]: {what} does not apply to {_SHAPES[kind]}, only to "
        f"{' and '.join(_SHAPES[k] for k in kinds_for(step))}; remove it. Steps for {kind}s: {', '.join(fits)}"
    )


class Augmenter:
    """Augment a training batch `(x, y)` with the recipe's `augment:` steps, each on a random subset (p).

    Without a mixup step `y` comes back untouched. With one, class codes (N,) become mixed class
    probabilities (N, n_classes) and float targets are mixed as values, so the loss must accept soft
    targets (CrossEntropyLoss does). Inputs are never modified in place.
    """

    def __init__(self, steps: Sequence[AugmentStep | str | dict], n_classes: int | None = None):
        self.steps = tuple(parse_steps(list(steps)))
        self.n_classes = n_classes
        self._stages = _stages(self.steps)

    def check(self, kind: DataKind) -> None:
        """Raise DataError naming the first step that has no meaning for this kind of data."""
        for i, step in enumerate(self.steps):
            if not applies_to(step, kind):
                raise DataError(_misfit(i, step, kind))

    def _soft_targets(self, y: Tensor, dtype: torch.dtype) -> Tensor:
        if y.is_floating_point():
            return y
        if self.n_classes is None:
            raise DataError("augment: mixup of class codes needs the number of classes; pass n_classes")
        return F.one_hot(y.long(), self.n_classes).to(dtype)

    def __call__(self, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The augmented batch; the same generator state always gives the same result."""
        self.check(data_kind(x))
        if not x.is_floating_point():
            raise DataError(f"augmentation needs floating-point inputs, got {x.dtype}; it cannot blend codes")
        if any(isinstance(s, Mixup) for s in self.steps):
            y = self._soft_targets(y, x.dtype)
        for stage, steps in self._stages:
            if stage == "warp":
                x = _warp(x, steps, generator)
            elif stage == "mixup":
                x, y = _mixup(x, y, steps[0], generator)
            else:
                x = _VALUE_STEPS[stage](x, steps[0], generator)
        return x, y
