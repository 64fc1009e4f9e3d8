"""Images and signals end to end: image folders, CNNs, augmentation in training only, predictions on
a folder, transfer learning, and the recipe errors that point at the right model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import strata
from strata.errors import RecipeError
from tests.test_cli import strata as run_cli

SMALL_CNN = {"type": "cnn", "channels": [8, 16], "hidden": [32]}
QUIET = {"track": False, "evaluate": False}


def shapes_folder(root: Path, per_class: int = 40, seed: int = 0) -> Path:
    """Class folders of noisy PNG discs and squares, of a few different sizes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label in ("disc", "square"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            h, w = 18 + i % 4, 18 + i % 3
            yy, xx = np.mgrid[:h, :w]
            r = rng.integers(4, 7)
            inside = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < r**2 if label == "disc" else (
                (abs(yy - h / 2) < r) & (abs(xx - w / 2) < r))  # fmt: skip
            pixels = np.clip(inside * 200 + rng.normal(0, 25, (h, w)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return shapes_folder(tmp_path_factory.mktemp("shapes") / "train")


@pytest.fixture(scope="module")
def digits() -> pd.DataFrame:
    return strata.load_dataset("digits_images")


def image_recipe(folder: Path, **train) -> dict:
    return {"data": {"images": str(folder), "image_size": [16, 16]}, "model": SMALL_CNN,
            "train": {"epochs": 12, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.005}, **train},
            **QUIET}  # fmt: skip


# ------------------------------------------------------------------------------------ image data
def test_an_image_folder_trains_saves_and_predicts_a_folder(folder, tmp_path, capsys, monkeypatch):
    recipe = image_recipe(folder)
    result = strata.train(recipe, out=tmp_path / "m", quiet=True)
    assert result.metrics["test"]["accuracy"] >= 0.8
    state = result.model.pipeline.columns[0]["state"]
    assert state["size"] == [16, 16] and state["channels"] == 1  # resized; grayscale read as such
    loaded = strata.load(tmp_path / "m")
    frame = loaded.read(folder / "disc")
    assert frame.attrs["paths"][0] == "0.png" and len(frame) == 40
    np.testing.assert_array_equal(loaded.predict_proba(frame), result.model.predict_proba(frame))
    assert (loaded.predict(folder / "disc") == "disc").mean() > 0.8
    code, out, err = run_cli(capsys, "predict", tmp_path / "m", folder / "square")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "path,prediction,proba_disc,proba_square" and len(lines) == 41
    assert lines[1].startswith("0.png,")


def test_pictures_in_a_dataframe_train_like_files(digits):
    result = strata.train({"data": {"target": "digit"}, "model": SMALL_CNN, "train": {"epochs": 8, "optimizer": {"name": "adam", "lr": 0.005}}, **QUIET},
                          data=digits, quiet=True)  # fmt: skip
    assert result.model.pipeline.columns[0]["kind"] == "image"
    assert result.metrics["test"]["accuracy"] > 0.8


def test_the_data_hash_covers_the_pixels(digits):
    from strata.data.sources import frame_hash

    changed = digits.copy()
    picture = changed.at[5, "image"].copy()
    picture[3, 3, 0] ^= 1
    changed.at[5, "image"] = picture
    assert frame_hash(changed) != frame_hash(digits)
    assert frame_hash(digits.copy()) == frame_hash(digits)


def test_pictures_of_another_size_are_named(digits, tmp_path):
    result = strata.train({"data": {"target": "digit"}, "model": SMALL_CNN, "train": {"epochs": 1}, **QUIET},
                          data=digits, quiet=True)  # fmt: skip
    odd = digits.head(3).copy()
    odd["image"] = [np.zeros((9, 8, 1), np.uint8)] * 3
    with pytest.raises(strata.DataError, match=r"column 'image' row 0: picture is 9x8x1 .* expected 8x8x1"):
        result.model.predict(odd)


# -------------------------------------------------------------------------------- recipe errors
@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"type": "mlp"}, "model.type: mlp reads tables, but column 'image' holds images; use cnn or resnet"),
        ({"type": "cnn", "channels": [8, 8, 8, 8]}, "input image 8x8 is too small for this model"),
        ({"type": "cnn1d"}, "column 'image' is image"),
    ],
)
def test_a_model_that_cannot_read_the_data_says_which_would(digits, model, message):
    with pytest.raises(RecipeError, match=message):
        strata.train({"data": {"target": "digit"}, "model": model, "train": {"epochs": 1}, **QUIET},
                     data=digits.head(100), quiet=True)  # fmt: skip


