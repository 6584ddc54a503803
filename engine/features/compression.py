"""Compression and denoising of a feature matrix: PCA (optionally keeping only components above the Marcenko-Pastur
noise edge) and a correlation-clustered feature set (one averaged feature per cluster of correlated features).

Point-in-time: both are *fitted* on rows up to `fit_until` only (the training window) and then applied to every row,
so a transformed value never depends on rows after the fit window; refit when the training window moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def _fit_rows(frame: pd.DataFrame, fit_until: pd.Timestamp | None) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame) or frame.shape[1] < 2:
        raise ValueError("features: expected a DataFrame with at least two columns")
    rows = frame if fit_until is None else frame.loc[:fit_until]
    rows = rows.replace([np.inf, -np.inf], np.nan).dropna()
    if len(rows) < max(10, frame.shape[1] + 1):
        raise ValueError(f"features: only {len(rows)} complete rows to fit on; need more than {frame.shape[1]}")
    return rows


def marcenko_pastur_edge(n_rows: int, n_cols: int, variance: float = 1.0) -> float:
    """Largest eigenvalue a pure-noise correlation matrix of this shape produces: var * (1 + sqrt(N/T))^2."""
    if n_rows < 1 or n_cols < 1:
        raise ValueError("shape: n_rows and n_cols must be >= 1")
    return float(variance * (1.0 + np.sqrt(n_cols / n_rows)) ** 2)


@dataclass(frozen=True)
class PCAModel:
    """A fitted standardise-then-project transform."""

    columns: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray  # (k, n_features)
    eigenvalues: np.ndarray  # of the correlation matrix, for the kept components
    explained_ratio: np.ndarray

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Project rows onto the kept components (NaN rows stay NaN)."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"features: missing columns {missing}")
        z = (frame[list(self.columns)].to_numpy(dtype="float64") - self.mean) / self.scale
        out = z @ self.components.T
        return pd.DataFrame(out, index=frame.index, columns=[f"pc_{i}" for i in range(out.shape[1])])


def fit_pca(frame: pd.DataFrame, n_components: int | float | str = "mp",
            fit_until: pd.Timestamp | None = None) -> PCAModel:
    """Fit PCA on the correlation matrix of rows up to `fit_until`.

    n_components: an int (that many), a float in (0, 1) (enough to explain that variance share), or "mp" (every
    component whose eigenvalue exceeds the Marcenko-Pastur edge - the denoising choice; at least one).
    """
    rows = _fit_rows(frame, fit_until)
    x = rows.to_numpy(dtype="float64")
    mean = x.mean(axis=0)
    scale = x.std(axis=0, ddof=1)
    if np.any(scale <= 0):
        const = [c for c, s in zip(rows.columns, scale) if s <= 0]
        raise ValueError(f"features: constant columns cannot be standardised: {const}")
    z = (x - mean) / scale
    corr = np.corrcoef(z, rowvar=False)
    vals, vecs = np.linalg.eigh(corr)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    ratio = vals / vals.sum()
    if isinstance(n_components, str):
        if n_components != "mp":
            raise ValueError(f"n_components: expected an int, a float in (0, 1) or 'mp', got {n_components!r}")
        k = max(1, int(np.sum(vals > marcenko_pastur_edge(len(rows), rows.shape[1]))))
    elif isinstance(n_components, float) and 0 < n_components < 1:
        k = int(np.searchsorted(np.cumsum(ratio), n_components) + 1)
    elif isinstance(n_components, (int, np.integer)) and 1 <= n_components <= rows.shape[1]:
        k = int(n_components)
    else:
        raise ValueError(f"n_components: {n_components!r} is not 'mp', a share in (0, 1) or 1..{rows.shape[1]}")
    # Fix each component's sign (largest loading positive) so refits are comparable.
    comps = vecs[:, :k].T
    signs = np.sign(comps[np.arange(k), np.argmax(np.abs(comps), axis=1)])
    comps = comps * signs[:, None]
    return PCAModel(tuple(rows.columns), mean, scale, comps, vals[:k], ratio[:k])


def pca_features(frame: pd.DataFrame, n_components: int | float | str = "mp",
                 fit_until: pd.Timestamp | None = None) -> pd.DataFrame:
    """Fit on rows up to `fit_until` and transform every row: columns pc_0..pc_{k-1}."""
    return fit_pca(frame, n_components, fit_until).transform(frame)


def correlation_clusters(frame: pd.DataFrame, n_clusters: int | None = None, max_distance: float = 0.5,
                         fit_until: pd.Timestamp | None = None) -> dict[int, list[str]]:
    """Group features by hierarchical clustering on the distance sqrt((1 - |corr|) / 2) (average linkage).

    Either `n_clusters` clusters or cut at `max_distance`. Returns cluster id -> member columns.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    rows = _fit_rows(frame, fit_until)
    corr = rows.corr().to_numpy()
    if np.isnan(corr).any():
        raise ValueError("features: correlation undefined (a constant column?)")
    dist = np.sqrt(np.clip((1.0 - np.abs(corr)) / 2.0, 0.0, None))
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), method="average")
    if n_clusters is not None:
        if not 1 <= n_clusters <= rows.shape[1]:
            raise ValueError(f"n_clusters: must be within 1..{rows.shape[1]}, got {n_clusters}")
        labels = fcluster(tree, t=n_clusters, criterion="maxclust")
    else:
        labels = fcluster(tree, t=max_distance, criterion="distance")
    clusters: dict[int, list[str]] = {}
    for col, lab in zip(rows.columns, labels):
        clusters.setdefault(int(lab) - 1, []).append(str(col))
    return dict(sorted(clusters.items()))


def clustered_features(frame: pd.DataFrame, n_clusters: int | None = None, max_distance: float = 0.5,
                       fit_until: pd.Timestamp | None = None) -> tuple[pd.DataFrame, dict[int, list[str]]]:
    """One feature per correlation cluster: the mean of its standardised, sign-aligned members (fit-window stats)."""
    clusters = correlation_clusters(frame, n_clusters, max_distance, fit_until)
    rows = _fit_rows(frame, fit_until)
    mean, std = rows.mean(), rows.std(ddof=1).replace(0.0, np.nan)
    corr = rows.corr()
    out = {}
    for cid, members in clusters.items():
        anchor = members[0]
        signs = np.sign(corr.loc[members, anchor]).replace(0.0, 1.0)
        z = (frame[members] - mean[members]) / std[members]
        out[f"cluster_{cid}"] = (z * signs).mean(axis=1)
    return pd.DataFrame(out, index=frame.index), clusters
