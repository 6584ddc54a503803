"""Selection-bias statistics: probabilistic and deflated Sharpe ratios (Bailey & Lopez de Prado) and PBO via CSCV.

Sharpe ratios here are per bar (not annualised): PSR and DSR are defined on the sampling frequency of the returns.
Kurtosis is the plain (non-excess) fourth standardised moment, 3 for a normal distribution.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np

_NORM = NormalDist()  # stdlib normal: importing scipy.stats costs seconds of CLI start-up for two functions

EULER_GAMMA = 0.5772156649015329


def sample_moments(returns: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, standard deviation (ddof=1), skewness and (non-excess) kurtosis of a return sample."""
    r = np.asarray(returns, dtype="float64")
    n = r.size
    if n < 2:
        return (float(r.mean()) if n else 0.0), 0.0, 0.0, 3.0
    mean = float(r.mean())
    dev = r - mean
    dev2 = dev * dev  # elementwise sums, not BLAS dot: no thread pool contention in parallel sweeps
    m2 = float(dev2.sum()) / n
    if m2 <= 0.0:
        return mean, 0.0, 0.0, 3.0
    m3 = float((dev2 * dev).sum()) / n
    m4 = float((dev2 * dev2).sum()) / n
    std = math.sqrt(m2 * n / (n - 1))
    return mean, std, m3 / m2 ** 1.5, m4 / (m2 * m2)


def probabilistic_sharpe(sharpe: float, benchmark: float, n_obs: int, skew: float, kurt: float) -> float:
    """P(true Sharpe > benchmark) given an observed per-bar Sharpe over n_obs returns with this skew and kurtosis."""
    if n_obs < 2:
        raise ValueError(f"n_obs: need at least 2 observations, got {n_obs}")
    denom = 1.0 - skew * sharpe + (kurt - 1.0) / 4.0 * sharpe * sharpe
    if denom <= 0.0 or not math.isfinite(denom):
        denom = 1e-12
    return float(_NORM.cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom)))


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum per-bar Sharpe among n_trials unskilled trials whose Sharpes have this variance."""
    if n_trials < 1:
        raise ValueError(f"n_trials: must be >= 1, got {n_trials}")
    if sharpe_variance < 0:
        raise ValueError(f"sharpe_variance_across_trials: must be >= 0, got {sharpe_variance}")
    if n_trials == 1 or sharpe_variance == 0.0:
        return 0.0
    z1 = _NORM.inv_cdf(1.0 - 1.0 / n_trials)
    z2 = _NORM.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def deflated_sharpe(sharpe: float, n_trials: int, sharpe_variance_across_trials: float, n_obs: int,
                    skew: float, kurt: float) -> float:
    """PSR against the expected maximum Sharpe of n_trials: the chance the best of many trials is not luck."""
    sr0 = expected_max_sharpe(n_trials, sharpe_variance_across_trials)
    return probabilistic_sharpe(sharpe, sr0, n_obs, skew, kurt)


def pbo_cscv(returns_matrix: np.ndarray, n_splits: int = 16) -> dict:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation.

    `returns_matrix` is (T observations x N configurations). The T rows are cut into `n_splits` blocks; every choice of
    half the blocks is an in-sample set, the rest out-of-sample. PBO is the share of splits where the in-sample best
    configuration ranks at or below the out-of-sample median (logit <= 0).
    """
    m = np.asarray(returns_matrix, dtype="float64")
    if m.ndim != 2:
        raise ValueError(f"returns_matrix: expected 2 dimensions (T x N), got {m.ndim}")
    t_obs, n_cfg = m.shape
    if n_cfg < 2:
        raise ValueError(f"returns_matrix: needs at least 2 configurations (columns), got {n_cfg}")
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits: must be an even number >= 2, got {n_splits}")
    if t_obs < 2 * n_splits:
        raise ValueError(f"returns_matrix: {t_obs} rows is too few for {n_splits} splits (need >= {2 * n_splits})")
    m = np.nan_to_num(m, nan=0.0)
    bounds = np.linspace(0, t_obs, n_splits + 1).astype(int)
    # per-block sums, sums of squares and counts: Sharpe of any union of blocks follows without touching rows again
    s1 = np.stack([m[a:b].sum(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])
    s2 = np.stack([(m[a:b] ** 2).sum(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])
    cnt = np.diff(bounds).astype("float64")
    combos = np.array(list(itertools.combinations(range(n_splits), n_splits // 2)))
    mask = np.zeros((len(combos), n_splits), dtype=bool)
    mask[np.arange(len(combos))[:, None], combos] = True

    def sharpe(sel: np.ndarray) -> np.ndarray:
        n = sel @ cnt
        mu = (sel @ s1) / n[:, None]
        var = (sel @ s2) / n[:, None] - mu * mu
        sd = np.sqrt(np.maximum(var, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sd > 0, mu / sd, 0.0)

    is_sr = sharpe(mask.astype("float64"))
    oos_sr = sharpe((~mask).astype("float64"))
    best = np.argmax(is_sr, axis=1)
    oos_best = oos_sr[np.arange(len(combos)), best]
    # relative rank of the IS-best config out of sample, in (0, 1)
    rank = (oos_sr < oos_best[:, None]).sum(axis=1) + 0.5 * ((oos_sr == oos_best[:, None]).sum(axis=1) + 1)
    w = rank / (n_cfg + 1)
    logits = np.log(w / (1.0 - w))
    return {"pbo": float(np.mean(logits <= 0.0)), "n_combinations": int(len(combos)), "n_splits": int(n_splits),
            "n_configurations": int(n_cfg), "median_logit": float(np.median(logits)),
            "is_best_oos_sharpe_mean": float(oos_best.mean())}
