"""Commands on a desk with two engines, without engine processes (two real command pollers in this process over a
real store, on each backend): where each command goes, which trading-state scope it moves, and what each engine
reads as its own (orders, positions, instances, trading state)."""

from __future__ import annotations

import json
import os
import socket

import pytest
from sqlalchemy import insert, select

from engine.clock import now_ms
from engine.config import LifecycleConfig
from engine.control.client import ControlClient
from engine.control.commands import CommandProcessor, EngineHooks
from engine.execution.orders import load_positions, open_orders
from engine.risk.trading_state import TradingState, get_state
from engine.store import open_store
from engine.store.engines import bind_engine, insert_status_row, unbind_engine
from engine.store.schema import commands, engine_status, orders, positions, strategy_instances
from engine.trading.lifecycle import list_instances
from tests.support.waiting import wait_for

OWNED = {"qm_main": "main", "qm_beta": "beta"}


def _seed(store) -> None:  # noqa: ANN001
    """Two live engines (this process's pid, fresh heartbeats), one instance each, one open order and position each."""
    now = now_ms()
    with store.begin() as conn:
        for name in ("main", "beta"):
            insert_status_row(conn, name, dict(pid=os.getpid(), host=socket.gethostname(), mode="paper",
                                               started_at=now, heartbeat_at=now + 3_600_000, version="t",
                                               info=json.dumps({"phase": "running"})))
        for inst, eng in OWNED.items():
            conn.execute(insert(strategy_instances).values(
                id=inst, strategy="quantum_momentum", stage="paper", status="running", capital=1000.0,
                symbols='["BTC/USDT"]', timeframe="1m", params="{}", created_at=now, stage_changed_at=now,
                updated_at=now, engine=eng))
            conn.execute(insert(orders).values(
                client_order_id=f"c-{inst}", instance_id=inst, symbol="BTC/USDT", side="buy", type="limit", qty=1.0,
                price=1.0, status="open", created_at=now, updated_at=now, filled_qty=0.0))
            conn.execute(insert(positions).values(instance_id=inst, symbol="BTC/USDT", qty=1.0, avg_price=1.0,
                                                   realized_pnl=0.0, fees=0.0, funding=0.0, updated_at=now))


class Engines:
    """One command poller per engine name, recording which broker actions each was asked for."""

    def __init__(self, store) -> None:  # noqa: ANN001
        self.calls: dict[str, list[str]] = {"main": [], "beta": []}
        self.pollers = {name: CommandProcessor(store, self._hooks(name), 20, LifecycleConfig(), name=name)
                        for name in self.calls}

    def _hooks(self, name: str) -> EngineHooks:
        def cancel(instance: str | None) -> int:
            self.calls[name].append(f"cancel:{instance}")
            return 1

        def flatten() -> dict:
            self.calls[name].append("flatten")
            return {"canceled": 1, "closed": 1}

        return EngineHooks(cancel_all=cancel, flatten=flatten, retrain=str, stop=lambda: None)

    def __enter__(self) -> "Engines":
        for p in self.pollers.values():
            p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.pollers.values():
            p.stop()


@pytest.fixture
def desk(backend_url: str):  # noqa: ANN201
    store = open_store(backend_url)
    _seed(store)
    yield store
    store.dispose()


def _client(store, engine: str | None = None) -> ControlClient:  # noqa: ANN001
    return ControlClient(store, source="cli", user="t", timeout_s=10.0, heartbeat_timeout_s=5.0, engine=engine)


