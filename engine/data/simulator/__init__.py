"""The simulated exchange: the embedded default market, seeded and deterministic as a function of absolute time.

Design (how "the same (seed, symbol, timestamp) always gives the same data" is achieved):

1. Coarse world (world.py). An hourly path starting at a fixed epoch, EPOCH = 2020-01-01 UTC, generated block by
   block (720 h) from random streams keyed (seed, 1, block) and the state the previous block ended in. It holds the
   regime Markov chain (trend_up / trend_down / range, switching biased by a slow macro factor), informed-flow
   episodes (crashes and pumps, events.py), the hourly volatility state (slow + fast log-vol factors), the perp
   premium, feed noise, and hourly log-price anchors for BTC, ETH, SOL (correlated Student-t noise, regime drift,
   episode moves, slow mean reversion to a price level). Sixty thousand hours take well under a second, and the
   path is cached, so hour h depends only on (seed, h).
2. Intraday days (intraday.py). Each UTC day's 1m bars come from the coarse path and per-day random streams:
   (seed, 2, day) market-wide, (seed, 5, day, asset) an asset's own noise, (seed, 6, day, instrument) perp wiggle,
   volume and flow noise, so any instrument can be generated alone. Minute returns are Student-t noise x hourly vol
   x intraday seasonality x a fast minute vol factor x stress, plus the episodes' minute drift; each hour's noise is
   bridged to the coarse hour so the path lands exactly on the next anchor. The perp is spot x exp(premium). Days,
   tapes and hourly aggregates are cached (cache.py), shared by exchanges on the same (seed, start price).
3. Microstructure (microstructure.py). Trade tapes per (seed, 4, instrument, day) are built from the bars: first
   trade = open, last = close, high and low printed, amounts summing to the bar volume, taker sides matching the
   minute's buy share (informed episodes push it one-sided 15-90 minutes before the move). Books per
   (seed, 3, instrument, second), centred on the last trade, widen and thin with stress.
4. Funding (funding.py) follows Binance's formula on the 8-hour mean premium; feeds (feeds.py) derive from the coarse
   path with publication lags.

Time: simulated now = anchor + (clock() - anchor) * speed; nothing after it is returned. The world exists from EPOCH
on; `history_days` only sets the default backfill window (`history_start()`).
"""

from engine.data.simulator.exchange import TIMEFRAMES, SimulatedExchange
from engine.data.simulator.feeds import FEEDS, SimFeed
from engine.data.simulator.markets import DEFAULT_SYMBOLS
from engine.data.simulator.world import EPOCH_MS, REGIMES

__all__ = ["DEFAULT_SYMBOLS", "EPOCH_MS", "FEEDS", "REGIMES", "TIMEFRAMES", "SimFeed", "SimulatedExchange"]
