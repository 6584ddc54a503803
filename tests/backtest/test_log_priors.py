"""Log-scaled parameter specs: every search (random, grid, optuna TPE) draws a lookback log-uniformly, so short and
long horizons get the same share of the budget, and the plateau score measures distances in log units."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from engine.backtest.optuna_search import _suggest, check_in_space
from engine.backtest.walkforward import sample_params
from engine.strategy.base import ParamSpec
from tests.support.strategies.sma_cross import SmaCross, SmaCrossConfig


class LogSma(SmaCross):
    """SmaCross with log-scaled windows (test-only)."""

    name = "log_sma"
    Config = SmaCrossConfig

    @classmethod
    def param_space(cls) -> dict[str, ParamSpec]:
        """Both windows log-scaled."""
        return {"fast": ParamSpec(2, 50, "int", log=True), "slow": ParamSpec(20, 800, "int", log=True),
                "long_only": ParamSpec(kind="choice", choices=(True, False))}


def test_a_log_spec_draws_log_uniformly_and_a_plain_one_uniformly() -> None:
    """Draws of a log spec over [1, 1000] spread evenly in log units (an int as optuna draws it: log-uniform over
    [0.5, 1000.5], rounded), so ~55 % fall below 32; of a plain spec ~3 %."""
    rng = np.random.default_rng(0)
    log_ints = np.array([ParamSpec(1, 1000, "int", log=True).sample(rng) for _ in range(4000)])
    log_floats = np.array([ParamSpec(0.01, 10.0, "float", log=True).sample(rng) for _ in range(4000)])
    plain = np.array([ParamSpec(1, 1000, "int").sample(rng) for _ in range(4000)])
    assert log_ints.min() >= 1 and log_ints.max() <= 1000 and log_ints.dtype.kind == "i"
    share = (math.log(31.5) - math.log(0.5)) / (math.log(1000.5) - math.log(0.5))  # P(draw <= 31)
    assert np.mean(log_ints < math.sqrt(1000)) == pytest.approx(share, abs=0.03)
    assert 0.01 <= log_floats.min() and log_floats.max() <= 10.0
    assert 0.46 < np.mean(log_floats < math.sqrt(0.1)) < 0.54
    assert np.mean(plain < math.sqrt(1000)) < 0.05


def test_a_log_spec_needs_a_positive_numeric_range() -> None:
    """A log scale of a range touching zero, or of a choice, is refused with one line naming the spec."""
    with pytest.raises(ValueError, match=r"ParamSpec.log: needs an int or float range with low > 0"):
        ParamSpec(0, 10, "int", log=True)
    with pytest.raises(ValueError, match=r"ParamSpec.log"):
        ParamSpec(kind="choice", choices=(1, 2), log=True)


def test_unit_positions_are_log_scaled_for_log_specs() -> None:
    """The geometric midpoint sits at 0.5 of a log spec, the arithmetic one at 0.5 of a plain spec."""
    assert ParamSpec(4, 400, "int", log=True).unit(40) == pytest.approx(0.5)
    assert ParamSpec(4, 400, "int").unit(202) == pytest.approx(0.5)
    assert ParamSpec(kind="choice", choices=(True, False)).unit(False) == 1.0


def test_random_and_grid_search_follow_the_log_scale() -> None:
    """Random search's draws of a log-scaled window are log-uniform; the grid's points are geometric."""
    draws = sample_params(LogSma, 400, "random", seed=3)
    slow = np.array([p["slow"] for p in draws])
    assert 0.4 < np.mean(slow < math.sqrt(20 * 800)) < 0.6  # uniform would put ~14 % below 126
    grid = sample_params(LogSma, 200, "grid", seed=3)
    fasts = sorted({p["fast"] for p in grid})
    ratios = np.diff(np.log(fasts))
    assert len(fasts) >= 4 and ratios.max() / ratios.min() < 2.0  # even steps in log units (rounded to ints)


def test_optuna_suggests_log_specs_on_a_log_scale() -> None:
    """TPE's distributions carry the spec's log flag, so its start-up draws and its model share random's prior."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    _suggest(trial, LogSma.param_space())
    assert trial.distributions["fast"].log and trial.distributions["slow"].log
    assert not hasattr(trial.distributions["long_only"], "log")
    with pytest.raises(ValueError, match=r"slow: int in \[20, 800\] \(log-scaled\)"):
        check_in_space(LogSma, {"slow": 900})

