"""Feed adapters on recorded HTTP JSON and files; CsvSource on CSV files the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data.csv_source import CsvFormatError, CsvSource, parse_symbol
from engine.data.feeds import FeedFormatError, FileFeed, HttpJsonFeed, make_feed
from engine.data.ingest import ingest_candles, ingest_feed, ingest_funding, ingest_trades
from engine.store.market_repo import list_quarantine

REC = Path(__file__).resolve().parent / "recordings"
DAY = 86_400_000
T0 = 1_704_067_200_000


def _served(name: str):
    """A fetch that serves one recorded document for its URL and refuses anything else."""
    urls = {"https://api.alternative.me/fng/?limit=4": "fear_greed.json",
            "https://api.stlouisfed.org/fred/series/observations?series_id=DGS10&file_type=json":
                "fred_DGS10.json",
            "https://api.blockchain.info/charts/n-transactions?format=json": "blockchain_n_transactions.json"}
    seen = []

    def fetch(url: str) -> bytes:
        if url not in urls or urls[url] != name:
            raise LookupError(f"no recording for {url}")
        seen.append(url)
        return (REC / name).read_bytes()

    fetch.seen = seen  # type: ignore[attr-defined]
    return fetch


def test_fear_greed_http_feed_parses_and_quarantines_unreadable_value(store):
    feed = HttpJsonFeed("sentiment", "https://api.alternative.me/fng/?limit=4", "fear_greed", "fear_greed",
                        fetch=_served("fear_greed.json"))
    points = feed.fetch_feed()
    assert [(p.ts, p.value) for p in points if p.value == p.value] == [
        (1703980800000, 73.0), (1704153600000, 65.0), (1704240000000, 71.0)]
    rep = ingest_feed(store, feed)
    assert rep.new_after_end == 3 and rep.quarantined == 1
    assert "value is not a finite number" in list_quarantine(store, "feed:sentiment")[0]["reason"]
    assert ingest_feed(store, feed).inserted == 0


def test_fred_macro_feed_is_published_a_day_after_observation(store):
    feed = make_feed("macro", "http:fred:DGS10:https://api.stlouisfed.org/fred/series/observations?series_id=DGS10"
                     "&file_type=json", fetch=_served("fred_DGS10.json"))
    points = feed.fetch_feed(since=T0)
    assert [p.value for p in points] == [3.95, 3.91, 3.99, 4.05]  # "." (a holiday) is FRED's "no observation"
    assert all(p.published_ts == p.ts + DAY for p in points)
    assert ingest_feed(store, feed).new_after_end == 4


def test_blockchain_onchain_feed_and_errors_name_the_problem(tmp_path):
    feed = HttpJsonFeed("onchain", "https://api.blockchain.info/charts/n-transactions?format=json",
                        "blockchain_chart", "btc_n_transactions", fetch=_served("blockchain_n_transactions.json"))
    assert [p.value for p in feed.fetch_feed(until=T0 + 2 * DAY)] == [367120.0, 657752.0]
    with pytest.raises(FeedFormatError, match="fear_greed: expected an object with a 'data' list"):
        HttpJsonFeed("sentiment", "u", "fear_greed", "fg", fetch=lambda url: b'{"values": []}').fetch_feed()
    with pytest.raises(ValueError, match="feed: must be one of macro, sentiment, onchain"):
        HttpJsonFeed("weather", "u", "fred", "x")
    with pytest.raises(ValueError, match="parser: must be one of"):
        HttpJsonFeed("macro", "u", "nosuch", "x")


def test_file_feed_csv_and_json(tmp_path, store):
    path = tmp_path / "flows.csv"
    path.write_text("ts,series,value,published_ts\n"
                    f"{T0},BTC_exchange_netflow,-120.5,{T0 + 3_600_000}\n"
                    f"{T0 + DAY},BTC_exchange_netflow,80.25,\n")
    feed = FileFeed("onchain", path)
    points = feed.fetch_feed()
    assert [(p.value, p.published_ts - p.ts) for p in points] == [(-120.5, 3_600_000), (80.25, 0)]
    jpath = tmp_path / "macro.json"
    jpath.write_text(json.dumps([{"ts": T0, "series": "risk_index", "value": 0.5}]))
    assert make_feed("macro", f"file:{jpath}").fetch_feed()[0].value == 0.5
    assert ingest_feed(store, feed).new_after_end == 2


def test_sim_feeds_are_the_simulated_default(store):
    pytest.importorskip("engine.data.simulator")
    from engine.config import Settings

    for name in ("macro", "sentiment", "onchain"):
        feed = make_feed(name, "sim", Settings())
        rep = ingest_feed(store, feed, since_ms=feed_since(), until_ms=None)
        assert rep.ok and rep.new_after_end > 0 and rep.quarantined == 0, rep.summary()


def feed_since() -> int:
    """Five days before now, for the simulated feeds."""
    from engine.clock import now_ms

    return now_ms() - 5 * DAY


def test_symbol_names_from_file_names():
    assert parse_symbol("BTCUSDT") == "BTC/USDT"
    assert parse_symbol("XRPUSDT-PERP") == "XRP/USDT:USDT"
    assert parse_symbol("eth-btc") == "ETH/BTC"
    assert parse_symbol("BTC-PERP") == "BTC/USD:USD"
    with pytest.raises(CsvFormatError, match="cannot split"):
        parse_symbol("WHATEVER")


def test_csv_source_reads_all_kinds_and_bad_rows_reach_quarantine(tmp_path, store):
    (tmp_path / "ohlcv").mkdir()
    (tmp_path / "trades").mkdir()
    (tmp_path / "funding").mkdir()
    (tmp_path / "ohlcv" / "venue_ETHUSDT_1m_20240101.csv").write_text(
        "timestamp,open,high,low,close,volume\n"
        f"{T0},2000,2010,1990,2005,3\n{T0 + 60_000},2005,2011,2001,2008,x\n{T0 + 120_000},2008,2012,2004,2009,4\n")
    (tmp_path / "trades" / "venue_ETHUSDT_trades_20240101.csv").write_text(
        "timestamp,id,side,price,amount\n"
        f"{T0 + 5},1,buy,2000.5,0.1\n{T0 + 9},2,SELL,2000.4,0.2\n{T0 + 12},3,maybe,2000.4,0.2\n")
    (tmp_path / "funding" / "venue_ETHUSDT_funding_8h.csv").write_text(
        f"timestamp,funding_rate\n{T0},0.0001\n{T0 + 28_800_000},0.9\n")
    src = CsvSource(tmp_path, now_ms=T0 + DAY)
    assert ("ohlcv", "ETH/USDT", "1m") in src.series() and ("funding", "ETH/USDT:USDT", None) in src.series()
    rep = ingest_candles(store, src, "ETH/USDT", "1m", T0)
    assert rep.new_after_end == 2 and rep.quarantined == 1
    assert "volume is missing or not a number: 'x'" in list_quarantine(store, "csv:ETH/USDT:1m")[0]["reason"]
    trades = ingest_trades(store, src, "ETH/USDT", T0)
    assert trades.new_after_end == 2 and trades.quarantined == 1
    funding = ingest_funding(store, src, "ETH/USDT:USDT", T0)
    assert funding.new_after_end == 1 and funding.quarantined == 1
    with pytest.raises(KeyError, match="no ohlcv file for BTC/USDT"):
        src.fetch_ohlcv("BTC/USDT", "1m")


def test_csv_source_rejects_unknown_layouts(tmp_path):
    bad = tmp_path / "BTCUSDT_1m.csv"
    bad.write_text("when,alpha,beta\n1,2,3\n")
    with pytest.raises(CsvFormatError, match="match none of the layouts"):
        CsvSource(bad)
    nots = tmp_path / "x" / "prices.csv"
    nots.parent.mkdir()
    nots.write_text("timestamp,open,high,low,close,volume\n")
    with pytest.raises(CsvFormatError, match="names no symbol; pass one with --symbols"):
        CsvSource(nots)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CsvSource(tmp_path / "nope")
