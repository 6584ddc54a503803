"""optuna as walk-forward's in-sample optimiser: one TPE study per window, kept next to the store so runs resume.

Each window is its own study (a study spanning windows would let later windows' in-sample data, which is earlier
windows' out-of-sample data, steer earlier choices). A trial evaluates its parameters over the window's in-sample +
out-of-sample span in one pass (as random/grid search does); its objective is the robust in-sample score
(engine.backtest.robust: mean minus one standard error of the Sharpe over 4 contiguous in-sample folds, annualised),
so the out-of-sample part never reaches the sampler. The sampler is a multivariate TPE (joint over the parameters);
each fold's running mean Sharpe is reported as an intermediate value and a MedianPruner stops a trial whose running
mean falls below the median of earlier trials at that fold (a pruned trial is not selectable, but it was run: it is a
trial in the registry). Proposals that repeat an evaluated configuration, or that the strategy rejects (e.g. fast >=
slow), are told to optuna as FAIL and not evaluated: they are not trials, and the registry's count of in-sample
trials equals the number of COMPLETE + PRUNED optuna trials. The kernel runs the whole span in one pass, so pruning
saves the sampler's attention (pruned trials rank below complete ones), not kernel time.

Storage: optuna's RDBStorage on the store's database. Its tables (`studies`, `trials`, ...) clash with state.db's own
`trials` table, so on SQLite the studies live in the sibling file `<state>.optuna.db`; on a server database they
live in the schema `optuna` of the same database. Windows run as independent studies (in parallel across windows
through the walk-forward backend); each study runs its trials sequentially in an in-memory copy that is written to
the RDB study afterwards, so one seed gives one result and no two processes write SQLite at once.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

OPTUNA_SCHEMA = "optuna"


@dataclass
class WindowSearch:
    """One window's study: its name, the distinct evaluated parameter sets and their IS / OOS per-bar returns."""

    window: int
    study_name: str
    params: list[dict] = field(default_factory=list)
    returns: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    new_trials: list[Any] = field(default_factory=list)  # optuna FrozenTrials created by this run
    resumed: int = 0  # COMPLETE or PRUNED trials found in the stored study
    pruned: list[bool] = field(default_factory=list)  # per evaluated parameter set: stopped by the pruner


def check_in_space(strategy_cls: type, params: Mapping[str, Any]) -> None:
    """Reject a starting point whose values are not inside the strategy's search space, naming the space."""
    space = strategy_cls.param_space()
    desc = "; ".join(f"{k}: {_describe(s)}" for k, s in space.items())
    for key, value in params.items():
        if key not in space:
            raise ValueError(f"{strategy_cls.name}: parameter {key!r} is not in the search space ({desc})")
        if not space[key].contains(value):
            raise ValueError(f"{strategy_cls.name}: {key}={value!r} is outside its search space {_describe(space[key])}"
                             f" (space: {desc})")


def _describe(spec: Any) -> str:
    if spec.kind == "choice":
        return f"one of {list(spec.choices)}"
    return f"{spec.kind} in [{spec.low:g}, {spec.high:g}]" + (" (log-scaled)" if spec.log else "")


def storage_url(store: Any) -> tuple[str, dict]:
    """The optuna RDB URL and engine kwargs for a store: a sibling `.optuna.db` on SQLite, schema `optuna` otherwise."""
    if store.path is not None:
        path = store.path.with_name(f"{store.path.stem}.optuna.db")
        if not path.exists():
            path.touch(mode=0o600)
        return f"sqlite:///{path}", {"connect_args": {"timeout": 30}}
    with store.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}")
    return store.url, {"connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"}, "pool_pre_ping": True}


def open_storage(store: Any) -> Any:
    """optuna RDBStorage for the store (see storage_url)."""
    import optuna

    url, kwargs = storage_url(store)
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def study_prefix(strategy: str, dataset_hash: str, identity: Mapping[str, Any]) -> str:
    """Study name stem: strategy, dataset hash and a short hash of what else changes a trial's value."""
    ident = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"walkforward/{strategy}/{dataset_hash[:16]}/{ident}"


