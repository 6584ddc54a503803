"""Features that exist on the data and none that lie: constant/missing dropped and listed, NaN order flow off the
tape, VPIN buckets robust to a near-empty first month."""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.ml.dataset import build_dataset, micro_features, usable_features
from engine.ml.labels import BarrierSpec
from engine.risk.vpin import volume_in_day_units


def _bars(n: int, freq: str = "h", seed: int = 0, volume: np.ndarray | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    opens = np.concatenate([[100.0], close[:-1]])
    idx = pd.date_range("2014-01-01", periods=n, freq=freq, tz="UTC")
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, close) * 1.002, "low": np.minimum(opens, close)
                         * 0.998, "close": close, "volume": rng.uniform(50, 150, n) if volume is None else volume},
                        index=idx)


class _Gated:
    """Long every bar; one real feature, one neutral macro gate (constant) and one feed stored for a tenth."""

    name = "gated"

    def warmup(self) -> int:
        return 5

    def signals(self, panel: dict) -> pd.DataFrame:
        f = next(iter(panel.values()))
        return pd.DataFrame({s: np.ones(len(f), dtype=np.int8) for s in panel}, index=f.index)

    def features(self, panel: dict) -> dict:
        out = {}
        for s, f in panel.items():
            sparse = pd.Series(np.nan, index=f.index)
            sparse.iloc[-len(f) // 10:] = 1.0 + np.arange(len(f) // 10)
            out[s] = pd.DataFrame({"real": f["close"].pct_change(5), "macro_gate": 0.0, "feed": sparse})
        return out


def test_constant_and_missing_features_are_dropped_and_listed() -> None:
    panel = {"X/USD": _bars(1500)}
    ds = build_dataset(_Gated(), panel, BarrierSpec(max_holding=12, vol_span=20))
    assert "real" in ds.features
    assert ds.dropped_features["macro_gate"] == "constant (0)"
    assert ds.dropped_features["feed"].startswith("missing on 9")  # ~90% missing
    assert "macro_gate" not in ds.X.columns and "feed" not in ds.X.columns
    keep, dropped = usable_features(pd.DataFrame({"a": [1.0, 2.0, np.inf], "b": [np.inf, np.inf, 1.0]}),
                                    min_coverage=0.5)
    assert keep == ["a"] and dropped == {"b": "missing on 67% of events"}


def test_usable_features_on_arrays_decides_like_the_pandas_path() -> None:
    """The all-numeric fast path (arrays, no pandas copies) keeps and drops exactly what the pandas path does (still
    used for frames with other dtypes): +-inf counts as missing, -0.0 equals 0.0, integers and bools count."""
    rng = np.random.default_rng(4)
    n = 200
    frame = pd.DataFrame({
        "real": rng.normal(size=n), "signed_zero": np.where(np.arange(n) % 2 == 0, 0.0, -0.0),
        "inf_mostly": np.where(np.arange(n) < 150, np.inf, 1.0), "nan_some": np.where(np.arange(n) < 30, np.nan, 2.0),
        "nan_some_varied": np.where(np.arange(n) < 30, np.nan, rng.normal(size=n)), "ints": np.arange(n) % 3,
        "bools": np.arange(n) % 2 == 0, "all_nan": np.nan,
        "neg_inf_constant": np.where(np.arange(n) < 10, -np.inf, 5.0),
    })
    fast = usable_features(frame)
    slow = usable_features(frame.astype(object).assign(tag=[f"t{i % 5}" for i in range(n)]))  # the pandas path
    assert fast == (slow[0][:-1], slow[1]) and slow[0][-1] == "tag"
    assert usable_features(pd.DataFrame({"s": ["x"] * 5}))[1] == {"s": "constant (x)"}  # was a format error
    assert fast[0] == ["real", "nan_some_varied", "ints", "bools"]


def test_bars_outside_a_partial_tape_get_nan_order_flow_not_half_the_volume() -> None:
    bars = _bars(1000)
    tape = pd.Series(np.nan, index=bars.index)
    tape.iloc[900:] = bars["volume"].iloc[900:] * 0.7  # a tape covering the last 10% of bars only
    bars["taker_buy_volume"] = tape
    mf = micro_features(bars)
    assert mf["mf_taker_imb"].iloc[:900].isna().all()  # was exactly 0.0 (0.5 x volume) everywhere off the tape
    assert np.allclose(mf["mf_taker_imb"].iloc[900:], 0.4)
    assert mf["mf_taker_imb_3"].iloc[:902].isna().all()
    assert mf["mf_vpin"].iloc[:900].isna().all() and mf["mf_vpin_cdf"].iloc[:900].isna().all()


def test_vpin_bucket_size_survives_a_near_zero_volume_first_month() -> None:
    n = 900  # daily bars, like the 2014 bitstamp file: a first month of almost nothing, then real volume
    vol = np.r_[np.full(30, 1e-9), np.random.default_rng(2).uniform(5e3, 2e4, n - 30)]
    bars = _bars(n, "D", volume=vol)
    units = volume_in_day_units(bars.index.as_unit("ms").asi8, vol, 30)
    assert units.max() <= 5.0 and units.sum() < 2 * n  # about one unit per day: ~n / 0.02 buckets, not 10 GiB
    mf = micro_features(bars)  # the first-30-days estimate asked for ~1e13 buckets here
    assert mf["mf_vpin"].iloc[200:].notna().all()
    assert mf["mf_vpin"].iloc[200:].between(0, 1).all()


def test_bucket_units_are_point_in_time() -> None:
    ts = pd.date_range("2020-01-01", periods=24 * 40, freq="h", tz="UTC").as_unit("ms").asi8
    vol = np.random.default_rng(4).uniform(1, 2, len(ts))
    full = volume_in_day_units(ts, vol, 10)
    cut = volume_in_day_units(ts[:24 * 20 + 5], vol[:24 * 20 + 5], 10)
    assert np.array_equal(full[:len(cut)], cut)
    assert (full[:24] == 0).all()  # no completed day yet: no buckets
