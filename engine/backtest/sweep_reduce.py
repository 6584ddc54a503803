"""Walk-forward trials reduced where they run: per-trial statistics and CSCV block sums instead of return series.

A trial used to send its whole per-bar IS and OOS return series back to the caller (~90 KB for 2 years of 1h bars;
~350 MB for 1,000 parameter sets x 4 windows), which made a dask cluster slower than one process. The caller needs
only: each trial's in-sample per-bar Sharpe (to pick the window's winner), its out-of-sample Sharpe (the trials
table), its registry summary (Sharpe, n, skew, kurtosis: `TrialRow`), and for the PBO the sum and sum of squares of
its OOS returns in each CSCV block (`engine.backtest.stats.pbo_from_block_sums`). The selected parameters' OOS
returns are recomputed by the caller in the run that also yields their trades (one run per window). Every backend
(sequential, loky, dask) goes through this reduction, so their results are identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from engine.backtest.registry import TrialRow, trial_row
from engine.backtest.stats import sample_moments


@dataclass(frozen=True)
class CscvLayout:
    """Where each window's OOS segment sits in the stitched OOS axis, and the CSCV block bounds over that axis."""

    offsets: dict[int, int]  # window number -> first row of its OOS segment
    bounds: np.ndarray  # n_splits + 1 block bounds over all OOS rows (as pbo_cscv cuts them)

    @property
    def rows(self) -> int:
        """Total number of stitched OOS rows."""
        return int(self.bounds[-1])


def cscv_layout(windows: Sequence[Any], n_splits: int) -> CscvLayout:
    """Offsets of every window's OOS segment and the CSCV block bounds of the stitched OOS axis."""
    offsets, at = {}, 0
    for w in windows:
        offsets[w.number] = at
        at += w.oos_end - w.oos_start
    bounds = np.linspace(0, at, max(int(n_splits), 1) + 1).astype(int)
    return CscvLayout(offsets, bounds)


@dataclass(frozen=True)
class TrialSummary:
    """One trial (parameter set x window) as the caller needs it; a few hundred bytes instead of its returns."""

    window: int
    index: int
    is_sharpe: float  # per-bar Sharpe of the in-sample returns (mean / std, 0 without variance)
    oos_sharpe: float  # per-bar Sharpe of the out-of-sample returns
    is_row: TrialRow  # the registry's summary of the in-sample returns
    block_sums: np.ndarray  # (2, n_splits): sum and sum of squares of the OOS returns (NaN as 0) per CSCV block
    is_robust: float = 0.0  # per-bar robust in-sample score (engine.backtest.robust): fold mean - one std error


def sharpe_per_bar(r: np.ndarray) -> float:
    """Per-bar Sharpe (mean / std with ddof=1) of a return series, 0 when it has no variance."""
    mean, std, _, _ = sample_moments(r)
    return mean / std if std > 0 else 0.0


def block_sums(oos: np.ndarray, offset: int, bounds: np.ndarray) -> np.ndarray:
    """Sum and sum of squares of one window's OOS returns inside each CSCV block (zeros where it has no rows)."""
    m = np.nan_to_num(np.asarray(oos, dtype="float64"), nan=0.0)
    out = np.zeros((2, len(bounds) - 1))
    lo, hi = offset, offset + len(m)
    for b in range(len(bounds) - 1):
        a, z = max(int(bounds[b]), lo), min(int(bounds[b + 1]), hi)
        if z > a:
            seg = m[a - lo:z - lo]
            out[0, b] = seg.sum()
            out[1, b] = (seg ** 2).sum()
    return out


def summarise(window: int, index: int, params: Mapping[str, Any], is_r: np.ndarray, oos_r: np.ndarray,
              layout: CscvLayout) -> TrialSummary:
    """Reduce one trial's IS and OOS returns to what the walk-forward result and the registry use."""
    from engine.backtest.robust import fold_sharpes, robust_score

    return TrialSummary(window, index, sharpe_per_bar(is_r), sharpe_per_bar(oos_r), trial_row(params, is_r),
                        block_sums(oos_r, layout.offsets[window], layout.bounds), robust_score(fold_sharpes(is_r)))


def summarise_window(strategy_cls: type, jobs: Sequence[tuple[int, dict]], panel: Any, window: Any, config: Any,
                     sizer: Any, barriers: Any, layout: CscvLayout) -> list[TrialSummary]:
    """Run parameter sets over one window's span and reduce each on the spot (the task a worker runs).

    `panel` is the panel mapping or a `SharedPanel` (which joblib's dask backend scatters to workers once)."""
    from engine.backtest.windows import evaluate_params, window_market

    prepared = window_market(getattr(panel, "panel", panel), window, config)
    return [summarise(window.number, p_idx, params,
                      *evaluate_params(strategy_cls, params, prepared, window, config, sizer, barriers), layout)
            for p_idx, params in jobs]


class SharedPanel:
    """A panel behind a weak-referenceable object: joblib's dask backend scatters such an argument to the workers
    once instead of sending the whole panel with every task (a plain dict is not weak-referenceable)."""

    def __init__(self, panel: Mapping[str, Any]) -> None:
        self.panel = panel


def pbo_block_sums(summaries: Mapping[tuple[int, int], TrialSummary], window_numbers: Sequence[int],
                   n_params: int) -> tuple[np.ndarray, np.ndarray]:
    """(s1, s2), each (n_splits x n_params): per-block OOS sums over all windows, added in window order."""
    first = summaries[(window_numbers[0], 0)].block_sums
    s1 = np.zeros((first.shape[1], n_params))
    s2 = np.zeros_like(s1)
    for i in range(n_params):
        for w in window_numbers:
            b = summaries[(w, i)].block_sums
            s1[:, i] += b[0]
            s2[:, i] += b[1]
    return s1, s2


def pbo_by_window(oos_by_window: Sequence[Sequence[np.ndarray]], n_splits: int) -> dict:
    """PBO of a search whose windows evaluate different configurations (optuna: one study per window).

    CSCV needs the same configurations on every row, which a stitched out-of-sample axis has only when every window
    evaluates the same parameter sets (random or grid search). Here each window is its own CSCV problem: its trials'
    out-of-sample returns are cut into `n_splits` blocks, and the logits of all windows' splits are pooled (PBO =
    the share of splits in which the best configuration on half the blocks ranks at or below the median on the other
    half). Windows with fewer than 2 trials or fewer than 2 x n_splits OOS bars are left out; none left: NaN."""
    from engine.backtest.stats import pbo_pooled

    parts = []
    for trials in oos_by_window:
        rows = min((len(r) for r in trials), default=0)
        if len(trials) < 2 or rows < 2 * n_splits:
            continue
        bounds = np.linspace(0, rows, int(n_splits) + 1).astype(int)
        sums = [block_sums(np.asarray(r)[:rows], 0, bounds) for r in trials]
        parts.append((np.stack([b[0] for b in sums], axis=1), np.stack([b[1] for b in sums], axis=1),
                      np.diff(bounds)))
    if not parts:
        return {"pbo": float("nan"), "n_combinations": 0, "method": "per-window CSCV (too few trials or bars)"}
    return {**pbo_pooled(parts), "method": f"per-window CSCV over each window's trials, {len(parts)} windows pooled"}
