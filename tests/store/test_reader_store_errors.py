"""Issue 11: a store that breaks while the console runs shows one line naming the store, the cause and
`quantdesk doctor` (the console's header and every screen show StateUnavailable's text), never a driver message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.control.reader import StateReader, StateUnavailable
from engine.store import open_store


def test_a_store_corrupted_under_a_running_console_reads_as_one_line(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    open_store(path).dispose()
    reader = StateReader(path)
    assert reader.status().state == "ACTIVE"  # readable while healthy
    reader.close()
    size = path.stat().st_size
    with open(path, "r+b") as fh:  # a failing disk: every page but the header page turns to noise
        fh.seek(4096)
        fh.write(os.urandom(size - 4096))
    with pytest.raises(StateUnavailable) as err:
        StateReader(path).status()  # opens (the header is intact); the first query meets the damage
    text = str(err.value)
    assert str(path) in text and "quantdesk doctor" in text, text
    assert "\n" not in text and "Traceback" not in text and "sqlite3" not in text
