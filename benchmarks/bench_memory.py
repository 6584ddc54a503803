"""Engine memory over time: a real default paper engine (`python -m engine.runtime.main`) on a temp store, the
embedded simulator at a speed-up, RSS sampled from /proc every few seconds.

Goal (issue 17): under 300 MB RSS after an hour of wall time with the simulator fast enough to cover a simulated
week (speed 168), and flat after that. Prints RSS at start (first heartbeat), at 10 minutes, at the end, the peak,
the median and peak RSS of every simulated week, the slope over the second half of the run and the slope after the
first simulated week (MB per simulated day: the "flat after the first week" goal; RSS swings +-20 MB between
malloc trims, so several weeks are needed to see a slope below 1 MB/day).

    .venv/bin/python benchmarks/bench_memory.py                       # default (make bench): a simulated week
                                                                      # in 10 minutes (speed 1008)
    .venv/bin/python benchmarks/bench_memory.py --minutes 60 --speed 168   # the long variant: 1 h, a week
    .venv/bin/python benchmarks/bench_memory.py --minutes 45 --speed 1008  # several simulated weeks (slope after
                                                                           # the first week)
    .venv/bin/python benchmarks/bench_memory.py --tracemalloc trace.txt   # what grows (engine_tracemalloc.py)
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

REPO = Path(__file__).resolve().parents[1]
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_mb(pid: int) -> float:
    """Resident set size of one process in MB (from /proc/PID/statm), 0 when it is gone."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_MB
    except (OSError, IndexError, ValueError):
        return 0.0


def anon_file_mb(pid: int) -> tuple[float, float]:
    """(anonymous, file-backed) resident MB of a process (/proc/PID/status RssAnon, RssFile): heap growth shows in
    the first, pages of mapped files (libraries, SQLite's -shm) in the second."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        return int(fields["RssAnon"].split()[0]) / 1024, int(fields["RssFile"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return 0.0, 0.0


def children(pid: int) -> list[int]:
    """Direct children of a process, started from any of its threads (a retrain child comes from a job thread)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def tree_rss_mb(pid: int) -> tuple[float, float]:
    """(RSS of the engine process, RSS of its children: a retrain running in its own process)."""
    return rss_mb(pid), sum(rss_mb(k) for k in children(pid))


def slope_mb_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS (MB) against wall time, per hour."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    cov = sum((t - mt) * (r - mr) for t, r in samples)
    return cov / var * 3600 if var else 0.0


