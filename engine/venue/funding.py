"""USD-M funding on the twin: settled into the futures wallet at every funding time, and the income history.

- Settlement (Binance: 00:00, 08:00, 16:00 UTC): each position held at the funding time pays `qty x mark x rate` (a
  positive rate: longs pay shorts) from the USDT wallet (the twin settles on its next tick, with the position of the
  funding time), recorded as a FUNDING_FEE income. The first look at a symbol only remembers the
  latest funding time (a twin started mid-period charges nothing retroactively); later ticks settle every funding time
  since, once (venue.db meta `funding_settled:<symbol>`).
- GET /fapi/v1/income (symbol, incomeType, startTime, endTime, limit <= 1000, default 100): FUNDING_FEE rows, plus
  REALIZED_PNL and COMMISSION of every USD-M fill, in Binance's shape (symbol, incomeType, income, asset, info, time,
  tranId, tradeId), oldest first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.venue.errors import VenueError
from engine.venue.markets import FUTURES, Listing, fmt, parse_int

if TYPE_CHECKING:
    from engine.venue.server import Twin

SIGNED = "signed"
TYPES = ("FUNDING_FEE", "REALIZED_PNL", "COMMISSION")
FILL_TRAN_BASE = 10**12  # tranIds of fill-derived incomes sit above the income table's own


def settle(twin: "Twin", listing: Listing) -> int:
    """Settle every funding time of a perpetual since the last one settled; returns the payments booked."""
    books = twin.books
    key = f"funding_settled:{listing.symbol}"
    last = books.meta(key)
    settled = twin.sim.fetch_funding_rate_history(listing.symbol, limit=1) if last is None else \
        twin.sim.fetch_funding_rate_history(listing.symbol, since=int(last) + 1)
    if not settled:
        return 0
    if last is None:  # first look: nothing retroactive
        books.set_meta(key, str(int(settled[-1]["timestamp"])))
        return 0
    paid = 0
    with books.tx():
        for row in settled:
            qty = _qty_at(twin, listing, int(row["timestamp"]))  # the position at the funding time, as Binance
            if abs(qty) > 1e-12:
                fee = qty * twin.feed.last_price(listing) * float(row["fundingRate"])
                books.move(FUTURES, "USDT", free=-fee)
                books.conn.execute("INSERT INTO income (symbol, type, income, asset, time) VALUES (?, ?, ?, ?, ?)",
                                   (listing.symbol, "FUNDING_FEE", -fee, "USDT", int(row["timestamp"])))
                paid += 1
            books.set_meta(key, str(int(row["timestamp"])))
    return paid


def _qty_at(twin: "Twin", listing: Listing, ts: int) -> float:
    """The USD-M position of a symbol at time `ts` (its fills up to then; the twin ticks after the funding time)."""
    row = twin.books.conn.execute("SELECT COALESCE(SUM(CASE side WHEN 'BUY' THEN qty ELSE -qty END), 0) FROM fills "
                                  "WHERE wallet=? AND symbol=? AND time <= ?", (FUTURES, listing.symbol, ts)).fetchone()
    return round(float(row[0]), 10)


def income(twin: "Twin", market: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /fapi/v1/income."""
    kind = (params.get("incomeType") or "").upper() or None
    if kind is not None and kind not in TYPES + ("TRANSFER", "WELCOME_BONUS", "INSURANCE_CLEAR"):
        raise VenueError(-1130, "Data sent for parameter 'incomeType' is not valid.")
    symbol = twin.listings.get(FUTURES, params["symbol"]).symbol if params.get("symbol") else None
    start, end = parse_int(params, "startTime") or 0, parse_int(params, "endTime") or 2**62
    limit = min(parse_int(params, "limit", 100) or 100, 1000)
    rows: list[tuple[int, int, str, str, float, str]] = []  # (time, tranId, symbol, type, income, tradeId)
    for r in twin.books.conn.execute("SELECT * FROM income WHERE time BETWEEN ? AND ?", (start, end)):
        rows.append((int(r["time"]), int(r["tran_id"]), r["symbol"], r["type"], float(r["income"]), ""))
    for f in twin.books.conn.execute("SELECT * FROM fills WHERE wallet=? AND time BETWEEN ? AND ?",
                                     (FUTURES, start, end)):
        tid = FILL_TRAN_BASE + 2 * int(f["trade_id"])
        if f["realized_pnl"]:
            rows.append((int(f["time"]), tid, f["symbol"], "REALIZED_PNL", float(f["realized_pnl"]),
                         str(f["trade_id"])))
        rows.append((int(f["time"]), tid + 1, f["symbol"], "COMMISSION", -float(f["commission"]), str(f["trade_id"])))
    rows = sorted(r for r in rows if (symbol is None or r[2] == symbol) and (kind is None or r[3] == kind))
    return [{"symbol": twin.listings.by_symbol(s).id, "incomeType": t, "income": fmt(v, 8), "asset": "USDT",
             "info": t, "time": ts, "tranId": tran, "tradeId": trade} for ts, tran, s, t, v, trade in rows[:limit]]


def routes() -> dict[tuple[str, str], tuple[Any, str, int, str]]:
    """(method, path) -> (handler, market, weight, security) of the income endpoint."""
    return {("GET", "/fapi/v1/income"): (income, FUTURES, 30, SIGNED)}
