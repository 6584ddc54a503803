"""Selection-bias statistics: probabilistic and deflated Sharpe ratios (Bailey & Lopez de Prado) and PBO via CSCV.

This is the ONE implementation of PSR and DSR in quantdesk: research backtests, walk-forward, the leaderboard and the
promotion gates all call it. Conventions (`CONVENTIONS` is printed in reports):
- Sharpe ratios are per observation (per bar), not annualised: PSR and DSR are defined on the sampling frequency.
- Moments: mean and standard deviation with ddof=1; skewness and kurtosis are the population (ddof=0) standardised
  third and fourth moments; kurtosis is non-excess (3 for a normal distribution).
- PSR(SR*) = Phi((SR - SR*) sqrt(n - 1) / sqrt(1 - skew SR + (kurt - 1)/4 SR^2)), n = number of returns.
- DSR = PSR(SR0) with SR0 = sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))), the expected maximum
  Sharpe of N unskilled trials; N = distinct configurations in the trial family, V = variance (ddof=1) of their
  per-bar Sharpe ratios (the dispersion across trials, not the estimation variance of one Sharpe).
- Both are probabilities in [0, 1]; a gate threshold is a probability (e.g. DSR >= 0.95).
- When 1 - skew SR + (kurt - 1)/4 SR^2 <= 0 the statistic is undefined: NaN, and `undefined_reason` says why.
- Phi is scipy's ndtr (the function behind scipy.stats.norm.cdf), exact in the lower tail (Phi(-10) = 7.6e-24).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

EULER_GAMMA = 0.5772156649015329
CONVENTIONS = ("per-bar Sharpe; skew/kurtosis population moments, kurtosis non-excess; N = distinct configurations "
               "in the trial family; V[SR] = variance of per-bar Sharpe across those trials; DSR = P(true SR > "
               "expected max SR of N unskilled trials)")


def norm_cdf(x: float) -> float:
    """Standard normal CDF via scipy.special.ndtr (scipy.special, not scipy.stats: a fraction of the import time)."""
    from scipy.special import ndtr

    return float(ndtr(x))


def norm_ppf(p: float) -> float:
    """Standard normal quantile via scipy.special.ndtri."""
    from scipy.special import ndtri

    return float(ndtri(p))


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


def psr_denominator(sharpe: float, skew: float, kurt: float) -> float:
    """1 - skew SR + (kurt - 1)/4 SR^2: the variance factor of the Sharpe estimate (Mertens / Bailey-LdP)."""
    return 1.0 - skew * sharpe + (kurt - 1.0) / 4.0 * sharpe * sharpe


def undefined_reason(sharpe: float, skew: float, kurt: float, n_obs: int | None = None) -> str | None:
    """Why PSR/DSR is undefined for these statistics (None when it is defined)."""
    if n_obs is not None and n_obs < 2:
        return f"undefined: {n_obs} returns (need at least 2)"
    if not all(math.isfinite(v) for v in (sharpe, skew, kurt)):
        return f"undefined: non-finite statistics (SR {sharpe}, skew {skew}, kurtosis {kurt})"
    d = psr_denominator(sharpe, skew, kurt)
    if d <= 0.0:
        return (f"undefined: 1 - skew*SR + (kurt-1)/4*SR^2 = {d:.3g} <= 0 (SR {sharpe:.4g}, skew {skew:.4g}, "
                f"kurtosis {kurt:.4g})")
    return None


def probabilistic_sharpe(sharpe: float, benchmark: float, n_obs: int, skew: float, kurt: float) -> float:
    """P(true Sharpe > benchmark) given an observed per-bar Sharpe over n_obs returns; NaN when undefined."""
    if n_obs < 2:
        raise ValueError(f"n_obs: need at least 2 observations, got {n_obs}")
    if undefined_reason(sharpe, skew, kurt) is not None:
        return float("nan")
    return norm_cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(psr_denominator(sharpe, skew, kurt)))


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum per-bar Sharpe among n_trials unskilled trials whose Sharpes have this variance."""
    if n_trials < 1:
        raise ValueError(f"n_trials: must be >= 1, got {n_trials}")
    if sharpe_variance < 0:
        raise ValueError(f"sharpe_variance_across_trials: must be >= 0, got {sharpe_variance}")
    if n_trials == 1 or sharpe_variance == 0.0:
        return 0.0
    z1 = norm_ppf(1.0 - 1.0 / n_trials)
    z2 = norm_ppf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def deflated_sharpe(sharpe: float, n_trials: int, sharpe_variance_across_trials: float, n_obs: int,
                    skew: float, kurt: float) -> float:
    """PSR against the expected maximum Sharpe of n_trials: the chance the best of many trials is not luck (or NaN)."""
    sr0 = expected_max_sharpe(n_trials, sharpe_variance_across_trials)
    return probabilistic_sharpe(sharpe, sr0, n_obs, skew, kurt)