def test_halt_reaches_every_engine_and_halt_engine_one_only(desk) -> None:  # noqa: ANN001
    with Engines(desk) as eng:
        res = _client(desk).halt("all")
        assert res.ok and "[main] HALTED" in res.message and "[beta] HALTED" in res.message, res.message
        assert eng.calls == {"main": ["cancel:None"], "beta": ["cancel:None"]}
        assert res.data["canceled"] == 2 and get_state(desk).state is TradingState.HALTED
        assert _client(desk).resume(True).ok and get_state(desk).state is TradingState.ACTIVE

        res = _client(desk, "beta").halt("beta only")
        assert res.ok, res.message
        assert eng.calls["beta"][-1] == "cancel:None" and eng.calls["main"] == ["cancel:None"]
        assert get_state(desk).state is TradingState.ACTIVE  # the desk
        assert get_state(desk, "engine:beta").state is TradingState.HALTED
        with desk.connect() as conn:
            row = conn.execute(select(commands.c.target, commands.c.scope).order_by(commands.c.id.desc())).first()
        assert tuple(row) == ("beta", "engine:beta")

        res = _client(desk, "beta").resume(True)
        assert res.ok and get_state(desk, "engine:beta").state is TradingState.ACTIVE, res.message

        assert _client(desk, "beta").halt("again").ok  # a desk-wide resume lifts every engine's own halt too
        assert _client(desk).resume(True).ok
        assert get_state(desk, "engine:beta").state is TradingState.ACTIVE

        res = _client(desk).pause_strategy("qm_beta")  # instance commands go to the owner
        assert res.ok and eng.calls["beta"][-1] == "cancel:qm_beta" and "cancel:qm_beta" not in eng.calls["main"]

        res = _client(desk).flatten()
        assert res.ok and eng.calls["main"][-1] == eng.calls["beta"][-1] == "flatten"

        res = _client(desk, "gamma").halt("nobody")
        assert not res.ok and "no engine named 'gamma'" in res.message and "main, beta" in res.message


def test_a_dead_engine_gets_the_desk_halt_as_applied(desk) -> None:  # noqa: ANN001
    with desk.begin() as conn:
        conn.execute(engine_status.update().where(engine_status.c.name == "beta").values(heartbeat_at=1))
    with Engines(desk) as eng:
        res = _client(desk).halt("all")
    assert res.ok and "[beta] HALTED; engine not running" in res.message, res.message
    assert eng.calls == {"main": ["cancel:None"], "beta": []}
    with desk.connect() as conn:
        rows = dict(conn.execute(select(commands.c.target, commands.c.status)
                                 .where(commands.c.command == "halt")).all())
    assert rows == {"main": "done", "beta": "done"}


def test_an_engine_reads_its_own_book_and_the_stricter_state(desk) -> None:  # noqa: ANN001
    from engine.risk.trading_state import set_state

    set_state(desk, TradingState.HALTED, "beta only", "cli", scope="engine:beta")
    try:
        for name, mine in (("main", "qm_main"), ("beta", "qm_beta")):
            bind_engine(name)
            assert [o["instance_id"] for o in open_orders(desk)] == [mine]
            assert [p["instance_id"] for p in load_positions(desk)] == [mine]
            assert [i.id for i in list_instances(desk)] == [mine]
            expected = TradingState.HALTED if name == "beta" else TradingState.ACTIVE
            assert get_state(desk).state is expected
    finally:
        unbind_engine()
    assert len(open_orders(desk)) == 2 and get_state(desk).state is TradingState.ACTIVE  # a front end sees all


def test_an_engine_may_not_trade_another_engines_instance(desk) -> None:  # noqa: ANN001
    from engine.config import ConfigError, Settings, StrategyInstanceConfig
    from engine.config_sections import EngineConfig
    from engine.trading.lifecycle import sync_instances

    settings = Settings(engine=EngineConfig(name="beta"),
                        strategies={"qm_main": StrategyInstanceConfig(strategy="quantum_momentum")})
    with pytest.raises(ConfigError, match="instance 'qm_main' belongs to engine 'main'"):
        sync_instances(desk, settings)


def test_a_watchdog_watches_its_own_engine(desk, tmp_path) -> None:  # noqa: ANN001
    """`quantdesk watchdog` run with an engine's config reads that engine's heartbeat row and locks beside its lock."""
    from engine.config import load_settings, settings_with
    from engine.runtime.watchdog import read_beat, watchdog_lock_path

    with desk.begin() as conn:
        conn.execute(engine_status.update().where(engine_status.c.name == "beta").values(heartbeat_at=1, pid=4242))
    now = now_ms()
    assert read_beat(desk, now).pid == os.getpid() and read_beat(desk, now).age_s < 0  # main: fresh
    beta = read_beat(desk, now, "beta")
    assert beta.pid == 4242 and beta.age_s > 3600
    settings = settings_with(load_settings(path=None, environ={}), store={"path": str(tmp_path / "state.db")},
                             engine={"name": "beta"})
    assert watchdog_lock_path(settings).name == "state.db.beta.watchdog.lock"


