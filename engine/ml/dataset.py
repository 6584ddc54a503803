"""From a strategy and a panel to a meta-labeling data set: events, labels, weights and point-in-time features.

Events are the bars where the primary strategy holds a side. Each gets a triple-barrier meta-label and an average
uniqueness weight. Features are the strategy's own point-in-time features plus microstructure features built here:
taker order-flow imbalance, VPIN on volume buckets and its rolling CDF, Amihud illiquidity, short returns, range
and volume surprise, and side-aligned versions (side * feature) so a tree can tell "flow against my position" from
"flow with it". Taker buy volume comes from a `taker_buy_volume` column when the panel has one (Binance klines carry
it; the simulator's equivalent is `sim_taker_flow`; `taker_flow_from_trades` aggregates a stored tape), and from
bulk-volume classification of the candles otherwise.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from engine.clock import timeframe_ms
from engine.ml.labels import BarrierSpec, triple_barrier_events
from engine.ml.weights import uniqueness_weights
from engine.risk.liquidity import amihud
from engine.risk.vpin import bulk_volume_classification, volume_in_day_units, vpin_from_volume

MICRO_FEATURES = ["mf_taker_imb", "mf_taker_imb_3", "mf_vpin", "mf_vpin_cdf", "mf_amihud", "mf_ret_1", "mf_ret_4",
                  "mf_range", "mf_volume_z"]
ALIGNED = ["mf_taker_imb", "mf_taker_imb_3", "mf_ret_1", "mf_ret_4"]
MIN_FEATURE_COVERAGE = 0.8  # share of training events on which a feature must be known to be used


@dataclass(frozen=True)
class MicroParams:
    """Windows of the microstructure features (in bars, VPIN in buckets)."""

    bucket_frac: float = 0.02  # bucket volume as a fraction of the recent median daily volume
    vpin_window: int = 50
    vpin_cdf_window: int = 500
    amihud_window: int = 24
    volume_window: int = 168
    volume_days: int = 30  # trailing completed days whose median daily volume sets the bucket size


@dataclass
class MetaDataset:
    """Everything training needs, rows sorted by event start time."""

    X: pd.DataFrame  # index = event start ts (may repeat across symbols)
    y: np.ndarray
    weight: np.ndarray
    t1: pd.Series  # event end, indexed like X
    events: pd.DataFrame  # symbol, side, ret, barrier, trgt, label, t1
    features: list[str]
    data_hash: str
    spec: BarrierSpec
    dropped_features: dict[str, str] = field(default_factory=dict)  # feature -> why it was not used

    @property
    def train_window(self) -> tuple[int, int]:
        """First and last event start in epoch ms."""
        ms = self.X.index.as_unit("ms").asi8
        return (int(ms.min()), int(ms.max())) if len(ms) else (0, 0)


def taker_flow_from_trades(trades: pd.DataFrame, index: pd.DatetimeIndex, timeframe: str) -> pd.Series:
    """Taker buy volume per bar from a tape (timestamp, amount, side); bars are labelled by open time."""
    for col in ("timestamp", "amount", "side"):
        if col not in trades:
            raise ValueError(f"trades: missing column {col!r}")
    step = timeframe_ms(timeframe)
    opens = index.as_unit("ms").asi8
    ts = trades["timestamp"].to_numpy(dtype=np.int64)
    pos = np.searchsorted(opens, ts - ts % step)
    ok = (pos < len(opens)) & (opens[np.minimum(pos, len(opens) - 1)] == ts - ts % step)
    buy = np.where(trades["side"].to_numpy() == "buy", trades["amount"].to_numpy(dtype=float), 0.0)
    out = np.bincount(pos[ok], weights=buy[ok], minlength=len(opens))
    return pd.Series(out, index=index, name="taker_buy_volume")


def sim_taker_flow(sim: Any, symbol: str, timeframe: str, index: pd.DatetimeIndex) -> pd.Series:
    """The simulator's kline taker-buy volume per bar: sum of minute volume x the minute's taker buy share.

    This is what an exchange reports in its klines (Binance field 9) and what the simulated tape aggregates to; it
    avoids regenerating years of tapes just to count their buy side.
    """
    step = timeframe_ms(timeframe)
    opens = index.as_unit("ms").asi8
    if not len(opens):
        return pd.Series(np.zeros(0), index=index, name="taker_buy_volume")
    m = sim.minute_arrays(symbol, int(opens[0]), int(opens[-1]) + step)
    pos = np.searchsorted(opens, m["ts"] - m["ts"] % step)
    ok = (pos < len(opens)) & (opens[np.minimum(pos, len(opens) - 1)] == m["ts"] - m["ts"] % step)
    buy = m["volume"] * m["buy_frac"]
    return pd.Series(np.bincount(pos[ok], weights=buy[ok], minlength=len(opens)), index=index,
                     name="taker_buy_volume")


def micro_features(bars: pd.DataFrame, params: MicroParams | None = None) -> pd.DataFrame:
    """Per-bar microstructure features, each known at the bar's close (point-in-time)."""
    p = params or MicroParams()
    for col in ("open", "high", "low", "close", "volume"):
        if col not in bars:
            raise ValueError(f"bars: missing column {col!r}")
    vol = bars["volume"].astype(float)
    bvc = bulk_volume_classification(bars)["buy_volume"]
    if "taker_buy_volume" in bars and bars["taker_buy_volume"].notna().any():
        # a tape (or kline field) covering only part of the bars: outside it the order flow is unknown (NaN), not
        # half the volume; VPIN's buckets run on BVC there so they stay continuous, but its readings are masked
        tape = bars["taker_buy_volume"].astype(float)
        known = tape.notna().to_numpy()
        buy = tape.where(known, bvc)
    else:
        known = np.ones(len(bars), dtype=bool)
        buy = tape = bvc
    imb = 2.0 * tape / vol.where(vol > 0) - 1.0
    imb = imb.mask(known & (vol <= 0).to_numpy(), 0.0).where(known)  # a bar without volume has no imbalance
    out = pd.DataFrame(index=bars.index)
    out["mf_taker_imb"] = imb
    out["mf_taker_imb_3"] = imb.rolling(3, min_periods=3).mean()
    out["mf_vpin"] = np.nan
    out["mf_vpin_cdf"] = np.nan
    if len(bars) > 1:
        ts = bars.index.as_unit("ms").asi8
        # buckets in units of the recent median daily volume (point-in-time, robust to a near-empty first month)
        units = volume_in_day_units(ts, vol.to_numpy(), p.volume_days)
        share = (buy / vol.where(vol > 0)).clip(0.0, 1.0).fillna(0.5).to_numpy()
        b = vpin_from_volume(ts, units, units * share, p.bucket_frac, p.vpin_window, p.vpin_cdf_window)
        if len(b):
            last = b.groupby("ts")[["vpin", "cdf"]].last()  # the reading after the bar's last completed bucket
            at = pd.to_datetime(last.index, unit="ms", utc=True)
            out["mf_vpin"] = pd.Series(last["vpin"].to_numpy(), index=at).reindex(bars.index).ffill().to_numpy()
            out["mf_vpin_cdf"] = pd.Series(last["cdf"].to_numpy(), index=at).reindex(bars.index).ffill().to_numpy()
        out.loc[~known, ["mf_vpin", "mf_vpin_cdf"]] = np.nan
    out["mf_amihud"] = amihud(bars, p.amihud_window)
    logc = np.log(bars["close"].astype(float))
    out["mf_ret_1"] = logc.diff()
    out["mf_ret_4"] = logc.diff(4)
    out["mf_range"] = (bars["high"] - bars["low"]) / bars["close"]
    lv = np.log1p(vol)
    out["mf_volume_z"] = (lv - lv.rolling(p.volume_window, min_periods=24).mean()) / \
        lv.rolling(p.volume_window, min_periods=24).std()
    return out


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.select_dtypes(include=[np.number, "bool"]).astype(float)


