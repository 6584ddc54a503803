"""Live sizing: the risk package's `size_position` with the ML champion's probability, exposures and market rules.

The overlay is used for a strategy only while its latest walk-forward evidence shows value (engine.ml.evidence:
Brier skill > 0 and the Sharpe-difference interval's lower bound above ml.overlay_sharpe_floor). Without that
evidence sizing uses the primary signal with Kelly from the strategy's own out-of-sample hit rate and payoff (fixed
sizing when even those are unknown). No champion (or a failing one) also means sizing without the overlay. The sizing
record says which and why ("overlay off: Brier skill -0.010 over 6 windows"), so "why is this size what it is" always
has an answer in `sizing_decisions`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any, Mapping

from engine.clock import floor_ts
from engine.config import Settings
from engine.execution.orders import load_positions
from engine.risk.limits import MarketRules
from engine.trading.lifecycle import Instance
from engine.store.db import Store
from engine.store.ops import raise_alert

log = logging.getLogger("quantdesk.sizing")
EVIDENCE_TTL_S = 300.0  # how long a strategy's evidence read from the audit log is reused


class LiveSizer:
    """Sizes each instance's per-symbol signal; caches the model registry."""

    def __init__(self, store: Store, settings: Settings, vpin_cdf: Mapping[str, float] | None = None) -> None:
        self.store = store
        self.settings = settings
        self._registry: Any = None
        self._model_error_reported: set[str] = set()
        self._probs: dict[tuple[str, int, int], dict[str, float]] = {}  # (instance, model version, model bar)
        # the monitors' ToxicityBook readings (a live mapping it keeps filling); empty means no toxicity input
        self.vpin_cdf: Mapping[str, float] = vpin_cdf if vpin_cdf is not None else {}
        self._overlay: dict[str, tuple[float, Any]] = {}  # strategy -> (read at, OverlayDecision)

    def overlay(self, strategy: str) -> Any:
        """The overlay on/off decision for a strategy from its latest walk-forward evidence (cached for a while)."""
        from engine.ml.evidence import latest_evidence, overlay_decision

        hit = self._overlay.get(strategy)
        if hit is not None and time.monotonic() - hit[0] < EVIDENCE_TTL_S:
            return hit[1]
        ml = self.settings.ml
        decision = overlay_decision(latest_evidence(self.store, strategy), ml.overlay_sharpe_floor,
                                    ml.overlay_requires_evidence)
        self._overlay[strategy] = (time.monotonic(), decision)
        return decision

    def meta_probs(self, inst: Instance, strategy: Any, panel: Mapping[str, Any], source: Any = None,
                   now: int | None = None) -> tuple[dict[str, float], Any]:
        """P(profit) per symbol from the strategy's champion meta-model, or ({}, None) without one.

        A model trained on other bars than the instance trades (1h model, 1m instance) is fed a panel of its own
        timeframe built the way training built it (`engine.ml.retrain.model_panel`)."""
        if not self.overlay(inst.strategy).on:
            return {}, None  # no evidence of value: the model is not even asked
        try:
            if self._registry is None:
                from engine.ml.registry import ModelRegistry
                from engine.ml.paths import models_dir

                self._registry = ModelRegistry(self.store, models_dir(self.settings))
            model = self._registry.champion(inst.strategy)
            if model is None:
                return {}, None
            from engine.ml.dataset import latest_features

            if source is not None and now is not None and model.timeframe and model.timeframe != inst.timeframe:
                # the model's inputs change only when one of its own (coarser) bars closes: compute once per bar
                key = (inst.id, model.version, floor_ts(now, model.timeframe))
                if key in self._probs:
                    return self._probs[key], model
                from engine.ml.retrain import model_panel

                panel = model_panel(self.store, source, list(inst.symbols), model.timeframe,
                                    int(getattr(strategy, "warmup_bars", 0) or 0), now)
            else:
                key = None
            feats = latest_features(strategy, panel, model.features, timeframe=model.timeframe)
            probs = model.predict_proba(feats)
            out = {sym: float(p) for sym, p in zip(feats.index, probs) if math.isfinite(p)}
            if key is not None:
                self._probs = {k: v for k, v in self._probs.items() if k[0] != inst.id}
                self._probs[key] = out
            return out, model
        except Exception as exc:  # noqa: BLE001 - a broken model sizes without the overlay, with one alert
            if inst.id not in self._model_error_reported:
                raise_alert(self.store, "warning", "sizing.model", f"{inst.id}: meta-model unavailable, sizing "
                            f"without the overlay: {type(exc).__name__}: {exc}", {"instance_id": inst.id})
                self._model_error_reported.add(inst.id)
            return {}, None

    def exposure(self, inst: Instance, symbol: str, capital: float, marks: Mapping[str, float]) -> Any:
        """Gross exposure already held at instance, symbol and portfolio level (excluding this position)."""
        from engine.risk.limits import Exposure

        strat = sym = port = 0.0
        for p in load_positions(self.store):
            if p["instance_id"] == inst.id and p["symbol"] == symbol:
                continue
            notional = abs(p["qty"]) * marks.get(p["symbol"], p["avg_price"])
            port += notional
            strat += notional if p["instance_id"] == inst.id else 0.0
            sym += notional if p["symbol"] == symbol else 0.0
        equity = sum(i.capital for i in self.settings.strategies.values() if i.enabled) or capital
        return Exposure(instance_capital=capital, portfolio_equity=equity, strategy_gross=strat, symbol_gross=sym,
                        portfolio_gross=port)

    def size(self, inst: Instance, symbol: str, weight: float, mark: float, capital: float, bar_ts: int,
             market: Mapping[str, Any], book: Mapping[str, Any] | None, probs: Mapping[str, float], model: Any,
             marks: Mapping[str, float], no_short: str | None = None) -> float:
        """Signed target quantity for one symbol (recorded in sizing_decisions with its inputs); `no_short` says why
        a short weight is held flat (the venue cannot hold it), recorded as the binding cap `no_short`."""
        from engine.risk.sizing import record_decision, size_position

        strategy_weight = weight
        if no_short is not None:
            weight = 0.0
        side = 0 if weight == 0 else int(math.copysign(1, weight))
        spread = depth = None
        if book is not None:
            try:
                from engine.risk.liquidity import book_liquidity

                spread, bid_d, ask_d = book_liquidity(book, self.settings.risk.depth_bps)
                depth = ask_d if side > 0 else bid_d
            except ValueError:
                spread = depth = None
        p = probs.get(symbol)
        payoff = model.payoff_ratio if model is not None and p is not None else None
        gate = self.overlay(inst.strategy)
        if not gate.on:
            p, payoff = gate.hit_rate, gate.payoff  # Kelly from the primary's own out-of-sample record (or fixed)
        decision = size_position(symbol, side, mark, self.exposure(inst, symbol, capital, marks), self.settings.risk,
                                 meta_prob=p, payoff_ratio=payoff, rules=MarketRules.from_market(market),
                                 vpin_cdf=self.vpin_cdf.get(symbol), spread_bps=spread, depth=depth, ts=bar_ts,
                                 method="kelly" if not gate.on and p is not None else None,
                                 weight=min(abs(float(weight)), 1.0))
        if not gate.on:
            decision.inputs["overlay"] = gate.reason
            decision.inputs["kelly_inputs"] = ("primary out-of-sample hit rate and payoff" if p is not None else
                                               "none recorded: fixed size on the primary signal")
        elif model is not None and p is not None:
            decision.inputs["overlay"] = f"meta-model {inst.strategy} v{model.version} ({gate.reason})"
        else:
            decision.inputs["overlay"] = "none: no champion model, sized without the overlay"
        decision.inputs["strategy_weight"] = strategy_weight
        if no_short is not None:
            decision.inputs["no_short"] = no_short
            decision = dataclasses.replace(decision, cap_applied="no_short")
        record_decision(self.store, inst.id, decision)
        return decision.signed_qty
