"""The twin's server: one aiohttp app with Binance's REST and websocket paths, a 100 ms market tick, faults.

`Twin` holds the parts (simulator, listings, feed, books, matcher, keys, faults, hub). `run_twin` serves it on
host:port until stopped; `TwinThread` runs one in a background thread (tests, benchmarks) on a free port.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from engine.data.simulator import SimulatedExchange
from engine.data.simulator.markets import DEFAULT_SYMBOLS
from engine.venue import funding, rest_private, rest_public
from engine.venue.books import Books
from engine.venue.errors import VenueError
from engine.venue.faults import Faults, FaultsError
from engine.venue.feed import MarketFeed
from engine.venue.markets import FUTURES, Listings
from engine.venue.matching import Matcher
from engine.venue.signing import ApiKey, KeyRing
from engine.venue.ws import TWIN_KEY, Hub, market_ws, ws_api

log = logging.getLogger("quantdesk.venue")
TICK_S = 0.1
WEIGHT_LIMIT = 6000


class Twin:
    """Everything one running twin owns."""

    def __init__(self, state: str | Path, keys: list[ApiKey], *, seed: int = 7, speed: float = 1.0,
                 history_days: int = 30, faults: Faults | None = None, start_price_btc: float = 60000.0) -> None:
        self.books = Books(state)
        self.sim = SimulatedExchange(seed=seed, symbols=list(DEFAULT_SYMBOLS), speed=speed, history_days=history_days,
                                     start_price_btc=start_price_btc, clock=self._resumed_clock(speed))
        self.listings = Listings(self.sim._instruments)
        self.feed = MarketFeed(self.sim, self.listings)
        self.faults = faults or Faults()
        self.hub = Hub()
        self.keys_clock: Callable[[], int] = lambda: int(time.time() * 1000)
        self.keys = KeyRing(keys, self.keys_clock)
        self.listen_keys: dict[str, str] = {}
        self.subscription_ids = -1
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self.matcher = Matcher(self.books, self.feed, self.faults, lambda w, e: self._pending.append((w, e)))
        self.public = rest_public.routes()
        self.private = rest_private.routes()
        self.weight_used = 0
        self._weight_minute = 0
        self._last_mark = 0.0

    def _resumed_clock(self, speed: float) -> Callable[[], float]:
        """A simulator clock that keeps the books' market time across restarts: simulated now = wall0 + (now -
        wall0) * speed, with wall0 the books' first start (time ran on while the twin was down, as on a venue)."""
        wall0 = self.books.meta("sim_wall0")
        if wall0 is None or self.books.meta("sim_speed") != repr(float(speed)):
            wall0 = repr(time.time())  # a new book, or a new speed: market time starts again from now
            self.books.set_meta("sim_wall0", wall0)
            self.books.set_meta("sim_speed", repr(float(speed)))
        offset = (time.time() - float(wall0)) * (float(speed) - 1.0)
        return lambda: time.time() + offset

    async def flush_events(self) -> None:
        """Send user-data events queued by the matcher."""
        pending, self._pending = self._pending, []
        for wallet, event in pending:
            await self.hub.user_event(wallet, event)

    async def tick(self) -> None:
        """One market step: new trades (fills resting orders), klines, depth diffs, mark prices to subscribers."""
        stale = self.faults.stale_streams
        mark_due = time.monotonic() - self._last_mark >= 1.0
        if mark_due:
            self._last_mark = time.monotonic()
        for listing in self.listings.all():
            market, low = listing.market, listing.id.lower()
            trades = self.feed.new_trades(listing)
            if trades[0].size:
                self.matcher.on_trades(listing, trades[1].tolist(), trades[2].tolist())
            if market == FUTURES and mark_due:  # funding settles into the USD-M wallet at its times
                funding.settle(self, listing)
            if stale:
                continue
            for name, agg in (("trade", False), ("aggTrade", True)):
                if self.hub.wanted(market, f"{low}@{name}") and trades[0].size:
                    await self.hub.publish(market, f"{low}@{name}", self.feed.trade_events(listing, trades, agg))
            for stream in self.hub.streams(market):
                if stream.startswith(f"{low}@kline_"):
                    await self.hub.publish(market, stream, self.feed.kline_events(listing, stream.split("_", 1)[1]))
            if self.hub.wanted(market, f"{low}@depth"):
                update = self.feed.depth_update(listing)
                if update is not None:
                    await self.hub.publish(market, f"{low}@depth", [update])
            for levels in (5, 10, 20):
                if self.hub.wanted(market, f"{low}@depth{levels}"):
                    await self.hub.publish(market, f"{low}@depth{levels}", [self.feed.partial_depth(listing, levels)])
            if market == FUTURES and mark_due and self.hub.wanted(market, f"{low}@markPrice"):
                await self.hub.publish(market, f"{low}@markPrice", [self.feed.mark_price_event(listing)])
        await self.flush_events()

    def count_weight(self, weight: int) -> int:
        """Add a request's weight to the current minute's total (Binance's X-MBX-USED-WEIGHT-1M)."""
        minute = int(time.time() // 60)
        if minute != self._weight_minute:
            self._weight_minute, self.weight_used = minute, 0
        self.weight_used += weight
        return self.weight_used


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(body, separators=(",", ":")), status=status, headers=headers,
                        content_type="application/json")


