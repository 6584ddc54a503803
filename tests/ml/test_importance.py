"""MDI, MDA (purged CV) and SFI rank a planted informative feature above noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.ml.importance import default_estimator, feature_importance, mda_importance, mdi_importance, \
    sfi_importance


@pytest.fixture(scope="module")
def planted() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    rng = np.random.default_rng(7)
    n = 700
    idx = pd.date_range("2024", periods=n, freq="1h", tz="UTC")
    X = pd.DataFrame(rng.normal(size=(n, 5)), index=idx, columns=["signal", "noise_a", "noise_b", "noise_c", "noise_d"])
    y = pd.Series(np.where(X["signal"] + rng.normal(0, 0.8, n) > 0, 1, -1), index=idx)
    t1 = pd.Series(idx + pd.Timedelta("6h"), index=idx)  # overlapping 6-bar labels -> purging matters
    return X, y, t1


def _fast() -> object:
    return default_estimator(random_state=0, n_estimators=20)


def test_mdi_ranks_planted_feature_first(planted, report) -> None:
    X, y, _ = planted
    out = mdi_importance(X, y, n_estimators=40)
    report("MDI importance", out["mean"].round(4).to_dict())
    assert out.index[0] == "signal"
    assert out["mean"].sum() == pytest.approx(1.0)
    assert out.loc["signal", "mean"] > 3 * out.drop("signal")["mean"].max()


def test_mda_purged_ranks_planted_feature_first(planted, report) -> None:
    X, y, t1 = planted
    out = mda_importance(X, y, t1=t1, n_splits=4, embargo_pct=0.01, estimator=_fast())
    report("MDA importance (purged 4-fold)", {**out["mean"].round(4).to_dict(), "oos_neg_log_loss":
                                              float(out["oos_score"].iloc[0])})
    assert out.index[0] == "signal"
    noise = out.drop("signal")
    assert out.loc["signal", "mean"] > noise["mean"].max() + 4 * noise["std"].max()
    acc = mda_importance(X, y, t1=t1, n_splits=4, estimator=_fast(), scoring="accuracy")
    assert acc.index[0] == "signal"


def test_sfi_ranks_planted_feature_first(planted, report) -> None:
    X, y, t1 = planted
    out = sfi_importance(X[["signal", "noise_a", "noise_b"]], y, t1=t1, n_splits=3, estimator=_fast())
    report("SFI accuracy (purged 3-fold)", out["mean"].round(4).to_dict())
    assert out.index[0] == "signal"
    assert out.loc["signal", "mean"] > 0.7 and out.drop("signal")["mean"].max() < 0.6


def test_bad_inputs_raise(planted) -> None:
    X, y, _ = planted
    with pytest.raises(ValueError, match="method"):
        feature_importance(X, y, method="shap")
    with pytest.raises(ValueError, match="NaN"):
        mdi_importance(X.assign(noise_a=np.nan), y)
    with pytest.raises(ValueError, match="y:"):
        mdi_importance(X, y.iloc[:10])
    with pytest.raises(ValueError, match="two classes"):
        mdi_importance(X, y * 0 + 1)
