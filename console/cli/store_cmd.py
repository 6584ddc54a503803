"""`quantdesk init`, `quantdesk backup [--out FILE]`, `quantdesk doctor [--recover]`: the state store itself.

`init` is the only command besides `engine` and `data pull` that creates a store; control commands and `status`
refuse a missing path (see control_cmd). Only engine.store is imported, at call time.
"""

from __future__ import annotations

import typer

from console.cli.common import settings_of


def register(app: typer.Typer) -> None:
    """Add `init` to the root app."""

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
