"""A trained model on disk: a folder of plain files, written atomically, loaded without unpickling.

    weights.safetensors   network weights
    pipeline.json         fitted feature state (means, vocabularies, classes)
    recipe.yaml           the resolved recipe, every default filled in
    meta.json             format version, metrics, history, seeds, fingerprint, package versions
    *.png                 plots (learning curve)

`meta.json["format"]` is the bundle format version. A newer Strata keeps reading older formats;
tests load a bundle committed in format 1 (tests/fixtures) and check its predictions.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from strata.errors import BundleError, DataError

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd
    from torch import nn

    from strata.features.pipeline import Pipeline
    from strata.recipe import Recipe
    from strata.training.losses import Head

FORMAT = 1
REQUIRED = ("weights.safetensors", "pipeline.json", "recipe.yaml", "meta.json")


class TrainedModel:
    """A fitted pipeline and network. `predict`, `predict_proba` and `evaluate` take a DataFrame,
    a list of records (dicts) or a path to a CSV/Parquet file."""

    def __init__(
        self,
        network: nn.Module,
        pipeline: Pipeline,
        recipe: Recipe,
        meta: dict[str, Any],
        artifacts: dict[str, bytes | Callable[[], bytes]] | None = None,
    ):
        self.network, self.pipeline, self.recipe, self.meta = network, pipeline, recipe, meta
        self.artifacts = artifacts or {}  # extra files for the bundle; callables render when saved
        self.path: Path | None = None
        network.eval()

    def __repr__(self) -> str:
        where = f" at '{self.path}'" if self.path else ""
        return f"<TrainedModel {self.recipe.display_name!r}: {self.task}, {len(self.pipeline.columns)} inputs{where}>"

    # ---- facts
    @property
    def task(self) -> str:
        return self.pipeline.task

    @property
    def classes(self) -> list:
        return list(self.pipeline.target.get("classes", []))

    @property
    def head(self) -> Head:
        from strata.training.losses import Head

        return Head(**self.meta["head"])

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta.get("metrics", {})

    # ---- predictions
    def _outputs(self, data: Any) -> np.ndarray:
        import torch

        from strata.training.losses import to_predictions

        frame = as_frame(data)
        inputs = self.pipeline.transform(frame).tensors()
        self.network.eval()
        with torch.inference_mode():
            chunks = [self.network(*(x[i : i + 8192] for x in inputs)) for i in range(0, len(frame), 8192)]
            outputs = torch.cat(chunks) if chunks else torch.empty(0, self.head.size)
            return to_predictions(self.head, outputs).numpy().astype(np.float64)

    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities, (N, classes), columns in the order of `classes`."""
        if self.task == "regression":
            raise DataError("predict_proba needs a classifier; this model does regression (use predict)")
        return self._outputs(data)

    def predict(self, data: Any) -> np.ndarray:
        """Class labels (as in the training target), or values in the target's units."""
        from strata.features import target

        out = self._outputs(data)
        if self.task != "regression":
            return np.asarray(self.classes, dtype=object)[out.argmax(1)] if out.size else np.array([], object)
        values = target.decode(out, self.pipeline.target)
        return values[:, 0] if values.shape[1] == 1 else values

    def predict_frame(self, data: Any) -> pd.DataFrame:
        """Predictions as a table: `prediction`, plus `proba_<class>` columns for classifiers."""
        import pandas as pd

        frame = as_frame(data)
        out = self._outputs(frame)
        result = pd.DataFrame(index=frame.index)
        if self.task == "regression":
            from strata.features import target

            values = target.decode(out, self.pipeline.target)
            for i, name in enumerate(self.pipeline.target["columns"]):
                result[f"predicted_{name}"] = values[:, i]
        else:
            result["prediction"] = np.asarray(self.classes, dtype=object)[out.argmax(1)]
            for i, c in enumerate(self.classes):
                result[f"proba_{c}"] = out[:, i]
        return result

    def evaluate(self, data: Any) -> dict[str, Any]:
        """Metrics on labelled data (it must contain the target columns)."""
        frame = as_frame(data)
        return self._metrics(self.pipeline.encode_target(frame), self._outputs(frame))

    def score(self, outputs: Any, encoded_target: Any) -> dict[str, Any]:
        """Metrics from raw network outputs and an encoded target (as the trainer holds them)."""
        from strata.training.losses import to_predictions

        predictions = to_predictions(self.head, outputs).numpy().astype(np.float64)
        return self._metrics(np.asarray(encoded_target), predictions)

    def _metrics(self, y: np.ndarray, predictions: np.ndarray) -> dict[str, Any]:
        from strata.evaluation import metrics
        from strata.features import target

        if not np.isfinite(predictions).all():  # a diverged run: say so instead of failing in sklearn
            bad = int((~np.isfinite(predictions)).any(axis=1).sum())
            return {"error": f"the model outputs NaN or infinity for {bad} of {len(predictions)} rows"}
        if self.task != "regression":
            return metrics.classification(y, predictions, self.classes)
        state = self.pipeline.target
        return metrics.regression(target.decode(y, state), target.decode(predictions, state), state["columns"])

    # ---- files
    def save(self, path: str | Path) -> Path:
        """Write the bundle folder atomically: a reader sees the old bundle or the new one, never half."""
        import yaml
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            state = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
            save_file(state, tmp / "weights.safetensors", metadata={"format": str(FORMAT)})
            (tmp / "pipeline.json").write_text(json.dumps(self.pipeline.to_json(), indent=1))
            (tmp / "recipe.yaml").write_text(yaml.safe_dump(self.recipe.to_dict(), sort_keys=False))
            (tmp / "meta.json").write_text(json.dumps({**self.meta, "format": FORMAT}, indent=1, default=_json))
            for name, blob in self.artifacts.items():
                (tmp / name).write_bytes(blob() if callable(blob) else blob)
            _replace_dir(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.path = path
        return path


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to meta.json")


def _replace_dir(new: Path, target: Path) -> None:
    """Swap `new` into place of `target` with renames, keeping the old one until the new one is there."""
    if not target.exists():
        os.replace(new, target)
        return
    if not (target / "meta.json").exists() and any(target.iterdir()):
        raise BundleError(f"'{target}' exists and is not a Strata bundle; refusing to overwrite it")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def as_frame(data: Any) -> pd.DataFrame:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, str | Path):
        from strata.data.sources import read_table

        return read_table(data)
    if isinstance(data, dict):
        data = [data]
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return pd.DataFrame.from_records(data)
    raise DataError(f"expected a DataFrame, a list of records or a file path, got {type(data).__name__}")