def study_name(prefix: str, window: Any) -> str:
    """A window's study name: the prefix plus the window's number and bar positions."""
    return f"{prefix}/w{window.number}:{window.is_start}-{window.oos_start}-{window.oos_end}"


def _suggest(trial: Any, space: Mapping[str, Any]) -> dict:
    out: dict[str, Any] = {}
    for key, spec in space.items():
        if spec.kind == "choice":
            out[key] = trial.suggest_categorical(key, list(spec.choices))
        elif spec.kind == "int":
            out[key] = trial.suggest_int(key, int(spec.low), int(spec.high), log=bool(spec.log))
        else:
            out[key] = trial.suggest_float(key, float(spec.low), float(spec.high), log=bool(spec.log))
    return out


def _key(params: Mapping[str, Any]) -> str:
    return repr(sorted(params.items()))


@dataclass(frozen=True)
class TpeSettings:
    """How a window's TPE study searches: its objective, start-up trials, joint modelling and pruning."""

    objective: str = "robust"  # robust (engine.backtest.robust) or sharpe (plain in-sample Sharpe)
    n_startup: int | None = None  # random trials before TPE models the space; None: startup_trials(budget)
    multivariate: bool = True
    prune: bool = False  # off by default: a trial is one kernel pass, pruning saves no time and loses candidates

    def __post_init__(self) -> None:
        if self.objective not in ("robust", "sharpe"):
            raise ValueError(f"tpe objective: must be robust or sharpe, got {self.objective!r}")

    def startup(self, n_trials: int) -> int:
        """The number of start-up trials for a budget."""
        return self.n_startup if self.n_startup is not None else startup_trials(n_trials)


def startup_trials(n_trials: int) -> int:
    """Random trials before TPE models the space (and before the pruner acts): a third of the budget, 5 to 20."""
    return max(5, min(20, n_trials // 3))


def search_window(strategy_cls: type, panel: Mapping[str, Any], window: Any, config: Any, sizer: Any,
                  barriers: Any, n_trials: int, seed: int, fixed: Mapping[str, Any], ppy: float, name: str,
                  previous: list[Any], start_params: Mapping[str, Any] | None,
                  settings: TpeSettings | None = None) -> WindowSearch:
    """Run one window's TPE study in memory until it holds n_trials run (COMPLETE or PRUNED) trials; previous trials
    are resumed."""
    import warnings

    import optuna
    from optuna.trial import TrialState

    from engine.backtest.robust import N_FOLDS, fold_sharpes, robust_score, running_means
    from engine.backtest.sweep_reduce import sharpe_per_bar
    from engine.backtest.windows import evaluate_params, window_market

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {k: v for k, v in strategy_cls.param_space().items() if k not in fixed}
    settings = settings or TpeSettings()
    n_startup = settings.startup(n_trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed * 1009 + window.number, n_startup_trials=n_startup,
                                             multivariate=settings.multivariate, group=settings.multivariate)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=n_startup, n_warmup_steps=1) if settings.prune
              else optuna.pruners.NopPruner())
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner, study_name=name)
    if previous:
        study.add_trials(previous)
    out = WindowSearch(window.number, name)
    prepared = window_market(panel, window, config)
    seen: set[str] = set()
    for t in previous:  # a resumed study: re-evaluate its configurations for their returns (not new trials)
        params = {**t.params, **dict(fixed)}
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and _key(params) not in seen:
            seen.add(_key(params))
            out.params.append(params)
            out.returns.append(evaluate_params(strategy_cls, params, prepared, window, config, sizer, barriers))
            out.pruned.append(t.state == TrialState.PRUNED)
    out.resumed = len(out.params)
    n_before = len(study.trials)
    if start_params and _key({**dict(start_params), **dict(fixed)}) not in seen:
        study.enqueue_trial(dict(start_params))
    scale = math.sqrt(ppy)
    attempts = 0
    while len(out.params) < n_trials and attempts < 20 * n_trials + 50:
        attempts += 1
        trial = study.ask()
        params = {**_suggest(trial, space), **dict(fixed)}
        if _key(params) in seen:
            trial.set_user_attr("skipped", "duplicate of an evaluated configuration")
            study.tell(trial, state=TrialState.FAIL)
            continue
        try:
            strategy_cls(**params)
        except ValueError as exc:
            trial.set_user_attr("skipped", str(exc))
            study.tell(trial, state=TrialState.FAIL)
            continue
        is_r, oos_r = evaluate_params(strategy_cls, params, prepared, window, config, sizer, barriers)
        seen.add(_key(params))
        out.params.append(params)
        out.returns.append((is_r, oos_r))
        trial.set_user_attr("oos_bars", int(len(oos_r)))
        folds = fold_sharpes(is_r, N_FOLDS)
        pruned = False
        for step, value in enumerate(running_means(folds)[:-1] if settings.prune else ()):  # last fold completes it
            trial.report(float(value) * scale, step)
            if trial.should_prune():
                pruned = True
                break
        out.pruned.append(pruned)
        if pruned:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            value = robust_score(folds) if settings.objective == "robust" else sharpe_per_bar(is_r)
            study.tell(trial, value * scale)
    out.new_trials = study.trials[n_before:]
    if not out.params:
        raise ValueError(f"{strategy_cls.name}: optuna found no valid parameter set in param_space "
                         f"in window {window.number}")
    return out