def test_an_engines_trigger_halts_that_engine_only(desk) -> None:  # noqa: ANN001
    """On a several-engine desk a trigger fired in engine beta (here: reconciliation mismatch) halts beta's own scope;
    main keeps ACTIVE; a front end sees the desk ACTIVE and beta HALTED in the engines list and the header tuple."""
    from engine.config import TriggerConfig
    from engine.control.engines import list_engines
    from engine.control.views import status_view
    from engine.risk.triggers import TriggerEngine, TriggerObservation
    from engine.store.engines import own_state_scope

    from engine.risk.trading_state import set_state

    set_state(desk, TradingState.ACTIVE, "desk row exists", "engine")  # an older desk-wide ACTIVE by the engine
    with desk.connect() as conn:
        assert own_state_scope(conn) == "global"  # a front end
    bind_engine("beta")
    try:
        with desk.connect() as conn:
            assert own_state_scope(conn) == "engine:beta"
        triggers = TriggerEngine(desk, TriggerConfig())
        fired = triggers.evaluate(TriggerObservation(recon_mismatch=1.0, ts=now_ms()))
        assert [f.rule for f in fired] == ["recon_mismatch"] and get_state(desk).state is TradingState.HALTED
        fired_at = now_ms()
        wait_for(lambda: now_ms() > fired_at, 1, "the clock to pass the trigger's millisecond")  # as an operator would
        set_state(desk, TradingState.ACTIVE, "operator resume", "cli", confirmed=True, scope="engine:beta")
        again = triggers.evaluate(TriggerObservation(recon_mismatch=1.0, ts=now_ms()))  # the operator's resume is
        assert [f.rule for f in again] == ["recon_mismatch"]  # this engine's last word: a standing mismatch re-fires
        bind_engine("main")
        assert get_state(desk).state is TradingState.ACTIVE
    finally:
        unbind_engine()
    assert get_state(desk).state is TradingState.ACTIVE and get_state(desk, "engine:beta").state is TradingState.HALTED
    with desk.connect() as conn:
        states = {e.name: e.state for e in list_engines(conn, heartbeat_timeout_ms=5000)}
        snap = status_view(conn, heartbeat_timeout_ms=5000)
    assert states == {"main": "ACTIVE", "beta": "HALTED"}
    assert snap.engines_restricted == (("beta", "HALTED"),) and snap.state == "ACTIVE"


def test_desk_halt_round_trip_with_two_engines(desk, backend_url: str, report) -> None:  # noqa: ANN001
    """A desk-wide halt on two engines (both doorbells rung, both results awaited) against one engine by --engine:
    the fan-out waits for the slower engine, not for the sum of both."""
    import statistics
    import time

    def timed(client: ControlClient) -> float:
        t0 = time.perf_counter()
        assert client.halt("timing").ok
        ms = (time.perf_counter() - t0) * 1000
        assert _client(desk).resume(True).ok
        return ms

    with Engines(desk):
        both = [timed(_client(desk)) for _ in range(7)]
        one = [timed(_client(desk, "beta")) for _ in range(7)]
    report(f"halt round trip, two in-process pollers ({backend_url.split(':', 1)[0]})",
           {"desk_halt_two_engines_median_ms": round(statistics.median(both), 1),
            "engine_halt_one_engine_median_ms": round(statistics.median(one), 1)})
    assert statistics.median(both) < 2 * statistics.median(one) + 50


def test_each_engine_lists_its_own_portfolio_equity(desk) -> None:  # noqa: ANN001
    """`quantdesk engines` / `status --engine`: each engine's latest portfolio total (main: 'portfolio', others:
    'portfolio:<name>'), never the other's."""
    from engine.control.engines import list_engines
    from engine.store.schema import equity_snapshots

    row = dict(cash=0.0, net_exposure=0.0, unrealized_pnl=0.0, realized_pnl=0.0)
    with desk.begin() as conn:
        for ts, scope, eq in ((1, "portfolio", 100.0), (2, "portfolio", 110.0), (1, "portfolio:beta", 50.0),
                              (3, "qm_beta", 7.0)):
            conn.execute(insert(equity_snapshots).values(ts=ts, scope=scope, equity=eq, gross_exposure=eq / 2, **row))
    with desk.connect() as conn:
        got = {e.name: (e.equity, e.gross_exposure) for e in list_engines(conn, heartbeat_timeout_ms=5000)}
    assert got == {"main": (110.0, 55.0), "beta": (50.0, 25.0)}
