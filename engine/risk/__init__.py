"""Bet sizing, toxicity, liquidity, limits, emergency triggers and the persisted trading state.

Public API (import from the submodules):
- sizing: `size_position(symbol, side, price, exposure, risk, meta_prob=None, payoff_ratio=None, rules=None,
  vpin_cdf=None, spread_bps=None, depth=None, method=None, ts=None) -> SizingDecision` (meta_prob, payoff_ratio,
  kelly_fraction, raw_size, cap_applied, final_size = unsigned base qty after caps and lot rounding, signed_qty,
  vpin_cdf, spread_bps, depth, inputs); `record_decision(store, instance_id, decision)` -> sizing_decisions row;
  `kelly_fraction(p, b)`, `probability_size(p)`.
- limits: `Exposure(instance_capital, portfolio_equity, strategy_gross, symbol_gross, portfolio_gross)`,
  `MarketRules(lot_size, min_qty, min_notional)`, `apply_caps`, `round_to_market`.
- vpin: `VpinTracker(bucket_volume, window, cdf_window)` with `update(trades) -> list[VpinBucket]`, `update_bars`,
  `.vpin`, `.cdf`; `vpin_batch(trades_df, bucket_volume, window, cdf_window) -> DataFrame` (equal to the tracker);
  `bulk_volume_classification(bars)`, `vpin_from_bars`.
- liquidity: `book_liquidity(order_book, depth_bps) -> (spread_bps, depth_bid, depth_ask)`, `amihud(bars, window)`,
  `depth_ratio(history)`.
- triggers: `TriggerEngine(store, trigger_config).evaluate(TriggerObservation) -> list[Firing]`,
  `TriggerObservation(symbols={sym: SymbolObservation(vpin_cdf, spread_bps, depth_ratio, data_age_s, funding_rate,
  netflow_z)}, daily_drawdown, total_drawdown, error_rate, recon_mismatch, ts)`; None = unknown (rule skipped).
- trading_state: `TradingState`, `get_state`, `read_state`, `set_state`, `order_allowed`.
"""
