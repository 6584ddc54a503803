"""run_backtest and simulate_targets: the one code path for research backtests and the twin of paper/live trades."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from engine.backtest import kernels, layout
from engine.backtest.costs import MarketArrays, cost_params, market_arrays
from engine.backtest.exposure import exposure_fn, kernel_barriers, side_exposure, strategy_stops
from engine.backtest.heap import keep_large_blocks
from engine.backtest.lookahead import LookaheadResult, check_lookahead
from engine.backtest.metrics import compute_metrics, infer_timeframe_ms, periods_per_year, trade_stats
from engine.backtest.sizing import Sizer, fixed_fraction, fixed_fraction_of
from engine.backtest.stats import deflated_sharpe
from engine.config import BacktestConfig, Settings
from engine.strategy.stops import Stops
from engine.backtest.inputs import Barriers, clean_signals  # re-exported: callers import them from here


@dataclass
class BacktestResult:
    """Equity, positions, fills, trades and metrics of one backtest (plus its lookahead check and trial count)."""

    equity: pd.Series
    targets: pd.DataFrame  # target fraction decided at each bar (executed on the next)
    fill_rows: np.ndarray = field(repr=False)  # the kernel's fill records (layout.F_*); `fills` is their frame
    trade_rows: np.ndarray = field(repr=False)  # the kernel's trade records (layout.T_*), in `trades` order
    metrics: dict
    config: BacktestConfig
    timeframe_ms: int
    panel: Mapping[str, pd.DataFrame] = field(repr=False)
    strategy: str = ""
    params: dict = field(default_factory=dict)
    signals: pd.DataFrame | None = None
    lookahead: LookaheadResult | None = None
    run_id: int | None = None
    elapsed_s: dict = field(default_factory=dict)
    strategy_obj: Any = field(default=None, repr=False)

    @functools.cached_property
    def fills(self) -> pd.DataFrame:
        """One row per fill: ts, bar, symbol, qty, price, ref_price, fee, slippage, reason (built on first use)."""
        return _fills_frame(self.fill_rows, self.equity.index, tuple(self.targets.columns))

    @functools.cached_property
    def trades(self) -> pd.DataFrame:
        """One row per round trip, by entry time then symbol (built on first use: walk-forward trials never ask)."""
        return _trades_frame(self.trade_rows, self.equity.index, tuple(self.targets.columns))

    @functools.cached_property
    def dataset_hash(self) -> str:
        """sha256 identity of the panel this backtest ran on (computed on first use)."""
        from engine.backtest.registry import dataset_hash as hash_panel  # lazy: pulls in the store (sqlalchemy)

        return hash_panel(self.panel, str(self.timeframe_ms))

    @functools.cached_property
    def positions(self) -> pd.DataFrame:
        """Signed quantity held after each bar, rebuilt exactly from the fills (the kernel does not store it)."""
        return pd.DataFrame(positions_from_fills(self.fills, self.equity.index, list(self.targets.columns)),
                            index=self.equity.index, columns=list(self.targets.columns))

    @functools.cached_property
    def cash(self) -> pd.Series:
        """Cash after each bar: equity minus the positions marked at the close."""
        close = np.column_stack([self.panel[s]["close"].reindex(self.equity.index).ffill().to_numpy(dtype="float64")
                                 for s in self.targets.columns])
        marked = np.nan_to_num(self.positions.to_numpy() * close, nan=0.0).sum(axis=1)
        return pd.Series(self.equity.to_numpy() - marked, index=self.equity.index, name="cash")

    @property
    def returns(self) -> pd.Series:
        """Per-bar simple returns of the equity curve."""
        return self.equity.pct_change().iloc[1:]


def positions_from_fills(fills: pd.DataFrame, index: pd.DatetimeIndex, symbols: list[str]) -> np.ndarray:
    """(n x k) quantity after each bar: each symbol's running sum of fill quantities, held until the next fill."""
    out = np.zeros((len(index), len(symbols)))
    bars_all = fills["bar"].to_numpy()
    qty_all = fills["qty"].to_numpy(dtype="float64")
    sym_all = fills["symbol"].to_numpy()
    for j, sym in enumerate(symbols):
        mask = sym_all == sym
        if not mask.any():
            continue
        bars = bars_all[mask]
        held = np.cumsum(qty_all[mask])
        last = np.searchsorted(bars, np.arange(len(index)), side="right") - 1
        out[:, j] = np.where(last >= 0, held[np.maximum(last, 0)], 0.0)
    return out


