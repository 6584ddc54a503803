"""The Strategy contract: a frozen config dataclass plus a class that declares its parameters and emits primary sides.

Panel (the input of every strategy)
    ``dict[str, pandas.DataFrame]`` keyed by symbol (e.g. ``"BTC/USDT"``). Each frame is indexed by a UTC
    ``DatetimeIndex`` named ``ts`` holding the bar *open* time, with float columns ``open, high, low, close, volume``
    and optionally ``funding_rate``, ``basis`` and feed columns such as ``risk_index``, ``fear_greed``, ``netflow``
    (already aligned as of their publication time). ``engine.features.panel.load_panel`` builds it from state.db and
    ``engine.features.panel.resample_panel`` turns 1m bars into 4h etc.

Strategy (subclass this)
    Class attributes: ``name`` (registry key, snake_case), ``display_name`` ("Quantum Momentum"), ``Config`` (a frozen
    dataclass type whose fields are the parameters), ``default_timeframe`` (e.g. "1h") and ``warmup_bars`` (bars before
    the first meaningful signal).
    ``__init__(config=None, **params)``: ``params`` override fields of ``config`` (or of ``Config()``); an unknown
    parameter, or a value of the wrong kind or sign for its ``ParamSpec``, raises ``ValueError`` naming it (values
    outside the search range are allowed: the range is for the optimiser). ``rescaled(timeframe)`` returns a copy
    with bar-count parameters scaled from ``default_timeframe`` to ``timeframe``.
    ``param_space() -> dict[str, ParamSpec]``: the search ranges the walk-forward optimiser samples from (kept small:
    every extra dimension inflates the trial count the deflated Sharpe ratio must pay for). ``config_specs()`` holds
    specs of the remaining Config fields, validated and rescaled but not searched.
    ``features(panel) -> dict[str, DataFrame]``: point-in-time features per symbol (also the ML meta-model's inputs).
    ``signals(panel) -> DataFrame``: index = bar ts (union of the panel's indexes), columns = symbols, int8 values in
    {-1, 0, +1}. The value at bar t uses only data up to and including bar t's close, so an order from it fills at
    bar t+1. It is vectorised: the optimiser calls it hundreds of times and the lookahead check on truncated histories.
    ``weights(panel) -> DataFrame``: optional signed target exposure per unit of capital (default: the signals as
    floats); Quantum Momentum overrides it with its volatility-targeted leverage so a sizer can use it.

A user adds a strategy by dropping a module defining a subclass into ``strategies/`` (see ``engine.strategy.registry``);
``engine.strategy.wrapper.SafeStrategy`` runs it so its exceptions become ``strategy.error`` alerts, not crashes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class ParamSpec:
    """A parameter's search range: ints and floats in [low, high], or one of ``choices``.

    The range is where the optimiser searches, not a hard limit: a constructor accepts any value of the right kind
    (and sign, when low >= 0), so a caller may rescale bar counts for another timeframe. ``bars=True`` marks a
    parameter counted in bars, which ``Strategy.rescaled`` multiplies when moving to another timeframe. ``log=True``
    (ints and floats with low > 0) makes every search draw the value log-uniformly: a lookback of 6 vs 12 bars
    differs as much as 120 vs 240, so a uniform draw over [6, 720] would spend nearly all trials on long horizons.
    """

    low: float = 0.0
    high: float = 0.0
    kind: str = "float"  # int | float | choice
    choices: tuple[Any, ...] = ()
    bars: bool = False
    log: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("int", "float", "choice"):
            raise ValueError(f"ParamSpec.kind: must be int, float or choice, got {self.kind!r}")
        if self.kind == "choice":
            if not self.choices:
                raise ValueError("ParamSpec.choices: a choice parameter needs at least one choice")
        elif self.low > self.high:
            raise ValueError(f"ParamSpec.low: {self.low} is above high {self.high}")
        if self.log and (self.kind == "choice" or self.low <= 0):
            raise ValueError(f"ParamSpec.log: needs an int or float range with low > 0, got {self.kind} "
                             f"[{self.low}, {self.high}]")

    def contains(self, value: Any) -> bool:
        """Whether ``value`` lies inside this search range."""
        if self.kind == "choice":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return False
        if self.kind == "int" and float(value) != int(value):
            return False
        return self.low <= float(value) <= self.high

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is a legal value of this parameter (right kind and sign), inside the range or not."""
        if self.kind == "choice":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return False
        if not np.isfinite(float(value)):
            return False
        if self.kind == "int" and float(value) != int(value):
            return False
        return not (self.low >= 0 and float(value) < 0) and not (self.bars and float(value) < 1)

    def sample(self, rng: np.random.Generator) -> Any:
        """Draw one value from the range: uniformly, or log-uniformly when ``log`` (ints as optuna draws them:
        log-uniform over [low - 0.5, high + 0.5], rounded)."""
        if self.kind == "choice":
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.kind == "int":
            if self.log:
                lo, hi = math.log(self.low - 0.5 if self.low > 0.5 else self.low), math.log(self.high + 0.5)
                return int(min(max(round(math.exp(rng.uniform(lo, hi))), self.low), self.high))
            return int(rng.integers(int(self.low), int(self.high) + 1))
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def unit(self, value: Any) -> float:
        """The value's position in the range as the search sees it, 0..1 (log-scaled when ``log``; a choice's index
        over the last index): the distance a plateau score measures between configurations."""
        if self.kind == "choice":
            return self.choices.index(value) / max(len(self.choices) - 1, 1) if value in self.choices else 0.0
        lo, hi, v = float(self.low), float(self.high), float(value)
        if self.log:
            lo, hi, v = math.log(lo), math.log(hi), math.log(max(v, 1e-300))
        return (v - lo) / (hi - lo) if hi > lo else 0.0


