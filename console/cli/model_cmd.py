"""`quantdesk model train|list|promote|rollback`: the meta-model registry from the command line."""

from __future__ import annotations

from typing import Optional

import typer

from console.cli.common import settings_of

model_app = typer.Typer(help="Meta-models: train, list, promote and roll back (champion/challenger).",
                        no_args_is_help=True)


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@model_app.command("train")
def train(ctx: typer.Context, strategy: str = typer.Argument(..., help="strategy instance id or strategy name"),
          days: Optional[int] = typer.Option(None, "--days", help="training window (default ml.train_window_days)"),
          timeframe: Optional[str] = typer.Option(None, "--timeframe", help="bar size (default: the strategy's)"),
          no_gate: bool = typer.Option(False, "--no-gate", help="save as challenger without the champion gate")) -> None:
    """Train the meta-model on the latest window (pulling missing bars), save it, and apply the gate."""
    from engine.ml.retrain import train_model
    from engine.store.ops import current_user

    settings = settings_of(ctx)
    try:
        result = train_model(settings, strategy, days=days, timeframe=timeframe, audit_source="cli",
                             user=current_user(), gate=not no_gate, progress=lambda m: typer.echo(f"  {m}"))
    except (ValueError, KeyError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    oos = result["oos"]
    typer.echo(f"model {result['strategy']} v{result['version']} ({result['estimator']}, {result['events']} events, "
               f"{result['features']} features, {result['timeframe']}): {result['decision']}")
    for key in ("precision", "primary_precision", "recall", "f1", "roc_auc", "brier", "sharpe_primary",
                "sharpe_overlay"):
        if key in oos:
            typer.echo(f"  {key:18s} {_fmt(oos[key])}")
    typer.echo(f"  champion score     {_fmt(result['champion_score'])} ({result['gate_basis']})")
    if result["pulled"]:
        typer.echo(f"  bars pulled        {result['pulled']} (from {settings.data.source})")
    typer.echo("  elapsed            " + ", ".join(f"{k} {v:.1f}s" for k, v in result["elapsed_s"].items()))


@model_app.command("list")
def list_models(ctx: typer.Context, strategy: Optional[str] = typer.Argument(None, help="only this strategy")) -> None:
    """Every saved model version with its role and scores."""
    from rich.console import Console
    from rich.table import Table

    from engine.ml.registry import ModelRegistry
    from engine.ml.retrain import models_dir
    from engine.store import open_readonly
    from engine.store.db import StoreError

    settings = settings_of(ctx)
    try:
        store = open_readonly(settings.store_url())
    except StoreError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    rows = ModelRegistry(store, models_dir(settings)).list(strategy)
    table = Table("strategy", "version", "role", "estimator", "oos auc", "features", "trained until", "sha256")
    import datetime as dt

    for r in rows:
        until = dt.datetime.fromtimestamp(r.train_end / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        table.add_row(r.strategy, str(r.version), r.role, r.estimator, _fmt(r.oos_score), str(len(r.features)),
                      until, r.sha256[:12])
    import sys

    Console(width=None if sys.stdout.isatty() else 160).print(table if rows else "no models")
    store.dispose()


def _registry_cmd(ctx: typer.Context, action: str, strategy: str, version: int | None) -> None:
    """Promote or roll back through the control API (the same command, rules and audit as the console's)."""
    from engine.control.client import ControlClient

    client = ControlClient.from_settings(settings_of(ctx), "cli")
    result = client.promote_model(strategy, int(version or 0)) if action == "promote" else \
        client.rollback_model(strategy)
    if not result.ok:
        typer.secho(result.message if result.message.startswith("refused") else f"refused: {result.message}",
                    fg="red", err=True)
        if "champion" in result.data:  # the registry refused: say what still serves
            champ = result.data["champion"]
            typer.echo(f"champion unchanged: {'none' if champ is None else f'v{champ}'}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{strategy}: v{result.data['version']} is now champion")


@model_app.command("promote")
def promote(ctx: typer.Context, strategy: str = typer.Argument(...), version: int = typer.Argument(...)) -> None:
    """Make a saved version the champion (verified first; a bad file is refused and the champion stays)."""
    _registry_cmd(ctx, "promote", strategy, version)


@model_app.command("rollback")
def rollback(ctx: typer.Context, strategy: str = typer.Argument(...)) -> None:
    """Pull the champion and reinstate the previous one."""
    _registry_cmd(ctx, "rollback", strategy, None)


def register(app: typer.Typer) -> None:
    """Add the `model` command group."""
    app.add_typer(model_app, name="model")
