"""PCA (Marcenko-Pastur denoising) and correlation-clustered features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.features.compression import (clustered_features, correlation_clusters, fit_pca, marcenko_pastur_edge,
                                         pca_features)


@pytest.fixture
def blocks() -> pd.DataFrame:
    """12 features made of 3 latent factors (4 noisy copies each, one sign-flipped) - 3 true clusters."""
    rng = np.random.default_rng(2)
    n = 1000
    factors = rng.normal(size=(n, 3))
    cols = {}
    for f in range(3):
        for k in range(4):
            sign = -1.0 if k == 3 else 1.0
            cols[f"f{f}_{k}"] = sign * factors[:, f] + rng.normal(0, 0.5, n)
    return pd.DataFrame(cols, index=pd.date_range("2024", periods=n, freq="1h", tz="UTC"))


def test_pca_shapes_and_mp_denoising(blocks: pd.DataFrame, report) -> None:
    out = pca_features(blocks, "mp")
    model = fit_pca(blocks, "mp")
    report("PCA on 3-factor features", {"mp_edge": marcenko_pastur_edge(1000, 12), "kept": out.shape[1],
                                        "explained": float(model.explained_ratio.sum())})
    assert out.shape == (1000, 3)  # exactly the three factors clear the noise edge
    assert list(out.columns) == ["pc_0", "pc_1", "pc_2"]
    assert pca_features(blocks, 5).shape == (1000, 5)
    assert pca_features(blocks, 0.5).shape[1] <= 3
    cov = np.cov(out.to_numpy(), rowvar=False)
    assert np.allclose(cov - np.diag(np.diag(cov)), 0.0, atol=1e-8)  # components are uncorrelated


def test_pure_noise_keeps_one_component() -> None:
    rng = np.random.default_rng(3)
    noise = pd.DataFrame(rng.normal(size=(2000, 10)), columns=[f"n{i}" for i in range(10)])
    assert pca_features(noise, "mp").shape[1] == 1


def test_correlation_clusters_recover_the_blocks(blocks: pd.DataFrame) -> None:
    clusters = correlation_clusters(blocks, n_clusters=3)
    groups = sorted(sorted(m) for m in clusters.values())
    assert groups == [[f"f{f}_{k}" for k in range(4)] for f in range(3)]
    assert len(correlation_clusters(blocks, max_distance=0.5)) == 3
    feats, mapping = clustered_features(blocks, n_clusters=3)
    assert feats.shape == (1000, 3) and mapping == clusters
    # each cluster feature tracks its factor strongly despite the sign-flipped member
    for cid, members in mapping.items():
        assert abs(np.corrcoef(feats[f"cluster_{cid}"], blocks[members[0]])[0, 1]) > 0.85


def test_bad_inputs_raise(blocks: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="n_components"):
        pca_features(blocks, 40)
    with pytest.raises(ValueError, match="n_clusters"):
        correlation_clusters(blocks, n_clusters=0)
    with pytest.raises(ValueError, match="complete rows"):
        pca_features(blocks.iloc[:5], 2)
