"""The meta-model on simulated data whose informed-flow episodes precede crashes: it must beat the primary signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.ml.dataset import build_dataset, latest_features, micro_features
from engine.ml.labels import BarrierSpec
from engine.ml.meta_model import QuantileBinner, train_meta_model
from engine.strategy.registry import load_strategy


def test_overlay_beats_primary_out_of_sample(sim_panel_1y, report) -> None:  # noqa: ANN001
    strategy = load_strategy("quantum_momentum")
    ds = build_dataset(strategy, sim_panel_1y, BarrierSpec(2.0, 1.0, 48, 100))
    assert len(ds.y) > 3000 and 0.1 < ds.y.mean() < 0.5
    assert (np.diff(ds.X.index.as_unit("ns").asi8) >= 0).all()
    model, rep = train_meta_model(ds, sim_panel_1y, cv_folds=4, embargo_pct=0.01,
                                  embargo=pd.Timedelta(hours=792 + 48))
    oos = rep.oos
    report("meta-model OOS on simulated informed-flow data (quantum_momentum, 1y of 1h bars)", {
        "estimator": rep.estimator, "n_train": rep.n_train, "n_test": rep.n_test,
        "precision_meta": oos["precision"], "precision_primary": oos["primary_precision"],
        "recall": oos["recall"], "f1": oos["f1"], "roc_auc": oos["roc_auc"], "brier": oos["brier"],
        "brier_base_rate": oos["brier_base_rate"], "sharpe_primary": oos["sharpe_primary"],
        "sharpe_primary_plus_overlay": oos["sharpe_overlay"],
        "sharpe_overlay_kelly": oos["sharpe_overlay_kelly"], "sharpe_overlay_gated": oos["sharpe_overlay_gated"],
        "backtester_sharpe_primary": oos.get("bt_sharpe_primary"),
        "backtester_sharpe_overlay": oos.get("bt_sharpe_overlay"), "cv_auc_hgb": np.mean(rep.cv_auc["hist_gradient_boosting"]),
        "cv_auc_rf": np.mean(rep.cv_auc["random_forest"]), "train_s": sum(rep.elapsed_s.values())})
    assert hasattr(model, "predict_proba") and rep.estimator in ("hist_gradient_boosting", "random_forest")
    assert rep.selection["folds"] >= 1 and rep.selection["embargo"] == str(pd.Timedelta(hours=840))
    # one split's Sharpe or precision is not evidence (issue 19: judge by `model evaluate`); it is reported above
    assert np.isfinite(oos["brier"]) and 0 < oos["roc_auc"] < 1
    # the served pipeline predicts probabilities in [0, 1] for live feature rows in model order
    live = latest_features(strategy, sim_panel_1y, ds.features)
    p = model.predict_proba(live)[:, 1]
    assert list(live.index) == sorted(sim_panel_1y) and ((p >= 0) & (p <= 1)).all()


def test_micro_features_are_point_in_time(sim_panel_1y) -> None:  # noqa: ANN001
    bars = sim_panel_1y["BTC/USDT"].iloc[:1500]
    full = micro_features(bars)
    cut = micro_features(bars.iloc[:1000])
    pd.testing.assert_frame_equal(full.iloc[:1000], cut, check_exact=False, rtol=1e-9)
    assert full["mf_vpin_cdf"].dropna().between(0, 1).all() and full["mf_taker_imb"].abs().max() <= 1
    no_flow = micro_features(bars.drop(columns=["taker_buy_volume"]))  # BVC fallback still yields features
    assert no_flow["mf_vpin"].notna().sum() > 500


def test_quantile_binner_keeps_order_and_nan() -> None:
    X = np.array([[1.0, np.nan], [5.0, 2.0], [3.0, np.inf], [2.0, 1.0]])
    b = QuantileBinner(n_bins=4).fit(X)
    out = b.transform(X)
    assert np.isnan(out[0, 1]) and np.isnan(out[2, 1])
    assert list(np.argsort(out[:, 0])) == list(np.argsort(X[:, 0]))
    with pytest.raises(ValueError, match="features"):
        b.transform(X[:, :1])


def test_training_refuses_degenerate_data(sim_panel_1y) -> None:  # noqa: ANN001
    strategy = load_strategy("quantum_momentum")
    small = {s: f.iloc[:900] for s, f in sim_panel_1y.items()}
    with pytest.raises(ValueError, match="events|dataset"):
        ds = build_dataset(strategy, small, BarrierSpec(2.0, 1.0, 48, 100))
        train_meta_model(ds)


def test_latest_features_resample_to_the_model_timeframe(sim_panel_1y) -> None:  # noqa: ANN001
    from engine.features.panel import resample_panel
    from engine.ml.dataset import MICRO_FEATURES

    strategy = load_strategy("quantum_momentum")
    panel = {s: f.iloc[-3000:] for s, f in sim_panel_1y.items()}
    cols = MICRO_FEATURES + ["side", "qm_score"]
    got = latest_features(strategy, panel, cols, timeframe="4h")
    want = latest_features(strategy, resample_panel(panel, "4h"), cols)
    pd.testing.assert_frame_equal(got, want)
    assert got["mf_ret_4"].notna().all() and list(got.columns) == cols
    same = latest_features(strategy, panel, cols, timeframe="1h")  # already at the model's bars: untouched
    assert not same.equals(got)
