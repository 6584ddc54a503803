"""`python -m engine.runtime.main --state URL [--config FILE] [--live-confirmed]`: the engine as a process.

Used by `quantdesk engine --detach`, the console's auto-start and the kill -9 fault test. Live trading needs
`--live-confirmed`, which only the CLI passes after the operator typed the confirmation.
"""

from __future__ import annotations

import argparse
import sys

from engine.config import ConfigError, load_settings, settings_with

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


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load settings and run the engine until it is stopped; returns the exit code."""
    parser = argparse.ArgumentParser(prog="quantdesk-engine")
    parser.add_argument("--state", required=True, help="state.db path or SQLAlchemy URL")
    parser.add_argument("--config", default=None, help="TOML config file")
    parser.add_argument("--live-confirmed", action="store_true", help="live trading, already confirmed")
    args = parser.parse_args(argv)
    prefer_low_latency()
    try:
        return _run(args)
    except ConfigError as exc:  # e.g. a malformed alert channel URL: one line naming the key, no traceback
        print(f"config error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    """Load settings for the given state and config and run the engine."""
    settings = load_settings(args.config)
    if "://" in args.state and not args.state.startswith("sqlite"):
        settings = settings_with(settings, store={"url": args.state})
    else:
        path = args.state.split(":///", 1)[1] if args.state.startswith("sqlite") else args.state
        settings = settings_with(settings, store={"path": path, "url": ""})
    from engine.runtime.lockfile import EngineLockedError
    from engine.runtime.service import EngineService

    try:
        return EngineService(settings, live=args.live_confirmed).run()
    except EngineLockedError as exc:
        print(str(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
