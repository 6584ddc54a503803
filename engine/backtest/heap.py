"""Keep a large backtest's freed arrays in the process heap for reuse (glibc), instead of unmapping each one.

glibc serves a block above its mmap threshold (adjusted at run time, but never above 32 MB) with a fresh mmap and
unmaps it on free, so every array of 32 MB or more (4M float64 cells: one symbol x 5M bars) is new memory that the
OS zeroes page by page on first touch. At 5M bars that was about half of a backtest's CPU time (perf: clear_page
and page-fault handling; 22k faults per run). Once a backtest has LARGE_CELLS cells (bars x symbols),
`keep_large_blocks` raises glibc's mmap and trim thresholds (mallopt), so such blocks come from and go back to the
heap and the next array reuses them already mapped: 148 -> 72 ms CPU per 5M-bar backtest, results unchanged.

The cost is memory: the process keeps what it freed (its RSS stays near the largest backtest's peak instead of
falling back). It is set once per process and only by backtests this large (a paper engine's panels are far
smaller); QUANTDESK_KEEP_HEAP=0 turns it off. Elsewhere than glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

LARGE_CELLS = 4_000_000  # bars x symbols from which one float64 array is >= 32 MB (glibc's largest mmap threshold)
THRESHOLD = 1 << 30  # blocks up to 1 GiB from the heap; up to 1 GiB of freed heap kept
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_done = False


def keep_large_blocks(cells: int) -> bool:
    """For a backtest of `cells` bars x symbols: keep large freed blocks in the heap from now on (once per process).

    Returns True when the thresholds are set (now or before), False when not needed, turned off or not glibc."""
    global _done
    if _done:
        return True
    if cells < LARGE_CELLS or os.environ.get("QUANTDESK_KEEP_HEAP", "1") == "0":
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    _done = bool(mallopt(_M_MMAP_THRESHOLD, THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, THRESHOLD))
    return _done


def _glibc_mallopt():  # noqa: ANN202 - a ctypes function or None
    """glibc's mallopt, or None on another C library."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not hasattr(libc, "gnu_get_libc_version"):  # musl and others: their allocators differ
            return None
        fn = libc.mallopt
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return fn
