"""The `strata` command, run as a user runs it: exit codes, files written, one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import strata.api as strata_api
from conftest import run_cli
from strata import __version__
from strata.errors import StrataWarning

EXAMPLES = Path(__file__).parent.parent / "examples"


strata = run_cli  # (capsys, *args) -> (exit code, stdout, stderr)


@pytest.fixture(autouse=True)
def in_a_scratch_folder(tmp_path, monkeypatch):
    """Commands run where a user would run them; anything they write by default lands here."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def table(tmp_path, mixed_frame) -> Path:
    path = tmp_path / "table.csv"
    mixed_frame.assign(row_id=[f"r{i}" for i in range(len(mixed_frame))]).to_csv(path, index=False)
    return path


@pytest.fixture
def recipe(tmp_path, table) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data": {"path": table.name, "target": "label", "drop": ["row_id"]},
                "model": {"hidden": [16]},
                "train": {"epochs": 5, "batch_size": 16},
                "track": False,  # tracking through the CLI is tested in tests/track
            }
        )
    )
    return path


def test_help_is_fast_because_nothing_heavy_is_imported():
    code = (
        "import sys\nfrom strata.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'pandas', 'sklearn', 'matplotlib', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "train" in out and "predict" in out


def test_import_strata_is_light():
    code = (
        "import sys, strata\nprint([m for m in ('torch', 'pandas', 'sklearn', 'mlflow', 'optuna') if m in sys.modules])"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


def test_console_script_trains_end_to_end(tmp_path, recipe, table):
    exe = Path(sys.executable).parent / "strata"
    done = subprocess.run(
        [str(exe), "train", str(recipe), "--out", str(tmp_path / "m"), "--quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # --quiet
    assert (tmp_path / "m" / "weights.safetensors").exists()


def test_train_evaluate_predict(capsys, tmp_path, recipe, table):
    bundle = tmp_path / "model"
    code, out, _ = strata(capsys, "train", recipe, "--out", bundle, "--set", "train.epochs=7", "--set", "seed=3")
    assert code == 0
    assert "Metrics" in out and "accuracy" in out and "Confusion matrix" in out
    assert "colour: categorical" in out  # the inferred types are shown
    assert yaml.safe_load((bundle / "recipe.yaml").read_text())["train"]["epochs"] == 7

    code, out, _ = strata(capsys, "evaluate", bundle, table)
    assert code == 0 and "accuracy" in out

    preds = tmp_path / "preds.csv"
    code, out, _ = strata(capsys, "predict", bundle, table, "--out", preds, "--id", "row_id")
    assert code == 0 and "wrote 200 predictions" in out
    frame = pd.read_csv(preds)
    assert list(frame.columns) == ["row_id", "prediction", "proba_high", "proba_low", "proba_mid"]
    assert frame["row_id"].tolist()[:2] == ["r0", "r1"]

    code, out, _ = strata(capsys, "predict", bundle, table)  # to stdout
    assert code == 0 and out.splitlines()[0] == "prediction,proba_high,proba_low,proba_mid"


def test_default_bundle_folder_is_models_slash_name(capsys, tmp_path, recipe, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, _ = strata(capsys, "train", recipe, "--quiet")
    assert code == 0 and (tmp_path / "models" / "recipe" / "meta.json").exists()


def test_datasets_lists_every_bundled_dataset(capsys):
    code, out, _ = strata(capsys, "datasets")
    assert code == 0
    for name in ("iris", "wine", "breast_cancer", "diabetes", "digits", "penguins"):
        assert name in out


def test_init_writes_a_recipe_that_trains(capsys, tmp_path, table):
    code, out, _ = strata(capsys, "init", table, "--target", "label")
    written = tmp_path / "table.yaml"
    assert code == 0 and str(written) in out
    recipe = yaml.safe_load(written.read_text())
    types = {c["name"]: c["type"] for c in recipe["features"]["columns"]}
    assert types == {"x1": "numeric", "x2": "numeric", "colour": "categorical", "flag": "binary"}
    assert "row_id" in written.read_text().split("Left out:")[1]  # skipped, and said so
    code, _, err = strata(
        capsys, "train", written, "--set", "train.epochs=3", "--set", "track=false", "--out", tmp_path / "m", "-q"
    )
    assert code == 0, err
    code, _, err = strata(capsys, "init", table, "--target", "label")
    assert code == 1 and "already exists; pass --force" in err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_bad_recipe_key_is_one_line(capsys, recipe):
    code, _, err = strata(capsys, "train", recipe, "--set", "train.optimizer.name=adamm")
    assert code == 1
    assert (
        "train.optimizer.name: 'adamm' is not one of sgd, adam, adamw, rmsprop (did you mean 'adam'?)"
        in one_line_error(err)
    )


def test_missing_target_column_is_one_line(capsys, recipe):
    code, _, err = strata(capsys, "train", recipe, "--set", "data.target=lable")
    assert code == 1 and "column 'lable' is not in the data (did you mean 'label'?)" in one_line_error(err)


def test_target_with_missing_values(capsys, tmp_path, recipe, table):
    frame = pd.read_csv(table)
    frame.loc[[4, 8], "label"] = None
    frame.to_csv(table, index=False)
    code, _, err = strata(capsys, "train", recipe)
    assert code == 1 and "target 'label' has 2 missing values (rows 4, 8)" in one_line_error(err)


def test_missing_and_empty_data_files(capsys, tmp_path, recipe):
    code, _, err = strata(capsys, "train", recipe, "--data", tmp_path / "nope.csv")
    assert code == 1 and "nope.csv' not found" in one_line_error(err)
    (tmp_path / "empty.csv").write_text("")
    code, _, err = strata(capsys, "train", recipe, "--data", tmp_path / "empty.csv")
    assert code == 1 and "empty.csv' is empty" in one_line_error(err)


def test_predict_errors_and_warnings(capsys, tmp_path, recipe, table):
    bundle = tmp_path / "model"
    assert strata(capsys, "train", recipe, "--out", bundle, "-q")[0] == 0
    frame = pd.read_csv(table)
    frame.drop(columns=["flag"]).to_csv(tmp_path / "no_flag.csv", index=False)
    code, _, err = strata(capsys, "predict", bundle, tmp_path / "no_flag.csv")
    assert code == 1 and "data is missing column 'flag'" in one_line_error(err)

    frame.assign(x1=["oops"] + [0.5] * (len(frame) - 1)).to_csv(tmp_path / "text.csv", index=False)
    code, _, err = strata(capsys, "predict", bundle, tmp_path / "text.csv")
    assert code == 1 and "column 'x1' should be numeric but row 0 has 'oops'" in one_line_error(err)

    frame.assign(x1="oops").to_csv(tmp_path / "text.csv", index=False)
    code, _, err = strata(capsys, "predict", bundle, tmp_path / "text.csv")
    assert "but rows 0, 1, 2, 3, 4 and 195 more have text such as 'oops'" in one_line_error(err)

    frame.assign(colour="purple").to_csv(tmp_path / "new_level.csv", index=False)
    with warnings.catch_warnings():  # shown to the user, not raised (pytest is set to raise them)
        warnings.simplefilter("always", StrataWarning)
        code, out, err = strata(capsys, "predict", bundle, tmp_path / "new_level.csv")
    assert code == 0 and len(out.splitlines()) == 201
    assert "warning: column 'colour': 200 rows have categories not in the training vocabulary" in err

    code, _, err = strata(capsys, "predict", tmp_path / "no_such_model", table)
    assert code == 1 and "model bundle" in one_line_error(err) and "not found" in err

    code, _, err = strata(capsys, "predict", bundle, table, "--out", tmp_path / "p.xlsx")
    assert code == 1 and "expected a .csv or .parquet file name" in one_line_error(err)


def test_usage_errors_exit_2(capsys):
    code, _, err = strata(capsys, "train")
    assert code == 2 and "Missing argument" in err


def test_example_recipes_train(capsys, tmp_path):
    for recipe in sorted(EXAMPLES.glob("*.yaml")):
        code, _, err = strata(capsys, "train", recipe, "--set", "train.epochs=3", "--out", tmp_path / recipe.stem, "-q")
        assert code == 0, f"{recipe.name}: {err}"


@pytest.fixture
def bundle(tmp_path, recipe) -> Path:
    strata_api.train(recipe, out=tmp_path / "model", quiet=True)
    return tmp_path / "model"


def test_version(capsys):
    code, out, _ = strata(capsys, "--version")
    assert code == 0 and out.strip() == f"strata {__version__}"


def test_predict_out_that_cannot_be_written_is_one_line(capsys, tmp_path, bundle, table):
    folder = tmp_path / "taken.csv"
    folder.mkdir()
    code, _, err = strata(capsys, "predict", bundle, table, "--out", folder)
    assert code == 1 and "taken.csv" in one_line_error(err)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # no half-written file left
    code, _, err = strata(capsys, "predict", bundle, table, "--out", "/proc/nonexistent/x.csv")
    assert code == 1 and "cannot write '/proc/nonexistent/x.csv'" in one_line_error(err)


def test_probabilities_are_written_with_six_significant_digits(capsys, tmp_path, bundle, table):
    code, out, _ = strata(capsys, "predict", bundle, table)
    assert code == 0
    code, _, _ = strata(capsys, "predict", bundle, table, "--out", tmp_path / "p.csv")
    assert code == 0
    for text in (out, (tmp_path / "p.csv").read_text()):
        rows = [line.split(",")[1:] for line in text.splitlines()[1:]]
        digits = [len(re.sub(r"e.*|\D", "", value).lstrip("0")) for row in rows for value in row]
        assert max(digits) <= 6, text[:200]  # not 17 digits of float noise


def test_regression_predictions_are_in_a_prediction_column(capsys, tmp_path, regression_frame):
    regression_frame.to_csv(tmp_path / "reg.csv", index=False)
    (tmp_path / "reg.yaml").write_text(
        yaml.safe_dump({"data": {"path": "reg.csv", "target": "label"}, "train": {"epochs": 2}})
    )
    assert strata(capsys, "train", tmp_path / "reg.yaml", "--out", tmp_path / "reg", "-q")[0] == 0
    code, out, _ = strata(capsys, "predict", tmp_path / "reg", tmp_path / "reg.csv")
    assert code == 0 and out.splitlines()[0] == "prediction"
    assert len(out.splitlines()) == len(regression_frame) + 1


def test_init_creates_folders_and_names_the_recipe_after_its_file(capsys, tmp_path, table):
    out = tmp_path / "missing" / "sub" / "r.yaml"
    code, _, err = strata(capsys, "init", table, "--target", "label", "--out", out)
    assert code == 0, err
    recipe = yaml.safe_load(out.read_text())
    assert recipe["name"] == "r"
    assert (out.parent / recipe["data"]["path"]).resolve() == table.resolve()


def test_init_on_a_folder_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = strata(capsys, "init", ".", "--target", "label")
    assert code == 1 and "cannot tell the format" in one_line_error(err)


def test_train_out_onto_a_file_is_one_line(capsys, tmp_path, recipe):
    (tmp_path / "file").write_text("keep me")
    code, _, err = strata(capsys, "train", recipe, "--out", tmp_path / "file")
    assert code == 1 and "it is a file, not a folder" in one_line_error(err)
    assert (tmp_path / "file").read_text() == "keep me"


@pytest.mark.parametrize("column", ["label", "x2"])  # the target; a feature with gaps
def test_an_infinite_value_is_a_one_line_error(capsys, tmp_path, regression_frame, column):
    frame = regression_frame.rename(columns={"b": "x2"})
    frame.loc[3, column], frame.loc[5, "x2"] = np.inf, np.nan
    frame.to_csv(tmp_path / "inf.csv", index=False)
    (tmp_path / "inf.yaml").write_text(yaml.safe_dump({"data": {"path": "inf.csv", "target": "label"}}))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code, _, err = strata(capsys, "train", tmp_path / "inf.yaml", "--out", tmp_path / "m")
    assert code == 1 and f"column '{column}' has infinite values in row 3" in one_line_error(err)


def test_train_with_seeds_writes_beside_the_single_run_bundle(capsys, tmp_path, recipe):
    code, _, err = strata(capsys, "train", recipe, "-q")
    assert code == 0, err
    code, _, err = strata(capsys, "train", recipe, "--seeds", "2", "-q")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "models" / "recipe-seeds").iterdir()) == ["seed-0", "seed-1"]
    code, _, err = strata(capsys, "train", recipe, "-q")  # replacing the single-run bundle keeps them
    assert code == 0, err
    assert (tmp_path / "models" / "recipe-seeds" / "seed-1" / "weights.safetensors").exists()
    assert not (tmp_path / "models" / "recipe" / "seed-0").exists()
