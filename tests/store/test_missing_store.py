"""Finding 3: control commands and `status` never create a store; they name the desk they talked to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.store.db import open_store
from tests.store.cli_run import quantdesk


@pytest.mark.parametrize("argv", [["halt"], ["flatten"], ["status"], ["reduce"], ["resume", "--confirm"],
                                  ["alerts"], ["strategy", "list"], ["engine", "stop"]])
def test_commands_on_a_missing_store_fail_and_create_nothing(tmp_path: Path, argv: list[str]) -> None:
    state = tmp_path / "typo" / "state.db"
    out = quantdesk("--state", str(state), *argv, cwd=tmp_path)
    assert out.returncode != 0, out.stdout
    assert str(state) in out.stderr and "not found" in out.stderr
    assert "Traceback" not in out.stderr
    assert not state.exists() and not state.parent.exists()


def test_unknown_url_scheme_is_an_error_not_a_folder(tmp_path: Path) -> None:
    out = quantdesk("--state", "mysql://u@h/db", "halt", cwd=tmp_path)
    assert out.returncode == 2 and "mysql" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_halt_and_status_name_the_desk(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    open_store(state).dispose()
    halt = quantdesk("--state", str(state), "halt", cwd=tmp_path)
    assert halt.returncode == 0, halt.stderr
    assert f"desk {state}" in halt.stdout and "no engine running" in halt.stdout
    status = quantdesk("--state", str(state), "status", cwd=tmp_path)
    assert f"desk          : {state} (no engine running)" in status.stdout
    as_json = json.loads(quantdesk("--state", str(state), "status", "--json", cwd=tmp_path).stdout)
    assert as_json["desk"] == str(state) and as_json["trading_state"] == "HALTED"


def test_init_creates_a_store_and_refuses_to_overwrite(tmp_path: Path) -> None:
    state = tmp_path / "new" / "state.db"
    out = quantdesk("--state", str(state), "init", cwd=tmp_path)
    assert out.returncode == 0 and state.exists(), out.stderr
    again = quantdesk("--state", str(state), "init", cwd=tmp_path)
    assert again.returncode == 0 and "already" in again.stdout
    assert quantdesk("--state", str(state), "status", cwd=tmp_path).returncode == 0


def test_a_sqlite_file_that_is_not_a_quantdesk_store_is_refused(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    out = quantdesk("--state", str(other), "halt", cwd=tmp_path)
    assert out.returncode != 0 and "not a quantdesk store" in out.stderr
    with sqlite3.connect(other) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["t"]
