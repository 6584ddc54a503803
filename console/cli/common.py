"""Options shared by every command (config file, state path) and the root callback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from engine.config import ConfigError, Settings, load_settings, settings_with
from engine.config_rules import state_target

# Errors a front end reports as one line (no traceback unless --debug): class name -> (label, exit code).
# Matched by name so this module does not import the store or data layers just to catch their errors.
ONE_LINE_ERRORS = {"ConfigError": ("config error", 2), "StoreError": ("store error", 3),
                   "SourceSpecError": ("source error", 2), "UnknownStrategyError": ("error", 2)}


def report_error(label: str, exc: BaseException | str) -> None:
    """Print an error as one line per problem on stderr, prefixed with what kind of error it is."""
    for line in str(exc).splitlines() or [type(exc).__name__]:
        typer.secho(f"{label}: {line}", fg="red", err=True)


_loaded: list[Settings] = []  # the settings of this invocation, so an error report can name the store


def one_line_error(exc: BaseException) -> tuple[str, int, str] | None:
    """(label, exit code, message) when `exc` is an operator error shown without a traceback, else None. A raw
    database error (corrupt, read-only, locked, full) becomes one line naming the store and the cause."""
    for cls in type(exc).__mro__:
        if cls.__name__ in ONE_LINE_ERRORS:
            label, code = ONE_LINE_ERRORS[cls.__name__]
            return label, code, str(exc)
    from engine.store.health import describe, is_database_error

    if is_database_error(exc):
        where = None
        if _loaded:
            from engine.store.db import sqlite_path
            from engine.store.urls import redact

            url = _loaded[-1].store_url()
            where = sqlite_path(url) or redact(url)
        return "store error", 3, describe(where, exc)
    return None


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
             state: Optional[str] = typer.Option(None, "--state", help="state.db path or database URL "
                                                 "(sqlite:///..., postgresql+psycopg://...; overrides the config)"),
             debug: bool = typer.Option(False, "--debug", help="show full tracebacks for errors")) -> None:
        """Load settings; with no sub-command, open the operator console."""
        try:
            settings = load_settings(config)
            if state is not None:
                settings = settings_with(settings, store=state_target(state))
        except ConfigError as exc:
            report_error("config error", exc)
            raise typer.Exit(2) from exc
        ctx.obj = CliContext(settings=settings)
        _loaded.append(settings)
        if ctx.invoked_subcommand is None:
            from console.launch import open_console  # Textual loads only when the console is really opened

            open_console(settings)


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root callback loaded."""
    obj = ctx.find_root().obj
    if not isinstance(obj, CliContext):
        raise typer.BadParameter("internal: settings not loaded")
    return obj.settings


def parse_time(text: str, now_ms: int, name: str = "--since") -> int:
    """Epoch ms from '30d'/'12h' (before now), an ISO date/time (UTC), or epoch ms digits."""
    from engine.clock import parse_duration_ms

    value = text.strip()
    if value.isdigit() and len(value) >= 10:
        return int(value) if len(value) >= 12 else int(value) * 1000
    try:
        return now_ms - parse_duration_ms(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{name}: expected e.g. 30d, 12h, 2024-01-01 or epoch ms, got {text!r}") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def open_writable(ctx: typer.Context):  # noqa: ANN202 - engine.store.Store
    """The desk's store opened for writing (created and migrated if needed) from the command's settings."""
    from engine.store import open_store

    settings = settings_of(ctx)
    return open_store(settings.store_url(), busy_timeout_ms=settings.store.busy_timeout_ms)
