"""The command doorbell: a front end's ring makes the engine's poller claim a command at once, not at its next poll.

The poller here waits 30 s between polls, so a command claimed within a few seconds can only have been woken by the
ring; the same command without a ring waits for the poll (checked against a poller whose doorbell is not bound).
"""

from __future__ import annotations

import sys
import threading
import time

import pytest

from engine.config import LifecycleConfig
from engine.control.commands import CommandProcessor, EngineHooks
from tests.support.waiting import wait_for
from engine.control.client import ControlClient
from engine.control.doorbell import Doorbell, doorbell_address, ring
from engine.store import open_store

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract Unix sockets are Linux-only")

HOOKS = EngineHooks(cancel_all=lambda _i: 0, flatten=lambda: {"canceled": 0, "closed": 0, "positions_left": 0},
                    retrain=lambda s: s, stop=lambda: None)


def test_a_ring_wakes_the_poller_and_the_client_hears_the_claim(state_url):
    store = open_store(state_url)
    proc = CommandProcessor(store, HOOKS, poll_ms=30_000, lifecycle_cfg=LifecycleConfig())
    proc.start()
    try:
        assert proc.doorbell is not None and proc.doorbell.bound
        # the first poll runs at start; after it the poller sleeps on its doorbell (a ring sent earlier still wakes it)
        wait_for(lambda: proc.polls >= 1, 10, "the poller's first poll")
        client = ControlClient(state_url, source="cli", user="ops", timeout_s=10.0,
                               heartbeat_timeout_s=3600)
        client.engine_alive = lambda: True  # no engine heartbeat in this test: the poller above is the engine
        stages: list[tuple[str, float]] = []
        t0 = time.monotonic()
        result = client.emergency_stop("doorbell test", progress=lambda s: stages.append((s, time.monotonic())))
        elapsed = time.monotonic() - t0
        assert result.ok, result.message
        assert [s for s, _ in stages] == ["persisted", "claimed"]
        assert elapsed < 5.0, f"claimed after {elapsed:.2f}s: the ring did not wake the 30 s poller"
        from engine.risk.trading_state import get_state

        assert get_state(store).state.value == "HALTED"
    finally:
        proc.stop()
    assert not any(t.name == "command-poller" and t.is_alive() for t in threading.enumerate())
    assert ring(doorbell_address(store)) is False  # the stopped engine released its address: nobody listens


def test_one_address_per_store_and_a_second_binder_falls_back_to_polling(tmp_path):
    a = open_store(tmp_path / "a.db")
    b = open_store(tmp_path / "b.db")
    assert doorbell_address(a) != doorbell_address(b)
    assert doorbell_address(a) == doorbell_address(open_store(tmp_path / "sub" / ".." / "a.db"))
    stop = threading.Event()
    first = Doorbell(doorbell_address(a), stop)
    second = Doorbell(doorbell_address(a), stop)
    try:
        assert first.bound and not second.bound
        assert ring(doorbell_address(a)) and first.wait(1.0) is True
        assert first.wait(0.05) is False  # drained: one ring wakes one wait
        t0 = time.monotonic()
        assert second.wait(0.05) is False and time.monotonic() - t0 >= 0.04  # unbound: a plain timed wait
    finally:
        first.close()
        second.close()
