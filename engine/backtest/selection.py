"""How walk-forward chooses a window's configuration from its evaluated trials: by in-sample Sharpe, by the robust
score, by the plateau score, as the medoid of the best fifth, or as the steadiest of the best fifth.

The argmax of a noisy in-sample Sharpe is the luckiest configuration as much as the best one (the winner's curse),
and a search that samples more densely around the optimum (TPE) finds a luckier one. The plateau score of a trial is
the mean in-sample Sharpe of its k nearest evaluated configurations, itself included, with distances measured in the
unit cube of the search space as the search sees it (log-scaled parameters in log units): a configuration whose
neighbours also do well sits on a plateau, one whose neighbours do not is likely a spike of noise. k is a tenth of
the evaluated trials, at least 3. The medoid rule takes the best fifth of the trials by in-sample Sharpe (at least 2)
and deploys the one with the least summed distance to the others: the centre of the good region rather than its
luckiest point. The steady rule takes the same best fifth and deploys the one with the highest robust score (fold-mean
Sharpe minus one standard error over 4 in-sample folds, engine.backtest.robust): among configurations that did well,
the one that earned most evenly across the window. The same rule applies to every search, so samplers are compared like with like.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

SELECTIONS = ("sharpe", "robust", "plateau", "medoid", "steady")
BEST_SHARE = 0.2  # the medoid and steady rules look at the best fifth of the trials by in-sample Sharpe


def neighbours(n: int) -> int:
    """The plateau's neighbourhood size for n evaluated trials: a tenth of them, at least 3 (at most n)."""
    return max(1, min(n, max(3, n // 10)))


def unit_points(params: Sequence[Mapping[str, Any]], space: Mapping[str, Any]) -> np.ndarray:
    """Trials as points in the search space's unit cube (one column per searched parameter; log-scaled where the
    spec says so). Parameters outside the space (fixed ones) are ignored."""
    if not space:
        return np.zeros((len(params), 0))
    return np.array([[spec.unit(p[key]) for key, spec in space.items()] for p in params], dtype="float64")


def plateau_scores(values: np.ndarray, params: Sequence[Mapping[str, Any]], space: Mapping[str, Any],
                   k: int | None = None, eligible: np.ndarray | None = None) -> np.ndarray:
    """Each trial's value averaged over its k nearest eligible evaluated configurations (itself included when
    eligible); ties in distance keep the earlier trial."""
    v = np.asarray(values, dtype="float64")
    ok = np.ones(len(v), dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        return np.full(len(v), -np.inf)
    k = neighbours(len(idx)) if k is None else max(1, min(int(k), len(idx)))
    x = unit_points(params, space)
    d = ((x[:, None, :] - x[None, idx, :]) ** 2).sum(axis=2)
    near = np.argsort(d, axis=1, kind="stable")[:, :k]
    return v[idx][near].mean(axis=1)


def best_share(values: np.ndarray, eligible: np.ndarray, share: float = BEST_SHARE) -> np.ndarray:
    """Indices of the best `share` of eligible trials by value (at least 2), best first; ties keep trial order."""
    v = np.asarray(values, dtype="float64")
    idx = np.flatnonzero(np.asarray(eligible, dtype=bool))
    if len(idx) == 0:
        raise ValueError("selection: no selectable trial in the window")
    return idx[np.argsort(-v[idx], kind="stable")[:max(2, int(round(share * len(idx))))]]


def medoid_of_best(values: np.ndarray, params: Sequence[Mapping[str, Any]], space: Mapping[str, Any],
                   share: float = BEST_SHARE, eligible: np.ndarray | None = None) -> int:
    """The medoid (least summed unit-space distance to the others) of the best `share` of eligible trials by value
    (at least 2); a tie keeps the better value."""
    ok = np.ones(len(values), dtype=bool) if eligible is None else eligible
    best = best_share(values, ok, share)
    x = unit_points(params, space)[best]
    spread = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)).sum(axis=1)
    return int(best[int(np.argmin(spread))])


def choose(selection: str, is_sharpe: np.ndarray, is_robust: np.ndarray, params: Sequence[Mapping[str, Any]],
           space: Mapping[str, Any], selectable: np.ndarray | None = None) -> int:
    """The index of the configuration a window deploys under `selection` (never an unselectable, e.g. pruned,
    trial)."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection: must be one of {', '.join(SELECTIONS)}, got {selection!r}")
    ok = np.ones(len(is_sharpe), dtype=bool) if selectable is None else np.asarray(selectable, dtype=bool)
    if selection == "sharpe":
        score = np.asarray(is_sharpe, dtype="float64")
    elif selection == "robust":
        score = np.asarray(is_robust, dtype="float64")
    elif selection == "medoid":
        return medoid_of_best(is_sharpe, params, space, eligible=ok)
    elif selection == "steady":
        best = best_share(is_sharpe, ok)
        return int(best[int(np.argmax(np.asarray(is_robust, dtype="float64")[best]))])
    else:
        score = plateau_scores(is_sharpe, params, space, eligible=ok)
    return int(np.argmax(np.where(ok, score, -np.inf)))
