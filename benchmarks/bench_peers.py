"""Benchmark: our full backtest against the newest peers, each in its own venv and process, on the same bars.

Run:  .venv/bin/python benchmarks/bench_peers.py                  (`make bench` runs benchmarks/peers/setup.sh first)
      .venv/bin/python benchmarks/bench_peers.py --quick          (100k bars, one repeat: a smoke run)

Strategy everywhere: SMA 20/100 crossover, long-only, all-in, no fees, decided on a bar's close, filled at the next
open (benchmarks/peers/workers.py). Cases: 1M and 5M bars of one symbol and 10 symbols x 1M bars, for ours
(run_backtest: signals with engine.features.fast, the AOT kernel, metrics), vectorbt 1.2 with engine auto / rust /
numba (MA indicators, Portfolio.from_signals, final value, trades, Sharpe, drawdown), pandas rolling means plus
numpy portfolio arithmetic, and a bare numba loop (the floor); final equity (relative difference <= 1e-6) and trade
count are checked against ours for every symbol. nautilus_trader (BacktestEngine on bars) and jesse
(research.backtest) are event-driven and run the same strategy on the first `--event-bars` bars, beside ours and
vectorbt on those bars: candles/s, with their trade counts and equity reported (their fill models differ). The
10-symbol case is timed for ours both as 10 single-symbol backtests (what vectorbt's 10 independent columns compute,
so equality holds) and as one 10-symbol portfolio (1/10 each; speed only).

Peers live in .bench-venvs/NAME (benchmarks/peers/setup.sh); a missing one is reported with the reason setup.sh
recorded. Times are the best of --repeats after a warm-up run, CPU time of the worker's thread (the steadier measure
on a shared machine) and wall. The load average is read before and after. Results: a markdown table on stdout and
JSON in --json (default .benchmarks/peers-latest.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / ".bench-venvs"
WORKERS = ROOT / "benchmarks" / "peers" / "workers.py"


def peer_python(peer: str) -> tuple[str | None, str]:
    """(interpreter, '') for a peer, or (None, why it is unavailable)."""
    if peer in ("ours", "pandas", "numba"):
        return sys.executable, ""
    venv = VENVS / peer
    failed = VENVS / f"{peer}.failed"
    if failed.exists():
        return None, "install failed: " + " | ".join(failed.read_text().strip().splitlines()[-2:])
    if not (venv / ".ok").exists():
        return None, "not installed (run benchmarks/peers/setup.sh)"
    return str(venv / "bin" / "python"), ""


def run_worker(peer: str, bars: int, symbols: int, repeats: int, option: str = "", timeout: float = 3000) -> dict:
    """Run one worker in its venv; its JSON line, or {'error': ...} with the reason."""
    python, why = peer_python(peer)
    if python is None:
        return {"peer": peer, "option": option, "error": why}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")])}
    # a peer runs inside its venv's directory: jesse takes a working directory holding strategies/ for a jesse
    # project (and then wants its PostgreSQL settings), which this repository's root would be
    cwd = ROOT if peer in ("ours", "pandas", "numba") else VENVS / peer
    try:
        out = subprocess.run([python, str(WORKERS), peer, str(bars), str(symbols), str(repeats), option],
                             capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"peer": peer, "option": option, "error": f"timed out after {timeout:.0f} s"}
    if out.returncode != 0:
        tail = [ln for ln in out.stderr.strip().splitlines() if ln.strip()][-1:] or ["(no output)"]
        return {"peer": peer, "option": option, "error": f"exit {out.returncode}: {tail[0][:300]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def loadavg() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def machine() -> str:
    """CPU model, cores and memory of this machine."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    except OSError:
        mem = 0.0
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}"


def equal_to(ours: dict, other: dict) -> str:
    """'yes' when every symbol's final equity is within 1e-6 (relative) and trades are equal, else what differs."""
    if "error" in other or "error" in ours:
        return "-"
    diffs = [abs(a / b - 1.0) for a, b in zip(ours["final_equity"], other["final_equity"])]
    same_trades = ours["trades"] == other["trades"]
    worst = max(diffs) if diffs else float("nan")
    if worst <= 1e-6 and same_trades:
        return f"yes ({worst:.0e})"
    return f"NO (rel {worst:.1e}, trades {sum(ours['trades'])} vs {sum(other['trades'])})"


