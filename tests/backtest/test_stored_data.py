"""A backtest of stored data does not need its source: imported CSV bars are found (any exchange, --exchange to
choose), and a timeframe that is not stored is built on load from a lower one, exactly as pandas resamples it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from engine.backtest.research import load_research
from engine.config import Settings
from engine.store.candles import upsert_candles
from tests.support.cli import TEST_STRATEGIES, cli_in

MIN = 60_000
T0 = 1_704_067_200_000


def _bars(n: int, step: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    close = 40_000 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    return np.column_stack([T0 + step * np.arange(n), open_, np.maximum(open_, close) * 1.0005,
                            np.minimum(open_, close) * 0.9995, close, rng.uniform(1, 5, n)])


@pytest.fixture
def run(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    return cli_in(tmp_path, monkeypatch, TEST_STRATEGIES)


def test_backtest_after_a_csv_import_uses_the_stored_series(run, tmp_path) -> None:  # noqa: ANN001
    """`backtest ... --symbols BTC/USD --timeframe 1h` after `data pull --source csv:FILE` (no simulator listing)."""
    rows = _bars(800, 3_600_000)
    path = tmp_path / "my_download.csv"
    pd.DataFrame(rows, columns=["timestamp", "open", "high", "low", "close", "volume"]) \
        .astype({"timestamp": "int64"}).to_csv(path, index=False)
    assert run("data", "pull", "--source", f"csv:{path}", "--symbols", "BTC/USD").exit_code == 0
    out = run("backtest", "sma_cross", "--symbols", "BTC/USD", "--timeframe", "1h", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["data"]["exchange"] == "csv" and data["synthetic"] is False and data["n_trials"] == 1
    assert data["metrics"]["bars"] == 800
    text = run("backtest", "sma_cross", "--symbols", "BTC/USD", "--timeframe", "4h").output
    assert "4h bars resampled on load from stored 1h bars" in text and "synthetic" not in text
    missing = run("backtest", "sma_cross", "--symbols", "ETH/USD", "--timeframe", "1h")
    assert missing.exit_code == 2 and "ETH/USD" in missing.output and "Traceback" not in missing.output


def test_several_exchanges_holding_a_symbol_need_exchange(store, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("QUANTDESK_STRATEGY_PATH", str(TEST_STRATEGIES))
    rows = _bars(400, 3_600_000)
    upsert_candles(store, "csv", "BTC/USD", "1h", rows)
    upsert_candles(store, "kraken", "BTC/USD", "1h", rows)
    with pytest.raises(ValueError, match="several exchanges .*--exchange"):
        load_research(Settings(), store, "sma_cross", {}, ["BTC/USD"], "1h", None, "now", None)
    data = load_research(Settings(), store, "sma_cross", {}, ["BTC/USD"], "1h", None, "now", None, exchange="kraken")
    assert data.exchange == "kraken" and len(data.panel["BTC/USD"]) == 400


@pytest.mark.parametrize(("base", "target", "step"), [("1m", "1h", MIN), ("1h", "4h", 60 * MIN),
                                                      ("4h", "1d", 240 * MIN)])
def test_resampling_on_load_equals_pandas_resample(store, monkeypatch, base, target, step) -> None:  # noqa: ANN001
    """Built bars equal pandas' resample of the same stored bars (complete buckets), with the rule stated."""
    monkeypatch.setenv("QUANTDESK_STRATEGY_PATH", str(TEST_STRATEGIES))
    n = {"1m": 60 * 200 + 17, "1h": 4 * 400 + 3, "4h": 6 * 400 + 5}[base]
    rows = _bars(n, step)
    rows = rows[7:]  # start mid-bucket: the ragged first bucket must be dropped, not half-built
    upsert_candles(store, "csv", "BTC/USD", base, rows)
    data = load_research(Settings(), store, "sma_cross", {}, ["BTC/USD"], target, None, "now", None)
    got = data.panel["BTC/USD"][["open", "high", "low", "close", "volume"]]
    frame = pd.DataFrame(rows[:, 1:], columns=["open", "high", "low", "close", "volume"],
                         index=pd.to_datetime(rows[:, 0].astype("int64"), unit="ms", utc=True))
    freq = {"1h": "1h", "4h": "4h", "1d": "1D"}[target]
    rule = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    expected = frame.resample(freq, label="left", closed="left").agg(rule)
    counts = frame["close"].resample(freq, label="left", closed="left").count()
    expected = expected[counts == counts.max()]
    expected = expected[(expected.index >= got.index[0]) & (expected.index <= got.index[-1])]
    pd.testing.assert_frame_equal(got, expected, check_names=False, check_freq=False, check_index_type=False)
    assert data.resample_rule and f"from stored {base} bars" in data.resample_rule
    assert data.synthetic is False and got.index[0] == expected.index[0]