def test_a_cnn_on_a_table_is_refused(mixed_frame):
    with pytest.raises(RecipeError, match="this data has no image column; use mlp for tables or cnn1d for signals"):
        strata.train({"data": {"target": "label"}, "model": {"type": "cnn"}, **QUIET}, data=mixed_frame, quiet=True)


def test_an_augment_step_for_pictures_is_refused_on_a_table(mixed_frame):
    recipe = {"data": {"target": "label"}, "train": {"epochs": 1, "augment": ["rotate"]}, **QUIET}
    with pytest.raises(RecipeError, match=r"train.augment\[0\]: 'rotate' does not apply to tables"):
        strata.train(recipe, data=mixed_frame, quiet=True)


def test_recipe_errors_inside_a_model_type_name_its_keys():
    base = {"data": {"dataset": "digits_images", "target": "digit"}}
    with pytest.raises(RecipeError, match=r"model.chanels: unknown key 'chanels' \(did you mean 'channels'\?\)"):
        strata.Recipe.from_dict({**base, "model": {"type": "cnn", "chanels": [8]}})
    with pytest.raises(RecipeError, match=r"model.type: 'cnnn' is not one of mlp, cnn, resnet, cnn1d"):
        strata.Recipe.from_dict({**base, "model": {"type": "cnnn"}})
    with pytest.raises(
        RecipeError, match=r"train.augment.0.name: 'fliip' is not one of flip, .* \(did you mean 'flip'"
    ):
        strata.Recipe.from_dict({**base, "train": {"augment": ["fliip"]}})
    with pytest.raises(RecipeError, match=r"option .transfer. needs model\.pretrained"):
        strata.Recipe.from_dict({**base, "model": {"type": "cnn", "transfer": "fine_tune"}})


# --------------------------------------------------------------------------------- augmentation
def test_augmentation_is_seeded_applied_in_training_and_never_in_evaluation(folder, monkeypatch):
    from strata.data import augment

    calls = []
    original = augment.Augmenter.__call__

    def counted(self, x, y, generator):
        calls.append(len(x))
        return original(self, x, y, generator)

    monkeypatch.setattr(augment.Augmenter, "__call__", counted)
    recipe = image_recipe(folder, epochs=3, augment=[{"name": "noise", "std": 0.5}, "flip"])
    first = strata.train(recipe, quiet=True)
    n_train = first.model.meta["rows"]["train"]
    assert sum(calls) == 3 * (n_train - (n_train % 16 == 1))  # every training row, every epoch; nothing else
    calls.clear()
    first.model.predict_proba(first.model.read(folder / "disc"))
    assert calls == []  # predictions never augment
    again = strata.train(recipe, quiet=True)
    for a, b in zip(first.model.network.state_dict().values(), again.model.network.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # same seed: the same augmented batches, the same model
    plain = strata.train(image_recipe(folder, epochs=3), quiet=True)
    assert not torch.equal(plain.model.network.head.weight, first.model.network.head.weight)


@pytest.mark.parametrize("target", ["label", "binary"])
def test_mixup_trains_on_soft_targets(mixed_frame, target):
    frame = mixed_frame.assign(binary=mixed_frame["label"] == "high")[["x1", "x2", target]]
    recipe = {"data": {"target": target}, "train": {"epochs": 3, "augment": [{"name": "mixup", "alpha": 0.4}]},
              **QUIET}  # fmt: skip
    result = strata.train(recipe, data=frame, quiet=True)
    assert np.isfinite([h["train_loss"] for h in result.history]).all()


# ------------------------------------------------------------------------------------- signals
def test_cnn1d_reads_numeric_columns_as_one_signal():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 4 * np.pi, 32)
    waves = np.stack([np.sin(t * rng.uniform(0.8, 1.2)) for _ in range(150)] +
                     [np.sign(np.sin(t * rng.uniform(0.8, 1.2))) for _ in range(150)])  # fmt: skip
    frame = pd.DataFrame(waves + rng.normal(0, 0.3, waves.shape), columns=[f"t{i}" for i in range(32)])
    frame["kind"] = ["sine"] * 150 + ["square"] * 150
    recipe = {"data": {"target": "kind"}, "model": {"type": "cnn1d", "channels": [8, 16]},
              "train": {"epochs": 15, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.005},
                        "augment": [{"name": "translate", "fraction": 0.1}]}, **QUIET}  # fmt: skip
    result = strata.train(recipe, data=frame, quiet=True)
    assert result.metrics["test"]["accuracy"] > 0.9


