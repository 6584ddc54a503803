"""Run every benchmark (benchmarks/bench_*.py) with its default arguments, each in its own process: `make bench`.

Each benchmark's output is shown as it runs and kept in .benchmarks/run-<UTC time>/<name>.log; at the end a table
gives each one's exit status, wall time and the load average before and after it (this machine is shared: read every
timing beside its load). A benchmark that fails or exceeds --timeout does not stop the others; the exit status is 1
when any failed. Defaults are the short variants (minutes, not hours); each script's --help names its long ones.

    .venv/bin/python benchmarks/run_all.py                      (what `make bench` runs after peers/setup.sh)
    .venv/bin/python benchmarks/run_all.py --only peers,retrain  (names containing one of these)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def run_one(script: Path, log: Path, timeout: float) -> tuple[str, float]:
    """Run one benchmark, echoing and logging its output; (status, wall seconds)."""
    t0 = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        assert proc.stdout is not None
        watchdog = threading.Timer(timeout, proc.kill)  # a silent hang is killed too
        watchdog.start()
        try:
            for line in proc.stdout:
                sys.stdout.write(line)
                out.write(line)
            rc = proc.wait()
        finally:
            watchdog.cancel()
    wall = time.perf_counter() - t0
    if rc != 0 and wall >= timeout:
        return f"timed out after {timeout:.0f} s", wall
    return ("ok" if rc == 0 else f"exit {rc}"), wall


def main() -> int:
    """Run the selected benchmarks in name order and print the summary table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated name parts: run only benchmarks matching one")
    ap.add_argument("--skip", default="", help="comma-separated name parts to leave out")
    ap.add_argument("--timeout", type=float, default=2400.0, help="seconds per benchmark (default 40 min)")
    args = ap.parse_args()
    only = [p for p in args.only.split(",") if p]
    skip = [p for p in args.skip.split(",") if p]
    # bench_peers first: docs/benchmarks.md's results table is built around it; the others in name order
    scripts = [s for s in sorted((ROOT / "benchmarks").glob("bench_*.py"), key=lambda s: (s.stem != "bench_peers", s))
               if (not only or any(p in s.stem for p in only)) and not any(p in s.stem for p in skip)]
    run_dir = ROOT / ".benchmarks" / time.strftime("run-%Y%m%dT%H%MZ", time.gmtime())
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for script in scripts:
        before = load()
        print(f"\n== {script.relative_to(ROOT)} (load {before})", flush=True)
        status, wall = run_one(script, run_dir / f"{script.stem}.log", args.timeout)
        rows.append((script.stem, status, wall, before, load()))
    print(f"\n## make bench summary ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; logs in "
          f"{run_dir.relative_to(ROOT)})\n")
    print("| benchmark | status | wall s | load before | load after |")
    print("|---|---|---|---|---|")
    for name, status, wall, before, after in rows:
        print(f"| {name} | {status} | {wall:.0f} | {before} | {after} |")
    failed = [r[0] for r in rows if r[1] != "ok"]
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
