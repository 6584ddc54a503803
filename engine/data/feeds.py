"""Macro, sentiment and on-chain feed adapters: a file adapter and an HTTP-JSON adapter with per-format parsers.

Every adapter is a `FeedSource` (`feed` name + `fetch_feed(since, until) -> [FeedPoint]`). Each point carries both the
observation time and the time it became known (`published_ts`), so research aligns feeds point-in-time. The simulated
default for each feed is the simulator's `sim.feed_source(name)`; `make_feed` picks it for spec "sim".

HTTP goes through an injectable `fetch(url) -> bytes|str` (default: urllib with a timeout), so tests serve recorded
JSON and nothing touches the network. Parsers for three public formats are built in:
- `fear_greed`: alternative.me Fear & Greed index (`{"data": [{"value": "40", "timestamp": "1551157200"}]}`)
- `fred`: FRED series observations (`{"observations": [{"date": "2024-01-02", "value": "4.33"}]}`; "." = missing)
- `blockchain_chart`: blockchain.com charts API (`{"values": [{"x": 1700000000, "y": 123.4}]}`)
"""

from __future__ import annotations

import csv
import json
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from engine.data.source import FeedPoint

FEEDS = ("macro", "sentiment", "onchain")
Fetch = Callable[[str], "bytes | str"]
DAY_MS = 86_400_000


class FeedFormatError(ValueError):
    """A feed document is not in the expected format; the message names the field."""


def _check_feed(feed: str) -> str:
    if feed not in FEEDS:
        raise ValueError(f"feed: must be one of {', '.join(FEEDS)}, got {feed!r}")
    return feed


def http_fetch(url: str, timeout_s: float = 10.0) -> bytes:
    """GET a URL with a timeout (the production fetch; tests inject a recording instead)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url: only http(s) URLs are fetched, got {url!r}")
    req = urllib.request.Request(url, headers={"User-Agent": "quantdesk/0.1", "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - scheme checked above
        return resp.read()


def _points_in(points: list[FeedPoint], since: int | None, until: int | None) -> list[FeedPoint]:
    """Points in [since, until), oldest first."""
    return sorted((p for p in points if (since is None or p.ts >= since) and (until is None or p.ts < until)),
                  key=lambda p: (p.series, p.ts))


# --- parsers: document -> points (bad values are passed on as NaN so validation quarantines them) --------------
def parse_fear_greed(doc: Any, series: str = "fear_greed", publish_lag_ms: int = 0) -> list[FeedPoint]:
    """alternative.me /fng/ JSON: daily index 0-100, `timestamp` in epoch seconds."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("data"), list):
        raise FeedFormatError("fear_greed: expected an object with a 'data' list")
    meta_error = (doc.get("metadata") or {}).get("error")
    if meta_error:
        raise FeedFormatError(f"fear_greed: the endpoint reported an error: {meta_error}")
    out = []
    for item in doc["data"]:
        ts = int(item["timestamp"]) * 1000
        out.append(FeedPoint(series, ts, ts + publish_lag_ms, _num(item.get("value"))))
    return out


def parse_fred(doc: Any, series: str, publish_lag_ms: int = DAY_MS) -> list[FeedPoint]:
    """FRED /series/observations JSON: daily values by date; known one day later by default."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("observations"), list):
        raise FeedFormatError("fred: expected an object with an 'observations' list")
    out = []
    for item in doc["observations"]:
        day = datetime.strptime(str(item["date"]), "%Y-%m-%d").replace(tzinfo=timezone.utc)
        ts = int(day.timestamp() * 1000)
        raw = item.get("value")
        if raw == ".":  # FRED's marker for "no observation that day" (holiday): not a value, not a row
            continue
        out.append(FeedPoint(series, ts, ts + publish_lag_ms, _num(raw)))
    return out


def parse_blockchain_chart(doc: Any, series: str, publish_lag_ms: int = DAY_MS) -> list[FeedPoint]:
    """blockchain.com /charts/<name>?format=json: `values` of {x: epoch seconds, y: value}."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("values"), list):
        raise FeedFormatError("blockchain_chart: expected an object with a 'values' list")
    if doc.get("status", "ok") != "ok":
        raise FeedFormatError(f"blockchain_chart: status is {doc.get('status')!r}")
    out = []
    for item in doc["values"]:
        ts = int(item["x"]) * 1000
        out.append(FeedPoint(series, ts, ts + publish_lag_ms, _num(item.get("y"))))
    return out


