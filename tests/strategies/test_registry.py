"""Strategy discovery by name, including modules dropped into an extra search path, and parameter validation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.strategy import registry
from engine.strategy.base import ParamSpec, Strategy
from strategies.macro_trend import MacroTrend
from strategies.quantum_momentum import QuantumMomentum

USER_MODULE = '''
from dataclasses import dataclass
import numpy as np
import pandas as pd
from engine.strategy.base import ParamSpec, Strategy, check_panel, panel_field, to_sides


@dataclass(frozen=True)
class CrossConfig:
    lookback: int = 5


class PriceAboveMean(Strategy):
    name = "price_above_mean_{tag}"
    Config = CrossConfig
    default_timeframe = "1h"
    warmup_bars = 5

    @classmethod
    def param_space(cls):
        return {{"lookback": ParamSpec(2, 50, "int")}}

    def features(self, panel):
        return {{s: f[["close"]] for s, f in panel.items()}}

    def signals(self, panel):
        check_panel(panel)
        close = panel_field(panel, "close")
        return to_sides(close - close.rolling(self.config.lookback).mean())
'''


def test_builtin_strategies_are_discovered() -> None:
    assert registry.available() == ["macro_trend", "quantum_momentum"]
    assert registry.display_names() == {"macro_trend": "Macro Trend", "quantum_momentum": "Quantum Momentum"}
    assert isinstance(registry.load_strategy("quantum_momentum"), QuantumMomentum)
    assert isinstance(registry.load_strategy("macro_trend", {"fast": 6}), MacroTrend)
    assert QuantumMomentum.default_timeframe == "1h" and MacroTrend.default_timeframe == "4h"


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="quantum_momentum") as err:
        registry.load_strategy("nope")
    assert "macro_trend" in str(err.value) and "nope" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_dropped_module_is_found_via_search_path(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "my_idea.py").write_text(textwrap.dedent(USER_MODULE.format(tag="a")))
    (tmp_path / "broken.py").write_text("raise RuntimeError('user typo')\n")
    names = registry.available(search_paths=[tmp_path])
    assert "price_above_mean_a" in names and "quantum_momentum" in names
    errors = registry.discovery_errors()
    assert any("broken.py" in k and "user typo" in v for k, v in errors.items())
    strat = registry.load_strategy("price_above_mean_a", {"lookback": 7}, search_paths=[tmp_path])
    assert strat.config.lookback == 7
    assert registry.display_names([tmp_path])["price_above_mean_a"] == "Price Above Mean A"
    # the environment variable works too
    other = tmp_path / "env"
    other.mkdir()
    (other / "env_idea.py").write_text(textwrap.dedent(USER_MODULE.format(tag="env")))
    monkeypatch.setenv(registry.ENV_PATH, str(other))
    assert "price_above_mean_env" in registry.available()


def test_module_dropped_into_a_copy_of_the_package(tmp_path: Path) -> None:
    """Copy strategies/ elsewhere, drop a module in, and discover it in a fresh interpreter."""
    import shutil
    import subprocess
    import sys

    import strategies

    pkg = tmp_path / "strategies"
    shutil.copytree(Path(strategies.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "dropped.py").write_text(textwrap.dedent(USER_MODULE.format(tag="dropped")))
    repo_root = Path(strategies.__file__).parent.parent
    code = "from engine.strategy.registry import available; print(','.join(available()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": f"{tmp_path}:{repo_root}", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().split(",") == ["macro_trend", "price_above_mean_dropped", "quantum_momentum"]


def test_param_validation() -> None:
    with pytest.raises(ValueError, match="unknown parameter 'speed'"):
        registry.load_strategy("quantum_momentum", {"speed": 3})
    with pytest.raises(ValueError, match="fast=2.5 is not a valid int"):
        QuantumMomentum(fast=2.5)
    with pytest.raises(ValueError, match="entry='high'"):
        QuantumMomentum(entry="high")
    with pytest.raises(ValueError, match="exit=-0.1"):
        MacroTrend(exit=-0.1)
    with pytest.raises(ValueError, match="allow_short"):
        MacroTrend(allow_short="yes")
    assert QuantumMomentum(fast=100, mid=500, slow=5000).config.slow == 5000  # outside the search range is allowed
    with pytest.raises(ValueError, match="fast < mid < slow"):
        QuantumMomentum(fast=60, mid=50)
    with pytest.raises(ValueError, match="exit"):
        MacroTrend(entry=0.2, exit=0.5)
    with pytest.raises(TypeError, match="config"):
        MacroTrend(config=QuantumMomentum.Config())
    cfg = MacroTrend.Config(fast=5)
    assert MacroTrend(cfg, slow=30).params["slow"] == 30 and MacroTrend(cfg).config is cfg
    with pytest.raises(Exception):
        cfg.fast = 3  # frozen


def test_rescaled_to_one_minute_bars() -> None:
    qm = QuantumMomentum().rescaled("1m")
    assert (qm.config.fast, qm.config.mid, qm.config.slow) == (24 * 60, 96 * 60, 336 * 60)
    assert qm.config.entry == QuantumMomentum().config.entry  # non-bar parameters untouched
    mt = MacroTrend().rescaled("1d")
    assert (mt.config.fast, mt.config.slow, mt.config.atr_window) == (2, 8, 5) and mt.warmup_bars == 16
    with pytest.raises(ValueError, match="timeframe"):
        QuantumMomentum().rescaled("1q")


def test_param_space_defaults_inside_and_samples_valid() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    for cls in (QuantumMomentum, MacroTrend):
        space = cls.param_space()
        defaults = cls.Config()
        assert 4 <= len(space) <= 8  # a small search space keeps the deflated Sharpe honest
        assert all(spec.contains(getattr(defaults, k)) for k, spec in cls.all_specs().items())
        assert set(cls.all_specs()) == {f for f in defaults.__dataclass_fields__}
        built = 0
        for _ in range(50):
            params = {k: spec.sample(rng) for k, spec in space.items()}
            try:
                cls(**params)
                built += 1
            except ValueError as exc:  # cross-field constraints (fast < slow) may reject a draw, naming why
                assert "need" in str(exc) or "exit" in str(exc)
        assert built > 5
    with pytest.raises(ValueError, match="kind"):
        ParamSpec(0, 1, "log")
    assert ParamSpec(1, 5, "int").contains(3) and not ParamSpec(1, 5, "int").contains(2.5)


def test_base_strategy_requires_dataclass_config() -> None:
    class NoConfig(Strategy):
        name = "no_config"

    with pytest.raises(TypeError, match="Config"):
        NoConfig()