@dataclass(frozen=True)
class DsrResult:
    """A deflated Sharpe ratio with every input it used, so a report or gate can show its numbers."""

    dsr: float  # probability in [0, 1], NaN when undefined
    sharpe: float  # per observation
    sr0: float  # expected maximum per-observation Sharpe of n_trials unskilled trials
    n_trials: int
    sharpe_variance: float
    n_obs: int
    skew: float
    kurt: float
    reason: str | None = None  # why dsr is NaN

    @property
    def defined(self) -> bool:
        """True when the DSR is a number."""
        return self.reason is None

    def describe(self) -> str:
        """One line: 'DSR 0.912 (SR/bar 0.041 vs SR0 0.020, N=12, n=2,000)' or the reason it is undefined."""
        if not self.defined:
            return f"DSR {self.reason}"
        return (f"DSR {self.dsr:.3f} (SR/bar {self.sharpe:.4f} vs expected max SR0 {self.sr0:.4f}, "
                f"N={self.n_trials:,}, n={self.n_obs:,})")


def deflated_sharpe_of_returns(returns: Sequence[float] | np.ndarray, n_trials: int,
                               sharpe_variance_across_trials: float) -> DsrResult:
    """The DSR of a return series (moments by `sample_moments`), with its inputs and any reason it is undefined."""
    r = np.asarray(returns, dtype="float64")
    r = r[np.isfinite(r)]
    n = int(r.size)
    n_trials = max(int(n_trials), 1)
    var = max(float(sharpe_variance_across_trials), 0.0)
    sr0 = expected_max_sharpe(n_trials, var)
    mean, std, skew, kurt = sample_moments(r)
    sr = mean / std if std > 0 else float("nan")
    reason = undefined_reason(sr, skew, kurt, n)
    if n >= 2 and std <= 0:
        reason = "undefined: the returns have zero variance (no Sharpe ratio)"
    dsr = float("nan") if reason else probabilistic_sharpe(sr, sr0, n, skew, kurt)
    return DsrResult(dsr, sr, sr0, n_trials, var, n, skew, kurt, reason)


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
    return pbo_from_block_sums(s1, s2, np.diff(bounds))


def cscv_logits(s1: np.ndarray, s2: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSCV from per-block sums (s1) and sums of squares (s2), each (n_splits x N), and the rows per block: for every
    half/half split, the logit of the in-sample best configuration's relative out-of-sample rank, and its OOS Sharpe."""
    s1, s2 = np.asarray(s1, dtype="float64"), np.asarray(s2, dtype="float64")
    n_splits, n_cfg = s1.shape
    if n_cfg < 2:
        raise ValueError(f"block sums: need at least 2 configurations (columns), got {n_cfg}")
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits: must be an even number >= 2, got {n_splits}")
    cnt = np.asarray(counts, dtype="float64")
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
    return np.log(w / (1.0 - w)), oos_best


def pbo_from_block_sums(s1: np.ndarray, s2: np.ndarray, counts: np.ndarray) -> dict:
    """PBO by CSCV from per-block sums (s1) and sums of squares (s2) of the returns, each (n_splits x N), and the rows
    per block: what `pbo_cscv` computes from the full matrix, for callers that reduced the returns where they ran
    (a walk-forward sweep on dask workers sends back 2 x n_splits numbers per configuration, not its returns)."""
    logits, oos_best = cscv_logits(s1, s2, counts)
    n_splits, n_cfg = np.shape(s1)
    return {"pbo": float(np.mean(logits <= 0.0)), "n_combinations": int(len(logits)), "n_splits": int(n_splits),
            "n_configurations": int(n_cfg), "median_logit": float(np.median(logits)),
            "is_best_oos_sharpe_mean": float(oos_best.mean())}


def pbo_pooled(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """PBO over several independent CSCV problems (e.g. one per walk-forward window, each with its own candidate
    configurations): every part's split logits pooled, PBO = the share of all splits with logit <= 0."""
    if not parts:
        raise ValueError("pbo_pooled: needs at least one (s1, s2, counts) part")
    runs = [cscv_logits(*p) for p in parts]
    logits = np.concatenate([lg for lg, _ in runs])
    oos_best = np.concatenate([ob for _, ob in runs])
    return {"pbo": float(np.mean(logits <= 0.0)), "n_combinations": int(len(logits)),
            "n_splits": int(np.shape(parts[0][0])[0]),
            "n_configurations": int(sum(np.shape(p[0])[1] for p in parts)),
            "median_logit": float(np.median(logits)), "is_best_oos_sharpe_mean": float(oos_best.mean()),
            "by_part": [float(np.mean(lg <= 0.0)) for lg, _ in runs]}
