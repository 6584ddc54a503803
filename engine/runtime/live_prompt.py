"""What an operator sees before a live start: exchange, account, every instance with stage, broker and capital, the
risk budget, and the NAMES of the environment variables the keys come from (never their values)."""

from __future__ import annotations

from typing import Any, Mapping

from engine.config import Settings
from engine.execution.live_start import KEY_ENV_NAMES, account_summary, base_url_of, connect_exchange, live_symbols
from engine.execution.router import EXCHANGE_STAGES, broker_label
from engine.trading.lifecycle import seed_stage


def planned_instances(settings: Settings) -> list[dict[str, Any]]:
    """Each enabled instance with the stage it will trade at (stored stage, else its seed stage), broker, capital."""
    stored: dict[str, str] = {}
    try:
        from engine.store import open_readonly
        from engine.trading.lifecycle import list_instances

        ro = open_readonly(settings.store_url())
        try:
            stored = {i.id: i.stage for i in list_instances(ro)}
        finally:
            ro.dispose()
    except Exception:  # noqa: BLE001 - no state.db yet: a fresh desk seeds from config (never past paper)
        stored = {}
    out = []
    frac = settings.lifecycle.live_small_fraction
    for inst_id, cfg in sorted(settings.strategies.items()):
        if not cfg.enabled:
            continue
        stage = stored.get(inst_id, seed_stage(cfg.stage))
        capital = cfg.capital * (frac if stage == "live-small" else 1.0)
        out.append({"id": inst_id, "strategy": cfg.strategy or inst_id, "stage": stage,
                    "broker": broker_label(stage, True, settings.data.source.split(":", 1)[-1]),
                    "capital": capital, "configured_capital": cfg.capital, "configured_stage": cfg.stage})
    return out


def risk_budget(settings: Settings) -> dict[str, float]:
    """The account-level limits a live desk runs under (shown in the prompt)."""
    t, r = settings.triggers, settings.risk
    return {"daily loss reduce/halt": (t.daily_drawdown_reduce, t.daily_drawdown_halt),
            "drawdown from peak reduce/halt": (t.total_drawdown_reduce, t.total_drawdown_halt),
            "gross leverage max": r.max_portfolio_leverage, "per-symbol gross max": r.max_symbol_fraction,
            "per-instance gross max": r.max_strategy_fraction}


def live_start_lines(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """The summary printed before the LIVE confirmation; connects to the exchange (LiveStartError when it cannot)."""
    exchange = connect_exchange(settings, environ)
    instances = planned_instances(settings)
    lines = [f"LIVE TRADING with real money on {exchange.id}"
             + (f" at {base_url_of(settings)}" if base_url_of(settings) else "")]
    acct = account_summary(exchange, live_symbols(settings))
    shown = ", ".join(f"{a} {v:,.8g}" for a, v in list(acct.items())[:8]) or "no balances"
    lines.append(f"account    : {shown}")
    lines.append("instances  :")
    for i in instances:
        note = f" ({settings.lifecycle.live_small_fraction:.0%} of {i['configured_capital']:,.2f})" \
            if i["stage"] == "live-small" else ""
        seeded = (f"  [config says {i['configured_stage']}; seeded at {i['stage']}, promote to go further]"
                  if i["stage"] == seed_stage(i["configured_stage"]) != i["configured_stage"] else "")
        lines.append(f"  {i['id']:<18} stage {i['stage']:<10} broker {i['broker']:<22} capital "
                     f"{i['capital']:>12,.2f}{note}{seeded}")
    if not any(i["stage"] in EXCHANGE_STAGES for i in instances):
        lines.append("  no instance is at live-small or live: nothing will trade on the exchange")
    budget = ", ".join(f"{k} {v[0]:.1%}/{v[1]:.1%}" if isinstance(v, tuple) else f"{k} {v:g}"
                       for k, v in risk_budget(settings).items())
    lines.append(f"risk budget: {budget}")
    lines.append(f"keys       : from the environment variables {' and '.join(KEY_ENV_NAMES)} (values not shown)")
    return lines
