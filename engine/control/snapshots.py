"""What the read model returns: frozen snapshots of the engine status and the desk (no queries here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class StateUnavailable(RuntimeError):
    """state.db cannot be read yet (not created, locked, or another schema)."""


@dataclass(frozen=True)
class StatusSnapshot:
    """Everything the header and the engine banner show."""

    state: str
    reason: str
    changed_at: int
    changed_by: str
    mode: str
    engine_pid: int | None
    heartbeat_at: int | None
    engine_alive: bool
    equity: float | None
    day_pnl: float | None
    drawdown: float | None
    gross_exposure: float | None
    net_exposure: float | None
    positions: int
    open_orders: int
    unacked_alerts: int
    now: int
    pending_stops: int = 0  # halt / emergency_stop commands the engine has not picked up yet
    flattening: int = 0  # emergency_stop / flatten commands the engine is executing right now
    engine_stopped: bool = False  # the engine said it stopped (a clean stop leaves a fresh last heartbeat)
    engine_host: str | None = None  # where the engine runs: its pid is checked only on this host
    started_at: int | None = None  # when the engine process started (wall clock)
    engines: tuple[tuple[str, bool, str], ...] = ()  # every engine of the desk (name, alive, own state), main first

    @property
    def engines_down(self) -> tuple[str, ...]:
        """The engines of a several-engine desk whose heartbeat is stale (empty on a one-engine desk)."""
        return tuple(n for n, alive, _s in self.engines if not alive) if len(self.engines) > 1 else ()

    @property
    def engines_restricted(self) -> tuple[tuple[str, str], ...]:
        """(name, state) of the engines whose own trading state is not ACTIVE (set by --engine or their triggers)."""
        return tuple((n, s) for n, _alive, s in self.engines if s != "ACTIVE")

    @property
    def confirmed_state(self) -> str:
        """The state to show: HALTED only once the engine has taken the stop command ('HALTING' before).

        The engine executes a stop's HALT first, then FLATTEN, on one thread in command order, so a claimed
        command means the engine has HALTED; `flattening` then says the positions are still being closed.
        """
        if self.state == "HALTED" and self.pending_stops and self.engine_alive:
            return "HALTING"
        return self.state


@dataclass(frozen=True)
class DeskData:
    """The desk's tables and chart series (None means unchanged since the last read).

    Positions and orders are plain tuples (cheap to fetch, hashable for the format cache):
    positions (instance_id, symbol, qty, avg_price, realized_pnl, mark, unrealized);
    orders (client_order_id, created_at, instance_id, symbol, side, type, qty, price, filled_qty, reduce_only, status).
    """

    positions: list[tuple[Any, ...]] | None
    orders: list[tuple[Any, ...]] | None
    sizing: list[dict[str, Any]] | None
    alerts: list[dict[str, Any]] | None
    equity: list[tuple[int, float]] | None
