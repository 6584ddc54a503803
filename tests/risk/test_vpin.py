"""VPIN: live (bucket by bucket) equals batch exactly, both match the textbook loop, BVC and toxicity response."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.risk.vpin import (VpinTracker, buckets_frame, bulk_volume_classification, vpin_batch, vpin_from_bars,
                              vpin_from_volume)
from tests.support.vpin_reference import reference_vpin

SHARED_TRADES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "trades"


def _trades(n: int = 20_000, seed: int = 1, toxic_from: int | None = None) -> pd.DataFrame:
    """Synthetic tape: lognormal sizes, balanced sides, optionally one-sided (toxic) flow from `toxic_from` on."""
    rng = np.random.default_rng(seed)
    p_buy = np.full(n, 0.5)
    if toxic_from is not None:
        p_buy[toxic_from:] = 0.1
    side = np.where(rng.random(n) < p_buy, "buy", "sell")
    ts = 1_700_000_000_000 + np.cumsum(rng.integers(0, 400, n))
    return pd.DataFrame({"timestamp": ts, "amount": rng.lognormal(-1.0, 1.2, n), "side": side})


def test_live_incremental_equals_batch_exactly() -> None:
    trades = _trades()
    V, w, cw = 25.0, 20, 100
    batch = vpin_batch(trades, V, w, cw)
    rng = np.random.default_rng(5)
    cuts = np.sort(rng.choice(np.arange(1, len(trades)), 300, replace=False))
    tracker = VpinTracker(V, w, cw)
    live = []
    for chunk in np.split(np.arange(len(trades)), cuts):  # irregular chunk sizes, including single trades
        live += tracker.update(trades.iloc[chunk])
    # a few more updates as ccxt dicts, one trade at a time
    extra = _trades(200, seed=9)
    extra["timestamp"] += int(trades["timestamp"].iloc[-1])
    for rec in extra.to_dict("records"):
        live += tracker.update([rec])
    both = pd.concat([trades, extra], ignore_index=True)
    batch = vpin_batch(both, V, w, cw)
    lf = buckets_frame(live)
    assert len(lf) == len(batch) == tracker.buckets_completed > cw
    for col in ("bucket", "ts", "buy_volume", "sell_volume", "vpin", "cdf"):
        assert np.array_equal(lf[col].to_numpy(), batch[col].to_numpy(), equal_nan=True), col
    assert tracker.vpin == batch["vpin"].iloc[-1] and tracker.cdf == batch["cdf"].iloc[-1]


def test_batch_matches_textbook_reference() -> None:
    trades = _trades(8_000, seed=2)
    ours = vpin_batch(trades, 10.0, 30, 200)
    ref = reference_vpin(trades["amount"].to_numpy(), trades["side"].to_numpy(), 10.0, 30)
    n = min(len(ours), len(ref))
    assert abs(len(ours) - len(ref)) <= 1  # a bucket completing within float rounding of the last trade
    np.testing.assert_allclose(ours["buy_volume"].to_numpy()[:n], ref["buy_volume"].to_numpy()[:n], atol=1e-8)
    np.testing.assert_allclose(ours["vpin"].to_numpy()[:n], ref["vpin"].to_numpy()[:n], atol=1e-9)


def test_one_sided_flow_raises_vpin_and_cdf() -> None:
    trades = _trades(30_000, seed=3, toxic_from=24_000)
    out = vpin_batch(trades, 20.0, 25, 400)
    calm = out[out["ts"] < trades["timestamp"].iloc[22_000]]["vpin"].dropna()
    toxic = out["vpin"].iloc[-10:]
    assert calm.mean() < 0.35 and toxic.min() > 0.6
    first_toxic = int(np.flatnonzero(out["vpin"].to_numpy() > 0.6)[0])
    assert out["cdf"].iloc[first_toxic] == 1.0  # a new high for the window
    assert out["cdf"].dropna().between(0.0, 1.0).all()


def test_large_trade_spans_several_buckets() -> None:
    trades = pd.DataFrame({"timestamp": [1, 2, 3], "amount": [2.5, 10.0, 0.5], "side": ["buy", "sell", "buy"]})
    out = vpin_batch(trades, 4.0, 1, 10)
    # buckets: [2.5 buy + 1.5 sell], [4 sell], [4 sell], [0.5 sell + 0.5 buy ... incomplete]
    assert list(out["buy_volume"]) == [2.5, 0.0, 0.0]
    assert list(out["ts"]) == [2, 2, 2]
    assert out["vpin"].tolist() == pytest.approx([0.25, 1.0, 1.0])


def test_bulk_volume_classification_from_candles() -> None:
    idx = pd.date_range("2024-01-01", periods=400, freq="min", tz="UTC")
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, 400)))
    close[300:] = close[299] * np.exp(np.cumsum(np.full(100, -0.003)))  # a sell-off: buy share falls
    bars = pd.DataFrame({"close": close, "volume": rng.uniform(5, 15, 400)}, index=idx)
    bvc = bulk_volume_classification(bars)
    full = bvc.iloc[51:]
    assert np.allclose(full["buy_volume"] + full["sell_volume"], bars["volume"].iloc[51:])
    assert bvc["buy_volume"].iloc[310:].sum() < 0.2 * bvc["volume"].iloc[310:].sum()
    batch = vpin_from_bars(bars, 30.0, 10, 50)
    live = VpinTracker(30.0, 10, 50)
    got = live.update_bars(bars.iloc[:200]) + live.update_bars(bars.iloc[200:])
    # the tracker carries the sigma window across chunks: chunked classification equals the batch exactly
    assert len(got) == len(batch) and batch["vpin"].iloc[-1] > 0.6
    assert [b.vpin for b in got] == pytest.approx(batch["vpin"].tolist(), nan_ok=True)


def test_bvc_vpin_is_undefined_until_the_sigma_window_is_full() -> None:
    """During the sigma warm-up no bar is classified (NaN, not a balanced 50/50), so no bucket and no VPIN exist."""
    idx = pd.date_range("2024-01-01", periods=120, freq="min", tz="UTC")
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(np.full(120, -0.002)))  # one-way selling from the first bar
    bars = pd.DataFrame({"close": close * np.exp(rng.normal(0, 1e-4, 120)), "volume": 10.0}, index=idx)
    bvc = bulk_volume_classification(bars, sigma_window=50)
    assert bvc["buy_volume"].iloc[:51].isna().all() and bvc["buy_volume"].iloc[51:].notna().all()
    out = vpin_from_bars(bars, 10.0, 5, 20, sigma_window=50)
    assert len(out) and (out["ts"] >= idx[51].value // 1_000_000).all()  # no bucket from warm-up bars
    assert out["vpin"].dropna().min() > 0.9  # the selling reads as toxic, never ~0
    tracker = VpinTracker(10.0, 5, 20)
    tracker.update_bars(bars.iloc[:50])
    assert tracker.buckets_completed == 0 and np.isnan(tracker.vpin)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="bucket_volume"):
        VpinTracker(0.0)
    with pytest.raises(ValueError, match="side"):
        vpin_batch(pd.DataFrame({"timestamp": [1], "amount": [1.0], "side": ["long"]}), 1.0)
    tr = VpinTracker(1.0, 2, 5)
    tr.update([{"timestamp": 10, "amount": 1.0, "side": "buy"}])
    with pytest.raises(ValueError, match="time order"):
        tr.update([{"timestamp": 5, "amount": 1.0, "side": "buy"}])


@pytest.mark.skipif(not SHARED_TRADES.is_dir(), reason="../shared/data not present")
def test_real_trades_match_reference(report) -> None:  # noqa: ANN001
    path = SHARED_TRADES / "binanceusdm_BTCUSDT-PERP_trades_20240808T2354-20240808T2359.csv"
    if not path.exists():
        pytest.skip(f"{path.name} not present")
    trades = pd.read_csv(path)
    V = trades["amount"].sum() / 200
    ours = vpin_batch(trades, V, 20, 100)
    ref = reference_vpin(trades["amount"].to_numpy(), trades["side"].to_numpy(), V, 20)
    n = min(len(ours), len(ref))
    diff = float(np.nanmax(np.abs(ours["vpin"].to_numpy()[:n] - ref["vpin"].to_numpy()[:n])))
    live = VpinTracker(V, 20, 100)
    got = buckets_frame(live.update(trades.iloc[:7000]) + live.update(trades.iloc[7000:]))
    report("VPIN on real BTCUSDT-PERP trades", {"trades": len(trades), "buckets": len(ours),
                                                  "max_abs_diff_vs_reference": diff,
                                                  "last_vpin": float(ours["vpin"].iloc[-1])})
    assert diff < 1e-9
    assert np.array_equal(got["vpin"].to_numpy(), ours["vpin"].to_numpy(), equal_nan=True)


def test_rolling_cdf_equals_the_per_value_definition_bit_for_bit() -> None:
    """The batch CDF (counted per 4096-value chunk, valid counts from the position when no value is NaN) equals the
    definition value by value: the share of the last `cdf_window` values (itself included, NaN skipped) <= it."""
    from engine.risk.vpin import _rolling_cdf

    rng = np.random.default_rng(3)
    for n, w, nan in ((9_000, 500, False), (5_000, 37, False), (4_200, 500, True), (300, 500, False)):
        v = np.round(rng.random(n), 2)  # ties included
        if nan:
            v[rng.choice(n, 40, replace=False)] = np.nan
        want = np.empty(n)
        for i in range(n):
            win = v[max(0, i - w + 1):i + 1]
            want[i] = np.count_nonzero(win <= v[i]) / np.count_nonzero(~np.isnan(win))
        assert np.array_equal(_rolling_cdf(v, w), want), (n, w, nan)
