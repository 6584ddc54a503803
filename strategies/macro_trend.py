"""Macro Trend: trend following on 4h/1d bars, gated by the macro risk regime, sentiment and funding.

Thesis. Large crypto moves unfold over days to weeks and are driven by the global liquidity / risk appetite cycle, so
a slow trend follower captures most of them - but trend signals that fight the macro backdrop, or that arrive when
positioning is already crowded, fail more often. The trend is an EMA spread measured in ATRs: long when the fast EMA
is more than `entry` ATRs above the slow one, short when below, flat again once it comes back inside `exit` ATRs.
Gates (each reads a trailing z-score of a point-in-time feed column; an absent column reads as neutral, so the gate is
open):
  * macro: longs need risk_index z >= -risk_threshold (not risk-off), shorts need z <= +risk_threshold;
  * sentiment: no new longs in euphoria (fear_greed z > sentiment_max), no shorts in capitulation (z < -sentiment_max);
  * funding: no longs when funding z > funding_z_max (crowded longs pay carry and unwind), no shorts when
    z < -funding_z_max;
  * on-chain: no longs when exchange netflow z > netflow_z_max (coins moving to exchanges to be sold).
A closed gate forces the side flat for that bar; when it reopens and the trend still holds, the side returns.

Defaults are in bars of 4h (the research timeframe); on 1m bars the caller scales the windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from engine.features.alt_data import regime_score
from engine.features.builder import FeatureSpec, build_features
from engine.features.carry import funding_features
from engine.strategy import numeric as _n
from engine.strategy.base import ParamSpec, Strategy, check_panel, panel_field, panel_index

_GATE_COLUMNS = ("risk_index", "fear_greed", "netflow", "exchange_netflow", "funding_rate")


@dataclass(frozen=True)
class MacroTrendConfig:
    """Parameters of Macro Trend (windows in bars)."""

    fast: int = 12
    slow: int = 48
    atr_window: int = 30
    entry: float = 0.5  # EMA spread in ATRs to enter
    exit: float = 0.1
    risk_threshold: float = 0.5
    sentiment_max: float = 2.0
    funding_z_max: float = 2.0
    netflow_z_max: float = 2.5
    feed_window: int = 30  # days in the feed z-scores (feeds sampled once a day)
    funding_window: int = 60  # 8h funding periods in the funding z-score
    allow_short: bool = True


def average_true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    """Wilder-style ATR as an EWM of the true range (max of H-L, |H-prevC|, |L-prevC|); trailing only."""
    prev = _n.shift(close, 1)
    with np.errstate(invalid="ignore"):
        tr = np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev)))
    tr[np.isnan(close)] = np.nan
    return _n.ewm_mean(tr, alpha=1.0 / window, min_periods=window)


class MacroTrend(Strategy):
    """EMA-spread trend following, gated by macro risk, sentiment, funding and on-chain flows."""

    name = "macro_trend"
    display_name = "Macro Trend"
    Config = MacroTrendConfig
    default_timeframe = "4h"
    warmup_bars = 96

    @classmethod
    def param_space(cls) -> dict[str, ParamSpec]:
        """Search ranges for the walk-forward optimiser (6 dimensions: trend speed, thresholds, the two main gates)."""
        return {
            "fast": ParamSpec(3, 48, "int", bars=True),
            "slow": ParamSpec(20, 240, "int", bars=True),
            "entry": ParamSpec(0.1, 2.0, "float"),
            "exit": ParamSpec(0.0, 0.8, "float"),
            "risk_threshold": ParamSpec(0.0, 2.0, "float"),
            "funding_z_max": ParamSpec(0.5, 4.0, "float"),
        }

    @classmethod
    def config_specs(cls) -> dict[str, ParamSpec]:
        """Validated but not searched: the ATR and feed windows, the secondary gates and the long/short switch."""
        return {
            "atr_window": ParamSpec(10, 120, "int", bars=True),
            "sentiment_max": ParamSpec(0.5, 4.0, "float"),
            "netflow_z_max": ParamSpec(0.5, 5.0, "float"),
            "feed_window": ParamSpec(5, 120, "int"),
            "funding_window": ParamSpec(5, 240, "int"),
            "allow_short": ParamSpec(kind="choice", choices=(True, False)),
        }

    def validate_config(self, config: Any) -> None:
        """The fast EMA must be faster than the slow one and the exit inside the entry."""
        if not config.fast < config.slow:
            raise ValueError(f"macro_trend: need fast < slow, got {config.fast}, {config.slow}")
        if config.exit > config.entry:
            raise ValueError(f"macro_trend: exit {config.exit} must not exceed entry {config.entry}")

    def warmup(self) -> int:
        """Two slow spans (EMA settles) or the ATR window, whichever is longer."""
        return int(max(2 * self.config.slow, self.config.atr_window))

    # -- computation ---------------------------------------------------------------------------------------------
    def _gates(self, frame: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
        c = self.config
        risk = regime_score(frame, "risk_index", c.feed_window)
        sentiment = regime_score(frame, "fear_greed", c.feed_window)
        flow_col = "exchange_netflow" if "exchange_netflow" in frame.columns else "netflow"
        netflow = regime_score(frame, flow_col, c.feed_window)
        fz = funding_features(frame, c.funding_window)[f"funding_z_{c.funding_window}"].fillna(0.0)
        long_ok = (risk >= -c.risk_threshold) & (sentiment <= c.sentiment_max) & (fz <= c.funding_z_max) \
            & (netflow <= c.netflow_z_max)
        short_ok = (risk <= c.risk_threshold) & (sentiment >= -c.sentiment_max) & (fz >= -c.funding_z_max)
        detail = pd.DataFrame({"mt_risk_z": risk, "mt_sentiment_z": sentiment, "mt_funding_z": fz,
                               "mt_netflow_z": netflow}, index=frame.index)
        return long_ok, short_ok, detail

    def trend_score(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """EMA(fast) - EMA(slow) in ATRs, bars x symbols (NaN during warm-up)."""
        index, symbols, score, _ = self._score(panel)
        return pd.DataFrame(score, index=index, columns=symbols)

    def _score(self, panel: Mapping[str, pd.DataFrame]) -> tuple[pd.DatetimeIndex, list[str], np.ndarray, np.ndarray]:
        symbols = check_panel(panel)
        c = self.config
        index = panel_index(panel)
        close = panel_field(panel, "close", index).to_numpy(dtype="float64")
        high = panel_field(panel, "high", index).to_numpy(dtype="float64")
        low = panel_field(panel, "low", index).to_numpy(dtype="float64")
        fast = _n.ewm_mean(close, span=c.fast, min_periods=c.fast)
        slow = _n.ewm_mean(close, span=c.slow, min_periods=c.slow)
        atr = average_true_range(high, low, close, c.atr_window)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = (fast - slow) / _n.positive_or_nan(atr)
        return index, symbols, score, close

    def signals(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """Latched trend side, flat during warm-up and on bars where its direction's gate is closed."""
        index, symbols, score, close = self._score(panel)
        values = _n.latch(score, self.config.entry, self.config.exit)
        values[~_n.warmup_mask(close, self.warmup_bars)] = 0
        for j, symbol in enumerate(symbols):
            frame = panel[symbol]
            if not any(col in frame.columns for col in _GATE_COLUMNS):
                continue  # no gate inputs: every gate reads neutral and stays open
            long_ok, short_ok, _ = self._gates(frame)
            aligned = frame.index.equals(index)
            lo = long_ok.to_numpy() if aligned else long_ok.reindex(index, fill_value=False).to_numpy()
            so = short_ok.to_numpy() if aligned else short_ok.reindex(index, fill_value=False).to_numpy()
            col = values[:, j]
            col[(col > 0) & ~lo] = 0
            col[(col < 0) & ~so] = 0
        if not self.config.allow_short:
            values = np.clip(values, 0, None)
        out = pd.DataFrame(values.astype("int8"), index=index, columns=symbols)
        out.index.name = "ts"
        return out

    def features(self, panel: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Standard features per symbol plus the trend score and the gate inputs."""
        c = self.config
        spec = FeatureSpec(momentum_horizons=(c.fast, c.slow, 2 * c.slow), return_horizons=(1, c.fast, c.slow),
                           zscore_windows=(c.fast, c.slow), funding_window=c.funding_window,
                           feed_window=c.feed_window)
        score = self.trend_score(panel)
        out: dict[str, pd.DataFrame] = {}
        for symbol, frame in panel.items():
            feats = build_features(frame, spec)
            feats["mt_trend_atr"] = score[symbol].reindex(frame.index)
            long_ok, short_ok, detail = self._gates(frame)
            feats = pd.concat([feats, detail], axis=1)
            feats["mt_long_ok"] = long_ok.astype("float64")
            feats["mt_short_ok"] = short_ok.astype("float64")
            out[symbol] = feats
        return out
