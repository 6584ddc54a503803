"""The twin's websockets: Binance market streams (SUBSCRIBE/UNSUBSCRIBE on /ws), USD-M user data (listenKey) and
the spot websocket API's user-data subscription (`userDataStream.subscribe.signature`).

Paths mirror Binance's hosts under one port: spot streams /stream/ws[/<n>|/<stream>], USD-M streams
/fstream[/public|/market]/ws[/<n>], USD-M user data /fstream/private/ws?listenKey=K (or /fstream/ws/<listenKey>),
spot websocket API /ws-api/ws-api/v3. Messages are raw events (no combined-stream wrapper), as on Binance's /ws.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from engine.venue.errors import VenueError
from engine.venue.markets import FUTURES, SPOT

if TYPE_CHECKING:
    from engine.venue.server import Twin

log = logging.getLogger("quantdesk.venue.ws")
TWIN_KEY: web.AppKey["Twin"] = web.AppKey("twin")


def stream_key(name: str) -> str:
    """A subscription's stream without its update-speed suffix: btcusdt@depth@100ms -> btcusdt@depth."""
    name = name.strip()
    for suffix in ("@100ms", "@1000ms", "@250ms", "@500ms", "@1s", "@3s"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


class Hub:
    """Who listens to what: market stream subscribers, user-data listeners, and every open socket."""

    def __init__(self) -> None:
        self.subs: dict[tuple[str, str], set[web.WebSocketResponse]] = defaultdict(set)
        self.users: dict[str, dict[web.WebSocketResponse, int | None]] = {SPOT: {}, FUTURES: {}}
        self.sockets: set[web.WebSocketResponse] = set()
        self.sent = 0

    def wanted(self, market: str, stream: str) -> bool:
        """Whether any socket subscribes to a stream."""
        return bool(self.subs.get((market, stream)))

    def streams(self, market: str) -> list[str]:
        """Streams with subscribers on one API."""
        return [s for (m, s), socks in self.subs.items() if m == market and socks]

    async def publish(self, market: str, stream: str, payloads: list[dict[str, Any]]) -> None:
        """Send events to a stream's subscribers (each event its own frame, as Binance does)."""
        socks = list(self.subs.get((market, stream), ()))
        if not socks or not payloads:
            return
        texts = [json.dumps(p, separators=(",", ":")) for p in payloads]
        for ws in socks:
            for text in texts:
                if ws.closed:
                    break
                try:
                    await ws.send_str(text)
                    self.sent += 1
                except (ConnectionError, RuntimeError):
                    self._forget(ws)
                    break

    async def user_event(self, market: str, event: dict[str, Any]) -> None:
        """Send a user-data event to every listener of a wallet (spot ws-api wraps it with its subscriptionId)."""
        for ws, sub_id in list(self.users[market].items()):
            body = event if sub_id is None else {"subscriptionId": sub_id, "event": event}
            try:
                await ws.send_str(json.dumps(body, separators=(",", ":")))
            except (ConnectionError, RuntimeError):
                self._forget(ws)

    async def drop_all(self, message: bytes = b"dropped by fault injection") -> int:
        """Close every websocket (the drop_ws fault, and shutdown), all at once; returns how many were open."""
        socks = list(self.sockets)

        async def close(ws: web.WebSocketResponse) -> None:
            try:
                await ws.close(code=1011, message=message)
            except (ConnectionError, RuntimeError):
                pass
            self._forget(ws)
        await asyncio.gather(*(close(ws) for ws in socks))
        return len(socks)

    def _forget(self, ws: web.WebSocketResponse) -> None:
        self.sockets.discard(ws)
        for socks in self.subs.values():
            socks.discard(ws)
        for listeners in self.users.values():
            listeners.pop(ws, None)


async def _open(request: web.Request, hub: Hub) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=1 << 20)
    await ws.prepare(request)
    hub.sockets.add(ws)
    return ws


