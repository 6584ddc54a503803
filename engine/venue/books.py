"""The twin's ledger in its own SQLite file (`--state venue.db`): balances, orders, fills and USD-M positions.

Two wallets like a Binance account: "spot" (asset balances, free + locked) and "futures" (USDT wallet balance; the
margin in use is derived from positions and open orders). The twin's event loop is the only writer; `venue status`
reads the same file. Secrets are never stored here.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS balances (wallet TEXT NOT NULL, asset TEXT NOT NULL, free REAL NOT NULL DEFAULT 0,
    locked REAL NOT NULL DEFAULT 0, PRIMARY KEY (wallet, asset));
CREATE TABLE IF NOT EXISTS orders (order_id INTEGER PRIMARY KEY AUTOINCREMENT, wallet TEXT NOT NULL,
    symbol TEXT NOT NULL, market_id TEXT NOT NULL, client_id TEXT NOT NULL, side TEXT NOT NULL, type TEXT NOT NULL,
    tif TEXT, price REAL, stop_price REAL, qty REAL NOT NULL, executed REAL NOT NULL DEFAULT 0,
    cum_quote REAL NOT NULL DEFAULT 0, status TEXT NOT NULL, reduce_only INTEGER NOT NULL DEFAULT 0,
    triggered INTEGER NOT NULL DEFAULT 1, locked REAL NOT NULL DEFAULT 0, created INTEGER NOT NULL,
    updated INTEGER NOT NULL, algo INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS orders_client ON orders (wallet, client_id);
CREATE INDEX IF NOT EXISTS orders_status ON orders (status);
CREATE TABLE IF NOT EXISTS fills (trade_id INTEGER PRIMARY KEY AUTOINCREMENT, order_id INTEGER NOT NULL,
    wallet TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, price REAL NOT NULL, qty REAL NOT NULL,
    quote_qty REAL NOT NULL, commission REAL NOT NULL, commission_asset TEXT NOT NULL, maker INTEGER NOT NULL,
    realized_pnl REAL NOT NULL DEFAULT 0, time INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS positions (symbol TEXT PRIMARY KEY, qty REAL NOT NULL DEFAULT 0,
    entry_price REAL NOT NULL DEFAULT 0, leverage INTEGER NOT NULL DEFAULT 20);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS income (tran_id INTEGER PRIMARY KEY AUTOINCREMENT, symbol TEXT NOT NULL,
    type TEXT NOT NULL, income REAL NOT NULL, asset TEXT NOT NULL, time INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS order_lists (list_id INTEGER PRIMARY KEY AUTOINCREMENT, symbol TEXT NOT NULL,
    market_id TEXT NOT NULL, list_client_id TEXT NOT NULL, contingency TEXT NOT NULL DEFAULT 'OCO',
    status_type TEXT NOT NULL, order_status TEXT NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL);
"""
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
DEFAULT_BALANCES = {"spot": {"USDT": 100_000.0}, "futures": {"USDT": 100_000.0}}


