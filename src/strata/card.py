"""Model cards: a Markdown page that says what a model is, what it was trained on, how well it does
(overall and on slices of the data), how it was trained, and in what environment.

Written into every bundle as `model_card.md`, logged with every tracked run, and set as the
description of every registered model version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strata.errors import plural
from strata.evaluation.metrics import FORECAST

if TYPE_CHECKING:
    from strata.bundle import TrainedModel

CLASSIFICATION = ("accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc", "pr_auc", "log_loss",
                  "brier", "ece")  # fmt: skip
REGRESSION = ("mae", "rmse", "r2", "mape", "median_ae")


def render(model: TrainedModel, version: dict[str, Any] | None = None, spread: dict[str, Any] | None = None) -> str:
    """The card. `version`: {"name", "version", "semver", "reason"} of a registered model version;
    `spread`: {metric: {"mean", "std", "ci_low", "ci_high", "n"}} from runs with several seeds."""
    meta, recipe = model.meta, model.recipe
    sections = [
        _details(model, version),
        _stated("Intended use", recipe.card.intended_use, "card.intended_use"),
        _stated("Limitations", recipe.card.limitations, "card.limitations"),
        _data(model),
        _evaluation(model, spread),
        _procedure(model),
        _environment(meta),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return _number(value)
    return str(value).replace("|", "\\|")


def _number(value: float) -> str:
    """Four decimals for scores and shares (1.0000, not 1); four significant digits otherwise."""
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.4g}"


def _details(model: TrainedModel, version: dict[str, Any] | None) -> str:
    meta, cfg = model.meta, model.recipe.model
    title = f"# Model card: {version['name'] if version else meta.get('name', model.recipe.display_name)}"
    rows = [
        ["task", model.task],
        ["architecture", _architecture(cfg)],
        ["parameters", f"{meta.get('n_parameters', 0):,}"],
        ["inputs", plural(len(model.pipeline.columns), "column")],
        [
            "outputs",
            ", ".join(map(str, model.classes)) if model.classes else ", ".join(model.pipeline.target["columns"]),
        ],
    ]
    if version:
        rows.append(["registered", f"{version['name']} version {version['version']} (semver {version['semver']})"])
    if meta.get("run"):
        rows.append(["run", f"{meta['run']['id']} in experiment '{meta['run']['experiment']}'"])
    rows.append(["created", meta.get("created", "")])
    owners = model.recipe.card.owners
    if owners:
        rows.append(["owners", ", ".join(owners)])
    return f"{title}\n\n## Model details\n\n{_table(['', ''], rows)}"


def _architecture(cfg: Any) -> str:
    """`cnn: channels [32, 64], kernel 3, ...`: every setting of the model section but transfer's."""
    settings = cfg.model_dump(exclude={"type", "pretrained", "transfer", "backbone_lr", "unfreeze_every"})
    text = f"{cfg.type}: " + ", ".join(f"{k} {v}" for k, v in settings.items())
    return text + (f"; started from {cfg.pretrained} ({cfg.transfer or 'fine_tune'})" if cfg.pretrained else "")


def _stated(heading: str, text: str | None, key: str) -> str:
    return f"## {heading}\n\n{text.strip() if text else f'Not stated (set `{key}` in the recipe).'}"


def _forecast_data(model: TrainedModel) -> str:
    """A forecast's data: its series, frequency and season, the time cuts and the windows per part."""
    data, plan = model.meta.get("data", {}), model.pipeline.plan
    split = data.get("split", {})
    cuts = ", ".join(f"{k.removesuffix('_start')} from {split[k]}" for k in ("val_start", "test_start") if split.get(k))
    return "\n\n".join([
        "## Training data",
        f"Source: {data.get('source', 'unknown')}; {data.get('series')} series of `{plan['target']}` by "
        f"`{plan['time']}` (frequency {data.get('frequency')}, season {data.get('season')} steps); "
        f"data fingerprint `{model.meta.get('fingerprint', {}).get('data', '?')}`.",
        f"Split by time: {cuts or 'training only'}. Windows of {plan['lookback']} past steps and {plan['horizon']} "
        "to forecast: " + ", ".join(f"{part} {n}" for part, n in data.get("windows", {}).items()) + ".",
        f"Inputs per step: {', '.join(f'`{n}`' for n in plan['features'])}.",
    ])  # fmt: skip


def _data(model: TrainedModel) -> str:
    if model.task == "forecast":
        return _forecast_data(model)
    data = model.meta.get("data", {})
    rows = model.meta.get("rows", {})
    parts = [
        "## Training data",
        f"Source: {data.get('source', 'unknown')}; rows: "
        + ", ".join(f"{part} {count}" for part, count in rows.items())
        + f"; data fingerprint `{model.meta.get('fingerprint', {}).get('data', '?')}`.",
        _table(["feature", "type"], [[c["name"], c["kind"]] for c in model.pipeline.columns]),
    ]
    balance = data.get("target")
    if balance and "counts" in balance:
        total = sum(balance["counts"].values()) or 1
        parts.append(
            "Target classes in the training split:\n\n"
            + _table(["class", "rows", "share"], [[k, v, f"{v / total:.1%}"] for k, v in balance["counts"].items()])
        )
    elif balance:
        parts.append(
            "Target in the training split:\n\n"
            + _table(
                ["target", "mean", "std", "min", "max"],
                [[name, *(s[k] for k in ("mean", "std", "min", "max"))] for name, s in balance["stats"].items()],
            )
        )
    return "\n\n".join(parts)


