"""What kept a long-running engine large (784 MB after 10 minutes of paper trading, issue 17), each as a cheap
invariant; the RSS over an hour is measured by benchmarks/bench_memory.py, not here.

- A retrain ran inside the engine: two years of bars, the feature matrix, fitted candidates, the simulator's day caches
  filled with two years of history and sklearn/numba loaded, most of it kept by the process after the job (~300 MB).
  It now runs in a spawned child process that exits.
- Every candle read set up the native SQLite reader first, which imports numba and llvmlite (~50 MB resident), even
  for the few hundred bars a tick reads (the reader only serves series of 100k rows and more).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def child_facts() -> tuple[int, bool]:
    """Runs in the child: its pid, after importing the training code (sklearn) as a retrain does."""
    import engine.ml.meta_model  # noqa: F401 - what a retrain imports

    return os.getpid(), "sklearn" in sys.modules


def _run(code: str, cwd: Path) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=180,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_a_tick_sized_candle_read_does_not_load_numba(tmp_path: Path, state_url: str) -> None:
    code = (
        "import sys\n"
        "from engine.store import open_store\n"
        "from engine.store.candles import load_candles, upsert_candles\n"
        f"store = open_store({state_url!r})\n"
        "rows = [[1_700_000_000_000 + i * 60_000, 1.0, 2.0, 0.5, 1.5, 10.0] for i in range(500)]\n"
        "upsert_candles(store, 'sim', 'BTC/USDT', '1m', rows)\n"
        "f = load_candles(store, 'sim', 'BTC/USDT', '1m', 1_700_000_000_000, 1_700_000_000_000 + 400 * 60_000)\n"
        "print(len(f), 'numba' in sys.modules, 'llvmlite' in sys.modules)\n"
    )
    assert _run(code, tmp_path) == "400 False False"


def test_retraining_work_runs_in_a_child_process_that_keeps_its_imports(tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "from engine.runtime.child_jobs import run_in_child\n"
        "from tests.runtime.test_engine_memory import child_facts\n"
        "pid, child_has_sklearn = run_in_child(child_facts)\n"
        "print(pid != os.getpid(), child_has_sklearn, 'sklearn' in sys.modules)\n"
    )
    assert _run(code, REPO) == "True True False"


def test_the_heap_is_trimmed_at_most_once_per_interval() -> None:
    from engine.runtime.heap import HeapTrimmer, trim_heap

    assert isinstance(trim_heap(), bool)
    trimmer = HeapTrimmer(interval_s=3600)
    assert not trimmer.maybe_trim()  # the interval starts at construction
    trimmer.interval_s = 0.0
    assert trimmer.maybe_trim()