def load(path: str | Path) -> TrainedModel:
    """Load a bundle folder. Raises BundleError naming the folder or file when it cannot."""
    import yaml
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from strata.features.pipeline import Pipeline
    from strata.models import build
    from strata.recipe import Recipe

    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"model bundle '{path}' not found (expected a folder with {', '.join(REQUIRED)})")
    missing = [f for f in REQUIRED if not (path / f).is_file()]
    if missing:
        raise BundleError(f"model bundle '{path}' is incomplete: missing {', '.join(missing)}")
    try:
        meta = json.loads((path / "meta.json").read_text())
        version = meta.get("format")
        if not isinstance(version, int) or version > FORMAT:
            raise BundleError(
                f"model bundle '{path}' has format {version!r}; this Strata reads up to "
                f"format {FORMAT}: upgrade Strata to load it"
            )
        pipeline = Pipeline.from_json(json.loads((path / "pipeline.json").read_text()))
        recipe = Recipe.from_dict(yaml.safe_load((path / "recipe.yaml").read_text()), source=str(path / "recipe.yaml"))
        network = build(recipe.model, pipeline, meta["head"]["size"], seed=0)
        network.load_state_dict(load_file(path / "weights.safetensors"), strict=True)
    except (json.JSONDecodeError, yaml.YAMLError, SafetensorError, KeyError, RuntimeError, DataError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BundleError(f"model bundle '{path}' is corrupt: {detail}") from None
    model = TrainedModel(network, pipeline, recipe, meta)
    model.path = path
    return model
