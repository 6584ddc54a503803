"""Starting an engine process in the background: the one helper the CLI's `engine --detach` and the console use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine.config import Settings
from engine.runtime.logs import log_path


def engine_argv(settings: Settings, live: bool = False) -> list[str]:
    """The command line of an engine on these settings' store and config file (live: already confirmed)."""
    argv = [sys.executable, "-m", "engine.runtime.main", "--state", settings.store_url(), "--detached"]
    if settings.config_path and os.path.exists(settings.config_path):
        argv += ["--config", os.path.abspath(settings.config_path)]
    if settings.engine.name != "main":  # --name may have come from the command line, not the config file
        argv += ["--name", settings.engine.name]
    if live:
        argv.append("--live-confirmed")
    return argv


ENGINE_OUT_MAX_BYTES = 1_000_000  # a detached engine logs to its rotating engine.log; engine.out holds what precedes it


def engine_output_file(settings: Settings) -> Path:
    """Where a detached engine's stdout/stderr go (beside the engine's own rotating log)."""
    return log_path(settings).with_name("engine.out" if settings.engine.name == "main"
                                        else f"engine.{settings.engine.name}.out")


def start_detached(settings: Settings, live: bool = False) -> subprocess.Popen:
    """Start an engine in its own session (closing the terminal or the console never stops it); returns it."""
    out = engine_output_file(settings)
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if out.exists() and out.stat().st_size > ENGINE_OUT_MAX_BYTES:  # only start-up failures land here; keep one old
        os.replace(out, out.with_name(out.name + ".1"))
    with os.fdopen(os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as fh:
        return subprocess.Popen(engine_argv(settings, live), stdin=subprocess.DEVNULL, stdout=fh, stderr=fh,
                                start_new_session=True, cwd=os.getcwd())
