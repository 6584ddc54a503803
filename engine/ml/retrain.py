"""Training and scheduled retraining of a strategy's meta-model, with the champion/challenger gate.

`train_model` is what `quantdesk model train` runs: make sure the training window's bars are in state.db (pulling
them from the configured source when missing), build the meta-label data set, train, save the challenger, and gate
it. `retrain_job` is the plain function the scheduler calls: the same steps, each written to the audit log, and any
failure turned into an alert and re-raised so the job listener records it.

Gate (engine.ml.promotion): the challenger replaces the champion only on out-of-sample evidence of value - overlay
Sharpe and Brier score at least the champion's and one better by a margin; an AUC tie never promotes. The
champion is scored on the same test events when they all lie after its training window (a like-for-like test);
otherwise its own recorded out-of-sample score stands.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import pandas as pd

from engine.clock import now_ms, timeframe_ms
from engine.config import Settings
from engine.ml.paths import models_dir  # defined there (a leaf); callers may import it from here
from engine.store.db import Store, open_store
from engine.store.ops import audit, raise_alert

MIN_BARS_FRACTION = 0.9  # a window with fewer stored bars than this share of the expected count gets pulled


def _instance(settings: Settings, strategy_name: str) -> tuple[str, tuple[str, ...], dict]:
    """(strategy class name, symbols, params) of an instance id or a strategy name."""
    inst = settings.strategies.get(strategy_name)
    if inst is None:
        inst = next((i for i in settings.strategies.values() if i.strategy == strategy_name), None)
    if inst is None:
        return strategy_name, tuple(settings.data.symbols), {}
    return inst.strategy or strategy_name, tuple(inst.symbols), dict(inst.params)


def ensure_bars(store: Store, source: Any, symbols: tuple[str, ...], timeframe: str, since: int,
                until: int) -> dict[str, int]:
    """Pull missing bars of [since, until) into state.db; returns bars pulled per symbol."""
    from engine.data.ingest import ingest_candles
    from engine.store.candles import load_candles

    expected = (until - since) // timeframe_ms(timeframe)
    pulled = {}
    for sym in symbols:
        have = len(load_candles(store, source.id, sym, timeframe, since, until))
        if have < expected * MIN_BARS_FRACTION:
            rep = ingest_candles(store, source, sym, timeframe, since, until)
            pulled[sym] = rep.inserted
    return pulled


def _attach_flow(panel: dict, source: Any, store: Store, timeframe: str) -> str:
    """Add taker buy volume per bar when it can be known (simulator klines or a stored tape); returns its origin."""
    from engine.ml.dataset import taker_flow_from_trades

    if getattr(source, "id", "") == "sim" and hasattr(source, "minute_arrays"):
        from engine.ml.flow_cache import cache_folder, sim_flow

        folder = cache_folder(store)  # per-bar values kept between retrains (engine/ml/flow_cache.py)
        for sym, frame in panel.items():
            frame["taker_buy_volume"] = sim_flow(source, sym, timeframe, frame.index, folder)
        return "sim_klines"
    from engine.features.panel import load_trades

    origin = "bvc"
    for sym, frame in panel.items():
        ms = frame.index.as_unit("ms").asi8
        trades = load_trades(store, getattr(source, "id", ""), sym, int(ms[0]), int(ms[-1]) + timeframe_ms(timeframe))
        if len(trades):
            tape = trades.rename(columns={"ts": "timestamp"})
            tape["side"] = np.where(tape["side"].to_numpy() > 0, "buy", "sell")
            flow = taker_flow_from_trades(tape, frame.index, timeframe)
            first, last = int(tape["timestamp"].min()), int(tape["timestamp"].max())
            step = timeframe_ms(timeframe)
            covered = (ms >= first - first % step) & (ms <= last)
            frame["taker_buy_volume"] = np.where(covered, flow.to_numpy(), np.nan)  # NaN outside the tape
            origin = "trades"
    return origin


def model_panel(store: Store, source: Any, symbols: Sequence[str], timeframe: str, warmup_bars: int,
                until: int, min_days: int = 120) -> dict:
    """The live panel a meta-model expects: its own timeframe's bars (pulled if missing) with taker flow attached,
    built exactly as training builds it, so live features mean what they meant in training."""
    from engine.features.panel import load_panel

    step = timeframe_ms(timeframe)
    until = until - until % step  # complete bars only
    since = until - max(min_days * 86_400_000, (warmup_bars + 100) * step)
    ensure_bars(store, source, tuple(symbols), timeframe, since, until)
    panel = {s: f for s, f in load_panel(store, source.id, list(symbols), timeframe, since, until).items() if len(f)}
    if panel:
        _attach_flow(panel, source, store, timeframe)
    return panel


def training_range(source: Any, timeframe: str, days: float | None, since: int | None,
                   until: int | None) -> tuple[int, int]:
    """[since, until) in ms, bar-aligned: explicit bounds of any stored range, else the last `days` before now."""
    step = timeframe_ms(timeframe)
    end = int(until) if until is not None else int(source.milliseconds())
    end = end // step * step
    if since is None:
        if days is None or days < 1:
            raise ValueError(f"days: training window must be >= 1 day, got {days}")
        since = end - int(days * 86_400_000)
    if since >= end:
        raise ValueError(f"since: start {since} must be before the end {end}")
    return int(since), end


def _stored_timeframes(store: Store, exchange: str, symbol: str) -> list[str]:
    from sqlalchemy import select

    from engine.store.schema import candles

    stmt = select(candles.c.timeframe).where(candles.c.exchange == exchange, candles.c.symbol == symbol).distinct()
    with store.connect() as conn:
        return [r[0] for r in conn.execute(stmt)]


def history_panel(store: Store, source: Any, symbols: Sequence[str], timeframe: str, since: int, until: int,
                  pull: bool = True) -> tuple[dict, dict, str]:
    """(panel, pulled, taker-flow origin) for [since, until): stored bars of any range and source, with missing
    candles and, where the source has them, real funding history (perpetuals) pulled first when `pull` is set.

    A symbol whose `timeframe` is neither stored nor at the source is built from a finer stored timeframe
    (engine.backtest.resample: complete buckets only), e.g. 1h bars from an imported 1m file."""
    from engine.backtest.resample import base_timeframe, resample_panel
    from engine.features.panel import load_panel

    pulled: dict = {}
    if pull:
        from engine.backtest.dataset import DatasetSpec, ensure_feeds, ensure_history

        for sym in symbols:
            try:
                got = ensure_history(store, source, DatasetSpec(getattr(source, "id", "sim"), (sym,), timeframe,
                                                                since, until), feeds=False)
            except KeyError as exc:  # the source has no such series (a CSV folder without this timeframe)
                pulled[f"candles {sym}"] = f"not at the source: {exc}"
                continue
            pulled.update({k: v for k, v in got.items() if v})
        pulled.update({k: v for k, v in ensure_feeds(store, source, since, until).items() if v})  # once, not per symbol
    panel = load_panel(store, source.id, list(symbols), timeframe, since, until - 1)
    panel = {s: f for s, f in panel.items() if len(f) > 1}
    for sym in [s for s in symbols if s not in panel]:
        base = base_timeframe(_stored_timeframes(store, source.id, sym), timeframe)
        if base is None:
            continue
        fine = load_panel(store, source.id, [sym], base, since, until - 1)
        built, dropped = resample_panel(fine, base, timeframe)
        if len(built.get(sym, ())) > 1:
            panel[sym] = built[sym]
            pulled[f"resampled {sym}"] = f"{len(built[sym])} {timeframe} bars from {base} ({dropped} incomplete dropped)"
    if not panel:
        raise ValueError(f"panel: no stored {timeframe} bars for {', '.join(symbols)} on {source.id} in "
                         f"[{since}, {until}) (import them with `quantdesk data pull --source ...`)")
    flow = _attach_flow(panel, source, store, timeframe)
    return panel, pulled, flow


def train_model(settings: Settings, strategy_name: str, store: Store | None = None, *, days: int | None = None,
                timeframe: str | None = None, source: Any = None, audit_source: str = "cli",
                user: str | None = None, gate: bool = True, progress: Any = None, since: int | None = None,
                until: int | None = None, symbols: Sequence[str] | None = None, pull: bool = True) -> dict[str, Any]:
    """Pull data if needed, train, save the challenger and apply the gate; returns a summary dict.

    The window is [since, until) of stored history when given (any range, any source), else the last `days`."""
    from engine.data.factory import make_source
    from engine.ml.dataset import build_dataset
    from engine.ml.labels import BarrierSpec
    from engine.ml.meta_model import train_meta_model
    from engine.ml.promotion import promotion_gate
    from engine.ml.registry import ModelRegistry
    from engine.strategy.registry import load_strategy

    own_store = store is None
    store = store or open_store(settings.store_url())
    say = progress or (lambda msg: None)
    try:
        cls_name, inst_symbols, params = _instance(settings, strategy_name)
        symbols = tuple(symbols or inst_symbols)
        strategy = load_strategy(cls_name, params)
        timeframe = timeframe or strategy.default_timeframe
        step = timeframe_ms(timeframe)
        source = source or make_source(settings.data.source, settings)
        t0 = time.perf_counter()
        since, until = training_range(source, timeframe, days or settings.ml.train_window_days, since, until)
        days = int(round((until - since) / 86_400_000))
        say(f"checking {len(symbols)} symbols x {days} days of {timeframe} bars in state.db")
        panel, pulled, flow = history_panel(store, source, symbols, timeframe, since, until, pull=pull)
        audit(store, audit_source, "model.train.data", {"strategy": strategy_name, "timeframe": timeframe,
                                                        "since": since, "until": until, "pulled": pulled}, user=user)
        t_data = time.perf_counter() - t0
        say(f"building meta-labels on {sum(len(f) for f in panel.values())} bars (taker flow: {flow})")
        spec = BarrierSpec(settings.ml.pt_mult, settings.ml.sl_mult, settings.ml.max_holding_bars, settings.ml.vol_span)
        t1 = time.perf_counter()
        ds = build_dataset(strategy, panel, spec)
        t_ds = time.perf_counter() - t1
        say(f"training on {len(ds.y)} events ({len(ds.features)} features"
            + (f"; too sparse to use: {', '.join(ds.dropped_features)})" if ds.dropped_features else ")"))
        t2 = time.perf_counter()
        from engine.ml.selection import required_embargo_bars

        gap = pd.Timedelta(milliseconds=required_embargo_bars(strategy, spec) * step)
        model, report = train_meta_model(ds, panel, cv_folds=settings.ml.cv_folds, embargo_pct=settings.ml.embargo_pct,
                                         periods_per_year=365 * 86_400_000 / step, embargo=gap, report_kfold=False)
        t_train = time.perf_counter() - t2
        registry = ModelRegistry(store, models_dir(settings))
        start, end = ds.train_window
        scores = dict(report.as_dict(), timeframe=timeframe, symbols=list(panel), flow=flow, data_days=days,
                      dropped_features=ds.dropped_features)
        rec = registry.save(strategy_name, model, ds.features, start, end, ds.data_hash, scores, report.oos_score,
                            ds.spec.payoff_ratio, estimator_name=report.estimator, source=audit_source)
        audit(store, audit_source, "model.train.done", {"strategy": strategy_name, "version": rec.version,
                                                        "oos": report.oos, "estimator": report.estimator},
              user=user)
        decision, champ_score, basis, gate_numbers = "saved", None, "gate disabled", None
        if gate:  # out-of-sample evidence of value (overlay Sharpe, Brier), never AUC alone: engine.ml.promotion
            verdict = promotion_gate(registry, strategy_name, ds, report, panel, 365 * 86_400_000 / step)
            champ_score = None if verdict.champion is None else verdict.champion.get("roc_auc")
            basis, gate_numbers = verdict.basis, verdict.as_dict()
            if verdict.promote:
                registry.promote(strategy_name, rec.version, source=audit_source, user=user,
                                 reason=f"gate: {verdict.reason}")
                decision = "promoted"
            else:
                decision = "kept champion"
            audit(store, audit_source, "model.gate", {"strategy": strategy_name, "challenger": rec.version,
                                                      "challenger_score": report.oos_score,
                                                      "champion_score": champ_score, "basis": basis,
                                                      "decision": decision, "reason": verdict.reason,
                                                      "numbers": gate_numbers}, user=user)
        return {"strategy": strategy_name, "version": rec.version, "decision": decision, "estimator": report.estimator,
                "oos": report.oos, "cv_auc": {k: float(np.mean(v)) if v else None for k, v in report.cv_auc.items()},
                "selection": report.selection, "champion_score": champ_score, "gate_basis": basis,
                "gate": gate_numbers, "events": len(ds.y), "features": len(ds.features),
                "timeframe": timeframe, "symbols": list(panel), "flow": flow, "path": rec.path, "pulled": pulled,
                "elapsed_s": {"data": t_data, "dataset": t_ds, "train": t_train,
                              "total": time.perf_counter() - t0}}
    finally:
        if own_store:
            store.dispose()


def retrain_job(settings: Settings, strategy_name: str, store: Store | None = None, source: Any = None,
                until: int | None = None) -> dict[str, Any]:
    """Scheduled retrain (APScheduler job function): audited start/result; failures alert and re-raise.

    An engine passes its own market source (the simulator with its resumed clock) or, from a child process, the
    engine's market time as `until`; None builds a source from settings and trains up to its now."""
    own_store = store is None
    store = store or open_store(settings.store_url())
    started = now_ms()
    try:
        audit(store, "scheduler", "model.retrain.started", {"strategy": strategy_name, "window_days":
                                                            settings.ml.train_window_days}, user="scheduler")
        try:
            result = train_model(settings, strategy_name, store, source=source, audit_source="scheduler",
                                 user="scheduler", until=until)
        except Exception as exc:
            raise_alert(store, "warning", "model.retrain", f"retraining {strategy_name} failed: "
                        f"{type(exc).__name__}: {exc}", {"strategy": strategy_name}, source="scheduler")
            audit(store, "scheduler", "model.retrain.failed", {"strategy": strategy_name, "error": str(exc),
                                                               "type": type(exc).__name__}, user="scheduler")
            raise
        audit(store, "scheduler", "model.retrain.finished",
              {"strategy": strategy_name, "version": result["version"], "decision": result["decision"],
               "oos_score": result["oos"].get("roc_auc"), "elapsed_ms": now_ms() - started}, user="scheduler")
        return result
    finally:
        if own_store:
            store.dispose()


