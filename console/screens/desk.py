"""Desk: positions, open orders, the sizing panel, latest alerts and the equity curve under the status header."""

from __future__ import annotations

from typing import Any, Callable, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.message import Message
from textual.widgets import DataTable

from console.messages import DeskRefreshed, Rows
from console.screens.alerts import show_alert
from console.screens.base import PolledScreen
from console.widgets import fmt
from console.widgets.chart import SeriesChart
from console.widgets.keyed_table import KeyedTable
from console.widgets.nav import hint

POSITION_COLUMNS = [("strategy", "Strategy"), ("symbol", "Symbol"), ("qty", "Qty"), ("avg", "Avg"),
                    ("mark", "Mark"), ("upnl", "uPnL"), ("rpnl", "rPnL")]
ORDER_COLUMNS = [("created", "Time"), ("strategy", "Strategy"), ("symbol", "Symbol"), ("side", "Side"),
                 ("type", "Type"), ("qty", "Qty"), ("price", "Price"), ("filled", "Filled"), ("status", "Status")]
SIZING_COLUMNS = [("strategy", "Strategy"), ("symbol", "Symbol"), ("side", "Side"), ("prob", "P(meta)"),
                  ("kelly", "Kelly"), ("cap", "Cap"), ("size", "Size"), ("vpin", "VPIN cdf"),
                  ("spread", "Spr bps"), ("depth", "Depth")]
ALERT_COLUMNS = [("time", "Time"), ("sev", "Sev"), ("rule", "Rule"), ("repeats", "×"), ("message", "Message")]


def position_cells(r: tuple[Any, ...]) -> tuple[Any, ...]:
    """Cells of one position (instance, symbol, qty, avg, realized, mark, unrealized)."""
    inst, sym, qty, avg, realized, mark, unrealized = r
    return (inst, sym, fmt.qty(qty), fmt.money(avg), fmt.money(mark), fmt.pnl(unrealized), fmt.pnl(realized))


def order_cells(r: tuple[Any, ...]) -> tuple[Any, ...]:
    """Cells of one open order (times, not ages, so a quiet book touches no cells)."""
    _coid, created, inst, sym, side, otype, qty, price, filled, reduce_only, status = r
    return (fmt.clock(created), inst, sym, fmt.side(side), otype + (" RO" if reduce_only else ""), f"{qty:.6g}",
            fmt.money(price) if price else "mkt", f"{filled:.6g}", status)


class RowFormatter:
    """Formats only rows whose raw values changed since the last read (a busy book re-formats a handful of rows)."""

    def __init__(self, key: Callable[[tuple[Any, ...]], str], cells: Callable[[tuple[Any, ...]], tuple[Any, ...]]) -> None:
        self.key = key
        self.cells = cells
        self._cache: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.formatted = 0

    def rows(self, raw_rows: list[tuple[Any, ...]]) -> Rows:
        """{row key: cells} for these raw rows, reusing cells of unchanged rows."""
        out: Rows = {}
        cache: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for raw in raw_rows:
            cells = self._cache.get(raw)
            if cells is None:
                cells = self.cells(raw)
                self.formatted += 1
            cache[raw] = cells
            out[self.key(raw)] = cells
        self._cache = cache
        return out


def sizing_rows(rows: list[dict[str, Any]]) -> Rows:
    """Format the latest sizing decision per strategy and symbol."""
    return {f"{r['instance_id']}|{r['symbol']}": (
        r["instance_id"], r["symbol"], fmt.side(int(r["side"])), fmt.num(r["meta_prob"], 3),
        fmt.num(r["kelly_fraction"], 3), r["cap_applied"] or "—", f"{r['final_size']:.6g}",
        fmt.num(r["vpin_cdf"], 3), fmt.num(r["spread_bps"], 1), fmt.money(r["depth"])) for r in rows}


