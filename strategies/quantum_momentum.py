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
Volatility targeting: `weights()` scales each side by target_vol / realised vol at entry (capped at 1 and at
`max_leverage`), so every position carries similar risk; backtest, paper and live all trade these weights.

Defaults are in bars of 1h (the research timeframe); on other timeframes the caller scales the horizons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from engine.features.builder import FeatureSpec, build_features
from engine.strategy import numeric as _n
from engine.strategy.base import ParamSpec, Strategy, check_panel, panel_field, panel_index


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


def efficiency_ratio(close: np.ndarray, window: int) -> np.ndarray:
    """Kaufman efficiency ratio |close_t - close_{t-w}| / sum |delta close| over the window, in [0, 1]."""
    net = np.abs(close - _n.shift(close, window))
    path = _n.rolling(np.abs(close - _n.shift(close, 1)), window, window, "sum")
    with np.errstate(invalid="ignore", divide="ignore"):
        return net / _n.positive_or_nan(path)


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
        """Search ranges for the walk-forward optimiser (7 dimensions: few enough to keep the trial count honest)."""
        return {
            "fast": ParamSpec(6, 72, "int", bars=True),
            "mid": ParamSpec(48, 240, "int", bars=True),
            "slow": ParamSpec(168, 720, "int", bars=True),
            "ts_weight": ParamSpec(0.0, 1.0, "float"),
            "entry": ParamSpec(0.2, 1.5, "float"),
            "exit": ParamSpec(0.0, 0.5, "float"),
            "max_vol_ratio": ParamSpec(1.2, 4.0, "float"),
        }

    @classmethod
    def config_specs(cls) -> dict[str, ParamSpec]:
        """Validated but not searched: estimation windows, risk scaling and the long/short switch."""
        return {
            "vol_window": ParamSpec(24, 240, "int", bars=True),
            "regime_window": ParamSpec(240, 2160, "int", bars=True),
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
    def _arrays(self, panel: Mapping[str, pd.DataFrame]) -> tuple[pd.DatetimeIndex, list[str], dict[str, np.ndarray]]:
        """Scores as bars x symbols arrays: ts, xs, score, regime_ok, sigma, vol_ratio, efficiency, sides."""
        symbols = check_panel(panel)
        c = self.config
        index = panel_index(panel)
        close = panel_field(panel, "close", index).to_numpy(dtype="float64")
        with np.errstate(invalid="ignore", divide="ignore"):
            logc = np.log(close)
            r1 = logc - _n.shift(logc, 1)
            sigma = _n.rolling(r1, c.vol_window, max(2, c.vol_window // 2), "std")
            sig = _n.positive_or_nan(sigma)
            tstats = [np.clip((logc - _n.shift(logc, h)) / (sig * np.sqrt(h)), -3.0, 3.0)
                      for h in (c.fast, c.mid, c.slow)]
            ts_score = sum(tstats) / len(tstats)
            if close.shape[1] > 1:
                xs_score = sum(_n.row_rank(t) for t in tstats) / len(tstats)
            else:
                xs_score = np.zeros_like(ts_score)
            score = c.ts_weight * ts_score + (1.0 - c.ts_weight) * np.nan_to_num(xs_score, nan=0.0)
            long_sigma = _n.rolling(r1, c.regime_window, c.regime_window // 2, "std")
            vol_ratio = sigma / _n.positive_or_nan(long_sigma)
            efficiency = efficiency_ratio(close, c.slow)
            regime_ok = (vol_ratio <= c.max_vol_ratio) & (efficiency >= c.min_efficiency)
        sides = _n.latch(score, c.entry, c.exit)
        sides[~(regime_ok & _n.warmup_mask(close, self.warmup_bars))] = 0
        if not c.allow_short:
            sides = np.clip(sides, 0, None)
        return index, symbols, {"ts": ts_score, "xs": xs_score, "score": score, "regime_ok": regime_ok,
                                "sigma": sigma, "vol_ratio": vol_ratio, "efficiency": efficiency, "sides": sides}

    def scores(self, panel: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Intermediate frames (bars x symbols): ts, xs, score, regime_ok, sigma, vol_ratio, efficiency, sides."""
        index, symbols, arrays = self._arrays(panel)
        return {k: pd.DataFrame(v, index=index, columns=symbols) for k, v in arrays.items()}

    def signals(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """Latched side of the blended momentum score, flat during warm-up and when the regime filter is off."""
        index, symbols, arrays = self._arrays(panel)
        return pd.DataFrame(arrays["sides"], index=index, columns=symbols)

    def weights(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """Side x min(1, max_leverage, target_vol / annualised realised vol), frozen at each entry: vol-targeted.

        Weights live in [-1, 1] (a fraction of the full position the sizer allows), so the cap is 1 whatever
        max_leverage says; the size is fixed at the entry bar and held for the run (no rebalancing on drift), the
        same in the backtest and in paper/live."""
        index, symbols, arrays = self._arrays(panel)
        ann = arrays["sigma"] * np.sqrt(bars_per_year(index))
        with np.errstate(invalid="ignore", divide="ignore"):
            lev = np.nan_to_num(np.minimum(self.config.target_vol / _n.positive_or_nan(ann),
                                           min(self.config.max_leverage, 1.0)))
        return pd.DataFrame(_n.hold_at_entry(lev, arrays["sides"]), index=index, columns=symbols)

    def features(self, panel: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Standard features per symbol plus this strategy's ts/xs/score/regime columns."""
        c = self.config
        spec = FeatureSpec(momentum_horizons=(c.fast, c.mid, c.slow), vol_window=max(2, c.vol_window // 3))
        parts = self.scores(panel)
        out: dict[str, pd.DataFrame] = {}
        for symbol, frame in panel.items():
            feats = build_features(frame, spec)
            for key in ("ts", "xs", "score", "vol_ratio", "efficiency", "sides"):
                feats[f"qm_{key}"] = parts[key][symbol].reindex(frame.index).astype("float64")
            feats["qm_regime_ok"] = parts["regime_ok"][symbol].reindex(frame.index).astype("float64")
            out[symbol] = feats
        return out
