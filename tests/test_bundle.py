"""Bundles: plain files, atomic writes, no unpickling, identical predictions in a fresh process."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import strata
import strata.workflow
from strata.bundle import _exchange, load
from strata.errors import BundleError, DataError
from tests.conftest import tiny_recipe

FIXTURE = Path(__file__).parent / "fixtures" / "bundle_v1"


@pytest.fixture
def saved(tmp_path, mixed_frame):
    result = strata.train(
        tiny_recipe(
            model={"hidden": [16], "dropout": 0.1},
            features={"columns": ["x1", "x2", {"name": "colour", "encoding": "embedding"}, "flag"]},
            evaluate={"bootstrap": 50},
        ),
        data=mixed_frame,
        out=tmp_path / "bundle",
        quiet=True,
    )
    return result, tmp_path / "bundle"


def test_bundle_holds_plain_files(saved):
    _, path = saved
    names = {p.name for p in path.iterdir()}
    plots = {"learning_curve", "target_balance", "confusion_matrix", "roc", "precision_recall", "reliability"}
    assert {"weights.safetensors", "pipeline.json", "recipe.yaml", "meta.json", "model_card.md", "report.html"} <= names
    assert {f"{p}.png" for p in plots} <= names
    meta = json.loads((path / "meta.json").read_text())
    assert meta["format"] == 1
    assert set(meta["fingerprint"]) == {"recipe", "data", "weights"}
    assert set(meta["seeds"]) == {"data", "model", "train"}
    assert {"torch", "numpy", "python"} <= set(meta["versions"])
    assert meta["metrics"]["test"]["accuracy"] is not None
    assert (path / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loaded_model_predicts_identically(saved, mixed_frame):
    result, path = saved
    loaded = load(path)
    np.testing.assert_array_equal(loaded.predict_proba(mixed_frame), result.model.predict_proba(mixed_frame))
    assert loaded.classes == result.model.classes == ["high", "low", "mid"]
    assert loaded.evaluate(mixed_frame) == result.model.evaluate(mixed_frame)


def test_fresh_process_predicts_identically(saved, mixed_frame, tmp_path):
    result, path = saved
    mixed_frame.to_csv(tmp_path / "rows.csv", index=False)
    script = (
        "import sys, numpy as np, strata\n"
        "m = strata.load(sys.argv[1])\n"
        "np.save(sys.argv[3], m.predict_proba(sys.argv[2]))\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path / "rows.csv"), str(tmp_path / "p.npy")], check=True
    )
    here = result.model.predict_proba(pd.read_csv(tmp_path / "rows.csv"))
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), here)


def test_loading_never_unpickles(saved, monkeypatch):
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used while loading a bundle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    assert load(saved[1]).predict([{"x1": 0.1, "x2": 4.0, "colour": "red", "flag": "no"}]).shape == (1,)


def test_predict_accepts_records_and_files(saved, mixed_frame, tmp_path):
    model = load(saved[1])
    mixed_frame.head(4).to_parquet(tmp_path / "rows.parquet")
    from_file = model.predict(tmp_path / "rows.parquet")
    from_records = model.predict(mixed_frame.head(4).to_dict("records"))
    assert list(from_file) == list(from_records) == list(model.predict(mixed_frame.head(4)))


def test_predict_frame_columns(saved, mixed_frame):
    frame = load(saved[1]).predict_frame(mixed_frame.head(3))
    assert list(frame.columns) == ["prediction", "proba_high", "proba_low", "proba_mid"]
    np.testing.assert_allclose(frame.filter(like="proba_").sum(axis=1), 1.0, rtol=1e-6)


def test_regression_bundle_predicts_in_target_units(tmp_path, regression_frame):
    result = strata.train(
        tiny_recipe(train={"epochs": 40, "batch_size": 16}), data=regression_frame, out=tmp_path / "reg", quiet=True
    )
    predictions = load(tmp_path / "reg").predict(regression_frame)
    assert predictions.shape == (len(regression_frame),)
    assert abs(predictions.mean() - regression_frame["label"].mean()) < 1.0  # not in standardised units
    with pytest.raises(DataError, match="predict_proba needs a classifier"):
        result.model.predict_proba(regression_frame)


def test_overwriting_replaces_the_bundle_whole(saved, mixed_frame):
    result, path = saved
    (path / "stale.txt").write_text("from an older run")
    result.model.save(path)
    assert not (path / "stale.txt").exists()
    assert load(path).predict(mixed_frame).shape == (len(mixed_frame),)
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temp folders left


def test_refuses_to_overwrite_a_folder_that_is_not_a_bundle(saved, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not lose me")
    with pytest.raises(BundleError, match="is not a Strata bundle; refusing to overwrite"):
        saved[0].model.save(precious)
    assert (precious / "thesis.tex").read_text() == "do not lose me"


def test_a_failed_save_leaves_the_old_bundle(saved, monkeypatch):
    result, path = saved
    before = (path / "weights.safetensors").read_bytes()
    result.model.artifacts["broken.png"] = lambda: 1 / 0
    with pytest.raises(ZeroDivisionError):
        result.model.save(path)
    assert (path / "weights.safetensors").read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def edit_recipe(bundle: Path, **sections: object) -> None:
    recipe = yaml.safe_load((bundle / "recipe.yaml").read_text())
    recipe.update(sections)
    (bundle / "recipe.yaml").write_text(yaml.safe_dump(recipe))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "weights.safetensors").unlink(), "is incomplete: missing weights.safetensors"),
        (lambda p: (p / "weights.safetensors").write_bytes(b"\x00" * 20), "is corrupt"),
        (lambda p: (p / "meta.json").write_text("{not json"), "is corrupt"),
        (lambda p: (p / "meta.json").write_text(json.dumps({"format": 99})), "has format 99; this Strata reads up to"),
        (lambda p: (p / "pipeline.json").write_text(json.dumps({"format": 1})), "is corrupt"),
        (lambda p: (p / "meta.json").write_text("[1, 2]"), "is corrupt: meta.json is not a JSON object"),
        (lambda p: (p / "pipeline.json").write_bytes(b'{"format": 1, "note": "caf\xe9"}'), "is corrupt: .*utf-8"),
        (lambda p: edit_recipe(p, model={"hidden": [7]}), "is corrupt: .*state_dict"),  # weights for other sizes
    ],
)
def test_damaged_bundles_are_named(saved, damage, message):
    damage(saved[1])
    with pytest.raises(BundleError, match=message) as err:
        load(saved[1])
    assert "\n" not in str(err.value)


def test_missing_bundle(tmp_path):
    with pytest.raises(BundleError, match=r"model bundle '.*nothing' not found"):
        load(tmp_path / "nothing")


def test_predict_input_errors(saved, mixed_frame):
    model = load(saved[1])
    with pytest.raises(DataError, match="data is missing column 'flag'"):
        model.predict(mixed_frame.drop(columns=["flag"]))
    bad = mixed_frame.head(3).astype({"x2": object})
    bad.loc[1, "x2"] = "n/a"
    with pytest.raises(DataError, match=r"column 'x2' should be numeric but row 1 has 'n/a'"):
        model.predict(bad)
    with pytest.warns(strata.StrataWarning, match="'purple'"):
        assert model.predict(mixed_frame.head(2).assign(colour="purple")).shape == (2,)
    with pytest.raises(DataError, match="expected a DataFrame, a list of records or a file path, got int"):
        model.predict(42)


def test_evaluate_needs_known_labels(saved, mixed_frame):
    model = load(saved[1])
    with pytest.raises(DataError, match="target 'label' has label 'unknown', which the model was not trained on"):
        model.evaluate(mixed_frame.head(5).assign(label="unknown"))


def test_format_1_bundle_from_an_earlier_release_still_loads():
    """tests/fixtures/bundle_v1 was written by Strata 0.1.0; it must keep loading and predicting the same."""
    model = load(FIXTURE)
    rows = pd.read_csv(FIXTURE.parent / "bundle_v1_rows.csv")
    expected = np.load(FIXTURE.parent / "bundle_v1_proba.npy")
    np.testing.assert_allclose(model.predict_proba(rows), expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------- writing
def test_bundle_is_readable_by_others_under_the_usual_umask(saved, tmp_path):
    old = os.umask(0o022)
    try:
        path = saved[0].model.save(tmp_path / "shared")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()} == {0o644}


def test_meta_json_is_standard_json_even_with_nan_in_the_history(saved, tmp_path):
    model = saved[0].model
    model.meta["history"][0]["val_loss"] = float("nan")  # as a diverged epoch logs it
    model.meta["best_val"] = np.float32("inf")
    path = model.save(tmp_path / "nan")

    def refuse(name: str) -> None:
        raise AssertionError(f"meta.json holds {name}, which is not standard JSON")

    meta = json.loads((path / "meta.json").read_text(), parse_constant=refuse)
    assert meta["history"][0]["val_loss"] is None and meta["best_val"] is None
    assert meta["history"][1]["val_loss"] == model.meta["history"][1]["val_loss"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_exchange_swaps_two_folders_atomically(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, name in ((a, "old.txt"), (b, "new.txt")):
        folder.mkdir()
        (folder / name).write_text(name)
    assert _exchange(a, b) is True
    assert [p.name for p in a.iterdir()] == ["new.txt"] and [p.name for p in b.iterdir()] == ["old.txt"]


def test_saving_onto_a_file_is_refused(saved, tmp_path):
    target = tmp_path / "model"
    target.write_text("keep me")
    with pytest.raises(BundleError, match=r"cannot save the model to '.*model': it is a file, not a folder$"):
        saved[0].model.save(target)
    assert target.read_text() == "keep me"


def test_train_refuses_a_file_as_out_before_any_work(mixed_frame, tmp_path, monkeypatch):
    def too_late(*args, **kwargs):
        raise AssertionError("data was prepared before the destination was checked")

    monkeypatch.setattr(strata.workflow, "prepare", too_late)
    monkeypatch.setattr(strata.workflow, "fit", too_late)
    (tmp_path / "out").write_text("keep me")
    with pytest.raises(BundleError, match="it is a file, not a folder"):
        strata.train(tiny_recipe(), data=mixed_frame, out=tmp_path / "out", quiet=True)
