"""`quantdesk alerts [list]`, `alerts ack ID`, `alerts test [--channel N]`: alerts, acknowledgement, channel checks.

apprise (slow to import: ~190 plugins) loads only inside `alerts test`; listing and acknowledging stay fast.
"""

from __future__ import annotations

import time
from typing import Any

import typer

from console.cli.common import settings_of

alerts_app = typer.Typer(help="List, acknowledge and test alerts and their off-box channels.",
                         invoke_without_command=True)


def _stamp(ms: int | None) -> str:
    """UTC time of an epoch-ms stamp for the terminal."""
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def _list(ctx: typer.Context, limit: int, unacked: bool) -> None:
    """Print alerts newest first (with their dedup counts) and the outbox per channel."""
    from console.cli.control_cmd import _existing_store
    from engine.store.notify import outbox_counts
    from engine.store.ops import list_alerts

    store = _existing_store(ctx)  # listing never creates an empty desk
    for a in list_alerts(store, limit=limit, unacked_only=unacked):
        mark = "acked" if a.acked else "NEW  "
        count = f"x{a.count}" if a.count > 1 else ""
        typer.echo(f"#{a.id:<5} {mark} {a.severity:<8} {a.rule:<24} {count:>6} {a.message}")
    counts = outbox_counts(store)
    if counts:
        typer.echo("outbox per channel:")
        for ch in sorted({c for c, _ in counts}):
            url = next(u for (c, _), (_, u) in counts.items() if c == ch)
            parts = ", ".join(f"{s} {n}" for (c, s), (n, _) in sorted(counts.items()) if c == ch)
            typer.echo(f"  [{ch}] {url[:70]}: {parts}")


def _send_test(store: Any, settings: Any, channels: list[Any], index: int) -> tuple[bool, str]:
    """Queue a test message for one channel through the outbox, send it, and return (ok, what happened)."""
    from engine.clock import now_ms
    from engine.monitoring.alerts.channels import timed_send
    from engine.monitoring.alerts.outbox import claim_row, record_attempt, route_events
    from engine.store.notify import enqueue_event, outbox_row
    from engine.store.ops import current_user

    with store.begin() as conn:
        event_id = enqueue_event(conn, "test", "info", "test message",
                                 f"quantdesk alerts test by {current_user()}: channel {index} works",
                                 {"channel": index}, rule="alerts.test", channel=index)
    route_events(store, channels, settings.alerts, now_ms())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        row = outbox_row(store, event_id, index)
        if row is not None:
            claimed = claim_row(store, row["id"], f"cli:{index}", now_ms()) if row["status"] == "pending" else None
            if claimed is not None:
                error, elapsed = timed_send(channels[index], claimed.title, claimed.body, claimed.severity)
                record_attempt(store, claimed, error, elapsed, f"cli:{index}", settings.alerts, now_ms())
                return (error is None, f"sent in {elapsed} ms" if error is None else f"FAILED: {error}")
            if row["status"] == "sent":  # a running engine's sender took it first
                return True, "sent (by the running engine's sender)"
            if row["last_error"]:
                return False, f"FAILED: {row['last_error']}"
        time.sleep(0.1)
    return False, "no result within 20 s"


def register(app: typer.Typer) -> None:
    """Add `alerts`, `alerts list`, `alerts ack` and `alerts test` to the root app."""

    @alerts_app.callback()
    def alerts_root(ctx: typer.Context, limit: int = typer.Option(20, "--limit", "-n"),
                    unacked: bool = typer.Option(False, "--unacked")) -> None:
        """List recent alerts (newest first) and the outbox per channel."""
        if ctx.invoked_subcommand is None:
            _list(ctx, limit, unacked)

    @alerts_app.command("list")
    def alerts_list(ctx: typer.Context, limit: int = typer.Option(20, "--limit", "-n"),
                    unacked: bool = typer.Option(False, "--unacked")) -> None:
        """List recent alerts (newest first, with dedup counts) and the outbox per channel."""
        _list(ctx, limit, unacked)

    @alerts_app.command("ack")
    def alerts_ack(ctx: typer.Context, alert_id: int) -> None:
        """Acknowledge an alert (audited with your user); stops its escalation."""
        from console.cli.control_cmd import _existing_store, _run
        from engine.store.ops import get_alert

        alert = get_alert(_existing_store(ctx), alert_id)
        if alert is None:
            typer.secho(f"ack: no alert #{alert_id} (see `quantdesk alerts list`)", fg="red", err=True)
            raise typer.Exit(1)
        if alert.acked:
            typer.secho(f"ack: alert #{alert_id} was already acknowledged by {alert.acked_by or '?'} at "
                        f"{_stamp(alert.acked_at)}", fg="yellow", err=True)
            raise typer.Exit(1)  # nothing was done: scripts can tell
        _run(ctx, lambda c: c.ack_alert(alert_id))

    @alerts_app.command("test")
    def alerts_test(ctx: typer.Context, channel: int = typer.Option(None, "--channel", "-c",
                                                                    help="only this channel index")) -> None:
        """Send a test message to each configured channel (or one) and print the result."""
        from console.cli.control_cmd import _existing_store
        from engine.monitoring.alerts.channels import build_channels

        settings = settings_of(ctx)
        channels = build_channels(settings.alerts)
        if not channels:
            typer.secho("no alert channels configured: add [alerts] channels = [{ url = \"...\" }] to the config",
                        fg="red", err=True)
            raise typer.Exit(1)
        if channel is not None and not 0 <= channel < len(channels):
            typer.secho(f"--channel: no channel {channel} (configured: 0..{len(channels) - 1})", fg="red", err=True)
            raise typer.Exit(2)
        store = _existing_store(ctx)
        failed = 0
        for ch in channels if channel is None else [channels[channel]]:
            ok, what = _send_test(store, settings, channels, ch.index)
            failed += not ok
            typer.secho(f"[{ch.index}] {ch.redacted}: {what}", fg="green" if ok else "red")
        raise typer.Exit(1 if failed else 0)

    app.add_typer(alerts_app, name="alerts")
