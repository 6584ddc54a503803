"""Choosing a window's configuration by its plateau (mean in-sample Sharpe of its nearest evaluated neighbours)
rather than by the single best in-sample Sharpe, for every search alike."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backtest.selection import choose, neighbours, plateau_scores
from engine.backtest.walkforward import run_walkforward
from engine.config import BacktestConfig
from engine.strategy.base import ParamSpec
from tests.support.strategies.sma_cross import SmaCross

SPACE = {"x": ParamSpec(1, 1000, "int", log=True)}


def _ps(*xs: int) -> list[dict]:
    return [{"x": x} for x in xs]


def test_a_plateau_beats_a_lone_spike() -> None:
    """The best single Sharpe sits among poor neighbours; the plateau rule takes the middle of the good region."""
    params = _ps(10, 11, 12, 13, 14, 500, 520, 540, 560, 580)
    sharpe = np.array([1.9, 2.0, 2.1, 2.0, 1.9, -1.0, -1.2, 3.0, -0.8, -1.1])
    assert choose("sharpe", sharpe, sharpe, params, SPACE) == 7
    assert choose("plateau", sharpe, sharpe, params, SPACE) == 2
    assert neighbours(10) == 3 and neighbours(60) == 6 and neighbours(2) == 2


def test_neighbours_are_measured_in_log_units_for_log_specs() -> None:
    """5 and 10 are as far apart as 500 and 1000 on a log-scaled lookback; on a plain one 5 and 10 are neighbours."""
    params = _ps(5, 10, 500, 1000)
    values = np.array([1.0, 2.0, 3.0, 4.0])
    assert plateau_scores(values, params, SPACE, k=2).tolist() == [1.5, 1.5, 3.5, 3.5]
    plain = {"x": ParamSpec(1, 1000, "int")}
    assert plateau_scores(values, _ps(5, 10, 400, 1000), plain, k=2).tolist() == [1.5, 1.5, 2.5, 3.5]


def test_unselectable_trials_are_neither_chosen_nor_neighbours() -> None:
    """A pruned trial neither wins nor lifts its neighbours' plateau."""
    params = _ps(10, 11, 12, 500, 510, 520)
    sharpe = np.array([1.0, 1.0, 1.0, 0.5, 9.0, 0.5])
    ok = np.array([True, True, True, True, False, True])
    assert choose("plateau", sharpe, sharpe, params, SPACE, ok) in (0, 1, 2)
    assert choose("sharpe", sharpe, sharpe, params, SPACE, ok) in (0, 1, 2)
    with pytest.raises(ValueError, match="selection: must be one of sharpe, robust, plateau"):
        choose("median", sharpe, sharpe, params, SPACE)


@pytest.mark.parametrize("search", ["random", "tpe"])
def test_walkforward_chooses_each_windows_plateau(make_panel, search: str) -> None:  # noqa: ANN001
    """run_walkforward(selection="plateau") deploys, in every window, the trial with the best plateau score of its
    evaluated trials, for random search and TPE alike."""
    panel = make_panel(1500, ("BTC/USDT", "ETH/USDT"))
    wf = run_walkforward(SmaCross, panel, BacktestConfig(), n_trials=12, n_windows=2, search=search, seed=4,
                         backend="sequential", selection="plateau")
    space = SmaCross.param_space()
    differs = []
    for w in wf.table["window"]:
        rows = wf.trials[wf.trials["window"] == w].sort_values("param_index")
        cand = list(rows["params"])
        expect = int(np.argmax(plateau_scores(rows["is_sharpe"].to_numpy(), cand, space)))
        assert rows["selected"].sum() == 1
        assert int(rows.loc[rows["selected"], "param_index"].item()) == expect
        assert wf.table.set_index("window").loc[w, "best_params"] == cand[expect]
        differs.append(expect != int(np.argmax(rows["is_sharpe"].to_numpy())))
    assert any(differs)  # this seed's plateau is not simply the best in-sample Sharpe somewhere


def test_the_medoid_rule_takes_the_centre_of_the_best_fifth() -> None:
    """Of the best fifth by in-sample Sharpe, the medoid is the configuration closest to the others, not the top."""
    params = _ps(10, 12, 14, 16, 700, 1, 2, 3, 4, 5, 100, 110, 120, 130, 140, 150, 160, 170, 180, 190)
    sharpe = np.array([2.0, 2.1, 2.2, 2.0, 3.0] + [0.0] * 15)
    assert choose("sharpe", sharpe, sharpe, params, SPACE) == 4
    assert choose("medoid", sharpe, sharpe, params, SPACE) in (1, 2)
    ok = np.ones(20, dtype=bool)
    ok[[1, 2]] = False
    assert choose("medoid", sharpe, sharpe, params, SPACE, ok) in (0, 3)  # never an unselectable trial


def test_the_steady_rule_takes_the_most_even_earner_of_the_best_fifth() -> None:
    """Of the best fifth by in-sample Sharpe, the steady rule deploys the highest robust score; a steadier trial
    outside the best fifth is not considered."""
    params = _ps(*range(10, 30))
    sharpe = np.array([3.0, 2.9, 2.8, 2.7] + [1.0] * 16)
    robust = np.array([0.5, 0.9, 1.2, 0.7] + [5.0] * 16)
    assert choose("steady", sharpe, robust, params, SPACE) == 2
    assert choose("robust", sharpe, robust, params, SPACE) == 4


def test_the_reopt_setting_accepts_every_rule_and_refuses_others(tmp_path) -> None:  # noqa: ANN001
    """`[reopt] selection` offers exactly the walk-forward's rules (config is a leaf, so it keeps its own list); another
    value is one line naming the key and the choices."""
    from engine.backtest.selection import SELECTIONS
    from engine.config import ConfigError, load_settings

    cfg = tmp_path / "quantdesk.toml"
    cfg.write_text("")
    for rule in SELECTIONS:
        assert load_settings(cfg, {}, {"reopt.selection": rule, "reopt.search": "tpe"}).reopt.selection == rule
    with pytest.raises(ConfigError, match=r"reopt.selection: .*steady.*'best'"):
        load_settings(cfg, {}, {"reopt.selection": "best"})