class Books:
    """The twin's SQLite ledger (one connection; the server's event loop is the only writer)."""

    def __init__(self, path: str | Path, initial: dict[str, dict[str, float]] | None = None) -> None:
        self.path = str(path)
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA busy_timeout=5000")
        self.conn.executescript(SCHEMA)
        if "algo" not in {r["name"] for r in self.conn.execute("PRAGMA table_info(orders)")}:
            self.conn.execute("ALTER TABLE orders ADD COLUMN algo INTEGER NOT NULL DEFAULT 0")  # a venue.db of before
        if "list_id" not in {r["name"] for r in self.conn.execute("PRAGMA table_info(orders)")}:  # OCO legs
            self.conn.execute("ALTER TABLE orders ADD COLUMN list_id INTEGER NOT NULL DEFAULT -1")
        if self.conn.execute("SELECT value FROM meta WHERE key='created'").fetchone() is None:
            with self.tx():
                self.conn.execute("INSERT INTO meta VALUES ('created', ?)", (str(int(time.time() * 1000)),))
                self.conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('orders', 1000000)")
                for wallet, assets in (initial or DEFAULT_BALANCES).items():
                    for asset, amount in assets.items():
                        self.conn.execute("INSERT INTO balances (wallet, asset, free) VALUES (?, ?, ?)",
                                          (wallet, asset, float(amount)))

    def meta(self, key: str) -> str | None:
        """A value of the meta table (None when unset)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        """Set a value of the meta table."""
        self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                          "value=excluded.value", (key, value))

    def tx(self) -> Any:
        """A transaction context (BEGIN IMMEDIATE ... COMMIT/ROLLBACK)."""
        return _Tx(self.conn)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    # ----- balances ---------------------------------------------------------------------------------------------
    def balance(self, wallet: str, asset: str) -> tuple[float, float]:
        """(free, locked) of one asset."""
        row = self.conn.execute("SELECT free, locked FROM balances WHERE wallet=? AND asset=?",
                                (wallet, asset)).fetchone()
        return (float(row["free"]), float(row["locked"])) if row else (0.0, 0.0)

    def balances(self, wallet: str) -> dict[str, tuple[float, float]]:
        """Every asset of a wallet as (free, locked)."""
        rows = self.conn.execute("SELECT asset, free, locked FROM balances WHERE wallet=? ORDER BY asset",
                                 (wallet,))
        return {r["asset"]: (float(r["free"]), float(r["locked"])) for r in rows}

    def move(self, wallet: str, asset: str, free: float = 0.0, locked: float = 0.0) -> None:
        """Add deltas to an asset's free and locked amounts (rounding dust to zero)."""
        self.conn.execute("INSERT INTO balances (wallet, asset, free, locked) VALUES (?, ?, 0, 0) "
                          "ON CONFLICT (wallet, asset) DO NOTHING", (wallet, asset))
        self.conn.execute("UPDATE balances SET free = round(free + ?, 10), locked = round(locked + ?, 10) "
                          "WHERE wallet=? AND asset=?", (free, locked, wallet, asset))

    # ----- orders -----------------------------------------------------------------------------------------------
    def insert_order(self, **values: Any) -> int:
        """Insert an order row; returns its order id."""
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cur = self.conn.execute(f"INSERT INTO orders ({cols}) VALUES ({marks})", tuple(values.values()))
        return int(cur.lastrowid or 0)

    def update_order(self, order_id: int, **values: Any) -> None:
        """Update some columns of an order."""
        sets = ", ".join(f"{k}=?" for k in values)
        self.conn.execute(f"UPDATE orders SET {sets} WHERE order_id=?", (*values.values(), order_id))

    def order(self, wallet: str, order_id: int | None = None, client_id: str | None = None) -> dict[str, Any] | None:
        """One order by id or client id (the newest with that client id)."""
        if order_id is not None:
            row = self.conn.execute("SELECT * FROM orders WHERE wallet=? AND order_id=?", (wallet, order_id))
        else:
            row = self.conn.execute("SELECT * FROM orders WHERE wallet=? AND client_id=? ORDER BY order_id DESC "
                                    "LIMIT 1", (wallet, client_id))
        found = row.fetchone()
        return dict(found) if found else None

    def open_orders(self, wallet: str | None = None, symbol: str | None = None,
                    algo: bool | None = None) -> list[dict[str, Any]]:
        """Open orders, oldest first (optionally of one wallet and symbol). `algo`: True = only USD-M conditional
        orders not yet triggered (the Algo Order API's view), False = only the others (openOrders' view)."""
        sql = "SELECT * FROM orders WHERE status IN ('NEW', 'PARTIALLY_FILLED')"
        if algo is not None:
            sql += " AND " + ("" if algo else "NOT ") + "(algo = 1 AND triggered = 0)"
        args: list[Any] = []
        if wallet is not None:
            sql += " AND wallet=?"
            args.append(wallet)
        if symbol is not None:
            sql += " AND symbol=?"
            args.append(symbol)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY order_id", args)]

    def orders(self, wallet: str, symbol: str, since: int | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """All orders of a symbol (allOrders), oldest first."""
        rows = self.conn.execute("SELECT * FROM orders WHERE wallet=? AND symbol=? AND created >= ? ORDER BY "
                                 "order_id LIMIT ?", (wallet, symbol, since or 0, limit))
        return [dict(r) for r in rows]

    def order_count(self) -> int:
        """Number of orders ever accepted."""
        return int(self.conn.execute("SELECT count(*) FROM orders").fetchone()[0])

    # ----- order lists (spot OCO) -------------------------------------------------------------------------------
    def insert_list(self, **values: Any) -> int:
        """Insert an order list row; returns its orderListId."""
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        return int(self.conn.execute(f"INSERT INTO order_lists ({cols}) VALUES ({marks})",
                                     tuple(values.values())).lastrowid or 0)

    def update_list(self, list_id: int, **values: Any) -> None:
        """Update some columns of an order list."""
        sets = ", ".join(f"{k}=?" for k in values)
        self.conn.execute(f"UPDATE order_lists SET {sets} WHERE list_id=?", (*values.values(), list_id))

    def order_list(self, list_id: int | None = None, list_client_id: str | None = None) -> dict[str, Any] | None:
        """One order list by orderListId or listClientOrderId (the newest with that client id)."""
        if list_id is not None:
            row = self.conn.execute("SELECT * FROM order_lists WHERE list_id=?", (list_id,)).fetchone()
        else:
            row = self.conn.execute("SELECT * FROM order_lists WHERE list_client_id=? ORDER BY list_id DESC LIMIT 1",
                                    (list_client_id,)).fetchone()
        return dict(row) if row else None

    def open_lists(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Order lists still executing (openOrderList), oldest first."""
        sql, args = "SELECT * FROM order_lists WHERE status_type='EXEC_STARTED'", []
        if symbol is not None:
            sql, args = sql + " AND symbol=?", [symbol]
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY list_id", args)]

    def list_orders(self, list_id: int) -> list[dict[str, Any]]:
        """The legs of an order list, in the order they were placed."""
        return [dict(r) for r in self.conn.execute("SELECT * FROM orders WHERE list_id=? ORDER BY order_id",
                                                   (list_id,))]

    # ----- fills and positions ----------------------------------------------------------------------------------
    def insert_fill(self, **values: Any) -> int:
        """Record one fill; returns its trade id."""
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cur = self.conn.execute(f"INSERT INTO fills ({cols}) VALUES ({marks})", tuple(values.values()))
        return int(cur.lastrowid or 0)

    def fills(self, wallet: str, symbol: str, since: int | None = None, limit: int = 500,
              order_id: int | None = None) -> list[dict[str, Any]]:
        """Fills of a symbol (myTrades / userTrades), oldest first."""
        sql = "SELECT * FROM fills WHERE wallet=? AND symbol=? AND time >= ?"
        args: list[Any] = [wallet, symbol, since or 0]
        if order_id is not None:
            sql += " AND order_id=?"
            args.append(order_id)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY trade_id LIMIT ?", (*args, limit))]

    def position(self, symbol: str) -> dict[str, Any]:
        """The USD-M position of a symbol (qty 0 when flat)."""
        row = self.conn.execute("SELECT * FROM positions WHERE symbol=?", (symbol,)).fetchone()
        return dict(row) if row else {"symbol": symbol, "qty": 0.0, "entry_price": 0.0, "leverage": 20}

    def positions(self) -> list[dict[str, Any]]:
        """Every USD-M position row (including flat ones that have a leverage set)."""
        return [dict(r) for r in self.conn.execute("SELECT * FROM positions ORDER BY symbol")]

    def set_position(self, symbol: str, qty: float, entry_price: float, leverage: int | None = None) -> None:
        """Write a position's size and entry price (and leverage when given)."""
        lev = leverage if leverage is not None else int(self.position(symbol)["leverage"])
        self.conn.execute("INSERT INTO positions (symbol, qty, entry_price, leverage) VALUES (?, ?, ?, ?) "
                          "ON CONFLICT (symbol) DO UPDATE SET qty=excluded.qty, entry_price=excluded.entry_price, "
                          "leverage=excluded.leverage", (symbol, round(qty, 10), entry_price, lev))


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT/ROLLBACK; a transaction opened inside another joins it (an OCO places its legs
    inside the list's transaction: all or nothing)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.outer = False

    def __enter__(self) -> sqlite3.Connection:
        self.outer = not self.conn.in_transaction
        if self.outer:
            self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.outer:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def status_summary(path: str | Path) -> dict[str, Any]:
    """`venue status --json`: balances {asset: total} (spot), futures balances, positions, open orders, count."""
    uri = f"file:{Path(path).resolve()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    conn.row_factory = sqlite3.Row
    try:
        bal: dict[str, dict[str, float]] = {"spot": {}, "futures": {}}
        for r in conn.execute("SELECT wallet, asset, free + locked AS total FROM balances ORDER BY asset"):
            bal.setdefault(r["wallet"], {})[r["asset"]] = round(float(r["total"]), 10)
        positions = [{"symbol": r["symbol"], "qty": float(r["qty"]), "entry_price": float(r["entry_price"]),
                      "leverage": int(r["leverage"])}
                     for r in conn.execute("SELECT * FROM positions WHERE qty != 0 ORDER BY symbol")]
        opened = [{"order_id": r["order_id"], "client_order_id": r["client_id"], "symbol": r["symbol"],
                   "side": r["side"], "type": r["type"], "price": r["price"], "qty": r["qty"],
                   "executed": r["executed"], "status": r["status"]}
                  for r in conn.execute("SELECT * FROM orders WHERE status IN ('NEW', 'PARTIALLY_FILLED') "
                                        "ORDER BY order_id")]
        count = int(conn.execute("SELECT count(*) FROM orders").fetchone()[0])
        fills = int(conn.execute("SELECT count(*) FROM fills").fetchone()[0])
    finally:
        conn.close()
    return {"balances": bal["spot"], "futures_balances": bal["futures"], "positions": positions,
            "open_orders": opened, "order_count": count, "fill_count": fills}


