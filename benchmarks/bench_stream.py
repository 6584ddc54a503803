"""Stream ingest throughput and reconnect-to-backfilled time, against the exchange twin on 127.0.0.1.

1. Throughput: the twin blasts Binance `trade` frames (unique ids, E/T = send time) on `btcusdt@trade`; two clients
   consume the same frames in the same run: the engine's pipeline (ccxt.pro `watch_trades` -> TradeValidator ->
   state.db via MarketStreams) and a peer floor (a bare aiohttp websocket -> json.loads -> sqlite3 executemany loop).
   Reported: trades/s until all are stored (capacity) and, at a paced rate, the storage lag (send -> row visible).
2. Reconnect: with trades + 1m candles streaming, the twin drops every websocket; the time from the drop until both
   streams are reconnected and their REST backfill has run.

With --isolated each consumer (the engine's pipeline, the floor) runs in its own process, as it would against a real
exchange; by default both share the bench's process (and its GIL) with the twin, which is how earlier runs measured.

Usage: .venv/bin/python benchmarks/bench_stream.py [--frames 100000] [--rate 20000] [--seconds 8] [--isolated]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data.ccxt_source import CcxtSource, build_ccxt_exchange  # noqa: E402
from engine.config_sections import ExchangeConfig  # noqa: E402
from engine.data.streams import MarketStreams  # noqa: E402
from engine.store import open_store  # noqa: E402
from tests.support.twin import start_twin  # noqa: E402


async def _blast(hub, n: int, rate: float | None, sent_at: list[tuple[int, float]], start_id: int) -> None:
    """Publish n trade frames (in batches of 200) at `rate` per second, or as fast as possible."""
    batch, done, t0 = 200, 0, time.perf_counter()
    while done < n:
        k = min(batch, n - done)
        now = int(time.time() * 1000)
        frames = [{"e": "trade", "E": now, "s": "BTCUSDT", "t": start_id + done + i, "p": "60000.00",
                   "q": "0.01000", "T": now, "m": bool(i % 2), "M": True} for i in range(k)]
        await hub.publish("spot", "btcusdt@trade", frames)
        done += k
        sent_at.append((done, time.perf_counter()))
        if rate:
            ahead = done / rate - (time.perf_counter() - t0)
            if ahead > 0:
                await asyncio.sleep(ahead)
        else:
            await asyncio.sleep(0)


def _count(path: Path, sql: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def _measure(handle, subscribed, count, n: int, rate: float | None, start_id: int, base: int) -> dict[str, float]:
    """Blast n frames; poll the stored count; return throughput and lag."""
    sent_at: list[tuple[int, float]] = []
    deadline = time.time() + 20
    while not subscribed() and time.time() < deadline:
        time.sleep(0.05)
    t0 = time.perf_counter()
    fut = asyncio.run_coroutine_threadsafe(_blast(handle.twin.hub, n, rate, sent_at, start_id), handle.server._loop)
    lags = []
    stored = 0
    end = time.perf_counter() + 120
    while time.perf_counter() < end:
        stored = count() - base
        now = time.perf_counter()
        sent_snapshot = list(sent_at)
        covered = [t for k, t in sent_snapshot if k <= stored]
        if sent_snapshot and sent_snapshot[-1][0] > stored:
            oldest_unstored = next(t for k, t in sent_snapshot if k > stored)
            lags.append(now - oldest_unstored)
        elif covered:
            lags.append(0.0)
        if stored >= n:
            break
        time.sleep(0.05)
    fut.result(30)
    elapsed = time.perf_counter() - t0
    lags.sort()
    return {"stored": stored, "seconds": elapsed, "per_s": stored / elapsed,
            "lag_p50": lags[len(lags) // 2] if lags else 0.0, "lag_max": lags[-1] if lags else 0.0}


class Peer:
    """The floor: a bare websocket -> json.loads -> sqlite3 executemany loop in its own thread."""

    def __init__(self, url: str, path: Path) -> None:
        self.url, self.path = url, path
        self.subscribed = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        import aiohttp

        conn = sqlite3.connect(self.path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS t (id TEXT PRIMARY KEY, ts INTEGER, price REAL, amount REAL, "
                     "side TEXT)")
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(self.url + "/stream/ws/0") as ws:
                await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}))
                await ws.receive()
                self.subscribed.set()
                buf: list[tuple] = []
                last = time.perf_counter()
                while not self._stop.is_set():
                    try:
                        msg = await asyncio.wait_for(ws.receive(), 0.05)
                        d = json.loads(msg.data)
                        buf.append((str(d["t"]), d["T"], float(d["p"]), float(d["q"]), "sell" if d["m"] else "buy"))
                    except asyncio.TimeoutError:
                        pass
                    if buf and (len(buf) >= 1000 or time.perf_counter() - last > 0.05):
                        conn.executemany("INSERT OR REPLACE INTO t VALUES (?, ?, ?, ?, ?)", buf)
                        conn.commit()
                        buf, last = [], time.perf_counter()
        conn.close()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)


def consume(kind: str, base_url: str, key: str, secret: str, db: Path) -> None:
    """Child-process consumer for --isolated: the engine's pipeline or the floor, until SIGTERM."""
    if kind == "peer":
        peer = Peer(base_url, db)
        peer.thread.start()
        signal.sigwait([signal.SIGTERM])
        peer.stop()
        return
    from tests.support.twin import twin_exchange

    store = open_store(f"sqlite:///{db}")
    rest = CcxtSource(twin_exchange(base_url, key, secret, rateLimit=1))
    # the websocket client exactly as the engine builds it (engine/runtime/streaming.py)
    streams = MarketStreams(store, lambda: build_ccxt_exchange("binance", base_url=base_url, pro=True), rest,
                            ["BTC/USDT"], [], books=False, funding=False)
    streams.start()
    signal.sigwait([signal.SIGTERM])
    streams.stop()
    store.dispose()


