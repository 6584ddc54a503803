"""One test per stylised fact the simulator must reproduce; each reports its measured values.

All facts are measured on 40 days of simulated 1m data (seed 7, a fixed clock), generated once for the module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from engine.data.simulator import SimulatedExchange

T = 1_790_000_000.0
NOW = int(T * 1000)
DAYS = 36
SINCE = NOW - NOW % 86_400_000 - DAYS * 86_400_000
UNTIL = NOW - NOW % 86_400_000
SPOT = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


@dataclass
class World:
    """Everything the facts are measured on."""

    sim: SimulatedExchange
    bars: dict[str, pd.DataFrame]
    truth: pd.DataFrame
    events: pd.DataFrame
    trades: pd.DataFrame  # BTC perp tape


@pytest.fixture(scope="module")
def w() -> World:
    """Generate the module's data once."""
    sim = SimulatedExchange(seed=7, clock=lambda: T)
    bars = {s: sim.ohlcv_frame(s, "1m", SINCE, UNTIL) for s in SPOT + ("BTC/USDT:USDT",)}
    truth = sim.truth("BTC/USDT", SINCE, UNTIL)
    events = sim.events(SINCE + 86_400_000, UNTIL - 86_400_000)
    trades = sim.trades_frame("BTC/USDT:USDT", SINCE, UNTIL)
    return World(sim, bars, truth, events, trades)


def _log_returns(frame: pd.DataFrame) -> pd.Series:
    return np.log(frame["close"]).diff().dropna()


def _big_crashes(w: World) -> pd.DataFrame:
    return w.events[(w.events["kind"] == "crash") & (w.events["size"] < -0.02)]


def _minute_flow(w: World) -> pd.DataFrame:
    """Per-minute taker buy and sell volume of the BTC perp, from its trade tape."""
    tr = w.trades
    minute = tr["timestamp"] - tr["timestamp"] % 60_000
    signed = np.where(tr["side"] == "buy", tr["amount"], -tr["amount"])
    g = pd.DataFrame({"minute": minute, "vol": tr["amount"], "signed": signed}).groupby("minute").sum()
    return g


def test_fat_tailed_1m_returns(w: World, report) -> None:
    """Excess kurtosis of 1m log returns > 3 for every symbol."""
    kurt = {s: float(_log_returns(w.bars[s]).kurt()) for s in SPOT}
    report("fat tails: excess kurtosis of 1m returns", kurt)
    assert all(k > 3 for k in kurt.values()), kurt


def test_volatility_clustering(w: World, report) -> None:
    """Autocorrelation of |r| is positive at every lag 1..100 and clearly so at lag 50."""
    a = _log_returns(w.bars["BTC/USDT"]).abs().to_numpy()
    a = a - a.mean()
    acf = {lag: float(np.dot(a[:-lag], a[lag:]) / np.dot(a, a)) for lag in range(1, 101)}
    report("volatility clustering: acf of |r| (BTC/USDT 1m)",
           {f"lag{k}": acf[k] for k in (1, 5, 10, 30, 50, 100)} | {"min_lag1_100": min(acf.values())})
    assert min(acf.values()) > 0
    assert acf[50] > 0.05


def test_regime_shifts(w: World, report) -> None:
    """All four regimes occur and switch; crashes are fast and volatile; trends drift their way over a year."""
    tr = w.truth
    r = _log_returns(w.bars["BTC/USDT"]).reindex(tr.index).fillna(0.0)
    counts = tr["regime"].value_counts()
    switches = int((tr["regime"].astype(str) != tr["regime"].astype(str).shift()).sum() - 1)
    stats = {f"{k}_share": float(counts.get(k, 0) / len(tr)) for k in ("trend_up", "trend_down", "range", "crash")}
    by = r.groupby(tr["regime"].astype(str))
    mean_bps = (by.mean() * 1e4).to_dict()
    vol_bps = (by.std() * 1e4).to_dict()
    stats |= {f"{k}_1m_mean_bps": float(v) for k, v in mean_bps.items()}
    stats |= {f"{k}_1m_vol_bps": float(v) for k, v in vol_bps.items()}
    # Drift per regime is small against 1m noise, so measure it on a year of the hourly path (BTC log price).
    world = w.sim.world
    h1 = world.hour_of(UNTIL)
    h0 = h1 - 365 * 24
    hourly = np.diff(world.x[h0:h1 + 1, 0])
    reg = world.regime[h0:h1]
    drift = {name: float(hourly[reg == k].mean() * 1e4) for k, name in enumerate(("trend_up", "trend_down",
                                                                                      "range"))}
    stats |= {f"{k}_1h_mean_bps_year": v for k, v in drift.items()}
    stats["switches"] = switches
    report("regime shifts (BTC/USDT, per-minute truth; hourly drift over a year)", stats)
    assert all(counts.get(k, 0) > 0 for k in ("trend_up", "trend_down", "range", "crash"))
    assert switches >= 8
    assert drift["trend_up"] > drift["range"] > drift["trend_down"]
    assert mean_bps["crash"] < -3 and vol_bps["crash"] > 2 * vol_bps["range"]