def event_feature_frame(strategy_features: pd.DataFrame, micro: pd.DataFrame, side: pd.Series) -> pd.DataFrame:
    """Join strategy and micro features for one symbol and add side and side-aligned columns."""
    strat = _numeric(strategy_features)
    clash = [c for c in micro.columns if c in strat.columns]
    if clash:
        raise ValueError(f"strategy_features: columns {clash} clash with the microstructure features")
    joined = strat.join(micro, how="right")
    joined["side"] = side.reindex(joined.index).astype(float)
    for col in ALIGNED:
        joined[f"{col}_aligned"] = joined[col] * joined["side"]
    return joined


def usable_features(X: pd.DataFrame, min_coverage: float = MIN_FEATURE_COVERAGE) -> tuple[list[str], dict[str, str]]:
    """Features worth learning from on these rows, and why each other one was dropped (missing or constant).

    A feature missing on most events (a feed stored for only part of the window) cannot be learned and breaks a CV
    fold where it is entirely missing; a constant one (a macro gate reading neutral on a CSV import) carries nothing.
    """
    keep: list[str] = []
    dropped: dict[str, str] = {}
    numeric = all(dt.kind in "fiub" for dt in X.dtypes)
    clean = None if numeric else X.replace([np.inf, -np.inf], np.nan)
    for col in X.columns:
        if numeric:  # the usual all-float frame: the same test on the column's array, without pandas copies
            values = X[col].to_numpy(dtype=float)
            known = values[np.isfinite(values)]
            constant = not len(known) or bool(known.min() == known.max())
            first = known[0] if len(known) else None
        else:
            series = clean[col].dropna()
            known, constant = series, series.nunique() <= 1
            first = series.iloc[0] if len(series) else None
        coverage = len(known) / len(X) if len(X) else 0.0
        if coverage < min_coverage:
            dropped[col] = f"missing on {1 - coverage:.0%} of events"
        elif constant:
            shown = f"{first:.6g}" if isinstance(first, (int, float, np.number)) else str(first)
            dropped[col] = f"constant ({shown})" if first is not None else "constant"
        else:
            keep.append(col)
    return keep, dropped


