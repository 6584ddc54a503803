"""SMA 20/100 crossover on nautilus_trader's BacktestEngine with 1m bars (imported only by the nautilus worker's venv).

Long-only and all-in on a CASH account in USDT, market orders, no fees (a fee-free copy of the BTCUSDT Binance
instrument), nautilus' own SimpleMovingAverage indicators registered for the bars. Bars come from the same seeded
frame as every other peer (BarDataWrangler). Orders are decided in on_bar (the bar's close) and filled by nautilus'
bar execution model; its fill prices and quantity rounding (6 decimals) are its own, so final equity is reported,
not asserted equal. Timed per run: engine creation, data loading and run (the engine is rebuilt for every repeat).
"""

from __future__ import annotations

import time
from typing import Any


def run_nautilus(frame: Any, fast: int, slow: int, init: float, repeats: int) -> dict:
    """Best wall / CPU time of `repeats` runs after a warm-up, final equity and trade count; nautilus' version."""
    import warnings

    import nautilus_trader

    warnings.simplefilter("ignore")  # pandas 4 deprecation notices from inside nautilus
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig, StrategyConfig
    from nautilus_trader.indicators import SimpleMovingAverage
    from nautilus_trader.model.currencies import BTC, USDT
    from nautilus_trader.model.data import Bar, BarType
    from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
    from nautilus_trader.model.identifiers import InstrumentId, TraderId, Venue
    from nautilus_trader.model.instruments import CurrencyPair
    from nautilus_trader.model.objects import Money
    from nautilus_trader.test_kit.providers import TestInstrumentProvider
    from nautilus_trader.trading.strategy import Strategy

    base = TestInstrumentProvider.btcusdt_binance()
    d = CurrencyPair.to_dict(base)
    d.update({"maker_fee": "0", "taker_fee": "0"})
    instrument = CurrencyPair.from_dict(d)
    bar_type = BarType.from_str(f"{instrument.id}-1-MINUTE-LAST-EXTERNAL")
    import numpy as np
    import pandas as pd

    # BarDataWrangler.process fails under pandas 3 (its typed memoryview rejects DataFrame.values, read-only under
    # copy-on-write): build the same Bar objects it would, from writable arrays (not timed)
    from nautilus_trader.model.objects import Price, Quantity

    cols = ["open", "high", "low", "close", "volume"]
    values = np.array(frame[cols].to_numpy(), copy=True)
    ts = np.array(frame.index.as_unit("ns").asi8, copy=True)
    pp, sp = instrument.price_precision, instrument.size_precision
    bars = [Bar(bar_type, Price(o, pp), Price(h, pp), Price(lo, pp), Price(c, pp), Quantity(v, sp), int(t), int(t))
            for (o, h, lo, c, v), t in zip(values.tolist(), ts.tolist())]

    class SmaCfg(StrategyConfig, frozen=True):
        instrument_id: InstrumentId
        bar_type: BarType
        fast: int
        slow: int

    class SmaCross(Strategy):
        def __init__(self, config: SmaCfg) -> None:
            super().__init__(config)
            self.fast = SimpleMovingAverage(config.fast)
            self.slow = SimpleMovingAverage(config.slow)
            self.entries = 0

        def on_start(self) -> None:
            self.register_indicator_for_bars(self.config.bar_type, self.fast)
            self.register_indicator_for_bars(self.config.bar_type, self.slow)
            self.subscribe_bars(self.config.bar_type)

        def on_bar(self, bar: Bar) -> None:
            if not self.slow.initialized:
                return
            long = self.fast.value > self.slow.value
            flat = self.portfolio.is_flat(self.config.instrument_id)
            if long and flat:
                cash = self.portfolio.account(instrument.id.venue).balance_free(USDT).as_double()
                qty = instrument.make_qty(cash / float(bar.close) * 0.999)  # a margin for the next bar's fill price
                if qty.as_double() > 0:
                    self.submit_order(self.order_factory.market(self.config.instrument_id, OrderSide.BUY, qty))
                    self.entries += 1
            elif not long and not flat:
                self.close_all_positions(self.config.instrument_id)

    def once() -> tuple[float, int]:
        engine = BacktestEngine(BacktestEngineConfig(trader_id=TraderId("BENCH-001"),
                                                     logging=LoggingConfig(log_level="ERROR")))
        engine.add_venue(venue=Venue("BINANCE"), oms_type=OmsType.NETTING, account_type=AccountType.CASH,
                         base_currency=None, starting_balances=[Money(init, USDT), Money(0, BTC)])
        engine.add_instrument(instrument)
        engine.add_data(bars)
        strategy = SmaCross(SmaCfg(instrument_id=instrument.id, bar_type=bar_type, fast=fast, slow=slow))
        engine.add_strategy(strategy)
        engine.run()
        acct = engine.portfolio.account(Venue("BINANCE"))
        usdt = acct.balance_total(USDT).as_double()
        btc_bal = acct.balance_total(BTC)
        btc = btc_bal.as_double() if btc_bal is not None else 0.0
        equity = usdt + btc * float(frame["close"].iloc[-1])
        entries = strategy.entries
        engine.dispose()
        return equity, entries

    once()  # warm-up
    wall = cpu = float("inf")
    equity, entries = 0.0, 0
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.thread_time()
        equity, entries = once()
        cpu = min(cpu, time.thread_time() - c0)
        wall = min(wall, time.perf_counter() - t0)
    return {"final_equity": [equity], "trades": [entries], "wall_s": wall, "cpu_s": cpu,
            "version": nautilus_trader.__version__, "note": "nautilus fill model and 6-decimal quantities, 0.1% "
            "cash margin per entry; equity not expected equal"}


if __name__ == "__main__":  # a quick manual check: python nautilus_sma.py (in the nautilus venv)
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench_backtest import make_frame

    print(run_nautilus(make_frame(20_000, 42), 20, 100, 100_000.0, 1))