async def market_ws(request: web.Request) -> web.WebSocketResponse:
    """Spot or USD-M market streams; a listenKey in the path or query makes it a USD-M user-data stream."""
    twin: Twin = request.app[TWIN_KEY]
    hub = twin.hub
    market = FUTURES if request.path.startswith("/fstream") else SPOT
    tail = request.match_info.get("tail", "")
    key = request.query.get("listenKey") or (tail if tail and tail == twin.listen_keys.get(market) else None)
    if request.query.get("listenKey") and key != twin.listen_keys.get(market):
        raise web.HTTPBadRequest(text=json.dumps({"code": -1125, "msg": "This listenKey does not exist."}))
    ws = await _open(request, hub)
    if key:
        hub.users[market][ws] = None
    elif "@" in tail:
        for name in tail.split("/"):
            hub.subs[(market, stream_key(name))].add(ws)
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            reply = _control(hub, market, ws, msg.data)
            if reply is not None:
                await ws.send_str(json.dumps(reply))
    finally:
        hub._forget(ws)
    return ws


def _control(hub: Hub, market: str, ws: web.WebSocketResponse, text: str) -> dict[str, Any] | None:
    """Answer SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS the way Binance does."""
    try:
        req = json.loads(text)
    except json.JSONDecodeError:
        return {"error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}}
    if not isinstance(req, dict):
        return {"error": {"code": 3, "msg": "Invalid JSON"}}
    method, rid, params = req.get("method"), req.get("id"), req.get("params") or []
    if method == "SUBSCRIBE" and isinstance(params, list):
        for name in params:
            hub.subs[(market, stream_key(str(name)))].add(ws)
        return {"result": None, "id": rid}
    if method == "UNSUBSCRIBE" and isinstance(params, list):
        for name in params:
            hub.subs[(market, stream_key(str(name)))].discard(ws)
        return {"result": None, "id": rid}
    if method == "LIST_SUBSCRIPTIONS":
        return {"result": sorted(s for (m, s), socks in hub.subs.items() if m == market and ws in socks), "id": rid}
    return {"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"}, "id": rid}


async def ws_api(request: web.Request) -> web.WebSocketResponse:
    """Spot websocket API: the user-data subscription by signature (and ping), answered in Binance's envelope."""
    twin: Twin = request.app[TWIN_KEY]
    ws = await _open(request, twin.hub)
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                req = json.loads(msg.data)
            except json.JSONDecodeError:
                await ws.send_str(json.dumps({"id": None, "status": 400,
                                              "error": {"code": -1100, "msg": "Malformed JSON."}}))
                continue
            await ws.send_str(json.dumps(_api_call(twin, ws, req)))
    finally:
        twin.hub._forget(ws)
    return ws


def _api_call(twin: "Twin", ws: web.WebSocketResponse, req: Any) -> dict[str, Any]:
    rid = req.get("id") if isinstance(req, dict) else None
    method = req.get("method") if isinstance(req, dict) else None
    params = (req.get("params") or {}) if isinstance(req, dict) else {}
    try:
        if method == "ping":
            return {"id": rid, "status": 200, "result": {}}
        if method == "time":
            return {"id": rid, "status": 200, "result": {"serverTime": twin.keys_clock()}}
        if method == "userDataStream.subscribe.signature":
            twin.keys.verify_params({k: str(v) for k, v in params.items()})
            twin.subscription_ids += 1
            twin.hub.users[SPOT][ws] = twin.subscription_ids
            return {"id": rid, "status": 200, "result": {"subscriptionId": twin.subscription_ids}}
        if method == "userDataStream.unsubscribe":
            twin.hub.users[SPOT].pop(ws, None)
            return {"id": rid, "status": 200, "result": {}}
        raise VenueError(-1100, f"Unknown method {method!r}.")
    except VenueError as exc:
        return {"id": rid, "status": exc.status, "error": exc.body()}
