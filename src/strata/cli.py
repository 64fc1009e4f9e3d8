"""The `strata` command. Thin: each command calls one public function; heavy imports happen inside."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Strata: from raw data to a trained, evaluated, versioned deep-learning model, reproducibly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", metavar="KEY=VALUE", help="Override a recipe key, e.g. train.optimizer.lr=0.003 (repeatable)."
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
DataFile = Annotated[
    Path | None, typer.Option(help="Data file to use instead of the recipe's data source.", metavar="FILE")
]


def _version(show: bool) -> None:
    if show:
        from strata import __version__

        typer.echo(f"strata {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Strata: from raw data to a trained, evaluated, versioned deep-learning model, reproducibly."""


TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow store to use.",
        show_default="$STRATA_TRACKING_URI, else ./strata-runs",
        metavar="URI",
    ),
]


@app.command()
def train(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.", metavar="RECIPE", show_default=False)],
    overrides: SetOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Bundle folder (with --seeds: a folder of seed-<s> bundles).",
            show_default="models/<recipe name>, models/<recipe name>-seeds",
            metavar="DIR",
        ),
    ] = None,
    data: DataFile = None,
    seeds: Annotated[
        int | None, typer.Option(help="Train with N master seeds and report each metric's spread.", metavar="N")
    ] = None,
    quiet: Quiet = False,
    nproc: Annotated[
        int | None,
        typer.Option(
            help="Train data-parallel in N processes on this machine, through torchrun (docs/scale.md).", metavar="N"
        ),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            help="Go on from the last good checkpoint of an interrupted run: its checkpoint folder "
            "(<out>.checkpoints), its --out, or its run id (docs/training.md).",
            metavar="RUN_OR_DIR",
        ),
    ] = None,
) -> None:
    """Train a model from a recipe; print its metrics and save the bundle."""
    from strata.api import train as run
    from strata.recipe import Recipe

    spec = Recipe.from_yaml(recipe, overrides or [])
    if resume is not None and (seeds is not None or nproc is not None):  # checkpoints are of one single-process run
        from strata.errors import StrataError

        raise StrataError(f"--resume continues one run in one process; leave out {'--seeds' if seeds else '--nproc'}")
    if nproc is not None:  # torchrun starts N processes that run this command without --nproc
        _train_in_processes(nproc, spec, [str(recipe), *(a for o in overrides or [] for a in ("--set", o))],
                            out or Path("models") / spec.display_name, data, seeds, quiet)  # fmt: skip
        return
    if seeds is None:
        run(spec, data=data, out=out or Path("models") / spec.display_name, quiet=quiet, resume=resume)
        return
    from strata.experiments import train_seeds

    # beside the single-run bundle, not inside it: replacing that bundle would take them along
    train_seeds(spec, seeds, data, out=out or Path("models") / f"{spec.display_name}-seeds", quiet=quiet)


def _train_in_processes(
    nproc: int, spec: Any, args: list[str], out: Path, data: Path | None, seeds: int | None, quiet: bool
) -> None:
    """`strata train ARGS` in `nproc` data-parallel processes (strata.distributed)."""
    from strata import distributed
    from strata.errors import StrataError

    if seeds is not None:
        raise StrataError("--nproc trains one model in several processes; leave out --seeds or --nproc")
    distributed.check_recipe(spec)
    args += ["--out", str(out), *(["--data", str(data)] if data else []), *(["--quiet"] if quiet else [])]
    distributed.launch(nproc, args)


