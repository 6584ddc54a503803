"""Benchmark: the tests of an earlier commit, timed on that commit's code and on today's code, same machine, same run.

Run:  .venv/bin/python benchmarks/suite_time.py                    (baseline 4618588, 2 rounds, ~20 min)
      .venv/bin/python benchmarks/suite_time.py --baseline REV --rounds 1

Why: issue 10 asks that the whole suite stay "no slower than today", today being the commit it was filed against
(4618588: 397 tests, pytest 3m21s then). The suite has since grown to cover new capabilities, so its total time says
nothing about whether this code made the old tests slower. This runs the baseline's own tests twice:
  - on the baseline's code: a git worktree at REV with its own .venv (built with its own Makefile), `pytest -n 2`;
  - on today's code: the same tests, mapped to today's node ids, `pytest -n 2` selecting exactly those ids.
Mapping: the same node id; else the test's `[sqlite]` variant (issue 18 parametrised runtime tests by store backend;
the SQLite one is the test that existed); else the only test of that name anywhere (files were split or moved), or
the only one in a file of the same name (a file moved to another folder); else RENAMED below. A test the mapping cannot place is reported, and the run refuses to compare (nothing is dropped).
Rounds alternate the order (baseline first, then today first) so a load change does not favour one side. Reported:
wall time, CPU seconds (user+sys of pytest and every process it waited for) and the sum of per-test durations.
Not named bench_*.py, so `make bench` leaves it out (each round runs both suites, ~10 minutes).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "4618588"  # the commit issue 10 was filed against
RENAMED = {  # baseline node id -> today's, for tests renamed or folded into a parametrised test
    "tests/backtest/test_registry.py::test_each_backtest_adds_a_trial_and_deflates_the_dsr":
        "tests/backtest/test_registry.py::test_each_distinct_configuration_adds_a_trial_and_deflates_the_dsr",
    "tests/console/test_console_snapshots.py::test_snapshot_desk":
        "tests/console/test_console_snapshots.py::test_snapshot_screen[desk-140x40]",
    "tests/console/test_console_snapshots.py::test_snapshot_alerts":
        "tests/console/test_console_snapshots.py::test_snapshot_screen[alerts-140x40]",
    "tests/execution/test_ccxt_broker.py::test_live_cli_needs_keys_and_a_typed_confirmation":
        "tests/execution/test_ccxt_broker.py::test_live_cli_needs_keys_before_anything",
}
SELECT_PLUGIN = '''"""Keep only the node ids listed in $QD_SELECT_IDS (one per line), in collection order."""
import os


def pytest_collection_modifyitems(config, items):
    keep = {line.rstrip("\\n") for line in open(os.environ["QD_SELECT_IDS"]) if line.strip()}
    dropped = [i for i in items if i.nodeid not in keep]
    items[:] = [i for i in items if i.nodeid in keep]
    config.hook.pytest_deselected(items=dropped)
'''
DURATION = re.compile(r"^\s*([\d.]+)s (setup|call|teardown)\s+(\S.*)$")


def collect(folder: Path) -> list[str]:
    """Node ids pytest collects in `folder` with that folder's own venv."""
    out = subprocess.run([str(folder / ".venv/bin/python"), "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider"], cwd=folder, capture_output=True, text=True, check=False)
    return [line for line in out.stdout.splitlines() if "::" in line]


def map_ids(old: list[str], new: list[str]) -> tuple[dict[str, str], list[str]]:
    """Baseline node id -> today's node id, and the baseline ids that have no counterpart."""
    new_set = set(new)
    by_name: dict[str, list[str]] = defaultdict(list)
    for node in new:
        by_name[node.split("::", 1)[1]].append(node)
    mapping: dict[str, str] = {}
    missing: list[str] = []
    for node in old:
        path, name = node.split("::", 1)
        variants = by_name.get(f"{name}[sqlite]", [])
        sqlite = [c for c in variants if c.startswith(path)] or variants
        alone = by_name.get(name, [])
        moved = [c for c in alone if Path(c.split("::")[0]).name == Path(path).name]  # same file, other folder
        if node in new_set:
            mapping[node] = node
        elif sqlite:
            mapping[node] = sqlite[0]
        elif len(alone) == 1:
            mapping[node] = alone[0]
        elif len(moved) == 1:
            mapping[node] = moved[0]
        elif RENAMED.get(node) in new_set:
            mapping[node] = RENAMED[node]
        else:
            missing.append(node)
    return mapping, missing


