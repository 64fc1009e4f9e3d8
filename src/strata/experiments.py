"""Work over several runs: one recipe with several seeds, and re-running a recorded run."""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import DataError, StrataError

if TYPE_CHECKING:
    import pandas as pd

    from strata.api import TrainResult
    from strata.recipe import Recipe


# ---------------------------------------------------------------------------------- many seeds
# tags of a seed run that hold for all of them, copied onto the parent run
SHARED_TAGS = ("strata.version", "strata.data_hash", "strata.schema_hash", "strata.task", "mlflow.source.git.commit",
               "strata.git_dirty")  # fmt: skip


@dataclass
class SeedsResult:
    results: list[TrainResult]
    summary: dict[str, dict[str, float]]  # metric -> {"mean", "std", "ci_low", "ci_high", "n"}
    part: str  # the split the summary is of: "test", or "val" when there is no test split
    run_id: str | None  # the parent run, when tracked


def spread(results: list[TrainResult]) -> tuple[str, dict[str, dict[str, float]]]:
    """Mean, standard deviation and 95% t-interval of every headline metric over the runs."""
    from strata.evaluation.metrics import HEADLINE
    from strata.evaluation.stats import mean_ci

    part = "test" if "test" in results[0].metrics else "val"
    summary = {}
    for name in HEADLINE:
        values = [r.metrics.get(part, {}).get(name) for r in results]
        if all(isinstance(v, float) for v in values):
            summary[name] = mean_ci(values)
    return part, summary


def train_seeds(
    recipe: Recipe | dict[str, Any] | str | Path,
    seeds: int,
    data: pd.DataFrame | str | Path | None = None,
    *,
    out: str | Path | None = None,
    quiet: bool = False,
) -> SeedsResult:
    """Train with master seeds seed, seed+1, ... seed+n-1; report each metric's mean, standard
    deviation and 95% confidence interval. Tracked runs are children of one parent run, which
    holds the summary. Bundles go to `out/seed-<s>` when `out` is given."""
    from strata import api
    from strata._console import Reporter

    recipe = api.as_recipe(recipe)
    if seeds < 2:
        raise StrataError(f"--seeds {seeds}: give at least 2 seeds to measure the spread between them")
    report = Reporter(quiet)
    parent = _parent_run(recipe, api.data_source(recipe, data), seeds) if recipe.track.enabled else None
    try:
        results = []
        for seed in range(recipe.seed, recipe.seed + seeds):
            result = api.train(recipe.override({"seed": seed}), data, quiet=True,
                               out=Path(out) / f"seed-{seed}" if out is not None else None,
                               parent_run=parent.id if parent else None)  # fmt: skip
            results.append(result)
            part = "test" if "test" in result.metrics else "val"
            headline = {k: v for k, v in result.metrics.get(part, {}).items() if k in ("accuracy", "f1", "r2", "rmse")}
            report.note(f"seed {seed}: {part} " + ", ".join(f"{k} {v:.4f}" for k, v in headline.items()))
        part, summary = spread(results)
    except BaseException:
        if parent is not None:
            with contextlib.suppress(Exception):
                parent.finish("FAILED")
        raise
    if parent is not None:
        _close_parent(parent, results[0], part, summary)
    report.spread(summary, part)
    return SeedsResult(results, summary, part, parent.id if parent else None)


def _parent_run(recipe: Recipe, source: str, seeds: int) -> Any:
    from strata.track.run import TrackedRun
    from strata.track.store import Store

    store = Store.open(recipe.track.uri)
    tags = {"strata.seeds": str(seeds), "strata.data_source": source, "strata.train_hash": recipe.hash(seed=False),
            **recipe.track.tags}  # fmt: skip
    parent = TrackedRun.start(
        store, recipe.track.experiment or recipe.display_name, f"{recipe.display_name} x{seeds}", tags
    )
    parent.log_params({k: v for k, v in recipe.flat().items() if k != "seed"})
    return parent


def _close_parent(parent: Any, first: TrainResult, part: str, summary: dict[str, dict[str, float]]) -> None:
    from strata import card

    parent.log_metrics({f"{part}_{m}_{stat}": s[stat] for m, s in summary.items()
                        for stat in ("mean", "std", "ci_low", "ci_high")})  # fmt: skip
    parent.set_tags(_shared_tags(parent, first.run_id))
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "model_card.md"
        page.write_text(card.render(first.model, spread=summary))
        parent.log_artifacts(page)
    parent.finish()


