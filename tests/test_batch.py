"""Batch prediction streams files chunk by chunk and never leaves half an output behind."""

from __future__ import annotations

import pandas as pd
import pytest

import strata
from strata.batch import predict_file
from strata.errors import DataError


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "iris"
    strata.train({"data": {"dataset": "iris", "target": "species"}, "train": {"epochs": 5}, "track": False},
                 out=path, quiet=True)  # fmt: skip
    return strata.load(path)


@pytest.mark.parametrize(("source", "target"), [("rows.csv", "out.parquet"), ("rows.parquet", "out.csv")])
def test_a_file_is_predicted_chunk_by_chunk_like_all_at_once(iris_model, tmp_path, source, target):
    rows = pd.concat([strata.load_dataset("iris").drop(columns="species")] * 7, ignore_index=True)  # 1,050 rows
    rows.insert(0, "flower", range(len(rows)))
    path = tmp_path / source
    rows.to_csv(path, index=False) if source.endswith(".csv") else rows.to_parquet(path, index=False)
    calls = []
    original = iris_model.predict_frame
    iris_model.predict_frame = lambda frame: calls.append(len(frame)) or original(frame)
    done = predict_file(iris_model, path, tmp_path / target, id_column="flower", chunk_rows=400, quiet=True)
    assert done == 1050 and calls == [400, 400, 250]  # never more than one chunk in memory
    written = pd.read_parquet(tmp_path / target) if target.endswith(".parquet") else pd.read_csv(tmp_path / target)
    expected = original(rows)
    assert written["flower"].tolist() == rows["flower"].tolist()
    pd.testing.assert_series_equal(written["prediction"], expected["prediction"], check_names=False)
    assert (written["proba_setosa"] - expected["proba_setosa"]).abs().max() < 1e-5


def _traced(model, seen):
    """Record each frame `predict_frame` is given (rows and columns), predicting as before."""
    original = model.predict_frame
    model.predict_frame = lambda frame: seen.append((len(frame), list(frame.columns))) or original(frame)
    return original


@pytest.mark.parametrize("source", ["rows.parquet", "rows.csv"])
def test_a_file_of_several_row_groups_is_predicted_in_chunks_not_whole(iris_model, tmp_path, source):
    """Several row groups (pandas writes up to 1Mi rows in one), chunks smaller than a row group:
    predict_frame never sees more than `chunk_rows` rows, whatever the file's layout; the
    predictions are those of the whole table at once, in order."""
    import pyarrow.parquet as pq

    rows = pd.concat([strata.load_dataset("iris").drop(columns="species")] * 20, ignore_index=True)  # 3,000
    rows.insert(0, "flower", range(len(rows)))
    rows["unused"] = "x"  # a column the model does not read
    path = tmp_path / source
    if source.endswith(".parquet"):
        rows.to_parquet(path, index=False, row_group_size=1000)
        assert pq.ParquetFile(path).metadata.num_row_groups == 3
    else:
        rows.to_csv(path, index=False)
    seen = []
    original = _traced(iris_model, seen)
    done = predict_file(iris_model, path, tmp_path / "out.parquet", id_column="flower", chunk_rows=128, quiet=True)
    sizes = [n for n, _ in seen]
    assert done == 3000 and sum(sizes) == 3000 and max(sizes) <= 128 and len(sizes) >= 3000 // 128 + 1
    if source.endswith(".parquet"):  # only the columns the model reads, and the id, are read from Parquet
        assert all(sorted(columns) == sorted([*iris_model.pipeline.input_names, "flower"]) for _, columns in seen)
    written = pd.read_parquet(tmp_path / "out.parquet")
    expected = original(rows)
    assert written["flower"].tolist() == list(range(3000))
    pd.testing.assert_series_equal(written["prediction"], expected["prediction"], check_names=False)
    assert (written["proba_setosa"] - expected["proba_setosa"]).abs().max() < 1e-5


def test_a_parquet_file_missing_a_model_column_fails_as_before(iris_model, tmp_path):
    """The columns are narrowed to the model's only when the file has them all: otherwise the
    model's own error, with its hint from the file's other columns."""
    rows = strata.load_dataset("iris").drop(columns="species").rename(columns={"petal width (cm)": "petal width"})
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    with pytest.raises(DataError, match=r"missing column 'petal width \(cm\)' \(did you mean 'petal width'\?\)"):
        predict_file(iris_model, tmp_path / "rows.parquet", tmp_path / "out.csv", chunk_rows=100, quiet=True)
    assert not (tmp_path / "out.csv").exists() and not list(tmp_path.glob(".*partial"))


def test_errors_name_the_row_labels_of_a_parquet_files_stored_index(iris_model, tmp_path):
    """Reading only the model's columns still reads the index pandas stored: the error names the
    file's row label (1005), not the row's place in its chunk."""
    rows = strata.load_dataset("iris").drop(columns="species").astype({"sepal length (cm)": str})
    rows.index = pd.Index(range(1000, 1000 + len(rows))).to_numpy()  # stored as a column, not as a range
    rows.loc[1105, "sepal length (cm)"] = "broken"
    rows["extra"] = 1.0
    rows.to_parquet(tmp_path / "rows.parquet")
    with pytest.raises(DataError, match=r"sepal length \(cm\)' should be numeric but row 1105 has 'broken'"):
        predict_file(iris_model, tmp_path / "rows.parquet", tmp_path / "out.csv", chunk_rows=50, quiet=True)


def test_a_bad_chunk_leaves_no_output(iris_model, tmp_path):
    rows = pd.concat([strata.load_dataset("iris").drop(columns="species")] * 3, ignore_index=True)
    rows["sepal length (cm)"] = rows["sepal length (cm)"].astype(object)
    rows.loc[300, "sepal length (cm)"] = "broken"
    rows.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "out.csv").write_text("earlier predictions\n")
    with pytest.raises(DataError, match=r"sepal length \(cm\)' should be numeric but row 300"):
        predict_file(iris_model, tmp_path / "rows.csv", tmp_path / "out.csv", chunk_rows=200, quiet=True)
    assert (tmp_path / "out.csv").read_text() == "earlier predictions\n"  # the old file is untouched
    assert not list(tmp_path.glob(".*partial"))


def test_cli_predict_streams_to_parquet(iris_model, tmp_path, capsys):
    from tests.test_cli import strata as cli

    strata.load_dataset("iris").to_csv(tmp_path / "rows.csv", index=False)
    code, out, err = cli(capsys, "predict", iris_model.path, tmp_path / "rows.csv", "--out", tmp_path / "p.parquet")
    assert code == 0, err
    assert "wrote 150 predictions" in out and len(pd.read_parquet(tmp_path / "p.parquet")) == 150
