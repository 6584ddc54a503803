"""Every table in state.db, as SQLAlchemy Core metadata (dialect-neutral: SQLite by default, PostgreSQL by URL).

Timestamps are epoch milliseconds (BigInteger) throughout, matching ccxt. JSON payloads are stored as Text so the
same schema runs on any dialect. Tables are grouped by the package that owns their writes.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Column, Float, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Table, Text,
                        UniqueConstraint)

from engine.store.metadata import metadata
from engine.store.schema_alerts import (  # the alert-delivery tables, re-exported with the rest
    notify_events, alert_outbox, alert_attempts, alert_escalations,
)

# --- market data (engine/data) -----------------------------------------------------------------------------------
candles = Table(
    "candles", metadata,
    Column("exchange", String(32), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("timeframe", String(8), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("open", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("close", Float, nullable=False),
    Column("volume", Float, nullable=False),
    PrimaryKeyConstraint("exchange", "symbol", "timeframe", "ts"),
    # SQLite: store rows in the primary-key B-tree itself (no rowid table + separate key index): one tree to write,
    # ~12% more upserts/s measured (docs/bench/ingest.md), half the space. Ignored by other dialects.
    sqlite_with_rowid=False,
)

trades = Table(
    "trades", metadata,
    Column("exchange", String(32), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("trade_id", String(64), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("price", Float, nullable=False),
    Column("amount", Float, nullable=False),
    Column("side", String(4), nullable=False),  # taker (aggressor) side: buy | sell
    PrimaryKeyConstraint("exchange", "symbol", "trade_id"),
    Index("ix_trades_series_ts", "exchange", "symbol", "ts"),
)

book_snapshots = Table(
    "book_snapshots", metadata,
    Column("exchange", String(32), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("bids", Text, nullable=False),  # JSON [[price, amount], ...] best first
    Column("asks", Text, nullable=False),
    Column("mid", Float, nullable=False),
    Column("spread_bps", Float, nullable=False),
    Column("depth_bid", Float, nullable=False),  # quote notional within risk.depth_bps of mid
    Column("depth_ask", Float, nullable=False),
    PrimaryKeyConstraint("exchange", "symbol", "ts"),
)

funding_rates = Table(
    "funding_rates", metadata,
    Column("exchange", String(32), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("rate", Float, nullable=False),
    Column("mark_price", Float),
    Column("index_price", Float),
    PrimaryKeyConstraint("exchange", "symbol", "ts"),
)

feed_values = Table(
    "feed_values", metadata,
    Column("feed", String(32), nullable=False),  # macro | sentiment | onchain
    Column("series", String(64), nullable=False),  # e.g. risk_index, fear_greed, BTC_exchange_netflow
    Column("ts", BigInteger, nullable=False),  # observation time
    Column("published_ts", BigInteger, nullable=False),  # when it became known (point-in-time alignment)
    Column("value", Float, nullable=False),
    PrimaryKeyConstraint("feed", "series", "ts"),
)

quarantine = Table(
    "quarantine", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),  # candle | trade | book | funding | feed
    Column("source", String(64), nullable=False),
    Column("series", String(128), nullable=False),  # e.g. sim:BTC/USDT:1m
    Column("ts", BigInteger),
    Column("payload", Text, nullable=False),  # the rejected row, JSON
    Column("reason", Text, nullable=False),
    Index("ix_quarantine_series", "series"),
)

# --- operations (engine/runtime, engine/risk) ------------------------------------------------------------------
alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("severity", String(8), nullable=False),  # info | warning | critical
    Column("rule", String(64), nullable=False),  # what raised it, e.g. trigger.vpin_cdf, ingest.quarantine
    Column("source", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("values_json", Text, nullable=False, default="{}"),
    Column("acked", Integer, nullable=False, default=0),
    Column("acked_by", String(64)),
    Column("acked_at", BigInteger),
    # deduplication (engine/store/notify.py): identical unacknowledged alerts within the window merge into one row
    Column("count", Integer, nullable=False, default=1, server_default="1"),
    Column("last_ts", BigInteger),
    Column("dedup_key", String(40)),
    # the engine whose alert it is (its escalation halts that engine); NULL: a desk-wide alert (a front end, the
    # watchdog), whose escalation halts the desk
    Column("engine", String(64)),
    Index("ix_alerts_ts", "ts"),
    Index("ix_alerts_dedup", "dedup_key", "acked"),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("source", String(32), nullable=False),  # console | cli | engine | scheduler | trigger
    Column("user", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("details", Text, nullable=False, default="{}"),
    Index("ix_audit_ts", "ts"),
)

commands = Table(
    "commands", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", BigInteger, nullable=False),
    Column("source", String(32), nullable=False),
    Column("user", String(64), nullable=False),
    Column("command", String(32), nullable=False),
    Column("args", Text, nullable=False, default="{}"),
    Column("status", String(12), nullable=False, default="pending"),  # pending | running | done | failed
    Column("result", Text),
    Column("done_at", BigInteger),
    # several engines (migration 7): which engine consumes the row (NULL: whichever runs, as on a one-engine desk)
    # and which trading-state scope its state part moves ("global" desk-wide, or "engine:<name>")
    Column("target", String(64)),
    Column("scope", String(80), nullable=False, default="global", server_default="global"),
    Index("ix_commands_status", "status", "id"),
)

trading_state = Table(
    "trading_state", metadata,
    Column("scope", String(64), primary_key=True),  # "global"
    Column("state", String(12), nullable=False),  # ACTIVE | REDUCING | HALTED
    Column("reason", Text, nullable=False, default=""),
    Column("changed_at", BigInteger, nullable=False),
    Column("changed_by", String(64), nullable=False),
)

engine_status = Table(
    "engine_status", metadata,
    Column("id", Integer, primary_key=True),  # 1 for the engine named main; other engines get their own row
    Column("pid", Integer, nullable=False),
    Column("host", String(128), nullable=False),
    Column("mode", String(8), nullable=False),  # paper | live
    Column("started_at", BigInteger, nullable=False),
    Column("heartbeat_at", BigInteger, nullable=False),
    Column("version", String(32), nullable=False),
    Column("info", Text, nullable=False, default="{}"),
    Column("name", String(64), nullable=False, default="main", server_default="main"),  # migration 7
    Index("ux_engine_status_name", "name", unique=True),
)

job_runs = Table(
    "job_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(128), nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
    Column("ok", Integer),
    Column("result", Text),
    Column("error", Text),
    Index("ix_job_runs_job", "job_id", "id"),
)

# --- trading (engine/execution, engine/runtime) ----------------------------------------------------------------
strategy_instances = Table(
    "strategy_instances", metadata,
    Column("id", String(64), primary_key=True),
    Column("strategy", String(64), nullable=False),
    Column("stage", String(12), nullable=False),  # research | paper | live-small | live
    Column("status", String(12), nullable=False, default="running"),  # running | paused
    Column("capital", Float, nullable=False),
    Column("symbols", Text, nullable=False),  # JSON list
    Column("timeframe", String(8), nullable=False),
    Column("params", Text, nullable=False, default="{}"),
    Column("created_at", BigInteger, nullable=False),
    Column("stage_changed_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # lineage (issue 16): champion = configured instance; challenger = started by scheduled re-optimisation
    Column("role", String(12), nullable=False, default="champion", server_default="champion"),
    Column("parent_id", String(64)),  # the champion a challenger races
    Column("origin_run_id", Integer),  # backtest_runs.id of the walk-forward run that produced it
    # the engine that declared it and trades it (migration 7); a desk's existing instances belong to "main"
    Column("engine", String(64), nullable=False, default="main", server_default="main"),
)

orders = Table(
    "orders", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_order_id", String(64), nullable=False, unique=True),
    Column("exchange_order_id", String(64)),
    Column("instance_id", String(64), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("side", String(4), nullable=False),  # buy | sell
    Column("type", String(8), nullable=False),  # market | limit
    Column("qty", Float, nullable=False),
    Column("price", Float),
    Column("reduce_only", Integer, nullable=False, default=0),
    Column("status", String(12), nullable=False),  # new | open | partial | filled | canceled | rejected
    Column("filled_qty", Float, nullable=False, default=0.0),
    Column("avg_price", Float),
    Column("reason", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # where the order went: paper (the paper broker) | exchange (the live account); each broker sees only its own
    Column("venue", String(12), nullable=False, default="paper", server_default="paper"),
    Index("ix_orders_status", "status"),
)

fills = Table(
    "fills", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fill_id", String(64), nullable=False, unique=True),
    Column("client_order_id", String(64), ForeignKey("orders.client_order_id"), nullable=False),
    Column("instance_id", String(64), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("side", String(4), nullable=False),
    Column("qty", Float, nullable=False),
    Column("price", Float, nullable=False),
    Column("fee", Float, nullable=False, default=0.0),
    Column("liquidity", String(5), nullable=False, default="taker"),
    Column("ts", BigInteger, nullable=False),
    # commission paid in the base asset (spot buys on Binance): the holding grows by qty - fee_base
    Column("fee_base", Float, nullable=False, default=0.0, server_default="0"),
    Index("ix_fills_order", "client_order_id"),
)

positions = Table(
    "positions", metadata,
    Column("instance_id", String(64), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("qty", Float, nullable=False),  # signed: + long, - short
    Column("avg_price", Float, nullable=False),
    Column("realized_pnl", Float, nullable=False, default=0.0),
    Column("fees", Float, nullable=False, default=0.0),
    Column("funding", Float, nullable=False, default=0.0),
    Column("updated_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("instance_id", "symbol"),
)

equity_snapshots = Table(
    "equity_snapshots", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("scope", String(64), nullable=False),  # "portfolio" or a strategy instance id
    Column("equity", Float, nullable=False),
    Column("cash", Float, nullable=False),
    Column("gross_exposure", Float, nullable=False),
    Column("net_exposure", Float, nullable=False),
    Column("unrealized_pnl", Float, nullable=False),
    Column("realized_pnl", Float, nullable=False),
    Index("ix_equity_scope_ts", "scope", "ts"),
)

sizing_decisions = Table(
    "sizing_decisions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("instance_id", String(64), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("side", Integer, nullable=False),  # primary side -1/0/+1
    Column("meta_prob", Float),
    Column("payoff_ratio", Float),
    Column("kelly_fraction", Float),
    Column("raw_size", Float, nullable=False),  # fraction of capital before caps
    Column("cap_applied", String(32), nullable=False, default=""),  # which cap bound, if any
    Column("final_size", Float, nullable=False),  # base-currency quantity after caps and lot rounding
    Column("vpin_cdf", Float),
    Column("spread_bps", Float),
    Column("depth", Float),
    Column("inputs", Text, nullable=False, default="{}"),
    Index("ix_sizing_instance_ts", "instance_id", "ts"),
)

twin_trades = Table(
    "twin_trades", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("instance_id", String(64), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("client_order_id", String(64), nullable=False),
    Column("live_price", Float, nullable=False),
    Column("twin_price", Float, nullable=False),
    Column("live_fee", Float, nullable=False),
    Column("twin_fee", Float, nullable=False),
    Column("slippage_bps", Float, nullable=False),
    Column("drift_bps", Float, nullable=False),
    Column("leg", String(5), nullable=False, default="entry"),  # entry | exit
)

# --- research and ML (engine/backtest, engine/ml) --------------------------------------------------------------
backtest_runs = Table(
    "backtest_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False, default="backtest"),  # backtest | walkforward
    Column("strategy", String(64), nullable=False),
    Column("params", Text, nullable=False),
    Column("symbols", Text, nullable=False),
    Column("timeframe", String(8), nullable=False),
    Column("start_ts", BigInteger, nullable=False),
    Column("end_ts", BigInteger, nullable=False),
    Column("dataset_hash", String(64), nullable=False),
    Column("metrics", Text, nullable=False),
    Column("sharpe", Float),
    Column("dsr", Float),
    Column("n_trials", Integer),
    Column("lookahead_ok", Integer),
    Column("lookahead", Text),
    Column("report_path", Text),
)

trials = Table(
    "trials", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", BigInteger, nullable=False),
    Column("dataset_hash", String(64), nullable=False),
    Column("strategy", String(64), nullable=False),
    Column("params", Text, nullable=False),
    Column("phase", String(16), nullable=False, default="full"),  # full | in_sample | out_of_sample
    Column("window", Integer),
    Column("sharpe", Float),
    Column("n_obs", Integer),
    Column("skew", Float),
    Column("kurtosis", Float),
    Column("metrics", Text, nullable=False, default="{}"),
    Column("run_id", Integer, ForeignKey("backtest_runs.id")),
    # content identity (strategy, params, dataset, cost model, code version, phase, window): a rerun reuses its trial
    Column("trial_key", String(64)),
    Column("family", String(128)),  # an explicit research question (--trial-family); NULL = the dataset's default
    Column("lookahead_ok", Integer),  # 0 = its lookahead check FAILED: never counted, never used by gates
    Index("ix_trials_dataset", "dataset_hash"),
    Index("ux_trials_key", "trial_key", unique=True),
    Index("ix_trials_family", "family"),
)

models = Table(
    "models", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", BigInteger, nullable=False),
    Column("strategy", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("features", Text, nullable=False),  # JSON list, in model input order
    Column("train_start", BigInteger, nullable=False),
    Column("train_end", BigInteger, nullable=False),
    Column("data_hash", String(64), nullable=False),
    Column("cv_scores", Text, nullable=False),
    Column("oos_score", Float),
    Column("lib_versions", Text, nullable=False),
    Column("estimator", String(64), nullable=False, default=""),
    Column("role", String(12), nullable=False),  # champion | challenger | retired | rejected
    Column("promoted_at", BigInteger),
    UniqueConstraint("strategy", "version"),
)

# desk-wide duties (backup, retention) that several engines on one desk must run once, not once each: the engine
# whose conditional update moves `ran_at` runs it (engine/store/duties.py; migration 9)
desk_duties = Table(
    "desk_duties", metadata,
    Column("name", String(64), primary_key=True),
    Column("engine", String(64), nullable=False),
    Column("ran_at", BigInteger, nullable=False),
)
