"""The learning-rate range test (Smith, "Cyclical Learning Rates for Training Neural Networks"):
train from the recipe's initial weights while the learning rate grows exponentially every batch,
record the smoothed loss, and suggest the rate where the loss falls fastest.

The smoothing is an exponential moving average with bias correction (as fastai's). The test stops
early once the smoothed loss exceeds four times its best (it has diverged). The suggestion is the
point of steepest descent of the smoothed loss against log(lr), each slope measured across a window of
a tenth of the test, looked for between the first tenth of the test and the loss minimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from strata.data.batches import TensorSet
from strata.recipe import Seeds, TrainConfig
from strata.training.optim import make_optimizer

DIVERGED = 4.0


@dataclass
class RangeTest:
    lrs: list[float]
    losses: list[float]  # smoothed
    suggestion: float | None


def range_test(
    model: torch.nn.Module, loss: torch.nn.Module, data: TensorSet, cfg: TrainConfig, seeds: Seeds,
    start: float = 1e-7, end: float = 10.0, steps: int = 100, smoothing: float = 0.98,
) -> RangeTest:  # fmt: skip
    """Run the test on `model` (trained in place: pass a fresh one)."""
    if not 0 < start < end:
        raise ValueError(f"the range test needs 0 < start < end, got {start:g} and {end:g}")
    optimizer = make_optimizer(model, cfg.optimizer)
    factor = (end / start) ** (1 / max(steps - 1, 1))
    order = torch.Generator().manual_seed(seeds.data)
    lrs, smoothed = [], []
    average, best, step = 0.0, math.inf, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeds.train)
        model.train()
        while step < steps:
            for inputs, target in data.batches(cfg.batch_size, order):
                lr = start * factor**step
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                value = loss(model(**inputs), target)
                value.backward()
                optimizer.step()
                step += 1
                average = smoothing * average + (1 - smoothing) * float(value.detach())
                current = average / (1 - smoothing**step)
                if not math.isfinite(current) or current > DIVERGED * best:
                    return RangeTest(lrs, smoothed, suggest(lrs, smoothed))
                best = min(best, current)
                lrs.append(lr)
                smoothed.append(current)
                if step >= steps:
                    break
    return RangeTest(lrs, smoothed, suggest(lrs, smoothed))


def suggest(lrs: list[float], losses: list[float]) -> float | None:
    """The learning rate at the steepest fall of the loss, before its minimum."""
    if len(losses) < 10:
        return None
    loss = np.asarray(losses)
    lowest = int(np.argmin(loss))
    skip = len(loss) // 10
    if lowest <= skip + 1:
        return None
    # The slope over a window of a twentieth of the test either side: a one-step slope is mostly the
    # noise of single batches (largest in the first steps), and would often be steeper than the fall.
    x, width = np.log10(lrs), max(len(loss) // 20, 1)
    at = np.arange(skip, lowest)
    before, after = np.maximum(at - width, 0), np.minimum(at + width, len(loss) - 1)
    slope = (loss[after] - loss[before]) / (x[after] - x[before])
    return float(lrs[skip + int(np.argmin(slope))])