def test_cross_asset_correlation(w: World, report) -> None:
    """1m returns of the three assets are strongly, not perfectly, correlated."""
    rets = pd.DataFrame({s: _log_returns(w.bars[s]) for s in SPOT}).dropna()
    c = rets.corr()
    vals = {"BTC_ETH": float(c.loc["BTC/USDT", "ETH/USDT"]), "BTC_SOL": float(c.loc["BTC/USDT", "SOL/USDT"]),
            "ETH_SOL": float(c.loc["ETH/USDT", "SOL/USDT"])}
    report("cross-asset correlation of 1m returns", vals)
    assert all(0.5 < v < 0.98 for v in vals.values()), vals


def test_informed_flow_leads_large_moves(w: World, report) -> None:
    """Order-flow imbalance and VPIN (from the trade tape) rise in the minutes before large moves."""
    flow = _minute_flow(w)
    ofi30 = flow["signed"].rolling(30).sum() / flow["vol"].rolling(30).sum()
    # VPIN: volume buckets of 1/100 of the mean daily volume, averaged over the last 5 buckets.
    tr = w.trades
    bucket_size = tr["amount"].sum() / DAYS / 100
    bucket = (tr["amount"].cumsum() // bucket_size).to_numpy()
    signed = np.where(tr["side"] == "buy", tr["amount"], -tr["amount"])
    per = pd.DataFrame({"b": bucket, "s": signed, "v": tr["amount"], "t": tr["timestamp"]}).groupby("b").agg(
        s=("s", "sum"), v=("v", "sum"), t=("t", "max"))
    vpin = (per["s"].abs() / per["v"]).rolling(5).mean().dropna()
    vpin_t = per["t"].loc[vpin.index].to_numpy()
    moves = w.events[w.events["size"].abs() > 0.012]
    assert len(moves) >= 3, "the test window must contain several large moves"
    ofi_pct, vpin_pct, vpin_rise, lead_move = [], [], [], []
    ofi_sorted = np.sort(ofi30.dropna().to_numpy())
    vpin_sorted = np.sort(vpin.to_numpy())
    closes = w.bars["BTC/USDT:USDT"]["close"]
    for _, ev in moves.iterrows():
        at = ev["move_start"] - 60_000
        o = float(ofi30.loc[at]) * np.sign(ev["size"])  # imbalance in the direction of the coming move
        ofi_pct.append(float(np.searchsorted(ofi_sorted, o) / ofi_sorted.size))
        v_now = float(vpin.iloc[np.searchsorted(vpin_t, ev["move_start"]) - 1])
        v_before = float(vpin.iloc[np.searchsorted(vpin_t, ev["flow_start"] - 7_200_000) - 1])
        vpin_pct.append(float(np.searchsorted(vpin_sorted, v_now) / vpin_sorted.size))
        vpin_rise.append(v_now - v_before)
        p0 = closes.loc[pd.Timestamp(ev["flow_start"], unit="ms", tz="UTC")]
        p1 = closes.loc[pd.Timestamp(at, unit="ms", tz="UTC")]
        lead_move.append(float(np.log(p1 / p0) / ev["size"]))
    vals = {"moves": len(moves), "crashes": int((moves["kind"] == "crash").sum()),
            "mean_lead_min": float(moves["lead_min"].mean()),
            "ofi30_percentile_in_move_direction_mean": float(np.mean(ofi_pct)),
            "vpin_percentile_at_move_start_mean": float(np.mean(vpin_pct)),
            "vpin_rise_mean": float(np.mean(vpin_rise)), "vpin_rise_share": float(np.mean(np.array(vpin_rise) > 0)),
            "share_of_move_during_lead_mean": float(np.mean(lead_move))}
    report("informed flow before large moves (BTC perp tape)", vals)
    assert np.mean(ofi_pct) > 0.9  # top decile of 30-minute imbalance, on the side of the coming move
    assert np.mean(vpin_pct) > 0.75
    assert np.mean(vpin_rise) > 0 and np.mean(np.array(vpin_rise) > 0) >= 0.75
    assert np.mean(lead_move) < 0.35  # most of the move comes after the flow: the flow leads


def test_book_worsens_under_stress(w: World, report) -> None:
    """Spread widens and depth within 10 bps thins when stress is high."""
    tr = w.truth
    stressed = tr.index[tr["stress"] > 0.5][::7][:40]
    calm = tr.index[tr["stress"] < 0.01][::1500][:40]
    assert len(stressed) >= 10 and len(calm) >= 10

    def measure(times: pd.DatetimeIndex) -> tuple[float, float]:
        spreads, depths = [], []
        for ts in times:
            book = w.sim.order_book_at("BTC/USDT:USDT", int(ts.value // 1_000_000) + 30_000)
            bid, ask = book["bids"][0][0], book["asks"][0][0]
            mid = (bid + ask) / 2
            spreads.append((ask - bid) / mid * 1e4)
            depths.append(sum(a for p, a in book["bids"] + book["asks"] if abs(p - mid) / mid <= 10e-4))
        return float(np.median(spreads)), float(np.median(depths))

    s_calm, d_calm = measure(calm)
    s_str, d_str = measure(stressed)
    report("order book vs stress (BTC/USDT:USDT)", {"spread_bps_calm": s_calm, "spread_bps_stressed": s_str,
                                               "depth10bps_calm": d_calm, "depth10bps_stressed": d_str})
    assert s_str > 3 * s_calm and d_str < 0.5 * d_calm
    assert s_calm < 3.0


def test_funding_tied_to_premium(w: World, report) -> None:
    """Funding follows the 8-hour mean perp premium (Binance formula); most settle at the 0.01 % interest rate."""
    hist = w.sim.fetch_funding_rate_history("BTC/USDT:USDT", since=SINCE + 86_400_000, limit=1000)
    hist = [h for h in hist if h["timestamp"] <= UNTIL]
    prem = (w.bars["BTC/USDT:USDT"]["close"] / w.bars["BTC/USDT"]["close"] - 1).dropna()
    rates, means = [], []
    for h in hist:
        end = pd.Timestamp(h["timestamp"], unit="ms", tz="UTC")
        window = prem[(prem.index >= end - pd.Timedelta(hours=8)) & (prem.index < end)]
        rates.append(h["fundingRate"])
        means.append(float(window.mean()))
    rates_a, means_a = np.array(rates), np.array(means)
    corr = float(np.corrcoef(rates_a, means_a)[0, 1])
    at_interest = float(np.mean(np.isclose(rates_a, 1e-4)))
    off = ~np.isclose(rates_a, 1e-4)
    sign_agree = float(np.mean(np.sign(rates_a[off] - 1e-4) == np.sign(means_a[off] - 1e-4))) if off.any() else 1.0
    report("funding vs perp premium (BTC)", {"records": len(rates), "corr_rate_premium": corr,
                                             "share_at_0.01pct": at_interest, "sign_agreement_off_floor": sign_agree,
                                             "min_rate": float(rates_a.min()), "max_rate": float(rates_a.max())})
    assert corr > 0.6 and 0.3 < at_interest < 0.95 and sign_agree > 0.9


def test_feeds_co_move_with_regimes(w: World, report) -> None:
    """Macro risk index falls on crash days, fear/greed tracks the trailing move, inflows spike before crashes."""
    macro = w.sim.feed_source("macro").fetch_feed(SINCE, UNTIL)
    senti = w.sim.feed_source("sentiment").fetch_feed(SINCE, UNTIL)
    chain = [p for p in w.sim.feed_source("onchain").fetch_feed(SINCE, UNTIL) if p.series == "BTC_netflow"]
    day = lambda ms: pd.Timestamp(ms, unit="ms", tz="UTC").floor("1D")  # noqa: E731
    crash_days = {day(t) for t in _big_crashes(w)["move_start"]}
    risk = pd.Series({day(p.ts): p.value for p in macro})
    on_crash = risk[risk.index.isin(crash_days)].mean()
    off_crash = risk[~risk.index.isin(crash_days)].mean()
    regime = w.truth["regime"].astype(str)
    score = ((regime == "trend_up").astype(float) - (regime == "trend_down")).resample("1D").mean()
    risk_corr = float(risk.corr(score.reindex(risk.index)))
    fg = pd.Series({day(p.ts): p.value for p in senti})
    close = w.bars["BTC/USDT"]["close"].resample("1D").last()
    ret7 = np.log(close).diff(7).shift(-1).reindex(fg.index)  # the 7 days ending when day d closes
    fg_corr = float(fg.corr(ret7))
    flow = pd.Series({p.ts: p.value for p in chain})
    z = (flow - flow.mean()) / flow.std()
    pre = [z.loc[(ev - ev % 3_600_000) - 3_600_000] for ev in _big_crashes(w)["move_start"]]
    vals = {"risk_index_crash_days": float(on_crash), "risk_index_other_days": float(off_crash),
            "corr_risk_index_trend_score": risk_corr, "corr_fear_greed_ret7": fg_corr,
            "fear_greed_min": float(fg.min()), "fear_greed_max": float(fg.max()),
            "btc_netflow_z_hour_before_crash_mean": float(np.mean(pre))}
    report("feeds vs regimes", vals)
    assert on_crash < off_crash
    assert risk_corr > 0.2
    assert fg_corr > 0.5 and 0 <= fg.min() and fg.max() <= 100
    assert np.mean(pre) > 2.0
