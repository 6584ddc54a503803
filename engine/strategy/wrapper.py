"""SafeStrategy: runs (user) strategy code so its exceptions become `strategy.error` alerts and a flat signal.

Modelled on freqtrade's strategy_wrapper: the engine never crashes because a strategy raised or returned garbage.
Alerts carry the exception, the last traceback frame (file:line in function) and the instance id. Repeats of the same
error (same type and frame) are rate-limited to one alert per `alert_interval_s` and counted in the next one, so a
strategy that fails on every 1m bar does not flood the alert table.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any, Mapping

import numpy as np
import pandas as pd

from engine.strategy.base import Strategy, method_location, panel_index
from engine.strategy.stops import Stops

log = logging.getLogger("quantdesk.strategy")


def flat_signals(panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """An all-zero int8 signal frame shaped like the panel (bars x symbols); empty when the panel is unusable."""
    try:
        index = panel_index(panel)
    except Exception:  # noqa: BLE001 - the panel itself may be what broke the strategy
        index = pd.DatetimeIndex([], tz="UTC", name="ts")
    columns = list(panel) if isinstance(panel, Mapping) else []
    out = pd.DataFrame(np.zeros((len(index), len(columns)), dtype="int8"), index=index, columns=columns)
    out.index.name = "ts"
    return out


def _check_frame(frame: Any, panel: Mapping[str, pd.DataFrame], what: str) -> None:
    """A strategy output must be a DataFrame with the panel's symbols as columns and its clock as index."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what}: expected a DataFrame, got {type(frame).__name__}")
    expected = list(panel)
    if list(frame.columns) != expected:
        raise ValueError(f"{what}: columns {list(frame.columns)} differ from the panel's symbols {expected}")
    index = panel_index(panel)
    if not frame.index.equals(index):
        raise ValueError(f"{what}: index has {len(frame.index)} bars, the panel has {len(index)}")


