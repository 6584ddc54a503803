"""`quantdesk halt|flatten|reduce|status|resume`, `quantdesk strategy ...`: the control API (alerts: alerts_cmd.py).

Only the control module and the store are imported at call time; nothing heavy, so `quantdesk halt` starts fast.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from console.cli.common import settings_of

strategy_app = typer.Typer(help="Strategy instances: pause, resume, promote, demote, leaderboard.", no_args_is_help=True)


def _existing_store(ctx: typer.Context) -> Any:
    """The configured store, which must already exist: a control command never creates an empty desk."""
    from engine.store.db import open_existing

    settings = settings_of(ctx)
    return open_existing(settings.store_url(), busy_timeout_ms=settings.store.busy_timeout_ms)


ENGINE_HELP = "only this engine of the desk (default: every engine; `quantdesk engines` lists them)"


def _client(ctx: typer.Context, engine: str | None = None) -> Any:
    """A ControlClient on the configured (existing) store, as source 'cli' (addressed to one engine, or all)."""
    from engine.control.client import ControlClient

    return ControlClient.from_settings(settings_of(ctx), "cli", engine=engine)


def _overlay_reasons(ctx: typer.Context) -> dict[str, str]:
    """Per strategy, whether sizing uses the ML overlay and why (its latest walk-forward evidence)."""
    from engine.ml.evidence import overlay_status
    from engine.store import open_readonly
    from engine.store.db import StoreError

    settings = settings_of(ctx)
    try:
        store = open_readonly(settings.store_url())
    except StoreError:
        return {}
    try:
        return overlay_status(store, settings.strategies, settings.ml.overlay_sharpe_floor,
                              settings.ml.overlay_requires_evidence)
    finally:
        store.dispose()


def desk_line(client: Any) -> tuple[str, str]:
    """(desk location, engine description) of the store a client talks to, e.g. ('/x/state.db', 'engine pid 42')."""
    from engine.control.client import engine_row
    from engine.store.urls import redact

    where = str(client.store.path) if client.store.path is not None else redact(client.store.url)
    row = engine_row(client.store)
    if client.engine_alive() and row is not None:
        return where, f"engine pid {row['pid']} on {row['host']}"
    return where, "no engine running"


def _show(result: Any, as_json: bool = False, client: Any = None) -> None:
    """Print a CommandResult (and which desk it went to) and exit non-zero when it failed."""
    desk, engine = desk_line(client) if client is not None else ("", "")
    if as_json:
        typer.echo(json.dumps({"ok": result.ok, "command": result.command, "id": result.id,
                               "message": result.message, "data": result.data, "desk": desk or None,
                               "engine": engine or None}, default=str))
    else:
        typer.secho(f"{result.command}: {result.message}", fg="green" if result.ok else "red",
                    err=not result.ok)
        if desk:
            typer.echo(f"desk {desk} ({engine})")
    if not result.ok:
        raise typer.Exit(1)


def _run(ctx: typer.Context, call: Any, as_json: bool = False, halting: bool = False,
         engine: str | None = None) -> None:
    """Open the client, run one command on it and show the result with the desk it went to. A halting command on a
    store that cannot be written (corrupt, read-only, locked) still reaches a live engine: by signal."""
    try:
        client = _client(ctx, engine)
        result = call(client)
    except Exception as exc:
        from console.cli.common import one_line_error, report_error

        known = one_line_error(exc)
        if not halting or known is None or known[0] != "store error":
            raise
        pids = _signal_halt(ctx)
        if not pids:
            raise
        report_error(known[0], known[2])
        named = ", ".join(f"engine pid {pid} ({name})" for name, pid in pids.items())
        typer.echo(f"halt: HALT signalled to {named} (SIGUSR1): each halts in memory at once, cancels its orders "
                   "and persists the desk's HALTED when the store allows")
        return
    _show(result, as_json, client)


def _signal_halt(ctx: typer.Context) -> dict[str, int]:
    """Send SIGUSR1 (in-memory HALT, persisted desk-wide) to every engine of the desk holding its lock on this host;
    the engines reached, by name -> pid (empty when none is live)."""
    import os
    import signal

    from engine.runtime.lockfile import live_engine_pids

    reached: dict[str, int] = {}
    for name, pid in live_engine_pids(settings_of(ctx)).items():
        try:
            os.kill(pid, signal.SIGUSR1)
        except OSError:
            continue
        reached[name] = pid
    return reached


def register(app: typer.Typer) -> None:
    """Add the control commands to the root app."""

    @app.command()
    def halt(ctx: typer.Context, reason: str = typer.Option("operator halt", "--reason", "-r"),
             json_out: bool = typer.Option(False, "--json"),
             engine: str = typer.Option(None, "--engine", help=ENGINE_HELP)) -> None:
        """HALT every engine of the desk (or one with --engine): no new orders, cancel open orders (persisted even
        with no engine running)."""
        _run(ctx, lambda c: c.halt(reason), json_out, halting=engine is None, engine=engine)

    @app.command()
    def flatten(ctx: typer.Context, json_out: bool = typer.Option(False, "--json"),
                engine: str = typer.Option(None, "--engine", help=ENGINE_HELP)) -> None:
        """Cancel all open orders and close all positions (queued if no engine is running)."""
        _run(ctx, lambda c: c.flatten(), json_out, engine=engine)

    @app.command()
    def reduce(ctx: typer.Context, reason: str = typer.Option("operator reduce", "--reason", "-r"),
               json_out: bool = typer.Option(False, "--json"),
               engine: str = typer.Option(None, "--engine", help=ENGINE_HELP)) -> None:
        """REDUCING: only exposure-reducing orders pass."""
        _run(ctx, lambda c: c.reduce(reason), json_out, engine=engine)

    @app.command()
    def resume(ctx: typer.Context, confirm: bool = typer.Option(False, "--confirm",
                                                               help="required to leave HALTED"),
               json_out: bool = typer.Option(False, "--json"),
               engine: str = typer.Option(None, "--engine", help="only this engine's own halt (default: the desk "
                                          "and every engine)")) -> None:
        """Back to ACTIVE (from HALTED only with --confirm)."""
        _run(ctx, lambda c: c.resume(confirm), json_out, engine=engine)

    def _instance_brokers(ctx: typer.Context, mode: str) -> list[dict[str, str]]:
        """Each stored instance with its stage and the broker its orders go to in this engine's mode."""
        from engine.execution.router import broker_label
        from engine.store import open_readonly
        from engine.trading.lifecycle import list_instances

        settings = settings_of(ctx)
        try:
            ro = open_readonly(settings.store_url())
        except Exception:  # noqa: BLE001 - no state.db yet: no instances to show
            return []
        try:
            exchange = settings.data.source.split(":", 1)[-1]
            return [{"id": i.id, "stage": i.stage, "status": i.status,
                     "broker": broker_label(i.stage, mode == "live", exchange)} for i in list_instances(ro)]
        finally:
            ro.dispose()

    @app.command()
    def status(ctx: typer.Context, json_out: bool = typer.Option(False, "--json"),
               engine_name: str = typer.Option(None, "--engine", help="show this engine of the desk only")) -> None:
        """Trading state, engine liveness, equity, P&L, drawdown, exposure, open orders and positions."""
        import dataclasses

        from console.cli.engines_cmd import engine_lines, engines_of

        client = _client(ctx)
        engines = engines_of(client, settings_of(ctx).runtime.heartbeat_timeout_s, engine_name)
        if (len(engines) > 1 or engine_name is not None) and not json_out:  # several engines: each, then the desk
            for line in engine_lines(engines):
                typer.echo(line)
            if engine_name is not None:
                return
        st = client.status()
        desk, engine = desk_line(client)
        brokers = _instance_brokers(ctx, st.mode)
        overlays = _overlay_reasons(ctx)
        if json_out:
            typer.echo(json.dumps({**dataclasses.asdict(st), "desk": desk, "instances": brokers,
                                   "overlay": overlays, "engines": [e.as_dict() for e in engines]}, default=str))
            return
        typer.echo(f"desk          : {desk} ({engine})")
        fmt = (lambda v, f="{:,.2f}": "-" if v is None else f.format(v))
        typer.echo(f"trading state : {st.trading_state} ({st.reason}; by {st.state_changed_by})")
        typer.echo(f"engine        : {'alive' if st.engine_alive else 'not running'} (mode {st.mode}, pid {st.pid})")
        typer.echo(f"equity        : {fmt(st.equity)}   day P&L {fmt(st.day_pnl)}   "
                   f"drawdown {fmt(st.drawdown, '{:.2%}')}")
        typer.echo(f"exposure      : gross {fmt(st.gross_exposure)}   net {fmt(st.net_exposure)}")
        typer.echo(f"open orders   : {st.open_orders}   open positions {st.open_positions}")
        for b in brokers:
            typer.echo(f"  {b['id']:<20} stage {b['stage']:<10} broker {b['broker']:<24} {b['status']}")
        for name, reason in overlays.items():
            typer.echo(f"ml overlay    : {name}: {reason}")

    @strategy_app.command("pause")
    def strategy_pause(ctx: typer.Context, instance_id: str) -> None:
        """Pause one strategy instance (its open orders are canceled)."""
        _run(ctx, lambda c: c.pause_strategy(instance_id))

    @strategy_app.command("resume")
    def strategy_resume(ctx: typer.Context, instance_id: str) -> None:
        """Resume a paused strategy instance."""
        _run(ctx, lambda c: c.resume_strategy(instance_id))

    @strategy_app.command("promote")
    def strategy_promote(ctx: typer.Context, instance_id: str,
                         confirm: bool = typer.Option(False, "--confirm", help="operator confirmation")) -> None:
        """Promote one stage when the configured gates pass (needs --confirm)."""
        _run(ctx, lambda c: c.promote(instance_id, confirm))

    @strategy_app.command("demote")
    def strategy_demote(ctx: typer.Context, instance_id: str,
                        reason: str = typer.Option("operator demote", "--reason", "-r")) -> None:
        """Demote one stage."""
        _run(ctx, lambda c: c.demote(instance_id, reason))

    from console.cli import strategy_kit_cmd as kit  # authoring: new, list (with discovery errors), check

    strategy_app.command("new")(kit.new)
    strategy_app.command("list")(kit.list_strategies)
    strategy_app.command("check")(kit.check)

    @strategy_app.command("leaderboard")
    def strategy_leaderboard(ctx: typer.Context, json_out: bool = typer.Option(False, "--json")) -> None:
        """Instances ranked by deflated Sharpe of their paper/live record."""
        from engine.monitoring.leaderboard import compute_leaderboard

        settings = settings_of(ctx)
        board = compute_leaderboard(_existing_store(ctx), settings.lifecycle)
        if json_out:
            typer.echo(json.dumps([r.__dict__ for r in board], default=str))
            return
        typer.echo(f"{'#':>2} {'instance':<20} {'stage':<10} {'DSR':>6} {'SR-SR0':>8} {'N':>5} {'P&L':>12} {'trades':>6} "
                   f"{'hit':>5} {'drift bps':>9}")
        for r in board:
            hit = "-" if r.hit_rate is None else f"{r.hit_rate:.0%}"
            drift = "-" if r.drift_bps is None else f"{r.drift_bps:.1f}"
            dsr = "n/a" if r.dsr is None else f"{r.dsr:.3f}"
            margin = "n/a" if r.sharpe_margin is None else f"{r.sharpe_margin:.4f}"
            typer.echo(f"{r.rank:>2} {r.instance_id:<20} {r.stage:<10} {dsr:>6} {margin:>8} {r.n_trials:>5} "
                       f"{r.pnl:>12,.2f} {r.trades:>6} {hit:>5} {drift:>9}")

    app.add_typer(strategy_app, name="strategy")
