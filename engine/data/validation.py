"""Row checks for market data: every bad row becomes a `Rejected` with its reason, so ingest can quarantine it.

Validators never drop a row silently and never raise on bad data: they split a batch into good rows (normalised to
plain Python numbers) and rejected rows (the original payload plus a human-readable reason). Candle and trade
validators are streaming (they remember the last accepted timestamp across pages) so out-of-order and conflicting
duplicate rows are caught across page boundaries too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

# Funding above 5% per interval has never been a real settled rate on a major venue (Binance caps at +-3% on its
# widest contracts); anything beyond is a unit or parsing error.
MAX_ABS_FUNDING_RATE = 0.05
CANDLE_FIELDS = ("ts", "open", "high", "low", "close", "volume")
TRADE_SIDES = ("buy", "sell")


@dataclass(frozen=True)
class Rejected:
    """One rejected row: what kind of data, its timestamp if readable, the original payload and why."""

    kind: str  # candle | trade | book | funding | feed
    ts: int | None
    payload: Any
    reason: str


def _number(value: Any) -> float | None:
    """A float from an int/float/numeric string, or None when the value is not a number at all."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    try:
        return float(value)  # numpy scalars, Decimal
    except (TypeError, ValueError):
        return None


def _timestamp(value: Any) -> tuple[int | None, str | None]:
    """An epoch-ms int from a value, or the reason it is not one."""
    num = _number(value)
    if num is None:
        return None, f"timestamp is not a number: {value!r}"
    if math.isnan(num) or math.isinf(num):
        return None, f"timestamp is {num}"
    if num != int(num):
        return None, f"timestamp is not an integer number of ms: {value!r}"
    if num < 0:
        return None, f"negative timestamp {int(num)}"
    return int(num), None


def _check_price_fields(values: Mapping[str, Any], names: Sequence[str],
                        positive: Sequence[str]) -> tuple[dict[str, float], str | None]:
    """Convert named fields to floats; return the reason for the first missing, NaN, infinite or non-positive one."""
    out: dict[str, float] = {}
    for name in names:
        raw = values.get(name)
        num = _number(raw)
        if num is None:
            return out, f"{name} is missing or not a number: {raw!r}"
        if math.isnan(num):
            return out, f"{name} is NaN"
        if math.isinf(num):
            return out, f"{name} is infinite"
        if name in positive and num <= 0:
            return out, f"non-positive {name} {num:g}"
        out[name] = num
    return out, None


@dataclass
class CandleValidator:
    """Streaming OHLCV checks for one series; feed it pages in order with `check(rows)`."""

    timeframe_ms: int
    last_ts: int | None = None
    accepted: dict[int, tuple[float, ...]] = field(default_factory=dict)
    duplicates: int = 0  # exact repeats of an accepted row (same ts, same values): counted, not stored twice

    def check(self, rows: Iterable[Any]) -> tuple[list[tuple[int, float, float, float, float, float]], list[Rejected]]:
        """Split rows into (good [ts, o, h, l, c, v] tuples, rejected rows with reasons)."""
        good: list[tuple[int, float, float, float, float, float]] = []
        bad: list[Rejected] = []
        for row in rows:
            reason, ts, values = self._row(row)
            if reason is not None:
                bad.append(Rejected("candle", ts, _jsonable(row), reason))
                continue
            assert ts is not None and values is not None
            previous = self.accepted.get(ts)
            if previous is not None:
                if previous == values:
                    self.duplicates += 1
                else:
                    bad.append(Rejected("candle", ts, _jsonable(row),
                                        f"duplicate timestamp {ts} with different values (first kept: {list(previous)})"))
                continue
            if self.last_ts is not None and ts < self.last_ts:
                bad.append(Rejected("candle", ts, _jsonable(row), f"out of order: ts {ts} after ts {self.last_ts}"))
                continue
            self.accepted[ts] = values
            self.last_ts = ts
            good.append((ts, *values))  # type: ignore[arg-type]
            if len(self.accepted) > 8192:  # bounded memory: older timestamps fail the order check anyway
                keep = sorted(self.accepted)[-1024:]
                self.accepted = {k: self.accepted[k] for k in keep}
        return good, bad

    def _row(self, row: Any) -> tuple[str | None, int | None, tuple[float, ...] | None]:
        if isinstance(row, Mapping):
            row = [row.get(name) for name in CANDLE_FIELDS]
        if not isinstance(row, (list, tuple)) or len(row) < 6:
            return f"expected 6 fields [ts, open, high, low, close, volume], got {row!r}", None, None
        ts, why = _timestamp(row[0])
        if why is not None:
            return why, None, None
        assert ts is not None
        if ts % self.timeframe_ms:
            return f"timestamp {ts} is not aligned to the {self.timeframe_ms} ms timeframe", ts, None
        nums, why = _check_price_fields(dict(zip(CANDLE_FIELDS[1:], row[1:6])), CANDLE_FIELDS[1:],
                                        ("open", "high", "low", "close"))
        if why is not None:
            return why, ts, None
        o, h, lo, c, v = (nums[k] for k in CANDLE_FIELDS[1:])
        if h < lo:
            return f"high < low ({h:g} < {lo:g})", ts, None
        if not lo <= o <= h:
            return f"open {o:g} outside [low {lo:g}, high {h:g}]", ts, None
        if not lo <= c <= h:
            return f"close {c:g} outside [low {lo:g}, high {h:g}]", ts, None
        if v < 0:
            return f"negative volume {v:g}", ts, None
        return None, ts, (o, h, lo, c, v)


