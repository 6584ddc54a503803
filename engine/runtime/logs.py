"""Engine logging: stderr (foreground, tmux, systemd) plus a rotating file beside state.db."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from engine.config import Settings
from engine.store.db import sqlite_path


def log_path(settings: Settings) -> Path:
    """The rotating engine log file (runtime.log_dir, relative paths beside state.db): engine.log for main,
    engine.<name>.log for another engine of the desk."""
    base = Path(settings.runtime.log_dir).expanduser()
    if not base.is_absolute():
        db = sqlite_path(settings.store_url())
        base = (db.parent if db is not None else Path.cwd()) / base
    name = settings.engine.name
    return base / ("engine.log" if name == "main" else f"engine.{name}.log")


def setup_logging(settings: Settings, to_stderr: bool = True) -> Path:
    """Log to stderr (foreground/tmux/systemd) and a rotating file; returns the file path."""
    path = log_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger("quantdesk")
    root.setLevel(logging.INFO)
    root.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for h in list(root.handlers):
        root.removeHandler(h)
    fh = logging.handlers.RotatingFileHandler(path, maxBytes=5_000_000, backupCount=5)
    fh.setFormatter(fmt)
    root.addHandler(fh)
    if to_stderr:
        sh = logging.StreamHandler()
        sh.setFormatter(fmt)
        root.addHandler(sh)
    for name in ("apscheduler",):
        logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger(name).addHandler(fh)
    return path