def _config_of(settings_or_config: Settings | BacktestConfig) -> BacktestConfig:
    if isinstance(settings_or_config, Settings):
        return settings_or_config.backtest
    if isinstance(settings_or_config, BacktestConfig):
        return settings_or_config
    raise ValueError(f"settings: expected Settings or BacktestConfig, got {type(settings_or_config).__name__}")


def _fills_frame(raw: np.ndarray, index: pd.DatetimeIndex, symbols: tuple[str, ...]) -> pd.DataFrame:
    bars = raw[:, layout.F_BAR].astype(np.int64)
    return pd.DataFrame({
        "ts": index[bars], "bar": bars, "symbol": np.asarray(symbols, dtype=object)[raw[:, layout.F_SYM].astype(int)],
        "qty": raw[:, layout.F_QTY], "price": raw[:, layout.F_PRICE], "ref_price": raw[:, layout.F_REF],
        "fee": raw[:, layout.F_FEE], "slippage": raw[:, layout.F_SLIP],
        "reason": np.asarray(layout.REASON_NAMES, dtype=object)[raw[:, layout.F_REASON].astype(int)]})


def _ordered_trades(raw: np.ndarray, symbols: tuple[str, ...]) -> np.ndarray:
    """Trade records ordered by entry time, then symbol name (stable), by integer keys."""
    if len(symbols) == 1:  # one symbol's trades never overlap: the kernel writes them in entry order already
        return raw
    entry_all = raw[:, layout.T_ENTRY_BAR].astype(np.int64)
    sym_all = raw[:, layout.T_SYM].astype(np.int64)
    name_rank = np.empty(len(symbols), dtype=np.int64)
    name_rank[np.argsort(np.asarray(symbols, dtype=object), kind="stable")] = np.arange(len(symbols))
    return raw[np.lexsort((name_rank[sym_all], entry_all))]


def _trades_frame(raw: np.ndarray, index: pd.DatetimeIndex, symbols: tuple[str, ...]) -> pd.DataFrame:
    raw = _ordered_trades(raw, symbols)
    entry = raw[:, layout.T_ENTRY_BAR].astype(np.int64)
    exit_ = raw[:, layout.T_EXIT_BAR].astype(np.int64)
    qty, entry_px, pnl = raw[:, layout.T_QTY], raw[:, layout.T_ENTRY_PX], raw[:, layout.T_PNL]
    return pd.DataFrame({
        "symbol": np.asarray(symbols, dtype=object)[raw[:, layout.T_SYM].astype(int)],
        "side": raw[:, layout.T_SIDE].astype(int), "qty": qty,
        "entry_ts": index[entry], "exit_ts": index[exit_], "entry_bar": entry, "exit_bar": exit_,
        "bars": exit_ - entry, "entry_price": entry_px, "exit_price": raw[:, layout.T_EXIT_PX],
        "pnl": pnl, "fees": raw[:, layout.T_FEES], "slippage": raw[:, layout.T_SLIP],
        "funding": raw[:, layout.T_FUNDING],
        "exit_reason": np.asarray(layout.REASON_NAMES, dtype=object)[raw[:, layout.T_REASON].astype(int)],
        "return": pnl / (qty * entry_px)})


def target_array(targets: pd.DataFrame, index: pd.DatetimeIndex, symbols: tuple[str, ...]) -> np.ndarray:
    """Validate a target-fraction frame and align it to the market clock as an (n x k) float64 array."""
    if not isinstance(targets, pd.DataFrame):
        raise ValueError(f"targets: expected a DataFrame (bars x symbols), got {type(targets).__name__}")
    unknown = [c for c in targets.columns if c not in symbols]
    if unknown:
        raise ValueError(f"targets: columns {unknown} are not symbols of the panel {list(symbols)}")
    frame = targets if targets.index.equals(index) and tuple(targets.columns) == symbols else \
        targets.reindex(index=index, columns=list(symbols))
    arr = _float_values(frame)
    if not np.isfinite(np.sum(arr)):  # one reduction; the elementwise pass only when something is off
        bad = ~np.isfinite(arr)
        if bad.any():
            if np.isinf(arr).any():
                raise ValueError("targets: contains infinite values")
            arr = np.where(bad, 0.0, arr)  # NaN = no target = flat
    return np.ascontiguousarray(arr)


