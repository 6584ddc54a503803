"""Simulated data shared by the ML tests: built once per session (the simulator is deterministic per seed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
FIXED_NOW_S = 1_790_000_000.0  # a fixed simulated "now" so every run sees the same history


def _sim_panel(days: int) -> dict[str, pd.DataFrame]:
    from engine.data.simulator import SimulatedExchange
    from engine.ml.dataset import sim_taker_flow

    sim = SimulatedExchange(seed=7, clock=lambda: FIXED_NOW_S)
    now = sim.milliseconds() // 3_600_000 * 3_600_000
    since = now - days * 86_400_000
    parts: dict[str, list[pd.DataFrame]] = {s: [] for s in SYMBOLS}
    for w0 in range(since, now, 60 * 86_400_000):  # day windows round-robin over symbols: each day generated once
        w1 = min(now, w0 + 60 * 86_400_000)
        for sym in SYMBOLS:
            frame = sim.ohlcv_frame(sym, "1h", w0, w1)
            frame["taker_buy_volume"] = sim_taker_flow(sim, sym, "1h", frame.index).to_numpy()
            parts[sym].append(frame)
    return {s: pd.concat(v) for s, v in parts.items()}


@pytest.fixture(scope="session")
def sim_panel_1y() -> dict[str, pd.DataFrame]:
    """One year of simulated 1h bars with kline taker-buy volume for BTC, ETH, SOL."""
    return _sim_panel(365)


@pytest.fixture(scope="session")
def sim_state_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state.db holding 120 days of simulated 1h candles for the three symbols (copy it, do not write to it)."""
    from engine.config import Settings, settings_with
    from engine.data.factory import make_source
    from engine.ml.retrain import ensure_bars
    from engine.store import open_store

    path = tmp_path_factory.mktemp("simdb") / "state.db"
    settings = settings_with(Settings(), store={"path": str(path)})
    source = make_source("sim", settings)
    store = open_store(path)
    until = source.milliseconds() // 3_600_000 * 3_600_000
    ensure_bars(store, source, SYMBOLS, "1h", until - 125 * 86_400_000, until)
    store.dispose()
    return path


@pytest.fixture
def sim_state(sim_state_template: Path, tmp_path: Path) -> Path:
    """A private copy of the simulated state.db for one test."""
    dest = tmp_path / "state.db"
    shutil.copy(sim_state_template, dest)
    return dest