@dataclass
class TradeValidator:
    """Streaming checks for a public trade tape (ccxt trade dicts); dedupes exact repeats by trade id."""

    seen: dict[str, tuple[int, float, float, str]] = field(default_factory=dict)
    duplicates: int = 0

    def check(self, trades: Iterable[Any]) -> tuple[list[tuple[str, int, float, float, str]], list[Rejected]]:
        """Split trades into (good (id, ts, price, amount, side) tuples, rejected rows with reasons)."""
        good: list[tuple[str, int, float, float, str]] = []
        bad: list[Rejected] = []
        seen, inf = self.seen, math.inf
        for trade in trades:
            if type(trade) is dict:  # the common case, a ccxt trade: plain types checked inline (3x faster)
                ts, price, amount, side, tid = (trade.get("timestamp"), trade.get("price"), trade.get("amount"),
                                                trade.get("side"), trade.get("id"))
                if (type(ts) is int and ts >= 0 and type(price) is float and type(amount) is float
                        and 0.0 < price < inf and 0.0 < amount < inf and (side == "buy" or side == "sell")
                        and tid is not None and tid != ""):
                    trade_id = str(tid)
                    key = (ts, price, amount, side)
                    previous = seen.get(trade_id)
                    if previous is None:
                        seen[trade_id] = key
                        good.append((trade_id, ts, price, amount, side))
                        continue
                    if previous == key:
                        self.duplicates += 1
                        continue
                # anything else (strings, NaN, missing fields, a conflicting duplicate) takes the full path below
            if not isinstance(trade, Mapping):
                bad.append(Rejected("trade", None, _jsonable(trade), f"expected a trade object, got {trade!r}"))
                continue
            payload = {k: trade.get(k) for k in ("id", "timestamp", "side", "price", "amount")}
            ts, why = _timestamp(trade.get("timestamp"))
            if why is None:
                why = self._fields(trade)
            if why is not None:
                bad.append(Rejected("trade", ts, _jsonable(payload), why))
                continue
            assert ts is not None
            key = (ts, float(trade["price"]), float(trade["amount"]), str(trade["side"]))
            trade_id = str(trade["id"])
            previous = self.seen.get(trade_id)
            if previous is not None:
                if previous == key:
                    self.duplicates += 1
                else:
                    bad.append(Rejected("trade", ts, _jsonable(payload),
                                        f"duplicate trade id {trade_id} with different values"))
                continue
            self.seen[trade_id] = key
            good.append((trade_id, *key))
        return good, bad

    @staticmethod
    def _fields(trade: Mapping[str, Any]) -> str | None:
        if trade.get("id") in (None, ""):
            return "trade id is missing"
        if trade.get("side") not in TRADE_SIDES:
            return f"side must be buy or sell, got {trade.get('side')!r}"
        _nums, why = _check_price_fields(trade, ("price", "amount"), ("price", "amount"))
        return why


