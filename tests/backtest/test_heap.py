"""engine.backtest.heap: after a large backtest's threshold is reached, a freed 48 MB array's memory is reused by
the next one (no page faults); without it (or below the size) glibc unmaps it and the next one faults every page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.backtest import heap

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import resource, sys
import numpy as np
from engine.backtest import heap
print(heap.keep_large_blocks(int(sys.argv[1])))
for _ in range(3):
    a = np.empty(6_000_000)  # 48 MB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a[::512] = 1.0  # touch every page
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del a
print(faults)
"""


def _probe(cells: int, env: dict[str, str] | None = None) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(cells)], capture_output=True, text=True, check=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    kept, faults = out.stdout.split()
    return kept, int(faults)


@pytest.mark.skipif(heap._glibc_mallopt() is None, reason="not glibc: keep_large_blocks does nothing here")
def test_a_large_backtest_reuses_freed_large_arrays() -> None:
    """Thresholds set: the third 48 MB array touches no new page; not set: it faults (>= 24 faults even with 2 MB
    transparent huge pages, one per 2 MB; 4 KB pages give ~12k)."""
    kept, faults = _probe(5_000_000)
    assert kept == "True" and faults < 10
    small, faults_small = _probe(100_000)
    assert small == "False" and faults_small >= 24
    off, faults_off = _probe(5_000_000, {"QUANTDESK_KEEP_HEAP": "0"})
    assert off == "False" and faults_off >= 24
