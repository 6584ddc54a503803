"""The kernel's fill and trade-record helpers, compiled with numba (cache=True): one fill's costs, cash and trade
state (`_fill`), and opening / closing a trade record. Shared by the general loop (engine.backtest.kernel) and the
one-symbol path (engine.backtest.kernel_single), so both book a fill with the same arithmetic."""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.backtest.layout import (  # noqa: F401 - the record columns
    F_BAR, F_FEE, F_PRICE, F_QTY, F_REASON, F_REF, F_SLIP, F_SYM, N_FILL_COLS, N_STATE_COLS, N_TRADE_COLS, REASON_END,
    REASON_NAMES, REASON_SIGNAL, REASON_STOP, REASON_TAKE, REASON_TIME, S_AVG, S_ENTRY_BAR, S_EXIT_QTY, S_EXIT_VAL,
    S_FEES, S_FUND, S_MAXQ, S_REAL, S_SLIP, T_ENTRY_BAR, T_ENTRY_PX, T_EXIT_BAR, T_EXIT_PX, T_FEES, T_FUNDING, T_PNL,
    T_QTY, T_REASON, T_SIDE, T_SLIP, T_SYM, S_SL, S_TP)


@njit(cache=True)
def _sign(x: float) -> float:
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return 0.0


@njit(cache=True, inline="always")  # inlined: no call and no reference counting of st / trades per trade
def _close_trade(st, trades, n_trades, s, t, side, reason):  # noqa: ANN001, ANN202 - numba internals
    """Write the open trade of symbol s as a record and return the new trade count."""
    row = trades[n_trades]
    row[T_SYM] = s
    row[T_ENTRY_BAR] = st[s, S_ENTRY_BAR]
    row[T_EXIT_BAR] = t
    row[T_SIDE] = side
    row[T_QTY] = st[s, S_MAXQ]
    row[T_ENTRY_PX] = st[s, S_AVG]
    row[T_EXIT_PX] = st[s, S_EXIT_VAL] / st[s, S_EXIT_QTY] if st[s, S_EXIT_QTY] > 0.0 else np.nan
    row[T_PNL] = st[s, S_REAL] - st[s, S_FEES] - st[s, S_FUND]
    row[T_FEES] = st[s, S_FEES]
    row[T_SLIP] = st[s, S_SLIP]
    row[T_FUNDING] = st[s, S_FUND]
    row[T_REASON] = reason
    return n_trades + 1


@njit(cache=True, inline="always")
def _open_trade(st, s, t, px, qty_abs, fee, slip):  # noqa: ANN001, ANN202 - numba internals
    st[s, S_ENTRY_BAR] = t
    st[s, S_AVG] = px
    st[s, S_MAXQ] = qty_abs
    st[s, S_FEES] = fee
    st[s, S_SLIP] = slip
    st[s, S_FUND] = 0.0
    st[s, S_REAL] = 0.0
    st[s, S_EXIT_VAL] = 0.0
    st[s, S_EXIT_QTY] = 0.0


@njit(cache=True)
def _fill(t, s, dq, ref_px, maker, reason, qty, cash, st, fills, counts, trades,  # noqa: ANN001, ANN202
          fee_taker, fee_maker, half_spread, impact_coef, sigma, vol_ref):
    """Execute dq units of symbol s at bar t against reference price ref_px; update qty and trade state and
    return the new cash."""
    side = _sign(dq)
    adq = abs(dq)
    if maker:
        px = ref_px
        fee_rate = fee_maker
    else:
        imp = 0.0
        if impact_coef > 0.0:  # sigma / vol_ref may be 0-row placeholders when impact is off
            v = vol_ref[t, s]
            sg = sigma[t, s]
            if v > 0.0 and sg > 0.0:
                imp = impact_coef * sg * np.sqrt(adq / v)
        px = ref_px * (1.0 + side * (half_spread + imp))
        fee_rate = fee_taker
    fee = adq * px * fee_rate
    slip = adq * abs(px - ref_px)
    cash -= dq * px + fee
    old = qty[s]
    new = old + dq
    nf = counts[0]
    fills[nf, F_BAR] = t
    fills[nf, F_SYM] = s
    fills[nf, F_QTY] = dq
    fills[nf, F_PRICE] = px
    fills[nf, F_REF] = ref_px
    fills[nf, F_FEE] = fee
    fills[nf, F_SLIP] = slip
    fills[nf, F_REASON] = reason
    counts[0] = nf + 1
    if old == 0.0:
        _open_trade(st, s, t, px, abs(new), fee, slip)
    elif _sign(new) == _sign(old) and abs(new) > abs(old):
        st[s, S_AVG] = (st[s, S_AVG] * abs(old) + px * adq) / abs(new)
        st[s, S_MAXQ] = max(st[s, S_MAXQ], abs(new))
        st[s, S_FEES] += fee
        st[s, S_SLIP] += slip
    else:
        closed = min(adq, abs(old))
        share = closed / adq
        st[s, S_REAL] += closed * (px - st[s, S_AVG]) * _sign(old)
        st[s, S_FEES] += fee * share
        st[s, S_SLIP] += slip * share
        st[s, S_EXIT_VAL] += closed * px
        st[s, S_EXIT_QTY] += closed
        if new == 0.0 or _sign(new) != _sign(old):
            counts[1] = _close_trade(st, trades, counts[1], s, t, _sign(old), reason)
            if new != 0.0:
                _open_trade(st, s, t, px, abs(new), fee * (1.0 - share), slip * (1.0 - share))
    qty[s] = new
    return cash
