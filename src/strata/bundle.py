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
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from strata.errors import BundleError, DataError, RecipeError

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd
    from torch import nn

    from strata.features.pipeline import Pipeline
    from strata.models.heads import Head
    from strata.recipe import Recipe

FORMAT = 1
REQUIRED = ("weights.safetensors", "pipeline.json", "recipe.yaml", "meta.json")


class TrainedModel:
    """A fitted pipeline and network. `predict`, `predict_proba`, `predict_frame` and `evaluate`
    take a DataFrame, a list of records (dicts) or a path to a CSV/Parquet file."""

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
        from strata.models.heads import Head

        return Head(**self.meta["head"])

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta.get("metrics", {})

    @property
    def reference(self) -> dict[str, Any] | None:
        """The training data's distributions (reference.json), for drift monitoring; None for bundles
        without one (forecasts, image models, bundles from before it existed)."""
        made = self.artifacts.get("reference.json")
        if made is not None:
            return json.loads(made() if callable(made) else made)
        if self.path is not None and (self.path / "reference.json").is_file():
            return json.loads((self.path / "reference.json").read_text(encoding="utf-8"))
        return None

    # ---- predictions
    def read(self, data: Any) -> pd.DataFrame:
        """`data` as a table for this model: a DataFrame, records, a CSV/Parquet file; for an image
        model also a folder of images (labelled by their class sub-folders, when they are in some),
        one image file, or a CSV of `path`[,label] with paths relative to the CSV's folder. The
        files read are in `frame.attrs["paths"]`. A model trained with `data.sequences` takes the
        long table of steps and groups it by id the same way (the ids become the index)."""
        grouped = self.recipe.data.sequences
        if grouped is not None:
            from strata.features.sequence import group

            names = self.pipeline.column_for("sequence")["state"].get("names")
            frame = as_frame(data)
            if frame.attrs.get("sequences"):  # grouped already (read twice: by the CLI, then by predict)
                return frame
            return group(frame, grouped.id, grouped.order, self.pipeline.target["columns"], [], names)
        picture = next((c["name"] for c in self.pipeline.columns if c["kind"] == "image"), None)
        if picture is None or not isinstance(data, str | Path):
            return as_frame(data)
        targets = self.pipeline.target["columns"]
        frame = _image_source(Path(data), targets[0] if len(targets) == 1 else None, picture)
        return frame if frame is not None else as_frame(data)

    def _predictions(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities (N x classes) or scaled regression values (N x targets), float64."""
        from strata.features.pipeline import as_tensors
        from strata.models.heads import run, to_predictions

        outputs = run(self.network, as_tensors(self.pipeline.transform(frame)), self.head.size)
        return to_predictions(self.head, outputs).numpy().astype(np.float64)

    def _values(self, predictions: np.ndarray) -> np.ndarray:
        from strata.features import target

        return target.decode(predictions, self.pipeline.target)

    def _labels(self, predictions: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[predictions.argmax(1)] if len(predictions) else np.array([])

    def forecast(self, history: Any) -> pd.DataFrame:
        """A forecasting model's next `horizon` steps after the end of each series in `history` (a
        table like the training one, at least `lookback` steps per series): one row per series and
        step, with `lower` and `upper` when the run fitted an interval."""
        from strata.forecasting import predict_frame

        if self.task != "forecast":
            raise DataError(f"forecast needs a forecasting model (a recipe with forecast:); this one does {self.task}")
        return predict_frame(self.network, self.pipeline, as_frame(history), self.meta.get("interval"))

    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities, (N, classes), columns in the order of `classes`."""
        if self.task == "forecast":
            raise DataError("predict_proba needs a classifier; this model forecasts (use forecast or predict)")
        if self.task == "regression":
            raise DataError("predict_proba needs a classifier; this model does regression (use predict)")
        return self._predictions(self.read(data))

    def predict(self, data: Any) -> np.ndarray:
        """Class labels (as in the training target), or values in the target's units
        ((N,) for one target, (N, targets) for several)."""
        if self.task == "forecast":  # (series, horizon): the next steps of each series, in its order
            table = self.forecast(data)
            return table["forecast"].to_numpy().reshape(-1, self.pipeline.plan["horizon"])
        labels, values = self.predict_arrays(data)
        if labels is not None:
            return labels
        return values[:, 0] if values.shape[1] == 1 else values

    def predict_frame(self, data: Any) -> pd.DataFrame:
        """Predictions as a table with the input's index: `prediction` and a `proba_<class>` column per
        class for classifiers; `prediction` (one target) or `prediction_<target>` (several) for regression."""
        from strata._labels import prediction_table

        if self.task == "forecast":
            return self.forecast(data)
        frame = self.read(data)
        return prediction_table(frame.index, self.classes, self.pipeline.target["columns"], *self.predict_arrays(frame))

    def predict_arrays(self, data: Any) -> tuple[np.ndarray | None, np.ndarray]:
        """What `predict_frame` tabulates, as arrays: (labels, probabilities (N, classes)) for
        classifiers, (None, values (N, targets) in the target's units) for regression. The server's
        path: no table is built."""
        predictions = self._predictions(self.read(data))
        if self.task != "regression":
            return self._labels(predictions), predictions
        return None, self._values(predictions)

    def evaluate(self, data: Any, *, bootstrap: int | None = None, confidence: float | None = None) -> dict[str, Any]:
        """Metrics on labelled data (it must contain the target columns), with bootstrap intervals
        (`ci`) from `bootstrap` resamples: by default the recipe's `evaluate.bootstrap`; 0 for none."""
        from strata.evaluation.bootstrap import attach
        from strata.evaluation.metrics import score

        if self.task == "forecast":
            raise DataError("evaluate takes labelled rows; a forecasting model is evaluated by its training run "
                            "(test-period metrics and baselines in meta.json), or compare forecast() with "
                            "what followed")  # fmt: skip
        frame = self.read(data)
        y, predictions = self.pipeline.encode_target(frame), self._predictions(frame)
        metrics = score(self.task, self.pipeline.target, y, predictions)
        cfg = self.recipe.evaluate
        n = cfg.bootstrap if bootstrap is None else bootstrap
        if n < 0:
            raise DataError(f"bootstrap: expected a number of resamples >= 0, got {n}")
        level = cfg.confidence if confidence is None else confidence
        if not 0.5 < level < 1:
            raise DataError(f"confidence: expected a level between 0.5 and 1, got {level}")
        attach(metrics, self.pipeline.target, y, predictions, n, self.recipe.seeds.data, level)
        return metrics

    # ---- files
    def save(self, path: str | Path) -> Path:
        """Write the bundle folder atomically: a reader sees the old bundle or the new one, never half."""
        import yaml
        from safetensors.torch import save_file

        path = Path(path)
        check_destination(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            state = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
            save_file(state, tmp / "weights.safetensors", metadata={"format": str(FORMAT)})
            (tmp / "pipeline.json").write_text(json.dumps(self.pipeline.to_json(), indent=1))
            (tmp / "recipe.yaml").write_text(yaml.safe_dump(self.recipe.to_dict(), sort_keys=False))
            meta = _finite({**self.meta, "format": FORMAT})
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1, allow_nan=False))
            for name, blob in self.artifacts.items():
                (tmp / name).write_bytes(blob() if callable(blob) else blob)
            _share(tmp)
            _swap_in(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.path = path
        return path


def check_destination(path: Path) -> None:
    """Fail before any work when `path` cannot become a bundle (call it before training)."""
    if path.exists() and not path.is_dir():
        raise BundleError(f"cannot save the model to '{path}': it is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / "meta.json").is_file():
        raise BundleError(f"'{path}' exists and is not a Strata bundle; refusing to overwrite it")
    parent = next((p for p in path.parents if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise BundleError(f"cannot save the model to '{path}': '{parent}' is not a writable folder")


def _finite(value: Any) -> Any:
    """meta.json must be standard JSON: NaN and infinity (from a diverged epoch) become null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _share(folder: Path) -> None:
    """mkdtemp makes a private folder; give the bundle the permissions of any file the user creates."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for file in folder.iterdir():
        file.chmod(0o666 & ~umask)


def _swap_in(new: Path, target: Path) -> None:
    """Put `new` in place of `target`. Where the OS can exchange two folders atomically (Linux
    renameat2), it does; elsewhere the old folder is moved aside first, for a moment."""
    if not target.exists():
        os.replace(new, target)
    elif not _exchange(new, target):
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(new, target)
        new = old
    shutil.rmtree(new, ignore_errors=True)  # after an exchange, `new` holds the old bundle


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def as_frame(data: Any) -> pd.DataFrame:
    """A DataFrame from a DataFrame, a list of records, one record or a CSV/Parquet path."""
    import pandas as pd

    from strata.data.sources import read_table, tidy_columns
    from strata.features.pipeline import Columns

    if isinstance(data, Columns):  # a server's rows, named columns already
        return data  # type: ignore[return-value]
    if isinstance(data, pd.DataFrame):
        return tidy_columns(data, "the DataFrame")
    if isinstance(data, str | Path):
        return tidy_columns(read_table(data), f"data file '{data}'")
    if isinstance(data, dict):
        data = [data]
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return pd.DataFrame.from_records(data)
    raise DataError(f"expected a DataFrame, a list of records or a file path, got {type(data).__name__}")


def _image_source(path: Path, target: str | None, column: str) -> pd.DataFrame | None:
    """Image files as a table of paths in `column` (and `target`, from class folders); None when
    `path` is a table file that already has the column."""
    import pandas as pd

    from strata.data.images import SUFFIXES
    from strata.data.sources import read_table

    if path.suffix.lower() in SUFFIXES:
        if not path.is_file():
            raise DataError(f"image file '{path}' not found")
        files, root = [path], path.parent
    elif path.is_dir():
        files, root = _images_under(path), path
    elif not path.suffix:
        raise DataError(f"image folder '{path}' not found")
    else:
        table = read_table(path)
        if column in table.columns or "path" not in table.columns:
            return None
        table[column] = [str((path.parent / p).resolve()) if isinstance(p, str) else p for p in table["path"]]
        table.attrs["paths"] = table["path"].tolist()
        return table.drop(columns="path")
    frame = pd.DataFrame({column: [str(p.resolve()) for p in files]})
    relative = [p.relative_to(root) for p in files]
    if target and all(len(r.parts) > 1 for r in relative):  # class sub-folders: their names are labels
        frame[target] = [r.parts[0] for r in relative]
    frame.attrs["paths"] = [str(r) for r in relative]
    return frame


def _images_under(folder: Path) -> list[Path]:
    """Image files in a folder, searched recursively, hidden files and folders left out."""
    from strata.data.images import SUFFIXES

    def shown(p: Path) -> bool:
        hidden = any(part.startswith(".") for part in p.relative_to(folder).parts)
        return p.suffix.lower() in SUFFIXES and p.is_file() and not hidden

    files = sorted(p for p in folder.rglob("*") if shown(p))
    if not files:
        raise DataError(f"folder '{folder}' has no images (expected {', '.join(SUFFIXES)} files)")
    return files


def load(path: str | Path) -> TrainedModel:
    """Load a bundle folder. Raises BundleError naming the folder or file when it cannot."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"model bundle '{path}' not found (expected a folder with {', '.join(REQUIRED)})")
    missing = [f for f in REQUIRED if not (path / f).is_file()]
    if missing:
        raise BundleError(f"model bundle '{path}' is incomplete: missing {', '.join(missing)}")
    try:
        model = _read(path)
    except BundleError:
        raise
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RuntimeError, RecipeError, DataError) as err:
        # ValueError covers bad JSON, YAML and text encodings; RuntimeError, weights that do not fit.
        detail = " ".join(str(err).split())[:300] or type(err).__name__
        raise BundleError(f"model bundle '{path}' is corrupt: {detail}") from None
    model.path = path
    return model


def _read(path: Path) -> TrainedModel:
    import yaml
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from strata.features.pipeline import Pipeline
    from strata.models import build
    from strata.recipe import Recipe

    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise ValueError("meta.json is not a JSON object")
    version = meta.get("format")
    if not isinstance(version, int) or version > FORMAT:
        raise BundleError(
            f"model bundle '{path}' has format {version!r}; this Strata reads up to format {FORMAT}: upgrade Strata"
        )
    pipeline = Pipeline.from_json(json.loads((path / "pipeline.json").read_text(encoding="utf-8")))
    recipe = Recipe.from_saved(yaml.safe_load((path / "recipe.yaml").read_text(encoding="utf-8")), source="recipe.yaml")
    network = build(recipe.model, pipeline, meta["head"]["size"], seed=0)
    try:
        weights = load_file(path / "weights.safetensors")
    except SafetensorError as err:
        raise ValueError(f"weights.safetensors: {err}") from None
    network.load_state_dict(weights, strict=True)
    return TrainedModel(network, pipeline, recipe, meta)
