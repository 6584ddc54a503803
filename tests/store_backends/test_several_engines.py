"""Several engines on one desk, on each store backend (a SQLite file, a PostgreSQL database on 127.0.0.1): two real
engine processes by name ("main" and "beta"), each with its own instances, both trading on the simulator. `quantdesk
halt --engine beta` halts beta only; one `quantdesk halt` halts both; kill -9 of either leaves the other trading and
its own state intact; a restart resumes its own instances only; two engines of one name are still refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.control.client import ControlClient
from engine.control.engines import list_engines
from engine.execution.orders import check_positions_match_fills
from engine.store.schema import commands, equity_snapshots, fills, orders, strategy_instances
from tests.runtime.rt_helpers import start_engine, stop_engine, write_config
from tests.store_backends.test_engine_on_both_backends import _try_open
from tests.support.desk_strategies import CALM_MARKET_TRIGGERS, install
from tests.support.waiting import wait_for

ENGINES = {"main": "cyc_main", "beta": "cyc_beta"}  # engine name -> the one instance its config declares
TRADE_WAIT_S = 90  # bar_cycle at 60x changes side every 3 bars (3 s); the wait covers an engine start under load


def _config(folder: Path, name: str, instance: str) -> Path:
    """A fast simulated engine's config declaring one instance; `[engine] name` unless it is main (the default)."""
    folder.mkdir(exist_ok=True)
    cfg = write_config(folder, speed=60.0, extra="rebalance_band = 0.0\nmin_order_notional = 1.0", latency_ms=50.0)
    named = "" if name == "main" else f'[engine]\nname = "{name}"\n'
    install(folder, "rhythms")
    cfg.write_text(cfg.read_text() + f'{named}[strategies.{instance}]\nstrategy = "bar_cycle"\n'
                   'timeframe = "1m"\nsymbols = ["BTC/USDT", "ETH/USDT"]\n' + QUIET_MARKET)
    return cfg


QUIET_MARKET = '[data]\nsymbols = ["BTC/USDT", "ETH/USDT"]\n' + CALM_MARKET_TRIGGERS  # about engines, not triggers




def _count(store, table, *where) -> int:  # noqa: ANN001
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar() or 0)


def _n_orders(store, instance: str) -> int:  # noqa: ANN001
    return _count(store, orders, orders.c.instance_id == instance)


def _n_fills(store, instance: str) -> int:  # noqa: ANN001
    return _count(store, fills, fills.c.instance_id == instance)


def _cli(folder: Path, url: str, config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from console.cli import main; main()", "--state", url, "--config",
                           str(config), *args], cwd=folder, capture_output=True, text=True, timeout=120)


def _running(store, name: str) -> bool:  # noqa: ANN001
    """Engine `name` lives and has started its jobs (its instances are synced by then)."""
    with store.connect() as conn:
        found = [e for e in list_engines(conn, heartbeat_timeout_ms=3000) if e.name == name]
    return bool(found) and found[0].alive and found[0].phase == "running"


class Desk:
    """Two engine processes by name on one store, each started from its own folder and config."""

    def __init__(self, root: Path, url: str) -> None:
        self.root, self.url = root, url
        self.cfg = {name: _config(root / name, name, inst) for name, inst in ENGINES.items()}
        self.procs: dict[str, subprocess.Popen] = {}
        self.store = None

    def start(self, name: str) -> subprocess.Popen:
        """Start engine `name` and wait until its heartbeat says it lives."""
        self.procs[name] = start_engine(self.root / name, self.cfg[name], self.url)
        self.store = self.store or wait_for(lambda: _try_open(self.url), 60, "the store")
        wait_for(lambda: _running(self.store, name), 90, f"engine {name} running")
        return self.procs[name]

    def kill(self, name: str) -> None:
        """SIGKILL engine `name` and reap it."""
        self.procs[name].kill()
        self.procs[name].wait(10)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return _cli(self.root, self.url, self.cfg["main"], *args)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            stop_engine(proc)


def test_a_second_engine_by_another_name_runs_beside_the_first_and_a_same_name_one_is_refused(
        backend_url: str, tmp_path: Path) -> None:
    """Fails on a desk where one engine locks the whole store: beta was refused while main ran."""
    desk = Desk(tmp_path, backend_url)
    try:
        desk.start("main")
        desk.start("beta")
        with desk.store.connect() as conn:
            listed = {e.name: e for e in list_engines(conn, heartbeat_timeout_ms=3000)}
            owners = dict(conn.execute(select(strategy_instances.c.id, strategy_instances.c.engine)).all())
        assert listed["main"].alive and listed["beta"].alive
        assert owners == {"cyc_main": "main", "cyc_beta": "beta"}
        twin = start_engine(tmp_path / "beta", desk.cfg["beta"], backend_url)
        assert twin.wait(60) == 1
        err = (tmp_path / "beta" / "engine.stderr").read_text()
        assert "another engine named 'beta'" in err or "(engine 'beta')" in err, err[-2000:]
        out = desk.cli("engines")
        assert out.returncode == 0 and "engine main" in out.stdout and "engine beta" in out.stdout, out.stdout
    finally:
        desk.stop_all()


