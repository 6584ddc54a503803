"""The configuration sections: one frozen dataclass per TOML table, every value with its valid range (`ranged`).

`engine.config` builds `Settings` from these and re-exports them; import them from `engine.config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.config_rules import ranged


@dataclass(frozen=True)
class StoreConfig:
    """Where state lives: a SQLite path by default, any SQLAlchemy URL for a server."""

    path: str = ranged("state.db", kind="store_path")
    url: str = ranged("", kind="store_url")  # e.g. postgresql+psycopg://user@host/quantdesk; empty = sqlite at `path`
    busy_timeout_ms: int = ranged(5000, ge=0, le=600_000)
    backup_dir: str = ""  # empty: a `backups` folder beside state.db
    backup_interval_hours: float = ranged(6.0, ge=0, le=8760)  # the engine's scheduled backup; 0 turns it off
    backup_keep: int = ranged(7, ge=1, le=10_000)  # newest backups kept; older ones are deleted after each backup


@dataclass(frozen=True)
class DataConfig:
    """Which market data the engine pulls, and when data counts as stale."""

    source: str = ranged("sim", kind="source")  # sim | ccxt:<exchange id> | csv:<path>
    symbols: tuple[str, ...] = ranged(("BTC/USDT", "ETH/USDT", "SOL/USDT"), nonempty=True, kind="text")
    timeframes: tuple[str, ...] = ranged(("1m",), nonempty=True, kind="timeframe")
    backfill_days: int = ranged(30, ge=0, le=36_500)
    pull_interval_s: float = ranged(5.0, gt=0, le=86_400)
    stale_after_s: float = ranged(180.0, gt=0)
    feeds: tuple[str, ...] = ranged(("macro", "sentiment", "onchain"), kind="text")
    # feed -> spec ("file:<path>" or "http:<parser>:<series>:<url>"); a feed without one uses the simulator's own
    feed_specs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SimulatorConfig:
    """The embedded simulated exchange: seed, live speed-up and history start."""

    seed: int = ranged(7, ge=0)
    speed: float = ranged(1.0, gt=0, le=100_000)  # simulated seconds per wall-clock second when running live
    history_days: int = ranged(30, ge=1, le=36_500)  # history available before "now" for backfills
    start_price_btc: float = ranged(60000.0, gt=0)


@dataclass(frozen=True)
class BacktestConfig:
    """Costs and fill model shared by research backtests and the live twin."""

    initial_capital: float = ranged(100_000.0, gt=0)
    fee_maker: float = ranged(0.0002, ge=-0.01, le=0.1)  # negative = maker rebate
    fee_taker: float = ranged(0.0005, ge=0, le=0.1)
    half_spread_bps: float = ranged(1.0, ge=0, le=1000)
    impact_coef: float = ranged(0.1, ge=0, le=100)  # square-root impact: coef * sigma * sqrt(qty / bar volume)
    fill_model: str = ranged("next_open", choices=("next_open", "next_close", "vwap"))
    reports_dir: str = ranged("reports", kind="text")


@dataclass(frozen=True)
class MLConfig:
    """Meta-labeling, model registry and retraining schedule."""

    models_dir: str = ranged("models", kind="text")
    pt_mult: float = ranged(2.0, gt=0, le=100)
    sl_mult: float = ranged(1.0, gt=0, le=100)
    max_holding_bars: int = ranged(48, ge=1)
    vol_span: int = ranged(100, ge=2)
    train_window_days: int = ranged(730, ge=1)
    retrain_interval_hours: float = ranged(24.0, gt=0)
    cv_folds: int = ranged(4, ge=2, le=50)  # purged folds for model choice (each costs two fits: HGB and RF)
    embargo_pct: float = ranged(0.01, ge=0, lt=0.5)
    max_model_age_hours: float = ranged(72.0, gt=0)
    train_at_start: bool = True  # a strategy with no champion trains soon after engine start, not a day later
    first_train_delay_s: float = ranged(20.0, ge=0)  # after start (staggered per strategy), out of the start-up rush
    # walk-forward evidence (`quantdesk model evaluate`) and the overlay's on/off rule
    eval_retrain_every_days: float = ranged(90.0, gt=0)  # the evaluation's retraining schedule
    eval_anchored: bool = True  # anchored (all past labels) or rolling (the last 4 retrain intervals)
    eval_bootstrap: int = ranged(1000, ge=10)  # block-bootstrap samples for the Sharpe-difference interval
    eval_ci: float = ranged(0.9, gt=0, lt=1)  # its confidence level
    overlay_sharpe_floor: float = ranged(0.0, ge=-10, le=10)  # the interval's lower bound must exceed this to switch on
    overlay_requires_evidence: bool = True  # no recorded evidence -> overlay off (primary signal with its own Kelly)


@dataclass(frozen=True)
class RiskConfig:
    """Bet sizing and limits."""

    sizing: str = ranged("kelly", choices=("kelly", "probability", "fixed"))
    kelly_fraction: float = ranged(0.25, gt=0, le=1)
    min_probability: float = ranged(0.0, ge=0, lt=1)  # extra gate on the meta probability; Kelly needs p > 1/(1+b)
    max_trade_fraction: float = ranged(0.05, gt=0, le=1)  # of instance capital, per trade
    max_strategy_fraction: float = ranged(0.5, gt=0, le=10)  # gross exposure per strategy instance / its capital
    max_symbol_fraction: float = ranged(0.3, gt=0, le=10)  # gross exposure per symbol / portfolio equity
    max_portfolio_leverage: float = ranged(1.5, gt=0, le=100)
    vpin_bucket_volume_frac: float = ranged(0.02, gt=0, le=1)  # bucket size as a fraction of mean daily volume
    vpin_window: int = ranged(50, ge=1)
    vpin_cdf_window: int = ranged(500, ge=2)
    depth_bps: float = ranged(10.0, gt=0, le=10_000)
    max_depth_fraction: float = ranged(0.1, gt=0, le=1)  # a trade may take at most this share of same-side depth
    vpin_cdf_scale_from: float = ranged(0.8, ge=0, le=1)  # above this VPIN CDF, size shrinks linearly to 0 at CDF 1
    # exchange-side protection of every live position (engine/execution/protection.py), used when the instance's
    # strategy declares no stop / take-profit of its own: distances from the entry price as fractions of it
    protective_stop_pct: float = ranged(0.05, gt=0, lt=1)
    protective_take_profit_pct: float = ranged(0.0, ge=0, le=10)  # 0 = no take-profit order
    protective_limit_offset_pct: float = ranged(0.01, ge=0, lt=0.5)  # spot STOP_LOSS_LIMIT: limit this far past the trigger


_REDUCE_BELOW_HALT = ("vpin_cdf", "daily_drawdown", "total_drawdown", "spread_bps", "stale_data", "funding_abs",
                      "inflow_z", "error_rate")


@dataclass(frozen=True)
class TriggerConfig:
    """Emergency trigger thresholds (reduce, then halt) and hysteresis."""

    vpin_cdf_reduce: float = ranged(0.95, gt=0, le=1)
    vpin_cdf_halt: float = ranged(0.99, gt=0, le=1)
    daily_drawdown_reduce: float = ranged(0.03, gt=0, le=1)
    daily_drawdown_halt: float = ranged(0.05, gt=0, le=1)
    total_drawdown_reduce: float = ranged(0.10, gt=0, le=1)
    total_drawdown_halt: float = ranged(0.15, gt=0, le=1)
    spread_bps_reduce: float = ranged(25.0, gt=0)
    spread_bps_halt: float = ranged(60.0, gt=0)
    depth_collapse_reduce: float = ranged(0.3, gt=0, le=1)  # depth / its rolling median
    depth_collapse_halt: float = ranged(0.1, gt=0, le=1)
    stale_data_reduce_s: float = ranged(180.0, gt=0)
    stale_data_halt_s: float = ranged(600.0, gt=0)
    funding_abs_reduce: float = ranged(0.001, gt=0)
    funding_abs_halt: float = ranged(0.003, gt=0)
    inflow_z_reduce: float = ranged(3.0, gt=0)
    inflow_z_halt: float = ranged(5.0, gt=0)
    error_rate_reduce: float = ranged(0.2, gt=0, le=1)
    error_rate_halt: float = ranged(0.5, gt=0, le=1)
    recon_mismatch_halt: float = ranged(1e-6, ge=0)
    # the account-level exposure budget over all instances, as fractions of portfolio equity (sizing keeps gross
    # under risk.max_portfolio_leverage and a symbol under risk.max_symbol_fraction; these catch what slips past)
    gross_exposure_reduce: float = ranged(1.75, gt=0)
    gross_exposure_halt: float = ranged(2.5, gt=0)
    net_exposure_reduce: float = ranged(1.5, gt=0)
    net_exposure_halt: float = ranged(2.0, gt=0)
    symbol_exposure_reduce: float = ranged(0.5, gt=0)
    symbol_exposure_halt: float = ranged(0.75, gt=0)
    hysteresis: float = ranged(0.9, gt=0, le=1)  # a rule clears only below threshold * hysteresis
    clear_after_s: float = ranged(300.0, ge=0)

    def relations(self) -> list[tuple[str, str]]:
        """A reduce level must be reached before the halt level of the same rule."""
        out = []
        for rule in _REDUCE_BELOW_HALT:
            suffix = "_s" if rule == "stale_data" else ""
            reduce, halt = getattr(self, f"{rule}_reduce{suffix}"), getattr(self, f"{rule}_halt{suffix}")
            if reduce > halt:
                out.append((f"{rule}_reduce{suffix}", f"must be <= {rule}_halt{suffix} ({halt:g}), got {reduce:g}"))
        if self.depth_collapse_reduce < self.depth_collapse_halt:
            out.append(("depth_collapse_reduce", f"must be >= depth_collapse_halt ({self.depth_collapse_halt:g}), "
                                                 f"got {self.depth_collapse_reduce:g}"))
        return out


@dataclass(frozen=True)
class ExchangeConfig:
    """The exchange a ccxt source, its streams and the live broker talk to: the ccxt id, an optional base URL (e.g.
    the twin of `quantdesk venue serve`; rewrites ccxt's REST and websocket URLs, empty = the real exchange) and
    streaming."""

    id: str = ranged("binance", kind="exchange_id")
    base_url: str = ranged("", kind="base_url")
    stream: bool = True  # websocket streams (ccxt.pro) with REST backfill; false = REST polling only
    reconnect_max_s: float = ranged(30.0, gt=0, le=3600)  # cap of the exponential reconnect backoff
    stream_stale_s: float = ranged(30.0, gt=0, le=86_400)  # no message for this long: the stream counts as down
    # a live restart re-arms protection with the desk's markets cached beside state.db when younger than this, then
    # reloads every market (engine/execution/markets_cache.py); 0 = always load them first
    markets_cache_hours: float = ranged(24.0, ge=0, le=168)
    ws_compress: bool = False  # offer permessage-deflate on websockets: less bandwidth, more CPU per frame both ends


@dataclass(frozen=True)
class ExecutionConfig:
    """Broker choice and execution realism."""

    mode: str = ranged("paper", choices=("paper", "live"))
    exchange: str = ranged("binance", kind="text")
    paper_latency_ms: float = ranged(50.0, ge=0, le=60_000)
    queue_ahead_fraction: float = ranged(0.5, ge=0, le=1)
    order_timeout_s: float = ranged(10.0, gt=0)
    max_retries: int = ranged(4, ge=0, le=100)
    reconcile_interval_s: float = ranged(60.0, gt=0)
    rebalance_band: float = ranged(0.1, ge=0, le=1)  # re-size a held position only when off target by this share
    min_order_notional: float = ranged(10.0, ge=0)  # quote units; smaller orders are not sent
    flatten_max_rounds: int = ranged(5, ge=1, le=100)  # cancel / re-read / close rounds before a flatten alerts
    flatten_round_wait_s: float = ranged(0.5, ge=0, le=60)  # pause between flatten rounds (fills, cancels settle)


@dataclass(frozen=True)
class RetentionConfig:
    """How long each growing table keeps its rows, in days (0 = forever). Snapshots a chart needs are thinned to one
    per hour past their full-resolution window, never deleted; audit and fills are kept forever by default."""

    audit_days: float = ranged(0.0, ge=0)
    fills_days: float = ranged(0.0, ge=0)
    equity_full_days: float = ranged(7.0, ge=0)  # equity snapshots: every row for this long, then one per hour
    book_full_days: float = ranged(2.0, ge=0)  # order-book snapshots: every row for this long, then one per hour
    sizing_days: float = ranged(30.0, ge=0)
    alerts_days: float = ranged(90.0, ge=0)  # acknowledged alerts only; an open alert is never deleted
    commands_days: float = ranged(30.0, ge=0)  # finished commands only
    candles_1m_days: float = ranged(0.0, ge=0)  # 1m bars (research needs history: forever unless set)
    interval_hours: float = ranged(6.0, gt=0, le=8760)  # how often the engine applies retention


@dataclass(frozen=True)
class RuntimeConfig:
    """Engine service timing and files."""

    command_poll_ms: int = ranged(50, ge=1, le=60_000)
    monitor_interval_s: float = ranged(5.0, gt=0)
    equity_interval_s: float = ranged(10.0, gt=0)
    heartbeat_interval_s: float = ranged(1.0, gt=0, le=3600)
    heartbeat_timeout_s: float = ranged(5.0, gt=0)
    misfire_grace_s: int = ranged(30, ge=1)
    log_dir: str = ranged("logs", kind="text")
    run_dir: str = ""  # pid/lock files; empty means beside state.db

    def relations(self) -> list[tuple[str, str]]:
        """Front ends must not call a live engine dead between two heartbeats."""
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            return [("heartbeat_timeout_s", f"must be > heartbeat_interval_s ({self.heartbeat_interval_s:g}), "
                                            f"got {self.heartbeat_timeout_s:g}")]
        return []


@dataclass(frozen=True)
class EngineConfig:
    """Which engine of the desk this is: several engines (one per account or venue) may share one store, each by
    its own name, owning the instances it declares (docs/deploy.md, several engines)."""

    name: str = ranged("main", kind="engine_name")


@dataclass(frozen=True)
class LifecycleConfig:
    """Promotion gates and automatic demotion."""

    min_paper_days: float = ranged(14.0, ge=0)
    min_paper_trades: int = ranged(30, ge=0)
    # a probability: P(true Sharpe > expected max Sharpe of the trial family), engine.backtest.stats' one DSR
    min_dsr: float = ranged(0.95, ge=0, le=1)
    max_drift_bps: float = ranged(25.0, ge=0)
    live_small_fraction: float = ranged(0.1, gt=0, le=1)
    demote_drawdown: float = ranged(0.2, gt=0, le=1)


@dataclass(frozen=True)
class ReoptConfig:
    """Scheduled re-optimisation: walk-forward per configured instance, a winning configuration starts as a paper
    challenger, and challengers that lose to their champion are retired (engine/trading/reoptimize.py)."""

    enabled: bool = True
    interval_hours: float = ranged(168.0, gt=0, le=8760)  # weekly by default, one job per configured instance
    lookback_days: float = ranged(30.0, gt=0, le=36_500)  # the latest stored bars walk-forward runs on
    n_trials: int = ranged(20, ge=2, le=100_000)  # trials per window (optuna trials with tpe, parameter sets otherwise)
    n_windows: int = ranged(3, ge=1, le=100)
    search: str = ranged("tpe", choices=("tpe", "random", "grid"))  # the in-sample search (docs/benchmarks.md)
    # how each window picks its winner (engine/backtest/selection.py)
    selection: str = ranged("sharpe", choices=("sharpe", "robust", "plateau", "medoid", "steady"))
    pbo_splits: int = ranged(8, ge=2, le=32)  # CSCV partitions (even)
    max_pbo: float = ranged(0.5, ge=0, le=1)  # a candidate passes only below this probability of overfitting
    min_dsr_margin: float = ranged(0.0, ge=0, le=1)  # candidate DSR must exceed the champion's by more than this
    min_candidate_dsr: float = ranged(0.5, ge=0, le=1)  # ... and be at least this probability (below: likely luck)
    max_challengers: int = ranged(2, ge=1, le=100)  # running challengers per champion; more are not started
    challenger_capital_fraction: float = ranged(0.2, gt=0, le=1)  # of the champion's capital, paper only
    retire_after_days: float = ranged(14.0, ge=0, le=3650)  # a challenger is judged against its champion after this
    first_run_delay_s: float = ranged(600.0, ge=0, le=604_800)  # after engine start, out of the start-up rush

    def relations(self) -> list[tuple[str, str]]:
        """CSCV halves its partitions: their number must be even."""
        return [("pbo_splits", f"must be even, got {self.pbo_splits}")] if self.pbo_splits % 2 else []


@dataclass(frozen=True)
class StrategyInstanceConfig:
    """One running instance of a strategy with its own capital and stage."""

    strategy: str = ""
    symbols: tuple[str, ...] = ranged(("BTC/USDT", "ETH/USDT", "SOL/USDT"), nonempty=True, kind="text")
    timeframe: str = ranged("1m", kind="timeframe")
    capital: float = ranged(50_000.0, gt=0)
    stage: str = ranged("paper", choices=("research", "paper", "live-small", "live"))
    enabled: bool = True
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConsoleConfig:
    """Console refresh rate and key map (action id -> key)."""

    refresh_hz: float = ranged(4.0, gt=0, le=60)
    keys: dict[str, str] = field(default_factory=dict)
    theme: str = ranged("textual-dark", kind="text")


_SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class AlertChannelConfig:
    """One off-box channel: an apprise URL (`${ENV}` expanded at start, never stored) and the lowest severity sent."""

    url: str = ranged("", kind="text")  # checked against apprise when the engine starts (monitoring/alerts/channels)
    min_severity: str = ranged("warning", choices=_SEVERITIES)


@dataclass(frozen=True)
class AlertsConfig:
    """Off-box alert delivery (apprise channels), dedup and rate limits, ack escalation, daily summary, watchdog."""

    channels: tuple[AlertChannelConfig, ...] = ()
    # identical unacknowledged alerts within this window merge into one with a count (one repeat notice per window)
    dedup_window_s: float = ranged(300.0, ge=0, le=86_400)
    rate_limit_count: int = ranged(10, ge=1)  # per channel: at most this many messages per window (critical pass) ...
    rate_limit_window_s: float = ranged(60.0, gt=0, le=86_400)  # ... the rest go out as one digest after the window
    poll_s: float = ranged(0.5, gt=0, le=60)  # how often the sender looks for new events and due retries
    retry_base_s: float = ranged(2.0, gt=0, le=3600)  # backoff after a failure: base * 2^(attempts-1), capped ...
    retry_max_s: float = ranged(60.0, gt=0, le=86_400)  # ... at this
    send_timeout_s: float = ranged(10.0, gt=0, le=300)  # connect/read timeout of one attempt
    channel_down_after: int = ranged(3, ge=1)  # consecutive failures before the channel raises its own alert (once)
    give_up_after_s: float = ranged(86_400.0, gt=0)  # non-critical messages older than this stop retrying
    ack_timeout_s: float = ranged(900.0, ge=0)  # unacknowledged critical alert -> REDUCING after this; 0 = off
    halt_after_s: float = ranged(900.0, ge=0)  # ... and -> HALTED this long after that; 0 = stop at REDUCING
    escalation_lookback_s: float = ranged(86_400.0, gt=0)  # older unacknowledged alerts do not escalate
    daily_summary_at: str = ""  # "HH:MM" UTC; empty = no daily summary
    watchdog_threshold_s: float = ranged(30.0, gt=0, le=86_400)  # heartbeat older than this: the watchdog alerts
    watchdog_poll_s: float = ranged(1.0, gt=0, le=60)
    watchdog_cancel_orders: bool = False  # live engine down: cancel resting non-protective orders on the exchange
    watchdog_with_engine: bool = False  # `quantdesk engine --detach` also starts `quantdesk watchdog`

    def relations(self) -> list[tuple[str, str]]:
        """The summary time must be HH:MM (UTC)."""
        at = self.daily_summary_at
        if not at:
            return []
        hh, _, mm = at.partition(":")
        if hh.isdigit() and mm.isdigit() and len(mm) == 2 and int(hh) < 24 and int(mm) < 60:
            return []
        return [("daily_summary_at", f"expected HH:MM (UTC) or empty, got {at!r}")]
