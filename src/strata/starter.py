"""`strata init`: a starter recipe written from a data file's inferred schema."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    import pandas as pd


def starter_recipe(frame: pd.DataFrame, data: Path, target: str, recipe_path: Path) -> str:
    """YAML text of a complete recipe for `data` (already read as `frame`), every inferred column
    type listed for editing. The recipe is named after its own file, as `strata train` names runs."""
    from strata.features import target as target_mod
    from strata.features.pipeline import infer_kind

    target_mod.check_present(frame, [target])
    task, why = target_mod.infer_task(frame, [target], "auto")
    columns, skipped = [], []
    for name in frame.columns:
        if name == target:
            continue
        kind, reason = infer_kind(frame[name])
        if kind:
            columns.append({"name": str(name), "type": kind})
        else:
            skipped.append(f"{name} ({reason})")
    recipe = {
        "name": recipe_path.stem,
        "seed": 0,
        "data": {"path": os.path.relpath(data.resolve(), recipe_path.parent.resolve()), "target": target, "task": task},
        "features": {"columns": columns},
        "split": {"test": 0.2, "val": 0.1, "stratify": task != "regression"},
        "model": _model([c for c in columns if c["type"] == "text"]),
        "train": {
            "epochs": 200,
            "batch_size": 64,
            "optimizer": {"name": "adamw", "lr": 0.001, "weight_decay": 0.01},
            "schedule": {"name": "cosine", "warmup_epochs": 2},
            "early_stopping": {"monitor": "val_loss", "patience": 20, "restore_best": True},
        },
    }
    header = [
        f"# Starter recipe for {data.name}, written by `strata init`. Every key: docs/recipe.md",
        f"# Target '{target}': {task}; {why}.",
        "# Column types were inferred; change any 'type' (numeric, categorical, binary, text) or remove a column.",
    ]
    header += [f"# Left out: {s}." for s in skipped]
    texts = [c["name"] for c in columns if c["type"] == "text"]
    if len(texts) > 1:  # a model reads one text column: keep the first, as a suggestion to edit
        header.append(f"# More than one text column ({', '.join(texts)}): a model reads one; the others are left out.")
        recipe["features"]["columns"] = [c for c in columns if c["type"] != "text" or c["name"] == texts[0]]
    return "\n".join(header) + "\n" + yaml.safe_dump(recipe, sort_keys=False, default_flow_style=None)


def _model(texts: list[dict]) -> dict:
    """An MLP for tables; a bidirectional GRU when a column holds free text (word order matters)."""
    if texts:
        return {"type": "gru", "bidirectional": True, "hidden_size": 64, "embedding_dim": 64, "pooling": "max",
                "dropout": 0.1}  # fmt: skip
    return {"type": "mlp", "hidden": [128, 64], "activation": "relu", "norm": "none", "dropout": 0.1}


def set_learning_rate(path: Path, lr: float) -> None:
    """Write `train.optimizer.lr: lr` into a recipe file, keeping its comments, order and layout
    (`optimizer: adam` becomes `optimizer: {name: adam, lr: ...}`). The file is replaced in one step,
    and only after the edited recipe has been checked."""
    import io

    from ruamel.yaml import YAML

    from strata.errors import RecipeError
    from strata.recipe import Recipe

    editor = YAML()  # round-trip mode: comments and key order survive
    editor.preserve_quotes = True
    raw = editor.load(path.read_text())
    train = raw.setdefault("train", {})
    if train is None:
        raw["train"] = train = {}
    optimizer = train.get("optimizer")
    if optimizer is None or isinstance(optimizer, str):
        train["optimizer"] = {"name": optimizer or "adam", "lr": lr} if optimizer else {"lr": lr}
    elif isinstance(optimizer, dict):
        optimizer["lr"] = lr
    else:
        raise RecipeError(f"{path}: train.optimizer is neither a name nor a mapping; cannot set its lr")
    text = io.StringIO()
    editor.dump(raw, text)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text.getvalue())
    try:
        Recipe.from_yaml(partial)  # the edit must leave a valid recipe
    except RecipeError:
        partial.unlink()
        raise
    os.replace(partial, path)
