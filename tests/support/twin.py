"""The exchange twin for tests: start it on a free port and build ccxt clients pointed at it.

API (for any test that needs a Binance-speaking venue on 127.0.0.1):

- fixture `twin` -> `TwinHandle` (a fresh twin per test: its own venue.db under tmp_path, seed 7, speed 1).
- `start_twin(state_path, *, seed=7, speed=1.0, faults=None, key=None) -> TwinHandle`: the same, for tests that
  need other settings; call `handle.stop()` when done (the fixture does it for you).
- `TwinHandle` fields: `base_url` ("http://127.0.0.1:PORT"), `api_key`, `api_secret`, `state_path`, `twin` (the
  running `engine.venue.server.Twin`: books, feed, matcher, faults, hub), `server` (its `TwinThread`).
- `handle.exchange(**config)` -> a real `ccxt.binance` (sync) with the keys and URLs pointed at the twin;
  `handle.pro_exchange(**config)` -> a real `ccxt.pro.binance` (asyncio websocket client) likewise. Both load only
  spot + USD-M markets and skip the /sapi currency and margin calls (the twin does not serve /sapi).
- `handle.print_trade(symbol, price, amount)` prints one trade on the twin's tape (stops it reaches fire).
- `handle.set_faults(**changes)` posts to the admin endpoint (`drop_ws=True` closes every websocket now);
  `handle.faults()` returns the current ones.
- `twin_exchange(base_url, key, secret, pro=False, **config)` builds such a client for a twin started elsewhere
  (e.g. a `quantdesk venue serve` subprocess).
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from engine.data.ccxt_urls import point_at
from engine.venue.faults import Faults
from engine.venue.server import Twin, TwinThread
from engine.venue.signing import ApiKey, generate_key_pair


def twin_exchange(base_url: str, key: str | None, secret: str | None, pro: bool = False, **config: Any) -> Any:
    """A real ccxt.binance (or ccxt.pro.binance) with keys, pointed at a twin at base_url."""
    import ccxt
    import ccxt.pro

    options = {"fetchMarkets": {"types": ["spot", "linear"]}, "fetchCurrencies": False, "fetchMargins": False}
    options.update(config.pop("options", {}))
    cfg: dict[str, Any] = {"enableRateLimit": False, "options": options, **config}
    if key:
        cfg.update(apiKey=key, secret=secret)
    cls = ccxt.pro.binance if pro else ccxt.binance
    return point_at(cls(cfg), base_url)


@dataclass
class TwinHandle:
    """A running twin and how to reach it."""

    base_url: str
    api_key: str
    api_secret: str
    state_path: Path
    twin: Twin
    server: TwinThread

    def exchange(self, **config: Any) -> Any:
        """A sync ccxt.binance with this twin's keys and URLs."""
        return twin_exchange(self.base_url, self.api_key, self.api_secret, **config)

    def pro_exchange(self, **config: Any) -> Any:
        """An async ccxt.pro.binance with this twin's keys and URLs (close it with `await ex.close()`)."""
        return twin_exchange(self.base_url, self.api_key, self.api_secret, pro=True, **config)

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change faults through the admin endpoint; returns the faults now in force."""
        req = urllib.request.Request(self.base_url + "/admin/faults", data=json.dumps(changes).encode(),
                                     headers={"X-MBX-APIKEY": self.api_key, "Content-Type": "application/json"},
                                     method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def faults(self) -> dict[str, Any]:
        """The faults in force."""
        req = urllib.request.Request(self.base_url + "/admin/faults", headers={"X-MBX-APIKEY": self.api_key})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def print_trade(self, symbol: str, price: float, amount: float, market: str = "spot") -> None:
        """Print one trade on the twin's tape at `price` (on its event loop, as its own tick would): resting orders
        and stops it reaches trigger and fill. A test harness's way to move the market through a level now."""
        listing = next(x for x in self.twin.listings.all() if x.symbol == symbol and x.market == market)

        async def _print() -> None:
            self.twin.matcher.on_trades(listing, [float(price)], [float(amount)])
            await self.twin.flush_events()

        self.server.call(_print())

    def stop(self) -> None:
        """Stop the twin (its venue.db stays)."""
        self.server.stop()


def start_twin(state_path: Path, *, seed: int = 7, speed: float = 1.0, faults: Faults | None = None,
               key: ApiKey | None = None) -> TwinHandle:
    """Start a twin in a background thread on a free 127.0.0.1 port."""
    key = key or generate_key_pair()
    twin = Twin(state_path, [key], seed=seed, speed=speed, faults=faults)
    server = TwinThread(twin).start()
    return TwinHandle(server.base_url, key.key, key.secret, Path(state_path), twin, server)


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[TwinHandle]:
    """A fresh twin (seed 7, speed 1) with its own venue.db; stopped after the test."""
    handle = start_twin(tmp_path / "venue.db")
    try:
        yield handle
    finally:
        handle.stop()