def weekly(samples: list[tuple[float, float]], speed: float) -> list[dict]:
    """Median and peak RSS of each simulated week of the run (a last partial week only if it is half a week)."""
    week_s = 7 * 86400 / speed
    out = []
    for w in range(int(samples[-1][0] // week_s) + 1):
        rss = sorted(r for t, r in samples if w * week_s <= t < (w + 1) * week_s)
        if rss and (w + 1) * week_s <= samples[-1][0] + week_s / 2:
            out.append({"week": w + 1, "median_mb": rss[len(rss) // 2], "peak_mb": rss[-1], "samples": len(rss)})
    return out


def run(minutes: float, speed: float, every_s: float, folder: Path, extra_cfg: str, trace: str = "") -> dict:
    """Start the engine, sample RSS until `minutes` of wall time passed, stop it; returns the measurements."""
    cfg = folder / "quantdesk.toml"
    cfg.write_text(f"[simulator]\nspeed = {speed}\n{extra_cfg}")
    state = folder / "state.db"
    log = open(folder / "engine.log", "wb")  # noqa: SIM115
    t0 = time.monotonic()
    entry = [str(REPO / "benchmarks" / "engine_tracemalloc.py")] if trace else ["-m", "engine.runtime.main"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if trace:
        env["QD_TRACEMALLOC_OUT"] = str(Path(trace).resolve())
    proc = subprocess.Popen([sys.executable, *entry, "--state", str(state), "--config", str(cfg)], cwd=folder,
                            stdout=log, stderr=log, env=env)
    samples: list[tuple[float, float]] = []
    kids: list[tuple[float, float]] = []
    anon: list[tuple[float, float]] = []
    try:
        end = t0 + minutes * 60
        while time.monotonic() < end and proc.poll() is None:
            t = time.monotonic() - t0
            own, child = tree_rss_mb(proc.pid)
            a, f = anon_file_mb(proc.pid)
            samples.append((t, own))
            kids.append((t, child))
            anon.append((t, a))
            print(f"{t:8.0f} s  engine {own:7.1f} MB (anon {a:6.1f}, file {f:5.1f})  children {child:7.1f} MB",
                  flush=True)
            time.sleep(every_s)
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    if not samples:
        raise SystemExit(f"engine exited at once; see {folder / 'engine.log'}")

    def at(sec: float) -> float:
        return min(samples, key=lambda s: abs(s[0] - sec))[1]

    half = [s for s in samples if s[0] >= samples[-1][0] / 2]
    slope = slope_mb_per_hour(half)
    after_week = [s for s in samples if s[0] * speed / 86400 >= 7]
    slope_week = slope_mb_per_hour(after_week) * 24 / speed if len(after_week) >= 10 else float("nan")
    anon_week = [s for s in anon if s[0] * speed / 86400 >= 7]
    anon_slope = slope_mb_per_hour(anon_week) * 24 / speed if len(anon_week) >= 10 else float("nan")
    return {"minutes": minutes, "speed": speed, "simulated_days": samples[-1][0] * speed / 86400,
            "weeks": weekly(samples, speed), "slope_mb_per_sim_day_after_week_1": slope_week,
            "anon_slope_mb_per_sim_day_after_week_1": anon_slope, "anon": anon,
            "rss_start_mb": at(30), "rss_10min_mb": at(600), "rss_end_mb": samples[-1][1],
            "rss_peak_mb": max(r for _, r in samples), "children_peak_mb": max(r for _, r in kids),
            "slope_mb_per_wall_hour_2nd_half": slope,
            "slope_mb_per_sim_day_2nd_half": slope * 24 / speed, "exit_code": proc.returncode,
            "load_before": _load(), "samples": samples, "children": kids}


def _load() -> str:
    """The 1/5/15-minute load averages, recorded beside every number."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    """Parse arguments, run once, print a summary (JSON with --json)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0, help="wall minutes (the long variant: 60)")
    ap.add_argument("--speed", type=float, default=1008.0,
                    help="simulated seconds per wall second (1008 = a week in 10 min; 168 = a week per hour)")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between RSS samples")
    ap.add_argument("--config-extra", default="", help="extra TOML appended to the engine config")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (engine.log, state.db)")
    ap.add_argument("--json", default="", help="write all samples to this JSON file")
    ap.add_argument("--tracemalloc", default="", help="run the engine under tracemalloc, growth report to this file")
    args = ap.parse_args()
    load = _load()
    folder = Path(tempfile.mkdtemp(prefix="qd-mem-"))
    res = run(args.minutes, args.speed, args.every, folder, args.config_extra, args.tracemalloc)
    res["load_before"] = load
    res["load_after"] = _load()
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    print(f"\nengine RSS, speed {args.speed:g} ({res['simulated_days']:.1f} simulated days in {args.minutes:g} min), "
          f"load {load} -> {res['load_after']}")
    print(f"  start (30 s) {res['rss_start_mb']:.0f} MB | 10 min {res['rss_10min_mb']:.0f} MB | "
          f"end {res['rss_end_mb']:.0f} MB | peak {res['rss_peak_mb']:.0f} MB (engine process; a retrain child peaked "
          f"at {res['children_peak_mb']:.0f} MB and exited)")
    print(f"  slope over the second half: {res['slope_mb_per_wall_hour_2nd_half']:+.1f} MB per wall hour, "
          f"{res['slope_mb_per_sim_day_2nd_half']:+.2f} MB per simulated day")
    for w in res["weeks"]:
        print(f"  simulated week {w['week']}: median {w['median_mb']:.0f} MB, peak {w['peak_mb']:.0f} MB "
              f"({w['samples']} samples)")
    print(f"  slope after the first simulated week: {res['slope_mb_per_sim_day_after_week_1']:+.2f} MB per simulated "
          f"day (anonymous memory alone: {res['anon_slope_mb_per_sim_day_after_week_1']:+.2f})")
    print(f"  goal < 300 MB at the end: {'met' if res['rss_end_mb'] < 300 else 'NOT met'}  (folder {folder})")
    if not args.keep:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
