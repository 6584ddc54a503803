"""Fixed-width-window fractional differentiation (Lopez de Prado, AFML ch. 5) and the minimum-d ADF search.

FFD keeps memory (unlike returns, d=1) while making a price series stationary. The weights are fixed and truncated to
a fixed window, so the value at bar t uses bars t-width+1..t only (point-in-time). Choose d on in-sample data only:
`find_min_d` looks at the whole series it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


def ffd_weights(d: float, threshold: float = 1e-4, max_width: int = 1000) -> np.ndarray:
    """Binomial weights w_k = -w_{k-1} (d - k + 1) / k, oldest last, until |w_k| < threshold or max_width terms."""
    if not 0.0 <= d <= 2.0:
        raise ValueError(f"d: must be within [0, 2], got {d}")
    if threshold <= 0:
        raise ValueError(f"threshold: must be > 0, got {threshold}")
    if max_width < 1:
        raise ValueError(f"max_width: must be >= 1, got {max_width}")
    weights = [1.0]
    k = 1
    while k < max_width:
        w = -weights[-1] * (d - k + 1) / k
        if abs(w) < threshold:
            break
        weights.append(w)
        k += 1
    return np.asarray(weights, dtype="float64")


def frac_diff_ffd(series: pd.Series, d: float, threshold: float = 1e-4, max_width: int = 1000) -> pd.Series:
    """Fractionally differentiated series: sum_k w_k x_{t-k}; NaN for the first width-1 bars and around gaps."""
    weights = ffd_weights(d, threshold, max_width)
    x = series.to_numpy(dtype="float64")
    width = len(weights)
    out = np.full(len(x), np.nan)
    if len(x) >= width:
        # np.convolve flips its second argument: sum_k weights[k] * x[t-k].
        out[width - 1:] = np.convolve(x, weights, mode="valid")
    return pd.Series(out, index=series.index, name=f"ffd_{d:g}")


@dataclass(frozen=True)
class FracDiffResult:
    """The smallest d whose FFD series passes the ADF test, with the whole (d, p-value, correlation) table."""

    d: float
    pvalue: float
    width: int
    table: list[tuple[float, float, float]] = field(default_factory=list)  # (d, adf p-value, corr with input)


def adf_pvalue(values: np.ndarray, maxlag: int = 1) -> float:
    """Augmented Dickey-Fuller p-value (constant, fixed lag, as AFML uses it)."""
    import warnings

    from statsmodels.tsa.stattools import adfuller

    clean = values[np.isfinite(values)]
    if len(clean) < 20:
        raise ValueError(f"series: need at least 20 finite values for an ADF test, got {len(clean)}")
    with warnings.catch_warnings():  # statsmodels 0.15 warns about its future result object; [1] works in both
        warnings.simplefilter("ignore", FutureWarning)
        return float(adfuller(clean, maxlag=maxlag, regression="c", autolag=None)[1])


def find_min_d(series: pd.Series, d_grid: np.ndarray | None = None, pvalue: float = 0.05,
               threshold: float = 1e-4, max_width: int = 500, log: bool = True) -> FracDiffResult:
    """Smallest d on the grid whose FFD transform rejects a unit root at `pvalue` (d=0 when the input already does).

    With ``log`` the search runs on log(series) (prices); raises ValueError if no d on the grid passes.
    """
    grid = np.round(np.arange(0.0, 1.0001, 0.05), 4) if d_grid is None else np.asarray(d_grid, dtype="float64")
    if len(grid) == 0 or np.any(np.diff(grid) <= 0):
        raise ValueError("d_grid: must be a non-empty increasing sequence")
    x = series.astype("float64")
    if log:
        if (x <= 0).any():
            raise ValueError("series: log=True needs strictly positive values")
        x = np.log(x)
    table: list[tuple[float, float, float]] = []
    for d in grid:
        ffd = frac_diff_ffd(x, float(d), threshold, max_width)
        valid = ffd.notna()
        if valid.sum() < 20:
            continue
        p = adf_pvalue(ffd[valid].to_numpy())
        corr = float(np.corrcoef(ffd[valid].to_numpy(), x[valid].to_numpy())[0, 1]) if d > 0 else 1.0
        table.append((float(d), p, corr))
        if p < pvalue:
            width = len(ffd_weights(float(d), threshold, max_width))
            return FracDiffResult(d=float(d), pvalue=p, width=width, table=table)
    raise ValueError(f"series: no d in {grid.tolist()} makes it stationary at p < {pvalue} "
                     f"(last p-values {[round(t[1], 4) for t in table[-3:]]})")
