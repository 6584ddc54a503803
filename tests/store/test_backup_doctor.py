"""Finding 1 (tools): backups with retention, and `quantdesk doctor` that examines and recovers into a new file."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from engine.store.backup import list_backups, prune_backups, scheduled_backup
from engine.store.db import open_store
from engine.store.ops import raise_alert
from tests.store.cli_run import quantdesk


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_scheduled_backups_keep_the_newest(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    store = open_store(state)
    folder = tmp_path / "bk"
    for i in range(4):
        raise_alert(store, "info", "test.rule", f"row {i}", {})
        (folder / f"state-2026010{i}T000000Z.db").parent.mkdir(exist_ok=True)
        scheduled_backup(state, str(folder), keep=2)
        made = list_backups(folder)[0].path
        made.rename(folder / f"state-2026010{i}T000000Z.db")  # distinct, ordered names regardless of the clock
    (folder / ".state-x.db.tmp").write_bytes(b"half")  # an interrupted backup
    prune_backups(folder, keep=2)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["state-20260102T000000Z.db", "state-20260103T000000Z.db"]
    with sqlite3.connect(folder / names[-1]) as conn:
        assert conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 4
    assert (folder / names[-1]).stat().st_mode & 0o777 == 0o600


def test_doctor_finds_damage_and_recovers_into_a_new_file(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    store = open_store(state)
    raise_alert(store, "warning", "test.rule", "before the damage", {})
    store.dispose()
    assert quantdesk("--state", str(state), "backup", cwd=tmp_path).returncode == 0
    healthy = quantdesk("--state", str(state), "doctor", cwd=tmp_path)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "integrity      OK" in healthy.stdout and "last backup    OK" in healthy.stdout
    with open(state, "r+b") as fh:
        fh.seek(4096)
        fh.write(b"\xff" * 4096)  # a damaged page
    damaged = _digest(state)
    sick = quantdesk("--state", str(state), "doctor", cwd=tmp_path)
    assert sick.returncode == 1 and "integrity      FAIL" in sick.stdout and "--recover" in sick.stderr
    fixed = quantdesk("--state", str(state), "doctor", "--recover", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert _digest(state) == damaged  # the damaged store is never written, not even by the doctor
    new = [p for p in tmp_path.glob("state.recovered-*.db")]
    assert len(new) == 1
    with sqlite3.connect(new[0]) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT message FROM alerts").fetchone()[0] == "before the damage"
