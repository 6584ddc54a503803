"""The console's emergency stop as an explicit state machine: one `StopPhase`, one table of allowed moves.

    IDLE -> CONFIRMING (stop key) -> SENT (y) -> PERSISTED (HALTED in state.db) -> CLAIMED (the engine took it)
                     \\-> IDLE (n / esc)     \\________________\\__________________\\-> DONE | FAILED (result)

DONE and FAILED are where a stop ends; the stop key starts the next one from there. The stop key also works while a
stop still waits for the engine (SENT, PERSISTED, CLAIMED): it opens a second confirmation over the waiting stop, whose
phase is kept `behind` it; y sends a second stop (numbered, so the first one's late events move nothing), n / esc go
back to the waiting stop. The header's pending marker, the hold on table refreshes and the HALTING correction of
status reads all derive from the (effective) phase, so they cannot disagree.
Pure Python (no Textual): the app feeds it events on the UI thread.
"""

from __future__ import annotations

import enum
import logging
import time
from typing import Callable

log = logging.getLogger("quantdesk.console")

STOP_PENDING = "STOP SENT — waiting for engine"
STOP_FAILED = "STOP FAILED — see notification"


class StopPhase(enum.Enum):
    """Where the console's emergency stop is."""

    IDLE = "idle"  # no stop asked for
    CONFIRMING = "confirming"  # the one-key confirmation is open
    SENT = "sent"  # y pressed: the stop runs on the stop lane; HALTED not stored yet
    PERSISTED = "persisted"  # HALTED is in state.db (brokers refuse new orders); the engine has not taken the stop
    CLAIMED = "claimed"  # the engine has taken the stop: HALTED is engine-confirmed, FLATTEN runs
    DONE = "done"  # the command ended (executed, or queued for an engine that is not running)
    FAILED = "failed"  # the command could not be sent or the engine refused it


_ENDED = {StopPhase.IDLE, StopPhase.DONE, StopPhase.FAILED}
_WAITING = frozenset({StopPhase.SENT, StopPhase.PERSISTED, StopPhase.CLAIMED})
ALLOWED: dict[StopPhase, frozenset[StopPhase]] = {
    StopPhase.IDLE: frozenset({StopPhase.CONFIRMING}),
    # y sends; n / esc go back to IDLE, or to the stop still waiting behind a second confirmation (see `answer`)
    StopPhase.CONFIRMING: frozenset({StopPhase.IDLE, StopPhase.SENT}),
    StopPhase.SENT: frozenset({StopPhase.PERSISTED, StopPhase.DONE, StopPhase.FAILED, StopPhase.CONFIRMING}),
    StopPhase.PERSISTED: frozenset({StopPhase.CLAIMED, StopPhase.DONE, StopPhase.FAILED, StopPhase.CONFIRMING}),
    StopPhase.CLAIMED: frozenset({StopPhase.DONE, StopPhase.FAILED, StopPhase.CONFIRMING}),
    StopPhase.DONE: frozenset({StopPhase.CONFIRMING, StopPhase.IDLE}),
    StopPhase.FAILED: frozenset({StopPhase.CONFIRMING, StopPhase.IDLE}),
}


class StopFlow:
    """The phase of the console's emergency stop and what follows from it."""

    def __init__(self, hold_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.phase = StopPhase.IDLE
        self.hold_s = hold_s
        self._clock = clock
        self._sent_at = 0.0
        self.history: list[StopPhase] = [StopPhase.IDLE]  # every phase entered (tests and the audit of a session)
        self.stop_id = 0  # the number of the newest stop sent; events of older stops move nothing
        self.behind: StopPhase | None = None  # the waiting stop's phase while a second confirmation is open

    def move(self, target: StopPhase) -> bool:
        """Enter target if the table allows it from here; False (and a log line) otherwise, never an exception:
        a late or repeated event during an emergency must not crash the console."""
        if target not in ALLOWED[self.phase]:
            log.debug("stop flow: %s -> %s ignored", self.phase.value, target.value)
            return False
        self.phase = target
        self.history.append(target)
        if target is StopPhase.SENT:
            self._sent_at = self._clock()
        return True

    def ask(self) -> bool:
        """The stop key: open the confirmation, also while a stop still waits for the engine (its phase is kept
        behind the new confirmation). False when a confirmation is already open."""
        waiting = self.phase if self.phase in _WAITING else None
        if not self.move(StopPhase.CONFIRMING):
            return False
        self.behind = waiting
        return True

    def answer(self, confirmed: bool) -> int | None:
        """y: a new stop is sent; returns its number (events carry it). n / esc: back to the stop still waiting, if
        any, else IDLE; returns None. Nothing happens (None) when no confirmation is open."""
        if self.phase is not StopPhase.CONFIRMING:
            return None
        back, self.behind = self.behind, None
        if confirmed:
            self.move(StopPhase.SENT)
            self.stop_id += 1
            return self.stop_id
        if back is None:
            self.move(StopPhase.IDLE)
        else:  # not a move of the table: the waiting stop was never left, only looked away from
            self.phase = back
            self.history.append(back)
        return None

    def advance(self, stop_id: int, target: StopPhase) -> bool:
        """An event of stop `stop_id` (persisted, claimed, its result). Only the newest stop moves the phase; while a
        second confirmation is open it moves the waiting stop kept behind it. True when something moved."""
        if stop_id != self.stop_id:
            log.debug("stop flow: event %s of superseded stop %d ignored", target.value, stop_id)
            return False
        if self.phase is StopPhase.CONFIRMING and self.behind is not None:
            if target not in ALLOWED[self.behind]:
                return False
            self.behind = target
            return True
        return self.move(target)

    @property
    def _effective(self) -> StopPhase:
        """The phase that says what the desk is doing: the waiting stop's while a second confirmation is open."""
        return self.behind if self.phase is StopPhase.CONFIRMING and self.behind is not None else self.phase

    @property
    def unconfirmed(self) -> bool:
        """From y until the engine takes the stop or the command ends: a status read's HALTED is not yet the
        engine's confirmation."""
        return self._effective in (StopPhase.SENT, StopPhase.PERSISTED)

    @property
    def ended(self) -> bool:
        """No stop is being asked for or waited on."""
        return self.phase in _ENDED

    def in_flight(self) -> bool:
        """Waiting for the engine (bounded by hold_s): screens hold their table refreshes meanwhile."""
        return self.unconfirmed and self._clock() - self._sent_at < self.hold_s

    @property
    def pending_text(self) -> str:
        """The header's marker for this phase ('' when there is nothing to say)."""
        if self.unconfirmed:
            return STOP_PENDING
        return STOP_FAILED if self._effective is StopPhase.FAILED else ""
