"""Sweeps on a real dask.distributed cluster: a scheduler and two worker processes started with dask's own
`dask scheduler` / `dask worker` commands on 127.0.0.1, as a desk would run them on other machines. The walk-forward
result equals the local sequential run, also for a user's strategy loaded from a folder (shipped to workers by
value), and an unreachable scheduler is one clear line from the CLI."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engine.backtest.walkforward import run_walkforward
from engine.config import BacktestConfig
from engine.strategy.registry import strategy_class
from tests.support.waiting import wait_for

STRATEGIES = Path(__file__).resolve().parents[1] / "support" / "strategies"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):  # noqa: ANN001, ANN201 - yields the scheduler address
    """`dask scheduler` + `dask worker` (2 single-threaded worker processes) as separate OS processes."""
    dask_cli = Path(sys.executable).with_name("dask")
    if not dask_cli.exists() and shutil.which("dask") is None:
        pytest.fail("the dask CLI is missing (pip install 'dask[distributed]')")
    folder = tmp_path_factory.mktemp("dask")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(folder / "cluster.log", "ab")  # noqa: SIM115 - closed below
    sched = subprocess.Popen([str(dask_cli), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                              "--no-dashboard"], stdout=log, stderr=log, cwd=folder)
    worker = subprocess.Popen([str(dask_cli), "worker", address, "--nworkers", "2", "--nthreads", "1",
                               "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(folder)],
                              stdout=log, stderr=log, cwd=Path(__file__).resolve().parents[2])
    from distributed import Client

    try:
        with Client(address, timeout="30s") as client:
            wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, 60, "two dask workers")
        yield address
    finally:
        for proc in (worker, sched):
            proc.terminate()
        for proc in (worker, sched):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


@pytest.mark.slow
def test_sweep_on_a_separate_process_cluster_equals_the_local_run(dask_cluster: str, make_panel,  # noqa: ANN001
                                                                  monkeypatch) -> None:
    from distributed import Client

    monkeypatch.setenv("QUANTDESK_STRATEGY_PATH", str(STRATEGIES))
    panel = make_panel(1200)
    cfg = BacktestConfig()
    # a shipped strategy with the default search (TPE) and a user's strategy from a folder with random search
    for name, search in (("macro_trend", "tpe"), ("sma_cross", "random")):
        cls = strategy_class(name)
        kw = {"n_trials": 4, "n_windows": 2, "search": search, "seed": 11}
        local = run_walkforward(cls, panel, cfg, backend="sequential", **kw)
        with Client(dask_cluster, timeout="30s"):
            remote = run_walkforward(cls, panel, cfg, backend="dask", n_jobs=2, **kw)
        assert remote.backend == "dask"
        pd_equal = local.table.drop(columns=["elapsed_s"], errors="ignore").equals(
            remote.table.drop(columns=["elapsed_s"], errors="ignore"))
        assert pd_equal, f"{name}: windows differ"
        assert local.oos_equity.equals(remote.oos_equity)
        assert local.metrics["sharpe"] == remote.metrics["sharpe"]


def test_unreachable_scheduler_is_one_clear_line(tmp_path: Path) -> None:
    port = _free_port()
    out = subprocess.run([sys.executable, "-c", "from console.cli import main; main()", "--state",
                          str(tmp_path / "s.db"), "optimize", "macro_trend", "--symbols", "BTC/USDT", "--since",
                          "60d", "--trials", "2", "--windows", "2", "--backend", "dask", "--scheduler",
                          f"tcp://127.0.0.1:{port}"], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "cannot reach the dask scheduler" in out.stderr and "Traceback" not in out.stderr