def evaluate_model(settings: Settings, strategy_name: str, store: Store | None = None, *, source: Any = None,
                   symbols: Sequence[str] | None = None, timeframe: str | None = None, since: int | None = None,
                   until: int | None = None, days: float | None = None, retrain_every_days: float | None = None,
                   anchored: bool | None = None, n_boot: int | None = None, pull: bool = True, record: bool = True,
                   audit_source: str = "cli", user: str | None = None, progress: Any = None) -> tuple[Any, Any]:
    """Walk-forward evaluation of a strategy's overlay on stored history; records the evidence; (Evaluation, evidence).

    On bars other than the strategy's own timeframe its bar-count parameters are rescaled to the same wall-clock
    horizons (Strategy.rescaled), as research backtests do.
    """
    import pandas as pd

    from engine.data.factory import make_source
    from engine.ml.dataset import build_dataset
    from engine.ml.evaluate import EvalSpec, evaluate_walk_forward
    from engine.ml.evidence import evidence_from, record_evidence
    from engine.ml.labels import BarrierSpec
    from engine.strategy.registry import load_strategy

    own_store = store is None
    store = store or open_store(settings.store_url())
    say = progress or (lambda msg: None)
    ml = settings.ml
    try:
        cls_name, inst_symbols, params = _instance(settings, strategy_name)
        strategy = load_strategy(cls_name, params)
        timeframe = timeframe or strategy.default_timeframe
        if timeframe != strategy.default_timeframe:
            strategy = strategy.rescaled(timeframe)
        source = source or make_source(settings.data.source, settings)
        since, until = training_range(source, timeframe, days or ml.train_window_days, since, until)
        panel, pulled, flow = history_panel(store, source, tuple(symbols or inst_symbols), timeframe, since, until,
                                            pull=pull)
        say(f"{sum(len(f) for f in panel.values())} {timeframe} bars of {', '.join(panel)} (taker flow: {flow})")
        spec = BarrierSpec(ml.pt_mult, ml.sl_mult, ml.max_holding_bars, ml.vol_span)
        ds = build_dataset(strategy, panel, spec, features=None, select=False)
        say(f"{len(ds.y)} labelled events, {ds.X.shape[1]} candidate features")
        espec = EvalSpec(retrain_every=pd.Timedelta(days=retrain_every_days or ml.eval_retrain_every_days),
                         anchored=ml.eval_anchored if anchored is None else anchored,
                         n_boot=n_boot or ml.eval_bootstrap, ci=ml.eval_ci, sharpe_floor=ml.overlay_sharpe_floor,
                         rebalance_band=settings.execution.rebalance_band)
        evaluation = evaluate_walk_forward(ds, panel, strategy, espec, settings.backtest, progress=say)
        evaluation.meta.update(strategy=strategy_name, timeframe=timeframe, flow=flow, pulled=pulled,
                               since=since, until=until, events=len(ds.y))
        evidence = evidence_from(evaluation, cls_name, timeframe)  # the key live sizing looks it up by
        if record:
            record_evidence(store, evidence, source=audit_source, user=user)
        return evaluation, evidence
    finally:
        if own_store:
            store.dispose()
