"""Run a `tune:` search with Optuna: open (or resume) a study, run trials in one or more processes,
summarise and plot it.

The objective is `objective(trial) -> float`: it reads its settings with `space.suggest(trial, cfg.space)`,
trains, and returns the metric. To let a pruner stop a poor trial early, call `reporter(trial)(epoch, value)`
after each epoch; it raises `optuna.TrialPruned` when the trial should stop.

Trials are counted in the storage, so a study stopped half-way continues where it left off: reopen it
with the same name and storage, and `run` only adds the trials still missing.

>>> from strata.tuning.space import TuneConfig, suggest
>>> cfg = TuneConfig.from_dict({"space": {"x": {"uniform": [-1, 1]}}, "trials": 5, "strategy": "random"})
>>> study = open_study("doc", "sqlite:///:memory:", cfg, seed=0)
>>> run(study, lambda trial: suggest(trial, cfg.space)["x"] ** 2, cfg)
>>> summary(study)["complete"]
5
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import RecipeError, StrataError
from strata.tuning.space import Param, TuneConfig, decode, encode, grid_size

if TYPE_CHECKING:
    import optuna

DEFAULT_STORAGE = "sqlite:///strata-runs/optuna.db"
Objective = Callable[["optuna.Trial"], float]
Progress = Callable[["optuna.Study", "optuna.trial.FrozenTrial"], None]
_SURPLUS = "strata_surplus"  # a trial started after the budget was already met by other workers


# ------------------------------------------------------------------------------------------ open
def open_study(name: str, storage: str | None, cfg: TuneConfig, seed: int) -> optuna.Study:
    """Create the study `name` in `storage` (default sqlite:///strata-runs/optuna.db), or resume it.

    `seed` is the recipe's seed; `cfg.seed` wins when set. Reopening a study that was run with another
    space, metric or direction is an error: its trials would not be comparable.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # optuna's own logger; the root logger is left alone
    url = storage or DEFAULT_STORAGE
    seed = cfg.seed if cfg.seed is not None else seed
    study = optuna.create_study(
        storage=_storage(url),
        study_name=name,
        sampler=_sampler(cfg, seed),
        pruner=_pruner(cfg),
        direction=cfg.goal,
        load_if_exists=True,
    )
    _same_search(study, name, url, cfg)
    first = study.user_attrs.get("strata_grid_seed")
    if cfg.strategy == "grid" and first is None:
        study.set_user_attr("strata_grid_seed", seed)
    elif cfg.strategy == "grid" and first != seed:  # trial k is the k-th combination of the first run's shuffle
        study.sampler = _sampler(cfg, first)
    elif cfg.strategy != "grid" and study.trials:
        # A resumed random or TPE study must not replay the first run's draws: the seed moves on by
        # the number of trials already made (still deterministic for a given history).
        seed += len(study.trials)
        study.sampler = _sampler(cfg, seed)
    study.set_user_attr("strata_seed", seed)  # the workers of `run` derive theirs from it
    return study


def _load(name: str, url: str, cfg: TuneConfig, index: int) -> optuna.Study:
    """The study as worker `index` of `run` sees it: its own sampler stream (grid: the same shuffle)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    user_attrs = optuna.load_study(study_name=name, storage=_storage(url)).user_attrs
    seed = user_attrs["strata_grid_seed"] if cfg.strategy == "grid" else user_attrs["strata_seed"] + index
    return optuna.load_study(study_name=name, storage=_storage(url), sampler=_sampler(cfg, seed), pruner=_pruner(cfg))


def _storage(url: str) -> Any:
    import optuna

    if not url.startswith("sqlite:///"):
        return url
    path = url.removeprefix("sqlite:///")
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Several worker processes write one SQLite file: wait for the lock instead of failing at once.
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})


def _sampler(cfg: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    if cfg.strategy == "grid":  # the seed shuffles the grid: every worker must use the same one
        return optuna.samplers.GridSampler(_grid_space(cfg.space), seed=seed)
    if cfg.strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _grid_space(space: dict[str, Param]) -> dict[str, list[Any]]:
    """The grid as Optuna stores it: choices JSON-encoded (lists can be choices), ints as they are."""
    return {k: [encode(v) for v in p.values()] if p.kind == "choice" else p.values() for k, p in space.items()}


def _pruner(cfg: TuneConfig) -> optuna.pruners.BasePruner:
    import optuna

    if cfg.pruner == "median":  # a few complete curves first, and never on the first, noisy epochs
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def _same_search(study: optuna.Study, name: str, url: str, cfg: TuneConfig) -> None:
    """Record what the study searches; a resumed study must search the same thing."""
    signature = {
        "space": {k: p.model_dump(mode="json", exclude_none=True) for k, p in cfg.space.items()},
        "metric": cfg.metric,
        "direction": cfg.goal,
    }
    stored = study.user_attrs.get("strata_search")
    if stored is None:
        study.set_user_attr("strata_search", json.loads(json.dumps(signature)))
        return
    same = {k: json.dumps(stored.get(k), sort_keys=True) == json.dumps(v, sort_keys=True) for k, v in signature.items()}
    changed = [k for k, ok in same.items() if not ok]
    if changed:
        raise RecipeError(f"tune: study {name!r} in {url} was run with another {' and '.join(changed)}; "
                          "give the study a new name, or restore the tune section it was run with")  # fmt: skip


# ------------------------------------------------------------------------------------------- run
def run(
    study: optuna.Study,
    objective: Objective,
    cfg: TuneConfig,
    jobs: int = 1,
    progress: Progress | None = None,
    catch: tuple[type[Exception], ...] = (),
) -> None:
    """Run trials until `cfg.trial_count` of them in the study are complete or pruned (a resumed study
    counts its earlier ones), or `cfg.timeout` seconds pass. `progress(study, trial)` is called after
    each trial; exceptions in `catch` mark a trial failed instead of stopping the study.

    With `jobs > 1`, `jobs` processes (spawned, not forked) each load the study from its storage and
    run trials, so the storage must be a database (the default SQLite file works) and `objective` must
    be picklable: a function defined at module level, or a `functools.partial` of one.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    started = time.time()
    if jobs == 1:
        _optimize(study, objective, cfg, started, catch, [_Shown(progress)] if progress else [])
        return
    _run_parallel(study, objective, cfg, jobs, progress, catch, started)


def _optimize(study: optuna.Study, objective: Objective, cfg: TuneConfig, started: float,
              catch: tuple[type[Exception], ...], callbacks: list[Progress]) -> None:  # fmt: skip
    budget = _Budget(cfg, started)
    if budget.met(study):
        return
    study.optimize(
        _Guarded(objective, cfg, budget), timeout=cfg.timeout, catch=catch, callbacks=[budget.stop_when_met, *callbacks]
    )


class _Budget:
    """When to stop: `trials` complete or pruned, counting trials that other workers are running now
    (started in this run: a trial left running by a killed earlier run never finishes)."""

    def __init__(self, cfg: TuneConfig, started: float):
        self.trials = cfg.trial_count
        self.started = started

    def taken(self, study: optuna.Study, before: int | None = None) -> int:
        from optuna.trial import TrialState

        count = 0
        for t in study.get_trials(deepcopy=False):
            if (before is not None and t.number >= before) or t.user_attrs.get(_SURPLUS):
                continue
            running = t.state == TrialState.RUNNING and _fresh(t, self.started)
            count += t.state in (TrialState.COMPLETE, TrialState.PRUNED) or running
        return count

    def failed(self, study: optuna.Study) -> int:
        from optuna.trial import TrialState

        finished = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        return sum(_fresh(t, self.started) for t in finished)

    def met(self, study: optuna.Study) -> bool:
        return self.taken(study) >= self.trials

    def stop_when_met(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        # Also stop when as many trials failed in this run as were asked for: the space is broken.
        if self.met(study) or self.failed(study) >= self.trials:
            study.stop()


def _fresh(trial: optuna.trial.FrozenTrial, started: float) -> bool:
    """Whether the trial started in this call of `run` (its clock is the storage's: local time)."""
    return trial.datetime_start is not None and trial.datetime_start.timestamp() >= started


class _Guarded:
    """The objective, skipped for a trial that two workers started at once when one trial was left.

    A skipped trial samples nothing, is marked surplus and counts nowhere (grid points included: a
    grid trial numbered past the grid would repeat a combination)."""

    def __init__(self, objective: Objective, cfg: TuneConfig, budget: _Budget):
        self.objective = objective
        self.budget = budget
        # GridSampler gives trial k the k-th combination for k below the grid's size (the same shuffle
        # in every worker); a trial numbered beyond it can only repeat one.
        self.last = grid_size(cfg.space) if cfg.strategy == "grid" else None

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        beyond_grid = self.last is not None and trial.number >= self.last
        if beyond_grid or self.budget.taken(trial.study, before=trial.number) >= self.budget.trials:
            trial.set_user_attr(_SURPLUS, True)
            trial.study.stop()
            raise optuna.TrialPruned("the study already has its trials")
        return self.objective(trial)


class _Shown:
    """The user's progress hook, not told about surplus trials."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if not trial.user_attrs.get(_SURPLUS):
            self.progress(study, trial)


def _run_parallel(study: optuna.Study, objective: Objective, cfg: TuneConfig, jobs: int, progress: Progress | None,
                  catch: tuple[type[Exception], ...], started: float) -> None:  # fmt: skip
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    url = _storage_url(study)
    seen: set[int] = set()
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_worker, url, study.study_name, cfg, i, objective, started, catch) for i in range(jobs)]
        pending = set(futures)
        while pending:  # show each trial as it finishes, whichever worker ran it
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            _report_new(study, progress, seen, started)
            for future in done:
                future.result()  # a worker's exception, raised here
    _report_new(study, progress, seen, started)


def _storage_url(study: optuna.Study) -> str:
    storage = study._storage  # optuna keeps no public handle on a study's storage
    url = getattr(getattr(storage, "_backend", storage), "url", None)
    if not url or url.endswith(":memory:"):
        raise StrataError("jobs > 1 needs a database storage that all processes can open, such as "
                          f"{DEFAULT_STORAGE}; this study is in memory")  # fmt: skip
    return url


def _worker(url: str, name: str, cfg: TuneConfig, index: int, objective: Objective, started: float,
            catch: tuple[type[Exception], ...]) -> None:  # fmt: skip
    """One worker process of `run`."""
    _optimize(_load(name, url, cfg, index), objective, cfg, started, catch, [])


def _report_new(study: optuna.Study, progress: Progress | None, seen: set[int], started: float) -> None:
    if progress is None:
        return
    for trial in study.get_trials(deepcopy=False):
        new = trial.number not in seen and _fresh(trial, started) and trial.state.is_finished()
        if new and not trial.user_attrs.get(_SURPLUS):
            seen.add(trial.number)
            progress(study, trial)


# ---------------------------------------------------------------------------------------- pruning
def reporter(trial: optuna.Trial) -> Callable[[int, float], None]:
    """`report(step, value)` for a training loop: records the metric at `step` (an epoch) and raises
    `optuna.TrialPruned` when the study's pruner says this trial is worse than the others were."""

    def report(step: int, value: float) -> None:
        import optuna

        trial.report(float(value), step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} with {value:g}")

    return report


# ----------------------------------------------------------------------------------------- results
def decoded_params(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A trial's settings as recipe values ({dotted key: value}): choices decoded back to lists and the like."""
    from optuna.distributions import CategoricalDistribution

    return {
        k: decode(v) if isinstance(trial.distributions[k], CategoricalDistribution) else v
        for k, v in trial.params.items()
    }


def summary(study: optuna.Study) -> dict[str, Any]:
    """Best value and settings, and how many trials completed, were pruned or failed."""
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(_SURPLUS)]
    counts = {state: sum(t.state == state for t in trials) for state in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = study.best_trial if complete else None
    return {
        "study": study.study_name,
        "metric": study.user_attrs.get("strata_search", {}).get("metric"),
        "direction": study.direction.name.lower(),
        "best_value": best.value if best else None,
        "best_params": decoded_params(best) if best else None,
        "best_trial": best.number if best else None,
        "complete": counts[TrialState.COMPLETE],
        "pruned": counts[TrialState.PRUNED],
        "failed": counts[TrialState.FAIL],
        "running": counts[TrialState.RUNNING],
    }


def plots(study: optuna.Study) -> dict[str, bytes]:
    """PNGs of the optimisation history, the parameters' importances (with two or more parameters and
    at least four complete trials) and the parallel coordinates; {} before any trial completes."""
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as vis

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return {}
    draw = {"optimization_history.png": vis.plot_optimization_history}
    if len(complete[0].params) >= 2 and len(complete) >= 4:
        draw["param_importances.png"] = vis.plot_param_importances
    draw["parallel_coordinate.png"] = vis.plot_parallel_coordinate
    out = {}
    for name, plot in draw.items():
        try:
            out[name] = _render(plot, study)
        except (ValueError, RuntimeError, ZeroDivisionError):  # importances of identical values, say
            continue
    return out


def _render(plot: Callable[[Any], Any], study: optuna.Study) -> bytes:
    """Draw with Optuna's matplotlib plots and print to PNG on an Agg canvas; the user's backend is not changed."""
    import io

    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        axes = plot(study)
    fig = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
    try:
        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        return buf.getvalue()
    finally:
        plt.close(fig)
