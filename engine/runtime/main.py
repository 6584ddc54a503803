"""`python -m engine.runtime.main --state URL [--config FILE] [--live-confirmed]`: the engine as a process.

Used by `quantdesk engine --detach`, the console's auto-start and the kill -9 fault test. Live trading needs
`--live-confirmed`, which only the CLI passes after the operator typed the confirmation.
"""

from __future__ import annotations

import argparse
import sys

from engine.config import ConfigError, Settings, load_settings, settings_with
from engine.config_rules import engine_name_problem, state_target
from engine.runtime.preflight import check_startup

# CPython hands the GIL to a waiting thread after this long at most (default 5 ms). The engine's command poller and
# the console's UI thread and stop lane are I/O threads that share a process with CPU-bound work (strategy ticks,
# model training, table rendering): each time one of them returns from a SQLite call or a socket wait it may wait a
# whole interval for the GIL, several times per command. 1 ms cuts that convoy (measured on the emergency stop path,
# docs/bench/console.md) at the price of more frequent GIL hand-offs between busy threads.
SWITCH_INTERVAL_S = 0.001


def prefer_low_latency() -> None:
    """Shorten the GIL switch interval for this process, so I/O threads (command poller, UI, stop lane) are not
    starved by CPU-bound ones; called by the engine and console processes, not on import."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def with_engine_name(settings: Settings, name: str) -> Settings:
    """The settings of engine `name` (--name beats [engine] name); ConfigError naming --name when it is not valid."""
    bad = engine_name_problem(name)
    if bad:
        raise ConfigError(f"--name: {bad}, got {name!r}")
    return settings_with(settings, engine={"name": name})


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load settings and run the engine until it is stopped; returns the exit code."""
    parser = argparse.ArgumentParser(prog="quantdesk-engine")
    parser.add_argument("--state", required=True, help="state.db path or SQLAlchemy URL")
    parser.add_argument("--config", default=None, help="TOML config file")
    parser.add_argument("--live-confirmed", action="store_true", help="live trading, already confirmed")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    parser.add_argument("--detached", action="store_true", help="log to the rotating file only (stderr is engine.out)")
    parser.add_argument("--name", default=None, help="this engine's name on the desk (default: [engine] name, main)")
    args = parser.parse_args(argv)
    prefer_low_latency()
    from engine import start_timeline

    start_timeline.mark("imports")
    from engine.store.db import StoreError

    try:
        settings = settings_with(load_settings(args.config), store=state_target(args.state))
        if args.name is not None:
            settings = with_engine_name(settings, args.name)
        if not args.live_confirmed:  # a live engine checks its strategies right after re-arming protection
            check_startup(settings)
    except ConfigError as exc:
        _report("config error", exc)
        return 2
    start_timeline.mark("settings")
    from engine.execution.live_start import LiveStartError
    from engine.runtime.lockfile import EngineLockedError
    from engine.runtime.service import EngineService

    start_timeline.mark("engine imports")

    try:
        return EngineService(settings, live=args.live_confirmed, log_to_stderr=not args.detached).run()
    except EngineLockedError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except LiveStartError as exc:  # no keys, no network, unknown symbols, exchange down: one line, no traceback
        print(f"live start refused: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from engine.store.health import describe, is_database_error

        if args.debug or not isinstance(exc, (ConfigError, StoreError)) and not is_database_error(exc):
            raise
        if is_database_error(exc):
            _report("store error", describe(settings.store.url or settings.store.path, exc))
            return 3
        _report("store error" if isinstance(exc, StoreError) else "config error", exc)
        return 3 if isinstance(exc, StoreError) else 2


def _report(label: str, exc: BaseException) -> None:
    """One line per problem on stderr (the detached engine's only channel before its log is set up)."""
    for line in str(exc).splitlines():
        print(f"{label}: {line}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
