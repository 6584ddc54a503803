"""Control-path latency: command -> HALTED, through state.db (chosen) and a Unix socket (the alternative).

Runs (all on real SQLite files in a temp folder, short):
1. state.db transport, in process: ControlClient.halt() against a CommandProcessor polling every 50 ms
   - "persisted": the client writes HALTED itself before queuing the command (what the brokers' gate reads)
   - "engine ack": until the engine's poller has executed the command and written its result, once with the
     client ringing the poller's doorbell after queuing (what front ends do) and once without (poll only)
2. Unix socket transport, in process: the same state command executed by a socket server thread (push, no poll).
3. A real engine subprocess (simulated exchange at 60x, both strategies trading): ControlClient.halt() round trips.
4. `quantdesk halt` as a fresh CLI process (interpreter start + imports + command), no engine.
Usage: .venv/bin/python benchmarks/bench_control.py [--n 30]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.config import LifecycleConfig  # noqa: E402
from engine.control.commands import CommandProcessor, EngineHooks, execute_state_command  # noqa: E402
from engine.control.client import ControlClient, submit_command  # noqa: E402
from engine.store import open_store  # noqa: E402
from engine.store.schema import engine_status  # noqa: E402


def _summary(name: str, values_ms: list[float]) -> str:
    """One markdown table row: median, p95, max in ms."""
    v = sorted(values_ms)
    p95 = v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]
    return f"| {name} | {len(v)} | {statistics.median(v):.1f} | {p95:.1f} | {v[-1]:.1f} |"


def _fake_heartbeat(store, stop: threading.Event) -> None:
    """Keep an engine_status heartbeat fresh so the client sends commands instead of applying them offline."""
    from engine.clock import now_ms

    with store.begin() as conn:
        conn.execute(engine_status.insert().values(id=1, pid=os.getpid(), host=socket.gethostname(), mode="paper",
                                                   started_at=now_ms(), heartbeat_at=now_ms(), version="bench",
                                                   info="{}"))
    while not stop.wait(0.5):
        with store.begin() as conn:
            conn.execute(engine_status.update().values(heartbeat_at=now_ms()))


def bench_db(folder: Path, n: int, doorbell: bool = True) -> tuple[list[float], list[float]]:
    """state.db transport: client-persisted and engine-acknowledged halt latencies (with or without the doorbell)."""
    store = open_store(folder / f"db-{int(doorbell)}.db")
    stop = threading.Event()
    threading.Thread(target=_fake_heartbeat, args=(store, stop), daemon=True).start()
    hooks = EngineHooks(cancel_all=lambda i: 0, flatten=lambda: {}, retrain=lambda s: "", stop=lambda: None)
    proc = CommandProcessor(store, hooks, poll_ms=50, lifecycle_cfg=LifecycleConfig())
    proc.start()
    client = ControlClient(store, source="cli", user="bench")
    if not doorbell:
        client.doorbell = None  # the client does not ring: the command waits for the next 50 ms poll
    persisted, acked = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        res = client.halt("bench")
        acked.append((time.perf_counter() - t0) * 1000)
        persisted.append(res.data["state_persisted_ms"])
        time.sleep(0.013)  # de-phase from the poll period
    proc.stop()
    stop.set()
    return persisted, acked


def bench_socket(folder: Path, n: int) -> list[float]:
    """Unix socket transport: the server executes the halt and answers; latency of the round trip."""
    store = open_store(folder / "sock.db")
    path = str(folder / "engine.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                cid = submit_command(store, "halt", {"reason": "bench"}, "cli", "bench", status="running")
                res = execute_state_command(store, cid, "halt", {"reason": "bench"}, "cli", "bench", engine=True)
                conn.sendall(res.message.encode())

    threading.Thread(target=serve, daemon=True).start()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)
        c.sendall(b'{"command": "halt"}')
        c.recv(4096)
        c.close()
        out.append((time.perf_counter() - t0) * 1000)
    srv.close()
    return out


def bench_engine(folder: Path, n: int) -> tuple[list[float], list[float]]:
    """A real engine process trading on the simulator at 60x: halt round trips and persisted latencies."""
    cfg = folder / "quantdesk.toml"
    cfg.write_text("[simulator]\nspeed = 60.0\n[runtime]\nheartbeat_interval_s = 0.5\nequity_interval_s = 1.0\n")
    state = folder / "engine.db"
    err = open(folder / "engine.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "engine.runtime.main", "--state", str(state), "--config",
                             str(cfg)], cwd=folder, stdout=err, stderr=err, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        deadline = time.monotonic() + 120
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        store = open_store(state)
        client = ControlClient(store, source="cli", user="bench")
        while time.monotonic() < deadline and client.status().open_positions == 0:
            time.sleep(0.2)
        acked, persisted = [], []
        for i in range(n):
            t0 = time.perf_counter()
            res = client.halt("bench")
            acked.append((time.perf_counter() - t0) * 1000)
            persisted.append(res.data.get("state_persisted_ms", float("nan")))
            if i % 2 == 0:
                client.resume(confirm=True)  # so the next halt is a real ACTIVE -> HALTED transition
            time.sleep(0.05)
        return persisted, acked
    finally:
        proc.terminate()
        proc.wait(30)


def bench_cli(folder: Path, n: int) -> list[float]:
    """`quantdesk halt` as a fresh process (no engine): what an operator's keystroke in a shell costs."""
    out = []
    cli = [sys.executable, "-c", "from console.cli import main; main()", "--state", str(folder / "cli.db")]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # halt refuses a store that does not exist (exit 3): create it first, untimed
    subprocess.run([*cli, "init"], check=True, capture_output=True, env=env)
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([*cli, "halt"], check=True, capture_output=True, env=env)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    """Run every measurement and print a markdown table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        persisted, acked = bench_db(folder, args.n)
        _, acked_poll = bench_db(folder, args.n, doorbell=False)
        sock = bench_socket(folder, args.n)
        e_persisted, e_acked = bench_engine(folder, max(10, args.n // 2))
        cli = bench_cli(folder, 5)
    print("| path | n | median ms | p95 ms | max ms |")
    print("|---|---|---|---|---|")
    print(_summary("state.db: HALTED persisted by the client (in process)", persisted))
    print(_summary("state.db: engine poller ack, doorbell + poll 50 ms (in process)", acked))
    print(_summary("state.db: engine poller ack, poll 50 ms only (in process)", acked_poll))
    print(_summary("unix socket: server executes halt, round trip (in process)", sock))
    print(_summary("real engine at 60x: HALTED persisted", e_persisted))
    print(_summary("real engine at 60x: halt round trip incl. order cancels", e_acked))
    print(_summary("`quantdesk halt` fresh CLI process, no engine", cli))


if __name__ == "__main__":
    main()
