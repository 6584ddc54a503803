"""`quantdesk model train|evaluate|list|promote|rollback`: the meta-model registry and its walk-forward evidence."""

from __future__ import annotations

from typing import Optional

import typer

from console.cli.common import settings_of

model_app = typer.Typer(help="Meta-models: train, evaluate walk-forward, list, promote and roll back.",
                        no_args_is_help=True)


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _range(ctx: typer.Context, source: Optional[str], since: Optional[str], until: Optional[str]) -> tuple:
    """(source object, since ms, until ms) from the CLI options; bad specs become one-line errors."""
    from console.cli.common import parse_time
    from engine.data.factory import SourceSpecError, make_source

    settings = settings_of(ctx)
    try:
        src = make_source(source or settings.data.source, settings)
    except (SourceSpecError, FileNotFoundError, ValueError) as exc:
        typer.secho(f"error: --source: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    now = int(src.milliseconds())
    lo = parse_time(since, now, "--since") if since else None
    hi = parse_time(until, now, "--until") if until else None
    return src, lo, hi


def _symbols(text: Optional[str]) -> Optional[list[str]]:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


@model_app.command("train")
def train(ctx: typer.Context, strategy: str = typer.Argument(..., help="strategy instance id or strategy name"),
          days: Optional[int] = typer.Option(None, "--days", help="training window (default ml.train_window_days)"),
          timeframe: Optional[str] = typer.Option(None, "--timeframe", help="bar size (default: the strategy's)"),
          since: Optional[str] = typer.Option(None, "--since", help="start of stored history (2017-01-01, 90d, ms)"),
          until: Optional[str] = typer.Option(None, "--until", help="end (exclusive); default: now"),
          symbols: Optional[str] = typer.Option(None, "--symbols", help="comma-separated (default: the instance's)"),
          source: Optional[str] = typer.Option(None, "--source", help="sim | ccxt:<id> | csv:<path> (data.source)"),
          no_gate: bool = typer.Option(False, "--no-gate", help="save as challenger without the champion gate")) -> None:
    """Train the meta-model on any stored range (pulling missing bars), save it, and apply the gate."""
    from engine.ml.retrain import train_model
    from engine.store.ops import current_user

    settings = settings_of(ctx)
    src, lo, hi = _range(ctx, source, since, until)
    try:
        result = train_model(settings, strategy, days=days, timeframe=timeframe, audit_source="cli",
                             user=current_user(), gate=not no_gate, progress=lambda m: typer.echo(f"  {m}"),
                             source=src, since=lo, until=hi, symbols=_symbols(symbols))
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
    sel = result.get("selection") or {}
    if sel:
        typer.echo(f"  selection          {sel['family']}+{sel['calibration']} by past-only walk-forward CV "
                   f"({sel['folds']} folds, embargo {sel['embargo']})")
    typer.echo(f"  champion score     {_fmt(result['champion_score'])} ({result['gate_basis']})")
    if result["pulled"]:
        typer.echo(f"  bars pulled        {result['pulled']} (from {settings.data.source})")
    typer.echo("  elapsed            " + ", ".join(f"{k} {v:.1f}s" for k, v in result["elapsed_s"].items()))


@model_app.command("evaluate")
def evaluate(ctx: typer.Context, strategy: str = typer.Argument(..., help="strategy instance id or strategy name"),
             symbols: Optional[str] = typer.Option(None, "--symbols", help="comma-separated (default: the instance's)"),
             timeframe: Optional[str] = typer.Option(None, "--timeframe", help="bar size (default: the strategy's)"),
             since: Optional[str] = typer.Option(None, "--since", help="start (2017-01-01, 365d, epoch ms)"),
             until: Optional[str] = typer.Option(None, "--until", help="end (exclusive); default: now"),
             days: Optional[int] = typer.Option(None, "--days", help="without --since: the last N days"),
             retrain_every: Optional[str] = typer.Option(None, "--retrain-every", help="e.g. 90d (ml.eval_...)"),
             rolling: bool = typer.Option(False, "--rolling", help="rolling training window instead of anchored"),
             source: Optional[str] = typer.Option(None, "--source", help="sim | ccxt:<id> | csv:<path>"),
             bootstrap: Optional[int] = typer.Option(None, "--bootstrap", help="bootstrap samples (ml.eval_bootstrap)"),
             no_record: bool = typer.Option(False, "--no-record", help="do not store the result as evidence"),
             report: Optional[str] = typer.Option(None, "--report", help="also write an HTML tearsheet here"),
             json_out: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
    """Walk-forward evaluation on the engine's retraining schedule: is the overlay worth using?"""
    import json

    from engine.clock import parse_duration_ms
    from engine.ml.retrain import evaluate_model
    from engine.store.ops import current_user

    settings = settings_of(ctx)
    src, lo, hi = _range(ctx, source, since, until)
    try:
        every = parse_duration_ms(retrain_every) / 86_400_000 if retrain_every else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--retrain-every") from exc
    say = (lambda m: typer.echo(f"  {m}", err=True)) if json_out else (lambda m: typer.echo(f"  {m}"))
    try:
        ev, evidence = evaluate_model(settings, strategy, source=src, symbols=_symbols(symbols), timeframe=timeframe,
                                      since=lo, until=hi, days=days, retrain_every_days=every,
                                      anchored=None if not rolling else False, n_boot=bootstrap,
                                      record=not no_record, user=current_user(), progress=say)
    except (ValueError, KeyError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    if report:
        from pathlib import Path

        from engine.ml.report import evaluation_page

        Path(report).expanduser().write_text(evaluation_page(ev))
        say(f"tearsheet: {report}")
    if json_out:
        typer.echo(json.dumps(_json_safe(ev.as_json()), default=str))
        return
    from engine.ml.report import evaluation_text

    typer.echo(evaluation_text(ev))
    decision = evidence.shows_value(settings.ml.overlay_sharpe_floor)[1]
    typer.echo(f"sizing: {decision}" + ("" if not no_record else " (not recorded: --no-record)"))


def _json_safe(obj: object) -> object:
    """NaN and infinities as null: strict JSON for other tools."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


@model_app.command("list")
def list_models(ctx: typer.Context, strategy: Optional[str] = typer.Argument(None, help="only this strategy")) -> None:
    """Every saved model version with its role and scores."""
    from rich.console import Console
    from rich.table import Table

    from engine.ml.registry import ModelRegistry
    from engine.ml.paths import models_dir
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
