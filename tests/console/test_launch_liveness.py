"""`quantdesk` starts an engine unless one is really alive: a cleanly stopped engine's fresh heartbeat does not count."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from sqlalchemy import insert

from console.launch import engine_running
from engine.control.reader import StateReader
from engine.clock import now_ms
from engine.config import load_settings, settings_with
from engine.store import open_store
from engine.store.schema import engine_status


@pytest.mark.parametrize("stopped, alive", [(False, True), (True, False)])
def test_stopped_engine_with_fresh_heartbeat_is_not_alive(tmp_path: Path, stopped: bool, alive: bool) -> None:
    path = tmp_path / "state.db"
    store = open_store(path)
    with store.begin() as conn:
        conn.execute(insert(engine_status).values(id=1, pid=os.getpid(), host=socket.gethostname(), mode="paper",
                                                  started_at=now_ms(), heartbeat_at=now_ms(), version="t",
                                                  info=json.dumps({"stopped": stopped})))
    settings = settings_with(load_settings(environ={}), store={"path": str(path)})
    assert engine_running(settings) is alive
    reader = StateReader(str(path))
    try:
        assert reader.status().engine_alive is alive
    finally:
        reader.close()


def test_no_state_db_means_no_engine(tmp_path: Path) -> None:
    settings = settings_with(load_settings(environ={}), store={"path": str(tmp_path / "never.db")})
    assert engine_running(settings) is False
    assert not (tmp_path / "never.db").exists()  # checking liveness creates nothing