def _float_values(frame: pd.DataFrame) -> np.ndarray:
    """A frame's values as float64 (NA as NaN), without a copy when it already is one float64 block."""
    if all(dtype == np.float64 for dtype in frame.dtypes):
        return frame.to_numpy(dtype="float64")
    return frame.to_numpy(dtype="float64", na_value=np.nan)


def changed_bars(targets: np.ndarray) -> np.ndarray:
    """Per bar: does any symbol's target differ from the previous bar's (bar 0: from flat)?"""
    if targets.shape[1] == 1:
        col = targets[:, 0]
        out = np.empty(len(col), dtype=np.bool_)
        out[0] = col[0] != 0.0
        np.not_equal(col[1:], col[:-1], out=out[1:])
        return out
    out = np.empty(len(targets), dtype=np.bool_)
    out[0] = bool((targets[0] != 0.0).any())
    out[1:] = (targets[1:] != targets[:-1]).any(axis=1)
    return out


def run_kernel(targets: np.ndarray, m: MarketArrays, config: BacktestConfig, barriers: Barriers | None = None,
               per_trade: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
               changes: tuple[np.ndarray, int] | None = None) -> tuple[np.ndarray, ...]:
    """Run the compiled kernel on aligned (n x k) target fractions: (equity, fill rows, trade rows, exposed bars).

    `per_trade`: (stop-loss, take-profit) fractions per decision bar and symbol (vol-scaled stops; None = the
    barriers' scalar), see engine.backtest.exposure.kernel_barriers. `changes`: (changed_bars(targets), its count)
    when already computed (engine.backtest.prepare)."""
    fee_taker, fee_maker, half_spread, impact = cost_params(config)
    if targets.shape != m.close.shape:
        raise ValueError(f"targets: shape {targets.shape} does not match the market arrays {m.close.shape}")
    changed, n_changed = changes if changes is not None else (None, 0)
    if changed is None:
        changed = changed_bars(targets)
        n_changed = int(np.count_nonzero(changed))
    sl, tp, max_bars = (barriers or Barriers()).as_kernel_args()
    # signal fills <= changed bars x symbols (each fill consumes a target change); barrier exits add at most one
    # per signal-opened trade; trade records <= fills + the trades still open at the end
    sl_arr, tp_arr = per_trade
    empty = np.zeros((0, targets.shape[1]))
    for arr in (sl_arr, tp_arr):
        if arr is not None and arr.shape != targets.shape:
            raise ValueError(f"per_trade: shape {arr.shape} does not match the targets {targets.shape}")
    per_change = 2 if (sl > 0.0 or tp > 0.0 or max_bars > 0 or sl_arr is not None or tp_arr is not None) else 1
    capacity = per_change * n_changed * targets.shape[1] + 2 * len(m.symbols) + 2
    # the kernel reads sigma / vol_ref only with impact on and funding only when some rate is set: 0-row views
    # otherwise (it then skips the scan of an all-zero funding array)
    if impact > 0.0 and m.sigma.shape != targets.shape:
        raise ValueError("market arrays: built without square-root impact (impact_coef 0); build them with this config")
    sigma, vol_ref = (m.sigma, m.vol_ref) if impact > 0.0 else (m.sigma[:0], m.vol_ref[:0])
    funding = m.funding if m.has_funding else m.funding[:0]
    return kernels.simulate_kernel(
        targets, changed, m.fill_px, m.open, m.high, m.low, m.close, sigma, vol_ref, funding,
        empty if sl_arr is None else sl_arr, empty if tp_arr is None else tp_arr, float(config.initial_capital), fee_taker, fee_maker, half_spread, impact, sl, tp, max_bars,
        config.fill_model == "next_open", capacity)


