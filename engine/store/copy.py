"""Moving a desk between stores (`quantdesk store copy`): every table, in foreign-key order, from one consistent
snapshot of the source into an empty target, checked afterwards by row counts and content hashes per table.

A typical move is SQLite (state.db) -> PostgreSQL when a desk outgrows one machine. The source is read inside one
transaction (a WAL snapshot on SQLite, REPEATABLE READ on PostgreSQL), so a running engine may keep writing while the
copy is taken; the target must be empty (only the schema), so a copy never merges two desks by accident.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from sqlalchemy import Table, func, insert, inspect, select, text
from sqlalchemy.engine import Connection

from engine.store.db import Store, StoreError
from engine.store.schema import metadata

BATCH_ROWS = 5_000
JOBSTORE_TABLE = "apscheduler_jobs"  # created by APScheduler's job store (engine/runtime/scheduler.py), not our schema


@dataclass
class TableCopy:
    """What was copied for one table and whether the target now matches the source."""

    name: str
    rows_source: int
    rows_target: int
    hash_source: str
    hash_target: str

    @property
    def ok(self) -> bool:
        """True when row counts and content hashes agree."""
        return self.rows_source == self.rows_target and self.hash_source == self.hash_target


@dataclass
class CopyReport:
    """Per-table results of a copy; `ok` only when every table matches."""

    tables: list[TableCopy] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every table's counts and hashes agree."""
        return all(t.ok for t in self.tables)

    @property
    def rows(self) -> int:
        """Rows copied over all tables."""
        return sum(t.rows_target for t in self.tables)


def _value(value: Any) -> str:
    """A dialect-neutral text form of one cell (floats by repr, so a changed bit changes the hash)."""
    if value is None:
        return "\x00"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    return str(value)


def _ordered_rows(conn: Connection, table: Table) -> Iterator[tuple[Any, ...]]:
    keys = list(table.primary_key.columns) or list(table.columns)
    result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(
        select(table).order_by(*keys))
    for row in result:
        yield tuple(row)


def table_digest(conn: Connection, table: Table) -> tuple[int, str]:
    """(row count, sha256 of the rows in primary-key order) of a table."""
    digest = hashlib.sha256()
    count = 0
    for row in _ordered_rows(conn, table):
        digest.update("\x1f".join(_value(v) for v in row).encode())
        digest.update(b"\x1e")
        count += 1
    return count, digest.hexdigest()


def _jobstore_table(name: str = JOBSTORE_TABLE) -> Table:
    """APScheduler's own definition of a job table (so the target gets the right types for its dialect)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    return SQLAlchemyJobStore(url="sqlite://", tablename=name).jobs_t


def _is_jobstore(name: str) -> bool:
    """APScheduler's job table of main, or of another engine of the desk (apscheduler_jobs_<name>)."""
    return name == JOBSTORE_TABLE or name.startswith(JOBSTORE_TABLE + "_")


def _tables(store: Store) -> list[Table]:
    """Our schema's tables in foreign-key order, plus APScheduler's job tables (one per engine) the source has."""
    present = set(inspect(store.engine).get_table_names())
    tables = [t for t in metadata.sorted_tables if t.name in present]
    tables += [_jobstore_table(name) for name in sorted(present) if _is_jobstore(name)]
    return tables


def _snapshot(conn: Connection, store: Store) -> None:
    """Start one consistent read snapshot on the source connection."""
    if store.is_sqlite:
        conn.exec_driver_sql("BEGIN")
        conn.exec_driver_sql("SELECT COUNT(*) FROM sqlite_master").scalar()
    else:
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))


def _ensure_empty(target: Store, tables: list[Table]) -> None:
    with target.connect() as conn:
        present = set(inspect(conn).get_table_names())
        for table in tables:
            if table.name in present and conn.execute(select(func.count()).select_from(table)).scalar():
                raise StoreError(f"target {target.url.split('@')[-1]}: table {table.name} already has rows; "
                                 "copy only into an empty store (create a new database)")


def _reset_sequences(conn: Connection, table: Table) -> None:
    """After explicit ids were inserted, move PostgreSQL's serial sequences past them."""
    for column in table.primary_key.columns:
        if column.autoincrement is True or (column.autoincrement == "auto" and len(table.primary_key.columns) == 1
                                            and column.type.python_type is int):
            seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
                               ).scalar()
            if seq:
                conn.execute(text(f"SELECT setval(:s, COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, "
                                  "false)"), {"s": seq})


def copy_store(source: Store, target: Store, progress: Callable[[str, int], None] | None = None) -> CopyReport:
    """Copy every table from `source` into the empty, migrated `target`, then verify counts and hashes."""
    if source.schema_version() != target.schema_version():
        raise StoreError(f"schema versions differ: source {source.schema_version()}, target "
                         f"{target.schema_version()}; upgrade quantdesk or migrate both first")
    tables = _tables(source)
    _ensure_empty(target, tables)
    report = CopyReport()
    with source.connect() as src:
        _snapshot(src, source)
        for table in tables:
            if _is_jobstore(table.name):
                table.create(target.engine, checkfirst=True)
            copied = 0
            with target.begin() as dst:
                batch: list[dict[str, Any]] = []
                names = [c.name for c in table.columns]
                for row in _ordered_rows(src, table):
                    batch.append(dict(zip(names, row)))
                    if len(batch) >= BATCH_ROWS:
                        dst.execute(insert(table), batch)
                        copied += len(batch)
                        batch = []
                if batch:
                    dst.execute(insert(table), batch)
                    copied += len(batch)
                if not target.is_sqlite:
                    _reset_sequences(dst, table)
            if progress is not None:
                progress(table.name, copied)
        hashes = {t.name: table_digest(src, t) for t in tables}
        src.rollback()
    with target.connect() as dst:
        for table in tables:
            rows_t, hash_t = table_digest(dst, table)
            rows_s, hash_s = hashes[table.name]
            report.tables.append(TableCopy(table.name, rows_s, rows_t, hash_s, hash_t))
    return report
