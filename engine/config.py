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

DEFAULT_CONFIG_FILE = "quantdesk.toml"
ENV_PREFIX = "QUANTDESK__"


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key."""


@dataclass(frozen=True)
class StoreConfig:
    """Where state lives: a SQLite path by default, any SQLAlchemy URL for a server."""

    path: str = "state.db"
    url: str = ""  # e.g. postgresql+psycopg://user@host/quantdesk; empty means sqlite at `path`
    busy_timeout_ms: int = 5000


@dataclass(frozen=True)
class DataConfig:
    """Which market data the engine pulls, and when data counts as stale."""

    source: str = "sim"  # sim | ccxt:<exchange id> | csv:<path>
    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    timeframes: tuple[str, ...] = ("1m",)
    backfill_days: int = 30
    pull_interval_s: float = 5.0
    stale_after_s: float = 180.0
    feeds: tuple[str, ...] = ("macro", "sentiment", "onchain")
    # feed -> spec ("file:<path>" or "http:<parser>:<series>:<url>"); a feed without one uses the simulator's own
    feed_specs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SimulatorConfig:
    """The embedded simulated exchange: seed, live speed-up and history start."""

    seed: int = 7
    speed: float = 1.0  # simulated seconds per wall-clock second when running live
    history_days: int = 30  # history available before "now" for backfills
    start_price_btc: float = 60000.0


@dataclass(frozen=True)
class BacktestConfig:
    """Costs and fill model shared by research backtests and the live twin."""

    initial_capital: float = 100_000.0
    fee_maker: float = 0.0002
    fee_taker: float = 0.0005
    half_spread_bps: float = 1.0
    impact_coef: float = 0.1  # square-root impact: coef * sigma * sqrt(qty / bar volume)
    fill_model: str = "next_open"  # next_open | next_close | vwap
    reports_dir: str = "reports"


@dataclass(frozen=True)
class MLConfig:
    """Meta-labeling, model registry and retraining schedule."""

    models_dir: str = "models"
    pt_mult: float = 2.0
    sl_mult: float = 1.0
    max_holding_bars: int = 48
    vol_span: int = 100
    train_window_days: int = 730
    retrain_interval_hours: float = 24.0
    cv_folds: int = 4  # purged folds for model choice (each costs two fits: HGB and RF)
    embargo_pct: float = 0.01
    max_model_age_hours: float = 72.0
    train_at_start: bool = True  # a strategy with no champion trains soon after engine start, not a day later
    first_train_delay_s: float = 20.0  # after start (staggered per strategy), out of the start-up rush
    # walk-forward evidence (`quantdesk model evaluate`) and the overlay's on/off rule
    eval_retrain_every_days: float = 90.0  # the evaluation's retraining schedule
    eval_anchored: bool = True  # anchored (all past labels) or rolling (the last 4 retrain intervals)
    eval_bootstrap: int = 1000  # block-bootstrap samples for the Sharpe-difference interval
    eval_ci: float = 0.9  # its confidence level
    overlay_sharpe_floor: float = 0.0  # the interval's lower bound must exceed this for the overlay to switch on
    overlay_requires_evidence: bool = True  # no recorded evidence -> overlay off (primary signal with its own Kelly)

    def __post_init__(self) -> None:
        """Range checks naming the key (types are checked by the loader)."""
        if not self.eval_retrain_every_days > 0:
            raise ConfigError(f"ml.eval_retrain_every_days: must be > 0, got {self.eval_retrain_every_days}")
        if self.eval_bootstrap < 10:
            raise ConfigError(f"ml.eval_bootstrap: need at least 10 samples, got {self.eval_bootstrap}")
        if not 0.0 < self.eval_ci < 1.0:
            raise ConfigError(f"ml.eval_ci: must be in (0, 1), got {self.eval_ci}")
        if not -10.0 <= self.overlay_sharpe_floor <= 10.0:
            raise ConfigError(f"ml.overlay_sharpe_floor: an annualised Sharpe difference in [-10, 10], "
                              f"got {self.overlay_sharpe_floor}")


@dataclass(frozen=True)
class RiskConfig:
    """Bet sizing and limits."""

    sizing: str = "kelly"  # kelly | probability | fixed
    kelly_fraction: float = 0.25
    min_probability: float = 0.0  # extra gate on the meta probability; Kelly already needs p > 1/(1+b)
    max_trade_fraction: float = 0.05  # of instance capital, per trade
    max_strategy_fraction: float = 0.5  # gross exposure per strategy instance / its capital
    max_symbol_fraction: float = 0.3  # gross exposure per symbol / portfolio equity
    max_portfolio_leverage: float = 1.5
    vpin_bucket_volume_frac: float = 0.02  # bucket size as a fraction of mean daily volume
    vpin_window: int = 50
    vpin_cdf_window: int = 500
    depth_bps: float = 10.0
    max_depth_fraction: float = 0.1  # a trade may take at most this share of same-side book depth
    vpin_cdf_scale_from: float = 0.8  # above this VPIN CDF, size shrinks linearly to zero at CDF 1


@dataclass(frozen=True)
class TriggerConfig:
    """Emergency trigger thresholds (reduce, then halt) and hysteresis."""

    vpin_cdf_reduce: float = 0.95
    vpin_cdf_halt: float = 0.99
    daily_drawdown_reduce: float = 0.03
    daily_drawdown_halt: float = 0.05
    total_drawdown_reduce: float = 0.10
    total_drawdown_halt: float = 0.15
    spread_bps_reduce: float = 25.0
    spread_bps_halt: float = 60.0
    depth_collapse_reduce: float = 0.3  # depth / its rolling median
    depth_collapse_halt: float = 0.1
    stale_data_reduce_s: float = 180.0
    stale_data_halt_s: float = 600.0
    funding_abs_reduce: float = 0.001
    funding_abs_halt: float = 0.003
    inflow_z_reduce: float = 3.0
    inflow_z_halt: float = 5.0
    error_rate_reduce: float = 0.2
    error_rate_halt: float = 0.5
    recon_mismatch_halt: float = 1e-6
    hysteresis: float = 0.9  # a rule clears only below threshold * hysteresis
    clear_after_s: float = 300.0


@dataclass(frozen=True)
class ExecutionConfig:
    """Broker choice and execution realism."""

    mode: str = "paper"  # paper | live
    exchange: str = "binance"
    paper_latency_ms: float = 50.0
    queue_ahead_fraction: float = 0.5
    order_timeout_s: float = 10.0
    max_retries: int = 4
    reconcile_interval_s: float = 60.0
    rebalance_band: float = 0.1  # re-size a held position only when off target by this share of its allocation
    min_order_notional: float = 10.0  # quote units; smaller orders are not sent


@dataclass(frozen=True)
class RuntimeConfig:
    """Engine service timing and files."""

    command_poll_ms: int = 50
    monitor_interval_s: float = 5.0
    equity_interval_s: float = 10.0
    heartbeat_interval_s: float = 1.0
    heartbeat_timeout_s: float = 5.0
    misfire_grace_s: int = 30
    log_dir: str = "logs"
    run_dir: str = ""  # pid/lock files; empty means beside state.db


@dataclass(frozen=True)
class LifecycleConfig:
    """Promotion gates and automatic demotion."""

    min_paper_days: float = 14.0
    min_paper_trades: int = 30
    min_dsr: float = 0.0
    max_drift_bps: float = 25.0
    live_small_fraction: float = 0.1
    demote_drawdown: float = 0.2


@dataclass(frozen=True)
class StrategyInstanceConfig:
    """One running instance of a strategy with its own capital and stage."""

    strategy: str = ""
    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    timeframe: str = "1m"
    capital: float = 50_000.0
    stage: str = "paper"  # research | paper | live-small | live
    enabled: bool = True
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConsoleConfig:
    """Console refresh rate and key map (action id -> key)."""

    refresh_hz: float = 4.0
    keys: dict[str, str] = field(default_factory=dict)
    theme: str = "textual-dark"


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
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    strategies: dict[str, StrategyInstanceConfig] = field(default_factory=_default_instances)
    config_path: str = ""

    def store_url(self) -> str:
        """SQLAlchemy URL of the state store."""
        return self.store.url or f"sqlite:///{Path(self.store.path).expanduser().resolve()}"


_ENUMS: dict[str, tuple[str, ...]] = {
    "execution.mode": ("paper", "live"),
    "risk.sizing": ("kelly", "probability", "fixed"),
    "backtest.fill_model": ("next_open", "next_close", "vwap"),
}
_STAGES = ("research", "paper", "live-small", "live")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`, converting lists to tuples; raise naming `key`."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp, _ellipsis) = typing.get_args(tp)
        return tuple(_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        k_tp, v_tp = typing.get_args(tp)
        return {str(k): _coerce(v, v_tp, f"{key}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            try:
                return _coerce(value, arm, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} does not match {tp}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    raise ConfigError(f"{key}: unsupported type {tp}")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    """Build dataclass `cls` from a mapping, rejecting unknown keys."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix}: expected a table, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names - {"config_path"})
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(names - {'config_path'}))})")
    kwargs = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], key)
        if key in _ENUMS and kwargs[name] not in _ENUMS[key]:
            raise ConfigError(f"{key}: must be one of {', '.join(_ENUMS[key])}, got {kwargs[name]!r}")
    return cls(**kwargs)


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
    settings = _build(Settings, raw, "") if raw else Settings()
    if strategies_raw is not None:
        if not isinstance(strategies_raw, Mapping):
            raise ConfigError("strategies: expected a table of strategy instances")
        instances = {}
        for inst_id, body in strategies_raw.items():
            body = dict(body) if isinstance(body, Mapping) else body
            if isinstance(body, dict):
                body.setdefault("strategy", inst_id)
            inst = _build(StrategyInstanceConfig, body, f"strategies.{inst_id}")
            if inst.stage not in _STAGES:
                raise ConfigError(f"strategies.{inst_id}.stage: must be one of {', '.join(_STAGES)}")
            instances[inst_id] = inst
        settings = dataclasses.replace(settings, strategies=instances)
    return dataclasses.replace(settings, config_path=str(cfg_path))


def settings_with(settings: Settings, **section_updates: Mapping[str, Any]) -> Settings:
    """Return a copy with some section fields replaced, e.g. settings_with(s, store={"path": p})."""
    changes = {}
    for section, updates in section_updates.items():
        changes[section] = dataclasses.replace(getattr(settings, section), **updates)
    return dataclasses.replace(settings, **changes)