@app.command()
def cv(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.", metavar="RECIPE", show_default=False)],
    overrides: SetOption = None,
    folds: Annotated[int, typer.Option(help="Number of folds.", metavar="K")] = 5,
    kind: Annotated[
        str,
        typer.Option(help="auto, kfold, stratified, group, repeated, timeseries (rows in file order).", metavar="KIND"),
    ] = "auto",
    group: Annotated[
        str | None, typer.Option(help="Keep the rows of each value of this column in one fold.", metavar="COLUMN")
    ] = None,
    repeats: Annotated[int, typer.Option(help="Repeat k-fold this many times, reshuffled.", metavar="N")] = 1,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for cv.json, oof.csv and one bundle per fold.", show_default="models/<name>-cv", metavar="DIR"
        ),
    ] = None,
    data: DataFile = None,
    quiet: Quiet = False,
) -> None:
    """Cross-validate a recipe: the pipeline and the network fitted inside each fold; per-fold
    metrics, their mean, standard deviation and 95% interval, and out-of-fold predictions."""
    from strata._console import Reporter
    from strata.crossval import cross_validate
    from strata.recipe import Recipe

    spec = Recipe.from_yaml(recipe, overrides or [])
    folder = out or Path("models") / f"{spec.display_name}-cv"
    result = cross_validate(spec, data, folds=folds, kind=kind, group=group, repeats=repeats, quiet=quiet,
                            out=folder)  # fmt: skip
    report = Reporter(quiet)
    report.spread(result.summary, f"{result.kind} cross-validation, held-out", over="folds")
    report.note(f"per-fold metrics: {folder / 'cv.json'}; out-of-fold predictions: {folder / 'oof.csv'}")


@app.command()
def tune(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file with a tune: section.", metavar="RECIPE")],
    overrides: SetOption = None,
    jobs: Annotated[int, typer.Option(help="Worker processes working on the study.", metavar="N")] = 1,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna storage URL shared by workers or machines.",
            show_default="sqlite:///strata-runs/optuna.db",
            metavar="URL",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for best.yaml, best/, trials/ and the plots.", show_default="models/<name>-tune", metavar="DIR"
        ),
    ] = None,
    data: DataFile = None,
    quiet: Quiet = False,
) -> None:
    """Search the recipe's tune.space with Optuna; an interrupted study resumes where it stopped."""
    from strata.recipe import Recipe
    from strata.search import tune as search

    search(Recipe.from_yaml(recipe, overrides or []), data, jobs=jobs, storage=storage, out=out, quiet=quiet)


