"""The `strata` command. Thin: each command calls one public function; heavy imports happen inside."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Strata: from raw data to a trained, evaluated, versioned deep-learning model, reproducibly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a recipe key, e.g. --set train.optimizer.lr=0.003 (repeatable)."),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]


@app.command()
def train(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    overrides: SetOption = None,
    out: Annotated[Path | None, typer.Option(help="Bundle folder [default: models/<recipe name>].")] = None,
    data: Annotated[Path | None, typer.Option(help="Data file to use instead of the recipe's data source.")] = None,
    quiet: Quiet = False,
) -> None:
    """Train a model from a recipe, print its metrics and save the bundle."""
    from strata.api import train as run
    from strata.recipe import Recipe

    spec = Recipe.from_yaml(recipe, overrides or [])
    run(spec, data=data, out=out or Path("models") / spec.display_name, quiet=quiet)


@app.command()
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `strata train`.")],
    data: Annotated[Path, typer.Argument(help="Labelled CSV or Parquet file (with the target column).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
) -> None:
    """Score a saved model on labelled data."""
    import json

    from strata._console import Reporter
    from strata.api import load

    model = load(bundle)
    metrics = model.evaluate(data)
    if as_json:
        print(json.dumps(metrics, indent=1))
    else:
        Reporter().metrics({data.name: metrics}, model.classes)


@app.command()
def predict(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `strata train`.")],
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file with the model's input columns.")],
    out: Annotated[
        Path | None, typer.Option(help="Write predictions here (.csv or .parquet) [default: stdout].")
    ] = None,
    id_column: Annotated[str | None, typer.Option("--id", help="Copy this column into the output.")] = None,
) -> None:
    """Predict with a saved model: a `prediction` column, and `proba_<class>` columns for classifiers."""
    from strata.api import load
    from strata.bundle import as_frame
    from strata.errors import DataError

    model = load(bundle)
    frame = as_frame(data)
    if id_column is not None and id_column not in frame.columns:
        raise DataError(f"--id: column '{id_column}' is not in '{data}'")
    result = model.predict_frame(frame)
    if id_column is not None:
        result.insert(0, id_column, frame[id_column])
    if out is None:
        result.to_csv(sys.stdout, index=False)
        return
    _write_table(result, out)
    typer.echo(f"wrote {len(result)} predictions to {out}")


def _write_table(frame: object, out: Path) -> None:
    """Write CSV or Parquet by suffix, through a temporary file so a failure leaves no half file."""
    import os

    from strata.errors import DataError

    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise DataError(f"--out '{out}': expected a .csv or .parquet file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    frame.to_csv(tmp, index=False) if suffix == ".csv" else frame.to_parquet(tmp, index=False)  # type: ignore[attr-defined]
    os.replace(tmp, out)


@app.command()
def datasets() -> None:
    """List the datasets that ship with Strata's dependencies (usable offline as data.dataset)."""
    from rich.console import Console
    from rich.table import Table

    from strata.data.datasets import DATASETS

    table = Table(title="Bundled datasets (data.dataset: NAME)", title_justify="left")
    for col in ("name", "rows", "columns", "task", "target", "source"):
        table.add_column(col, justify="right" if col in ("rows", "columns") else "left")
    for d in DATASETS.values():
        frame = d.load()
        table.add_row(d.name, str(len(frame)), str(frame.shape[1] - 1), d.task, d.target, d.source)
    Console().print(table)


@app.command()
def init(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file to build a recipe for.")],
    target: Annotated[str, typer.Option(help="Column to predict.")],
    out: Annotated[Path | None, typer.Option(help="Recipe file to write [default: <data name>.yaml].")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing recipe file.")] = False,
) -> None:
    """Write a starter recipe from the columns and types inferred from a data file."""
    from strata.starter import starter_recipe

    out = out or data.with_suffix(".yaml")
    if out.exists() and not force:
        from strata.errors import StrataError

        raise StrataError(f"'{out}' already exists; pass --force to overwrite it or --out to choose another name")
    out.write_text(starter_recipe(data, target, recipe_dir=out.parent))
    typer.echo(f"wrote {out}; train it with: strata train {out}")


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
