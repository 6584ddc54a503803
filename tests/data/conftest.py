"""Fixtures for the market-data tests: a small deterministic MarketSource with an injected clock."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

MIN = 60_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


class FakeMarket:
    """A deterministic MarketSource: bar(ts) depends only on (seed, symbol, ts); the clock is a settable value."""

    def __init__(self, now_ms: int, seed: int = 3, exchange_id: str = "fake", missing: set[int] | None = None,
                 page_cap: int = 1000) -> None:
        self.id = exchange_id
        self.now = now_ms
        self.seed = seed
        self.missing = missing or set()  # bar timestamps the venue does not have (exchange downtime)
        self.page_cap = page_cap
        self.calls: list[tuple[str, Any]] = []
        self.overrides: dict[int, list[Any]] = {}  # ts -> replacement row (a revised or broken bar)
        self.extra: list[list[Any]] = []  # appended to the first page: broken rows to inject

    def milliseconds(self) -> int:
        """The injected clock."""
        return self.now

    def market(self, symbol: str) -> dict[str, Any]:
        """A minimal market structure."""
        return {"symbol": symbol, "type": "spot"}

    def bar(self, symbol: str, ts: int) -> list[float]:
        """The bar at ts (open time), a pure function of (seed, symbol, ts)."""
        rng = random.Random(f"{self.seed}:{symbol}:{ts}")
        base = 100.0 + 10 * math.sin(ts / 3.6e6)
        o = round(base * (1 + rng.uniform(-0.001, 0.001)), 4)
        c = round(base * (1 + rng.uniform(-0.001, 0.001)), 4)
        return [ts, o, round(max(o, c) * 1.0005, 4), round(min(o, c) * 0.9995, 4), c, round(rng.uniform(1, 9), 3)]

    def fetch_ohlcv(self, symbol: str, timeframe: str = "1m", since: int | None = None,
                    limit: int | None = None) -> list[list[Any]]:
        """Bars from since (including the currently open one), at most min(limit, page_cap)."""
        assert timeframe == "1m"
        self.calls.append(("ohlcv", since))
        n = min(limit or self.page_cap, self.page_cap)
        start = (since if since is not None else self.now - n * MIN) // MIN * MIN
        rows = []
        ts = start
        while len(rows) < n and ts <= self.now:
            if ts not in self.missing:
                rows.append(list(self.overrides.get(ts, self.bar(symbol, ts))))
            ts += MIN
        if self.extra:
            rows.extend(self.extra)
            self.extra = []
        return rows

    def fetch_trades(self, symbol: str, since: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Two trades per minute from since up to now."""
        self.calls.append(("trades", since))
        out = []
        ts = (since or self.now - 10 * MIN) // 30_000 * 30_000
        while ts < self.now and len(out) < (limit or 1000):
            if ts >= (since or 0):
                out.append({"id": str(ts // 30_000), "timestamp": ts, "symbol": symbol,
                            "side": "buy" if (ts // 30_000) % 2 else "sell", "price": 100.0, "amount": 0.5})
            ts += 30_000
        return out

    def fetch_order_book(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        """A fixed 3-level book."""
        return {"symbol": symbol, "bids": [[99.9, 1.0], [99.8, 2.0], [99.0, 5.0]],
                "asks": [[100.1, 1.5], [100.2, 2.0], [101.0, 5.0]], "timestamp": self.now, "nonce": None}

    def fetch_funding_rate(self, symbol: str) -> dict[str, Any]:
        """The current funding rate."""
        return {"symbol": symbol, "fundingRate": 0.0001, "timestamp": self.now, "markPrice": 100.0}

    def fetch_funding_rate_history(self, symbol: str, since: int | None = None,
                                   limit: int | None = None) -> list[dict[str, Any]]:
        """8-hourly settlements from since up to now."""
        step = 8 * 3_600_000
        ts = ((since or 0) + step - 1) // step * step
        out = []
        while ts <= self.now and len(out) < (limit or 1000):
            out.append({"symbol": symbol, "fundingRate": 0.0001 * ((ts // step) % 3 - 1), "timestamp": ts})
            ts += step
        return out


@pytest.fixture
def fake_market() -> FakeMarket:
    """A FakeMarket whose clock stands 30 s into the bar after T0 + 3 h."""
    return FakeMarket(now_ms=T0 + 180 * MIN + 30_000)