async def rest(request: web.Request) -> web.Response:
    """Every REST request: faults, weight headers, key/signature checks, then the endpoint."""
    twin: Twin = request.app[TWIN_KEY]
    method, path = request.method, request.path.rstrip("/")
    if twin.faults.latency_ms:
        await asyncio.sleep(twin.faults.latency_ms / 1000)
    body_text = await request.text() if request.can_read_body else ""
    params = dict(request.query)
    if body_text and request.content_type == "application/x-www-form-urlencoded":
        params.update((await request.post()).items())  # type: ignore[arg-type]
    public = twin.public.get((method, path))
    private = twin.private.get((method, path))
    weight = public[2] if public else private[2] if private else 1
    used = twin.count_weight(weight)
    headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
    fault = twin.faults.rest_fault(path)
    if fault is not None:
        status, extra = fault
        if status == 429:
            return _json({"code": -1003, "msg": "Too many requests; current limit of IP is 6000 requests per "
                                                "minute. Please use the websocket for live updates to avoid "
                                                "polling the API."}, 429, {**headers, **extra})
        return web.Response(text="<html><body><h1>503 Service Unavailable</h1></body></html>", status=status,
                            headers=headers, content_type="text/html")
    try:
        if public:
            result = public[0](twin, public[1], params)
        elif private:
            fn, market, _w, security = private
            if security == rest_private.SIGNED:
                twin.keys.verify(request.headers.get("X-MBX-APIKEY"), request.query_string, body_text, params)
            else:
                twin.keys.check_key(request.headers.get("X-MBX-APIKEY"))
            result = fn(twin, market, params)
            await twin.flush_events()
        else:
            return _json({"code": -5, "msg": f"unknown endpoint {method} {path}"}, 404, headers)
    except VenueError as exc:
        return _json(exc.body(), exc.status, {**headers, **exc.headers})
    return _json(result, 200, headers)


async def admin_faults(request: web.Request) -> web.Response:
    """GET the current faults, or POST a JSON object of changes ({"drop_ws": true} closes every websocket)."""
    twin: Twin = request.app[TWIN_KEY]
    try:
        twin.keys.check_key(request.headers.get("X-MBX-APIKEY"))
    except VenueError as exc:
        return _json(exc.body(), exc.status)
    dropped = 0
    if request.method == "POST":
        try:
            changes = await request.json()
            actions = twin.faults.update(changes if isinstance(changes, dict) else {})
        except (FaultsError, ValueError) as exc:
            return _json({"code": -1100, "msg": str(exc)}, 400)
        if "drop_ws" in actions:
            dropped = await twin.hub.drop_all()
    return _json({**twin.faults.as_dict(), "dropped": dropped})


def build_app(twin: Twin) -> web.Application:
    """The aiohttp application: websockets, admin, and a catch-all REST route."""
    app = web.Application()
    app[TWIN_KEY] = twin
    app.router.add_get("/stream/ws", market_ws)
    app.router.add_get("/stream/ws/{tail:.*}", market_ws)
    for prefix in ("/fstream/ws", "/fstream/public/ws", "/fstream/market/ws", "/fstream/private/ws"):
        app.router.add_get(prefix, market_ws)
        app.router.add_get(prefix + "/{tail:.*}", market_ws)
    app.router.add_get("/ws-api/ws-api/v3", ws_api)
    app.router.add_route("*", "/admin/faults", admin_faults)
    app.router.add_route("*", "/{path:(api|fapi|sapi).*}", rest)

    async def ticker(app: web.Application) -> Any:
        async def loop() -> None:
            while True:
                started = time.monotonic()
                try:
                    await twin.tick()
                except Exception:  # noqa: BLE001 - one bad tick must not stop the market
                    log.exception("tick failed")
                await asyncio.sleep(max(0.0, TICK_S - (time.monotonic() - started)))
        task = asyncio.create_task(loop())
        yield
        task.cancel()
        await twin.hub.drop_all()

    async def close_sockets(app: web.Application) -> None:
        await twin.hub.drop_all(b"server shutdown")  # before the runner waits for open handlers

    app.on_shutdown.append(close_sockets)
    app.cleanup_ctx.append(ticker)
    return app


class TwinThread:
    """A twin served from a background thread on 127.0.0.1 (port 0 = a free port); `base_url` once started."""

    def __init__(self, twin: Twin, host: str = "127.0.0.1", port: int = 0) -> None:
        self.twin = twin
        self.host, self.port = host, port
        self.base_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="venue-twin", daemon=True)

    def start(self, timeout: float = 20.0) -> "TwinThread":
        """Start serving; returns once the port is bound."""
        self._thread.start()
        if not self._ready.wait(timeout) or self._error:
            raise RuntimeError(f"venue twin did not start: {self._error!r}")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._runner = web.AppRunner(build_app(self.twin), access_log=None, shutdown_timeout=2.0)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            self._loop.run_until_complete(site.start())
            sock = site._server.sockets[0]  # type: ignore[union-attr]
            self.port = int(sock.getsockname()[1])
            self.base_url = f"http://{self.host}:{self.port}"
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        """Run a coroutine on the twin's loop from another thread (e.g. hub.drop_all())."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        """Stop serving and close the books."""
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self.twin.books.close()


async def serve_forever(twin: Twin, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Serve until cancelled; calls on_ready with the base URL once bound."""
    runner = web.AppRunner(build_app(twin), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    on_ready(f"http://{host}:{bound}")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        twin.books.close()