def run_tpe(strategy_cls: type, panel: Mapping[str, Any], windows: list, config: Any, *, n_trials: int, seed: int,
            fixed: Mapping[str, Any], sizer: Any, barriers: Any, ppy: float, prefix: str, store: Any,
            start_params: Mapping[str, Any] | None, n_jobs: int, backend: str,
            progress: Any = None, settings: TpeSettings | None = None) -> list[WindowSearch]:
    """TPE studies for every window (in parallel across windows on the backend), persisted to the store's RDB."""
    import optuna
    from optuna.trial import TrialState

    if start_params:
        check_in_space(strategy_cls, start_params)
    storage = open_storage(store) if store is not None else None
    names = [study_name(prefix, w) for w in windows]
    previous: list[list] = []
    for name in names:
        if storage is None:
            previous.append([])
            continue
        try:
            old = optuna.load_study(study_name=name, storage=storage)
            previous.append([t for t in old.trials
                             if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)])
        except KeyError:
            previous.append([])
    tasks = [(strategy_cls, panel, w, config, sizer, barriers, n_trials, seed, dict(fixed), ppy, name, prev,
              start_params, settings) for w, name, prev in zip(windows, names, previous)]
    total = n_trials * len(windows)
    results: list[WindowSearch] = []
    if progress:
        progress(0, total)
    if backend == "sequential" or len(tasks) == 1:
        for t in tasks:
            results.append(search_window(*t))
            if progress:
                progress(sum(len(r.params) for r in results), total)
    else:
        from joblib import Parallel, delayed, parallel_config

        with parallel_config(backend=backend, n_jobs=n_jobs):
            for res in Parallel(return_as="generator_unordered")(delayed(search_window)(*t) for t in tasks):
                results.append(res)
                if progress:
                    progress(sum(len(r.params) for r in results), total)
    results.sort(key=lambda r: r.window)
    if storage is not None:
        for res in results:
            study = optuna.create_study(study_name=res.study_name, storage=storage, direction="maximize",
                                        load_if_exists=True)
            study.set_user_attr("strategy", str(strategy_cls.name))
            study.set_user_attr("window", res.window)
            study.add_trials(res.new_trials)
        storage.engine.dispose()
    return results
