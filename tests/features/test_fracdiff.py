"""Fixed-width fractional differentiation and the minimum-d ADF search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.features.fracdiff import ffd_weights, find_min_d, frac_diff_ffd


def test_weights_match_the_binomial_series() -> None:
    w = ffd_weights(0.5, threshold=1e-3, max_width=10)
    assert w[:4] == pytest.approx([1.0, -0.5, -0.125, -0.0625])
    assert ffd_weights(1.0, 1e-4).tolist() == [1.0, -1.0]  # d=1 is the first difference
    assert ffd_weights(0.0, 1e-4).tolist() == [1.0]


def test_ffd_by_hand_and_integer_orders() -> None:
    x = pd.Series([1.0, 2.0, 4.0, 7.0, 11.0])
    pd.testing.assert_series_equal(frac_diff_ffd(x, 1.0), x.diff(), check_names=False)
    pd.testing.assert_series_equal(frac_diff_ffd(x, 0.0), x, check_names=False)
    w = ffd_weights(0.5, 1e-3, 3)
    out = frac_diff_ffd(x, 0.5, 1e-3, 3)
    assert out.iloc[:2].isna().all()
    assert out.iloc[4] == pytest.approx(w[0] * 11 + w[1] * 7 + w[2] * 4)


def test_min_d_positive_for_random_walk_zero_for_white_noise(report) -> None:
    rng = np.random.default_rng(11)
    walk = pd.Series(np.exp(4 + np.cumsum(rng.normal(0, 0.01, 3000))))
    noise = pd.Series(np.exp(4 + rng.normal(0, 0.01, 3000)))
    rw, wn = find_min_d(walk), find_min_d(noise)
    report("fracdiff minimum d (ADF p<0.05)", {"random_walk_d": rw.d, "random_walk_p": rw.pvalue,
                                              "random_walk_corr": rw.table[-1][2], "white_noise_d": wn.d,
                                              "ffd_width": rw.width})
    assert 0.05 <= rw.d <= 0.9 and rw.pvalue < 0.05
    assert rw.table[0][1] > 0.05  # the raw walk itself is not stationary
    assert rw.table[-1][2] > 0.5  # the chosen series keeps memory of the level
    assert wn.d == 0.0


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="d:"):
        ffd_weights(-0.1)
    with pytest.raises(ValueError, match="log=True"):
        find_min_d(pd.Series(np.linspace(-1, 1, 100)))
    with pytest.raises(ValueError, match="d_grid"):
        find_min_d(pd.Series(np.ones(100) + 1), d_grid=[0.5, 0.2])