def check_order_book(book: Any, fallback_ts: int) -> tuple[dict[str, Any] | None, Rejected | None]:
    """Validate one order book snapshot (sorted, uncrossed, positive levels); returns (normalised book, rejection)."""
    if not isinstance(book, Mapping):
        return None, Rejected("book", None, _jsonable(book), f"expected an order book object, got {type(book).__name__}")
    raw_ts = book.get("timestamp")
    ts, why = (fallback_ts, None) if raw_ts is None else _timestamp(raw_ts)
    sides: dict[str, list[tuple[float, float]]] = {}
    for side in ("bids", "asks"):
        levels = book.get(side)
        if why is None and (not isinstance(levels, (list, tuple)) or not levels):
            why = f"{side} side is empty"
        if why is not None:
            break
        parsed: list[tuple[float, float]] = []
        for i, level in enumerate(levels):
            if not isinstance(level, (list, tuple)) or len(level) < 2:
                why = f"{side}[{i}] is not a [price, amount] pair: {level!r}"
                break
            nums, why = _check_price_fields({"price": level[0], "amount": level[1]}, ("price", "amount"),
                                            ("price", "amount"))
            if why is not None:
                why = f"{side}[{i}]: {why}"
                break
            parsed.append((nums["price"], nums["amount"]))
        sides[side] = parsed
    if why is None:
        bids, asks = sides["bids"], sides["asks"]
        if any(bids[i][0] <= bids[i + 1][0] for i in range(len(bids) - 1)):
            why = "bids are not strictly sorted best (highest) first"
        elif any(asks[i][0] >= asks[i + 1][0] for i in range(len(asks) - 1)):
            why = "asks are not strictly sorted best (lowest) first"
        elif bids[0][0] >= asks[0][0]:
            why = f"crossed book: best bid {bids[0][0]:g} >= best ask {asks[0][0]:g}"
    payload = {k: book.get(k) for k in ("symbol", "timestamp", "bids", "asks")}
    if why is not None:
        return None, Rejected("book", ts, _jsonable(payload), why)
    return {"ts": ts, "bids": sides["bids"], "asks": sides["asks"]}, None


def check_funding(rows: Iterable[Any], max_abs_rate: float = MAX_ABS_FUNDING_RATE
                  ) -> tuple[list[tuple[int, float, float | None, float | None]], list[Rejected]]:
    """Split funding rows (ccxt funding-rate history dicts) into good (ts, rate, mark, index) and rejected."""
    good: dict[int, tuple[int, float, float | None, float | None]] = {}
    bad: list[Rejected] = []
    for row in rows:
        if not isinstance(row, Mapping):
            bad.append(Rejected("funding", None, _jsonable(row), f"expected a funding object, got {row!r}"))
            continue
        payload = {k: row.get(k) for k in ("symbol", "timestamp", "fundingRate", "markPrice", "indexPrice")}
        ts, why = _timestamp(row.get("timestamp"))
        rate = _number(row.get("fundingRate"))
        if why is None:
            if rate is None:
                why = f"fundingRate is missing or not a number: {row.get('fundingRate')!r}"
            elif math.isnan(rate) or math.isinf(rate):
                why = f"fundingRate is {rate}"
            elif abs(rate) > max_abs_rate:
                why = f"absurd funding rate {rate:g} (|rate| > {max_abs_rate:g})"
        marks: list[float | None] = []
        for name in ("markPrice", "indexPrice"):
            value = _number(row.get(name)) if row.get(name) is not None else None
            if why is None and value is not None and not (value > 0 and math.isfinite(value)):
                why = f"{name} must be a positive number, got {row.get(name)!r}"
            marks.append(value)
        if why is None and ts in good and good[ts][1] != rate:
            why = f"duplicate funding timestamp {ts} with a different rate"
        if why is not None:
            bad.append(Rejected("funding", ts, _jsonable(payload), why))
            continue
        assert ts is not None and rate is not None
        good[ts] = (ts, rate, marks[0], marks[1])
    return sorted(good.values()), bad


def check_feed_points(points: Iterable[Any]) -> tuple[list[tuple[str, int, int, float]], list[Rejected]]:
    """Split feed points into good (series, ts, published_ts, value) and rejected (NaN, published before observed)."""
    good: dict[tuple[str, int], tuple[str, int, int, float]] = {}
    bad: list[Rejected] = []
    for point in points:
        series = getattr(point, "series", None)
        payload = {k: getattr(point, k, None) for k in ("series", "ts", "published_ts", "value")}
        ts, why = _timestamp(getattr(point, "ts", None))
        published, why_pub = _timestamp(getattr(point, "published_ts", None))
        value = _number(getattr(point, "value", None))
        why = why or (f"published_ts: {why_pub}" if why_pub else None)
        if why is None:
            if not series:
                why = "series name is missing"
            elif value is None or math.isnan(value) or math.isinf(value):
                why = f"value is not a finite number: {payload['value']!r}"
            elif published is not None and ts is not None and published < ts:
                why = f"published_ts {published} is before the observation ts {ts}"
            elif (series, ts) in good and good[(series, ts)][3] != value:
                why = f"duplicate {series} observation at {ts} with a different value"
        if why is not None:
            bad.append(Rejected("feed", ts, _jsonable(payload), why))
            continue
        assert ts is not None and published is not None and value is not None and series
        good[(series, ts)] = (series, ts, published, value)
    return sorted(good.values(), key=lambda r: (r[0], r[1])), bad


def _jsonable(value: Any) -> Any:
    """The payload as JSON-safe data (NaN and infinities as strings, unknown objects as repr)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    num = _number(value)
    return _jsonable(num) if num is not None else repr(value)
