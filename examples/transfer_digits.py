"""Transfer learning on the bundled digits: pretrain a CNN on digits 0-4, then learn digits 5-9
from 20 labelled images per class, starting from scratch or from the pretrained network.

    .venv/bin/python examples/transfer_digits.py

Every run is seeded; the 100 training images and the held-out rest are the same for every method.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import strata

MODEL = {"type": "cnn", "channels": [32, 64], "global_pool": "flatten", "hidden": [128], "dropout": 0.2}
OPTIMIZER = {"name": "adamw", "lr": 0.003, "weight_decay": 0.01}
BASE = {"data": {"target": "digit"}, "track": False, "evaluate": False}


def main() -> None:
    frame = strata.load_dataset("digits_images")
    digit = frame["digit"].astype(int)
    low, high = frame[digit < 5], frame[digit >= 5]
    rng = np.random.default_rng(0)
    few = pd.concat([g.iloc[rng.permutation(len(g))[:20]] for _, g in high.groupby("digit")])
    rest = high.drop(few.index)
    with tempfile.TemporaryDirectory() as tmp:
        pretrained = Path(tmp) / "digits-0-4"
        strata.train({**BASE, "model": MODEL, "split": {"test": 0.2, "val": 0.1},
                      "train": {"epochs": 40, "batch_size": 64, "optimizer": OPTIMIZER,
                                "augment": [{"name": "translate", "fraction": 0.125}]}},
                     data=low, out=pretrained, quiet=True)  # fmt: skip
        methods = {
            "from scratch": MODEL,
            "feature extraction": {**MODEL, "pretrained": str(pretrained), "transfer": "feature_extraction"},
            "fine-tuning": {**MODEL, "pretrained": str(pretrained), "transfer": "fine_tune", "backbone_lr": 0.3},
        }
        print(f"digits 5-9: {len(few)} training images, {len(rest)} held out")
        print(f"{'method':<20} {'seed 0':>7} {'seed 1':>7} {'seed 2':>7} {'mean':>7}")
        for name, model in methods.items():
            scores = [_accuracy(model, seed, few, rest) for seed in (0, 1, 2)]
            print(f"{name:<20} " + " ".join(f"{s:>7.3f}" for s in scores) + f" {np.mean(scores):>7.3f}")


def _accuracy(model: dict, seed: int, train: pd.DataFrame, test: pd.DataFrame) -> float:
    recipe = {**BASE, "seed": seed, "model": model, "split": {"test": 0.0, "val": 0.0},
              "train": {"epochs": 30, "batch_size": 16, "optimizer": OPTIMIZER}}  # fmt: skip
    return strata.train(recipe, data=train, quiet=True).model.evaluate(test, bootstrap=0)["accuracy"]


if __name__ == "__main__":
    main()
