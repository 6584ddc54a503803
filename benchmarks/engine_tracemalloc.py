"""The engine process (`engine.runtime.main`) with tracemalloc on: every QD_TRACEMALLOC_EVERY seconds it writes the
traced total and the 25 source lines whose allocations grew most since the first snapshot, to find what a long run
keeps. Used by `bench_memory.py --tracemalloc FILE`; tracemalloc costs CPU and ~30% memory, so RSS numbers of a
traced run are not the engine's.

    QD_TRACEMALLOC_OUT=trace.txt python benchmarks/engine_tracemalloc.py --state state.db --config quantdesk.toml
"""

from __future__ import annotations

import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

IGNORE = (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
          tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"), tracemalloc.Filter(False, "<unknown>"))


def _report(out: Path, every: float, first_after: float) -> None:
    """Snapshot loop (daemon thread): baseline after `first_after` seconds, then the growth since it."""
    t0 = time.monotonic()
    time.sleep(first_after)
    base = tracemalloc.take_snapshot().filter_traces(IGNORE)
    with out.open("a") as f:
        traced = tracemalloc.get_traced_memory()[0] / 2**20
        f.write(f"# baseline at {time.monotonic() - t0:.0f} s: traced {traced:.1f} MB\n")
    while True:
        time.sleep(every)
        snap = tracemalloc.take_snapshot().filter_traces(IGNORE)
        diff = snap.compare_to(base, "lineno")
        files = snap.compare_to(base, "filename")
        cur, peak = tracemalloc.get_traced_memory()
        with out.open("a") as f:
            f.write(f"\n## {time.monotonic() - t0:.0f} s: traced {cur / 2**20:.1f} MB (peak {peak / 2**20:.1f} MB)\n")
            f.write("by file: " + ", ".join(f"{st.traceback.format()[0].strip()[6:]} {st.size_diff / 2**20:+.2f}"
                                           for st in files[:8]) + "\n")
            for stat in diff[:25]:
                f.write(f"{stat.size_diff / 2**20:+8.2f} MB {stat.count_diff:+8d} blocks  "
                        f"now {stat.size / 2**20:7.2f} MB  {stat.traceback.format()[0].strip()}\n")
            if tracemalloc.get_traceback_limit() > 1:  # QD_TRACEMALLOC_FRAMES > 1: who called the growing lines
                for stat in snap.compare_to(base, "traceback")[:8]:
                    f.write(f"-- {stat.size_diff / 2**20:+.2f} MB {stat.count_diff:+d} blocks, called from:\n")
                    f.write("".join(f"     {line.strip()}\n" for line in stat.traceback.format(most_recent_first=True)
                                    if not line.startswith("    ")))


def main() -> int:
    """Start tracing and the report thread, then run the engine with this process's arguments."""
    out = Path(os.environ.get("QD_TRACEMALLOC_OUT", "tracemalloc.txt"))
    tracemalloc.start(int(os.environ.get("QD_TRACEMALLOC_FRAMES", "1")))
    threading.Thread(target=_report, args=(out, float(os.environ.get("QD_TRACEMALLOC_EVERY", "120")),
                                           float(os.environ.get("QD_TRACEMALLOC_FIRST", "300"))),
                     name="tracemalloc-report", daemon=True).start()
    from engine.runtime.main import main as engine_main

    return engine_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
