"""Reading tables: every failure names the file and what was expected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strata.data.datasets import DATASETS, load_dataset
from strata.data.sources import frame_hash, load_frame, read_table
from strata.errors import DataError
from strata.recipe import DataConfig


def test_csv_and_parquet_read_the_same_table(tmp_path, mixed_frame):
    mixed_frame.to_csv(tmp_path / "t.csv", index=False)
    mixed_frame.to_parquet(tmp_path / "t.parquet", index=False)
    from_csv, from_parquet = read_table(tmp_path / "t.csv"), read_table(tmp_path / "t.parquet")
    assert list(from_csv.columns) == list(mixed_frame.columns) == list(from_parquet.columns)
    np.testing.assert_allclose(from_csv["x1"], mixed_frame["x1"])
    assert from_parquet["colour"].isna().sum() == 2


@pytest.mark.parametrize("index", [True, False, None])
def test_parquet_reads_as_pandas_reads_it(tmp_path, index):
    """The lean Parquet read (column by column, no consolidating copy) gives pandas' own table:
    values, dtypes, the stored index, categoricals, nullable integers, dates, and the same data hash;
    several row groups included."""
    frame = pd.DataFrame(
        {"a": np.arange(9), "b": ["x", None, "z"] * 3, "c": pd.Categorical(["u", "v", "u"] * 3),
         "d": pd.array([1, None, 3] * 3, dtype="Int64"), "e": pd.to_datetime(["2020-01-01", None, "2020-01-03"] * 3),
         "f": np.linspace(0, 1, 9, dtype=np.float32), "g": [True, False, True] * 3},
        index=pd.Index(range(10, 19), name="idx"),
    )  # fmt: skip
    frame.to_parquet(tmp_path / "t.parquet", index=index, row_group_size=4)
    ours, pandas = read_table(tmp_path / "t.parquet"), pd.read_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(ours, pandas)
    assert frame_hash(ours) == frame_hash(pandas)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"data file '.*absent.csv' not found"):
        read_table(tmp_path / "absent.csv")


def test_empty_file(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match=r"data file '.*e.csv' is empty"):
        read_table(tmp_path / "e.csv")


def test_header_without_rows(tmp_path):
    (tmp_path / "h.csv").write_text("a,b,label\n")
    with pytest.raises(DataError, match="has a header but no rows"):
        read_table(tmp_path / "h.csv")


def test_unreadable_parquet(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"this is not parquet at all")
    with pytest.raises(DataError, match=r"data file '.*bad.parquet' cannot be read as PARQUET"):
        read_table(tmp_path / "bad.parquet")


def test_binary_garbage_as_csv(tmp_path):
    (tmp_path / "bin.csv").write_bytes(bytes(range(256)) * 10)
    with pytest.raises(DataError, match=r"data file '.*bin.csv' cannot be read as CSV"):
        read_table(tmp_path / "bin.csv")


def test_unknown_suffix_and_folder(tmp_path):
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"cannot tell the format from '.xlsx'"):
        read_table(tmp_path / "t.xlsx")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        read_table(tmp_path / "dir.csv")


def test_every_bundled_dataset_loads_offline_with_its_target():
    for name, spec in DATASETS.items():
        frame = load_dataset(name)
        assert spec.target in frame.columns, name
        assert len(frame) >= 100, name


def test_penguins_has_missing_values_and_categoricals():
    frame = load_dataset("penguins")
    assert frame.isna().any().any()
    assert {"island", "sex"} <= set(frame.columns)


def test_load_frame_prefers_the_given_data(mixed_frame):
    cfg = DataConfig(dataset="iris", target="label")
    assert load_frame(cfg, mixed_frame) is mixed_frame
    with pytest.raises(DataError, match=r"no data: set data\.path or data\.dataset"):
        load_frame(DataConfig(target="label"))
    with pytest.raises(DataError, match="has no rows"):
        load_frame(cfg, mixed_frame.iloc[:0])


def test_frame_hash_tracks_content_and_row_order(mixed_frame):
    assert frame_hash(mixed_frame) == frame_hash(mixed_frame.copy())
    changed = mixed_frame.copy()
    changed.loc[0, "x1"] += 1e-9
    assert frame_hash(changed) != frame_hash(mixed_frame)
    assert frame_hash(mixed_frame.iloc[::-1]) != frame_hash(mixed_frame)
    assert frame_hash(mixed_frame.astype({"x1": "float32"})) != frame_hash(mixed_frame)


def test_frame_hash_ignores_the_index(mixed_frame):
    shifted = mixed_frame.set_axis(pd.RangeIndex(100, 100 + len(mixed_frame)))
    assert frame_hash(shifted) == frame_hash(mixed_frame)


@pytest.mark.parametrize("names", [["a", "a", "label"], [1, "1", "label"]])
def test_repeated_column_names_are_a_data_error(names):
    frame = pd.DataFrame([[1.0, 2.0, "x"]], columns=names)
    repeated = str(names[0])
    with pytest.raises(
        DataError,
        match=rf"^the DataFrame passed as data has more than one column named '{repeated}'; column names must be unique$",
    ):
        load_frame(DataConfig(target="label"), frame)


def test_non_text_column_names_become_text():
    frame = pd.DataFrame(np.eye(3)).assign(label=["a", "b", "c"])
    tidy = load_frame(DataConfig(target="label"), frame)
    assert list(tidy.columns) == ["0", "1", "2", "label"]
    assert list(frame.columns) == [0, 1, 2, "label"]  # the caller's frame is untouched
