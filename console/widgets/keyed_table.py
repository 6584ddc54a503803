"""A DataTable refreshed by row key: only changed cells are touched, inside one batch_update (Dolphie's pattern)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist


class KeyedTable(DataTable):
    """DataTable whose rows are kept in sync with a {row_key: cells} mapping."""

    DEFAULT_CSS = """
    KeyedTable { height: 1fr; }
    """

    def __init__(self, columns: Sequence[tuple[str, str]], *, id: str | None = None,  # noqa: A002 - Textual's name
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self._column_spec = list(columns)
        self._cells: dict[str, tuple[Any, ...]] = {}
        self.updates = 0  # cells touched since mount (tests and the benchmark read it)

    def on_mount(self) -> None:
        """Create the columns once; their keys are the stable column ids."""
        for key, label in self._column_spec:
            self.add_column(label, key=key)

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
        wanted = {str(k): tuple(v) for k, v in rows.items()}
        touched = 0
        columns = [key for key, _ in self._column_spec]
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