def _child(kind: str, handle, db: Path) -> subprocess.Popen:
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])  # inherited: the child waits for it with sigwait
    try:
        return subprocess.Popen([sys.executable, __file__, "--consume", kind, "--url", handle.base_url, "--db", str(db)],
                                env={**os.environ, "BENCH_TWIN_KEY": handle.api_key,
                                     "BENCH_TWIN_SECRET": handle.api_secret})
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])


def _reconnect(handle, store, rest, ws, drops: int) -> dict[str, float]:
    """Drop every websocket `drops` times (trades + 1m candles streaming, the engine's default backoff); seconds
    from each drop until both streams reconnected and their REST backfill ran."""
    defaults = ExchangeConfig()
    streams = MarketStreams(store, ws, rest, ["BTC/USDT"], ["1m"], books=False, funding=False,
                            backoff_max_s=defaults.reconnect_max_s, stale_s=defaults.stream_stale_s)
    streams.start()
    ohlcv, trades = streams.stats["ohlcv:BTC/USDT:1m"], streams.stats["trades:BTC/USDT"]
    deadline = time.time() + 60
    while (ohlcv.backfills < 1 or trades.backfills < 1) and time.time() < deadline:
        time.sleep(0.05)
    times = []
    for _ in range(drops):
        b0, t0b = ohlcv.backfills, trades.backfills
        t0 = time.perf_counter()
        handle.set_faults(drop_ws=True)
        while (ohlcv.backfills <= b0 or trades.backfills <= t0b) and time.perf_counter() - t0 < 60:
            time.sleep(0.01)
        times.append(time.perf_counter() - t0)
        time.sleep(1.0)
    streams.stop()
    print("reconnect times (s):", " ".join(f"{t:.2f}" for t in times))
    times.sort()
    return {"drops": drops, "median_s": times[len(times) // 2], "p90_s": times[int(0.9 * (len(times) - 1))],
            "max_s": times[-1]}


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a consumer process has used: the load-independent cost per trade."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def _isolated(handle, tmp: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Throughput with each consumer in its own process (the twin stays in this one)."""
    results: dict[str, dict[str, float]] = {}
    paced = int(args.rate * args.seconds)
    wanted = lambda: handle.twin.hub.wanted("spot", "btcusdt@trade")  # noqa: E731
    for kind, db, sql, first_id in (("engine", tmp / "iso-state.db", "SELECT COUNT(*) FROM trades", 5 * 10**12),
                                     ("peer", tmp / "iso-peer.db", "SELECT COUNT(*) FROM t", 7 * 10**12)):
        proc = _child(kind, handle, db)
        try:
            time.sleep(3.0 if kind == "engine" else 1.0)  # start-up and subscription
            base, cpu, own = _count(db, sql), _cpu_s(proc.pid), _cpu_s(os.getpid())
            r = _measure(handle, wanted, lambda: _count(db, sql), args.frames, None, first_id, base)
            r["cpu_us_per_trade"] = (_cpu_s(proc.pid) - cpu) / max(r["stored"], 1) * 1e6
            r["twin_cpu_us_per_trade"] = (_cpu_s(os.getpid()) - own) / max(r["stored"], 1) * 1e6  # twin + blaster
            results[f"{kind} capacity (own process)"] = r
            base, cpu = _count(db, sql), _cpu_s(proc.pid)
            r = _measure(handle, wanted, lambda: _count(db, sql), paced, args.rate, first_id + 10**11, base)
            r["cpu_us_per_trade"] = (_cpu_s(proc.pid) - cpu) / max(r["stored"], 1) * 1e6
            results[f"{kind} paced (own process)"] = r
        finally:
            proc.terminate()
            proc.wait(30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isolated", action="store_true", help="each consumer in its own process")
    parser.add_argument("--consume", choices=("engine", "peer"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=20_000.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--drops", type=int, default=10, help="websocket drops in the reconnect measurement")
    parser.add_argument("--only-reconnect", action="store_true", help="skip the throughput runs")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="the twin's market speed; at 1 its simulated tape has a trade every ~1.8 s (median, p90 "
                             "5.7 s), and a trade stream's backfill runs after its first message on the new "
                             "connection, so the reconnect time includes waiting for the next trade")
    args = parser.parse_args()
    if args.consume:
        consume(args.consume, args.url, os.environ["BENCH_TWIN_KEY"], os.environ["BENCH_TWIN_SECRET"], args.db)
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    print(f"load average before: {os.getloadavg()}")
    handle = start_twin(tmp / "venue.db", speed=args.speed)
    print(f"twin speed {args.speed:g}")
    results: dict[str, dict[str, float]] = {}
    try:
        if args.isolated:
            results = _isolated(handle, tmp, args)
            for name, r in results.items():
                print(name, {k: round(v, 3) for k, v in r.items()})
            ec, pc = results["engine capacity (own process)"]["per_s"], results["peer capacity (own process)"]["per_s"]
            print(f"capacity ratio engine/peer: {ec / pc:.2f}")
            cpu = results["engine capacity (own process)"]["cpu_us_per_trade"]
            print(f"engine pipeline CPU per trade: {cpu:.1f} us -> {1e6 / cpu:,.0f} trades/s on one free core")
            print(f"load average after: {os.getloadavg()}")
            return
        state = tmp / "state.db"
        store = open_store(f"sqlite:///{state}")
        rest = CcxtSource(handle.exchange(rateLimit=1))
        ws = lambda: build_ccxt_exchange("binance", base_url=handle.base_url, pro=True)  # noqa: E731 - as the engine
        streams = MarketStreams(store, ws, rest, ["BTC/USDT"], [], books=False, funding=False)
        streams.start()
        sql = "SELECT COUNT(*) FROM trades WHERE exchange='binance' AND symbol='BTC/USDT'"
        wanted = lambda: handle.twin.hub.wanted("spot", "btcusdt@trade")  # noqa: E731
        time.sleep(1.0)
        if args.only_reconnect:
            streams.stop()
            results["reconnect"] = _reconnect(handle, store, rest, ws, args.drops)
            print("reconnect", results["reconnect"], f"load average after: {os.getloadavg()}")
            return
        base = _count(state, sql)
        results["engine capacity"] = _measure(handle, wanted, lambda: _count(state, sql), args.frames, None,
                                              10**12, base)
        base = _count(state, sql)
        paced = int(args.rate * args.seconds)
        results["engine paced"] = _measure(handle, wanted, lambda: _count(state, sql), paced, args.rate,
                                           2 * 10**12, base)
        streams.stop()
        peer = Peer(handle.base_url, tmp / "peer.db")
        peer.thread.start()
        psql = "SELECT COUNT(*) FROM t"
        results["peer capacity"] = _measure(handle, peer.subscribed.is_set, lambda: _count(tmp / "peer.db", psql),
                                            args.frames, None, 3 * 10**12, 0)
        base = _count(tmp / "peer.db", psql)
        results["peer paced"] = _measure(handle, peer.subscribed.is_set, lambda: _count(tmp / "peer.db", psql),
                                         paced, args.rate, 4 * 10**12, base)
        peer.stop()
        results["reconnect"] = _reconnect(handle, store, rest, ws, args.drops)
        store.dispose()
    finally:
        handle.stop()
    for name, r in results.items():
        print(name, {k: round(v, 3) for k, v in r.items()})
    ec, pc = results["engine capacity"]["per_s"], results["peer capacity"]["per_s"]
    print(f"capacity ratio engine/peer: {ec / pc:.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
