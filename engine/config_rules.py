"""Declarative value checks for the config sections: each field carries its valid range as dataclass metadata.

A section field is declared with `ranged(default, gt=0, le=1)` (or `choice`, `kind=...`); `check_value` turns a value
outside its range into one line naming `section.key`, the value and the range. Floats must always be finite. A key that
looks secret (key/secret/password/token) never has its value echoed. Leaf module: imports only engine.clock.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from engine.clock import timeframe_ms

_SECRET_WORDS = ("key", "secret", "password", "passwd", "token")


class ConfigError(ValueError):
    """One or more configuration values are wrong; each line names the key, the value and the valid range."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]


def looks_secret(key: str) -> bool:
    """True when the last part of a dotted key names a credential, so its value must not be printed."""
    last = key.rsplit(".", 1)[-1].lower()
    return any(word in last for word in _SECRET_WORDS) and last not in ("keys",)


def shown(key: str, value: Any) -> str:
    """How a value appears in an error message: its repr, or a placeholder for a secret-looking key."""
    if looks_secret(key):
        return f"a {type(value).__name__} (value hidden)"
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value) or value.is_integer()):
        return repr(value) if not value.is_integer() else f"{value:g}"
    return repr(list(value)) if isinstance(value, tuple) else repr(value)


def _timeframe_problem(value: str) -> str | None:
    try:
        timeframe_ms(value)
    except ValueError:
        return "must be a timeframe such as 1m, 5m, 1h, 4h, 1d"
    return None


def _source_problem(value: str) -> str | None:
    if value == "sim" or (value.startswith("ccxt:") and len(value) > 5) or (value.startswith("csv:") and len(value) > 4):
        return None
    return "must be sim, ccxt:<exchange id> or csv:<path>"


def _store_url_problem(value: str) -> str | None:
    from engine.store.urls import SUPPORTED, StoreTargetError, store_url_for

    if value == "":
        return None
    try:
        store_url_for(value)
    except StoreTargetError:
        return f"must be empty (sqlite at store.path) or {SUPPORTED.split(', ', 1)[1]}"
    return None


def _store_path_problem(value: str) -> str | None:
    if not value.strip():
        return "must not be empty"
    if "://" in value:
        return "must be a file path (a database URL goes in store.url)"
    return None


def state_target(text: str) -> dict[str, str]:
    """Store settings for a --state argument: a database URL goes to store.url, a path or sqlite:/// URL to
    store.path; anything that is neither is a ConfigError, never a file (rules in engine.store.urls)."""
    from engine.store.urls import StoreTargetError, is_postgres_url, store_url_for

    try:
        url = store_url_for(text)
    except StoreTargetError as exc:
        raise ConfigError(f"--state: {exc}") from exc
    if is_postgres_url(url):
        return {"url": url, "path": "state.db"}
    return {"path": url.split(":///", 1)[1].split("?", 1)[0], "url": ""}


ENGINE_NAME_RE = r"[a-z][a-z0-9_-]{0,31}"  # engine names key locks, doorbells, job tables and file names


def engine_name_problem(value: str) -> str | None:
    """Why `value` cannot name an engine (lower-case letter first, then letters, digits, _ or -, 32 at most)."""
    import re

    if re.fullmatch(ENGINE_NAME_RE, value):
        return None
    return "must be 1-32 characters: a lower-case letter, then lower-case letters, digits, _ or - (e.g. binance-spot)"


