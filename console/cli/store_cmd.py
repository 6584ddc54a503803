"""`quantdesk init`, `quantdesk backup [--out FILE]`, `quantdesk doctor [--recover]`: the state store itself.

`init` is the only command besides `engine` and `data pull` that creates a store; control commands and `status`
refuse a missing path (see control_cmd). Only engine.store is imported, at call time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from console.cli.common import settings_of


def register(app: typer.Typer) -> None:
    """Add `init`, `backup` and `doctor` to the root app."""

    @app.command("init")
    def init(ctx: typer.Context) -> None:
        """Create a new, empty state store at --state / store.path (an existing store is left as it is)."""
        from engine.store.db import SCHEMA_VERSION, open_store, probe_version, sqlite_path

        settings = settings_of(ctx)
        url = settings.store_url()
        path = sqlite_path(url)
        if path is not None and path.exists():
            version = probe_version(path)
            if version == 0 and path.stat().st_size > 0:
                typer.secho(f"store error: {path} exists and is not a quantdesk store; choose another path",
                            fg="red", err=True)
                raise typer.Exit(3)
            if version > 0:
                typer.echo(f"{path} is already a quantdesk store (schema version {version}); left as it is")
                return
        open_store(url, busy_timeout_ms=settings.store.busy_timeout_ms).dispose()
        typer.echo(f"created a quantdesk store at {path or url} (schema version {SCHEMA_VERSION})")

    @app.command("backup")
    def backup(ctx: typer.Context, out: Optional[Path] = typer.Option(None, "--out", "-o", help="backup file "
                                                                       "(default: store.backup_dir, time-stamped)")
               ) -> None:
        """Copy the state store consistently, even while the engine runs (SQLite online backup API)."""
        from engine.store.backup import backup_store

        settings = settings_of(ctx)
        made = backup_store(settings.store_url(), out, settings.store.backup_dir)
        typer.echo(f"backup written: {made.path} ({made.size:,} bytes, integrity checked)")

    @app.command("doctor")
    def doctor(ctx: typer.Context,
               recover: bool = typer.Option(False, "--recover", help="restore the newest good backup into a NEW "
                                            "file beside the store (the store itself is never touched)"),
               out: Optional[Path] = typer.Option(None, "--out", "-o", help="with --recover: the new file")) -> None:
        """Examine the state store (integrity, WAL, schema, permissions, lock holder, last backup); never writes it."""
        from engine.runtime.lockfile import lock_path, read_pid
        from engine.store.backup import backup_dir_for, recover_from_backup
        from engine.store.db import sqlite_path
        from engine.store.doctor import examine

        settings = settings_of(ctx)
        db = sqlite_path(settings.store_url())
        if db is None:
            typer.secho("doctor: only SQLite stores are examined; use the server's own tools", fg="red", err=True)
            raise typer.Exit(2)
        findings = examine(db, settings.store.backup_dir, settings.store.backup_interval_hours)
        pid = read_pid(settings)
        findings_lines = [(f.check, f.status, f.detail) for f in findings]
        findings_lines.insert(-1, ("lock holder", "ok", f"engine pid {pid} ({lock_path(settings)})" if pid
                                   else "no engine holds the lock"))
        colors = {"ok": "green", "warn": "yellow", "fail": "red"}
        for check, status, detail in findings_lines:
            typer.secho(f"{check:<14} {status.upper():<5} {detail}", fg=colors[status])
        failed = any(status == "fail" for _, status, _ in findings_lines)
        if recover:
            target, good = recover_from_backup(db, backup_dir_for(db, settings.store.backup_dir), out)
            typer.echo(f"recovered {good.path.name} into NEW file {target}; {db} is untouched. Check it with "
                       f"`quantdesk --state {target} doctor`, then point store.path at it.")
            return
        if failed:
            typer.secho("the store has problems: stop the engine, keep the files as they are, and run "
                        "`quantdesk doctor --recover` to restore the newest good backup into a new file",
                        fg="red", err=True)
            raise typer.Exit(1)
