"""Monitors: stale data per feed, model staleness, twin drift, job error rates, drawdown, and the risk triggers.

Each rule raises an alert (severity, rule, values) when it becomes active and an info alert when it clears, not on
every evaluation, so the alert list stays readable.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select

from engine.clock import now_ms, timeframe_ms
from engine.config import Settings
from engine.monitoring import drift
from engine.trading import lifecycle
from engine.store.engines import portfolio_scope
from engine.store.db import Store
from engine.store.ops import raise_alert
from engine.store.schema import candles, equity_snapshots, job_runs, models

log = logging.getLogger("quantdesk.monitors")


class Monitors:
    """Evaluates every monitor rule; remembers which are active to alert on edges only."""

    def __init__(self, store: Store, settings: Settings, source: Any) -> None:
        self.store = store
        self.settings = settings
        self.source = source
        self.active: dict[str, dict[str, Any]] = {}
        self._triggers: Any = None
        from engine.monitoring.toxicity import ToxicityBook

        self.toxicity = ToxicityBook(store, settings, source)
        from engine.monitoring.risk_readings import DepthHistory

        self.depth = DepthHistory(settings.risk.depth_bps)
        self._trigger_error_logged = False

    def _edge(self, key: str, on: bool, severity: str, rule: str, message: str, values: dict[str, Any]) -> None:
        if on and key not in self.active:
            self.active[key] = values
            raise_alert(self.store, severity, rule, message, values, source="monitor")
        elif not on and key in self.active:
            del self.active[key]
            raise_alert(self.store, "info", rule, f"cleared: {key}", values, source="monitor")

    def stale_data(self) -> dict[str, float]:
        """Wall-clock age in seconds of the newest closed bar per symbol/timeframe; alerts past stale_after_s.

        For the simulator the source-time age is divided by its speed-up: at 60x a bar 180 simulated seconds late
        means the engine fell 3 wall seconds behind, which is not stale data; at speed 1 both are the same.
        """
        now = self.source.milliseconds()
        speed = float(getattr(self.source, "speed", 1.0) or 1.0) if self.source.id == "sim" else 1.0
        ages = {}
        with self.store.connect() as conn:
            for symbol in self.settings.data.symbols:
                for tf in self.settings.data.timeframes:
                    last = conn.execute(select(func.max(candles.c.ts)).where(
                        candles.c.exchange == self.source.id, candles.c.symbol == symbol,
                        candles.c.timeframe == tf)).scalar()
                    age = (now - (last + timeframe_ms(tf))) / 1000 / speed if last is not None else float("inf")
                    ages[f"{symbol}:{tf}"] = age
                    self._edge(f"stale:{symbol}:{tf}", age > self.settings.data.stale_after_s, "warning",
                               "monitor.stale_data", f"{symbol} {tf} data is {age:.0f}s old",
                               {"series": f"{self.source.id}:{symbol}:{tf}", "age_s": age,
                                "limit_s": self.settings.data.stale_after_s})
        return ages

    def model_staleness(self) -> dict[str, float]:
        """Age in hours of each strategy's champion model; alerts past ml.max_model_age_hours."""
        ages = {}
        with self.store.connect() as conn:
            rows = conn.execute(select(models.c.strategy, func.max(models.c.created_at))
                                .where(models.c.role == "champion").group_by(models.c.strategy)).all()
        for strategy, created in rows:
            age_h = (now_ms() - created) / 3_600_000
            ages[strategy] = age_h
            self._edge(f"model:{strategy}", age_h > self.settings.ml.max_model_age_hours, "warning",
                       "monitor.model_stale", f"{strategy} champion model is {age_h:.1f}h old",
                       {"strategy": strategy, "age_h": age_h, "limit_h": self.settings.ml.max_model_age_hours})
        return ages

    def error_rate(self, window_ms: int = 600_000) -> float:
        """Share of job runs that failed in the last window; alerts past triggers.error_rate_reduce."""
        since = now_ms() - window_ms
        with self.store.connect() as conn:
            total, bad = conn.execute(select(func.count(), func.sum(1 - job_runs.c.ok))
                                      .where(job_runs.c.started_at >= since, job_runs.c.ok.isnot(None))).first()
        rate = (bad or 0) / total if total else 0.0
        self._edge("error_rate", total >= 10 and rate > self.settings.triggers.error_rate_reduce, "warning",
                   "monitor.error_rate", f"{rate:.0%} of {total} job runs failed in the last "
                   f"{window_ms // 60000} min", {"rate": rate, "runs": total})
        return rate

    def drawdown(self) -> float:
        """Portfolio drawdown from its peak; alerts past triggers.total_drawdown_reduce."""
        with self.store.connect() as conn:
            peak = conn.execute(select(func.max(equity_snapshots.c.equity))
                                .where(equity_snapshots.c.scope == portfolio_scope())).scalar()
            last = conn.execute(select(equity_snapshots.c.equity).where(equity_snapshots.c.scope == portfolio_scope())
                                .order_by(equity_snapshots.c.id.desc()).limit(1)).scalar()
        dd = 1 - last / peak if peak and last is not None else 0.0
        self._edge("drawdown", dd > self.settings.triggers.total_drawdown_reduce, "critical", "monitor.drawdown",
                   f"portfolio drawdown {dd:.2%}", {"drawdown": dd,
                                                   "limit": self.settings.triggers.total_drawdown_reduce})
        return dd

    def observation(self, ages: dict[str, float], out: dict[str, Any]) -> Any:
        """A TriggerObservation with every reading the emergency rules use (None where a reading is unknown)."""
        from engine.risk.liquidity import book_liquidity
        from engine.risk.triggers import SymbolObservation, TriggerObservation
        from engine.monitoring import risk_readings as rr

        now = self.source.milliseconds()
        symbols = {}
        mids: dict[str, float] = {}
        for symbol in self.settings.data.symbols:
            age = max((a for k, a in ages.items() if k.rsplit(":", 1)[0] == symbol), default=None)
            spread = depth = funding = None
            try:
                book = self.source.fetch_order_book(symbol, 50)
                if book.get("bids") and book.get("asks"):
                    mids[symbol] = (book["bids"][0][0] + book["asks"][0][0]) / 2
                spread = book_liquidity(book, self.settings.risk.depth_bps)[0]
                depth = self.depth.ratio(symbol, book)
            except Exception:  # noqa: BLE001 - no book is reported by the stale-data rule, not here
                spread = depth = None
            try:
                funding = rr.perp_funding(self.source, symbol)
            except Exception:  # noqa: BLE001 - funding unknown this round: that rule is skipped
                funding = None
            symbols[symbol] = SymbolObservation(
                spread_bps=spread, vpin_cdf=self.toxicity.cdf.get(symbol), depth_ratio=depth,
                data_age_s=age if age is not None and age != float("inf") else None, funding_rate=funding,
                netflow_z=rr.netflow_z(self.store, symbol, now))
        out["recon_mismatch"] = rr.recon_mismatch(self.store)
        gross, net, per_symbol = rr.exposure_budget(self.store, mids)  # the account budget over all instances
        out["gross_exposure"], out["net_exposure"] = gross, net
        import dataclasses

        for symbol, share in per_symbol.items():
            symbols[symbol] = dataclasses.replace(symbols.get(symbol, SymbolObservation()), exposure=share)
        return TriggerObservation(symbols=symbols, daily_drawdown=rr.daily_drawdown(self.store, now),
                                  total_drawdown=out["drawdown"], error_rate=out["error_rate"],
                                  recon_mismatch=out["recon_mismatch"], gross_exposure=gross, net_exposure=net,
                                  ts=now_ms())

    def triggers(self, obs: Any) -> Any:
        """Feed observations to the risk TriggerEngine, which moves the trading state when a rule fires."""
        if self._triggers is None:
            from engine.risk.triggers import TriggerEngine

            self._triggers = TriggerEngine(self.store, self.settings.triggers)
        return self._triggers.evaluate(obs)

    def run(self) -> dict[str, Any]:
        """Evaluate every monitor once; returns the measured values (stored in job_runs.result)."""
        ages = self.stale_data()
        try:
            vpin_cdf = self.toxicity.update()
        except Exception as exc:  # noqa: BLE001 - toxicity unknown this round is not a monitor failure
            log.warning("vpin update failed: %s", exc)
            vpin_cdf = {}
        out: dict[str, Any] = {"max_data_age_s": max(ages.values()) if ages else None,
                               "model_age_h": self.model_staleness(), "error_rate": self.error_rate(),
                               "drawdown": self.drawdown(), "vpin_cdf": vpin_cdf}
        drift.pair_fills(self.store, self.settings, self.source.id)
        out["drift_breaches"] = len(drift.check_drift(self.store, self.settings))
        out["demoted"] = lifecycle.auto_demote(self.store, self.settings.lifecycle)
        try:
            self.triggers(self.observation(ages, out))
        except Exception as exc:  # noqa: BLE001 - a trigger failure is an alert, the monitor keeps running
            if not self._trigger_error_logged:
                raise_alert(self.store, "warning", "monitor.triggers", f"trigger evaluation failed: {exc}", {})
                self._trigger_error_logged = True
        out["active"] = sorted(self.active)
        return out
