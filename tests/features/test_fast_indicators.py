"""engine.features.fast: every helper equals pandas to 1e-9 (NaN warm-up and gaps included), on both the AOT
extension and numba's JIT; and the shipped strategies give the same signals with them as with pandas' windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.features import fast

TOL = 1e-9


@pytest.fixture(params=["aot", "jit"])
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once on the ahead-of-time extension (when it is built and current) and once on numba's JIT."""
    if request.param == "jit":
        monkeypatch.setenv("QUANTDESK_FAST", "jit")
    fast.reset()
    if request.param == "aot" and fast.implementation() != "aot":
        import shutil

        from engine.backtest import aot

        state = "stale (built from other sources)" if aot.fast_output_path().exists() else "missing"
        if shutil.which("cc"):  # skip only where the extension cannot be built
            pytest.fail(f"{aot.fast_output_path().name} is {state} although a C compiler is available: `make test` "
                        "builds it (or run `python -m engine.backtest.aot`)")
        pytest.skip("no C compiler here: the AOT helpers cannot be built (the JIT ones are still tested)")
    yield request.param
    fast.reset()


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    """Three random-walk price columns with a NaN warm-up, scattered NaN gaps, an inf and a constant stretch."""
    rng = np.random.default_rng(3)
    a = np.exp(np.cumsum(rng.normal(0, 0.01, (4000, 3)), axis=0)) * 30_000.0
    a[rng.random(a.shape) < 0.03] = np.nan
    a[:60, 1] = np.nan
    a[700:820, 2] = 123.25
    a[900, 0] = np.inf
    return pd.DataFrame(a, columns=["BTC", "ETH", "SOL"])


def assert_close(ours: object, ref: pd.DataFrame | pd.Series) -> None:
    """Same NaN and +-inf positions and |ours - ref| <= 1e-9 * max(1, |ref|) elsewhere."""
    o, r = np.asarray(ours, dtype="float64"), ref.to_numpy(dtype="float64")
    assert o.shape == r.shape
    assert np.array_equal(np.isnan(o), np.isnan(r)), "NaN positions differ"
    assert np.array_equal(o[np.isinf(r)], r[np.isinf(r)]) and np.isinf(o).sum() == np.isinf(r).sum(), "inf differs"
    ok = np.isfinite(r)
    assert np.all(np.abs(o[ok] - r[ok]) <= TOL * np.maximum(1.0, np.abs(r[ok])))


@pytest.mark.parametrize("window,min_periods", [(1, None), (5, 1), (20, None), (72, 36), (300, 150)])
def test_rolling_windows_equal_pandas(impl: str, prices: pd.DataFrame, window: int, min_periods: int | None) -> None:
    """rolling sum / mean / var / std (ddof 1 and 0) and z-score, frame in -> frame out."""
    roll = prices.rolling(window, min_periods=min_periods)
    assert_close(fast.rolling_sum(prices, window, min_periods), roll.sum())
    assert_close(fast.rolling_mean(prices, window, min_periods), roll.mean())
    assert_close(fast.rolling_var(prices, window, min_periods), roll.var())
    assert_close(fast.rolling_var(prices, window, min_periods, ddof=0), roll.var(ddof=0))
    assert_close(fast.rolling_std(prices, window, min_periods), roll.std())
    z = fast.zscore(prices, window, min_periods)
    assert isinstance(z, pd.DataFrame) and z.columns.equals(prices.columns)
    assert_close(z, (prices - roll.mean()) / roll.std())


@pytest.fixture(scope="module")
def plain_prices() -> np.ndarray:
    """Four positive price columns without NaN (the columns rolling sums run two lanes at a time), with a constant
    stretch and a column of small values whose windows cancel (the sign correction)."""
    rng = np.random.default_rng(7)
    a = np.exp(np.cumsum(rng.normal(0, 0.01, (5000, 4)), axis=0)) * 30_000.0
    a[100:180, 1] = 123.25
    a[:, 3] = np.abs(rng.normal(0, 1e-12, 5000)) + np.where(np.arange(5000) % 500 < 3, 1e6, 0.0)
    return a


@pytest.mark.parametrize("windows,min_periods", [((20, 100), None), ((5, 72, 300), 2), ((1, 20), None),
                                                 ((50, 6000), 10)])
def test_rolling_means_equal_pandas_bit_for_bit(impl: str, plain_prices: np.ndarray, windows: tuple,
                                                min_periods: int | None) -> None:
    """Several windows in one pass (lanes run in pairs, an odd one alone, a window longer than the data) give
    exactly pandas' values, as one window at a time does; on plain columns and on columns with NaN gaps."""
    gappy = plain_prices.copy()
    gappy[::37, 0] = np.nan
    gappy[:, 2] = -gappy[:, 2]  # negative values: the one-lane path
    for data in (plain_prices, gappy, plain_prices[:, :1], plain_prices[:, 0]):
        frame = pd.DataFrame(data)
        means = fast.rolling_means(data, windows, min_periods)
        assert len(means) == len(windows)
        for window, got in zip(windows, means):
            want = frame.rolling(window, min_periods=min_periods).mean().to_numpy().reshape(np.shape(data))
            assert np.array_equal(got, want, equal_nan=True), (window, np.shape(data))
            assert np.array_equal(fast.rolling_mean(data, window, min_periods), want, equal_nan=True)
            total = frame.rolling(window, min_periods=min_periods).sum().to_numpy().reshape(np.shape(data))
            assert np.array_equal(fast.rolling_sum(data, window, min_periods), total, equal_nan=True)