def _evaluation(model: TrainedModel, spread: dict[str, Any] | None) -> str:
    names = {"regression": REGRESSION, "forecast": FORECAST}.get(model.task, CLASSIFICATION)
    metrics = model.meta.get("metrics", {})
    splits = [s for s in ("val", "test") if s in metrics]
    header = ["metric", *splits]
    rows = [
        [m, *(_with_interval(metrics[s], m) for s in splits)]
        for m in names
        if any(metrics[s].get(m) is not None for s in splits)
    ]
    parts = ["## Evaluation", _table(header, rows) if rows else "No held-out metrics (split.test and split.val are 0)."]
    last = metrics[splits[-1]] if splits else {}
    if "baselines" in last:  # a forecast is only worth using if it beats these
        compared = {"model": last, **last["baselines"]}
        parts.append(
            f"Against the naive and seasonal-naive forecasts of the same {splits[-1]} windows:\n\n"
            + _table(["metric", *compared], [[m, *(v.get(m) for v in compared.values())] for m in FORECAST[:-1]])
        )
    with_ci = next((metrics[s] for s in splits if metrics[s].get("ci")), None)
    if with_ci:
        parts.append(
            f"[low, high]: {with_ci['ci_level']:.0%} percentile bootstrap interval over {with_ci['bootstrap']} "
            "resamples of the split's rows (it reflects the finite test set, not retraining)."
        )
    if spread:
        n = next(iter(spread.values()))["n"]
        parts.append(
            f"Over {n} seeds (mean [95% confidence interval, t-distribution], standard deviation):\n\n"
            + _table(
                ["metric", "mean [95% CI]", "std"],
                [[m, f"{s['mean']:.4g} [{s['ci_low']:.4g}, {s['ci_high']:.4g}]", s["std"]] for m, s in spread.items()],
            )
        )
    for column, levels in model.meta.get("slices", {}).items():
        shown = [m for m in names[:3] if any(v.get(m) is not None for v in levels.values())]
        parts.append(
            f"By `{column}` ({model.meta.get('slice_split', 'test')} split):\n\n"
            + _table(
                [column, "rows", *shown],
                [[level, v["rows"], *(v.get(m) for m in shown)] for level, v in levels.items()],
            )
        )
    return "\n\n".join(parts)


def _with_interval(values: dict[str, Any], name: str) -> Any:
    value, interval = values.get(name), values.get("ci", {}).get(name)
    if value is None or not interval:
        return value
    return f"{_number(value)} [{_number(interval[0])}, {_number(interval[1])}]"


def _verdict(found: dict[str, Any] | None) -> str | None:
    return f"{found['verdict']}: {found['detail']}" if found else None


def _procedure(model: TrainedModel) -> str:
    meta, train = model.meta, model.recipe.train
    opt, schedule = train.optimizer, train.schedule
    stop = train.early_stopping
    rows = [
        ["loss", meta.get("loss")],
        ["optimizer", f"{opt.name}, lr {opt.lr:g}, weight decay {opt.weight_decay:g}"],
        [
            "schedule",
            schedule.name + (f", {schedule.warmup_epochs:g} warm-up epochs" if schedule.warmup_epochs else ""),
        ],
        ["batch size", train.batch_size],
        ["epochs run", f"{meta.get('epochs_run')} of {train.epochs}"],
        [
            "early stopping",
            f"on {stop.monitor}, patience {stop.patience}; best epoch {meta.get('best_epoch')}" if stop else "off",
        ],
        ["stopped because", meta.get("stopped") or "all epochs ran"],
        ["diagnosis", _verdict(meta.get("diagnosis"))],
        [
            "seed",
            f"{model.recipe.seed} (data {meta['seeds']['data']}, model {meta['seeds']['model']}, "
            f"train {meta['seeds']['train']})"
            if meta.get("seeds")
            else model.recipe.seed,
        ],
    ]
    return "## Training procedure\n\n" + _table(["", ""], rows)


def _environment(meta: dict[str, Any]) -> str:
    env = dict(meta.get("versions", {}))
    git = meta.get("git")
    if git:
        env["git commit"] = git["commit"][:12] + (" (uncommitted changes)" if git["dirty"] else "")
    fingerprint = meta.get("fingerprint", {})
    rows = [[k, v] for k, v in env.items()] + [[f"{k} hash", f"`{v}`"] for k, v in fingerprint.items()]
    return "## Environment and fingerprint\n\n" + _table(["", ""], rows)