PARSERS: dict[str, Callable[..., list[FeedPoint]]] = {
    "fear_greed": parse_fear_greed,
    "fred": parse_fred,
    "blockchain_chart": parse_blockchain_chart,
}


def _num(value: Any) -> float:
    """A float, or NaN for anything unreadable (validation quarantines NaN with its reason)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


@dataclass
class HttpJsonFeed:
    """A feed read from one HTTP JSON endpoint through a named parser."""

    feed: str
    url: str
    parser: str
    series: str
    publish_lag_ms: int | None = None
    fetch: Fetch = http_fetch

    def __post_init__(self) -> None:
        _check_feed(self.feed)
        if self.parser not in PARSERS:
            raise ValueError(f"parser: must be one of {', '.join(PARSERS)}, got {self.parser!r}")
        self.id = f"http:{self.parser}"

    def fetch_feed(self, since: int | None = None, until: int | None = None) -> list[FeedPoint]:
        """Fetch and parse the document; observations in [since, until)."""
        raw = self.fetch(self.url)
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FeedFormatError(f"{self.url}: not JSON: {exc}") from exc
        kwargs: dict[str, Any] = {"series": self.series}
        if self.publish_lag_ms is not None:
            kwargs["publish_lag_ms"] = self.publish_lag_ms
        return _points_in(PARSERS[self.parser](doc, **kwargs), since, until)


@dataclass
class FileFeed:
    """A feed read from a CSV (`ts,series,value[,published_ts]`) or JSON list of such objects."""

    feed: str
    path: Path

    def __post_init__(self) -> None:
        _check_feed(self.feed)
        self.path = Path(self.path).expanduser()
        if not self.path.exists():
            raise FileNotFoundError(f"feed file: {self.path} does not exist")
        self.id = "file"

    def fetch_feed(self, since: int | None = None, until: int | None = None) -> list[FeedPoint]:
        """All observations of the file in [since, until); published_ts defaults to ts."""
        if self.path.suffix.lower() == ".json":
            rows = json.loads(self.path.read_text())
            if not isinstance(rows, list):
                raise FeedFormatError(f"{self.path}: expected a JSON list of {{ts, series, value}} objects")
        else:
            with self.path.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
            if rows and not {"ts", "series", "value"} <= set(rows[0]):
                raise FeedFormatError(f"{self.path}: expected columns ts,series,value[,published_ts]")
        points = []
        for row in rows:
            ts = int(float(row["ts"]))
            published = row.get("published_ts")
            points.append(FeedPoint(str(row["series"]), ts, int(float(published)) if published not in (None, "")
                                    else ts, _num(row.get("value"))))
        return _points_in(points, since, until)


def make_feed(feed: str, spec: str, settings: Any = None, fetch: Fetch | None = None) -> Any:
    """Build a FeedSource: "sim", "file:<path>" or "http:<parser>:<series>:<url>"."""
    _check_feed(feed)
    if spec == "sim":
        from engine.data.factory import make_source

        sim = make_source("sim", settings)
        return sim.feed_source(feed)
    if spec.startswith("file:"):
        return FileFeed(feed, Path(spec[5:]))
    if spec.startswith("http:"):
        parts = spec.split(":", 3)
        if len(parts) != 4:
            raise ValueError(f"feed spec: expected http:<parser>:<series>:<url>, got {spec!r}")
        _, parser, series, url = parts
        return HttpJsonFeed(feed, url, parser, series, fetch=fetch or http_fetch)
    raise ValueError(f"feed spec: expected sim, file:<path> or http:<parser>:<series>:<url>, got {spec!r}")
