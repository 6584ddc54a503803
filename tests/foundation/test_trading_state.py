"""The persisted trading-state machine: transitions, audit rows, and HALTED surviving a restart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.risk.trading_state import (TradingState, TransitionError, get_state, order_allowed, set_state)
from engine.store import open_store


def test_default_is_active(store) -> None:  # noqa: ANN001
    assert get_state(store).state is TradingState.ACTIVE


def test_tightening_is_free_loosening_needs_an_operator(store) -> None:  # noqa: ANN001
    set_state(store, TradingState.REDUCING, "vpin", source="trigger", user="engine")
    with pytest.raises(TransitionError, match="operator"):
        set_state(store, TradingState.ACTIVE, "auto", source="trigger")
    set_state(store, TradingState.HALTED, "dd", source="trigger")
    with pytest.raises(TransitionError, match="confirmation"):
        set_state(store, TradingState.ACTIVE, "resume", source="cli", user="alice")
    with pytest.raises(TransitionError, match="ACTIVE only"):
        set_state(store, TradingState.REDUCING, "resume", source="cli", user="alice", confirmed=True)
    event = set_state(store, TradingState.ACTIVE, "resume", source="cli", user="alice", confirmed=True)
    assert (event.previous, event.current) == (TradingState.HALTED, TradingState.ACTIVE)
    with store.connect() as conn:
        rows = conn.exec_driver_sql("SELECT source, user, details FROM audit_log ORDER BY id").fetchall()
    moves = [(r[0], json.loads(r[2])["from"], json.loads(r[2])["to"]) for r in rows]
    assert moves == [("trigger", "ACTIVE", "REDUCING"), ("trigger", "REDUCING", "HALTED"), ("cli", "HALTED", "ACTIVE")]
    assert rows[-1][1] == "alice"


def test_halted_survives_a_new_process(state_path: Path) -> None:
    st = open_store(state_path)
    set_state(st, TradingState.HALTED, "emergency stop", source="console", user="bob")
    st.dispose()
    code = ("from engine.store import open_store; from engine.risk.trading_state import get_state; "
            f"print(get_state(open_store({str(state_path)!r})).state.value)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[2])
    assert out.stdout.strip() == "HALTED"


@pytest.mark.parametrize("state, reduces, cancel, allowed", [
    (TradingState.ACTIVE, False, False, True),
    (TradingState.REDUCING, False, False, False),
    (TradingState.REDUCING, True, False, True),
    (TradingState.HALTED, True, False, False),
    (TradingState.HALTED, False, True, True),
])
def test_order_gate(state: TradingState, reduces: bool, cancel: bool, allowed: bool) -> None:
    assert order_allowed(state, reduces, cancel) is allowed
