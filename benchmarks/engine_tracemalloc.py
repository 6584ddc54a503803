"""The engine process (`engine.runtime.main`) with tracemalloc on: every QD_TRACEMALLOC_EVERY seconds it writes the
traced total and the 25 source lines whose allocations grew most since the first snapshot, to find what a long run
keeps. Used by `bench_memory.py --tracemalloc FILE`; tracemalloc costs CPU and ~30% memory, so RSS numbers of a
traced run are not the engine's.

    QD_TRACEMALLOC_OUT=trace.txt python benchmarks/engine_tracemalloc.py --state state.db --config quantdesk.toml

QD_CENSUS=1 runs no tracemalloc: it counts gc-tracked objects by type and the containers that grew most (and who
holds them), cheap enough to leave the engine's speed alone. With several frames (QD_TRACEMALLOC_FRAMES=8) set QD_TRACEMALLOC_DUMP=FOLDER instead: the engine only writes
snapshots, and `python benchmarks/engine_tracemalloc.py --compare FIRST LAST` groups them in its own process.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import tracemalloc
import weakref
from pathlib import Path

IGNORE = (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
          tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"), tracemalloc.Filter(False, "<unknown>"))


def _dump(folder: Path, every: float, first_after: float) -> None:
    """Snapshot loop (daemon thread) writing each raw snapshot to `folder` for `engine_tracemalloc.py --compare`:
    with several frames, filtering and grouping millions of traces inside the engine took over 10 minutes per
    report at load 15."""
    t0 = time.monotonic()
    time.sleep(first_after)
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        t = time.monotonic() - t0
        tracemalloc.take_snapshot().dump(str(folder / f"snap-{t:06.0f}.pickle"))  # filtered by --compare
        time.sleep(every)


def compare(first: str, last: str, top: int = 25) -> None:
    """Print what grew from snapshot `first` to `last` (files written by the dump loop): by file, by line, and the
    fastest-growing call stacks."""
    a, b = (tracemalloc.Snapshot.load(p).filter_traces(IGNORE) for p in (first, last))
    print(f"traced {sum(t.size for t in a.traces) / 2**20:.1f} -> {sum(t.size for t in b.traces) / 2**20:.1f} MB")
    for key in ("filename", "lineno"):
        print(f"\n# by {key}")
        for st in b.compare_to(a, key)[:top]:
            print(f"{st.size_diff / 2**20:+8.2f} MB {st.count_diff:+8d} blocks  now {st.size / 2**20:7.2f} MB  "
                  f"{st.traceback.format()[0].strip()}")
    print("\n# by call stack (most recent call first)")
    for st in b.compare_to(a, "traceback")[:top // 2]:
        print(f"-- {st.size_diff / 2**20:+.2f} MB {st.count_diff:+d} blocks, now {st.size / 2**20:.2f} MB")
        print("".join(f"     {line.strip()}\n" for line in st.traceback.format(most_recent_first=True)
                      if not line.startswith("    ")), end="")


def _owner(obj: object) -> str:
    """Where a container hangs: 'Type.attribute' of the object holding it, a module global, or its referrer types."""
    import gc
    import types

    names = []
    for ref in gc.get_referrers(obj):
        if isinstance(ref, dict):
            key = next((k for k, v in ref.items() if v is obj), "?")
            holders = [h for h in gc.get_referrers(ref) if getattr(h, "__dict__", None) is ref]
            mods = [h for h in gc.get_referrers(ref) if isinstance(h, types.ModuleType)]
            names.append(f"{type(holders[0]).__qualname__}.{key}" if holders else
                         f"{mods[0].__name__}.{key}" if mods else f"dict[{key!r}]")
        elif not isinstance(ref, types.FrameType):
            names.append(type(ref).__qualname__)
    return ", ".join(names[:4]) or "?"


def _census(out: Path, every: float, first_after: float) -> None:
    """Object census loop (daemon thread, no tracemalloc): growth of gc-tracked objects by type and of the
    longest-growing containers (with who holds them) since a baseline; cheap enough for a normal-speed engine."""
    import collections
    import gc

    def take() -> tuple[collections.Counter, dict[int, tuple[int, object]]]:
        objs = gc.get_objects()
        kinds = collections.Counter(type(o).__qualname__ for o in objs)
        for o in objs:  # what weak references point at, and their callbacks (a growing registry shows here)
            if type(o) is weakref.ReferenceType:
                target, cb = o(), getattr(o, "__callback__", None)
                kinds[f"weakref->{type(target).__qualname__} cb={getattr(cb, '__qualname__', cb)}"] += 1
        sizes = {id(o): (len(o), o) for o in objs if isinstance(o, (dict, list, set, collections.deque)) and
                 len(o) >= 50}
        return kinds, sizes

    t0 = time.monotonic()
    time.sleep(first_after)
    base_kinds, base_sizes = take()
    while True:
        time.sleep(every)
        kinds, sizes = take()
        grown = sorted(((n - base_sizes.get(i, (0, None))[0], n, o) for i, (n, o) in sizes.items()),
                       key=lambda g: -g[0])[:12]
        with out.open("a") as f:
            f.write(f"\n## {time.monotonic() - t0:.0f} s: {sum(kinds.values())} objects\n")
            f.write("by type: " + ", ".join(f"{k} {v:+d}" for k, v in (kinds - base_kinds).most_common(12)) + "\n")
            for diff, n, obj in grown:
                if diff > 0:
                    f.write(f"  {diff:+7d} -> {n:7d} {type(obj).__qualname__} held by {_owner(obj)}\n")
        del grown, sizes


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
    if sys.argv[1:2] == ["--compare"]:
        compare(sys.argv[2], sys.argv[3])
        return 0
    out = Path(os.environ.get("QD_TRACEMALLOC_OUT", "tracemalloc.txt"))
    tracemalloc.start(int(os.environ.get("QD_TRACEMALLOC_FRAMES", "1")))
    dump = os.environ.get("QD_TRACEMALLOC_DUMP", "")
    census = os.environ.get("QD_CENSUS", "") == "1"
    if census:
        tracemalloc.stop()
    threading.Thread(target=_census if census else _dump if dump else _report,
                     args=(Path(dump) if dump else out, float(os.environ.get("QD_TRACEMALLOC_EVERY", "120")),
                           float(os.environ.get("QD_TRACEMALLOC_FIRST", "300"))),
                     name="tracemalloc-report", daemon=True).start()
    from engine.runtime.main import main as engine_main

    return engine_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