def test_mnist1d_is_the_published_dataset_shape():
    frame = strata.load_dataset("mnist1d")
    assert frame.shape == (5000, 41) and sorted(frame["label"].unique()) == list(range(10))


# ------------------------------------------------------------------------------------- transfer
@pytest.fixture(scope="module")
def pretrained(digits, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pre") / "digits-0-4"
    low = digits[digits["digit"].astype(int) < 5]
    strata.train({"data": {"target": "digit"}, "model": SMALL_CNN, "train": {"epochs": 5}, **QUIET},
                 data=low, out=out, quiet=True)  # fmt: skip
    return out


def few_high(digits: pd.DataFrame) -> pd.DataFrame:
    high = digits[digits["digit"].astype(int) >= 5]
    return high.groupby("digit").head(20)


def test_feature_extraction_keeps_the_backbone_as_trained(digits, pretrained):
    source = strata.load(pretrained).network.state_dict()
    model = {**SMALL_CNN, "pretrained": str(pretrained), "transfer": "feature_extraction"}
    result = strata.train({"data": {"target": "digit"}, "model": model, "train": {"epochs": 3}, **QUIET},
                          data=few_high(digits), quiet=True)  # fmt: skip
    after = result.model.network.state_dict()
    body = [k for k in source if k.startswith("body.")]
    assert body and all(torch.equal(after[k], source[k]) for k in body)  # weights and batch-norm statistics
    assert not torch.equal(after["hidden.1.0.weight"], source["hidden.1.0.weight"])  # the classifier learns
    assert result.model.meta["transfer"][1].endswith("a new output head (the classes differ)")
    assert result.model.classes == ["5", "6", "7", "8", "9"]


def test_fine_tuning_moves_the_backbone_slower_than_the_classifier(digits, pretrained):
    source = strata.load(pretrained).network.state_dict()
    model = {**SMALL_CNN, "pretrained": str(pretrained), "transfer": "fine_tune", "backbone_lr": 0.01}
    result = strata.train({"data": {"target": "digit"}, "model": model, "train": {"epochs": 3}, **QUIET},
                          data=few_high(digits), quiet=True)  # fmt: skip
    after = result.model.network.state_dict()

    def moved(key: str) -> float:
        return float((after[key] - source[key]).abs().mean() / source[key].abs().mean())

    assert 0 < moved("body.0.0.weight") < moved("hidden.1.0.weight") / 5


def test_gradual_unfreezing_thaws_from_the_top(digits, pretrained):
    source = strata.load(pretrained).network.state_dict()
    model = {**SMALL_CNN, "pretrained": str(pretrained), "unfreeze_every": 2}
    result = strata.train({"data": {"target": "digit"}, "model": model, "train": {"epochs": 3}, **QUIET},
                          data=few_high(digits), quiet=True)  # fmt: skip
    after = result.model.network.state_dict()
    first = [k for k in source if k.startswith("body.0.")]
    last = [k for k in source if k.startswith("body.1.") and k.endswith("weight")]
    assert all(torch.equal(after[k], source[k]) for k in first)  # still frozen after 3 epochs
    assert any(not torch.equal(after[k], source[k]) for k in last)  # thawed at epoch 2


def test_a_pretrained_model_with_other_layers_is_refused(digits, pretrained):
    model = {"type": "cnn", "channels": [8, 32], "hidden": [32], "pretrained": str(pretrained)}
    with pytest.raises(RecipeError, match=r"model.pretrained: layer 'body.1.0.weight' is \(16, 8, 3, 3\) in .* and "
                                          r"\(32, 8, 3, 3\) here; use the same model settings"):  # fmt: skip
        strata.train({"data": {"target": "digit"}, "model": model, "train": {"epochs": 1}, **QUIET},
                     data=few_high(digits), quiet=True)  # fmt: skip


def test_a_recipe_file_reads_pretrained_relative_to_itself(digits, pretrained, tmp_path):
    link = tmp_path / "models" / "base"
    link.parent.mkdir()
    link.symlink_to(pretrained)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"data": {"dataset": "digits_images", "target": "digit"},
                                                     "model": {**SMALL_CNN, "pretrained": "models/base"}}))  # fmt: skip
    assert strata.Recipe.from_yaml(tmp_path / "r.yaml").model.pretrained == str(link.resolve())