def alert_rows(rows: list[dict[str, Any]]) -> Rows:
    """Format alerts keyed by id, newest first, each with how often its rule + message has been raised."""
    return {r["id"]: (fmt.clock(r["ts"]), fmt.severity(r["severity"]), r["rule"], fmt.repeats(r.get("repeats")),
                      r["message"]) for r in rows}  # the read model's order: most recently raised first


class DeskScreen(PolledScreen):
    """The trading desk at a glance."""

    MODE: ClassVar[str] = "desk"
    BINDINGS = [
        Binding("R", "resume_trading", "Resume…", id="desk.resume",
                tooltip="Resume trading (ACTIVE) after a HALT; asks you to type RESUME"),
        Binding("f", "focus_next_table", "Next table", id="desk.next_table",
                tooltip="Move focus to the next table on the desk", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.position_format = RowFormatter(lambda r: f"{r[0]}|{r[1]}", position_cells)
        self.order_format = RowFormatter(lambda r: str(r[0]), order_cells)
        self.alert_raw: dict[str, dict[str, Any]] = {}

    def compose_body(self) -> ComposeResult:
        """Positions and chart on top, orders and sizing below, alerts at the bottom."""
        with Grid(id="desk-grid"):
            yield KeyedTable(POSITION_COLUMNS, id="positions", classes="panel")
            yield SeriesChart("Equity", id="equity-chart", classes="panel")
            yield KeyedTable(ORDER_COLUMNS, id="orders", classes="panel")
            yield KeyedTable(SIZING_COLUMNS, id="sizing", classes="panel")
            yield KeyedTable(ALERT_COLUMNS, id="desk-alerts", classes="panel")

    def on_mount(self) -> None:
        """Titles on the panels."""
        titles = {"positions": "Positions", "orders": "Open orders", "sizing": "Sizing (latest per strategy × symbol)",
                  "desk-alerts": f"Latest alerts — {hint(self, 'table.open', 'enter')}: whole message"}
        for wid, title in titles.items():
            self.query_one(f"#{wid}").border_title = title

    def poll(self) -> list[Message]:
        """Read and format the desk (worker thread)."""
        d = self.qapp.reader.desk()
        if d.positions is None and d.orders is None and d.sizing is None and d.alerts is None and d.equity is None:
            return []  # a quiet desk: nothing to format, nothing for the UI thread to do
        return [DeskRefreshed(self.position_format.rows(d.positions) if d.positions is not None else None,
                              self.order_format.rows(d.orders[::-1]) if d.orders is not None else None,  # newest first
                              sizing_rows(d.sizing) if d.sizing is not None else None,
                              alert_rows(d.alerts) if d.alerts is not None else None, d.equity,
                              {str(r["id"]): r for r in d.alerts} if d.alerts is not None else None)]

    def on_desk_refreshed(self, message: DeskRefreshed) -> None:
        """Apply a desk read: only changed cells are touched."""
        self.clear_poll_error()
        if message.positions is not None:
            self.query_one("#positions", KeyedTable).sync(message.positions)
            self.query_one("#positions").border_subtitle = f"{len(message.positions)}"
        if message.orders is not None:
            self.query_one("#orders", KeyedTable).sync(message.orders)
            self.query_one("#orders").border_subtitle = f"{len(message.orders)}"
        if message.sizing is not None:
            self.query_one("#sizing", KeyedTable).sync(message.sizing)
        if message.alerts is not None:
            self.query_one("#desk-alerts", KeyedTable).sync(message.alerts)
            self.alert_raw = message.alert_details or {}
        if message.equity is not None:
            self.query_one("#equity-chart", SeriesChart).set_series(message.equity)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a latest alert opens its whole message, values and repeat count."""
        if event.data_table.id == "desk-alerts":
            show_alert(self, self.alert_raw.get(str(event.row_key.value)))

    def action_resume_trading(self) -> None:
        """Typed confirmation, then resume through the control API."""
        self.qapp.confirm_resume()

    def action_focus_next_table(self) -> None:
        """Cycle focus across the desk's tables."""
        self.focus_next(KeyedTable)
