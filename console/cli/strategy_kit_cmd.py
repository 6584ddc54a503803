"""`quantdesk strategy new|list|check`: write a strategy from a template, see what was discovered (and every module
that failed to import, with file and line), and check the strategy contract before any backtest."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer


def new(name: str = typer.Argument(..., help="snake_case name, e.g. my_breakout"),
        folder: Optional[Path] = typer.Option(None, "--dir", help="where to write it (default: the first "
                                              "QUANTDESK_STRATEGY_PATH entry, else ./user_strategies)")) -> None:
    """Write a commented, runnable strategy module and a test for it."""
    from engine.strategy.template import new_strategy

    try:
        module, test = new_strategy(name, folder)
    except ValueError as exc:
        typer.secho(f"strategy new: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"wrote {module}\nwrote {test}")
    typer.echo(f"next: quantdesk strategy check {name}   then: quantdesk backtest {name} --symbols BTC/USDT")
    if module.parent.resolve() != (Path.cwd() / "user_strategies").resolve():
        typer.echo(f"(discovery finds it with QUANTDESK_STRATEGY_PATH={module.parent})")


def list_strategies(ctx: typer.Context, instances: bool = typer.Option(True, "--instances/--no-instances",
                                                                        help="also list the desk's instances")) -> None:
    """Every discovered strategy, every module that failed to import (file, line, error), and the desk's instances."""
    from engine.strategy.registry import discover, discovery_errors

    found = discover()
    errors = discovery_errors()
    typer.echo("strategies (output: sides = whole positions in {-1, 0, +1}; weights = fractional, in [-1, 1]):")
    for name, cls in sorted(found.items()):
        where = Path(getattr(__import__("sys").modules.get(cls.__module__), "__file__", "") or "?")
        typer.echo(f"  {name:<20} {cls.display_name or name:<24} {cls.default_timeframe:<4} {_output(cls):<8} "
                   f"{_stops(cls):<22} {where}")
    if errors:
        typer.secho("modules that failed to import:", fg="red")
        for target, why in sorted(errors.items()):
            typer.secho(f"  {target}\n    {why}", fg="red")
    if instances:
        _list_instances(ctx)


def _output(cls: type) -> str:
    """'weights' when the strategy defines its own (fractional) weights, else 'sides'."""
    from engine.strategy.base import Strategy

    return "weights" if getattr(cls, "weights", None) is not Strategy.weights else "sides"


def _stops(cls: type) -> str:
    """The default instance's protective exits in a few words ('no stops' when none)."""
    try:
        spec = cls().stops()
    except Exception as exc:  # noqa: BLE001 - a broken user class: say so, `strategy check` says why
        return f"stops: {type(exc).__name__}"
    if spec is None or not getattr(spec, "active", False):
        return "no stops"
    unit = "" if spec.scale == "fixed" else f"x{spec.scale}"
    parts = [f"{k} {v:g}{unit}" for k, v in (("sl", spec.stop_loss), ("tp", spec.take_profit)) if v is not None]
    return " ".join(parts)


def _list_instances(ctx: typer.Context) -> None:
    from console.cli.common import settings_of
    from engine.store.db import StoreError, open_existing
    from engine.trading.lifecycle import list_instances

    settings = settings_of(ctx)
    try:
        store = open_existing(settings.store_url(), busy_timeout_ms=settings.store.busy_timeout_ms)
    except StoreError as exc:  # control commands never create a desk: say which one is missing
        typer.secho(f"instances: {exc} (`quantdesk engine` creates a desk; --no-instances lists strategies only)",
                    fg="red", err=True)
        raise typer.Exit(1) from exc
    typer.echo("instances:")
    for inst in list_instances(store):
        typer.echo(f"  {inst.id:<20} {inst.strategy:<18} {inst.stage:<10} {inst.status:<8} "
                   f"capital {inst.effective_capital(settings.lifecycle):>12,.2f}  {inst.timeframe}  "
                   f"{','.join(inst.symbols)}  {_lineage(inst)}")


def _lineage(inst: Any) -> str:
    """Which walk-forward run produced an instance: 'champion', or 'challenger of X from walk-forward run #N'."""
    if inst.role != "challenger":
        return inst.role
    return f"challenger of {inst.parent_id} from walk-forward run #{inst.origin_run_id} {inst.params}"


def check(name: str = typer.Argument(..., help="strategy name")) -> None:
    """Contract checks on a synthetic panel: shape, values, warm-up, lookahead, speed per 10,000 bars."""
    from engine.backtest.contract import check_strategy
    from engine.strategy.registry import UnknownStrategyError, discovery_errors, strategy_class

    try:
        cls: Any = strategy_class(name)
    except UnknownStrategyError as exc:
        broken = {t: why for t, why in discovery_errors().items() if Path(str(t)).stem == name}
        for target, why in broken.items():
            typer.secho(f"strategy check: {name} failed to import: {why}", fg="red", err=True)
        if not broken:
            typer.secho(f"strategy check: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    results = check_strategy(cls)
    for r in results:
        typer.secho(f"{'PASS' if r.ok else 'FAIL'}  {r.name}: {r.detail}", fg="green" if r.ok else "red")
    if not all(r.ok for r in results):
        raise typer.Exit(1)