def _nonempty_text_problem(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _exchange_id_problem(value: str) -> str | None:
    if value and value.replace("_", "").isalnum() and value.islower() and value[0].isalpha():
        return None
    return "must be a ccxt exchange id such as binance (lower-case letters, digits, _)"


def _base_url_problem(value: str) -> str | None:
    from urllib.parse import urlsplit

    if value == "":
        return None
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
        parts = urlsplit("")
    if parts.scheme in ("http", "https") and parts.hostname and port_ok and parts.path in ("", "/") \
            and not parts.query:
        return None
    return "must be empty (the real exchange) or http(s)://host[:port] with no path, e.g. http://127.0.0.1:8765"


KINDS: dict[str, Callable[[Any], str | None]] = {
    "exchange_id": _exchange_id_problem,
    "base_url": _base_url_problem,
    "timeframe": _timeframe_problem,
    "source": _source_problem,
    "store_url": _store_url_problem,
    "text": _nonempty_text_problem,
    "store_path": _store_path_problem,
    "engine_name": engine_name_problem,
}


@dataclass(frozen=True)
class Check:
    """The valid range of one field: numeric bounds, allowed choices, non-empty lists, or a named kind."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()
    nonempty: bool = False
    kind: str = ""  # applied to the value, or to each item of a list
    free: bool = False  # any value of the right type is valid (declared on purpose, e.g. a seed's sign)

    def describe(self) -> str:
        """The range in words, e.g. 'must be > 0 and <= 1'."""
        parts = [f"{op} {bound:g}" for op, bound in ((">", self.gt), (">=", self.ge), ("<", self.lt),
                                                     ("<=", self.le)) if bound is not None]
        return "must be " + " and ".join(parts) if parts else "must be a finite number"

    def problem(self, value: Any) -> str | None:
        """Why `value` is outside this range, or None when it is valid."""
        if isinstance(value, float) and not math.isfinite(value):
            return self.describe() if self.gt is not None or self.ge is not None else "must be a finite number"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            low_bad = (self.gt is not None and not value > self.gt) or (self.ge is not None and not value >= self.ge)
            high_bad = (self.lt is not None and not value < self.lt) or (self.le is not None and not value <= self.le)
            return self.describe() if low_bad or high_bad else None
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}"
        if isinstance(value, tuple):
            if self.nonempty and not value:
                return "must be a list of at least one item"
            for item in value:
                bad = self._kind_problem(item)
                if bad:
                    return f"{bad} (item {item!r})"
            return None
        return self._kind_problem(value)

    def _kind_problem(self, value: Any) -> str | None:
        if not self.kind or not isinstance(value, str):
            return None
        return KINDS[self.kind](value)


def ranged(default: Any, **rules: Any) -> Any:
    """A dataclass field with a default and its valid range (keyword arguments of `Check`)."""
    check = Check(**{k: tuple(v) if k == "choices" else v for k, v in rules.items()})
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"check": check})
    return field(default=default, metadata={"check": check})


def check_value(key: str, value: Any, check: Check | None) -> str | None:
    """One error line for `value` at `key` against its check (floats always finite), or None when valid."""
    if check is None:
        if isinstance(value, float) and not math.isfinite(value):
            return f"{key}: must be a finite number, got {shown(key, value)}"
        return None
    bad = check.problem(value)
    return f"{key}: {bad}, got {shown(key, value)}" if bad else None


def field_checks(cls: type) -> dict[str, Check | None]:
    """Field name -> declared Check of a section dataclass (None where nothing is declared)."""
    return {f.name: f.metadata.get("check") for f in dataclasses.fields(cls)}


def cross_problems(section: Any, prefix: str) -> list[str]:
    """Problems between fields of one section (its optional `relations()`: key, message pairs)."""
    relations = getattr(section, "relations", None)
    if relations is None:
        return []
    return [f"{prefix}.{name}: {message}" for name, message in relations()]


def undeclared_fields(settings_cls: type) -> list[str]:
    """Every numeric or enumerated field of every section of `settings_cls` without a declared range (must stay
    empty; the caller passes engine.config.Settings, so this leaf module never imports it)."""
    import typing

    missing = []
    sections = [(f.name, f.type) for f in dataclasses.fields(settings_cls)]
    hints = typing.get_type_hints(settings_cls)
    for name, _ in sections:
        tp = hints[name]
        if typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        if not dataclasses.is_dataclass(tp):
            continue
        sub_hints = typing.get_type_hints(tp)
        for f in dataclasses.fields(tp):
            if sub_hints[f.name] in (int, float) and "check" not in f.metadata:
                missing.append(f"{name}.{f.name}")
    return missing
