"""The CLI as a user runs it, for tests: every command group registered, no QUANTDESK_* variable from the caller's
environment, an empty working directory and a state.db of the test's own (Typer's CliRunner on console.cli.app)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest
import typer
from typer.testing import CliRunner, Result

import console.cli as cli

TEST_STRATEGIES = Path(__file__).resolve().parent / "strategies"  # sma_cross, peeking_oracle, rhythms, ...


def quantdesk_app() -> typer.Typer:
    """console.cli.app with every command group registered (once per process, however many tests ask)."""
    if "backtest" not in {getattr(c.callback, "__name__", "") for c in cli.app.registered_commands}:
        cli._register_all()
    return cli.app


def clean_cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy_path: Path | None = None) -> None:
    """Work in `tmp_path` with no QUANTDESK_* variable set (QUANTDESK_STRATEGY_PATH = `strategy_path` if given)."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("QUANTDESK")]:
        monkeypatch.delenv(key)
    if strategy_path is not None:
        monkeypatch.setenv("QUANTDESK_STRATEGY_PATH", str(strategy_path))


def cli_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           strategy_path: Path | None = None) -> Callable[..., Result]:
    """`run(*args)` = `quantdesk --state <tmp_path>/state.db *args` from an empty working directory."""
    app = quantdesk_app()
    clean_cli_env(tmp_path, monkeypatch, strategy_path)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["--state", str(tmp_path / "state.db"), *args])
