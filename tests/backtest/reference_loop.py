"""Plain-Python restatement of the kernel's semantics (engine/backtest/kernel.py docstring), bar by bar, with dicts.

It is written independently of the kernel (no shared helpers) so that the property test comparing the two checks the
semantics, not just the compiler. Arithmetic follows the documented formulas in the documented order, so results are
expected to agree bit for bit.
"""

from __future__ import annotations

import math

import numpy as np


def _sgn(x: float) -> float:
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


def reference_simulate(targets, fill_px, open_, high, low, close, sigma, vol_ref, funding, init_cash, fee_taker,
                       fee_maker, half_spread, impact_coef, stop_loss, take_profit, max_bars, fills_at_open,
                       stop_frac=(), take_frac=()):
    """Return (equity list, qty rows, fills list of dicts, trades list of dicts).

    Each trade's stop / take fraction is set when a signal fill opens it: stop_frac[t-1][s] (take_frac[t-1][s]) of
    the decision bar when those rows are given, else the scalar; NaN or <= 0 means none for that trade."""
    n, k = len(targets), len(targets[0])
    cash = float(init_cash)
    qty = [0.0] * k
    prev = [0.0] * k
    trade = [None] * k
    fills, trades, equity, qty_rows = [], [], [], []

    def do_fill(t, s, dq, ref, maker, reason):
        nonlocal cash
        side = _sgn(dq)
        if maker:
            px, rate = ref, fee_maker
        else:
            imp = 0.0
            if impact_coef > 0.0 and vol_ref[t][s] > 0.0 and sigma[t][s] > 0.0:
                imp = impact_coef * sigma[t][s] * math.sqrt(abs(dq) / vol_ref[t][s])
            px, rate = ref * (1.0 + side * (half_spread + imp)), fee_taker
        fee = abs(dq) * px * rate
        slip = abs(dq) * abs(px - ref)
        cash -= dq * px + fee
        fills.append({"bar": t, "sym": s, "qty": dq, "price": px, "fee": fee, "reason": reason})
        old, new = qty[s], qty[s] + dq
        if old == 0.0:
            trade[s] = {"entry_bar": t, "avg": px, "maxq": abs(new), "fees": fee, "slip": slip, "fund": 0.0,
                        "real": 0.0, "xv": 0.0, "xq": 0.0}
        elif _sgn(new) == _sgn(old) and abs(new) > abs(old):
            tr = trade[s]
            tr["avg"] = (tr["avg"] * abs(old) + px * abs(dq)) / abs(new)
            tr["maxq"] = max(tr["maxq"], abs(new))
            tr["fees"] += fee
            tr["slip"] += slip
        else:
            tr = trade[s]
            closed = min(abs(dq), abs(old))
            share = closed / abs(dq)
            tr["real"] += closed * (px - tr["avg"]) * _sgn(old)
            tr["fees"] += fee * share
            tr["slip"] += slip * share
            tr["xv"] += closed * px
            tr["xq"] += closed
            if new == 0.0 or _sgn(new) != _sgn(old):
                trades.append({"sym": s, "entry_bar": tr["entry_bar"], "exit_bar": t, "side": _sgn(old),
                               "pnl": tr["real"] - tr["fees"] - tr["fund"], "reason": reason})
                trade[s] = None
                if new != 0.0:
                    trade[s] = {"entry_bar": t, "avg": px, "maxq": abs(new), "fees": fee * (1.0 - share),
                                "slip": slip * (1.0 - share), "fund": 0.0, "real": 0.0, "xv": 0.0, "xq": 0.0}
        qty[s] = new

    def intrabar(t, same_bar_ok):
        for s in range(k):
            q = qty[s]
            o = open_[t][s]
            if q == 0.0 or o != o:
                continue
            tr = trade[s]
            if tr["entry_bar"] == t and not same_bar_ok:
                continue
            avg, sl, tp = tr["avg"], tr["sl"], tr["tp"]
            if q > 0:
                if sl > 0 and low[t][s] <= avg * (1.0 - sl):
                    do_fill(t, s, -q, min(o, avg * (1.0 - sl)), False, "stop")
                elif tp > 0 and high[t][s] >= avg * (1.0 + tp):
                    do_fill(t, s, -q, max(o, avg * (1.0 + tp)), True, "take")
            else:
                if sl > 0 and high[t][s] >= avg * (1.0 + sl):
                    do_fill(t, s, -q, max(o, avg * (1.0 + sl)), False, "stop")
                elif tp > 0 and low[t][s] <= avg * (1.0 - tp):
                    do_fill(t, s, -q, min(o, avg * (1.0 - tp)), True, "take")

    def positive(v):
        return v if v > 0 else 0.0  # NaN compares false: no barrier

    barriers = stop_loss > 0 or take_profit > 0 or len(stop_frac) > 0 or len(take_frac) > 0
    for t in range(n):
        for s in range(k):
            r = funding[t][s]
            if qty[s] != 0.0 and r == r and r != 0.0:
                pay = qty[s] * open_[t][s] * r
                cash -= pay
                trade[s]["fund"] += pay
        if max_bars > 0:
            for s in range(k):
                if qty[s] != 0.0 and open_[t][s] == open_[t][s] and t - trade[s]["entry_bar"] >= max_bars:
                    do_fill(t, s, -qty[s], open_[t][s], False, "time")
        if barriers and not fills_at_open:
            intrabar(t, False)
        if t > 0:
            eq = cash
            for s in range(k):
                if qty[s] != 0.0:  # a held symbol with no bar at t is marked at its last (forward-filled) close
                    eq += qty[s] * (fill_px[t][s] if fill_px[t][s] == fill_px[t][s] else close[t - 1][s])
            for s in range(k):
                tgt = targets[t - 1][s]
                px = fill_px[t][s]
                if tgt == prev[s] or px != px:
                    continue
                prev[s] = tgt
                dq = tgt * eq / (px * (1.0 + fee_taker)) - qty[s]
                if dq != 0.0:
                    do_fill(t, s, dq, px, False, "signal")
                    if trade[s] is not None and trade[s]["entry_bar"] == t:
                        trade[s]["sl"] = positive(stop_frac[t - 1][s] if len(stop_frac) else stop_loss)
                        trade[s]["tp"] = positive(take_frac[t - 1][s] if len(take_frac) else take_profit)
        if barriers and fills_at_open:
            intrabar(t, True)
        eq = cash
        for s in range(k):
            if qty[s] != 0.0:
                eq += qty[s] * close[t][s]
        equity.append(eq)
        qty_rows.append(list(qty))
    return np.array(equity), np.array(qty_rows), fills, trades
