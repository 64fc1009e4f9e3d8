"""Several seeds with honest statistics; re-running a recorded run and comparing it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

import strata
from strata.errors import DataError, StrataError
from strata.experiments import reproduce, train_seeds


def test_seed_summary_matches_a_direct_computation(tracked, client, mixed_frame, tmp_path):
    result = train_seeds(tracked("seeds"), 4, mixed_frame, out=tmp_path / "m", quiet=True)
    accuracies = [r.metrics["test"]["accuracy"] for r in result.results]
    assert len(set(accuracies)) > 1  # the seeds really differ
    s = result.summary["accuracy"]
    mean, sem = np.mean(accuracies), stats.sem(accuracies)
    low, high = stats.t.interval(0.95, df=3, loc=mean, scale=sem)
    assert (s["mean"], s["std"], s["n"]) == (pytest.approx(mean), pytest.approx(np.std(accuracies, ddof=1)), 4)
    assert (s["ci_low"], s["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["seed-0", "seed-1", "seed-2", "seed-3"]
    # tracked: a parent run holding the summary, the seeds as its children
    parent = client.get_run(result.run_id)
    assert parent.data.metrics["test_accuracy_mean"] == pytest.approx(mean)
    assert parent.data.metrics["test_accuracy_ci_high"] == pytest.approx(high)
    children = [r.run_id for r in result.results]
    assert all(client.get_run(c).data.tags["mlflow.parentRunId"] == result.run_id for c in children)
    assert [client.get_run(c).data.tags["strata.seed"] for c in children] == ["0", "1", "2", "3"]
    assert "model_card.md" in {a.path for a in client.list_artifacts(result.run_id)}


def test_a_multi_seed_run_names_its_seed_runs(tracked, client, mixed_frame, store_uri):
    from strata.track.registry import register

    result = train_seeds(tracked("seed-parent"), 2, mixed_frame, quiet=True)
    parent, first = client.get_run(result.run_id).data.tags, client.get_run(result.results[0].run_id).data.tags
    shared = ["strata.data_hash", "strata.schema_hash", "strata.task", "strata.version", "strata.env.torch"]
    assert [parent.get(k) for k in shared] == [first[k] for k in shared]
    seeds = ", ".join(f"{r.run_id[:12]} (seed {s})" for r, s in zip(result.results, (0, 1), strict=True))
    for doing, call in (("register", lambda: register(result.run_id[:10], "seeds", store_uri)),
                        ("reproduce", lambda: reproduce(result.run_id, uri=store_uri))):  # fmt: skip
        with pytest.raises(StrataError) as caught:
            call()
        assert str(caught.value) == (
            f"run {result.run_id[:12]} is a multi-seed summary run, with no model of its own; "
            f"{doing} one of its seed runs instead: {seeds}"
        )


def test_one_seed_is_refused(tracked, mixed_frame):
    with pytest.raises(StrataError, match="give at least 2 seeds"):
        train_seeds(tracked("one-seed"), 1, mixed_frame, quiet=True)


@pytest.fixture
def recorded(tracked, mixed_frame, tmp_path):
    """A run trained from a CSV file, as `strata train recipe.yaml` would record it."""
    mixed_frame.to_csv(tmp_path / "table.csv", index=False)
    recipe = tracked("reproduce", data={"path": str(tmp_path / "table.csv"), "target": "label"},
                     model={"hidden": [16], "dropout": 0.2})  # fmt: skip
    return strata.train(recipe, quiet=True), tmp_path / "table.csv"


def test_an_untouched_run_reproduces_bit_for_bit(recorded, store_uri, client):
    result, _ = recorded
    report = reproduce(result.run_id[:10], uri=store_uri)
    assert report.identical
    values = dict((what, (then, now)) for what, then, now, _ in report.rows)
    assert values["weights hash"][0] == values["weights hash"][1] == result.model.meta["fingerprint"]["weights"]
    assert values["test_accuracy"][0] == result.metrics["test"]["accuracy"]
    assert {"train_loss", "val_loss", "test_f1"} <= values.keys()
    again = client.get_run(report.rerun)
    assert again.data.tags["strata.reproduces"] == result.run_id
    assert again.data.tags["strata.data_source"] == client.get_run(result.run_id).data.tags["strata.data_source"]


def test_a_changed_data_file_is_named(recorded, store_uri):
    result, table = recorded
    text = table.read_text().splitlines()
    table.write_text("\n".join([text[0], text[2], text[1], *text[3:]]) + "\n")  # two rows swapped
    with pytest.raises(DataError, match=rf"^data file '{table}' has changed since run {result.run_id[:12]}"):
        reproduce(result.run_id, uri=store_uri)


def test_a_difference_is_reported_with_a_diff(recorded, store_uri, client):
    result, _ = recorded
    client.log_metric(result.run_id, "test_accuracy", 0.123, step=10_000)  # as if the run had scored otherwise
    report = reproduce(result.run_id, uri=store_uri)
    assert not report.identical
    assert [what for what, *_, same in report.rows if not same] == ["test_accuracy"]
    assert reproduce(result.run_id, uri=store_uri, tolerance=1.0).identical


def test_a_last_bits_difference_is_printed_in_full(recorded, store_uri, client, capsys):
    from strata.track.views import print_reproduction

    result, _ = recorded
    loss = client.get_run(result.run_id).data.metrics["val_loss"]
    off = float(np.nextafter(loss, np.inf))
    client.log_metric(result.run_id, "val_loss", off, step=10_000)  # differs in the last bit only
    capsys.readouterr()
    print_reproduction(reproduce(result.run_id, uri=store_uri))
    row = next(line for line in capsys.readouterr().out.splitlines() if "val_loss" in line)
    assert repr(off) in row and repr(loss) in row and f"{loss - off:+.3g}" in row and "NO" in row


def test_a_differing_weights_hash_is_shown_even_when_tolerated(recorded, store_uri, client, capsys):
    from strata.track.views import print_reproduction

    result, _ = recorded
    client.set_tag(result.run_id, "strata.weights_hash", "0" * 64)  # as if the weights had come out otherwise
    strict = reproduce(result.run_id, uri=store_uri)
    assert not strict.identical
    tolerated = reproduce(result.run_id, uri=store_uri, tolerance=1e-6)
    assert tolerated.identical  # a tolerance accepts other weights (a GPU run) ...
    capsys.readouterr()
    print_reproduction(tolerated)
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "weights hash" in line)
    assert "differs (tolerated)" in row and "yes" not in row  # ... but does not call them the same
    assert "0" * 64 in row and result.model.meta["fingerprint"]["weights"] in row
    assert "reproduced within tolerance 1e-06: 1 of" in out and "(weights hash)" in out


def test_a_dataframe_run_needs_the_data_again(tracked, mixed_frame, store_uri):
    result = strata.train(tracked("from-frame"), data=mixed_frame, quiet=True)
    with pytest.raises(DataError, match="trained on an in-memory DataFrame; pass the same data with --data FILE"):
        reproduce(result.run_id, uri=store_uri)
    assert reproduce(result.run_id, mixed_frame, uri=store_uri).identical


def test_cli_reproduce_exit_codes(recorded, store_uri, capsys):
    from tests.test_cli import strata as cli

    result, table = recorded
    code, out, _ = cli(capsys, "reproduce", result.run_id[:8], "--tracking-uri", store_uri)
    assert code == 0 and "reproduced: every metric and the weights are identical" in out
    table.write_text(table.read_text().replace("red", "RED", 1))
    code, _, err = cli(capsys, "reproduce", result.run_id[:8], "--tracking-uri", store_uri)
    assert code == 1 and "has changed since run" in err and len(err.strip().splitlines()) == 1


def test_reproduce_runs_in_a_fresh_process(recorded, store_uri):
    """The check users run later, elsewhere: another interpreter, the same store."""
    import subprocess

    result, _ = recorded
    code = f"import strata; print(strata.reproduce({result.run_id!r}, uri={store_uri!r}).identical)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "True", done.stderr[-1500:]


def test_recipe_file_recorded_with_the_run_is_the_resolved_one(recorded, client, tmp_path):
    result, _ = recorded
    local = client.download_artifacts(result.run_id, "recipe.yaml", str(tmp_path))
    assert strata.Recipe.from_dict(yaml.safe_load(Path(local).read_text())) == result.model.recipe