def test_a_resnet_run_writes_its_card_report_and_plots(digits, tmp_path):
    recipe = {"data": {"target": "digit"}, "model": {"type": "resnet", "widths": [8, 16], "blocks": 1},
              "train": {"epochs": 2}, "track": False, "evaluate": {"bootstrap": 50}}  # fmt: skip
    strata.train(recipe, data=digits.sample(300, random_state=0), out=tmp_path / "m", quiet=True)
    card = (tmp_path / "m" / "model_card.md").read_text()
    assert "| architecture | resnet: widths [8, 16], blocks 1, stem small" in card
    assert "| image | image |" in card
    assert (tmp_path / "m" / "report.html").exists() and (tmp_path / "m" / "confusion_matrix.png").exists()


# ------------------------------------------------------------------------- found by a user trial
def test_an_image_folder_run_reproduces(folder, store_uri):
    from strata.experiments import reproduce

    recipe = image_recipe(folder, epochs=2)
    recipe["track"] = {"uri": store_uri, "experiment": "images-reproduce"}
    result = strata.train(recipe, quiet=True)
    assert result.model.meta["data"]["source"] == f"images:{folder.resolve()}"
    assert reproduce(result.run_id, uri=store_uri).identical


def test_a_1d_network_too_deep_for_its_signal_is_one_recipe_error():
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(60, 12)), columns=[f"t{i}" for i in range(12)])
    frame["y"] = ["a", "b"] * 30
    recipe = {"data": {"target": "y"}, "model": {"type": "cnn1d", "channels": [4] * 6}, **QUIET}
    with pytest.raises(RecipeError, match="input signal of length 12 is too small for this model"):
        strata.train(recipe, data=frame, quiet=True)


def test_float_pictures_in_0_1_predict_like_8_bit_ones(folder):
    model = strata.train(image_recipe(folder, epochs=3), quiet=True).model
    from strata.data.images import read_image_paths

    table = read_image_paths(folder / "disc", size=(16, 16), mode="grayscale")
    as_bytes = pd.DataFrame({"image": list(table.pixels)})
    as_floats = pd.DataFrame({"image": [p.astype(np.float32) / 255 for p in table.pixels]})
    np.testing.assert_allclose(model.predict_proba(as_floats), model.predict_proba(as_bytes), atol=1e-5)


def test_transfer_ignores_a_different_dropout(digits, pretrained):
    model = {**SMALL_CNN, "dropout": 0.3, "pretrained": str(pretrained), "transfer": "feature_extraction"}
    result = strata.train({"data": {"target": "digit"}, "model": model, "train": {"epochs": 1}, **QUIET},
                          data=few_high(digits), quiet=True)  # fmt: skip
    assert result.model.meta["transfer"][0].startswith("starting weights hash ")


def test_a_pretrained_model_of_another_type_is_named(digits, pretrained):
    model = {"type": "resnet", "pretrained": str(pretrained)}
    with pytest.raises(RecipeError, match=r"is a cnn model; this recipe builds a resnet \(set model.type: cnn\)"):
        strata.train({"data": {"target": "digit"}, "model": model, "train": {"epochs": 1}, **QUIET},
                     data=few_high(digits), quiet=True)  # fmt: skip


