"""Fault injection for the twin: chosen at start (`--faults FILE`, TOML or JSON) or changed live (POST /admin/faults).

Fields: latency_ms (added to every REST answer), http_5xx (the next N REST requests answer `http_5xx_status`),
rate_limit (the next N answer 429 with Retry-After `retry_after_s` and Binance's weight headers), error_rate and
error_status (a seeded share of REST requests fail), path_prefix (only requests under it are hit by the counted and
random faults), stale_streams (streams stop sending but stay connected), drop_ws (close every websocket now; a
one-shot action, not a state), reject_orders (orders answer -2010), partial_fill (0..1: each fill takes only this
share, so orders end partially filled). Unknown keys are refused naming them.
"""

from __future__ import annotations

import json
import random
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping


class FaultsError(ValueError):
    """A faults file or admin request is wrong; the message names the field."""


@dataclass
class Faults:
    """The twin's current faults (mutable: the admin endpoint changes them while it runs)."""

    latency_ms: float = 0.0
    http_5xx: int = 0
    http_5xx_status: int = 503
    rate_limit: int = 0
    retry_after_s: int = 1
    error_rate: float = 0.0
    error_status: int = 500
    path_prefix: str = ""
    stale_streams: bool = False
    reject_orders: bool = False
    partial_fill: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def update(self, changes: Mapping[str, Any]) -> list[str]:
        """Apply changes (validated); returns one-shot actions asked for (e.g. "drop_ws")."""
        actions = []
        known = {f.name: f.type for f in fields(self)}
        for name, value in changes.items():
            if name == "drop_ws":
                if value:
                    actions.append("drop_ws")
                continue
            if name not in known:
                raise FaultsError(f"faults.{name}: unknown fault (known: {', '.join(sorted(known))}, drop_ws)")
            setattr(self, name, _check(name, value, getattr(self, name)))
        if not 0.0 <= self.partial_fill < 1.0:
            raise FaultsError(f"faults.partial_fill: must be in [0, 1), got {self.partial_fill!r}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise FaultsError(f"faults.error_rate: must be in [0, 1], got {self.error_rate!r}")
        for name in ("http_5xx_status", "error_status"):
            if not 500 <= getattr(self, name) <= 599:
                raise FaultsError(f"faults.{name}: must be a 5xx status, got {getattr(self, name)!r}")
        if "seed" in changes:
            self._rng = random.Random(self.seed)
        return actions

    def as_dict(self) -> dict[str, Any]:
        """The current faults as plain values."""
        return asdict(self)

    def rest_fault(self, path: str) -> tuple[int, dict[str, str]] | None:
        """The (status, headers) a REST request must fail with now, or None; consumes counted faults."""
        if self.path_prefix and not path.startswith(self.path_prefix):
            return None
        if path.startswith("/admin"):
            return None
        if self.rate_limit > 0:
            self.rate_limit -= 1
            return 429, {"Retry-After": str(self.retry_after_s)}
        if self.http_5xx > 0:
            self.http_5xx -= 1
            return self.http_5xx_status, {}
        if self.error_rate and self._rng.random() < self.error_rate:
            return self.error_status, {}
        return None


def _check(name: str, value: Any, current: Any) -> Any:
    """Coerce a fault value to the type of its current value, or raise naming it."""
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise FaultsError(f"faults.{name}: expected true or false, got {value!r}")
        return value
    if isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FaultsError(f"faults.{name}: expected a non-negative integer, got {value!r}")
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise FaultsError(f"faults.{name}: expected a non-negative number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise FaultsError(f"faults.{name}: expected a string, got {value!r}")
    return value


def load_faults(path: str | Path | None) -> Faults:
    """Faults from a TOML or JSON file (none = no faults); raises FaultsError naming the file or field."""
    faults = Faults()
    if path is None:
        return faults
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise FaultsError(f"--faults {p}: cannot read: {exc.strerror}") from exc
    try:
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise FaultsError(f"--faults {p}: not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {exc}") from exc
    faults.update(data.get("faults", data) if isinstance(data, dict) else {})
    return faults
