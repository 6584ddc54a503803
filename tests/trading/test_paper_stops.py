"""Paper and backtest fill a strategy's stop at the same price on the same bar.

The same 1m bars drive both: run_backtest on the whole panel, and a real Trader + PaperBroker over a real state.db
whose replay source's clock steps bar by bar (its book quotes the current bar's open with no spread, so a market
entry fills where the kernel's next-open fill does). The strategy (wrapped in SafeStrategy, as in the engine) holds
fractional weights and declares a stop and a take-profit; the path has an intrabar stop hit, a short stopped by a
gap through its stop, and a take-profit. Entries, exits, reasons, bars and prices must be identical, and the drift
monitor, pairing each paper fill with its backtest twin, must see no drift on any of them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.backtest.engine import run_backtest
from engine.backtest.sizing import fixed_fraction
from engine.config import BacktestConfig, Settings, StrategyInstanceConfig, settings_with
from engine.execution.paper_broker import PaperBroker
from engine.monitoring.drift import pair_fills
from engine.store import open_store
from engine.store.candles import upsert_candles
from engine.strategy.base import Strategy
from engine.strategy.stops import Stops
from engine.strategy.wrapper import SafeStrategy
from engine.trading.lifecycle import get_instance, sync_instances
from engine.trading.trader import Trader

MIN = 60_000
T0 = 1_790_000_000_000 - 1_790_000_000_000 % MIN
SYM = "AAA/USDT"
N = 60
NO_COSTS = {"fee_taker": 0.0, "fee_maker": 0.0, "half_spread_bps": 0.0, "impact_coef": 0.0}
SPREAD = {**NO_COSTS, "half_spread_bps": 5.0}  # the book quotes open -/+ 5 bps, as the kernel charges a taker
# decision bar -> weight from then on (fills at the next bar's open)
SCHEDULE = {3: 0.5, 20: -1.0, 35: 1.0}


def _bars() -> pd.DataFrame:
    """100 with small noise; bar 10 dips to 98.8 inside the bar, bar 26 gaps up to 101.5, bar 45 spikes to 102.6."""
    rng = np.random.default_rng(7)
    o = 100.0 + rng.normal(0, 0.05, N)
    o[21:26] = 99.2
    o[26] = 101.5
    o[27:36] = 100.0
    h = o * 1.002
    lo = o * 0.998
    lo[10] = 98.8
    h[45] = 102.6
    c = o.copy()
    idx = pd.to_datetime(T0 + MIN * np.arange(N), unit="ms", utc=True)
    idx.name = "ts"
    return pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": 1000.0}, index=idx)


@dataclasses.dataclass(frozen=True)
class ScheduledConfig:
    """Which stop spec the test strategy declares."""

    scale: str = "fixed"


class Scheduled(Strategy):
    """Weights from SCHEDULE by bar time (point in time), with a stop and a take-profit."""

    name = "scheduled_weights"
    Config = ScheduledConfig
    default_timeframe = "1m"

    def signals(self, panel):  # noqa: ANN001, ANN201
        return np.sign(self.weights(panel)).astype("int8")

    def weights(self, panel):  # noqa: ANN001, ANN201
        idx = next(iter(panel.values())).index
        bar = (idx.as_unit("ms").asi8 - T0) // MIN
        w = np.zeros(len(idx))
        for start, value in SCHEDULE.items():
            w[bar >= start] = value
        return pd.DataFrame({SYM: w}, index=idx)

    def stops(self) -> Stops:
        if self.config.scale == "atr":
            return Stops(stop_loss=2.5, take_profit=5.0, scale="atr", window=5)
        return Stops(stop_loss=0.01, take_profit=0.02)


class ReplaySource:
    """A MarketSource over fixed bars: a settable clock; the book quotes the current bar's open -/+ a half spread."""

    id = "replay"

    def __init__(self, bars: pd.DataFrame, half_spread: float = 0.0) -> None:
        self.bars = bars
        self.now = T0
        self.half_spread = half_spread

    def milliseconds(self) -> int:
        """Source time."""
        return self.now

    def market(self, symbol: str) -> dict[str, Any]:
        """A fine lot step and no minimums."""
        return {"symbol": symbol, "precision": {"amount": 1e-8}, "limits": {"amount": {"min": 0.0}}}

    def fetch_order_book(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        """Bid and ask at the current bar's open -/+ the half spread, deep."""
        i = min((self.now - T0) // MIN, N - 1)
        p = float(self.bars["open"].iloc[i])
        return {"bids": [[p * (1.0 - self.half_spread), 1e9]], "asks": [[p * (1.0 + self.half_spread), 1e9]],
                "timestamp": self.now}

    def fetch_trades(self, symbol: str, since: int | None = None, limit: int | None = None) -> list:
        """No tape: nothing rests in this test."""
        return []


def _paper_run(tmp_path: Path, bars: pd.DataFrame, scale: str, down: tuple[int, int] | None = None,
               costs: dict = NO_COSTS) -> list[tuple[int, str, float, str]]:
    """Drive a paper desk bar by bar; `down=(a, b)`: the engine is down for bars a..b-1 and restarts at b."""
    settings = settings_with(dataclasses.replace(Settings(), strategies={
        "t1": StrategyInstanceConfig(strategy="quantum_momentum", capital=100_000.0, symbols=(SYM,), timeframe="1m")}),
        store={"path": str(tmp_path / "state.db")}, risk={"sizing": "fixed"},
        backtest=costs)
    store = open_store(settings.store_url())
    try:
        sync_instances(store, settings)
        rows = [[int(ts.value // 1_000_000), *map(float, r)] for ts, r in
                zip(bars.index, bars[["open", "high", "low", "close", "volume"]].to_numpy())]
        upsert_candles(store, "replay", SYM, "1m", rows)
        source = ReplaySource(bars, costs["half_spread_bps"] / 10_000.0)

        def start_engine() -> Trader:
            broker = PaperBroker(store, source, fee_maker=0.0, fee_taker=0.0, latency_ms=0.0)
            trader = Trader(store, settings, broker, source)
            trader._strategies["t1"] = SafeStrategy(Scheduled(scale=scale), store=store, instance_id="t1")
            return trader

        trader = start_engine()
        inst = get_instance(store, "t1")
        for t in range(1, N + 1):
            if down is not None and down[0] <= t < down[1]:
                continue  # the engine is down: nothing runs
            if down is not None and t == down[1]:
                trader = start_engine()  # a new process: nothing in memory survives
            source.now = T0 + t * MIN + 1_000  # one second into bar t: bar t-1 has closed
            trader.tick(inst, 100_000.0)
        with store.connect() as conn:
            fills = conn.exec_driver_sql(
                "SELECT f.ts, f.side, f.price, o.reason FROM fills f JOIN orders o "
                "ON o.client_order_id = f.client_order_id WHERE f.instance_id = 't1' ORDER BY f.ts, f.id").all()
        alerts = _alerts(store)
        # the drift monitor pairs every paper fill (stops included) with the backtest twin's: no drift here (the
        # fill price is an average over fills, qty * price / qty: 1e-12 bps of rounding)
        assert pair_fills(store, settings, "replay") == len(fills)
        with store.connect() as conn:
            drift = conn.exec_driver_sql("SELECT leg, drift_bps FROM twin_trades").all()
        assert len(drift) == len(fills) and all(abs(d) < 1e-9 for _, d in drift), drift  # bps; float noise only
    finally:
        store.dispose()
    assert not alerts, alerts
    out = []
    for ts, side, price, reason in fills:
        kind = reason.split(" ")[0] if reason.startswith(("stop_loss", "take_profit")) else "signal"
        out.append(((ts - T0) // MIN, side, float(price), kind))
    return out


def _alerts(store: Any) -> list:
    with store.connect() as conn:
        return conn.exec_driver_sql("SELECT rule, message FROM alerts WHERE rule = 'strategy.error'").all()


def _backtest_run(bars: pd.DataFrame, scale: str, costs: dict = NO_COSTS) -> list[tuple[int, str, float, str]]:
    res = run_backtest(Scheduled(scale=scale), {SYM: bars}, BacktestConfig(**costs), sizer=fixed_fraction(1.0),
                       lookahead=False)
    out = []
    held = 0.0
    for r in res.fills.itertuples():
        new = held + r.qty
        if held != 0.0 and new != 0.0 and np.sign(new) != np.sign(held):  # a flip is an exit and an entry in paper
            raise AssertionError("the schedule never flips a position in one fill")
        out.append((int(r.bar), "buy" if r.qty > 0 else "sell", float(r.price), str(r.reason)))
        held = new
    return out


@pytest.mark.parametrize("costs", [NO_COSTS, SPREAD], ids=["no-costs", "spread"])
@pytest.mark.parametrize("scale", ["fixed", "atr"])
def test_paper_and_backtest_fill_the_same_stop_at_the_same_price_on_the_same_bar(tmp_path: Path, scale: str,
                                                                                  costs: dict) -> None:
    """Same bars, same fills: a stop pays the backtest's half spread in paper too (a take-profit rests: none)."""
    bars = _bars()
    backtest = _backtest_run(bars, scale, costs)
    paper = _paper_run(tmp_path, bars, scale, costs=costs)
    if costs is NO_COSTS:
        assert paper == backtest
    else:  # the paper broker's market fill is a book walk's VWAP (sum p q / sum q): equal to 1 ulp
        assert [(b, s, r) for b, s, _, r in paper] == [(b, s, r) for b, s, _, r in backtest]
        assert [p for *_, p, _ in paper] == pytest.approx([p for *_, p, _ in backtest], rel=1e-14, abs=0.0)
    reasons = [r[3] for r in backtest]
    assert reasons.count("stop_loss") >= 1 and "signal" in reasons
    if scale == "fixed":  # the designed path: an intrabar stop, a gap through a short's stop, a take-profit
        hs = costs["half_spread_bps"] / 10_000.0
        entry = {b: p for b, _, p, r in backtest if r == "signal"}
        assert sorted(entry) == [4, 21, 36]
        assert entry[4] == pytest.approx(float(bars["open"].iloc[4]) * (1.0 + hs), rel=1e-12)
        exits = [(b, r, p) for b, _, p, r in paper if r != "signal"]
        assert [(b, r) for b, r, _ in exits] == [(10, "stop_loss"), (26, "stop_loss"), (45, "take_profit")]
        assert [p for *_, p in exits] == pytest.approx([entry[4] * (1.0 - 0.01) * (1.0 - hs), 101.5 * (1.0 + hs),
                                                        entry[36] * (1.0 + 0.02)], rel=1e-14, abs=0.0)


@pytest.mark.parametrize("down", [(8, 15), (12, 15)])
def test_a_restart_keeps_the_stops_and_the_stopped_out_state(tmp_path: Path, down: tuple[int, int]) -> None:
    """State.db carries what the stops need. (8, 15): the entry order holds the armed fractions, so the restarted
    engine re-arms the trade exactly and fills the stop crossed at bar 10 while it was down at its level on that bar.
    (12, 15): the stop fired before the restart; the new engine reads that exit and stays flat while the weight is
    unchanged. Either way the fills equal the backtest's."""
    bars = _bars()
    assert _paper_run(tmp_path, bars, "atr", down=down) == _backtest_run(bars, "atr")


def test_a_paper_stop_pays_the_kernels_spread_and_impact(tmp_path: Path) -> None:
    """With square-root impact on, the paper stop's price (StopWatch.fill_price on the stored bars) is the kernel's
    stop fill: the trigger price moved by half spread + impact_coef * sigma * sqrt(qty / previous bar's volume)."""
    from engine.trading.stops import StopWatch

    bars = _bars()
    bars["volume"] = np.random.default_rng(3).uniform(50.0, 1500.0, N)  # the previous bar's volume matters
    costs = {**NO_COSTS, "half_spread_bps": 5.0, "impact_coef": 0.8}
    res = run_backtest(Scheduled(scale="fixed"), {SYM: bars}, BacktestConfig(**costs), sizer=fixed_fraction(1.0),
                       lookahead=False)
    fills = list(res.fills.itertuples())
    stops = [f for f in fills if f.reason == "stop_loss"]
    assert [int(f.bar) for f in stops] == [10, 26]
    store = open_store(tmp_path / "state.db")
    try:
        upsert_candles(store, "replay", SYM, "1m", [[int(ts.value // 1_000_000), *map(float, r)] for ts, r in
                                                   zip(bars.index, bars[["open", "high", "low", "close", "volume"]]
                                                       .to_numpy())])
        watch = StopWatch(store, "replay", BacktestConfig(**costs))
        for stop in stops:
            entry = [f for f in fills if f.bar < stop.bar and f.reason == "signal"][-1]
            side = 1.0 if entry.qty > 0 else -1.0
            level = entry.price * (1.0 - side * 0.01)
            o = float(bars["open"].iloc[int(stop.bar)])
            trigger = min(o, level) if side > 0 else max(o, level)  # the level, or the open on a gap
            fill_ts = T0 + int(stop.bar) * MIN + 59_999
            paper = watch.fill_price("stop_loss", trigger, -float(stop.qty), SYM, "1m", fill_ts)
            assert paper == pytest.approx(float(stop.price), rel=1e-13, abs=0.0)
            assert abs(paper / trigger - 1.0) > 5e-4 + 1e-6  # impact was charged on top of the spread
        assert watch.fill_price("take_profit", 101.0, 5.0, SYM, "1m", T0 + 30 * MIN) == 101.0  # maker: the level
    finally:
        store.dispose()