@app.command()
def compare(
    a: Annotated[str, typer.Argument(help="A recipe (.yaml) or a trained model (bundle, models:/...).", metavar="A")],
    b: Annotated[str, typer.Argument(help="The other one, of the same kind.", metavar="B")],
    data: Annotated[
        Path | None,
        typer.Option(help="Labelled data: required for two models, optional for recipes.", metavar="FILE"),
    ] = None,
    folds: Annotated[int, typer.Option(help="Folds, when comparing two recipes.", metavar="K")] = 5,
    metric: Annotated[
        str | None, typer.Option(help="Metric to compare.", show_default="accuracy or rmse", metavar="NAME")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Is B better than A? Two recipes: cross-validated on the same folds, corrected resampled t-test.
    Two models: McNemar's test and a paired bootstrap on one labelled table."""
    from strata.comparison import compare_models, compare_recipes
    from strata.errors import StrataError

    recipes = [x.endswith((".yaml", ".yml")) for x in (a, b)]
    if all(recipes):
        found = compare_recipes(a, b, data, folds=folds, metric=metric, quiet=quiet)
        typer.echo(" ".join(f"{k}: " + ", ".join(f"{v:.4g}" for v in vs) for k, vs in found["scores"].items()))
    elif any(recipes):
        raise StrataError("compare: give two recipes (.yaml) or two trained models, not one of each")
    elif data is None:
        raise StrataError("compare: two trained models are compared on labelled rows; give --data FILE")
    else:
        found = compare_models(a, b, data, metric=metric)
        if "verdict_mcnemar" in found:
            typer.echo(found["verdict_mcnemar"])
    typer.echo(found["verdict"])


@app.command()
def ensemble(
    bundles: Annotated[
        list[str], typer.Argument(help="Trained models: bundle folders or models:/NAME@ALIAS.", metavar="MODEL...")
    ],
    out: Annotated[Path, typer.Option(help="Folder for the ensemble (a bundle like any other).", metavar="DIR")],
    method: Annotated[str, typer.Option(help="mean (probabilities or values) or vote (labels).", metavar="M")] = "mean",
) -> None:
    """Combine trained models (e.g. the seed-<s> bundles of --seeds, a study's trials, cv's folds) into one."""
    from strata.ensemble import Ensemble

    path = Ensemble.from_bundles(bundles, method).save(out)
    typer.echo(f"ensemble of {len(bundles)} models ({method}) saved to {path}")


@app.command()
def bag(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.", metavar="RECIPE")],
    out: Annotated[Path, typer.Option(help="Folder for the bagged ensemble.", metavar="DIR")],
    n: Annotated[int, typer.Option(help="Members, each trained on a bootstrap resample.", metavar="N")] = 5,
    overrides: SetOption = None,
) -> None:
    """Bagging: train N models on bootstrap resamples of the data and average them."""
    from strata.ensemble import bagging
    from strata.recipe import Recipe

    spec = Recipe.from_yaml(recipe, overrides or [])
    bagging(spec, n=n, seed=spec.seed, out=out)
    typer.echo(f"bagged ensemble of {n} models saved to {out}")


@app.command()
def stack(
    recipes: Annotated[list[Path], typer.Argument(help="Two or more recipes on the same data.", metavar="RECIPE...")],
    out: Annotated[Path, typer.Option(help="Folder for the stacked ensemble.", metavar="DIR")],
    folds: Annotated[int, typer.Option(help="Folds for the out-of-fold predictions.", metavar="K")] = 5,
) -> None:
    """Stacking: a logistic (or ridge) meta-model over the recipes' out-of-fold predictions."""
    from strata.ensemble import stack as stacked
    from strata.recipe import Recipe

    stacked([Recipe.from_yaml(r) for r in recipes], folds=folds, out=out)
    typer.echo(f"stacked ensemble of {len(recipes)} models saved to {out}")


@app.command()
def export(
    bundle: Annotated[str, typer.Argument(help="Bundle folder or models:/NAME@ALIAS.", metavar="MODEL")],
    out: Annotated[Path, typer.Option(help="Folder for the exported model.", metavar="DIR")],
    fmt: Annotated[str, typer.Option("--format", help="onnx or torchscript.", metavar="FORMAT")] = "onnx",
    data: Annotated[
        Path | None,
        typer.Option(help="Rows to check the export on (default: generated valid inputs).", metavar="FILE"),
    ] = None,
) -> None:
    """Export the network (dynamic batch axis) with its JSON pipeline; outputs are checked against
    PyTorch's within 1e-5 before anything is written."""
    from strata.api import load
    from strata.export import export as run

    model = load(bundle)
    rows = model.read(data) if data is not None else None
    found = run(model, fmt, out, rows=rows)
    parity = found["parity"]
    typer.echo(
        f"exported {fmt} to {out}: outputs within {parity['max_abs_diff']:.2g} of PyTorch's on {parity['rows']} rows"
    )


@app.command()
def serve(
    model: Annotated[
        str, typer.Argument(help="Bundle folder, exported ONNX folder, or models:/NAME@ALIAS.", metavar="MODEL")
    ],
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    backend: Annotated[str, typer.Option(help="torch, or onnx (exports on start when given a bundle).")] = "torch",
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Require this environment variable's value in the X-API-Key header.", metavar="VAR"),
    ] = None,
    max_body: Annotated[int, typer.Option(help="Largest request body, in bytes.", metavar="BYTES")] = 1_000_000,
    workers: Annotated[int, typer.Option(help="Server processes on the port (each loads the model).")] = 1,
) -> None:
    """Serve predictions over HTTP: POST /predict, GET /health, /metadata, /monitor, /docs."""
    from strata.serving import serve as run

    run(model, host=host, port=port, api_key_env=api_key_env, max_body_bytes=max_body, backend=backend,
        workers=workers)  # fmt: skip


@app.command()
def drift(
    bundle: Annotated[str, typer.Argument(help="Bundle folder or models:/NAME@ALIAS.", metavar="MODEL")],
    data: Annotated[Path, typer.Argument(help="New rows (CSV or Parquet).", metavar="DATA")],
    out: Annotated[Path | None, typer.Option(help="Write the drift plot here (PNG).", metavar="FILE")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Compare new data (and the model's predictions on it) with the training data: PSI, KS and
    chi-square per feature, the prediction shift, and a verdict."""
    import json

    from strata.api import load
    from strata.drift import offline_drift

    report, png = offline_drift(load(bundle), data)
    if out is not None:
        from strata._files import write_atomically

        write_atomically(out, png)
    if as_json:
        typer.echo(json.dumps(report, indent=1, default=str))
        return
    from strata._console import console

    console().print(report.get("summary") or report.get("verdict"))


@app.command()
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `strata train`.", metavar="BUNDLE")],
    data: Annotated[
        Path, typer.Argument(help="Labelled CSV or Parquet file (with the target column).", metavar="DATA")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
    bootstrap: Annotated[
        int | None,
        typer.Option(help="Resamples for the intervals; 0 for none.", show_default="the recipe's evaluate.bootstrap"),
    ] = None,
) -> None:
    """Score a saved model on labelled data, with bootstrap intervals."""
    import json

    from strata._console import Reporter
    from strata.api import load

    model = load(bundle)
    metrics = model.evaluate(data, bootstrap=bootstrap)
    if as_json:
        print(json.dumps(metrics, indent=1))
    else:
        Reporter().metrics({data.name: metrics}, model.classes)


@app.command()
def predict(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `strata train`.", metavar="BUNDLE")],
    data: Annotated[
        Path,
        typer.Argument(help="CSV or Parquet file with the model's inputs, or a folder of images.", metavar="DATA"),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Write predictions here (.csv or .parquet).", show_default="standard output", metavar="FILE"),
    ] = None,
    id_column: Annotated[
        str | None, typer.Option("--id", help="Copy this column into the output.", metavar="COLUMN")
    ] = None,
) -> None:
    """Predict with a saved model.

    Output columns: `prediction`, and `proba_<class>` per class for classifiers
    (`prediction_<target>` per target for multi-target regression). A forecasting model reads DATA as
    the history and writes the next steps of each series: series, time, step, forecast, lower, upper.
    """
    from strata.api import load
    from strata.errors import DataError

    if out is not None:
        _check_output(out)
    model = load(bundle)
    from strata.batch import predict_file, streamable

    if out is not None and streamable(model, data):  # chunk by chunk: files larger than memory work too
        rows = predict_file(model, data, out, id_column)
        typer.echo(f"wrote {rows} predictions to {out}")
        return
    frame = model.read(data)
    if id_column is not None and id_column not in frame.columns:
        raise DataError(f"--id: column '{id_column}' is not in '{data}'")
    result = model.predict_frame(frame)
    if model.recipe.data.sequences is not None:  # one prediction per sequence, named by its id
        result.insert(0, frame.index.name, frame.index)
    if id_column is not None and model.task != "forecast":  # a forecast's rows are named by series and time
        result.insert(0, id_column, frame[id_column])
    if frame.attrs.get("paths") is not None:  # a folder of images: which file each prediction is for
        result.insert(0, "path", frame.attrs["paths"])
    if out is None:
        result.to_csv(sys.stdout, index=False, float_format="%.6g")
        return
    _write_table(result, out)
    typer.echo(f"wrote {len(result)} predictions to {out}")


def _check_output(out: Path) -> None:
    from strata.errors import StrataError

    if out.suffix.lower() not in (".csv", ".parquet"):
        raise StrataError(f"--out '{out}': expected a .csv or .parquet file name")
    if out.is_dir():
        raise StrataError(f"--out '{out}' is a folder; give a file name")


def _write_table(frame: Any, out: Path) -> None:
    """Write CSV or Parquet by suffix, through a temporary file so a failure leaves no half file."""
    from strata.errors import StrataError

    tmp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False, float_format="%.6g")
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise StrataError(f"cannot write '{out}': {err.strerror or err}") from None


@app.command()
def datasets() -> None:
    """List the bundled datasets (offline; use as data.dataset)."""
    from rich.console import Console
    from rich.table import Table

    from strata.data.datasets import DATASETS

    table = Table(title="Bundled datasets (data.dataset: NAME)", title_justify="left")
    for col in ("name", "rows", "columns", "task", "target", "source"):
        table.add_column(col, justify="right" if col in ("rows", "columns") else "left")
    for d in DATASETS.values():
        frame = d.load()
        roles = [f"{k}: {v}" for k, v in (("time", d.time), ("series", d.series)) if v]
        task = f"{d.task} ({', '.join(roles)})" if roles else d.task
        table.add_row(d.name, str(len(frame)), str(frame.shape[1] - 1), task, d.target, d.source)
    Console().print(table)


@app.command()
def init(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file to build a recipe for.", metavar="DATA")],
    target: Annotated[str, typer.Option(help="Column to predict.", metavar="COLUMN")],
    out: Annotated[
        Path | None, typer.Option(help="Recipe file to write.", show_default="<data name>.yaml", metavar="FILE")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing recipe file.")] = False,
) -> None:
    """Write a starter recipe for a data file, with its inferred column types."""
    from strata._files import write_atomically
    from strata.data.sources import read_table
    from strata.errors import StrataError
    from strata.starter import starter_recipe

    frame = read_table(data)  # first: a missing, empty or unreadable file is the first thing to hear about
    out = out or data.with_suffix(".yaml")
    if out.is_dir():
        raise StrataError(f"--out '{out}' is a folder; give a recipe file name")
    if out.exists() and not force:
        raise StrataError(f"'{out}' already exists; pass --force to overwrite it or --out to choose another name")
    write_atomically(out, starter_recipe(frame, data, target, recipe_path=out))
    typer.echo(f"wrote {out}; train it with: strata train {out}")


@app.command()
def report(
    source: Annotated[
        str, typer.Argument(help="Bundle folder, or a run id (or the start of one).", metavar="RUN_OR_BUNDLE")
    ],
    out: Annotated[Path, typer.Option(help="HTML file to write.", metavar="FILE")] = Path("report.html"),
    tracking_uri: TrackingUri = None,
) -> None:
    """Write the self-contained HTML report of a model: metrics with intervals, plots, diagnosis, recipe."""
    from strata.evaluation.report import write

    typer.echo(f"report written to {write(source, out, tracking_uri)}")


@app.command("lr-find")
def lr_find(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.", metavar="RECIPE", show_default=False)],
    overrides: SetOption = None,
    apply: Annotated[bool, typer.Option("--apply", help="Write the suggested rate into the recipe file.")] = False,
    out: Annotated[Path, typer.Option(help="Plot of loss against learning rate.", metavar="PNG")] = Path("lr_find.png"),
    start: Annotated[float, typer.Option(help="First learning rate.")] = 1e-7,
    end: Annotated[float, typer.Option(help="Last learning rate.")] = 10.0,
    steps: Annotated[int, typer.Option(help="Batches (one learning rate each).")] = 100,
) -> None:
    """Learning-rate range test: train briefly while the rate grows; suggest where the loss falls fastest."""
    from strata._files import write_atomically
    from strata.api import lr_find as range_test
    from strata.evaluation.plots import lr_range
    from strata.recipe import Recipe

    spec = Recipe.from_yaml(recipe, overrides or [])
    found = range_test(spec, start=start, end=end, steps=steps)
    write_atomically(out, lr_range(found.lrs, found.losses, found.suggestion))
    ended = " (stopped early: the loss diverged)" if len(found.lrs) < steps else ""
    typer.echo(f"range test: {len(found.lrs)} batches from lr {start:g} to {found.lrs[-1]:g}{ended}; plot in {out}")
    if found.suggestion is None:
        typer.echo("no suggestion: the loss did not fall clearly; widen --start/--end or raise --steps")
        if apply:
            raise typer.Exit(1)
        return
    typer.echo(f"suggested learning rate: {found.suggestion:.3g} (recipe has {spec.train.optimizer.lr:g})")
    if apply:
        from strata.starter import set_learning_rate

        set_learning_rate(recipe, float(f"{found.suggestion:.3g}"))
        typer.echo(f"wrote train.optimizer.lr: {found.suggestion:.3g} into {recipe}")
    else:
        typer.echo("--apply writes it into the recipe")


runs_app = typer.Typer(help="Look at tracked runs.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
def runs_list(
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.", metavar="NAME")] = None,
    limit: Annotated[int, typer.Option(help="Newest runs to show.", metavar="N")] = 20,
    tracking_uri: TrackingUri = None,
) -> None:
    """List runs, newest first: id, start, name, status and key metrics."""
    from strata.track.views import print_runs

    print_runs(tracking_uri, experiment, limit)


@runs_app.command("show")
def runs_show(
    run: Annotated[str, typer.Argument(help="Run id, or the start of one.", metavar="RUN")],
    tracking_uri: TrackingUri = None,
) -> None:
    """Everything recorded about one run: params, metrics, fingerprint tags, artifacts."""
    from strata.track.views import print_run

    print_run(tracking_uri, run)


@runs_app.command("compare")
def runs_compare(
    runs: Annotated[list[str], typer.Argument(help="Two or more run ids (or their starts).", metavar="RUN...")],
    tracking_uri: TrackingUri = None,
) -> None:
    """Params that differ, and metrics side by side with the best marked."""
    from strata.track.views import print_comparison

    print_comparison(tracking_uri, runs)


@app.command()
def reproduce(
    run: Annotated[str, typer.Argument(help="Run id, or the start of one.", metavar="RUN")],
    data: Annotated[
        Path | None, typer.Option(help="The data, when the run was trained on an in-memory DataFrame.", metavar="FILE")
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="Largest metric difference accepted (e.g. on a GPU); 0 means identical.")
    ] = 0.0,
    tracking_uri: TrackingUri = None,
) -> None:
    """Train a recorded run again and check it gives the same metrics and weights (exit 1 if not)."""
    from strata.experiments import reproduce as again
    from strata.track.views import print_reproduction

    report = again(run, data, tolerance=tolerance, uri=tracking_uri)
    print_reproduction(report)
    if not report.identical:
        raise typer.Exit(1)


@app.command()
def register(
    run: Annotated[str, typer.Argument(help="Run id, or the start of one.", metavar="RUN")],
    name: Annotated[str, typer.Option(help="Registered model name.", metavar="NAME")],
    tracking_uri: TrackingUri = None,
) -> None:
    """Register a run's model as a new version, with a semantic version computed from fingerprints."""
    from strata.track.registry import register as add

    entry = add(run, name, tracking_uri)
    typer.echo(f"registered {entry.name} version {entry.version} (semver {entry.semver}; {entry.reason})")
    typer.echo(f"load it with strata.load('models:/{entry.name}/{entry.version}')")


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.", metavar="NAME")],
    version: Annotated[int, typer.Argument(help="Version number.", metavar="VERSION")],
    alias: Annotated[str, typer.Option(help="Alias to point at the version.", metavar="ALIAS")] = "production",
    tracking_uri: TrackingUri = None,
) -> None:
    """Point an alias (default: production) at a registered model version."""
    from strata.track.registry import promote as point

    point(name, version, alias, tracking_uri)
    typer.echo(f"models:/{name}@{alias} is now version {version}")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from strata.errors import StrataWarning

    if issubclass(category, StrataWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main() -> None:
    """Entry point: a user mistake is one line on stderr and exit status 1, never a traceback."""
    from strata.errors import StrataError

    warnings.showwarning = _show_warning
    try:
        app()
    except StrataError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
