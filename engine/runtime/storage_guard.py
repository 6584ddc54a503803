"""The engine's answer to a store it can no longer trust: halt in memory, cancel, alert, stop writing, exit.

Two ways in:
- a persistent storage fault (the -wal or database file removed or replaced under the engine, a disk I/O error, a
  full disk or file-size limit, a corrupt page, a read-only store) seen by the heartbeat's probe -> `trip()`:
  in-memory HALT at once, resting orders canceled through the broker, a critical alert on every channel that still
  works (log file, stderr, the alerts table if it still takes writes), then the process exits with EXIT_STORAGE_FAULT
  *without closing its SQLite connections*, so nothing is checkpointed over a damaged file;
- SIGUSR1 from a front end that could not write the HALT itself (store locked or read-only for it) -> `signal_halt`:
  in-memory HALT at once, cancels, and HALTED persisted as soon as the store takes the write.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from engine.risk.trading_state import TradingState, clear_latch, latch_halt, set_state
from engine.store.db import file_identity
from engine.store.health import cause_of, is_database_error

log = logging.getLogger("quantdesk.engine")
EXIT_STORAGE_FAULT = 74  # EX_IOERR: the engine stopped because its store failed
FAULT_STREAK = 2  # consecutive failed heartbeat probes that make a storage fault persistent


class LockLost(RuntimeError):
    """The engine's desk lock is gone and another engine holds it (a server store's advisory lock whose session the
    server ended): this engine must stop at once."""


class StorageGuard:
    """Watches the store's files and write errors; trips once, on a persistent fault."""

    def __init__(self, db_path: Path | None, on_cancel: Callable[[], Any], on_alert: Callable[[str], Any],
                 exit_fn: Callable[[int], Any] = os._exit, label: str | None = None) -> None:
        self.db_path = db_path
        self.label = label or (str(db_path) if db_path is not None else "state store")
        self.on_cancel = on_cancel
        self.on_alert = on_alert
        self.exit_fn = exit_fn
        self.tripped = threading.Event()
        self.cause = ""
        self._streak = 0
        self._files: dict[Path, tuple[int, int] | None] = {}
        self.disarmed = False

    def arm(self) -> None:
        """Remember the identity (device, inode) of state.db and its -wal file once the store is open."""
        if self.db_path is None:
            return
        for path in (self.db_path, Path(f"{self.db_path}-wal")):
            self._files[path] = file_identity(path)

    def file_problem(self) -> str | None:
        """Why the store's files are not the ones the engine opened (removed or replaced), or None."""
        for path, ident in list(self._files.items()):
            now = file_identity(path)
            if ident is None:
                self._files[path] = now  # the -wal file appears with the first write after open
                continue
            if now is None:
                return f"{path.name} was removed under the running engine"
            if now != ident:
                return f"{path.name} was replaced under the running engine"
        return None

    def disarm(self) -> None:
        """Stop watching: the engine is shutting down and closes the store itself (closing SQLite removes the -wal
        file, which a heartbeat check still running would take for a storage fault)."""
        self.disarmed = True
        self._files.clear()

    def check(self, write: Callable[[], Any]) -> bool:
        """Run one heartbeat write and the file check; trip on a persistent fault. True when the write worked."""
        if self.tripped.is_set() or self.disarmed:
            return False
        problem = self.file_problem()
        if problem is not None:
            self.trip(problem)  # a removed -wal cannot come back: no second look needed
            return False
        try:
            write()
        except LockLost as exc:  # another engine holds the desk now: never two engines trading one desk
            self.trip(str(exc))
            return False
        except Exception as exc:
            if not is_database_error(exc):
                raise
            cause, fault = cause_of(exc)
            self._streak = self._streak + 1 if fault else 0
            if self._streak >= FAULT_STREAK:
                self.trip(cause)
            elif not fault:
                log.warning("store busy: %s", cause)
            return False
        self._streak = 0
        return True

    def trip(self, cause: str) -> None:
        """HALT in memory, cancel resting orders, alert everywhere, and exit non-zero without touching the store."""
        if self.tripped.is_set():
            return
        self.tripped.set()
        try:
            self._halt_and_alert(cause)
        finally:
            self.exit_fn(EXIT_STORAGE_FAULT)  # no clean shutdown: closing SQLite would checkpoint over a damaged file

    def _halt_and_alert(self, cause: str) -> None:
        t0 = time.monotonic()
        self.cause = cause
        latch_halt(f"storage fault: {cause}")
        where = self.label
        line = (f"CRITICAL storage fault on {where}: {cause}. Trading HALTED in memory; canceling resting orders; "
                f"the engine exits without writing (run `quantdesk doctor`)")
        _stderr(line)
        _quiet(log.critical, line)
        try:
            canceled = self.on_cancel()
            _quiet(log.critical, f"storage fault: {canceled} resting orders canceled through the broker")
        except Exception as exc:  # noqa: BLE001 - a paper broker's cancel writes to the broken store
            _quiet(log.critical, f"storage fault: cancel through the broker failed: {exc}")
        try:
            self.on_alert(line)
        except Exception:  # noqa: BLE001 - the alerts table lives in the broken store; log and stderr carried it
            _quiet(log.critical, "storage fault: the alerts table cannot be written")
        done = (f"storage fault: HALT after {(time.monotonic() - t0) * 1000:.0f} ms; exiting with code "
                f"{EXIT_STORAGE_FAULT}")
        _stderr(done)
        _quiet(log.critical, done)
        for handler in logging.getLogger().handlers + logging.getLogger("quantdesk").handlers:
            _quiet(handler.flush)