def row(label: str, res: dict, ours: dict, candles: int, check: bool = True) -> str:
    """One markdown row: times, candles/s, ratio of its CPU time to ours, equality with ours."""
    if "error" in res:
        return f"| {label} | - | - | - | - | {res['error']} |"
    ratio = res["cpu_s"] / ours["cpu_s"] if "error" not in ours else float("nan")
    eq = equal_to(ours, res) if check else f"trades {sum(res['trades'])}, final equity {sum(res['final_equity']):,.0f}"
    return (f"| {label} | {res['cpu_s']:.3f} / {res['wall_s']:.3f} | {candles / res['cpu_s']:,.0f} "
            f"| {ratio:.2f}x | {res.get('version', res.get('python', ''))} | {eq} |")


def main() -> None:
    """Run every case, print one markdown table per case and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--event-bars", type=int, default=100_000, help="bars for nautilus_trader and jesse")
    ap.add_argument("--quick", action="store_true", help="100k-bar cases and one repeat (smoke run)")
    ap.add_argument("--cases", default="1m,5m,10x1m,event,profile")
    ap.add_argument("--json", default=None, help="default .benchmarks/peers-latest.json (--quick: peers-quick.json)")
    args = ap.parse_args()
    if args.json is None:
        args.json = str(ROOT / ".benchmarks" / ("peers-quick.json" if args.quick else "peers-latest.json"))
    big = 100_000 if args.quick else 1_000_000
    repeats = 1 if args.quick else args.repeats
    cases = {"1m": (big, 1), "5m": (5 * big, 1), "10x1m": (big, 10)}
    started, load_before = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), loadavg()
    report: dict = {"date": started, "machine": machine(), "load_before": load_before, "cases": {}}
    print(f"date {started}; machine {report['machine']}; load average before {load_before}\n")
    vector_peers = [("vectorbt", "auto"), ("vectorbt", "rust"), ("vectorbt", "numba"), ("pandas", ""), ("numba", "")]
    for name in [c for c in args.cases.split(",") if c in cases]:
        n, k = cases[name]
        ours = run_worker("ours", n, k, repeats)
        results = {"ours": ours}
        if k > 1:
            results["ours (one 10-symbol portfolio)"] = run_worker("ours", n, k, repeats, "panel")
        for peer, opt in vector_peers:
            results[f"{peer} {opt}".strip()] = run_worker(peer, n, k, repeats, opt)
        report["cases"][name] = results
        print(f"### {k} x {n:,} bars\n")
        if "error" in ours:
            print(f"ours failed: {ours['error']}\n")
            continue
        print(f"ours: kernel {ours['kernel']}, helpers {ours['helpers']}, numba imported: {ours['numba_loaded']}\n")
        print("| side | CPU s / wall s | candles/s (CPU) | CPU time vs ours | version | same equity and trades as ours |")
        print("|---|---|---|---|---|---|")
        for label, res in results.items():
            print(row(label, res, ours, n * k, check="portfolio" not in label))
        print()
    if "event" in args.cases.split(","):
        n = args.event_bars
        results = {"ours": run_worker("ours", n, 1, repeats), "vectorbt auto": run_worker("vectorbt", n, 1, repeats,
                                                                                             "auto")}
        results["nautilus_trader"] = run_worker("nautilus", n, 1, 1)
        results["jesse"] = run_worker("jesse", n, 1, 1)
        report["cases"]["event"] = results
        ours = results["ours"]
        print(f"### event-driven peers, 1 x {n:,} bars\n")
        print("| side | CPU s / wall s | candles/s (CPU) | CPU time vs ours | version | trades, final equity |")
        print("|---|---|---|---|---|---|")
        for label, res in results.items():
            print(row(label, res, ours, n, check=False))
        print()
    if "profile" in args.cases.split(","):
        prof = run_worker("ours", big, 1, max(repeats, 5), "profile")
        report["cases"]["profile"] = prof
        print(f"### where our time goes, 1 x {big:,} bars (cProfile on the thread's CPU clock, mean of runs)\n")
        if "error" in prof:
            print(f"profile failed: {prof['error']}\n")
        else:
            print(f"total {prof['cpu_s'] * 1e3:.1f} ms CPU per backtest under the profiler\n")
            print("| phase | CPU ms | share |")
            print("|---|---|---|")
            for phase, sec in prof["profile"].items():
                print(f"| {phase} | {sec * 1e3:.1f} | {sec / prof['cpu_s']:.0%} |")
            print()
    report["load_after"] = loadavg()
    print(f"load average after {report['load_after']}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
