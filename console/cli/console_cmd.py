"""`quantdesk console [--state path/to/state.db]`: open the console on (attach to) an engine's state store."""

from __future__ import annotations

from typing import Optional

import typer

from console.cli.common import settings_of


def register(app: typer.Typer) -> None:
    """Add the `console` command."""

    @app.command("console")
    def console(ctx: typer.Context,
                state: Optional[str] = typer.Option(None, "--state", help="state.db (or database URL) of the engine to attach to"),
                start_engine: bool = typer.Option(False, "--start-engine/--attach-only",
                                                  help="start a paper engine when none is running (default: attach "
                                                       "only; the banner shows a missing engine)")) -> None:
        """Open the operator console on another state.db; quitting leaves its engine running."""
        from engine.config import settings_with
        from engine.config_rules import state_target

        from console.launch import open_console

        settings = settings_of(ctx)
        if state is not None:
            settings = settings_with(settings, store=state_target(state))
        open_console(settings, start=start_engine)
