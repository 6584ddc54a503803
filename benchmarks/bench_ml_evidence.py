"""Walk-forward evidence for the ML overlay on the simulator and on real data (issue 19): not a test.

Imports the real files from ../shared/data (or --data) into a temporary state.db through the CLI (`quantdesk data
pull --source csv:...`), then runs `quantdesk model evaluate NAME --json` for both strategies on:
  - the simulator (1h bars, BTC/ETH),
  - daily bitstamp BTC/USD 2014-2020 and ETH/USD 2017-2020 (strategies rescaled to 1d bars),
  - the 1m ftx BTC-PERP month resampled to 15m and the 5m binance BTCUSDT file (38 days),
and prints one summary line per run plus the full JSON into --out. Usage:

    .venv/bin/python benchmarks/bench_ml_evidence.py [--data ../shared/data] [--out /tmp/ml_evidence.json]
        [--only daily] [--sim-days 365] [--bootstrap 500]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QD = [sys.executable, "-m", "console.cli"] if not (ROOT / ".venv/bin/quantdesk").exists() else \
    [str(ROOT / ".venv/bin/quantdesk")]
STRATEGIES = ("quantum_momentum", "macro_trend")


def run(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """One CLI call; stderr (progress) is passed through."""
    return subprocess.run(QD + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=3600)


def imports(data: Path) -> list[tuple[str, str, str, str, str]]:
    """(source folder, symbol, stored timeframe, since, until) of every real series the runs need."""
    o = data / "ohlcv"
    return [(str(o / "bitstamp_BTCUSD_1d_20141128-20200117.csv"), "BTC/USD", "1d", "2014-11-01", "2020-02-01"),
            (str(o / "bitstamp_ETHUSD_1d_20171109-20200117.csv"), "ETH/USD", "1d", "2017-11-01", "2020-02-01"),
            (str(o / "ftx_BTC-PERP_1m_20211231-20220201.csv"), "BTC/USD:USD", "1m", "2021-12-31", "2022-02-02"),
            (str(o / "binance_BTCUSDT_5m_20230102-20230209.csv"), "BTC/USDT", "5m", "2023-01-02", "2023-02-10")]


def runs(sim_days: int) -> list[dict]:
    """Each evaluation: name, CLI arguments after `model evaluate STRATEGY`."""
    daily = ["--timeframe", "1d", "--retrain-every", "180d"]
    return [
        {"name": "sim 1h BTC+ETH", "args": ["--source", "sim", "--symbols", "BTC/USDT,ETH/USDT", "--timeframe", "1h",
                                            "--days", str(sim_days), "--retrain-every", "60d"]},
        {"name": "bitstamp BTC/USD 1d 2014-2020", "csv": 0,
         "args": ["--symbols", "BTC/USD", "--since", "2014-11-01", "--until", "2020-02-01", *daily]},
        {"name": "bitstamp ETH/USD 1d 2017-2020", "csv": 1,
         "args": ["--symbols", "ETH/USD", "--since", "2017-11-01", "--until", "2020-02-01", *daily]},
        {"name": "ftx BTC-PERP 1m -> 15m (1 month)", "csv": 2,
         "args": ["--symbols", "BTC/USD:USD", "--timeframe", "15m", "--since", "2021-12-31", "--until", "2022-02-02",
                  "--retrain-every", "7d"]},
        {"name": "binance BTCUSDT 5m (38 days)", "csv": 3,
         "args": ["--symbols", "BTC/USDT", "--timeframe", "5m", "--since", "2023-01-02", "--until", "2023-02-10",
                  "--retrain-every", "7d"]},
    ]


def summary(name: str, strategy: str, js: dict, elapsed: float) -> str:
    """One line: windows, Brier skill, Sharpe per variant, the CIs and the verdict."""
    f = (lambda v: "-" if v is None else f"{v:+.2f}")
    sh = js.get("sharpe") or {}
    ci = js.get("sharpe_diff_ci") or {}
    cis = ", ".join(f"{k.replace('overlay_', '')} [{f(v[0])}, {f(v[1])}]" for k, v in ci.items())
    skill = js.get("brier_skill")
    return (f"{name:34s} {strategy:17s} windows {len(js.get('windows', [])):2d}  events "
            f"{(js.get('overall') or {}).get('events', 0):5d}  Brier skill {'-' if skill is None else f'{skill:+.3f}'}"
            f"  Sharpe primary {f(sh.get('primary'))} scaled {f(sh.get('overlay_scaled'))} gated "
            f"{f(sh.get('overlay_gated'))}  dSharpe CI {cis or '-'}  ({elapsed:.0f}s)\n    verdict: {js.get('verdict')}")


def main(argv: list[str] | None = None) -> int:
    """Import, evaluate, print; returns 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent.parent / "shared" / "data"))
    ap.add_argument("--out", default="")
    ap.add_argument("--only", default="", help="run only evaluations whose name contains this")
    ap.add_argument("--sim-days", type=int, default=365)
    ap.add_argument("--bootstrap", type=int, default=500)
    opts = ap.parse_args(argv)
    data = Path(opts.data)
    if not (data / "ohlcv").is_dir():
        data = Path("/work/shared/data")
    results = []
    with tempfile.TemporaryDirectory(prefix="qd-ml-evidence-") as tmp:
        cwd = Path(tmp)
        env = dict(os.environ, QUANTDESK__STORE__PATH=str(cwd / "state.db"))
        src = imports(data)
        for path, sym, tf, since, until in src:
            t = time.perf_counter()
            p = run(["data", "pull", "--source", f"csv:{path}", "--symbols", sym, "--timeframe", tf, "--since", since,
                     "--until", until], env, cwd)
            print(f"import {Path(path).name}: exit {p.returncode} ({time.perf_counter() - t:.0f}s) "
                  f"{p.stdout.strip().splitlines()[-1] if p.stdout.strip() else p.stderr.strip()[-200:]}", flush=True)
        for r in runs(opts.sim_days):
            if opts.only and opts.only not in r["name"]:
                continue
            extra = ["--source", f"csv:{src[r['csv']][0]}"] if "csv" in r else []
            for strategy in STRATEGIES:
                t = time.perf_counter()
                p = run(["model", "evaluate", strategy, *r["args"], *extra, "--bootstrap", str(opts.bootstrap),
                         "--json"], env, cwd)
                elapsed = time.perf_counter() - t
                if p.returncode != 0:
                    print(f"{r['name']:34s} {strategy:17s} error: {p.stderr.strip().splitlines()[-1:]}", flush=True)
                    results.append({"run": r["name"], "strategy": strategy, "error": p.stderr.strip()[-500:]})
                    continue
                js = json.loads(p.stdout)
                print(summary(r["name"], strategy, js, elapsed), flush=True)
                results.append({"run": r["name"], "strategy": strategy, "elapsed_s": elapsed, "result": js})
    if opts.out:
        Path(opts.out).write_text(json.dumps(results, indent=1, default=str))
        print(f"full results: {opts.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
