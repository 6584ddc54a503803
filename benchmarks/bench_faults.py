"""Benchmark: the storage-fault corpus against a real engine, one table row per fault.

Run:  .venv/bin/python benchmarks/bench_faults.py            (about a minute; writes under a temporary folder)
      .venv/bin/python benchmarks/bench_faults.py --only "wal deleted"

Columns: the fault; what the desk did (exit code and behaviour); data lost (rows committed to state.db before the
fault and missing after it, over orders, fills, audit_log, trading_state and candles; must be none) with the
store's integrity after the fault; time from the fault to the engine's in-memory HALT, and to its exit. The corpus
lives in tests/support/faults.py so the tests and this benchmark inject exactly the same faults.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.faults import FAULTS, run_fault, run_locked_halt, run_start_fault  # noqa: E402


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f} ms"


def main(argv: list[str] | None = None) -> int:
    """Run every fault (or --only one) and print the table; exit 1 when any fault lost data."""
    parser = argparse.ArgumentParser(prog="bench_faults")
    parser.add_argument("--only", default="", help="run only this fault")
    args = parser.parse_args(argv)
    rows: list[tuple[str, str, str, str, str]] = []
    lost_any = False
    with tempfile.TemporaryDirectory(prefix="qd-faults-") as tmp:
        root = Path(tmp)
        for i, name in enumerate(sorted(FAULTS)):
            if args.only and args.only != name:
                continue
            folder = root / f"f{i}"
            folder.mkdir()
            out = run_fault(folder, name)
            lost = out.data_lost
            lost_any |= bool(lost) or out.integrity != "ok"
            outcome = (f"HALT, exit {out.exit_code}" if out.exit_code is not None else "engine did not exit")
            rows.append((name, outcome, f"{'none' if not lost else lost} (integrity {out.integrity})",
                         _ms(out.halt_s), _ms(out.exit_s)))
        for name in ("corrupt store", "read-only store"):
            if args.only and args.only != name:
                continue
            folder = root / name.replace(" ", "-")
            folder.mkdir()
            outcome, unchanged, took = run_start_fault(folder, f"{name}")
            lost_any |= not unchanged
            rows.append((f"{name} at start", outcome, "none (file unchanged)" if unchanged else "FILE CHANGED",
                         "never traded", _ms(took)))
        if not args.only or args.only == "locked store":
            folder = root / "locked"
            folder.mkdir()
            outcome, halt_s, persisted = run_locked_halt(folder)
            rows.append(("store locked, operator halts", outcome, "none" if persisted else "HALT not persisted",
                         _ms(halt_s), "stays up"))
    header = ("fault", "outcome", "data lost", "time to HALT", "time to exit")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    return 1 if lost_any else 0


if __name__ == "__main__":
    raise SystemExit(main())
