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
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engine.clock import now_ms, timeframe_ms
from engine.config import Settings
from engine.store.db import Store, open_store
from engine.store.ops import audit, raise_alert

MIN_BARS_FRACTION = 0.9  # a window with fewer stored bars than this share of the expected count gets pulled


def models_dir(settings: Settings) -> Path:
    """Where artefacts live: ml.models_dir, relative paths taken beside state.db."""
    path = Path(settings.ml.models_dir).expanduser()
    return path if path.is_absolute() else Path(settings.store.path).expanduser().resolve().parent / path


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
    from engine.ml.dataset import sim_taker_flow, taker_flow_from_trades

    if getattr(source, "id", "") == "sim" and hasattr(source, "minute_arrays"):
        for sym, frame in panel.items():
            frame["taker_buy_volume"] = sim_taker_flow(source, sym, timeframe, frame.index).to_numpy()
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
            covered = flow > 0
            frame["taker_buy_volume"] = flow.where(covered).to_numpy()  # NaN outside the tape -> BVC-like fill
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


def train_model(settings: Settings, strategy_name: str, store: Store | None = None, *, days: int | None = None,
                timeframe: str | None = None, source: Any = None, audit_source: str = "cli",
                user: str | None = None, gate: bool = True, progress: Any = None) -> dict[str, Any]:
    """Pull data if needed, train, save the challenger and apply the gate; returns a summary dict."""
    from engine.data.factory import make_source
    from engine.features.panel import load_panel
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
        cls_name, symbols, params = _instance(settings, strategy_name)
        strategy = load_strategy(cls_name, params)
        timeframe = timeframe or strategy.default_timeframe
        days = int(days or settings.ml.train_window_days)
        if days < 1:
            raise ValueError(f"days: training window must be >= 1 day, got {days}")
        source = source or make_source(settings.data.source, settings)
        step = timeframe_ms(timeframe)
        until = int(source.milliseconds()) // step * step
        since = until - days * 86_400_000
        t0 = time.perf_counter()
        say(f"checking {len(symbols)} symbols x {days} days of {timeframe} bars in state.db")
        pulled = ensure_bars(store, source, symbols, timeframe, since, until)
        audit(store, audit_source, "model.train.data", {"strategy": strategy_name, "timeframe": timeframe,
                                                        "since": since, "until": until, "pulled": pulled}, user=user)
        panel = load_panel(store, source.id, list(symbols), timeframe, since, until - 1)
        panel = {s: f for s, f in panel.items() if len(f)}
        if not panel:
            raise ValueError(f"panel: no {timeframe} bars for {symbols} in [{since}, {until})")
        flow = _attach_flow(panel, source, store, timeframe)
        t_data = time.perf_counter() - t0
        say(f"building meta-labels on {sum(len(f) for f in panel.values())} bars (taker flow: {flow})")
        spec = BarrierSpec(settings.ml.pt_mult, settings.ml.sl_mult, settings.ml.max_holding_bars, settings.ml.vol_span)
        t1 = time.perf_counter()
        ds = build_dataset(strategy, panel, spec)
        t_ds = time.perf_counter() - t1
        say(f"training on {len(ds.y)} events ({len(ds.features)} features"
            + (f"; too sparse to use: {', '.join(ds.dropped_features)})" if ds.dropped_features else ")"))
        t2 = time.perf_counter()
        model, report = train_meta_model(ds, panel, cv_folds=settings.ml.cv_folds, embargo_pct=settings.ml.embargo_pct,
                                         periods_per_year=365 * 86_400_000 / step)
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
                "champion_score": champ_score, "gate_basis": basis, "gate": gate_numbers, "events": len(ds.y), "features": len(ds.features),
                "timeframe": timeframe, "symbols": list(panel), "flow": flow, "path": rec.path, "pulled": pulled,
                "elapsed_s": {"data": t_data, "dataset": t_ds, "train": t_train,
                              "total": time.perf_counter() - t0}}
    finally:
        if own_store:
            store.dispose()


def retrain_job(settings: Settings, strategy_name: str, store: Store | None = None) -> dict[str, Any]:
    """Scheduled retrain (APScheduler job function): audited start/result; failures alert and re-raise."""
    own_store = store is None
    store = store or open_store(settings.store_url())
    started = now_ms()
    try:
        audit(store, "scheduler", "model.retrain.started", {"strategy": strategy_name, "window_days":
                                                            settings.ml.train_window_days}, user="scheduler")
        try:
            result = train_model(settings, strategy_name, store, audit_source="scheduler", user="scheduler")
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
