"""The trade validator's inline path for plain ccxt trade dicts (the streaming hot path) decides exactly as the full
path: same good rows, same rejections and reasons, same duplicate count, for clean and dirty tapes alike."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any, Iterator

from engine.data.validation import TradeValidator


class _Trade(Mapping):
    """A trade that is a Mapping but not a dict: always takes the full path."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def _tape(rng: random.Random, n: int) -> list[dict[str, Any]]:
    odd = [None, "", "x", "12.5", math.nan, math.inf, -1.0, 0.0, True, 3, "60000.5"]
    out = []
    for i in range(n):
        trade = {"id": str(rng.randrange(n // 2)), "timestamp": 1_700_000_000_000 + rng.randrange(10_000),
                 "price": rng.choice([60_000.0, 60_000.5]), "amount": rng.choice([0.01, 0.02]),
                 "side": rng.choice(["buy", "sell"])}
        if rng.random() < 0.3:
            field = rng.choice(list(trade))
            trade[field] = rng.choice(odd + ["short", "BUY", -5, 1.5])
        if rng.random() < 0.05:
            del trade[rng.choice(list(trade))]
        out.append(trade)
    return out


def test_inline_and_full_paths_agree_on_random_dirty_tapes() -> None:
    rng = random.Random(7)
    for _ in range(40):
        tape = _tape(rng, 400)
        fast, slow = TradeValidator(), TradeValidator()
        good_fast, bad_fast = fast.check(tape)
        good_slow, bad_slow = slow.check([_Trade(t) for t in tape])
        assert good_fast == good_slow
        assert [(r.ts, r.reason) for r in bad_fast] == [(r.ts, r.reason) for r in bad_slow]
        assert fast.duplicates == slow.duplicates
        assert len(good_fast) + len(bad_fast) + fast.duplicates == len(tape)  # every row accounted for