def simulate_targets(targets: pd.DataFrame, panel: Mapping[str, pd.DataFrame],
                     settings_or_config: Settings | BacktestConfig, barriers: Barriers | None = None,
                     timeframe_ms: int | None = None, stops: Stops | None = None) -> BacktestResult:
    """Simulate fills for target fractions of equity (decided at bar t, filled at bar t+1) on the panel's bars.

    `stops`: a strategy's protective exits; explicit `barriers` values take precedence over them."""
    t0 = time.perf_counter()
    config = _config_of(settings_or_config)
    m = market_arrays(panel, config)
    tgt = target_array(targets, m.index, m.symbols)
    return _simulate(tgt, None, tuple(targets.columns), m, panel, config, barriers, timeframe_ms, stops, t0)


def _simulate(tgt: np.ndarray, changes: tuple[np.ndarray, int] | None, columns: Any, m: MarketArrays,
              panel: Mapping[str, pd.DataFrame], config: BacktestConfig, barriers: Barriers | None,
              timeframe_ms: int | None, stops: Stops | None, t0: float) -> BacktestResult:
    """simulate_targets from aligned, validated target fractions (and their change flags when computed)."""
    barriers, per_trade = kernel_barriers(stops, barriers, panel, m.index, m.symbols)
    t1 = time.perf_counter()
    equity, fills, trades, exposed_bars = run_kernel(tgt, m, config, barriers, per_trade, changes)
    t2 = time.perf_counter()
    tf_ms = timeframe_ms or infer_timeframe_ms(m.index)
    equity_s = pd.Series(equity, index=m.index, name="equity", copy=False)  # the kernel's array, no copy
    trades = _ordered_trades(trades, m.symbols)  # the frames are built on first use; metrics need two columns
    traded = float(np.abs(fills[:, layout.F_QTY] * fills[:, layout.F_PRICE]).sum())
    metrics = compute_metrics(equity_s, None, periods_per_year(tf_ms), traded_notional=traded)
    metrics.update(trade_stats(trades[:, layout.T_PNL], trades[:, layout.T_EXIT_BAR].astype(np.int64)
                               - trades[:, layout.T_ENTRY_BAR].astype(np.int64)))  # their keys keep their places
    metrics["exposure"] = float(exposed_bars / len(equity))
    metrics["fees"] = float(fills[:, layout.F_FEE].sum())
    metrics["slippage"] = float(fills[:, layout.F_SLIP].sum())
    metrics["funding"] = float(trades[:, layout.T_FUNDING].sum()) if len(trades) else 0.0
    t3 = time.perf_counter()
    # the targets' own column Index when it names the symbols in order (building one from strings costs ~0.5 ms)
    columns = columns if tuple(columns) == m.symbols else list(m.symbols)
    return BacktestResult(
        equity=equity_s, targets=pd.DataFrame(tgt, index=m.index, columns=columns, copy=False),
        fill_rows=fills, trade_rows=trades,
        metrics=metrics, config=config, timeframe_ms=tf_ms, panel=panel,
        elapsed_s={"prepare": t1 - t0, "kernel": t2 - t1, "stats": t3 - t2})


def _params_of(strategy: Any) -> dict:
    for attr in ("params", "config"):
        value = getattr(strategy, attr, None)
        if isinstance(value, Mapping):
            return dict(value)
        if value is not None and hasattr(value, "__dataclass_fields__"):
            import dataclasses
            return dataclasses.asdict(value)
    return {}