def _shared_tags(parent: Any, child_id: str | None) -> dict[str, str]:
    """The fingerprint tags every seed run shares (data, schema, task, environment, git), from the first."""
    from strata.track.store import _explained

    if child_id is None:
        return {}
    with _explained(f"cannot read run {child_id[:12]}"):
        tags = parent.client.get_run(child_id).data.tags
    return {k: v for k, v in tags.items() if k in SHARED_TAGS or k.startswith("strata.env.")}


# ---------------------------------------------------------------------------------- reproduce
@dataclass
class Reproduction:
    original: str  # run ids
    rerun: str | None
    rows: list[tuple[str, Any, Any, bool]] = field(default_factory=list)  # (what, then, now, accepted)
    tolerance: float = 0.0

    @property
    def identical(self) -> bool:
        """Every value accepted: equal, or (with a tolerance) within it; a differing weights hash is
        accepted only with a tolerance, and is still shown as differing."""
        return all(same for *_, same in self.rows)


def reproduce(
    run_ref: str, data: pd.DataFrame | str | Path | None = None, *, tolerance: float = 0.0, uri: str | None = None
) -> Reproduction:
    """Train a recorded run again from its recipe and compare: the data must hash the same, then the
    final metrics (exactly, or within `tolerance`) and the weights (bit for bit) are compared."""
    import torch

    from strata import api
    from strata.bundle import load
    from strata.track.store import Store

    store = Store.open(uri)
    run = store.model_run(run_ref, "reproduce")
    tags = run.data.tags
    with tempfile.TemporaryDirectory() as tmp:
        recipe = load(store.download(run.info.run_id, "bundle", Path(tmp))).recipe
    frame = _same_data(run.info.run_id, tags, data, recipe)
    source = tags.get("strata.data_source", "")
    if data is None and source.startswith("file:"):
        data = Path(source[5:])  # read again from the same file, so the new run records the same source
    recipe = recipe.override({"track.uri": store.uri, "track.experiment": _experiment(store, run)})
    threads = int(tags.get("strata.env.torch_threads", torch.get_num_threads()))
    with _threads(threads):  # the recorded thread count: sums are added up in the same order
        again = api.train(recipe, frame if data is not None and not isinstance(data, str | Path) else data,
                          quiet=True, run_tags={"strata.reproduces": run.info.run_id})  # fmt: skip
    return _compare(store, run, again.run_id, tolerance)


def _experiment(store: Any, run: Any) -> str:
    return store.client.get_experiment(run.info.experiment_id).name


def _same_data(run_id: str, tags: dict[str, str], data: Any, recipe: Recipe) -> pd.DataFrame:
    """The recorded run's table, checked against its data hash; a DataError names the file otherwise."""
    from strata.data.datasets import load_dataset
    from strata.data.sources import frame_hash, read_table, tidy_columns

    source = tags.get("strata.data_source", "")
    if data is not None:
        where = "the data given"
        frame = data if not isinstance(data, str | Path) else read_table(data, recipe.data.format)
    elif source.startswith("file:"):
        where = f"data file '{source[5:]}'"
        frame = read_table(source[5:], recipe.data.format)
    elif source.startswith("dataset:"):
        where = f"bundled dataset '{source[8:]}'"
        frame = load_dataset(source[8:])
    elif source.startswith("images:"):
        from strata.data.sources import image_frame

        where = f"images '{source[7:]}'"
        frame = image_frame(recipe.data.model_copy(update={"images": source[7:]}))
    else:
        raise DataError(f"run {run_id[:12]} was trained on an in-memory DataFrame; pass the same data with --data FILE")
    frame = tidy_columns(frame, where)
    now, then = frame_hash(frame), tags.get("strata.data_hash")
    if now != then:
        raise DataError(f"{where} has changed since run {run_id[:12]} was trained (content hash {now}, "
                        f"recorded {then}); reproducing needs the same data")  # fmt: skip
    return frame


@contextlib.contextmanager
def _threads(count: int) -> Any:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _compare(store: Any, run: Any, rerun_id: str | None, tolerance: float) -> Reproduction:
    """Every final metric of the two runs side by side (the last epoch's losses and learning rate, the
    validation and test metrics), then the weights hash."""
    again = store.client.get_run(rerun_id)
    then, now = run.data.metrics, again.data.metrics
    report = Reproduction(run.info.run_id, rerun_id, tolerance=tolerance)
    for key in sorted(then.keys() | now.keys()):
        a, b = then.get(key), now.get(key)
        report.rows.append((key, a, b, a is not None and b is not None and abs(a - b) <= tolerance))
    weights = run.data.tags.get("strata.weights_hash"), again.data.tags.get("strata.weights_hash")
    report.rows.append(("weights hash", weights[0], weights[1], tolerance > 0 or weights[0] == weights[1]))
    return report
