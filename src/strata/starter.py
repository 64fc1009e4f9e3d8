"""`strata init`: a starter recipe written from a data file's inferred schema."""

from __future__ import annotations

import os
from pathlib import Path

import yaml


def starter_recipe(data: Path, target: str, recipe_dir: Path | None = None) -> str:
    """YAML text of a complete recipe for `data`, every inferred column type listed for editing."""
    from strata.data.sources import read_table
    from strata.features import target as target_mod
    from strata.features.pipeline import infer_kind

    frame = read_table(data)
    target_mod.check_present(frame, [target])
    task, why = target_mod.infer_task(frame, [target], "auto")
    columns, skipped = [], []
    for name in frame.columns:
        if name == target:
            continue
        kind, reason = infer_kind(frame[name])
        (columns.append({"name": str(name), "type": kind}) if kind else skipped.append(f"{name} ({reason})"))
    relative = os.path.relpath(data.resolve(), (recipe_dir or data.parent).resolve())
    recipe = {
        "name": data.stem,
        "seed": 0,
        "data": {"path": relative, "target": target, "task": task},
        "features": {"columns": columns},
        "split": {"test": 0.2, "val": 0.1, "stratify": task != "regression"},
        "model": {"type": "mlp", "hidden": [128, 64], "activation": "relu", "norm": "none", "dropout": 0.1},
        "train": {
            "epochs": 200,
            "batch_size": 64,
            "optimizer": {"name": "adamw", "lr": 0.001, "weight_decay": 0.01},
            "schedule": {"name": "cosine", "warmup_epochs": 2},
            "early_stopping": {"monitor": "val_loss", "patience": 20, "restore_best": True},
        },
    }
    header = [
        f"# Starter recipe for {data.name}, written by `strata init`.",
        f"# Target '{target}': {task} ({why}).",
        "# Column types were inferred; change any 'type' (numeric, categorical, binary) or remove a column.",
    ]
    if skipped:
        header.append(f"# Left out: {', '.join(skipped)}.")
    return "\n".join(header) + "\n" + yaml.safe_dump(recipe, sort_keys=False, default_flow_style=None)