def run_backtest(strategy: Any, panel: Mapping[str, pd.DataFrame], settings_or_backtest_config: Settings | BacktestConfig,
                 sizer: Sizer | None = None, barriers: Barriers | None = None, store: Any = None,
                 lookahead: bool = True, record: bool = True, timeframe: str | None = None,
                 trial_family: str | None = None) -> BacktestResult:
    """Signals -> sizer -> simulated fills -> metrics, with the lookahead check and, given a store, the trial registry.

    With a store, the run is recorded as a trial identified by its content (an identical rerun reuses it), and the
    DSR uses N = distinct configurations in the trial family (default: every one ever tried on this dataset;
    `trial_family` names a research question) and the variance of their Sharpe ratios. A run whose lookahead check
    FAILED is recorded as such, is never counted, and gets no DSR (NaN with the reason).
    """
    name = str(getattr(strategy, "name", type(strategy).__name__))
    t0 = time.perf_counter()
    from engine.backtest.costs import check_panel, panel_index

    symbols = check_panel(panel)
    index = panel_index(panel)
    keep_large_blocks(len(index) * len(symbols))  # >= 32 MB arrays: reuse freed heap (engine.backtest.heap)
    sizer = sizer or fixed_fraction()
    # a fixed fraction of int8 signals: validation, sizing, targets and change flags in one compiled pass
    weights, signals, prepared = side_exposure(strategy, panel, index, symbols, fixed_fraction_of(sizer, len(symbols)))
    stops = strategy_stops(strategy)
    t1 = time.perf_counter()
    tf_ms = None
    if timeframe:
        from engine.clock import timeframe_ms as tfm
        tf_ms = tfm(timeframe)
    if prepared is None:
        result = simulate_targets(sizer(weights, panel), panel, settings_or_backtest_config, barriers,
                                  timeframe_ms=tf_ms, stops=stops)
    else:
        config = _config_of(settings_or_backtest_config)
        result = _simulate(prepared[0], prepared[1:], weights.columns, market_arrays(panel, config), panel, config,
                           barriers, tf_ms, stops, time.perf_counter())
    result.strategy, result.params, result.signals = name, _params_of(strategy), signals
    result.strategy_obj = strategy
    result.elapsed_s["signals"] = t1 - t0
    if lookahead:
        t2 = time.perf_counter()
        result.lookahead = check_lookahead(exposure_fn(strategy), panel, full_signals=weights,
                                           warmup_bars=int(getattr(strategy, "warmup_bars", 0) or 0))
        result.metrics["lookahead_ok"] = result.lookahead.ok
        result.elapsed_s["lookahead"] = time.perf_counter() - t2
    _deflate(result, store, record, sizer, barriers, trial_family)
    m = result.metrics
    if store is not None and record:
        from engine.backtest.registry import record_run

        result.run_id = record_run(
            store, kind="backtest", strategy=name, params=result.params, symbols=symbols,
            timeframe=timeframe or f"{result.timeframe_ms // 60_000}m", start_ts=int(index[0].value // 1_000_000),
            end_ts=int(index[-1].value // 1_000_000), dataset_hash=result.dataset_hash, metrics=m,
            lookahead=None if result.lookahead is None else result.lookahead.to_dict())
    return result


def _deflate(result: BacktestResult, store: Any, record: bool, sizer: Sizer, barriers: Barriers | None,
             family: str | None) -> None:
    """Record the trial (by content) and put N, N by strategy, V[SR] and the DSR (or why it is undefined) in metrics."""
    from engine.backtest.stats import CONVENTIONS, undefined_reason

    m = result.metrics
    failed = result.lookahead is not None and not result.lookahead.ok
    n_trials, var, by_strategy = 1, 0.0, {result.strategy: 1}
    if store is not None:  # the registry (and the store behind it) is only imported when recording
        from engine.backtest.registry import (TrialIdentity, code_version, cost_model, record_trial, trial_counts,
                                              trial_sharpe_variance)

        if record:
            identity = TrialIdentity(cost_model(result.config, sizer, barriers), code_version(result.strategy_obj),
                                     family)
            record_trial(store, result.dataset_hash, result.strategy, result.params, result.returns.to_numpy(),
                         phase="full", identity=identity,
                         lookahead_ok=None if result.lookahead is None else result.lookahead.ok,
                         metrics={k: m[k] for k in ("sharpe", "total_return", "max_drawdown", "trades")})
        by_strategy = trial_counts(store, result.dataset_hash, family)
        n_trials = sum(by_strategy.values())
        var = trial_sharpe_variance(store, result.dataset_hash, family)
    m["n_trials"] = max(n_trials, 1)
    m["n_trials_by_strategy"] = by_strategy
    # the dataset hash (sha256 over every bar: ~80 ms per million bars) only names the family of a recorded trial
    m["trial_family"] = family or (f"dataset:{result.dataset_hash[:12]}" if store is not None else "unrecorded")
    m["trial_sharpe_variance"] = var
    m["dsr_conventions"] = CONVENTIONS
    if failed:
        m["dsr"], m["dsr_note"] = float("nan"), "not computed: the lookahead check FAILED (trial excluded)"
        return
    m["dsr"] = deflated_sharpe(m["sharpe_per_bar"], m["n_trials"], var, max(m["n_obs"], 2), m["skew"], m["kurtosis"])
    reason = undefined_reason(m["sharpe_per_bar"], m["skew"], m["kurtosis"], m["n_obs"])
    if reason:
        m["dsr_note"] = reason
