"""Point-in-time property for every feature: computed on the full history or on a history truncated at bar k, the
values up to bar k are identical (no value depends on later bars)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.features import alt_data, carry, compression, fracdiff, microstructure, returns, volatility
from engine.features.builder import FeatureSpec, build_features
from engine.strategy.registry import load_strategy
from tests.features.synth import make_panel, truncate_panel

CUTS = (400, 777, 1201)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_panel(1500, seed=3)["BTC/USDT"]


def _assert_prefix_equal(full: pd.DataFrame | pd.Series, part: pd.DataFrame | pd.Series, cut: int) -> None:
    assert len(part) == cut
    head = full.iloc[:cut]
    if isinstance(full, pd.Series):
        pd.testing.assert_series_equal(head, part, check_exact=False, rtol=1e-10, atol=1e-14, check_names=False)
    else:
        pd.testing.assert_frame_equal(head, part, check_exact=False, rtol=1e-10, atol=1e-14)


FEATURES = {
    "returns": lambda f: returns.returns_features(f["close"], (1, 4, 24)),
    "zscores": lambda f: returns.zscore_features(f["close"], (24, 96)),
    "momentum": lambda f: returns.momentum_features(f["close"], (24, 96, 336)),
    "vol_cc": lambda f: volatility.close_to_close(f["close"], 24),
    "vol_parkinson": lambda f: volatility.parkinson(f, 24),
    "vol_gk": lambda f: volatility.garman_klass(f, 24),
    "vol_yz": lambda f: volatility.yang_zhang(f, 24),
    "vol_ewm": lambda f: volatility.ewm_volatility(f["close"], 50),
    "fracdiff": lambda f: fracdiff.frac_diff_ffd(np.log(f["close"]), 0.4, 1e-4, 300),
    "funding": lambda f: carry.funding_features(f, 30),
    "basis": lambda f: carry.basis_features(f, 48),
    "alt_data": lambda f: alt_data.alt_data_features(f, ["risk_index", "fear_greed", "netflow"], 10),
    "amihud": lambda f: microstructure.amihud(f, 24),
    "builder": lambda f: build_features(f, FeatureSpec()),
}


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_feature_is_point_in_time(name: str, frame: pd.DataFrame) -> None:
    fn = FEATURES[name]
    full = fn(frame)
    assert full.iloc[-200:].notna().any().all() if isinstance(full, pd.DataFrame) else full.iloc[-200:].notna().any()
    for cut in CUTS:
        _assert_prefix_equal(full, fn(frame.iloc[:cut]), cut)


def test_cross_sectional_rank_is_point_in_time() -> None:
    panel = make_panel(600, seed=4)
    close = pd.DataFrame({s: f["close"] for s, f in panel.items()})
    mom = returns.risk_adjusted_momentum(close, 24)
    full = returns.cross_sectional_rank(mom)
    for cut in (100, 333):
        _assert_prefix_equal(full, returns.cross_sectional_rank(returns.risk_adjusted_momentum(close.iloc[:cut], 24)),
                             cut)


def _trades(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(frame) * 20
    start = frame.index[0].value // 1_000_000
    span = (frame.index[-1].value // 1_000_000) + 3_600_000 - start
    ts = np.sort(rng.integers(start, start + span, n))
    return pd.DataFrame({"ts": ts, "price": 100.0, "amount": rng.lognormal(0, 1, n),
                         "side": np.where(rng.random(n) < 0.5, 1, -1)})


def _book(frame: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = frame.index[0].value // 1_000_000
    ts = start + np.arange(len(frame) * 4) * 900_000 + rng.integers(0, 1000, len(frame) * 4)
    return pd.DataFrame({"ts": ts, "spread_bps": rng.uniform(1, 5, len(ts)), "depth_bid": rng.uniform(1e5, 2e5, len(ts)),
                         "depth_ask": rng.uniform(1e5, 2e5, len(ts))})


@pytest.mark.parametrize("kind", ["ofi", "vpin", "book"])
def test_trade_and_book_features_are_point_in_time(kind: str, frame: pd.DataFrame) -> None:
    small = frame.iloc[:500]
    trades, book = _trades(small), _book(small)

    def compute(index: pd.DatetimeIndex, cut_ms: int | None) -> pd.DataFrame | pd.Series:
        tr = trades if cut_ms is None else trades[trades["ts"] < cut_ms]
        bk = book if cut_ms is None else book[book["ts"] < cut_ms]
        if kind == "ofi":
            return microstructure.order_flow_imbalance(tr, index, "1h", 6)
        if kind == "vpin":
            return microstructure.vpin_feature(tr, index, "1h", bucket_volume=15.0, window=10)
        return microstructure.book_features(bk, index, "1h", 6)

    full = compute(small.index, None)
    assert np.isfinite(np.asarray(full, dtype="float64")).any()
    for cut in (120, 301):
        close_ms = small.index[cut - 1].value // 1_000_000 + 3_600_000  # data known at bar cut-1's close
        _assert_prefix_equal(full, compute(small.index[:cut], close_ms), cut)


def test_compression_fitted_on_window_is_point_in_time(frame: pd.DataFrame) -> None:
    feats = build_features(frame).iloc[:, :12].dropna()
    fit_until = feats.index[500]
    full = compression.pca_features(feats, 3, fit_until=fit_until)
    part = compression.pca_features(feats.iloc[:800], 3, fit_until=fit_until)
    _assert_prefix_equal(full, part, 800)
    cl_full, _ = compression.clustered_features(feats, n_clusters=4, fit_until=fit_until)
    cl_part, _ = compression.clustered_features(feats.iloc[:800], n_clusters=4, fit_until=fit_until)
    _assert_prefix_equal(cl_full, cl_part, 800)


@pytest.mark.parametrize("name", ["quantum_momentum", "macro_trend"])
def test_strategy_signals_and_features_are_point_in_time(name: str) -> None:
    panel = make_panel(1400, seed=5)
    strat = load_strategy(name, {"slow": 168, "regime_window": 300} if name == "quantum_momentum" else {"slow": 40})
    full = strat.signals(panel)
    feats = strat.features(panel)
    for cut in (900, 1177):
        part = strat.signals(truncate_panel(panel, cut))
        pd.testing.assert_frame_equal(full.iloc[:cut], part)
        part_feats = strat.features(truncate_panel(panel, cut))
        for symbol in panel:
            _assert_prefix_equal(feats[symbol], part_feats[symbol], cut)
