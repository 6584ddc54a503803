"""The real `quantdesk data ...` commands (Typer CliRunner on console.cli.app) against a temp state.db."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.cli import clean_cli_env, quantdesk_app

MIN = 60_000
T0 = 1_704_067_200_000


@pytest.fixture(scope="module")
def app():
    """The CLI app with every command group registered once."""
    return quantdesk_app()


@pytest.fixture
def run(app, tmp_path, monkeypatch):
    """Invoke `quantdesk --state <tmp>/state.db ...` (or another --state) from an empty working directory."""
    clean_cli_env(tmp_path, monkeypatch)
    runner = CliRunner()

    def _run(*args: str, state: Path | None = None):
        result = runner.invoke(app, ["--state", str(state or tmp_path / "state.db"), *args])
        return result

    return _run


def _write_csv(path: Path, header: str, rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        fh.write(header + "\n")
        csv.writer(fh).writerows(rows)
    return path


def _bars(n: int, start: int = T0) -> list[list]:
    return [[start + i * MIN, 100.0 + i, 101.5 + i, 99.25 + i, 100.5 + i, 3.0 + i / 10] for i in range(n)]


def test_csv_pull_quarantines_bad_rows_status_and_export_round_trip(run, tmp_path):
    rows = _bars(30)
    rows.insert(10, [T0 + 99 * MIN + 5, 1, 2, 0.5, 1, 1])  # misaligned timestamp
    rows.insert(20, [T0 + 40 * MIN, 5, 4, 6, 5, 1])  # high < low
    rows.append(["not-a-time", 1, 2, 0.5, 1, 1])
    folder = tmp_path / "userdata"
    _write_csv(folder / "ohlcv" / "mybroker_BTCUSDT_1m_20240101.csv", "timestamp,open,high,low,close,volume", rows)
    _write_csv(folder / "funding" / "mybroker_BTCUSDT_funding_8h.csv", "timestamp,funding_rate",
               [[T0, 0.0001], [T0 + 8 * 3_600_000, 0.00012]])

    first = run("data", "pull", "--source", f"csv:{folder}", "--timeframe", "1m", "--since", "2024-01-01")
    assert first.exit_code == 0, first.output
    assert "csv:BTC/USDT:1m: rows inserted: 0 in or before the already-stored range (0 gap rows filled), 30 new " \
           "after the previous end, 0 changed" in first.output
    assert "3 quarantined" in first.output

    second = run("data", "pull", "--source", f"csv:{folder}", "--timeframe", "1m", "--since", "2024-01-01")
    assert second.exit_code == 0, second.output
    assert "total: 35 rows read = 0 inserted + 0 changed + 32 already stored + 0 duplicates + 3 quarantined" \
        in second.output
    assert "nothing new stored: 30 rows were already stored" in second.output

    status = run("data", "status")
    assert status.exit_code == 0, status.output
    line = next(ln for ln in status.output.splitlines() if "BTC/USDT" in ln)
    assert "csv" in line and "30" in line and "100.00%" in line and line.rstrip().rstrip("│").split()[-1] == "3"

    quarantine = run("data", "quarantine", "--series", "csv:BTC/USDT:1m")
    assert "high < low" in quarantine.output and "not aligned" in quarantine.output

    out = tmp_path / "export" / "BTCUSDT_1m.csv"
    exported = run("data", "export", "--exchange", "csv", "--symbol", "BTC/USDT", "--timeframe", "1m",
                   "--out", str(out))
    assert exported.exit_code == 0, exported.output and "wrote 30 rows" in exported.output
    with out.open() as fh:
        back = list(csv.reader(fh))
    assert back[0] == ["timestamp", "open", "high", "low", "close", "volume"]
    assert [[int(r[0])] + [float(x) for x in r[1:]] for r in back[1:]] == _bars(30)

    # the exported file is valid input again: a fresh store gets exactly the same rows
    other = tmp_path / "other.db"
    again = run("data", "pull", "--source", f"csv:{out}", "--timeframe", "1m", "--since", "2024-01-01",
                state=other)
    assert again.exit_code == 0, again.output and "30 new after the previous end" in again.output
    q = "SELECT ts, open, high, low, close, volume FROM candles ORDER BY ts"
    a = sqlite3.connect(tmp_path / "state.db").execute(q).fetchall()
    b = sqlite3.connect(other).execute(q).fetchall()
    assert a == b and len(a) == 30


def test_sim_pull_twice_adds_nothing_in_the_stored_range(run, tmp_path):
    pytest.importorskip("engine.data.simulator")
    args = ("data", "pull", "--source", "sim", "--symbols", "BTC/USDT,ETH/USDT", "--timeframe", "1m",
            "--since", "3h")
    first = run(*args)
    assert first.exit_code == 0, first.output
    assert "sim:BTC/USDT:1m" in first.output and "sim:ETH/USDT:1m" in first.output
    second = run(*args)
    assert second.exit_code == 0, second.output
    # wall clock: at most a bar or two closed in between; nothing is inserted inside the stored range
    assert second.output.count("rows inserted: 0 in or before the already-stored range (0 gap rows filled)") == 2
    new = [int(ln.split(" new after the previous end")[0].rsplit(" ", 1)[1])
           for ln in second.output.splitlines() if " new after the previous end" in ln and ln.startswith("sim:")]
    assert len(new) == 2 and all(0 <= n <= 2 for n in new)
    status = run("data", "status")
    assert status.exit_code == 0 and "BTC/USDT" in status.output and "ETH/USDT" in status.output


def test_bad_source_and_bad_config_name_the_problem(run, tmp_path):
    bad = run("data", "pull", "--source", "kraken")
    assert bad.exit_code == 2 and "expected sim, ccxt:<exchange id> or csv:<path>" in bad.output
    unknown = run("data", "pull", "--source", "ccxt:nosuchexchange")
    assert unknown.exit_code == 2 and "nosuchexchange" in unknown.output
    cfg = tmp_path / "broken.toml"
    cfg.write_text('[data]\nsorce = "sim"\n')
    broken = run("--config", str(cfg), "data", "status")
    assert broken.exit_code == 2 and "data.sorce" in broken.output
    assert run("data", "status", state=tmp_path / "missing.db").exit_code == 1


def test_sim_pull_with_trades_funding_book_and_feeds(run, tmp_path):
    pytest.importorskip("engine.data.simulator")
    out = run("data", "pull", "--source", "sim", "--symbols", "BTC/USDT:USDT", "--since", "1d", "--trades",
              "--funding", "--book", "--feeds")
    assert out.exit_code == 0, out.output
    for series in ("sim:BTC/USDT:USDT:1m", "sim:BTC/USDT:USDT:trades", "sim:BTC/USDT:USDT:funding",
                   "sim:BTC/USDT:USDT:book", "feed:macro", "feed:sentiment", "feed:onchain"):
        assert f"{series}: rows inserted" in out.output, series
    status = run("data", "status")
    assert status.exit_code == 0
    kinds = {ln.split("│")[1].strip() for ln in status.output.splitlines() if ln.count("│") >= 7}
    assert {"trades", "book", "funding", "feed"} <= kinds, status.output
    exported = run("data", "export", "--exchange", "sim", "--symbol", "BTC/USDT:USDT", "--kind", "funding",
                   "--out", str(tmp_path / "exports") + "/")
    assert exported.exit_code == 0, exported.output
    files = list((tmp_path / "exports").glob("sim_BTCUSDT-PERP_funding_*.csv"))
    assert len(files) == 1 and files[0].read_text().startswith("timestamp,funding_rate\n")


def test_data_status_lists_each_stream_the_engine_published(run, tmp_path):
    import json
    import time

    from sqlalchemy import insert

    from engine.store import open_store
    from engine.store.schema import engine_status

    assert run("data", "pull", "--symbols", "BTC/USDT", "--since", "1h").exit_code == 0
    streams = [{"stream": "ohlcv:BTC/USDT:1m", "connected": True, "last_message_age_s": 0.4, "msgs_per_min": 61.0,
                "reconnects": 2, "gaps_backfilled": 7, "last_error": ""},
               {"stream": "trades:BTC/USDT", "connected": False, "last_message_age_s": 42.0, "msgs_per_min": 0.0,
                "reconnects": 3, "gaps_backfilled": 120, "last_error": "NetworkError: connection refused"}]
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    with store.begin() as conn:
        conn.execute(insert(engine_status).values(id=1, pid=1, host="h", mode="paper", started_at=0, heartbeat_at=0,
                                                  version="t", info=json.dumps({"streams": streams, "streams_at":
                                                                                int(time.time() * 1000)})))
    store.dispose()
    res = run("data", "status")
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if "BTC/USDT:1m" in ln and "yes" in ln]
    assert lines and "61" in lines[0] and "7" in lines[0]
    down = [ln for ln in res.output.splitlines() if "trades:BTC/USDT" in ln]
    import re

    # the age counts on from when the engine published it (42 s then)
    assert down and "NO" in down[0] and re.search(r"4[2-9]\.\ds ago", down[0]) and "120" in down[0]
    assert "connection refused" in down[0]