def timed_pytest(folder: Path, extra: list[str], env: dict[str, str]) -> dict[str, object]:
    """Run `pytest -q -n 2 --durations=0` in `folder`; wall, CPU of the waited-for processes, per-test durations."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    out = subprocess.run([str(folder / ".venv/bin/python"), "-m", "pytest", "-q", "-n", "2", "--durations=0",
                          "-p", "no:cacheprovider", *extra], cwd=folder, capture_output=True, text=True,
                         env={**os.environ, **env}, check=False)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    per_test: dict[str, float] = defaultdict(float)
    for line in out.stdout.splitlines():
        m = DURATION.match(line)
        if m:
            per_test[m.group(3)] += float(m.group(1))
    summary = next((ln for ln in reversed(out.stdout.splitlines()) if " in " in ln and ("passed" in ln or
                                                                                    "failed" in ln)), "?")
    return {"wall": wall, "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "tests": dict(per_test), "summary": summary.strip("= "), "load": os.getloadavg()[0], "rc": out.returncode}


def prepare_baseline(rev: str, folder: Path) -> None:
    """A worktree of `rev` with its own .venv and AOT kernel, built by that commit's own Makefile."""
    if not folder.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(folder), rev], check=True)
    subprocess.run(["make", ".venv/.installed"], cwd=folder, check=True, capture_output=True)
    subprocess.run([str(folder / ".venv/bin/python"), "-m", "engine.backtest.aot"], cwd=folder, check=False,
                   capture_output=True)


def main(argv: list[str] | None = None) -> int:
    """Time the baseline's tests on both codes and print one row per run plus the ratios."""
    ap = argparse.ArgumentParser(prog="suite_time")
    ap.add_argument("--baseline", default=DEFAULT_BASELINE)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--keep", help="reuse/keep the baseline worktree in this folder")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qd-suite-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp) / "baseline"
        try:
            prepare_baseline(args.baseline, base)
            return compare(args, base, Path(tmp))
        finally:
            if not args.keep:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False,
                               capture_output=True)


def compare(args: argparse.Namespace, base: Path, tmp: Path) -> int:
    """Map the baseline's tests to today's, run both codes for the rounds asked, print rows and ratios."""
    subprocess.run(["make", "-s", "pyc"], cwd=ROOT, check=False, capture_output=True)  # as `make test` does
    old, new = collect(base), collect(ROOT)
    mapping, missing = map_ids(old, new)
    if missing or not old:
        print(f"cannot compare: {len(missing)} of {len(old)} baseline tests have no counterpart today:")
        print("\n".join(f"  {m}" for m in missing))
        return 1
    ids = tmp / "ids.txt"
    ids.write_text("\n".join(mapping.values()) + "\n")
    (tmp / "qd_select_ids.py").write_text(SELECT_PLUGIN)
    env = {"QD_SELECT_IDS": str(ids), "PYTHONPATH": str(tmp)}
    print(f"baseline {args.baseline}: {len(old)} tests, all mapped to today's ids "
          f"({sum(o == n for o, n in mapping.items())} unchanged); load before {os.getloadavg()[0]:.1f}")
    runs: dict[str, list[dict[str, object]]] = {"baseline code": [], "today's code": []}
    for r in range(args.rounds):
        order = [("baseline code", base, []), ("today's code", ROOT, ["-p", "qd_select_ids"])]
        for label, folder, extra in (order if r % 2 == 0 else order[::-1]):
            res = timed_pytest(folder, extra, env if extra else {})
            runs[label].append(res)
            print(f"round {r + 1} {label:>13}: wall {res['wall']:6.1f} s  cpu {res['cpu']:6.1f} s  "
                  f"sum of tests {sum(res['tests'].values()):6.1f} s  load {res['load']:.1f}  {res['summary']}",
                  flush=True)
    for key in ("wall", "cpu"):
        a = sum(float(x[key]) for x in runs["baseline code"])
        b = sum(float(x[key]) for x in runs["today's code"])
        print(f"{key}: today's code / baseline code = {b / a:.2f}")
    return 0 if all(x["rc"] == 0 for v in runs.values() for x in v) else 1


if __name__ == "__main__":
    sys.exit(main())
