"""The path-dependent portfolio kernel, compiled with numba (cache=True): fills, costs, barriers and funding per bar.

Callers go through engine.backtest.kernels, which runs the ahead-of-time compiled copy of these functions
(engine.backtest.aot) when it is built and current, so a backtest process need not import numba.

Semantics (the reference loop in tests/backtest/reference_loop.py restates them in plain Python, and a property test
requires bit-for-bit agreement):

- `targets[t, s]` is the target fraction of equity decided at bar t. It is executed at bar t+1 (never on bar t), at
  `fill_px[t+1, s]`, and only when it differs from the previously decided target (positions are held, not rebalanced
  against drift). New quantity = target * equity / (fill_px * (1 + fee_taker)), equity marked at fill prices, so a
  target of 1.0 commits all equity including the fee (the same sizing as vectorbt's size=inf).
- Signal fills are taker: price moves adversely by half spread + square-root impact
  (impact_coef * sigma * sqrt(|qty| / volume_ref)). Take-profits rest as limit orders: maker fee, no spread, no impact.
  Stop-losses and time exits are taker.
- Funding: at a bar with a funding rate, the position held entering the bar pays qty * open * rate (longs pay a
  positive rate).
- Barriers (fractions of the trade's average entry price; <= 0 disables): a time exit at the open once the trade has
  lasted `max_bars` bars, then stop-loss before take-profit inside the bar (conservative), gap-aware: a long's stop
  fills at min(open, stop level), its take-profit at max(open, level) (shorts mirrored). After a barrier exit the
  symbol stays flat until its target changes (only a changed target trades).
- Each trade's stop-loss / take-profit fraction is fixed when a signal fill opens it: `stop_frac[t-1, s]` /
  `take_frac[t-1, s]` of the bar the entry was decided on (e.g. k x ATR / close there: vol-scaled stops) when that
  array has rows, else the scalar `stop_loss` / `take_profit`. NaN or <= 0 means none for that trade. Adding to a
  trade keeps its fractions (of the new average entry price).
- Within a bar: funding, time exits, then for open fills (`fills_at_open`) signal fills followed by intrabar barriers
  (a trade opened at this open may be stopped in this bar); for close/vwap fills, intrabar barriers on older trades
  first, then signal fills. Equity is marked at the close.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.backtest.layout import (  # noqa: F401 - re-exported: kernel.REASON_SIGNAL etc. keep working
    F_BAR, F_FEE, F_PRICE, F_QTY, F_REASON, F_REF, F_SLIP, F_SYM, N_FILL_COLS, N_STATE_COLS, N_TRADE_COLS, REASON_END,
    REASON_NAMES, REASON_SIGNAL, REASON_STOP, REASON_TAKE, REASON_TIME, S_AVG, S_ENTRY_BAR, S_EXIT_QTY, S_EXIT_VAL,
    S_FEES, S_FUND, S_MAXQ, S_REAL, S_SLIP, T_ENTRY_BAR, T_ENTRY_PX, T_EXIT_BAR, T_EXIT_PX, T_FEES, T_FUNDING, T_PNL,
    T_QTY, T_REASON, T_SIDE, T_SLIP, T_SYM, S_SL, S_TP)
from engine.backtest.kernel_fill import _close_trade, _fill, _sign  # noqa: F401 - kernel._fill keeps working
from engine.backtest.kernel_single import single_symbol


@njit(cache=True)
def _barriers(t, intrabar, same_bar_ok, qty, cash, st, fills, counts, trades,  # noqa: ANN001, ANN202
              open_, high, low, max_bars,
              fee_taker, fee_maker, half_spread, impact_coef, sigma, vol_ref):
    """Time exits at the open (intrabar=False) or stop-loss / take-profit inside bar t (intrabar=True, at each
    trade's own fractions S_SL / S_TP); returns the new cash."""
    k = qty.shape[0]
    for s in range(k):
        q = qty[s]
        if q == 0.0:
            continue
        entry_bar = st[s, S_ENTRY_BAR]
        o = open_[t, s]
        if o != o:
            continue
        if not intrabar:
            if max_bars > 0 and t - entry_bar >= max_bars:
                cash = _fill(t, s, -q, o, False, REASON_TIME, qty, cash, st, fills, counts, trades,
                      fee_taker, fee_maker, half_spread, impact_coef, sigma, vol_ref)
            continue
        if entry_bar == t and not same_bar_ok:
            continue
        avg = st[s, S_AVG]
        stop_loss = st[s, S_SL]
        take_profit = st[s, S_TP]
        if q > 0.0:
            if stop_loss > 0.0:
                stop = avg * (1.0 - stop_loss)
                if low[t, s] <= stop:
                    cash = _fill(t, s, -q, min(o, stop), False, REASON_STOP, qty, cash, st, fills, counts, trades,
                          fee_taker, fee_maker, half_spread, impact_coef, sigma, vol_ref)
                    continue
            if take_profit > 0.0:
                tp = avg * (1.0 + take_profit)
                if high[t, s] >= tp:
                    cash = _fill(t, s, -q, max(o, tp), True, REASON_TAKE, qty, cash, st, fills, counts, trades,
                          fee_taker, fee_maker, half_spread, impact_coef, sigma, vol_ref)
        else:
            if stop_loss > 0.0:
                stop = avg * (1.0 + stop_loss)
                if high[t, s] >= stop:
                    cash = _fill(t, s, -q, max(o, stop), False, REASON_STOP, qty, cash, st, fills, counts, trades,
                          fee_taker, fee_maker, half_spread, impact_coef, sigma, vol_ref)
                    continue
            if take_profit > 0.0:
                tp = avg * (1.0 - take_profit)
                if low[t, s] <= tp:
                    cash = _fill(t, s, -q, min(o, tp), True, REASON_TAKE, qty, cash, st, fills, counts, trades,
                          fee_taker, fee_maker, half_spread, impact_coef, sigma, vol_ref)
    return cash


@njit(cache=True)
def _flat_run(equity, changed, t, cash):  # noqa: ANN001, ANN202 - numba internals
    """Write `cash` as equity from bar t up to the bar after the next target change; return that bar."""
    n = equity.shape[0]
    equity[t] = cash
    t += 1
    while t < n and not changed[t - 1]:
        equity[t] = cash
        t += 1
    return t


@njit(cache=True)
def _hold_run(equity, changed, close, t, cash, q):  # noqa: ANN001, ANN202 - numba internals
    """One symbol (column 0) held at q: mark cash + q * close from bar t up to the bar after the next target
    change."""
    n = equity.shape[0]
    equity[t] = cash + q * close[t, 0]
    t += 1
    while t < n and not changed[t - 1]:
        equity[t] = cash + q * close[t, 0]
        t += 1
    return t


@njit(cache=True)
def simulate_kernel(targets, changed, fill_px, open_, high, low, close, sigma, vol_ref, funding,  # noqa: ANN001, ANN201
                    stop_frac, take_frac, init_cash, fee_taker, fee_maker, half_spread, impact_coef,
                    stop_loss, take_profit, max_bars, fills_at_open, capacity):
    """Simulate the portfolio over (n bars x k symbols); returns equity per bar, fill rows, trade rows and the
    number of bars that ended holding any position.

    Positions per bar are not materialised here (they follow exactly from the fills; see positions_from_fills):
    the only per-bar output is equity, so the kernel writes no more memory than a bare loop does.
    `changed[t]` is true where any target at bar t differs from bar t-1 (bar 0: from zero); per-symbol work is only
    done on those bars, on bars after an untradable one, and while positions are open.
    Symbol loops are `while` loops and cash is a local: both measurably faster than `for ... range(k)` and an array
    cell in numba's per-bar hot path. Stretches of bars with nothing to execute (flat, or holding without barriers
    or funding) run in tight helper loops (_flat_run, _hold_run) up to the bar after the next target change; one
    symbol without barriers or funding goes to engine.backtest.kernel_single (same values, fill bars gathered first).
    `funding` (and `sigma` / `vol_ref` when impact_coef is 0) may have 0 rows: nothing is funded (read).
    `stop_frac` / `take_frac` (n x k per-trade fractions by decision bar) may have 0 rows: the scalars apply.
    """
    n, k = targets.shape
    equity = np.empty(n)
    qty = np.zeros(k)
    cash = init_cash
    st = np.zeros((k, N_STATE_COLS))
    prev_target = np.zeros(k)
    fills = np.empty((capacity, N_FILL_COLS))
    trades = np.empty((capacity, N_TRADE_COLS))
    counts = np.zeros(2, dtype=np.int64)
    exposed_bars = 0
    n_open = 0  # symbols with a non-zero position (funding and marking skip work while flat)
    per_trade_sl = stop_frac.shape[0] > 0
    per_trade_tp = take_frac.shape[0] > 0
    has_barriers = stop_loss > 0.0 or take_profit > 0.0 or per_trade_sl or per_trade_tp
    last_fill_count = 0
    pending = False
    has_funding = False
    t = 0
    while t < funding.shape[0] and not has_funding:  # run_kernel passes a 0-row array when nothing is funded
        s = 0
        while s < k:
            r = funding[t, s]
            if r != 0.0 and r == r:
                has_funding = True
            s += 1
        t += 1
    simple = not (has_funding or has_barriers or max_bars > 0)
    ran = False
    if simple and k == 1:  # one symbol, nothing between target changes: engine.backtest.kernel_single
        ran, exposed_bars = single_symbol(targets, changed, fill_px, close, sigma, vol_ref, init_cash, fee_taker,
                                          fee_maker, half_spread, impact_coef, equity, qty, st, fills, counts, trades)
    t = n if ran else 0
    while t < n:
        if not pending and (t == 0 or not changed[t - 1]):
            # fast path: flat and nothing to execute - equity is cash until the bar after the next target change
            if n_open == 0:
                t = _flat_run(equity, changed, t, cash)
                continue
            # fast path: holding, no barriers or funding, no new targets - mark at the close only
            if simple:
                if k == 1:
                    t0 = t
                    t = _hold_run(equity, changed, close, t, cash, qty[0])
                    exposed_bars += t - t0
                    continue
                while True:
                    eq = cash
                    s = 0
                    while s < k:
                        q = qty[s]
                        if q != 0.0:
                            eq += q * close[t, s]
                        s += 1
                    exposed_bars += 1
                    equity[t] = eq
                    t += 1
                    if t >= n or changed[t - 1]:
                        break
                continue
        # 1) funding on the position held entering the bar
        if n_open > 0 and has_funding:
            s = 0
            while s < k:
                q = qty[s]
                if q != 0.0:
                    r = funding[t, s]
                    if r == r and r != 0.0:
                        pay = q * open_[t, s] * r
                        cash -= pay
                        st[s, S_FUND] += pay
                s += 1
        # 2) time barrier at the open
        if max_bars > 0 and n_open > 0:
            cash = _barriers(t, False, False, qty, cash, st, fills, counts, trades, open_, high, low,
                             max_bars, fee_taker, fee_maker, half_spread, impact_coef, sigma, vol_ref)
        if has_barriers and not fills_at_open and n_open > 0:
            cash = _barriers(t, True, False, qty, cash, st, fills, counts, trades, open_, high, low,
                             max_bars, fee_taker, fee_maker, half_spread, impact_coef, sigma, vol_ref)
        # 3) signal fills: the target decided at t-1
        if t > 0 and (pending or changed[t - 1]):
            pending = False
            eq = 0.0
            have_eq = False  # equity at fill prices, computed only when some target changed
            s = -1
            while s + 1 < k:
                s += 1
                tgt = targets[t - 1, s]
                if tgt == prev_target[s]:
                    continue
                if not have_eq:
                    have_eq = True
                    eq = cash
                    s2 = 0
                    while s2 < k:
                        if qty[s2] != 0.0:
                            p2 = fill_px[t, s2]
                            if p2 != p2:  # no bar for s2 at t: its last close (close is forward-filled)
                                p2 = close[t - 1, s2]
                            eq += qty[s2] * p2
                        s2 += 1
                px = fill_px[t, s]
                if px != px or tgt != tgt:
                    pending = True
                    continue  # not tradable yet: retried on the next bar
                prev_target[s] = tgt
                new_q = tgt * eq / (px * (1.0 + fee_taker))
                dq = new_q - qty[s]
                if dq != 0.0:
                    cash = _fill(t, s, dq, px, False, REASON_SIGNAL, qty, cash, st, fills, counts, trades,
                                 fee_taker, fee_maker, half_spread, impact_coef, sigma, vol_ref)
                    if has_barriers and qty[s] != 0.0 and st[s, S_ENTRY_BAR] == t:  # a trade opened: its barriers
                        v = stop_frac[t - 1, s] if per_trade_sl else stop_loss
                        st[s, S_SL] = v if v > 0.0 else 0.0  # NaN compares false: no stop
                        v = take_frac[t - 1, s] if per_trade_tp else take_profit
                        st[s, S_TP] = v if v > 0.0 else 0.0
        if has_barriers and fills_at_open and (n_open > 0 or counts[0] != last_fill_count):
            cash = _barriers(t, True, True, qty, cash, st, fills, counts, trades, open_, high, low,
                             max_bars, fee_taker, fee_maker, half_spread, impact_coef, sigma, vol_ref)
        # 4) mark to market at the close
        eq = cash
        if n_open > 0 or counts[0] != last_fill_count:
            last_fill_count = counts[0]
            n_open = 0
            s = 0
            while s < k:
                q = qty[s]
                if q != 0.0:
                    n_open += 1
                    eq += q * close[t, s]
                s += 1
            if n_open > 0:
                exposed_bars += 1
        equity[t] = eq
        t += 1
    # trades still open at the end are reported (marked at the last close), without a fill
    for s in range(k):
        q = qty[s]
        if q != 0.0:
            c = close[n - 1, s]
            st[s, S_REAL] += abs(q) * (c - st[s, S_AVG]) * _sign(q)
            st[s, S_EXIT_VAL] += abs(q) * c
            st[s, S_EXIT_QTY] += abs(q)
            counts[1] = _close_trade(st, trades, counts[1], s, n - 1, _sign(q), REASON_END)
    return equity, fills[:counts[0]], trades[:counts[1]], exposed_bars  # views: capacity is a tight bound


@njit(cache=True)
def bare_loop(targets, open_, close, init_cash, fee):  # noqa: ANN001, ANN201
    """A minimal single-symbol next-open loop with fees only: the floor the full kernel is measured against."""
    n = targets.shape[0]
    cash = init_cash
    q = 0.0
    prev = 0.0
    equity = np.empty(n)
    for t in range(n):
        if t > 0 and targets[t - 1] != prev:
            prev = targets[t - 1]
            px = open_[t]
            eq = cash + q * px
            new_q = prev * eq / (px * (1.0 + fee))
            dq = new_q - q
            cash -= dq * px + abs(dq) * px * fee
            q = new_q
        equity[t] = cash + q * close[t]
    return equity
