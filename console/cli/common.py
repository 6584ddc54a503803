"""Options shared by every command (config file, state path) and the root callback."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

from engine.config import ConfigError, Settings, load_settings, settings_with


@dataclass
class CliContext:
    """What the root callback resolved: settings (with --state applied)."""

    settings: Settings


def register(app: typer.Typer) -> None:
    """Install the root callback that loads configuration for every command."""

    @app.callback(invoke_without_command=True)
    def root(ctx: typer.Context,
             config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML config file "
                                                   "(default ./quantdesk.toml; missing means defaults)"),
             state: Optional[str] = typer.Option(None, "--state", help="state.db path or a postgresql+psycopg:// "
                                                 "URL (overrides store.path and store.url)")) -> None:
        """Load settings; with no sub-command, open the operator console."""
        try:
            settings = load_settings(config)
        except ConfigError as exc:
            typer.secho(f"config error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from exc
        if state is not None:
            from engine.store.urls import StoreTargetError, is_postgres_url, store_url_for

            try:
                url = store_url_for(state)
            except StoreTargetError as exc:
                typer.secho(f"--state: {exc}", fg="red", err=True)
                raise typer.Exit(2) from exc
            settings = settings_with(settings, store={"url": url, "path": "state.db"} if is_postgres_url(url)
                                     else {"path": state, "url": ""})
        ctx.obj = CliContext(settings=settings)
        if ctx.invoked_subcommand is None:
            from console.launch import open_console  # Textual loads only when the console is really opened

            open_console(settings)


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root callback loaded."""
    obj = ctx.find_root().obj
    if not isinstance(obj, CliContext):
        raise typer.BadParameter("internal: settings not loaded")
    return obj.settings
