"""Private files for a desk that handles money: 0700 folders, 0600 files, no half-written artefacts left behind.

`harden_process()` sets the umask to 077, so every folder and file the process creates afterwards (logs, models,
reports, backups, lock and run files) is private to its user. `private_desk_dirs` tightens folders that already exist
from before (and their files), and `clean_stale_tmp` removes the `.tmp` files a killed model training left in the
models folder (only old ones: a CLI training running beside the engine keeps its fresh temp file).
"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

from engine.config import Settings
from engine.store.db import sqlite_path

log = logging.getLogger("quantdesk.engine")
PRIVATE_UMASK = 0o077
STALE_TMP_S = 600.0  # a temp file untouched this long belongs to a killed writer


def harden_process() -> None:
    """Every file and folder this process creates from now on is private to its user (umask 077)."""
    os.umask(PRIVATE_UMASK)


def desk_dirs(settings: Settings) -> list[Path]:
    """The desk's own folders: logs, models, reports, backups and the run folder (relative ones beside state.db)."""
    db = sqlite_path(settings.store_url())
    base = db.parent if db is not None else Path.cwd()
    names = [settings.runtime.log_dir, settings.ml.models_dir, settings.backtest.reports_dir,
             settings.store.backup_dir or "backups"]
    if settings.runtime.run_dir:
        names.append(settings.runtime.run_dir)
    out = []
    for name in names:
        path = Path(name).expanduser()
        out.append(path if path.is_absolute() else base / path)
    return out


def _tighten(path: Path, mode: int) -> bool:
    """chmod `path` to `mode` when it is ours and looser; True when changed."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if st.st_uid != os.geteuid() or stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) & ~mode == 0:
        return False
    os.chmod(path, mode)
    return True


def private_desk_dirs(settings: Settings) -> int:
    """Make the desk's existing folders 0700 and the files in them 0600 (recursively); returns how many changed."""
    changed = 0
    for folder in desk_dirs(settings):
        if not folder.is_dir():
            continue
        changed += _tighten(folder, 0o700)
        for root, dirs, files in os.walk(folder):
            changed += sum(_tighten(Path(root) / d, 0o700) for d in dirs)
            changed += sum(_tighten(Path(root) / f, 0o600) for f in files)
    db = sqlite_path(settings.store_url())
    if db is not None:
        for name in (f"{db.name}.lock", f"{db.name}.migrate-lock"):
            changed += _tighten(db.with_name(name), 0o600)
    return changed


def clean_stale_tmp(models_dir: Path, now: float | None = None) -> list[Path]:
    """Remove `.tmp` files (a killed training's half-written artefacts) older than STALE_TMP_S; returns them."""
    if not models_dir.is_dir():
        return []
    now = time.time() if now is None else now
    gone = []
    for path in models_dir.rglob("*.tmp"):
        try:
            if path.is_file() and now - path.stat().st_mtime > STALE_TMP_S:
                path.unlink()
                gone.append(path)
        except FileNotFoundError:
            continue
    return gone


def harden_desk(settings: Settings) -> None:
    """Start-of-engine hardening: private umask, private folders, stale model temp files removed (logged)."""
    harden_process()
    changed = private_desk_dirs(settings)
    from engine.ml.paths import models_dir

    gone = clean_stale_tmp(models_dir(settings))
    if changed or gone:
        log.info("hardening: %d paths made private, %d stale model temp files removed", changed, len(gone))
