"""One TOML file plus QUANTDESK__SECTION__KEY environment overrides, validated into frozen settings.

Every section is a frozen dataclass. Unknown keys and wrong types fail at start with a `ConfigError` that names the
offending key as `section.key`, so a typo in quantdesk.toml never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from engine.config_rules import Check, ConfigError, check_value, cross_problems, field_checks, shown
from engine.config_sections import (  # the sections, re-exported: import them from here
    StoreConfig, DataConfig, SimulatorConfig, BacktestConfig,
    MLConfig, RiskConfig, TriggerConfig, ExchangeConfig,
    ExecutionConfig, RetentionConfig, RuntimeConfig, LifecycleConfig,
    ReoptConfig, StrategyInstanceConfig, ConsoleConfig, AlertChannelConfig,
    AlertsConfig, EngineConfig,
)

DEFAULT_CONFIG_FILE = "quantdesk.toml"
ENV_PREFIX = "QUANTDESK__"


def _default_instances() -> dict[str, StrategyInstanceConfig]:
    return {
        "quantum_momentum": StrategyInstanceConfig(strategy="quantum_momentum", timeframe="1m"),
        "macro_trend": StrategyInstanceConfig(strategy="macro_trend", timeframe="1m"),
    }


@dataclass(frozen=True)
class Settings:
    """The whole validated configuration."""

    store: StoreConfig = field(default_factory=StoreConfig)
    data: DataConfig = field(default_factory=DataConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    ml: MLConfig = field(default_factory=MLConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    triggers: TriggerConfig = field(default_factory=TriggerConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    reopt: ReoptConfig = field(default_factory=ReoptConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    strategies: dict[str, StrategyInstanceConfig] = field(default_factory=_default_instances)
    config_path: str = ""

    def store_url(self) -> str:
        """SQLAlchemy URL of the state store."""
        from engine.store.urls import store_url_for  # pure string rules; no database driver is imported

        return store_url_for(self.store.url or self.store.path)


_ENUMS: dict[str, tuple[str, ...]] = {}  # extra "section.key" -> choices, beside the fields' own `ranged(choices=)`


def _coerce(value: Any, tp: Any, key: str, problems: list[str]) -> Any:
    """Check `value` against the annotation `tp`, converting lists to tuples; raise naming `key`."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {shown(key, value)}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {shown(key, value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {shown(key, value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {shown(key, value)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {shown(key, value)}")
        (item_tp, _ellipsis) = typing.get_args(tp)
        return tuple(_coerce(v, item_tp, f"{key}[{i}]", problems) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table, got {shown(key, value)}")
        k_tp, v_tp = typing.get_args(tp)
        return {str(k): _coerce(v, v_tp, f"{key}.{k}", problems) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            try:
                return _coerce(value, arm, key, problems)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {shown(key, value)} does not match {tp}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, problems)
    raise ConfigError(f"{key}: unsupported type {tp}")


def _build(cls: type, raw: Any, prefix: str, problems: list[str]) -> Any:
    """Build dataclass `cls` from a mapping; unknown keys, wrong types and out-of-range values go to `problems`."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix}: expected a table, got {shown(prefix, raw)}")
    hints = typing.get_type_hints(cls)
    checks = field_checks(cls)
    names = set(checks)
    for name in sorted(set(raw) - names - {"config_path"}):
        where = f"{prefix}.{name}" if prefix else name
        problems.append(f"{where}: unknown key (known: {', '.join(sorted(names - {'config_path'}))})")
    kwargs = {}
    for name, value in raw.items():
        if name not in names:
            continue
        key = f"{prefix}.{name}" if prefix else name
        try:
            kwargs[name] = _coerce(value, hints[name], key, problems)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        check = checks[name] or (Check(choices=_ENUMS[key]) if key in _ENUMS else None)
        bad = check_value(key, kwargs[name], check)
        if bad:
            problems.append(bad)
    built = cls(**kwargs)
    problems.extend(cross_problems(built, prefix))
    return built


def _parse_env_value(text: str) -> Any:
    """Parse an environment override as a TOML value, falling back to a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Merge QUANTDESK__SECTION__KEY[__SUBKEY] variables into the raw table."""
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__") if p]
        if len(parts) < 2:
            raise ConfigError(f"{name}: expected {ENV_PREFIX}SECTION__KEY")
        node = raw
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{'.'.join(parts)}: cannot override inside a non-table value")
        node[parts[-1]] = _parse_env_value(text)


def load_settings(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """Load quantdesk.toml (missing file = defaults), apply env and explicit overrides, and validate."""
    environ = os.environ if environ is None else environ
    explicit = path is not None or "QUANTDESK_CONFIG" in environ
    cfg_path = Path(path if path is not None else environ.get("QUANTDESK_CONFIG", DEFAULT_CONFIG_FILE))
    raw: dict[str, Any] = {}
    if cfg_path.exists():
        try:
            raw = tomllib.loads(cfg_path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{cfg_path}: not valid TOML: {exc}") from exc
    elif explicit:
        raise ConfigError(f"{cfg_path}: config file not found")
    _apply_env(raw, environ)
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        raw.setdefault(section, {})[key] = value
    strategies_raw = raw.pop("strategies", None)
    problems: list[str] = []
    settings = _build(Settings, raw, "", problems) if raw else Settings()
    if strategies_raw is not None:
        if not isinstance(strategies_raw, Mapping):
            raise ConfigError("strategies: expected a table of strategy instances")
        instances = {}
        for inst_id, body in strategies_raw.items():
            body = dict(body) if isinstance(body, Mapping) else body
            if isinstance(body, dict):
                body.setdefault("strategy", inst_id)
            instances[inst_id] = _build(StrategyInstanceConfig, body, f"strategies.{inst_id}", problems)
        settings = dataclasses.replace(settings, strategies=instances)
    if problems:
        raise ConfigError("\n".join(problems), problems)
    return dataclasses.replace(settings, config_path=str(cfg_path))


def settings_with(settings: Settings, **section_updates: Mapping[str, Any]) -> Settings:
    """Return a copy with some section fields replaced, e.g. settings_with(s, store={"path": p})."""
    changes = {}
    for section, updates in section_updates.items():
        changes[section] = dataclasses.replace(getattr(settings, section), **updates)
    return dataclasses.replace(settings, **changes)