def test_labelled_folders_csvs_and_single_files_are_read_like_training_data(folder, tmp_path, capsys):
    strata.train(image_recipe(folder, epochs=4), out=tmp_path / "m", quiet=True)
    model = strata.load(tmp_path / "m")
    metrics = model.evaluate(folder, bootstrap=0)  # class sub-folders give the labels
    assert metrics["accuracy"] >= 0.7
    listing = tmp_path / "lists" / "some.csv"
    listing.parent.mkdir()
    pd.DataFrame({"path": [f"../{folder.name}/disc/0.png"], "label": ["disc"]}).to_csv(listing, index=False)
    (tmp_path / folder.name).symlink_to(folder)
    frame = model.read(listing)  # paths relative to the CSV, as in training
    assert frame.attrs["paths"] == ["../train/disc/0.png"] and len(model.predict(listing)) == 1
    assert len(model.predict(folder / "disc" / "3.png")) == 1
    code, _, err = run_cli(capsys, "predict", tmp_path / "m", tmp_path / "nowhere")
    assert code == 1 and "image folder" in err and "not found" in err


def test_arrays_refuse_settings_meant_for_image_files(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((20, 8, 8), np.uint8), y=np.arange(20) % 2)
    recipe = {"data": {"images": str(tmp_path / "a.npz"), "image_size": [4, 4]}, "model": SMALL_CNN, **QUIET}
    with pytest.raises(strata.DataError, match=r"holds arrays, which are used as they are; remove data\.image_size"):
        strata.train(recipe, quiet=True)


def test_a_signal_of_many_columns_is_summarised_in_a_few_lines(capsys):
    recipe = {"data": {"dataset": "mnist1d", "target": "label"}, "model": {"type": "cnn1d", "channels": [4]},
              "train": {"epochs": 1}, **QUIET}  # fmt: skip
    strata.train(recipe)
    out = capsys.readouterr().out
    assert "... and 30 more columns (all in the report)" in out and "x20: numeric" not in out


def test_an_image_model_registers_quietly_and_loads_back(folder, store_uri, capfd, monkeypatch):
    from strata.track.registry import register

    recipe = image_recipe(folder, epochs=1)
    recipe["track"] = {"uri": store_uri, "experiment": "images-register"}
    result = strata.train(recipe, quiet=True)
    capfd.readouterr()
    entry = register(result.run_id, "shapes", store_uri)
    assert "signature" not in capfd.readouterr().err  # no signature for pictures, and no warning about it
    loaded = strata.load(f"models:/shapes/{entry.version}", tracking_uri=store_uri)
    np.testing.assert_array_equal(loaded.predict(folder / "disc"), result.model.predict(folder / "disc"))
    # a registered model is a starting point for transfer learning too
    monkeypatch.setenv("STRATA_TRACKING_URI", store_uri)
    model = {**SMALL_CNN, "pretrained": f"models:/shapes/{entry.version}", "transfer": "feature_extraction"}
    again = strata.train({**image_recipe(folder, epochs=1), "model": model}, quiet=True)
    source = loaded.network.state_dict()
    assert all(torch.equal(again.model.network.state_dict()[k], v) for k, v in source.items() if k.startswith("body."))
    assert f"weights from 'models:/shapes/{entry.version}'" in again.model.meta["transfer"][1]


def test_a_folder_too_large_to_decode_streams_and_trains_like_one_in_memory(folder, monkeypatch, tmp_path):
    from strata.data import images

    recipe = image_recipe(folder, epochs=3, augment=["flip"])
    in_memory = strata.train(recipe, quiet=True)
    monkeypatch.setattr(images, "STREAM_BYTES", 0)  # every folder counts as too large now
    streamed = strata.train(recipe, out=tmp_path / "m", quiet=True)
    assert streamed.model.pipeline.columns[0]["state"]["size"] == [16, 16]
    assert streamed.model.meta["rows"] == in_memory.model.meta["rows"]  # the same split
    stats = [in_memory.model.pipeline.columns[0]["state"], streamed.model.pipeline.columns[0]["state"]]
    np.testing.assert_allclose(stats[0]["mean"], stats[1]["mean"], rtol=1e-6)
    # the same batches in the same order, decoded the same way: the same model, up to float rounding
    np.testing.assert_allclose(streamed.history[-1]["train_loss"], in_memory.history[-1]["train_loss"], rtol=1e-4)
    assert streamed.metrics["test"]["accuracy"] == in_memory.metrics["test"]["accuracy"]
    assert streamed.model.meta["fingerprint"]["data"] != in_memory.model.meta["fingerprint"]["data"]  # file bytes
    assert (strata.load(tmp_path / "m").predict(folder / "disc") == streamed.model.predict(folder / "disc")).all()
