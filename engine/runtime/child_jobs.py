"""Memory-hungry scheduled work (model retraining, re-optimisation) in a short-lived child process, so the long-running engine never
holds its peak.

A retrain builds two years of bars, a feature matrix and several fitted candidates; run inside the engine it left
the process ~300-400 MB larger for good (freed arrays stay in glibc's per-thread arenas, the simulator's day caches
stay filled with two years of history, numba/LLVM and sklearn's training code stay loaded). The child (multiprocessing
"spawn": no inherited threads, locks or SQLite handles) builds the engine's source the way the engine does, trains on
the engine's market time, writes the model, audit rows and alerts to the same store, and exits, returning every
page to the OS. The engine keeps only the champion it later loads for predictions.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

from engine.config import Settings


def engine_source(settings: Settings, resume_ms: int | None) -> Any:
    """The market source an engine uses: `data.source` built by make_source (the simulator resuming its clock at
    `resume_ms`), market data pointed at the twin when `exchange.base_url` is set."""
    from engine.data.factory import make_source

    source = make_source(settings.data.source, settings, resume_ms=resume_ms, symbols=settings.data.symbols)
    base_url = settings.exchange.base_url
    if settings.data.source != "sim" and base_url and getattr(source, "exchange", None) is not None:
        from engine.data.ccxt_urls import point_at

        point_at(source.exchange, base_url)  # market data from the twin too
    return source


def run_in_child(fn: Callable[..., Any], *args: Any) -> Any:
    """Call fn(*args) in a fresh spawned process and return its result (or raise its exception); the process exits
    afterwards, so nothing it allocated stays in the caller."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def _retrain_child(settings: Settings, strategy: str, market_ms: int) -> dict[str, Any]:
    """The child's side: the engine's source at the engine's market time, then the audited retrain job."""
    from engine.ml.retrain import retrain_job

    source = engine_source(settings, market_ms)
    return retrain_job(settings, strategy, None, source=source, until=market_ms)


def retrain_in_child(settings: Settings, strategy: str, market_ms: int, store: Any) -> dict[str, Any]:
    """Retrain `strategy` on the window ending at the engine's market time `market_ms`, in a child process.

    The job's own failures are audited and alerted by the child (retrain_job) and re-raised here; a child that dies
    (killed, out of memory) is alerted here."""
    try:
        return run_in_child(_retrain_child, settings, strategy, int(market_ms))
    except BrokenProcessPool as exc:
        from engine.store.ops import raise_alert

        raise_alert(store, "warning", "model.retrain", f"retraining {strategy} failed: its process died ({exc})",
                    {"strategy": strategy}, source="scheduler")
        raise


def _reopt_child(settings: Settings, inst_id: str, exchange: str, market_ms: int) -> Any:
    """The child's side of a re-optimisation: the walk-forward and its decision on the engine's store."""
    from engine.store import open_store
    from engine.trading.reoptimize import reoptimize_instance

    store = open_store(settings.store_url())
    try:
        return reoptimize_instance(store, settings, inst_id, exchange, int(market_ms))
    finally:
        store.dispose()


def reoptimize_in_child(settings: Settings, inst_id: str, exchange: str, market_ms: int) -> Any:
    """Re-optimise an instance (a walk-forward over its latest bars, a challenger recorded when it wins) in a child
    process; returns the Decision. Retiring challengers and starting tick jobs stay with the engine."""
    return run_in_child(_reopt_child, settings, inst_id, exchange, int(market_ms))
