"""The desk header (trading state in colour, mode, equity, day P&L, drawdown, exposure) and the engine banner."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from engine.control.snapshots import StatusSnapshot
from console.widgets import fmt


def header_text(status: StatusSnapshot | None, pending: str = "") -> Text:
    """Render the status line; the state shown is the one stored by the engine, never an optimistic guess."""
    if status is None:
        return Text.assemble((" NO DATA ", "bold white on grey35"), "  waiting for state.db…")
    eq = status.equity
    gross = (status.gross_exposure / eq) if (eq and status.gross_exposure is not None) else None
    net = (status.net_exposure / eq) if (eq and status.net_exposure is not None) else None
    parts: list[tuple[str, str] | str] = [
        (f" {status.confirmed_state} ", fmt.STATE_STYLE.get(status.confirmed_state, "bold")),
        ("  " + pending if pending else "", "bold reverse"),
        (" FLATTENING…" if status.flattening else "", "bold yellow"),
        " ", (status.mode.upper(), "bold magenta" if status.mode == "live" else "bold cyan"),
        "  eq ", (fmt.whole(eq), "bold"),
        "  day ", (fmt.whole(status.day_pnl, signed=True), "green" if (status.day_pnl or 0) >= 0 else "red"),
        "  dd ", (fmt.pct(status.drawdown), "yellow" if (status.drawdown or 0) > 0.03 else ""),
        "  gross ", (fmt.pct(gross, digits=0), ""), " net ", (fmt.pct(net, signed=True, digits=0), ""),
        f"  pos {status.positions} ord {status.open_orders}",
    ]
    if len(status.engines) > 1:  # a desk with several engines: how many live, and which are down
        down = status.engines_down
        parts.append((f"  engines {len(status.engines) - len(down)}/{len(status.engines)}", "bold" if not down
                      else "bold red"))
        if down:
            parts.append((" down: " + ",".join(down), "bold red"))
        for name, state in status.engines_restricted:  # one engine halted or reducing on its own
            parts.append((f" {name}:{state}", fmt.STATE_STYLE.get(state, "bold")))
    if status.unacked_alerts:
        parts.append(("  ⚑" + str(status.unacked_alerts), "bold yellow"))
    return Text.assemble(*parts, no_wrap=True, overflow="ellipsis")


class StatusHeader(Static):
    """One line: the engine-confirmed trading state and the portfolio numbers."""

    DEFAULT_CSS = """
    StatusHeader { height: 1; background: $panel; }
    """

    status: reactive[StatusSnapshot | None] = reactive(None, always_update=False)
    pending: reactive[str] = reactive("")

    def render(self) -> Text:
        """Draw from the last status snapshot."""
        return header_text(self.status, self.pending)

    @property
    def shown_state(self) -> str:
        """The trading state currently displayed ('' before the first read)."""
        return self.status.confirmed_state if self.status else ""


class EngineBanner(Static):
    """A loud bar shown only while the engine's heartbeat is stale or state.db cannot be read."""

    DEFAULT_CSS = """
    EngineBanner { height: 1; background: $error; color: $text; text-style: bold; display: none; }
    EngineBanner.-visible { display: block; }
    """

    def show_problem(self, message: str | None) -> None:
        """Show the message (None hides the banner)."""
        if message:
            self.update(f" ENGINE NOT RESPONDING — {message}; figures below are stale ")
            self.add_class("-visible")
        else:
            self.remove_class("-visible")

    @property
    def visible_problem(self) -> bool:
        """True while the banner is shown."""
        return self.has_class("-visible")


def engine_problem(status: StatusSnapshot | None, error: str | None) -> str | None:
    """The banner text for a status read (None when the engine is healthy)."""
    if error:
        return f"cannot read state ({error[:60]})"
    if status is None:
        return None
    if status.heartbeat_at is None:
        return "no engine has started on this state.db"
    if not status.engine_alive:
        return f"last heartbeat {fmt.age(status.now - status.heartbeat_at)} ago"
    if status.engines_down:
        return f"engine {', '.join(status.engines_down)} of this desk: heartbeat stale"
    return None