def check_signals(signals: Any, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Validate a strategy's output against the contract; returns it as int8 or raises ValueError saying why."""
    _check_frame(signals, panel, "signals")
    values = signals.to_numpy()
    if values.size and not np.isin(values, (-1, 0, 1)).all():
        bad = values[~np.isin(values, (-1, 0, 1))]
        raise ValueError(f"signals: values must be in {{-1, 0, 1}}, found {bad[:3].tolist()}")
    return signals.astype("int8")


def check_weights(weights: Any, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Validate a strategy's weights (a frame shaped like the panel, finite, in [-1, 1]); float64 or ValueError."""
    _check_frame(weights, panel, "weights")
    values = weights.to_numpy(dtype="float64", na_value=np.nan)
    if np.isnan(values).any():
        r, c = np.argwhere(np.isnan(values))[0]
        raise ValueError(f"weights: NaN at {weights.index[r]} / {weights.columns[c]} (use 0 for flat)")
    bad = ~(np.abs(values) <= 1.0)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"weights: {float(values[r, c])!r} at {weights.index[r]} / {weights.columns[c]} "
                         "is outside [-1, 1]")
    return pd.DataFrame(values, index=weights.index, columns=weights.columns)


def _last_frame(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "<no traceback>"
    last = frames[-1]
    return f"{last.filename}:{last.lineno} in {last.name}"


class SafeStrategy:
    """Same interface as the wrapped Strategy; errors become alerts (rule `strategy.error`) and flat signals."""

    def __init__(self, strategy: Strategy, store: Any = None, instance_id: str | None = None,
                 alert_interval_s: float = 300.0, severity: str = "warning") -> None:
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy: expected a Strategy instance, got {type(strategy).__name__}")
        self.strategy = strategy
        self.store = store
        self.instance_id = instance_id or strategy.name
        self.alert_interval_s = float(alert_interval_s)
        self.severity = severity
        self.error_count = 0
        self.last_error: str | None = None
        self._last_alert: dict[tuple[str, str], tuple[float, int]] = {}

    # -- the Strategy interface ----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The wrapped strategy's registry name."""
        return self.strategy.name

    @property
    def config(self) -> Any:
        """The wrapped strategy's frozen config."""
        return self.strategy.config

    @property
    def default_timeframe(self) -> str:
        """The wrapped strategy's research timeframe."""
        return self.strategy.default_timeframe

    @property
    def warmup_bars(self) -> int:
        """The wrapped strategy's warm-up length in bars."""
        return self.strategy.warmup_bars

    @property
    def params(self) -> dict[str, Any]:
        """The wrapped strategy's effective parameters."""
        return self.strategy.params

    def param_space(self) -> dict[str, Any]:
        """The wrapped strategy's search ranges."""
        return self.strategy.param_space()

    def signals(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """The strategy's signals, or a flat frame plus an alert when it raises or breaks the output contract."""
        try:
            raw = self.strategy.signals(panel)
        except Exception as exc:  # noqa: BLE001 - this is the point of the wrapper
            self._report(exc, "signals")
            return flat_signals(panel)
        try:
            return check_signals(raw, panel)
        except ValueError as exc:  # bad output: point at the strategy's method, not at this wrapper
            self._report(exc, "signals", where=method_location(self.strategy, "signals"))
            return flat_signals(panel)

    def weights(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """The strategy's target weights in [-1, 1], or zeros plus an alert when it raises or breaks the contract
        (NaN, infinite, wrong shape, outside [-1, 1]); the alert names the strategy's file and line."""
        own = type(self.strategy).weights is not Strategy.weights
        try:
            if not own:  # default: the validated sides themselves
                raw = self.strategy.signals(panel)
            else:
                raw = self.strategy.weights(panel)
        except Exception as exc:  # noqa: BLE001
            self._report(exc, "weights" if own else "signals")
            return flat_signals(panel).astype("float64")
        try:
            return check_signals(raw, panel).astype("float64") if not own else check_weights(raw, panel)
        except ValueError as exc:
            self._report(exc, "weights" if own else "signals",
                         where=method_location(self.strategy, "weights" if own else "signals"))
            return flat_signals(panel).astype("float64")

    def stops(self) -> Stops | None:
        """The strategy's protective exits, or None plus an alert when stops() raises or returns a wrong type."""
        try:
            spec = self.strategy.stops()
            if spec is not None and not isinstance(spec, Stops):
                raise ValueError(f"stops(): expected an engine.strategy.stops.Stops or None, got "
                                 f"{type(spec).__name__}")
            return spec if spec is not None and spec.active else None
        except Exception as exc:  # noqa: BLE001
            self._report(exc, "stops", where=method_location(self.strategy, "stops"))
            return None

    def features(self, panel: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """The strategy's features, or an empty frame per symbol plus an alert when it raises."""
        try:
            out = self.strategy.features(panel)
            if not isinstance(out, Mapping):
                raise ValueError(f"features: expected a dict of DataFrames, got {type(out).__name__}")
            return dict(out)
        except Exception as exc:  # noqa: BLE001
            self._report(exc, "features")
            return {symbol: pd.DataFrame(index=frame.index) for symbol, frame in panel.items()}

    # -- reporting -----------------------------------------------------------------------------------------------
    def _report(self, exc: BaseException, call: str, where: str | None = None) -> None:
        self.error_count += 1
        where = where or _last_frame(exc)
        message = f"{self.instance_id}: {call}() raised {type(exc).__name__}: {exc}"
        self.last_error = message
        key = (type(exc).__name__, where)
        now = time.monotonic()
        last, suppressed = self._last_alert.get(key, (None, 0))
        if last is not None and now - last < self.alert_interval_s:
            self._last_alert[key] = (last, suppressed + 1)
            log.debug("suppressed repeat strategy error: %s", message)
            return
        self._last_alert[key] = (now, 0)
        values = {"strategy": self.strategy.name, "instance_id": self.instance_id, "call": call,
                  "error_type": type(exc).__name__, "error": str(exc), "frame": where,
                  "suppressed_repeats": suppressed, "error_count": self.error_count,
                  "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-2000:]}
        if self.store is None:
            log.warning("strategy.error %s at %s", message, where)
            return
        from engine.store.ops import raise_alert

        try:
            raise_alert(self.store, self.severity, "strategy.error", f"{message} at {where}", values,
                        source=f"strategy:{self.instance_id}")
        except Exception:  # noqa: BLE001 - a broken store must not turn a strategy error into a crash
            log.exception("could not record strategy.error alert for %s", self.instance_id)


def report_discovery_errors(store: Any, search_paths: Any = None) -> int:
    """Run discovery and raise one `strategy.error` alert per module that failed to import; returns how many."""
    from engine.store.ops import raise_alert
    from engine.strategy.registry import discover, discovery_errors

    discover(search_paths)
    errors = discovery_errors()
    for module, reason in errors.items():
        raise_alert(store, "warning", "strategy.error", f"strategy module {module} skipped: {reason}",
                    {"module": module, "error": reason, "call": "import"}, source="strategy:registry")
    return len(errors)