def dataset_hash(panel: Mapping[str, pd.DataFrame]) -> str:
    """sha256 over symbols, bar times and OHLCV values: which data a model was trained on."""
    h = hashlib.sha256()
    for sym in sorted(panel):
        frame = panel[sym]
        h.update(sym.encode())
        h.update(frame.index.as_unit("ms").asi8.tobytes())
        h.update(np.ascontiguousarray(frame[["open", "high", "low", "close", "volume"]].to_numpy(float)).tobytes())
    return h.hexdigest()


def build_dataset(strategy: Any, panel: Mapping[str, pd.DataFrame], spec: BarrierSpec,
                  micro: MicroParams | None = None, features: Sequence[str] | None = None,
                  select: bool = True) -> MetaDataset:
    """Events, meta-labels, uniqueness weights and features for every symbol, stacked in time order.

    Without `features`, constant and mostly-missing features are dropped and listed (`dropped_features`) unless
    `select` is off: walk-forward evaluation keeps every candidate and chooses on each window's training rows only.
    """
    if not panel:
        raise ValueError("panel: empty (no symbols)")
    signals = strategy.signals(panel)
    strat_feats = strategy.features(panel)
    parts, frames = [], []
    for sym, bars in panel.items():
        if sym not in signals:
            raise ValueError(f"signals: strategy {strategy.name!r} returned no column for {sym}")
        side = signals[sym].reindex(bars.index).fillna(0).astype(int)
        ev = triple_barrier_events(bars["close"].astype(float), side, spec)
        if ev.empty:
            continue
        ev["weight"] = uniqueness_weights(ev, len(bars), normalise=False).to_numpy()
        ev["symbol"] = sym
        feats = event_feature_frame(strat_feats[sym], micro_features(bars, micro), side)
        parts.append(ev)
        frames.append(feats.loc[ev.index])
    if not parts:
        raise ValueError(f"panel: strategy {strategy.name!r} produced no labelable events (no signals, or too few "
                         f"bars for a {spec.max_holding}-bar holding period)")
    events = pd.concat(parts)
    X = pd.concat(frames)
    order = np.lexsort((events["symbol"].to_numpy(), events.index.as_unit("ns").asi8))
    events, X = events.iloc[order], X.iloc[order]
    dropped: dict[str, str] = {}
    if features is None:
        features, dropped = usable_features(X) if select else (list(X.columns), {})
    X = X.reindex(columns=list(features))
    w = events["weight"].to_numpy()
    return MetaDataset(X=X, y=events["label"].to_numpy(dtype=int), weight=w / w.mean(),
                       t1=pd.Series(events["t1"].array, index=events.index), events=events,
                       features=list(features), data_hash=dataset_hash(panel), spec=spec,
                       dropped_features=dropped)


def latest_features(strategy: Any, panel: Mapping[str, pd.DataFrame], features: Sequence[str],
                    micro: MicroParams | None = None, timeframe: str | None = None) -> pd.DataFrame:
    """The model inputs at each symbol's last bar (index = symbol, columns = `features` in order) for live use.

    Pass the model's training `timeframe` (LoadedModel.timeframe) when the live panel has finer bars: the panel is
    then resampled (complete bars only) so the features mean what they meant in training.
    """
    if timeframe is not None:
        from engine.features.panel import infer_timeframe_ms, resample_panel

        first = next(iter(panel.values()))
        if len(first) >= 2 and infer_timeframe_ms(first.index) < timeframe_ms(timeframe):
            panel = resample_panel(panel, timeframe)
    signals = strategy.signals(panel)
    strat_feats = strategy.features(panel)
    rows = {}
    for sym, bars in panel.items():
        side = signals[sym].reindex(bars.index).fillna(0).astype(int) if sym in signals else \
            pd.Series(0, index=bars.index)
        frame = event_feature_frame(strat_feats[sym], micro_features(bars, micro), side)
        rows[sym] = frame.iloc[-1]
    return pd.DataFrame(rows).T.reindex(columns=list(features)).astype(float)
