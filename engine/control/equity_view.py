"""The desk's equity as the header and `quantdesk status` show it: the sum over the desk's engines.

Each engine snapshots its own portfolio total (scope `portfolio` for main, `portfolio:<name>` for any other; see
engine/store/engines.py), so a desk with several engines has one equity series per engine. The desk's numbers are:
equity and exposures = the sum of each engine's latest snapshot; day P&L = the sum of each engine's P&L since its
market-day open; drawdown = 1 - equity / the sum of the engines' peaks (never smaller than the drawdown of the summed
series, so the header never understates it). On a desk with one engine every number is the one it always was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from engine.store.engines import MAIN

DAY_MS = 86_400_000


def _one(conn: Connection, sql: str, **params: Any) -> dict[str, Any] | None:
    row = conn.execute(text(sql), params).mappings().first()
    return dict(row) if row is not None else None


class PeakTracker:
    """Each engine's portfolio equity peak, read incrementally (only snapshots newer than the last read are scanned)."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}
        self._peak: dict[str, float] = {}

    def update(self, conn: Connection, scope: str = "portfolio") -> float | None:
        """Fold in the snapshots of `scope` written since the last call; its peak so far (None when there are none)."""
        seen = self._seen.get(scope, -1)
        got = _one(conn, "SELECT MAX(equity) AS peak, MAX(ts) AS ts FROM equity_snapshots WHERE scope=:s AND ts > :t",
                   s=scope, t=seen)
        if got and got["ts"] is not None:
            self._seen[scope] = int(got["ts"])
            self._peak[scope] = max(self._peak.get(scope, float("-inf")), float(got["peak"]))
        return self._peak.get(scope)


def day_open_equity(conn: Connection, last_ts: int, scope: str = "portfolio") -> float | None:
    """`scope`'s equity at the start of the market day of `last_ts` (the last close before it, else its first)."""
    day_start = last_ts - last_ts % DAY_MS
    row = _one(conn, "SELECT equity FROM equity_snapshots WHERE scope=:s AND ts <= :d ORDER BY ts DESC LIMIT 1",
               s=scope, d=day_start)
    if row is None:
        row = _one(conn, "SELECT equity FROM equity_snapshots WHERE scope=:s AND ts >= :d ORDER BY ts LIMIT 1",
                   s=scope, d=day_start)
    return float(row["equity"]) if row else None


@dataclass(frozen=True)
class DeskEquity:
    """The desk's equity numbers (sums over its engines)."""

    ts: int
    equity: float
    gross_exposure: float
    net_exposure: float
    day_pnl: float | None
    drawdown: float | None


def portfolio_scopes(conn: Connection) -> list[str]:
    """The equity-snapshot scope of every engine of the desk, main's (`portfolio`) first."""
    names = [str(r[0] or MAIN) for r in conn.execute(text("SELECT name FROM engine_status ORDER BY id"))]
    return ["portfolio"] + [f"portfolio:{n}" for n in dict.fromkeys(names) if n != MAIN]


def desk_equity(conn: Connection, peak: PeakTracker | None = None) -> DeskEquity | None:
    """The desk's equity, exposures, day P&L and drawdown from each engine's latest snapshot; None before any."""
    peak = peak or PeakTracker()
    parts = []
    for scope in portfolio_scopes(conn):
        last = _one(conn, "SELECT ts, equity, gross_exposure, net_exposure FROM equity_snapshots WHERE scope=:s "
                          "ORDER BY ts DESC LIMIT 1", s=scope)
        if last is not None:
            parts.append((scope, last, day_open_equity(conn, int(last["ts"]), scope), peak.update(conn, scope)))
    if not parts:
        return None
    equity = sum(float(p[1]["equity"]) for p in parts)
    opens = [p[2] for p in parts]
    peaks = [p[3] for p in parts]
    top = sum(peaks) if all(pk is not None for pk in peaks) else None
    return DeskEquity(
        ts=max(int(p[1]["ts"]) for p in parts), equity=equity,
        gross_exposure=sum(float(p[1]["gross_exposure"]) for p in parts),
        net_exposure=sum(float(p[1]["net_exposure"]) for p in parts),
        day_pnl=equity - sum(opens) if all(o is not None for o in opens) else None,  # type: ignore[arg-type]
        drawdown=max(0.0, 1.0 - equity / top) if top else None)
