"""Cell formatting shared by the screens (runs in worker threads, so it must stay pure)."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from rich.text import Text

from engine.clock import timeframe_ms

DASH = "—"
YEAR_MS = 365 * 86_400_000  # crypto trades every day: the backtest's periods_per_year uses the same year
SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}
STATE_STYLE = {"ACTIVE": "bold black on green", "REDUCING": "bold black on yellow", "HALTED": "bold white on red",
               "HALTING": "bold yellow on red"}


def money(value: float | None, signed: bool = False) -> str:
    """A currency amount with thousands separators (a dash for unknown)."""
    if value is None:
        return DASH
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def whole(value: float | None, signed: bool = False) -> str:
    """A currency amount without cents (for the crowded header)."""
    if value is None:
        return DASH
    return f"{value:+,.0f}" if signed else f"{value:,.0f}"


def pnl(value: float | None) -> Text:
    """A signed P&L coloured green/red."""
    if value is None:
        return Text(DASH)
    return Text(f"{value:+,.2f}", style="green" if value >= 0 else "red")


def pct(value: float | None, signed: bool = False, digits: int = 2) -> str:
    """A fraction as a percentage."""
    if value is None:
        return DASH
    return f"{value * 100:+.{digits}f}%" if signed else f"{value * 100:.{digits}f}%"


def num(value: float | None, digits: int = 4) -> str:
    """A plain number with a fixed number of significant decimals."""
    if value is None:
        return DASH
    return f"{value:.{digits}f}"


def qty(value: float | None) -> str:
    """A signed base-currency quantity."""
    if value is None:
        return DASH
    return f"{value:+.6g}"


def annualised(sharpe_per_bar: float | None, timeframe: str | None) -> float | None:
    """A per-bar Sharpe ratio annualised over a 24/7 year of bars of this timeframe (None when either is unknown)."""
    if sharpe_per_bar is None or not timeframe:
        return None
    try:
        bars_per_year = YEAR_MS / timeframe_ms(timeframe)
    except ValueError:
        return None
    return sharpe_per_bar * math.sqrt(bars_per_year)


def repeats(count: int | None) -> str:
    """How many alerts share a rule and message ('×3'; blank for a single one)."""
    return f"×{count}" if count and count > 1 else ""


def alert_detail(r: dict[str, Any]) -> str:
    """The whole alert as plain text for the detail panel: message, when, what raised it, its values, its repeats."""
    lines = [str(r["message"]), "", f"raised {stamp(r['ts'])} UTC by {r.get('source') or DASH}, rule {r['rule']}"]
    try:
        values = json.loads(r.get("values_json") or "{}")
    except ValueError:
        values = {"values_json": r.get("values_json")}
    values = values if isinstance(values, dict) else {"values": values}
    count = int(r.get("repeats") or 1)
    first = values.get("first_ts") or r.get("first_ts")  # a merge_key alert keeps its first time in its values
    lines.append(f"{count} alert{'s' if count != 1 else ''} with this rule and message"
                 + (f", first {stamp(first)} UTC" if count > 1 and first else ""))
    if r.get("acked"):
        lines.append(f"acknowledged by {r.get('acked_by') or DASH}")
    if values:
        lines += ["", "values:"] + [f"  {k} = {v}" for k, v in values.items()]
    return "\n".join(lines)


def clock(ts_ms: int | None) -> str:
    """UTC wall time (HH:MM:SS) of an epoch-ms timestamp."""
    if not ts_ms:
        return DASH
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.timezone.utc).strftime("%H:%M:%S")


def stamp(ts_ms: int | float | None) -> str:
    """UTC date and time of an epoch-ms timestamp."""
    if not ts_ms:
        return DASH
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def due(ts_ms: int | float | None, now: int) -> str:
    """When a scheduled run is due: 'HH:MM:SS in 25s' within a day of now (a 30 s job's next run needs seconds),
    the UTC date and time beyond; 'overdue' when it is in the past."""
    if not ts_ms:
        return DASH
    ahead = ts_ms - now
    if abs(ahead) >= 86_400_000:
        return stamp(ts_ms)
    return f"{clock(int(ts_ms))} " + (f"in {age(ahead)}" if ahead >= 0 else "overdue")


def age(ms: int | float | None) -> str:
    """A duration in ms as a short human age (3s, 4m, 2h, 5d)."""
    if ms is None:
        return DASH
    s = max(0.0, ms / 1000)
    if s < 90:
        return f"{s:.0f}s"
    if s < 5400:
        return f"{s / 60:.0f}m"
    if s < 172800:
        return f"{s / 3600:.0f}h"
    return f"{s / 86400:.0f}d"


def severity(value: str) -> Text:
    """An alert severity in its colour."""
    return Text(value.upper(), style=SEVERITY_STYLE.get(value, ""))


def side(value: str | int) -> Text:
    """Buy/long in green, sell/short in red."""
    label = {1: "long", -1: "short", 0: "flat"}.get(value, str(value)) if isinstance(value, int) else value
    style = "green" if label in ("buy", "long") else "red" if label in ("sell", "short") else "dim"
    return Text(label, style=style)
