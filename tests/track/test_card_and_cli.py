"""Model cards, and the `strata runs`, `register` and `promote` commands."""

from __future__ import annotations

import pytest

import strata
from tests.test_cli import one_line_error
from tests.test_cli import strata as cli


@pytest.fixture(scope="module")
def trained(store_uri, tmp_path_factory):
    from tests.conftest import make_mixed_frame, tiny_recipe

    frame = make_mixed_frame()
    recipe = tiny_recipe(card={"intended_use": "Sorting tickets by urgency.", "limitations": "Synthetic data only.",
                               "owners": ["data-team"], "slices": ["colour", "x1"]})  # fmt: skip
    recipe["track"] = {"uri": store_uri, "experiment": "cards"}
    out = tmp_path_factory.mktemp("card") / "bundle"
    first = strata.train(recipe, data=frame, out=out, quiet=True)
    second = strata.train({**recipe, "seed": 3, "model": {"hidden": [8]}}, data=frame, quiet=True)
    return first, second, out


def test_card_says_what_the_model_is_and_how_well_it_does(trained):
    result, _, out = trained
    card = (out / "model_card.md").read_text()
    metrics = result.metrics["test"]
    for text in ("# Model card:", "## Model details", "Sorting tickets by urgency.", "Synthetic data only.", "data-team",
                 f"| accuracy | {result.metrics['val']['accuracy']:.4f} | {metrics['accuracy']:.4f} |",
                 "| colour | categorical |", "| flag | binary |", "Target classes in the training split",
                 "By `colour` (test split)", "By `x1` (test split)", "## Training procedure", "epochs run | 5 of 5",
                 f"`{result.model.meta['fingerprint']['data']}`", f"run | {result.run_id}"):  # fmt: skip
        assert text in card, text
    rows = result.model.meta["rows"]
    assert f"rows: train {rows['train']}, val {rows['val']}, test {rows['test']}" in card


def test_slice_metrics_add_up_to_the_test_split(trained):
    result, _, _ = trained
    slices = result.model.meta["slices"]
    assert set(slices) == {"colour", "x1"}
    assert sum(level["rows"] for level in slices["colour"].values()) == result.model.meta["rows"]["test"]
    assert len(slices["x1"]) == 4  # a numeric column with many values: quartiles


def test_unknown_slice_column_is_named(mixed_frame):
    from tests.conftest import tiny_recipe

    with pytest.raises(
        strata.DataError, match=r"card.slices: column 'colr' is not in the data \(did you mean 'colour'"
    ):
        strata.train(tiny_recipe(card={"slices": ["colr"]}), data=mixed_frame, quiet=True)


def test_runs_list_show_compare(trained, store_uri, capsys):
    first, second, _ = trained
    code, out, _ = cli(capsys, "runs", "list", "--experiment", "cards", "--tracking-uri", store_uri)
    assert code == 0 and first.run_id[:8] in out and second.run_id[:8] in out and "test_accuracy" in out
    code, out, _ = cli(capsys, "runs", "show", first.run_id[:8], "--tracking-uri", store_uri)
    assert code == 0 and first.run_id in out and "strata.weights_hash" in out and "train.epochs" in out
    code, out, _ = cli(capsys, "runs", "compare", first.run_id[:8], second.run_id[:8], "--tracking-uri", store_uri)
    assert code == 0
    params = out.split("Params that differ")[1].split("Metrics")[0]
    assert "model.hidden" in params and "seed" in params and "train.epochs" not in params
    assert "★" in out


@pytest.mark.parametrize(
    ("key", "lower"),
    [("test_brier", True), ("test_ece", True), ("test_log_loss", True), ("test_accuracy", False),
     ("test_median_ae_mean", True), ("test_rmse_ci_high", True), ("test_r2_mean", False), ("test_brier_std", None),
     ("lr", None)],
)  # fmt: skip
def test_which_way_is_better(key, lower):
    from strata.track.views import _lower_is_better

    assert _lower_is_better(key) is lower


def test_runs_compare_stars_the_lower_brier_and_ece(trained, store_uri, client, capsys):
    first, second, _ = trained
    code, out, _ = cli(capsys, "runs", "compare", first.run_id[:8], second.run_id[:8], "--tracking-uri", store_uri)
    assert code == 0
    rows = {cells[0]: cells[1:] for line in out.splitlines() if (cells := [c.strip() for c in line.split("│")][1:-1])}
    for key in ("test_brier", "test_ece", "test_accuracy"):
        values = [client.get_run(r.run_id).data.metrics[key] for r in (first, second)]
        assert values[0] != values[1], key
        best = values.index(min(values) if key != "test_accuracy" else max(values))
        assert ["★" in cell for cell in rows[key]] == [i == best for i in range(2)], (key, rows[key])


def test_runs_errors_are_one_line(trained, store_uri, capsys):
    code, _, err = cli(capsys, "runs", "show", "zzzz", "--tracking-uri", store_uri)
    assert code == 1 and "run 'zzzz' not found" in one_line_error(err)
    code, _, err = cli(capsys, "runs", "list", "--experiment", "crads", "--tracking-uri", store_uri)
    assert code == 1 and "experiment 'crads' not found" in one_line_error(err) and "did you mean 'cards'" in err
    code, _, err = cli(capsys, "runs", "list", "--tracking-uri", "http://127.0.0.1:9")
    assert code == 1 and "is unreachable" in one_line_error(err)


def test_register_and_promote_commands(trained, store_uri, capsys):
    first, _, _ = trained
    code, out, _ = cli(capsys, "register", first.run_id[:8], "--name", "tickets", "--tracking-uri", store_uri)
    assert code == 0 and "registered tickets version 1 (semver 1.0.0; first version)" in out
    code, out, _ = cli(capsys, "promote", "tickets", "1", "--alias", "production", "--tracking-uri", store_uri)
    assert code == 0 and "models:/tickets@production is now version 1" in out
    code, _, err = cli(capsys, "promote", "tickets", "5", "--tracking-uri", store_uri)
    assert code == 1 and "model 'tickets' has no version 5 (versions: 1)" in one_line_error(err)


def test_train_with_seeds_from_the_cli(store_uri, capsys, tmp_path):
    import yaml

    from tests.conftest import make_mixed_frame, tiny_recipe

    make_mixed_frame().to_csv(tmp_path / "t.csv", index=False)
    recipe = tiny_recipe(data={"path": "t.csv", "target": "label"})
    recipe["track"] = {"uri": store_uri, "experiment": "cli-seeds"}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    code, out, _ = cli(capsys, "train", tmp_path / "r.yaml", "--seeds", "3", "--out", tmp_path / "m")
    assert code == 0 and "test metrics over 3 seeds (95% CI, t-distribution)" in out
    assert out.count("seed ") >= 3 and sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "seed-0",
        "seed-1",
        "seed-2",
    ]
