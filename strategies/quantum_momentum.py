"""Quantum Momentum: multi-horizon time-series and cross-sectional momentum with volatility targeting and a regime filter.

Thesis. Crypto returns trend at horizons of days to weeks (slow diffusion of information, leverage cycles, flows that
chase performance), and within a basket the assets with the strongest recent risk-adjusted returns tend to keep
outperforming for a while. We measure momentum as a t-statistic (h-bar log return / (sigma * sqrt(h))) at a fast,
middle and slow horizon, so it is comparable across assets and volatility regimes, and blend:
  * time-series momentum: the mean of the clipped t-statistics (is this asset trending?), and
  * cross-sectional momentum: the mean rank of those t-statistics across the basket, in [-1, 1] (is it a leader?).
The blended score enters a position past `entry` and leaves inside `exit` (hysteresis keeps turnover sane).
Regime filter: momentum breaks down in volatility spikes and in choppy markets, so the side is forced flat when
short-term volatility exceeds `max_vol_ratio` times its long-run level, or when the slow-horizon efficiency ratio
(net move / path length) is below `min_efficiency`.
Volatility targeting: `weights()` scales each side by target_vol / realised vol (capped at `max_leverage`), so every
position carries similar risk; a sizer may use it in place of the raw side.

Defaults are in bars of 1h (the research timeframe); on other timeframes the caller scales the horizons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from engine.features.builder import FeatureSpec, build_features
from engine.features.returns import cross_sectional_rank, log_returns
from strategies.base import ParamSpec, Strategy, check_panel, hysteresis_sides, panel_field, panel_index


@dataclass(frozen=True)
class QuantumMomentumConfig:
    """Parameters of Quantum Momentum (horizons in bars)."""

    fast: int = 24
    mid: int = 96
    slow: int = 336
    ts_weight: float = 0.6  # blend: 1.0 = pure time-series momentum, 0.0 = pure cross-sectional
    entry: float = 0.6
    exit: float = 0.15
    vol_window: int = 72
    regime_window: int = 720
    max_vol_ratio: float = 2.0
    min_efficiency: float = 0.05
    target_vol: float = 0.5  # annualised, for weights()
    max_leverage: float = 2.0
    allow_short: bool = True


def efficiency_ratio(close: pd.DataFrame, window: int) -> pd.DataFrame:
    """Kaufman efficiency ratio |close_t - close_{t-w}| / sum |delta close| over the window, in [0, 1]."""
    net = (close - close.shift(window)).abs()
    path = close.diff().abs().rolling(window, min_periods=window).sum()
    return net / path.where(path > 0)


def bars_per_year(index: pd.DatetimeIndex) -> float:
    """Bars in a year for an index's spacing (24/7 markets); 8760 for hourly bars."""
    if len(index) < 2:
        return 8760.0
    step = np.median(np.diff(index.as_unit("ms").asi8[-1000:]))
    return float(365.0 * 86_400_000 / max(step, 1.0))


