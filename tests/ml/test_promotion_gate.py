"""The model promotion gate needs out-of-sample evidence of value: an AUC tie with a lower overlay Sharpe is refused,
and the gate reports the numbers it compared."""

from __future__ import annotations

from engine.ml.promotion import BRIER_MARGIN, SHARPE_MARGIN, decide


def test_an_auc_tie_with_a_lower_overlay_sharpe_is_refused() -> None:
    """The reported case: AUC equal, overlay Sharpe 2.47 against the champion's 2.59."""
    ch = {"roc_auc": 0.612, "brier": 0.2301, "overlay_sharpe": 2.47}
    cp = {"roc_auc": 0.612, "brier": 0.2301, "overlay_sharpe": 2.59}
    d = decide(ch, cp, "same events")
    assert not d.promote and "overlay Sharpe" in d.reason and "2.470 vs 2.590" in d.reason
    assert d.as_dict()["challenger"]["overlay_sharpe"] == 2.47 and d.as_dict()["champion"]["overlay_sharpe"] == 2.59


def test_a_tie_everywhere_is_not_evidence() -> None:
    same = {"roc_auc": 0.6, "brier": 0.23, "overlay_sharpe": 1.5}
    d = decide(same, dict(same), "same events")
    assert not d.promote and "not better by a margin" in d.reason


def test_value_by_a_margin_promotes_and_worse_on_either_refuses() -> None:
    cp = {"roc_auc": 0.60, "brier": 0.2300, "overlay_sharpe": 1.50}
    assert decide({**cp, "overlay_sharpe": 1.50 + SHARPE_MARGIN}, cp, "x").promote
    assert decide({**cp, "brier": 0.2300 - BRIER_MARGIN}, cp, "x").promote
    assert not decide({**cp, "overlay_sharpe": 3.0, "brier": 0.2400}, cp, "x").promote  # worse calibration
    assert not decide({**cp, "roc_auc": 0.9, "overlay_sharpe": 1.49}, cp, "x").promote  # AUC alone never promotes


def test_without_measured_value_the_champion_stays_and_without_a_champion_the_first_model_goes() -> None:
    ch = {"roc_auc": 0.7, "brier": 0.2, "overlay_sharpe": 2.0}
    d = decide(ch, {"roc_auc": 0.99, "brier": float("nan"), "overlay_sharpe": float("nan")}, "recorded")
    assert not d.promote and "no out-of-sample evidence" in d.reason
    assert decide(ch, None, "no champion").promote
