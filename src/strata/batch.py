"""Batch prediction of files larger than memory: `strata predict BUNDLE big.parquet --out preds.parquet`.

The input is read `chunk_rows` rows at a time (pandas' CSV reader in chunks; Parquet record batches
through pyarrow), each chunk predicted and appended to a hidden partial file, which is renamed to
the output only when every chunk is done, so a failure midway leaves no half-written predictions
behind. A progress bar counts the rows.

What bounds memory: one chunk (its table, the model's inputs and activations, its predictions),
whatever the file's length. Reading Parquet adds the reader's buffers, a few per column read (the
column's dictionary, decoded, and the page being read, decompressed): their size depends on how the
file was written (pages and dictionaries of up to 1 MB by default, so about 3 MB a column for
floats written by pandas), not on its rows or row groups: 1M and 3M rows need the same
(bench/scaling.py). From a Parquet file that has them all, only the columns the model reads (and
the --id column) are read.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from strata.errors import DataError, StrataError

CHUNK_ROWS = 50_000


def streamable(model: Any, data: Any) -> bool:
    """Row-by-row models reading a CSV or Parquet file: not image folders, long tables of steps
    (grouped by id, so a sequence could straddle two chunks) or forecasts (which read whole histories)."""
    if not isinstance(data, str | Path) or Path(data).suffix.lower() not in (".csv", ".tsv", ".parquet"):
        return False
    kinds = {c["kind"] for c in getattr(model, "pipeline", None).columns} if hasattr(model, "pipeline") else set()
    return model.task != "forecast" and model.recipe.data.sequences is None and "image" not in kinds


def chunks(
    path: Path, chunk_rows: int = CHUNK_ROWS, columns: list[str] | None = None
) -> tuple[Iterator[Any], int | None]:
    """(the table `chunk_rows` rows at a time, the row count when the file says it). `columns`: the
    ones the caller needs; a Parquet file holding them all (once each) is read for those only."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"data file '{path}' not found")
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        # Pages streamed through a small buffer per column, one thread: without one a column chunk is
        # read whole (a 1M-row file written by pandas is one row group), which took twice the memory.
        # 64 KB rather than 1 MB: for 1M rows x 32 float32 columns written by pandas (1 MB dictionary
        # pages, then plain ones) arrow's pool holds 92 MB instead of 119 MB (21 instead of 51 without
        # dictionaries) at the same speed (reading is 0.18 s of the ~3 s); smaller saves < 4 MB more.
        source = pq.ParquetFile(path, buffer_size=1 << 16, pre_buffer=False)
        names = source.schema_arrow.names
        if columns is None or len(set(names)) < len(names) or not set(columns) <= set(names):
            columns = None  # all of them: the model's errors (a missing column, a repeated one) stay its own
        else:  # and the index pandas stored, so that errors name the file's row labels
            stored = (source.schema_arrow.pandas_metadata or {}).get("index_columns", [])
            columns = list(dict.fromkeys([*columns, *(c for c in stored if isinstance(c, str) and c in names)]))
        batches = source.iter_batches(batch_size=chunk_rows, columns=columns, use_threads=False)
        return _frames(batches), source.metadata.num_rows
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    return pd.read_csv(path, sep=sep, chunksize=chunk_rows), None  # an iterator with close()


def _frames(batches: Iterator[Any]) -> Iterator[Any]:
    """Each record batch as a DataFrame; after each chunk arrow's pool hands its freed pages back to
    the system (5 ms for 20 chunks). Predicting 1M rows with the 64 KB buffer, the peak went from 199
    to 172 MB (median of 3, with MALLOC_MMAP_THRESHOLD_ fixed to make peaks repeatable), and from 281
    to 259 MB (median of 5, glibc's default, whose peaks vary by +-60 MB from run to run)."""
    import pyarrow as pa

    pool = pa.default_memory_pool()
    for batch in batches:
        frame = batch.to_pandas()
        del batch  # the frame is a copy
        yield frame
        pool.release_unused()


def _needed(model: Any, id_column: str | None) -> list[str] | None:
    """The columns `model` reads, and the id column; None when the model does not say."""
    names = getattr(getattr(model, "pipeline", None), "input_names", None)
    if not isinstance(names, list):
        return None
    return list(dict.fromkeys([*names, *([id_column] if id_column is not None else [])]))


def predict_file(
    model: Any, data: Path, out: Path, id_column: str | None = None, chunk_rows: int = CHUNK_ROWS, quiet: bool = False
) -> int:
    """Predict every row of `data` into `out` (.csv or .parquet), chunk by chunk; returns the row count."""
    from strata._console import Reporter

    partial = out.with_name(f".{out.name}.partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StrataError(f"cannot write '{out}': {err.strerror or err}") from None
    from strata._process import tune_for_streaming

    tune_for_streaming()  # memory bounded by the chunk, not by what glibc's heap kept (strata/_process.py)
    parts, total = chunks(Path(data), chunk_rows, _needed(model, id_column))
    writer, done = None, 0
    try:
        with _bar(Reporter(quiet), total) as advance:
            for offset, frame in _numbered(parts):
                if id_column is not None and id_column not in frame.columns:
                    raise DataError(f"--id: column '{id_column}' is not in '{data}'")
                result = model.predict_frame(frame)
                if id_column is not None:
                    result.insert(0, id_column, frame[id_column].to_numpy())
                writer = _append(writer, result, partial, out.suffix.lower(), first=offset == 0)
                done += len(result)
                advance(len(result))
        if writer is not None:
            writer.close()
        os.replace(partial, out)
    except OSError as err:
        _discard(writer, partial)
        raise StrataError(f"cannot write '{out}': {err.strerror or err}") from None
    except BaseException:
        _discard(writer, partial)
        raise
    finally:
        close = getattr(parts, "close", None)
        if close is not None:  # the CSV reader holds the file open
            close()
    return done


def _discard(writer: Any, partial: Path) -> None:
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.close()
    partial.unlink(missing_ok=True)


def _numbered(parts: Iterator[Any]) -> Iterator[tuple[int, Any]]:
    yield from enumerate(parts)


def _append(writer: Any, result: Any, partial: Path, suffix: str, first: bool) -> Any:
    """Write one chunk's predictions: CSV appended with the header once; Parquet as a row group."""
    try:
        if suffix == ".csv":
            result.to_csv(partial, mode="w" if first else "a", header=first, index=False, float_format="%.6g")
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(result, preserve_index=False)
        writer = writer or pq.ParquetWriter(partial, table.schema)
        writer.write_table(table.cast(writer.schema))
        return writer
    except OSError as err:
        raise StrataError(f"cannot write '{partial.name.strip('.').removesuffix('.partial')}': "
                          f"{err.strerror or err}") from None  # fmt: skip


@contextlib.contextmanager
def _bar(report: Any, total: int | None) -> Iterator[Any]:
    if report.quiet:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("predicting"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
                  TimeElapsedColumn(), console=report.console, transient=True) as bar:  # fmt: skip
        task = bar.add_task("", total=total)
        yield lambda n: bar.advance(task, n)
