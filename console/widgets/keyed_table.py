"""A DataTable refreshed by row key: only changed cells are touched, inside one batch_update (Dolphie's pattern)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist


# Fixed column widths by column key: no re-measuring on every tick (Dolphie's rule: never update_width per tick),
# no columns jumping as numbers change, and identical layout run to run.
WIDTH_BY_KEY = {
    "strategy": 16, "symbol": 10, "qty": 8, "avg": 10, "mark": 10, "upnl": 10, "rpnl": 10, "created": 8, "side": 5,
    "type": 8, "price": 10, "filled": 7, "status": 8, "prob": 7, "kelly": 6, "cap": 9, "size": 9, "vpin": 8,
    "spread": 7, "depth": 12, "time": 8, "sev": 8, "rule": 18, "message": 40, "id": 5, "source": 7, "ack": 10,
    "user": 10, "action": 22, "details": 50, "series": 20, "first": 16, "last": 16, "bars": 7, "age": 5, "gaps": 5,
    "quarantined": 11, "reason": 30, "job": 18, "trigger": 22, "next": 16, "took": 5, "result": 14, "runs": 5,
    "errors": 6, "error": 30, "version": 4, "role": 10, "oos": 6, "cv": 7, "estimator": 22, "sha": 12,
    "promoted": 16, "kind": 11, "tf": 4, "sharpe": 6, "dsr": 6, "trials": 6, "lookahead": 9, "report": 9,
    "phase": 13, "window": 4, "n": 6, "skew": 6, "kurt": 6, "params": 40, "rank": 3, "stage": 10, "capital": 11,
    "equity": 11, "ret": 8, "dd": 7, "fills": 6, "drift_n": 6, "drift": 9, "drift_abs": 10,
}


class KeyedTable(DataTable):
    """DataTable whose rows are kept in sync with a {row_key: cells} mapping."""

    DEFAULT_CSS = """
    KeyedTable { height: 1fr; }
    """

    def __init__(self, columns: Sequence[tuple[str, str] | tuple[str, str, int]], *, id: str | None = None,  # noqa: A002 - Textual's name
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self._column_spec = list(columns)
        self._cells: dict[str, tuple[Any, ...]] = {}
        self.updates = 0  # cells touched since mount (tests and the benchmark read it)

    def on_mount(self) -> None:
        """Create the columns once; their keys are the stable column ids."""
        self._ensure_columns()

    def _ensure_columns(self) -> None:
        # A poll result can arrive before on_mount has run; rows must never be added to a table without columns.
        if not self.columns:
            for key, label, *width in self._column_spec:
                size = width[0] if width else WIDTH_BY_KEY.get(key, max(len(label), 8))
                self.add_column(label, width=max(size, len(label)), key=key)

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
        """Add new rows, update changed cells, remove vanished rows; returns the number of cells touched."""
        self._ensure_columns()
        wanted = {str(k): tuple(v) for k, v in rows.items()}
        touched = 0
        columns = [spec[0] for spec in self._column_spec]
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
                    self.add_row(*cells, key=key)
                    touched += len(cells)
                elif old != cells:
                    for col, new, prev in zip(columns, cells, old):
                        if new != prev:
                            self.update_cell(key, col, new)
                            touched += 1
                else:
                    continue
                self._cells[key] = cells
        self.updates += touched
        return touched
