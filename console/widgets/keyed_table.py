"""A DataTable refreshed by row key: only changed cells are touched, inside one batch_update (Dolphie's pattern).

Rows are shown in the order the mapping gives them (screens hand events newest first, so a new alert or audit entry
lands at the top, visible without scrolling); a cursor on the top row follows the newest row, one moved down stays on
its row. Column widths are chosen,
not measured per tick: a value column grows to its widest value so far (money never truncates), and at most a few
text columns ("flex": messages, details, reasons) share whatever width the panel has left.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual._two_way_dict import TwoWayDict
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

# Fixed widths by column key (times and short labels): identical layout run to run, nothing jumps as numbers change.
WIDTH_BY_KEY = {
    "created": 8, "side": 5, "type": 8, "status": 8, "time": 8, "sev": 8, "id": 5, "source": 7, "ack": 10,
    "user": 10, "first": 16, "last": 16, "next": 17, "took": 5, "version": 4, "role": 10, "sha": 12, "promoted": 16,
    "kind": 11, "tf": 4, "lookahead": 9, "report": 9, "phase": 13, "window": 4, "rank": 3, "stage": 10,
}
# Text columns that share the width left over, with their minimum width. A "greedy" one (a message, details) takes
# everything that is left; the others (names, rules) grow only to their widest value. All are cut with an ellipsis
# when the panel is narrow.
FLEX_MIN = {"message": 24, "details": 24, "reason": 16, "params": 16, "error": 12, "trigger": 12, "estimator": 10,
            "strategy": 8, "lineage": 8, "rule": 10, "action": 12, "job": 8, "result": 8}
GREEDY = frozenset({"message", "details", "reason", "params", "error"})
# Every other column (money, quantities, symbols, ratios) is sized to its widest value so far and never cut.


def cell_width(value: Any) -> int:
    """Terminal cells a cell value needs on one line."""
    return value.cell_len if isinstance(value, Text) else cell_len(str(value))


def _safe(value: Any, cut: bool = False) -> Any:
    """A string becomes Text when it has a bracket (data such as an alert's '[Errno 110]' is never markup) or sits in
    a column that may be cut (an ellipsis shows that it was)."""
    if isinstance(value, str) and (cut or "[" in value):
        return Text(value, no_wrap=True, overflow="ellipsis")
    return value


def flex_widths(keys: Sequence[str], minimum: Mapping[str, int], want: Mapping[str, int], room: int) -> dict[str, int]:
    """Share room among flex columns: each gets its minimum, names grow to their widest value, and the greedy ones
    (messages, details) split whatever is left."""
    widths = {k: minimum[k] for k in keys}
    left = room - sum(widths.values())
    for k in keys:
        if k not in GREEDY and left > 0:
            grow = min(left, max(0, want.get(k, 0) - widths[k]))
            widths[k] += grow
            left -= grow
    greedy = [k for k in keys if k in GREEDY]
    if greedy and left > 0:
        share, extra = divmod(left, len(greedy))
        for i, k in enumerate(greedy):
            widths[k] += share + (1 if i < extra else 0)
    return widths


class KeyedTable(DataTable):
    """DataTable whose rows are kept in sync, in order, with a {row_key: cells} mapping."""

    DEFAULT_CSS = """
    KeyedTable { height: 1fr; }
    """
    BINDINGS = [Binding("enter", "select_cursor", "Open", id="table.open", show=False,
                        tooltip="Open the selected row (an alert: its whole message, values and repeat count)")]

    def __init__(self, columns: Sequence[tuple[str, str] | tuple[str, str, int]], *, id: str | None = None,  # noqa: A002 - Textual's name
                 classes: str | None = None, flex: Sequence[str] | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self._column_spec = list(columns)
        keys = [spec[0] for spec in self._column_spec]
        self._flex = [k for k in (flex if flex is not None else [k for k in keys if k in FLEX_MIN]) if k in keys]
        self._fixed = {spec[0]: spec[2] for spec in self._column_spec if len(spec) > 2}
        self._fit: dict[str, int] = {}  # value columns: widest value so far (label included)
        self._want: dict[str, int] = {k: 0 for k in self._flex}  # flex columns: widest value so far
        self._cells: dict[str, tuple[Any, ...]] = {}
        self.updates = 0  # cells touched since mount (tests and the benchmark read it)

    def on_mount(self) -> None:
        """Create the columns once; their keys are the stable column ids."""
        self._ensure_columns()

    def on_resize(self, _event: events.Resize) -> None:
        """Share the new width among the flex columns."""
        self._layout()

    def _ensure_columns(self) -> None:
        # A poll result can arrive before on_mount has run; rows must never be added to a table without columns.
        if self.columns:
            return
        for key, label, *width in self._column_spec:
            if key in self._fixed or key in WIDTH_BY_KEY:
                size = max(self._fixed.get(key, WIDTH_BY_KEY.get(key, 8)), cell_len(label))
            elif key in self._flex:
                size = max(FLEX_MIN.get(key, 8), cell_len(label))
            else:
                size = self._fit[key] = cell_len(label)
            self.add_column(label, width=size, key=key)

    def _grow(self, key: str, value: Any) -> bool:
        """Record a value's width: True when a value column (or a flex column's wish) grew."""
        widths = self._fit if key in self._fit else self._want if key in self._want else None
        if widths is None:
            return False
        need = cell_width(value)
        if need <= widths[key]:
            return False
        widths[key] = need
        return True

    def _layout(self) -> None:
        """Set value columns to their widest value and give flex columns the width left in the panel."""
        if not self.columns:
            return
        pad = 2 * self.cell_padding
        for key, width in self._fit.items():
            self.columns[key].width = width  # type: ignore[index] - ColumnKey compares equal to its string
        if self._flex:
            used = sum(col.width + pad for k, col in self.columns.items() if k.value not in self._flex)
            room = self.size.width - int(self.styles.scrollbar_size_vertical) - used - pad * len(self._flex)
            for key, width in flex_widths(self._flex, self._minimums(), self._want, room).items():
                self.columns[key].width = width  # type: ignore[index]
        # DataTable has no public "set column width": do what its own sort/add_column do after changing geometry.
        self._require_update_dimensions = True
        self._update_count += 1
        self.check_idle()
        self.refresh()

    def _minimums(self) -> dict[str, int]:
        return {k: max(FLEX_MIN.get(k, 8), cell_len(self.columns[k].label.plain)) for k in self._flex}  # type: ignore[index]

    @property
    def row_keys(self) -> list[str]:
        """Row keys in display order."""
        return [str(row.key.value) for row in self.ordered_rows]

    def selected_key(self) -> str | None:
        """The row key under the cursor, or None for an empty table."""
        if self.row_count == 0:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except Exception:  # noqa: BLE001 - cursor outside the table after rows were removed
            return None

    def sync(self, rows: Mapping[Any, Sequence[Any]]) -> int:
        """Add new rows, update changed cells, remove vanished rows, keep the mapping's order; returns cells touched."""
        self._ensure_columns()
        wanted = {str(k): tuple(v) for k, v in rows.items()}
        touched = 0
        grew = False
        columns = [spec[0] for spec in self._column_spec]
        selected = self.selected_key() if self.cursor_row > 0 else None  # a cursor on top follows the newest row
        with self.app.batch_update():
            for key in [k for k in self._cells if k not in wanted]:
                try:
                    self.remove_row(key)
                except RowDoesNotExist:
                    pass
                del self._cells[key]
                touched += 1
            for key, cells in wanted.items():
                old = self._cells.get(key)
                if old is None:
                    for col, value in zip(columns, cells):
                        grew = self._grow(col, value) or grew
                    self.add_row(*(_safe(c, col in self._want) for col, c in zip(columns, cells)), key=key)
                    touched += len(cells)
                elif old != cells:
                    for col, new, prev in zip(columns, cells, old):
                        if new != prev:
                            grew = self._grow(col, new) or grew
                            self.update_cell(key, col, _safe(new, col in self._want))
                            touched += 1
                else:
                    continue
                self._cells[key] = cells
            if list(self._cells) != list(wanted):  # new rows, or a new order (a leaderboard rank moved)
                self._reorder(list(wanted), selected)
            self._cells = {k: self._cells[k] for k in wanted}
            if grew:
                self._layout()
        self.updates += touched
        return touched

    def _reorder(self, order: list[str], selected: str | None) -> None:
        """Show rows in this order. A cursor on the top row stays on top (it follows the newest event, and the view
        does not move); a cursor the operator moved down stays on its row (the view follows it)."""
        index = {k: i for i, k in enumerate(order)}
        # Exactly what DataTable.sort does, with the order given by row key rather than by cell values.
        ordered = sorted(self.rows, key=lambda rk: index.get(str(rk.value), len(index)))
        self._row_locations = TwoWayDict({key: i for i, key in enumerate(ordered)})
        self._update_count += 1
        self.refresh()
        if selected is not None and selected in index and self.cursor_row != index[selected]:
            self.move_cursor(row=index[selected])
