"""The desk's own markets, cached beside state.db, so a live restart can re-arm protection before `load_markets`.

On the real exchange `load_markets` downloads and parses every listing (Binance: thousands of spot and USD-M
markets, megabytes of JSON) before the first protective order could be placed. Re-arming needs only the markets the
desk trades (ids, precision, limits), which change rarely. So the cache keeps just those, written after every full
load, and a restart uses it only when it is younger than `[exchange] markets_cache_hours` and names every symbol.

Why this is safe: the cached markets serve only the re-arm right after connecting; the engine then reloads every
market from the exchange (refusing to start, as before, when that fails or a symbol is gone) and the start-up
reconciliation replaces any protective order whose price or amount the fresh precision would round differently. A
stale tick size can at worst make the exchange reject the re-armed order, which the same reconciliation re-places.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

VERSION = 1


def cache_path(state_path: Path | None, exchange_id: str, base_url: str) -> Path:
    """Where the cache lives: beside a SQLite state.db, else (a PostgreSQL desk) in the engine's working directory,
    where its logs go too; one file per exchange and endpoint."""
    folder = state_path.parent if state_path is not None else Path.cwd()
    tag = "twin" if base_url else "live"
    return folder / f"markets.{exchange_id}.{tag}.json"


def load(path: Path | None, symbols: Iterable[str], max_age_s: float, endpoint: str) -> dict[str, Any] | None:
    """The cached markets of `symbols` when the file is younger than `max_age_s`, was written for `endpoint` and
    lists every symbol; None otherwise (unreadable or corrupt files too: the caller loads from the exchange)."""
    if path is None or max_age_s <= 0:
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != VERSION or doc.get("endpoint") != endpoint:
        return None
    if not 0 <= time.time() - float(doc.get("written_at") or 0) <= max_age_s:
        return None
    markets = doc.get("markets")
    if not isinstance(markets, dict) or any(not isinstance(markets.get(s), dict) for s in symbols):
        return None
    return markets


def save(path: Path | None, markets: dict[str, Any], symbols: Iterable[str], endpoint: str) -> None:
    """Write the markets of `symbols` (atomically: a crash mid-write leaves the old file); errors are ignored, the
    cache only saves time."""
    if path is None:
        return
    doc = {"version": VERSION, "endpoint": endpoint, "written_at": time.time(),
           "markets": {s: markets[s] for s in symbols if s in markets}}
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(doc, default=str))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):
        with contextlib.suppress(OSError):
            tmp.unlink()
