"""The emergency trigger: rules over toxicity, drawdown, liquidity, data health and venue health move the persisted
trading state ACTIVE -> REDUCING -> HALTED, never back.

Each rule has a reduce and a halt threshold (triggers.* in config). When a reading crosses one, the rule *fires*:
the trading state is tightened (through `trading_state.set_state`, source "trigger"), and an alert plus an audit row
name the rule, the symbol, the value and the threshold, all in one transaction. A fired rule is *latched*: it does not
fire again at the same level while the reading hovers around the threshold. It clears only after the reading has
stayed beyond threshold * hysteresis (on the safe side) for `clear_after_s`; clearing is audited but loosens nothing,
since only an operator returns the desk to ACTIVE. Latches are derived from the audit log (trigger.fired /
trigger.cleared rows), so a restarted engine keeps them. If an operator resumes while a rule is still latched and
its condition still holds, the latch is treated as acknowledged and the rule fires again.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import select

from engine.clock import now_ms
from engine.config import TriggerConfig
from engine.risk.trading_state import OPERATOR_SOURCES, TradingState, get_state, read_state, set_state
from engine.store.engines import own_state_scope
from engine.store.db import Store
from engine.store.ops import audit, raise_alert
from engine.store.schema import audit_log

GLOBAL_KEY = "global"
_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


@dataclass(frozen=True)
class SymbolObservation:
    """Per-symbol readings; None means unknown, and a rule with an unknown reading is skipped."""

    vpin_cdf: float | None = None
    spread_bps: float | None = None
    depth_ratio: float | None = None  # current depth / its rolling median
    data_age_s: float | None = None
    funding_rate: float | None = None
    netflow_z: float | None = None  # on-chain exchange net inflow z-score
    exposure: float | None = None  # |notional held in this symbol, all instances| / portfolio equity


@dataclass(frozen=True)
class TriggerObservation:
    """Everything the trigger looks at, at one moment (`ts` in epoch ms; 0 = now)."""

    symbols: dict[str, SymbolObservation] = field(default_factory=dict)
    daily_drawdown: float | None = None  # fraction below the day's peak equity, >= 0
    total_drawdown: float | None = None  # fraction below the all-time peak equity, >= 0
    error_rate: float | None = None  # share of failed exchange requests in the recent window
    recon_mismatch: float | None = None  # |exchange position - local position| summed, in base units
    gross_exposure: float | None = None  # sum |position notional| / portfolio equity (the account budget)
    net_exposure: float | None = None  # sum position notional / portfolio equity (signed; its size is judged)
    ts: int = 0


@dataclass(frozen=True)
class Rule:
    """One trigger rule: where its reading comes from, its thresholds, and which side is dangerous."""

    name: str
    per_symbol: bool
    read: Callable[[TriggerObservation, str], float | None]
    reduce: float | None
    halt: float | None
    higher_is_worse: bool = True

    def level(self, value: float) -> TradingState:
        """The state this reading demands (ACTIVE when within limits)."""
        if self.halt is not None and self._beyond(value, self.halt):
            return TradingState.HALTED
        if self.reduce is not None and self._beyond(value, self.reduce):
            return TradingState.REDUCING
        return TradingState.ACTIVE

    def _beyond(self, value: float, threshold: float) -> bool:
        return value >= threshold if self.higher_is_worse else value <= threshold

    def safe(self, value: float, hysteresis: float) -> bool:
        """True when the reading is back on the safe side of the lowest threshold with hysteresis margin."""
        first = self.reduce if self.reduce is not None else self.halt
        if first is None:
            raise ValueError(f"rule {self.name}: has neither a reduce nor a halt threshold")
        return value < first * hysteresis if self.higher_is_worse else value > first / hysteresis


@dataclass(frozen=True)
class Firing:
    """A rule crossing a threshold: what it read, what it demanded, and what the state became."""

    rule: str
    key: str
    value: float
    threshold: float
    level: TradingState
    previous_state: TradingState
    new_state: TradingState
    alert_id: int
    audit_id: int


@dataclass
class _Latch:
    level: TradingState
    fired_at: int
    safe_since: int | None = None


def _sym(attr: str, transform: Callable[[float], float] = float) -> Callable[[TriggerObservation, str], float | None]:
    def read(obs: TriggerObservation, key: str) -> float | None:
        sym = obs.symbols.get(key)
        value = getattr(sym, attr) if sym is not None else None
        return None if value is None else transform(float(value))
    return read


def _glob(attr: str, transform: Callable[[float], float] = float) -> Callable[[TriggerObservation, str], float | None]:
    def read(obs: TriggerObservation, key: str) -> float | None:
        value = getattr(obs, attr)
        return None if value is None else transform(float(value))
    return read


def build_rules(cfg: TriggerConfig) -> list[Rule]:
    """The rule set with thresholds from config."""
    return [
        Rule("vpin_cdf", True, _sym("vpin_cdf"), cfg.vpin_cdf_reduce, cfg.vpin_cdf_halt),
        Rule("spread", True, _sym("spread_bps"), cfg.spread_bps_reduce, cfg.spread_bps_halt),
        Rule("depth_collapse", True, _sym("depth_ratio"), cfg.depth_collapse_reduce, cfg.depth_collapse_halt,
             higher_is_worse=False),
        Rule("stale_data", True, _sym("data_age_s"), cfg.stale_data_reduce_s, cfg.stale_data_halt_s),
        Rule("funding", True, _sym("funding_rate", abs), cfg.funding_abs_reduce, cfg.funding_abs_halt),
        Rule("netflow", True, _sym("netflow_z"), cfg.inflow_z_reduce, cfg.inflow_z_halt),
        Rule("daily_drawdown", False, _glob("daily_drawdown", abs), cfg.daily_drawdown_reduce,
             cfg.daily_drawdown_halt),
        Rule("total_drawdown", False, _glob("total_drawdown", abs), cfg.total_drawdown_reduce,
             cfg.total_drawdown_halt),
        Rule("error_rate", False, _glob("error_rate"), cfg.error_rate_reduce, cfg.error_rate_halt),
        Rule("recon_mismatch", False, _glob("recon_mismatch", abs), None, cfg.recon_mismatch_halt),
        Rule("gross_exposure", False, _glob("gross_exposure", abs), cfg.gross_exposure_reduce,
             cfg.gross_exposure_halt),
        Rule("net_exposure", False, _glob("net_exposure", abs), cfg.net_exposure_reduce, cfg.net_exposure_halt),
        Rule("symbol_exposure", True, _sym("exposure", abs), cfg.symbol_exposure_reduce, cfg.symbol_exposure_halt),
    ]


class TriggerEngine:
    """Evaluates the rules on each observation and tightens the persisted trading state when they fire."""

    def __init__(self, store: Store, trigger_config: TriggerConfig) -> None:
        if not 0 < trigger_config.hysteresis <= 1:
            raise ValueError(f"triggers.hysteresis: must be in (0, 1], got {trigger_config.hysteresis}")
        self.store = store
        self.cfg = trigger_config
        self.rules = build_rules(trigger_config)
        self._latches: dict[tuple[str, str], _Latch] = self._load_latches()

    def _load_latches(self) -> dict[tuple[str, str], _Latch]:
        """Rebuild latches from the audit log: the last fired/cleared row per (rule, key) wins."""
        stmt = (select(audit_log.c.action, audit_log.c.details, audit_log.c.ts)
                .where(audit_log.c.action.in_(("trigger.fired", "trigger.cleared"))).order_by(audit_log.c.id))
        latches: dict[tuple[str, str], _Latch] = {}
        with self.store.connect() as conn:
            for action, details, ts in conn.execute(stmt):
                d = json.loads(details)
                key = (d["rule"], d["key"])
                if action == "trigger.cleared":
                    latches.pop(key, None)
                else:
                    latches[key] = _Latch(TradingState(d["level"]), int(ts))
        return latches

    @property
    def latched(self) -> dict[tuple[str, str], TradingState]:
        """Currently latched (rule, key) pairs and the level each fired at."""
        return {k: v.level for k, v in self._latches.items()}

    def _keys(self, rule: Rule, obs: TriggerObservation) -> list[str]:
        return sorted(obs.symbols) if rule.per_symbol else [GLOBAL_KEY]

    def evaluate(self, obs: TriggerObservation) -> list[Firing]:
        """Check every rule against the observation; fire, latch or clear; returns the firings."""
        ts = obs.ts or now_ms()
        state = get_state(self.store)
        operator_loosened = state.changed_by in OPERATOR_SOURCES
        firings: list[Firing] = []
        for rule in self.rules:
            for key in self._keys(rule, obs):
                value = rule.read(obs, key)
                if value is None or not math.isfinite(value):
                    continue
                latch = self._latches.get((rule.name, key))
                if latch is not None and operator_loosened and state.changed_at > latch.fired_at \
                        and _SEVERITY[state.state] < _SEVERITY[latch.level]:
                    latch = None  # the operator resumed after this latch fired: it is acknowledged
                level = rule.level(value)
                if level is not TradingState.ACTIVE and (latch is None or _SEVERITY[level] > _SEVERITY[latch.level]):
                    firings.append(self._fire(rule, key, value, level, ts))
                    continue
                if latch is not None:
                    self._maybe_clear(rule, key, value, latch, ts)
        return firings

    def _fire(self, rule: Rule, key: str, value: float, level: TradingState, ts: int) -> Firing:
        threshold = rule.halt if level is TradingState.HALTED else rule.reduce
        if threshold is None:
            raise ValueError(f"rule {rule.name}: fired at {level.value} without a threshold for it")
        where = "" if key == GLOBAL_KEY else f" on {key}"
        with self.store.begin() as conn:
            current = read_state(conn).state  # read inside the transaction that tightens it
            target = level if _SEVERITY[level] > _SEVERITY[current] else current
            reason = f"trigger.{rule.name}{where}: {value:.6g} crossed {threshold:.6g} -> {level.value}"
            values = {"rule": rule.name, "key": key, "value": value, "threshold": threshold, "level": level.value,
                      "from": current.value, "to": target.value, "obs_ts": ts}
            if target is not current:  # on a several-engine desk, this engine's own scope
                set_state(conn, target, reason, source="trigger", user="trigger", values=values,
                          scope=own_state_scope(conn))
            severity = "critical" if level is TradingState.HALTED else "warning"
            alert_id = raise_alert(conn, severity, f"trigger.{rule.name}", reason, values, source="trigger")
            audit_id = audit(conn, "trigger", "trigger.fired", dict(values, alert_id=alert_id), user="trigger")
        self._latches[(rule.name, key)] = _Latch(level, now_ms())
        return Firing(rule.name, key, value, threshold, level, current, target, alert_id, audit_id)

    def _maybe_clear(self, rule: Rule, key: str, value: float, latch: _Latch, ts: int) -> None:
        if not rule.safe(value, self.cfg.hysteresis):
            latch.safe_since = None
            return
        if latch.safe_since is None:
            latch.safe_since = ts
        if ts - latch.safe_since >= self.cfg.clear_after_s * 1000:
            audit(self.store, "trigger", "trigger.cleared",
                  {"rule": rule.name, "key": key, "value": value, "level": latch.level.value, "obs_ts": ts},
                  user="trigger")
            del self._latches[(rule.name, key)]
