"""Lookahead check: recompute a strategy's signals on truncated histories and flag any value that changes.

A point-in-time strategy's signal at bar t depends only on bars <= t, so the signals computed on the history cut at
bar c must equal the full-history signals on every bar < c. Any difference means the strategy peeked ahead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

DEFAULT_CUTS = (0.3, 0.5, 0.7, 0.85, 0.95)
MAX_REPORTED = 20


@dataclass(frozen=True)
class LookaheadResult:
    """Outcome of the lookahead check: ok, where it cut, and the first changed values."""

    ok: bool
    cuts: tuple[str, ...]
    n_checked: int
    n_changed: int
    first_violation: str | None = None
    violations: tuple[dict, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        """Plain JSON-ready form (for state.db and the tearsheet)."""
        d = asdict(self)
        d["cuts"] = list(self.cuts)
        d["violations"] = list(self.violations)
        return d

    def summary(self) -> str:
        """One line for the CLI and the report."""
        if self.ok:
            return f"passed: {self.n_checked} signal values unchanged across {len(self.cuts)} truncated histories"
        return (f"FAILED: {self.n_changed} signal values changed when future bars were removed "
                f"(first at {self.first_violation})")


def _truncate(panel: Mapping[str, pd.DataFrame], cut_ts: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The panel as it was known when bar `cut_ts` closed (bars with ts <= cut_ts)."""
    return {sym: frame.loc[:cut_ts] for sym, frame in panel.items()}


def _as_frame(sig: Any, name: str) -> pd.DataFrame:
    if isinstance(sig, pd.Series):
        sig = sig.to_frame()
    if not isinstance(sig, pd.DataFrame):
        raise ValueError(f"{name}: signals must be a DataFrame, got {type(sig).__name__}")
    return sig


def check_lookahead(signal_fn: Callable[[Mapping[str, pd.DataFrame]], pd.DataFrame],
                    panel: Mapping[str, pd.DataFrame], full_signals: pd.DataFrame | None = None,
                    cuts: Sequence[float] = DEFAULT_CUTS, warmup_bars: int = 0) -> LookaheadResult:
    """Compare signals on histories cut at fractions `cuts` of the panel with the full-history signals."""
    if not cuts:
        raise ValueError("cuts: need at least one cut point")
    for c in cuts:
        if not 0.0 < float(c) < 1.0:
            raise ValueError(f"cuts: each cut must be a fraction in (0, 1), got {c}")
    full = _as_frame(full_signals if full_signals is not None else signal_fn(panel), "strategy")
    index = full.index
    n = len(index)
    lo = min(max(int(warmup_bars), 1), max(n - 2, 1))
    positions = sorted({min(max(lo + int((n - 1 - lo) * float(c)), lo), n - 2) for c in cuts})
    full_values = np.nan_to_num(full.to_numpy(dtype="float64", na_value=np.nan), nan=0.0)
    checked = changed = 0
    violations: list[dict] = []
    first: pd.Timestamp | None = None
    cut_labels = []
    for pos in positions:
        if pos < 0:
            continue
        cut_ts = index[pos]
        cut_labels.append(str(cut_ts))
        part = _as_frame(signal_fn(_truncate(panel, cut_ts)), "strategy")
        part = part.reindex(index=index[: pos + 1], columns=full.columns)
        part_values = np.nan_to_num(part.to_numpy(dtype="float64", na_value=np.nan), nan=0.0)
        ref = full_values[: pos + 1]
        diff = part_values != ref
        checked += diff.size
        changed_here = int(diff.sum())
        if not changed_here:
            continue
        changed += changed_here
        rows, cols = np.nonzero(diff)
        for r, c in zip(rows[: MAX_REPORTED], cols[: MAX_REPORTED]):
            if len(violations) >= MAX_REPORTED:
                break
            violations.append({"cut": str(cut_ts), "ts": str(index[r]), "symbol": str(full.columns[c]),
                               "full": float(ref[r, c]), "truncated": float(part_values[r, c])})
        ts = index[rows.min()]
        first = ts if first is None or ts < first else first
    return LookaheadResult(ok=changed == 0, cuts=tuple(cut_labels), n_checked=int(checked), n_changed=int(changed),
                           first_violation=None if first is None else str(first), violations=tuple(violations))