def test_rolling_means_keep_the_input_kind(plain_prices: np.ndarray) -> None:
    """A DataFrame in gives DataFrames with its index and columns; a bad window list is one clear error."""
    frame = pd.DataFrame(plain_prices, columns=list("ABCD"), index=pd.RangeIndex(5000, 10000))
    fast_ma, slow_ma = fast.rolling_means(frame, [3, 9])
    assert isinstance(slow_ma, pd.DataFrame) and slow_ma.columns.equals(frame.columns)
    assert slow_ma.index.equals(frame.index)
    for bad, text in [(5, "sequence"), ([], "sequence"), ([3, 0], "window")]:
        with pytest.raises(ValueError, match=text):
            fast.rolling_means(frame, bad)  # type: ignore[arg-type]


def test_log_return_std_and_one_dimensional_input(impl: str, prices: pd.DataFrame) -> None:
    """Small values (log returns) and a 1-D array / Series in: same shape out."""
    r = np.log(prices["ETH"]).diff()
    out = fast.rolling_std(r.to_numpy(), 72, 36)
    assert out.ndim == 1
    assert_close(out, r.rolling(72, min_periods=36).std())
    s = fast.rolling_mean(r, 24)
    assert isinstance(s, pd.Series) and s.name == "ETH" and s.index.equals(r.index)
    assert_close(s, r.rolling(24).mean())


@pytest.mark.parametrize("kwargs", [{"span": 12, "min_periods": 12}, {"alpha": 1 / 30, "min_periods": 30},
                                    {"span": 3}, {"com": 0.5, "min_periods": 5}])
def test_ewm_mean_equals_pandas(impl: str, prices: pd.DataFrame, kwargs: dict) -> None:
    """adjust=True EWM with NaN gaps ageing the weights."""
    assert_close(fast.ewm_mean(prices, **kwargs), prices.ewm(**kwargs).mean())


def test_rank_across_symbols_equals_pandas(impl: str, prices: pd.DataFrame) -> None:
    """Average ranks per row with ties and NaN (pct too)."""
    tied = prices.round(-3)
    assert_close(fast.rank_across(tied), tied.rank(axis=1))
    assert_close(fast.rank_across(tied, pct=True), tied.rank(axis=1, pct=True))


def test_crossings_equal_the_pandas_expression(impl: str, prices: pd.DataFrame) -> None:
    """crossed_above / crossed_below are (a > b) & (a.shift() <= b.shift()) and the mirror; NaN never crosses."""
    f, s = prices.rolling(10).mean(), prices.rolling(40).mean()
    up = fast.crossed_above(f, s)
    assert up.dtypes.eq(bool).all()
    assert np.array_equal(up.to_numpy(), ((f > s) & (f.shift() <= s.shift())).to_numpy())
    down = fast.crossed_below(f.to_numpy(), s.to_numpy())
    assert np.array_equal(down, ((f < s) & (f.shift() >= s.shift())).to_numpy())
    assert fast.crossed_above(prices["BTC"], 30_000.0).sum() > 0


def test_the_extension_runs_without_numba() -> None:
    """A fresh process that uses the AOT helpers never imports numba (the point of compiling them ahead of time)."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from engine.features import fast; fast.rolling_std(np.arange(50.0), 5); "
            "print(fast.implementation(), 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    impl, numba_loaded = out.stdout.split()
    assert impl == "jit" or numba_loaded == "False", out.stdout


def test_bad_arguments_say_what_is_wrong() -> None:
    """A bad window, min_periods or ewm parameter is one clear ValueError."""
    x = np.arange(10.0)
    for call, text in [(lambda: fast.rolling_mean(x, 0), "window"), (lambda: fast.rolling_mean(x, 3, 4), "min_periods"),
                       (lambda: fast.ewm_mean(x), "exactly one"), (lambda: fast.ewm_mean(x, alpha=1.5), "alpha"),
                       (lambda: fast.rolling_std(np.zeros((2, 2, 2)), 2), "1-D or 2-D")]:
        with pytest.raises(ValueError, match=text):
            call()


def test_scan_columns_flags_plain_columns_and_infinities(impl: str) -> None:
    """A column is plain only without NaN, +-inf, negative values and -0.0; any_inf says whether an infinity exists."""
    rng = np.random.default_rng(5)
    base = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, (300, 6)), axis=0))
    base[17, 1] = np.nan
    base[250, 2] = -1.0
    base[3, 3] = -0.0
    base[299, 4] = np.inf
    plain, any_inf = fast._kernels().scan_columns(np.ascontiguousarray(base))
    assert plain.tolist() == [True, False, False, False, False, True] and any_inf
    plain, any_inf = fast._kernels().scan_columns(np.ascontiguousarray(base[:, [0, 5]]))
    assert plain.tolist() == [True, True] and not any_inf
    base[0, 0] = -np.inf
    assert fast._kernels().scan_columns(np.ascontiguousarray(base[:, :1]))[0].tolist() == [False]
