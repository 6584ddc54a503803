"""The `quantdesk` command line: one Typer app whose command groups live in sibling modules.

Each module in _COMMAND_MODULES exposes `register(app)`. Heavy libraries (pandas, numba, sklearn) are imported inside
commands, never at module top, so `quantdesk halt` starts fast.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

app = typer.Typer(
    name="quantdesk",
    help="Terminal operator console for ML-driven crypto trading. With no command, opens the console.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_COMMAND_MODULES = [
    "console.cli.common",
    "console.cli.console_cmd",
    "console.cli.engine_cmd",  # runtime: quantdesk engine [--detach] [--live], engine stop
    "console.cli.control_cmd",  # runtime: halt/flatten/reduce/resume/status, strategy ...
    "console.cli.engines_cmd",  # runtime: quantdesk engines (several engines on one desk)
    "console.cli.alerts_cmd",  # monitoring: alerts [list] / ack / test
    "console.cli.watchdog_cmd",  # runtime: quantdesk watchdog (dead-man switch over the engine heartbeat)
    "console.cli.research_cmd",  # backtest: quantdesk backtest / optimize
    "console.cli.data_cmd",  # market data: quantdesk data pull / status / export / quarantine
    "console.cli.model_cmd",  # ML: quantdesk model train / list / promote / rollback
    "console.cli.store_cmd",  # store: quantdesk init / backup / doctor
    "console.cli.venue_cmd",  # exchange twin: quantdesk venue serve / status
    "console.cli.store_copy_cmd",  # store: quantdesk store copy --from SRC --to DST
]


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `quantdesk` console script."""
    _register_all()
    from console.cli.common import one_line_error, report_error

    args = argv if argv is not None else sys.argv[1:]
    os.umask(0o077)  # reports, models, backups and stores made by the CLI are private to their user (0700 / 0600)
    try:
        app(args=args, standalone_mode=True)
    except Exception as exc:
        known = one_line_error(exc)
        if known is None or "--debug" in args:
            raise
        report_error(known[0], known[2])
        raise SystemExit(known[1]) from exc