class QuantumMomentum(Strategy):
    """Multi-horizon time-series + cross-sectional momentum, regime-filtered, volatility-targeted."""

    name = "quantum_momentum"
    display_name = "Quantum Momentum"
    Config = QuantumMomentumConfig
    default_timeframe = "1h"
    warmup_bars = 720

    @classmethod
    def param_space(cls) -> dict[str, ParamSpec]:
        """Search ranges for the walk-forward optimiser."""
        return {
            "fast": ParamSpec(6, 72, "int"),
            "mid": ParamSpec(48, 240, "int"),
            "slow": ParamSpec(168, 720, "int"),
            "ts_weight": ParamSpec(0.0, 1.0, "float"),
            "entry": ParamSpec(0.2, 1.5, "float"),
            "exit": ParamSpec(0.0, 0.5, "float"),
            "vol_window": ParamSpec(24, 240, "int"),
            "regime_window": ParamSpec(240, 2160, "int"),
            "max_vol_ratio": ParamSpec(1.2, 4.0, "float"),
            "min_efficiency": ParamSpec(0.0, 0.3, "float"),
            "target_vol": ParamSpec(0.1, 1.5, "float"),
            "max_leverage": ParamSpec(0.5, 3.0, "float"),
            "allow_short": ParamSpec(kind="choice", choices=(True, False)),
        }

    def validate_config(self, config: Any) -> None:
        """Horizons must be ordered and the exit inside the entry."""
        if not config.fast < config.mid < config.slow:
            raise ValueError(f"quantum_momentum: need fast < mid < slow, got {config.fast}, {config.mid}, "
                             f"{config.slow}")
        if config.exit > config.entry:
            raise ValueError(f"quantum_momentum: exit {config.exit} must not exceed entry {config.entry}")

    def warmup(self) -> int:
        """The slow horizon plus its volatility window, or the regime window, whichever is longer."""
        c = self.config
        return int(max(c.slow + c.vol_window, c.regime_window + c.vol_window))

    # -- computation ---------------------------------------------------------------------------------------------
    def _horizon_tstats(self, close: pd.DataFrame) -> list[pd.DataFrame]:
        c = self.config
        sigma = log_returns(close, 1).rolling(c.vol_window, min_periods=max(2, c.vol_window // 2)).std()
        sigma = sigma.where(sigma > 0)
        return [(log_returns(close, h) / (sigma * np.sqrt(h))).clip(-3.0, 3.0) for h in (c.fast, c.mid, c.slow)]

    def scores(self, panel: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Intermediate frames (bars x symbols): ts, xs, score, regime_ok, sigma - for features and diagnostics."""
        check_panel(panel)
        c = self.config
        index = panel_index(panel)
        close = panel_field(panel, "close", index)
        tstats = self._horizon_tstats(close)
        ts_score = sum(tstats) / len(tstats)
        if close.shape[1] > 1:
            xs_score = sum(cross_sectional_rank(t) for t in tstats) / len(tstats)
        else:
            xs_score = ts_score * 0.0
        score = c.ts_weight * ts_score + (1.0 - c.ts_weight) * xs_score.fillna(0.0).where(ts_score.notna())
        r1 = log_returns(close, 1)
        sigma = r1.rolling(c.vol_window, min_periods=max(2, c.vol_window // 2)).std()
        long_sigma = r1.rolling(c.regime_window, min_periods=c.regime_window // 2).std()
        vol_ratio = sigma / long_sigma.where(long_sigma > 0)
        efficiency = efficiency_ratio(close, c.slow)
        regime_ok = (vol_ratio <= c.max_vol_ratio) & (efficiency >= c.min_efficiency)
        return {"ts": ts_score, "xs": xs_score, "score": score, "regime_ok": regime_ok, "sigma": sigma,
                "vol_ratio": vol_ratio, "efficiency": efficiency}

    def signals(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """Latched side of the blended momentum score, flat when the regime filter is off."""
        parts = self.scores(panel)
        sides = hysteresis_sides(parts["score"], self.config.entry, self.config.exit)
        sides = sides.where(parts["regime_ok"].to_numpy(), 0)
        if not self.config.allow_short:
            sides = sides.clip(lower=0)
        return sides.astype("int8")

    def weights(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """Side x min(max_leverage, target_vol / annualised realised vol): volatility-targeted exposure."""
        parts = self.scores(panel)
        sides = hysteresis_sides(parts["score"], self.config.entry, self.config.exit)
        sides = sides.where(parts["regime_ok"].to_numpy(), 0)
        if not self.config.allow_short:
            sides = sides.clip(lower=0)
        ann = parts["sigma"] * np.sqrt(bars_per_year(parts["sigma"].index))
        lev = (self.config.target_vol / ann.where(ann > 0)).clip(upper=self.config.max_leverage).fillna(0.0)
        return sides.astype("float64") * lev

    def features(self, panel: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Standard features per symbol plus this strategy's ts/xs/score/regime columns."""
        c = self.config
        spec = FeatureSpec(momentum_horizons=(c.fast, c.mid, c.slow), vol_window=max(2, c.vol_window // 3))
        parts = self.scores(panel)
        out: dict[str, pd.DataFrame] = {}
        for symbol, frame in panel.items():
            feats = build_features(frame, spec)
            for key in ("ts", "xs", "score", "vol_ratio", "efficiency"):
                feats[f"qm_{key}"] = parts[key][symbol].reindex(frame.index)
            feats["qm_regime_ok"] = parts["regime_ok"][symbol].reindex(frame.index).astype("float64")
            out[symbol] = feats
        return out
