"""Serve recorded exchange responses to a real ccxt instance, so the real ccxt parser runs with no network.

`install_replay(exchange, recordings)` replaces the instance's `fetch` (every ccxt REST call passes through it). A
request is routed by HTTP method + URL path + the recording's selected params (a recording matches when every param it
names equals the request's; the most specific match wins). Any request without a recording raises
`UnrecordedRequest` naming method, path and params: nothing can reach the network.

Recording files are JSON lists of entries:
    {"method": "GET", "path": "/api/v3/klines", "params": {"symbol": "BTCUSDT", "startTime": "..."},
     "status": 200, "body": <the exchange's JSON exactly as sent>}
Optional keys: "times": n (serve n times, then fall through to the next match - for one-off failures),
"raise": "NetworkError" (a connection-level failure, raised as that ccxt class), "headers": {...}.
Non-2xx entries go through the exchange's own `handle_errors` and `handle_http_status_code`, like a live response.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlsplit

RECORDINGS = Path(__file__).resolve().parent.parent / "recordings"


class UnrecordedRequest(LookupError):
    """The code under test made a request that has no recording (it would have gone to the network)."""


@dataclass
class Entry:
    """One recorded response."""

    method: str
    path: str
    params: dict[str, str]
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = None
    raise_: str | None = None
    served: int = 0
    source: str = ""


@dataclass
class Call:
    """One request the replay saw."""

    method: str
    path: str
    params: dict[str, str]
    status: int


class Replay:
    """The installed replay: entries, plus every call made (for assertions on pagination and retries)."""

    def __init__(self, exchange: Any, entries: list[Entry]) -> None:
        self.exchange = exchange
        self.entries = entries
        self.calls: list[Call] = []

    def calls_to(self, path: str) -> list[Call]:
        """Calls made to one URL path, in order."""
        return [c for c in self.calls if c.path == path]

    def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        """The replacement for `exchange.fetch`: find the recording, replay it through ccxt's error handling."""
        import ccxt

        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        if isinstance(body, bytes):
            body = body.decode()
        if body and isinstance(body, str):
            if body.lstrip().startswith("{"):  # JSON bodies (many exchanges' private POSTs): top-level fields
                decoded = json.loads(body)
                params.update({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in decoded.items()})
            elif "=" in body:  # form-encoded bodies (Binance private POSTs)
                params.update(dict(parse_qsl(body, keep_blank_values=True)))
        if "signature" in params:  # signed private calls: route on the business params, not the signature
            for volatile in ("signature", "timestamp", "recvWindow"):
                params.pop(volatile, None)
        entry = self._match(method.upper(), parts.path, params)
        if entry is None:
            raise UnrecordedRequest(f"no recording for {method.upper()} {parts.path} params={params}")
        entry.served += 1
        self.calls.append(Call(method.upper(), parts.path, params, entry.status))
        if entry.raise_:
            raise getattr(ccxt, entry.raise_)(f"{self.exchange.id} {method} {url} (recorded {entry.raise_})")
        text = entry.body if isinstance(entry.body, str) else json.dumps(entry.body)
        json_response = self.exchange.parse_json(text)
        reason = "OK" if entry.status < 400 else "Error"
        if entry.status >= 400:
            skip = self.exchange.handle_errors(entry.status, reason, url, method, entry.headers, text, json_response,
                                               headers, body)
            if not skip:
                self.exchange.handle_http_status_code(entry.status, reason, url, method, text)
            raise ccxt.ExchangeError(f"{self.exchange.id} {method} {url} {entry.status}")
        self.exchange.handle_errors(entry.status, reason, url, method, entry.headers, text, json_response, headers,
                                    body)
        self.exchange.last_http_response = text
        self.exchange.last_json_response = json_response
        return json_response

    def _match(self, method: str, path: str, params: dict[str, str]) -> Entry | None:
        best: Entry | None = None
        best_rank = (False, -1)
        for entry in self.entries:
            if entry.method != method or entry.path != path:
                continue
            if entry.times is not None and entry.served >= entry.times:
                continue
            if any(params.get(k) != v for k, v in entry.params.items()):
                continue
            # one-off entries ("times") win while they last, then the most specific params
            rank = (entry.times is not None, len(entry.params))
            if best is None or rank > best_rank:
                best, best_rank = entry, rank
        return best


def load_entries(paths: Iterable[Path | str]) -> list[Entry]:
    """Read recording files (a file or every *.json in a folder) into entries, in file order."""
    entries: list[Entry] = []
    for item in paths:
        path = Path(item)
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            for raw in json.loads(file.read_text()):
                entries.append(Entry(
                    method=raw.get("method", "GET").upper(), path=raw["path"],
                    params={str(k): str(v) for k, v in (raw.get("params") or {}).items()},
                    status=int(raw.get("status", 200)), body=raw.get("body"), headers=raw.get("headers") or {},
                    times=raw.get("times"), raise_=raw.get("raise"), source=file.name))
    return entries


def install_replay(exchange: Any, recordings: Iterable[Path | str] = (RECORDINGS / "binance",),
                   extra: Iterable[dict[str, Any]] = ()) -> Replay:
    """Replace `exchange.fetch` with a replay of the given recording files plus inline `extra` entries (first)."""
    inline = [Entry(method=e.get("method", "GET").upper(), path=e["path"],
                    params={str(k): str(v) for k, v in (e.get("params") or {}).items()},
                    status=int(e.get("status", 200)), body=e.get("body"), headers=e.get("headers") or {},
                    times=e.get("times"), raise_=e.get("raise"), source="inline") for e in extra]
    replay = Replay(exchange, inline + load_entries(recordings))
    exchange.fetch = replay.fetch
    return replay
