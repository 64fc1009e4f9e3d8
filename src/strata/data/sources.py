"""Reading tables: CSV and Parquet files, pandas DataFrames and bundled datasets."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from strata.recipe import DataConfig

# Parquet read through pyarrow without buffering whole row groups, each column handed to pandas as
# it is converted (one block per column, no consolidating copy; arrow's buffers released column by
# column): peak 198 MB for a 136 MB table where the defaults took 335 MB (bench/scaling.py, 1M rows).
PARQUET_READ: dict[str, Any] = {
    "pre_buffer": False,
    "buffer_size": 1 << 20,
    "to_pandas_kwargs": {"split_blocks": True, "self_destruct": True},
}
SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_table(path: str | Path, format: str = "auto") -> pd.DataFrame:
    """Read a CSV or Parquet file; every failure is a DataError naming the file."""
    import pandas as pd

    path = Path(path)
    format = _check_file(path, format)
    try:
        if format == "csv":
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            frame = pd.read_csv(path, sep=sep)
        else:
            import pyarrow as pa

            frame = pd.read_parquet(path, **PARQUET_READ)
            pa.default_memory_pool().release_unused()  # the reader's scratch pages: 33 MB at 1M rows
    except PermissionError:
        raise DataError(f"data file '{path}' cannot be read: permission denied") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"data file '{path}' has no columns (empty CSV)") from None
    except (UnicodeDecodeError, pd.errors.ParserError, OSError, ValueError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"data file '{path}' cannot be read as {format.upper()}: {detail}") from None
    if frame.empty:
        raise DataError(f"data file '{path}' has a header but no rows")
    return frame


def _check_file(path: Path, format: str) -> str:
    """The file's format; a DataError when it is missing, a folder, empty or of unknown type."""
    if format == "auto":
        format = SUFFIXES.get(path.suffix.lower(), "")
        if not format:
            raise DataError(
                f"data file '{path}': cannot tell the format from '{path.suffix}' "
                f"(expected .csv or .parquet; or set data.format)"
            )
    if not path.exists():
        raise DataError(f"data file '{path}' not found")
    if path.is_dir():
        raise DataError(f"data file '{path}' is a folder, expected a {format.upper()} file")
    if path.stat().st_size == 0:
        raise DataError(f"data file '{path}' is empty")
    return format


def tidy_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Column names as strings (recipes and bundles name columns by text); repeated names are an error."""
    names = [str(c) for c in frame.columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"{source} has more than one column named {repeated[0]!r}; column names must be unique")
    if any(not isinstance(c, str) for c in frame.columns):
        frame = frame.set_axis(names, axis=1)  # a new frame (pandas copies lazily); the caller's is untouched
    return frame


def load_frame(cfg: DataConfig, data: pd.DataFrame | str | Path | None = None) -> pd.DataFrame:
    """The table a recipe names, or the one passed in (which wins); a long table of steps is
    grouped into one sequence per id when the recipe has `data.sequences`."""
    frame = _load_frame(cfg, data)
    if cfg.sequences is None:
        return frame
    from strata.features.sequence import group

    spec = cfg.sequences
    return group(frame, spec.id, spec.order, cfg.targets, cfg.drop)


def _load_frame(cfg: DataConfig, data: pd.DataFrame | str | Path | None = None) -> pd.DataFrame:
    import pandas as pd

    from strata.data.datasets import load_dataset

    if data is not None:
        if isinstance(data, pd.DataFrame):
            if data.empty:
                raise DataError("the DataFrame passed as data has no rows")
            return tidy_columns(data, "the DataFrame passed as data")
        if isinstance(data, str | Path):
            return tidy_columns(read_table(data, cfg.format), f"data file '{data}'")
        raise DataError(f"data must be a pandas DataFrame or a file path, got {type(data).__name__}")
    if cfg.path:
        return tidy_columns(read_table(cfg.path, cfg.format), f"data file '{cfg.path}'")
    if cfg.images:
        return image_frame(cfg)
    if cfg.dataset:
        return load_dataset(cfg.dataset)
    raise DataError("no data: set data.path or data.dataset in the recipe, or pass a DataFrame as data=")


def frame_hash(frame: pd.DataFrame) -> str:
    """Content hash of a table: column names, dtypes and every value, in row order (an image
    column's pixels included).

    Row order is part of the hash on purpose: it decides which rows fall in which split,
    so the same rows in another order do not reproduce the same model.
    """
    import numpy as np
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    pictures = [c for c in frame.columns if len(frame) and isinstance(frame[c].iloc[0], np.ndarray)]
    if frame.attrs.get("streamed"):  # image files read batch by batch: their bytes are the content
        for path in frame["image"]:
            digest.update(Path(path).read_bytes())
    plain = frame.drop(columns=pictures)
    if len(plain.columns):
        digest.update(pd.util.hash_pandas_object(plain, index=False).to_numpy().tobytes())
    for column in pictures:
        for array in frame[column]:
            digest.update(repr((array.shape, str(array.dtype))).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def image_frame(cfg: DataConfig) -> pd.DataFrame:
    """An image source as a table: column `image` holds each picture, (H, W, C) pixels, and `label` its class."""
    import warnings

    from strata.data import images
    from strata.errors import StrataWarning, plural

    source = Path(cfg.images)
    size = tuple(cfg.image_size) if cfg.image_size else None
    if source.suffix.lower() in (".npy", ".npz"):
        if cfg.image_size or cfg.color != "auto":
            raise DataError(f"data.images: '{source}' holds arrays, which are used as they are; "
                            "remove data.image_size and data.color (they apply to image files)")  # fmt: skip
        table = images.read_arrays(source)
    elif source.suffix.lower() in (".csv", ".tsv", ".txt"):
        table = images.read_image_csv(source, size=size, mode=cfg.color, on_error=cfg.on_error,
                                      stream_bytes=images.STREAM_BYTES)  # fmt: skip
    else:
        table = images.read_image_folder(source, size=size, mode=cfg.color, on_error=cfg.on_error,
                                         stream_bytes=images.STREAM_BYTES)  # fmt: skip
    if table.skipped:
        path, reason = table.skipped[0]
        warnings.warn(f"data.images: skipped {plural(len(table.skipped), 'unreadable image')} "
                      f"(first: '{path}': {reason})", StrataWarning, stacklevel=2)  # fmt: skip
    return table_frame(table, str(source))


def table_frame(table: Any, source: str) -> pd.DataFrame:
    """An ImageTable as a table of `image` (pixels per row), `label` (when labelled) and `path`."""
    import pandas as pd

    if table.streamed:  # too large to decode up front: the column holds file paths, read batch by batch
        frame = pd.DataFrame({"image": [str(Path(table.root) / p) for p in table.paths]})
        frame.attrs["streamed"] = {"size": list(table.size), "channels": table.channels}
    else:
        frame = pd.DataFrame({"image": list(table.pixels)})
    if table.labels is not None:
        frame["label"] = table.labels
    frame.attrs["paths"] = list(table.paths)  # for predictions on a folder: which file each row is
    return frame