def _stderr(line: str) -> None:
    """Write one line straight to fd 2 (a pipe or terminal keeps working when the disk does not)."""
    try:
        os.write(2, f"quantdesk engine: {line}\n".encode())
    except OSError:
        return


def _quiet(fn: Callable[..., Any], *args: Any) -> None:
    """Call a logging function; a full disk must not stop the shutdown sequence."""
    raised = logging.raiseExceptions
    logging.raiseExceptions = False  # no "--- Logging error ---" tracebacks for every refused log write
    try:
        fn(*args)
    except Exception:  # noqa: BLE001
        return
    finally:
        logging.raiseExceptions = raised


def cancel_on_exchange(broker: Any) -> int:
    """Cancel the desk's resting orders straight on the exchange (our `qd-` client ids, not reduce-only: protective
    stops stay), without reading or writing the store; 0 for a broker with no exchange (paper orders live in the
    store only). Each symbol and order is tried even when another fails."""
    exchange = getattr(broker, "exchange", None)
    if exchange is None:
        return 0
    canceled = 0
    for symbol in getattr(broker, "symbols", []):
        try:
            listed = exchange.fetch_open_orders(symbol)
        except Exception as exc:  # noqa: BLE001 - the other symbols still get their cancels
            _quiet(log.critical, f"storage fault: fetch_open_orders {symbol} failed: {exc}")
            continue
        for order in listed:
            coid = str(order.get("clientOrderId") or "")
            if not coid.startswith("qd-") or order.get("reduceOnly"):
                continue
            try:
                exchange.cancel_order(order["id"], symbol)
                canceled += 1
            except Exception as exc:  # noqa: BLE001
                _quiet(log.critical, f"storage fault: cancel {coid} failed: {exc}")
    return canceled


def storage_fault_cancel(broker: Any, store_cancel: Callable[[], int]) -> int:
    """The cancel a storage fault runs: on the exchange directly for a live broker (its store-based cancel would stop
    at the first refused write), else the broker's own cancel (paper orders exist only in the store)."""
    if getattr(broker, "exchange", None) is not None:
        return cancel_on_exchange(broker)
    return int(store_cancel())


def signal_halt(get_store: Callable[[], Any], on_cancel: Callable[[], Any], reason: str = "operator halt (signal)",
                deadline_s: float = 600.0) -> threading.Thread:
    """In-memory HALT now (SIGUSR1 from a front end that could not write), then cancel orders and persist HALTED,
    retrying until the store takes the write; the latch is cleared once HALTED is in the store."""
    latch_halt(reason, source="cli")
    log.warning("HALT by signal: trading halted in memory")

    def finish() -> None:
        try:
            log.warning("HALT by signal: %s resting orders canceled", on_cancel())
        except Exception as exc:  # noqa: BLE001
            log.error("HALT by signal: cancel failed: %s", exc)
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            store = get_store()
            if store is None:  # signalled during start-up: the store opens in a moment
                time.sleep(0.1)
                continue
            try:
                set_state(store, TradingState.HALTED, reason, "cli", user="signal")
                clear_latch()
                log.warning("HALT by signal: HALTED persisted")
                return
            except Exception as exc:  # noqa: BLE001 - locked or read-only: keep the latch and retry
                log.warning("HALT by signal: cannot persist yet (%s); still halted in memory", cause_of(exc)[0])
                time.sleep(0.5)

    thread = threading.Thread(target=finish, name="signal-halt", daemon=True)
    thread.start()
    return thread