@pytest.mark.slow
@pytest.mark.timeout(900)  # five engine starts and four trading waits on a shared 2-core machine
def test_two_engines_one_desk_halt_one_halt_all_kill9_either(backend_url: str, tmp_path: Path, report) -> None:
    desk = Desk(tmp_path, backend_url)
    try:
        desk.start("main")
        desk.start("beta")
        store = desk.store
        for name, inst in ENGINES.items():
            wait_for(lambda i=inst: _n_fills(store, i) > 0, TRADE_WAIT_S, f"the first fill of {name}'s {inst}")

        # --engine beta halts beta only: main keeps trading, beta sends nothing new
        out = desk.cli("halt", "--engine", "beta", "--reason", "beta only")
        assert out.returncode == 0 and "HALTED" in out.stdout, out.stdout + out.stderr
        beta_orders, main_fills = _n_orders(store, "cyc_beta"), _n_fills(store, "cyc_main")
        wait_for(lambda: _n_fills(store, "cyc_main") > main_fills + 1, TRADE_WAIT_S,
                 "main trading on while beta is halted")
        assert _n_orders(store, "cyc_beta") == beta_orders, "beta sent orders while halted by --engine beta"
        out = desk.cli("resume", "--engine", "beta", "--confirm")
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: _n_orders(store, "cyc_beta") > beta_orders, TRADE_WAIT_S,
                 "beta trading again after its resume")

        # kill -9 of either leaves the other trading and its own state intact; a restart resumes its own only
        for victim, other in (("beta", "main"), ("main", "beta")):
            before = {i: (_n_orders(store, i), _n_fills(store, i)) for i in ENGINES.values()}
            desk.kill(victim)
            assert check_positions_match_fills(store) == [], f"after kill -9 of {victim}"
            other_fills = _n_fills(store, ENGINES[other])
            wait_for(lambda o=other, n=other_fills: _n_fills(store, ENGINES[o]) > n, TRADE_WAIT_S,
                     f"{other} trading on after kill -9 of {victim}")
            assert _n_fills(store, ENGINES[victim]) >= before[ENGINES[victim]][1], f"{victim}'s fills vanished"
            victim_orders = _n_orders(store, ENGINES[victim])
            desk.start(victim)
            wait_for(lambda v=victim, n=victim_orders: _n_orders(store, ENGINES[v]) > n, TRADE_WAIT_S,
                     f"{victim} trading its own instance after its restart")
            with store.connect() as conn:
                mine = {e.name: e.instances for e in list_engines(conn, heartbeat_timeout_ms=3000)}
            assert mine == {"main": ("cyc_main",), "beta": ("cyc_beta",)}

        # one `quantdesk halt` halts every engine of the desk
        out = desk.cli("halt", "--reason", "desk-wide stop")
        assert out.returncode == 0 and "[main] HALTED" in out.stdout and "[beta] HALTED" in out.stdout, \
            out.stdout + out.stderr
        with store.connect() as conn:
            rows = conn.execute(select(commands.c.target, commands.c.status).where(
                commands.c.command == "halt", commands.c.scope == "global")).all()
        assert {t for t, s in rows if s == "done"} >= {"main", "beta"}, rows
        at_halt = {i: _n_orders(store, i) for i in ENGINES.values()}
        for scope in ("portfolio", "portfolio:beta"):  # both engines keep working (equity jobs) while halted
            n = _count(store, equity_snapshots, equity_snapshots.c.scope == scope)
            wait_for(lambda s=scope, k=n: _count(store, equity_snapshots, equity_snapshots.c.scope == s) > k + 3, 60,
                     f"{scope} snapshots while halted")
        assert {i: _n_orders(store, i) for i in ENGINES.values()} == at_halt, "an order was created while HALTED"
        desk.kill("main")
        desk.start("main")  # HALTED survives a restart, desk-wide
        client = ControlClient(store, source="cli", heartbeat_timeout_s=3.0)
        assert client.status().trading_state == "HALTED"
        assert {i: _n_orders(store, i) for i in ENGINES.values()} == at_halt, "an order was created while HALTED"
        status = desk.cli("status")
        assert status.returncode == 0 and "engine main" in status.stdout and "engine beta" in status.stdout
        report(f"two engines on {backend_url.split(':', 1)[0]}", {
            "orders_main": at_halt["cyc_main"], "orders_beta": at_halt["cyc_beta"],
            "fills_main": _n_fills(store, "cyc_main"), "fills_beta": _n_fills(store, "cyc_beta")})
    finally:
        desk.stop_all()
    n_orders = _count(desk.store, orders)
    with desk.store.connect() as conn:
        distinct = conn.execute(select(func.count(func.distinct(orders.c.client_order_id)))).scalar()
    assert distinct == n_orders, "a client order id repeats"
    assert check_positions_match_fills(desk.store) == []