class Strategy:
    """Base class: declares parameters with search ranges and emits primary sides from point-in-time features."""

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    Config: ClassVar[type] = type(None)
    default_timeframe: ClassVar[str] = "1h"
    warmup_bars: ClassVar[int] = 0

    def __init__(self, config: Any = None, **params: Any) -> None:
        cls = type(self)
        if not dataclasses.is_dataclass(cls.Config):
            raise TypeError(f"{cls.__name__}.Config: must be a frozen dataclass type")
        if config is None:
            config = cls.Config()
        elif not isinstance(config, cls.Config):
            raise TypeError(f"config: expected {cls.Config.__name__}, got {type(config).__name__}")
        known = {f.name for f in dataclasses.fields(config)}
        for key in params:
            if key not in known:
                raise ValueError(f"{cls.name}: unknown parameter {key!r} (known: {', '.join(sorted(known))})")
        config = dataclasses.replace(config, **params) if params else config
        space = self.all_specs()
        for key, spec in space.items():
            value = getattr(config, key)
            if key in known and not spec.accepts(value):
                raise ValueError(f"{cls.name}: parameter {key}={value!r} is not a valid {spec.kind} "
                                 f"(search range {spec.choices if spec.kind == 'choice' else (spec.low, spec.high)})")
        self.config = config
        self.validate_config(config)
        self.warmup_bars = int(self.warmup())

    # -- override points --------------------------------------------------------------------------------------
    @classmethod
    def param_space(cls) -> dict[str, ParamSpec]:
        """Search ranges of the tunable parameters (a subset of Config's fields)."""
        return {}

    @classmethod
    def config_specs(cls) -> dict[str, ParamSpec]:
        """Specs of Config fields that are validated (and rescaled) but not searched by the optimiser."""
        return {}

    @classmethod
    def all_specs(cls) -> dict[str, ParamSpec]:
        """param_space() plus config_specs(): every field the constructor validates."""
        return {**cls.config_specs(), **cls.param_space()}

    def validate_config(self, config: Any) -> None:
        """Cross-field checks (e.g. fast < slow); raise ValueError naming the parameter."""
        return None

    def warmup(self) -> int:
        """Bars needed before the first meaningful signal with this instance's parameters (class default)."""
        return type(self).warmup_bars

    def features(self, panel: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Point-in-time features per symbol; the ML meta-model uses them as inputs."""
        raise NotImplementedError(f"{type(self).__name__}.features")

    def signals(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """Primary sides per bar and symbol in {-1, 0, +1} (int8), using data up to each bar's close only."""
        raise NotImplementedError(f"{type(self).__name__}.signals")

    def weights(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """Signed target weights in [-1, 1] (fractions of a full position); by default the primary side itself."""
        return self.signals(panel).astype("float64")

    def stops(self) -> Any:
        """Protective exits (an ``engine.strategy.stops.Stops``) or None; read once per backtest / instance."""
        return None

    def rescaled(self, timeframe: str) -> "Strategy":
        """A copy whose bar-count parameters cover the same wall-clock spans on `timeframe` bars.

        E.g. Quantum Momentum's 24-bar fast horizon on 1h bars becomes 1440 on 1m bars. Without rescaling a strategy
        still runs on any timeframe; its horizons are then simply shorter in time.
        """
        from engine.clock import timeframe_ms

        factor = timeframe_ms(self.default_timeframe) / timeframe_ms(timeframe)
        changes = {key: max(1, int(round(getattr(self.config, key) * factor)))
                   for key, spec in self.all_specs().items() if spec.bars}
        return type(self)(self.config, **changes)

    # -- helpers --------------------------------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        """The effective parameter values as a plain dict (for trial records and instance rows)."""
        return dataclasses.asdict(self.config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def method_location(obj: Any, method: str) -> str:
    """`file:line` where `obj`'s class defines `method` (what a contract error points the author to)."""
    import inspect

    fn = getattr(type(obj), method, None)
    try:
        return f"{inspect.getsourcefile(fn)}:{inspect.getsourcelines(fn)[1]}"
    except (TypeError, OSError):
        return f"{type(obj).__module__}.{type(obj).__name__}.{method}"


def check_panel(panel: Mapping[str, pd.DataFrame], *, min_rows: int = 1, utc: bool = False) -> list[str]:
    """Validate a panel's shape and return its symbols in order; raises ValueError naming what is wrong.

    utc=True also requires tz-aware bar times (the backtester's clock is UTC)."""
    if not isinstance(panel, Mapping) or not panel:
        raise ValueError("panel: expected a non-empty dict of symbol -> DataFrame")
    for symbol, frame in panel.items():
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"panel[{symbol!r}]: expected a DataFrame, got {type(frame).__name__}")
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"panel[{symbol!r}]: missing columns {missing}")
        if not isinstance(frame.index, pd.DatetimeIndex):
            raise ValueError(f"panel[{symbol!r}]: index must be a DatetimeIndex of bar open times")
        if utc and frame.index.tz is None:
            raise ValueError(f"panel[{symbol!r}]: index must be a tz-aware (UTC) DatetimeIndex")
        if not frame.index.is_monotonic_increasing:
            raise ValueError(f"panel[{symbol!r}]: index must be sorted ascending")
        if frame.index.has_duplicates:
            raise ValueError(f"panel[{symbol!r}]: index has duplicate bar times")
        if len(frame) < min_rows:
            raise ValueError(f"panel[{symbol!r}]: needs at least {min_rows} rows, has {len(frame)}")
    return list(panel)


def panel_index(panel: Mapping[str, pd.DataFrame]) -> pd.DatetimeIndex:
    """The union of every symbol's bar index: the row index of a signals frame."""
    frames = list(panel.values())
    index = frames[0].index
    for frame in frames[1:]:
        if not frame.index.equals(index):
            index = index.union(frame.index)
    # a view keeps the index's identity, so later `frame.index.equals(index)` checks are O(1), not a comparison of
    # every bar (~0.3 ms per million bars, several per backtest); naming the view leaves the frame's index as it was
    index = index.view() if isinstance(index, pd.DatetimeIndex) else pd.DatetimeIndex(index)
    index.name = "ts"
    return index


def panel_field(panel: Mapping[str, pd.DataFrame], column: str, index: pd.DatetimeIndex | None = None) -> pd.DataFrame:
    """One column of every symbol side by side (bars x symbols), NaN where a symbol has no bar or no such column."""
    index = panel_index(panel) if index is None else index
    data = {}
    for symbol, frame in panel.items():
        if column in frame.columns:
            series = frame[column]
            data[symbol] = series if series.index.equals(index) else series.reindex(index)
        else:
            data[symbol] = pd.Series(np.nan, index=index)
    # one column is taken without a copy (copy-on-write keeps the panel safe); several are stacked into one block
    out = pd.DataFrame(data, index=index, copy=len(data) > 1)
    out.columns = list(panel)
    return out


def to_sides(frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce a float side frame (NaN = flat) into the int8 {-1, 0, +1} signal contract."""
    values = np.sign(np.nan_to_num(frame.to_numpy(dtype="float64"), nan=0.0)).astype("int8")
    out = pd.DataFrame(values, index=frame.index, columns=frame.columns)
    out.index.name = "ts"
    return out
