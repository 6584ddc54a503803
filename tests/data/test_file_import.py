"""Importing a user's own files: any name, delimiter, BOM, column order and alias, timestamp unit; every row stored
or quarantined with its reason (counts add up); trades and funding from files; Parquet in and out."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.cli import cli_in

HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 UTC


@pytest.fixture
def run(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    return cli_in(tmp_path, monkeypatch)


def bars(n: int, step: int = HOUR, seed: int = 0) -> pd.DataFrame:
    """n OHLCV bars (a random walk) with epoch-ms open times."""
    rng = np.random.default_rng(seed)
    close = 40_000 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    return pd.DataFrame({"ts": T0 + step * np.arange(n), "open": open_.round(2), "high": high.round(2),
                         "low": low.round(2), "close": close.round(2), "volume": rng.uniform(1, 9, n).round(4)})


def stored(tmp_path: Path, symbol: str = "BTC/USD") -> list[tuple]:
    con = sqlite3.connect(tmp_path / "state.db")
    return con.execute("SELECT ts, open, high, low, close, volume FROM candles WHERE symbol = ? ORDER BY ts",
                       (symbol,)).fetchall()


def _expect(frame: pd.DataFrame) -> list[tuple]:
    return [(int(r.ts), r.open, r.high, r.low, r.close, r.volume) for r in frame.itertuples()]


VARIANTS = {
    "seconds": lambda f: f.assign(ts=f.ts // 1000).rename(columns={"ts": "timestamp"}).to_csv(index=False),
    "iso8601": lambda f: f.assign(ts=pd.to_datetime(f.ts, unit="ms", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    .rename(columns={"ts": "date"}).to_csv(index=False),
    "microseconds": lambda f: f.assign(ts=f.ts * 1000).rename(columns={"ts": "time"}).to_csv(index=False),
    "bom": lambda f: "\ufeff" + f.rename(columns={"ts": "timestamp"}).to_csv(index=False),
    "semicolon_decimal_comma": lambda f: f.rename(columns={"ts": "timestamp"}).to_csv(index=False, sep=";",
                                                                                       decimal=","),
    "reordered_aliases": lambda f: f.rename(columns={"ts": "open_time", "open": "Open", "high": "High",
                                                     "low": "Low", "close": "Close", "volume": "vol"})
    [["vol", "Close", "open_time", "Low", "Open", "High"]].to_csv(index=False),
    "newest_first_tabs": lambda f: f.iloc[::-1].rename(columns={"ts": "timestamp"}).to_csv(index=False, sep="\t"),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_downloaded_file_imports_fully_whatever_its_name_and_layout(run, tmp_path, variant) -> None:  # noqa: ANN001
    """`data pull --source csv:FILE --symbols BTC/USD` names the series; every row is stored, the unit reported."""
    frame = bars(48)
    path = tmp_path / "download (3).csv"
    path.write_text(VARIANTS[variant](frame), encoding="utf-8")
    out = run("data", "pull", "--source", f"csv:{path}", "--symbols", "BTC/USD")
    assert out.exit_code == 0, out.output
    assert stored(tmp_path) == _expect(frame)
    assert "48 rows read" in out.output and "0 quarantined" in out.output
    unit = {"seconds": "s", "iso8601": "iso8601", "microseconds": "us"}.get(variant, "ms")
    assert f"timestamps {unit}" in out.output and "ohlcv BTC/USD 1h" in out.output


def test_every_row_is_stored_or_quarantined_and_the_counts_add_up(run, tmp_path) -> None:  # noqa: ANN001
    """Seconds rows in a ms file, negative timestamps, bad prices and duplicates: quarantined with reasons, none lost."""
    frame = bars(30)
    lines = ["timestamp,open,high,low,close,volume"] + [f"{r.ts},{r.open},{r.high},{r.low},{r.close},{r.volume}"
                                                       for r in frame.itertuples()]
    lines += [f"{(T0 + 40 * HOUR) // 1000},1,2,0.5,1,1",  # a row in seconds inside a ms file
              "-3600000,1,2,0.5,1,1",  # negative
              f"{T0 + 41 * HOUR},1,0.5,2,1,1",  # high < low
              lines[5],  # an exact duplicate
              f"{frame.ts[6]},1,2,0.5,1.5,1"]  # same timestamp, other values
    path = tmp_path / "mine.csv"
    path.write_text("\n".join(lines) + "\n")
    out = run("data", "pull", "--source", f"csv:{path}", "--symbols", "BTC/USD")
    assert out.exit_code == 0, out.output
    assert "35 rows read" in out.output
    assert "total: 35 rows read = 30 inserted + 0 changed + 0 already stored + 1 duplicates + 4 quarantined" \
        in out.output
    assert len(stored(tmp_path)) == 30
    q = run("data", "quarantine", "--limit", "10").output
    for reason in ("looks like epoch s", "negative timestamp", "high < low", "different values"):
        assert reason in q, reason
    again = run("data", "pull", "--source", f"csv:{path}", "--symbols", "BTC/USD")
    assert "nothing new stored: 31 rows were already stored" in again.output


def test_a_file_older_than_30_days_imports_whole_and_since_still_filters(run, tmp_path) -> None:  # noqa: ANN001
    frame = bars(100)
    path = tmp_path / "old.csv"
    frame.rename(columns={"ts": "timestamp"}).to_csv(path, index=False)
    out = run("data", "pull", "--source", f"csv:{path}", "--symbols", "BTC/USD", "--since", "2024-01-03")
    assert "48 outside the range" in out.output and len(stored(tmp_path)) == 52


def test_trades_and_funding_import_from_files(run, tmp_path) -> None:  # noqa: ANN001
    folder = tmp_path / "dl"
    folder.mkdir()
    n = 500
    rng = np.random.default_rng(2)
    pd.DataFrame({"id": np.arange(n), "price": 40_000 + rng.normal(0, 10, n).round(2),
                  "qty": rng.uniform(0.001, 1, n).round(5), "time": T0 // 1000 * 1000 + 7_000 * np.arange(n),
                  "is_buyer_maker": rng.integers(0, 2, n).astype(bool)}).to_csv(folder / "BTCUSDT-trades.csv",
                                                                              index=False)
    pd.DataFrame({"fundingTime": T0 + 8 * HOUR * np.arange(30), "fundingRate": rng.normal(1e-4, 5e-5, 30)}) \
        .rename(columns={"fundingTime": "time", "fundingRate": "funding_rate"}) \
        .to_csv(folder / "BTCUSDT-PERP_funding.csv", index=False)
    out = run("data", "pull", "--source", f"csv:{folder}")
    assert out.exit_code == 0, out.output
    con = sqlite3.connect(tmp_path / "state.db")
    assert con.execute("SELECT COUNT(*) FROM trades WHERE symbol = 'BTC/USDT'").fetchone()[0] == n
    assert con.execute("SELECT COUNT(*) FROM funding_rates WHERE symbol = 'BTC/USDT:USDT'").fetchone()[0] == 30
    sides = {r[0] for r in con.execute("SELECT DISTINCT side FROM trades")}
    assert sides <= {"buy", "sell", 1, -1} and len(sides) == 2


def test_parquet_out_and_in_round_trips_exactly(run, tmp_path) -> None:  # noqa: ANN001
    frame = bars(72)
    path = tmp_path / "BTCUSD_1h.csv"
    frame.rename(columns={"ts": "timestamp"}).to_csv(path, index=False)
    assert run("data", "pull", "--source", f"csv:{path}", "--symbols", "BTC/USD").exit_code == 0
    pq_path = tmp_path / "out" / "btc.parquet"
    exp = run("data", "export", "--exchange", "csv", "--symbol", "BTC/USD", "--timeframe", "1h", "--format",
              "parquet", "--out", str(pq_path))
    assert exp.exit_code == 0, exp.output
    assert pd.read_parquet(pq_path)["timestamp"].tolist() == frame["ts"].tolist()
    (tmp_path / "state.db").unlink()
    back = run("data", "pull", "--source", f"csv:{pq_path}", "--symbols", "BTC/USD")
    assert back.exit_code == 0, back.output and "parquet" in back.output
    assert stored(tmp_path) == _expect(frame)


def test_bad_files_fail_with_one_line(run, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "prices.csv"
    frame = bars(10)
    frame.rename(columns={"ts": "timestamp"}).to_csv(path, index=False)
    out = run("data", "pull", "--source", f"csv:{path}")
    assert out.exit_code == 2 and "names no symbol; pass one with --symbols" in out.output
    assert "Traceback" not in out.output
    wrong_tf = run("data", "pull", "--source", f"csv:{path}", "--symbols", "BTC/USD", "--timeframe", "1m")
    assert wrong_tf.exit_code == 2 and "holds 1h bars" in wrong_tf.output


def test_a_headerless_exchange_dump_reads_as_binance_klines(run, tmp_path) -> None:  # noqa: ANN001
    """Binance's kline files have no header and 12 columns: the first six are read as time, OHLC and volume."""
    frame = bars(24)
    lines = [f"{r.ts},{r.open},{r.high},{r.low},{r.close},{r.volume},{r.ts + HOUR - 1},1.0,10,0.5,0.5,0"
             for r in frame.itertuples()]
    path = tmp_path / "BTCUSDT-1h-2024-01.csv"
    path.write_text("\n".join(lines) + "\n")
    out = run("data", "pull", "--source", f"csv:{path}")
    assert out.exit_code == 0, out.output
    assert "(no header)" in out.output and "24 rows read" in out.output
    assert stored(tmp_path, "BTC/USDT") == _expect(frame)
