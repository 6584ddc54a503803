"""Emergency trigger: every rule moves the persisted state and names itself; hysteresis; restart; never loosens."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.config import TriggerConfig
from engine.risk.trading_state import TradingState, get_state, set_state
from engine.risk.triggers import SymbolObservation, TriggerEngine, TriggerObservation
from engine.store import list_alerts, open_store
from engine.store.schema import audit_log

CFG = TriggerConfig()
T0 = 1_700_000_000_000
REPO = Path(__file__).resolve().parents[2]


def _sym(**kw: float) -> TriggerObservation:
    return TriggerObservation(symbols={"BTC/USDT": SymbolObservation(**kw)}, ts=T0)


# (rule, observation that should reduce, observation that should halt)
CASES = {
    "vpin_cdf": (_sym(vpin_cdf=0.96), _sym(vpin_cdf=0.995)),
    "spread": (_sym(spread_bps=30.0), _sym(spread_bps=80.0)),
    "depth_collapse": (_sym(depth_ratio=0.25), _sym(depth_ratio=0.05)),
    "stale_data": (_sym(data_age_s=200.0), _sym(data_age_s=900.0)),
    "funding": (_sym(funding_rate=-0.0015), _sym(funding_rate=0.004)),
    "netflow": (_sym(netflow_z=3.5), _sym(netflow_z=6.0)),
    "daily_drawdown": (TriggerObservation(daily_drawdown=0.035, ts=T0), TriggerObservation(daily_drawdown=0.06, ts=T0)),
    "total_drawdown": (TriggerObservation(total_drawdown=0.11, ts=T0), TriggerObservation(total_drawdown=0.2, ts=T0)),
    "error_rate": (TriggerObservation(error_rate=0.3, ts=T0), TriggerObservation(error_rate=0.7, ts=T0)),
    "recon_mismatch": (None, TriggerObservation(recon_mismatch=0.5, ts=T0)),
    # the account-level exposure budget (issue 13): fractions of portfolio equity over all instances
    "gross_exposure": (TriggerObservation(gross_exposure=1.8, ts=T0), TriggerObservation(gross_exposure=2.6, ts=T0)),
    "net_exposure": (TriggerObservation(net_exposure=-1.6, ts=T0), TriggerObservation(net_exposure=2.1, ts=T0)),
    "symbol_exposure": (_sym(exposure=0.55), _sym(exposure=0.8)),
}


def _audit_rows(store, action: str) -> list[dict]:  # noqa: ANN001
    with store.connect() as conn:
        rows = conn.execute(select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.id)).mappings()
        return [dict(r, details=json.loads(r["details"])) for r in rows]


# recon_mismatch has no reduce level: a reconciliation mismatch always halts
PAIRS = [(rule, level) for rule in sorted(CASES) for i, level in enumerate(("reduce", "halt")) if CASES[rule][i]]


@pytest.mark.parametrize(("rule", "level"), PAIRS)
def test_each_rule_moves_state_and_names_itself(store, rule: str, level: str) -> None:  # noqa: ANN001
    obs = CASES[rule][0 if level == "reduce" else 1]
    expected = TradingState.REDUCING if level == "reduce" else TradingState.HALTED
    engine = TriggerEngine(store, CFG)
    assert engine.evaluate(TriggerObservation(symbols={"BTC/USDT": SymbolObservation()}, ts=T0)) == []
    firings = engine.evaluate(obs)
    assert [f.rule for f in firings] == [rule] and firings[0].new_state is expected
    assert get_state(store).state is expected and get_state(store).changed_by == "trigger"
    alert = list_alerts(store)[0]
    assert alert.rule == f"trigger.{rule}" and alert.source == "trigger"
    assert alert.severity == ("warning" if level == "reduce" else "critical")
    assert alert.values["value"] == pytest.approx(firings[0].value) and alert.values["threshold"] == firings[0].threshold
    fired = _audit_rows(store, "trigger.fired")
    assert len(fired) == 1 and fired[0]["details"]["rule"] == rule and fired[0]["source"] == "trigger"
    assert fired[0]["details"]["value"] == pytest.approx(firings[0].value)
    changed = _audit_rows(store, "trading_state.changed")
    assert changed[-1]["details"]["to"] == expected.value and rule in changed[-1]["details"]["reason"]


def test_hysteresis_no_flapping_then_clear_then_refire(store) -> None:  # noqa: ANN001
    cfg = TriggerConfig(vpin_cdf_reduce=0.9, vpin_cdf_halt=0.99, hysteresis=0.9, clear_after_s=60)
    eng = TriggerEngine(store, cfg)
    readings = [0.91, 0.89, 0.92, 0.85, 0.93, 0.9]  # hovers around 0.9 but never below 0.81
    fired = [eng.evaluate(TriggerObservation({"BTC/USDT": SymbolObservation(vpin_cdf=v)}, ts=T0 + i * 1000))
             for i, v in enumerate(readings)]
    assert sum(len(f) for f in fired) == 1 and len(list_alerts(store)) == 1
    # safe for less than clear_after_s: still latched
    eng.evaluate(TriggerObservation({"BTC/USDT": SymbolObservation(vpin_cdf=0.5)}, ts=T0 + 10_000))
    eng.evaluate(TriggerObservation({"BTC/USDT": SymbolObservation(vpin_cdf=0.5)}, ts=T0 + 50_000))
    assert ("vpin_cdf", "BTC/USDT") in eng.latched
    eng.evaluate(TriggerObservation({"BTC/USDT": SymbolObservation(vpin_cdf=0.5)}, ts=T0 + 71_000))
    assert eng.latched == {} and len(_audit_rows(store, "trigger.cleared")) == 1
    assert get_state(store).state is TradingState.REDUCING  # clearing never loosens the state
    # escalation from a latched REDUCING straight to HALT fires again
    out = eng.evaluate(TriggerObservation({"BTC/USDT": SymbolObservation(vpin_cdf=0.999)}, ts=T0 + 80_000))
    assert [f.level for f in out] == [TradingState.HALTED] and get_state(store).state is TradingState.HALTED


def test_never_loosens_and_operator_resume_refires_if_condition_holds(store) -> None:  # noqa: ANN001
    eng = TriggerEngine(store, CFG)
    eng.evaluate(TriggerObservation(daily_drawdown=0.08, ts=T0))
    assert get_state(store).state is TradingState.HALTED
    # a REDUCE-level reading does not move HALTED back to REDUCING
    eng.evaluate(TriggerObservation(error_rate=0.3, ts=T0 + 1))
    assert get_state(store).state is TradingState.HALTED
    set_state(store, TradingState.ACTIVE, "operator checked", source="cli", user="op", confirmed=True)
    out = eng.evaluate(TriggerObservation(daily_drawdown=0.08, ts=T0 + 2))
    assert [f.rule for f in out] == ["daily_drawdown"] and get_state(store).state is TradingState.HALTED


_CHILD = """
import sys
from engine.config import TriggerConfig
from engine.risk.triggers import SymbolObservation, TriggerEngine, TriggerObservation
from engine.store import open_store
st = open_store(sys.argv[1])
eng = TriggerEngine(st, TriggerConfig())
print(sorted(f"{r}|{k}|{v.value}" for (r, k), v in eng.latched.items()))
out = eng.evaluate(TriggerObservation({"ETH/USDT": SymbolObservation(spread_bps=30.0)}, ts=1))
print(len(out))
"""


def test_state_and_latches_survive_restart(state_path: Path) -> None:
    st = open_store(state_path)
    TriggerEngine(st, CFG).evaluate(TriggerObservation({"ETH/USDT": SymbolObservation(spread_bps=30.0)}, ts=T0))
    st.dispose()
    fresh = open_store(state_path)  # a fresh Store object
    assert get_state(fresh).state is TradingState.REDUCING
    assert TriggerEngine(fresh, CFG).latched == {("spread", "ETH/USDT"): TradingState.REDUCING}
    fresh.dispose()
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(state_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines == ["['spread|ETH/USDT|REDUCING']", "0"]  # latched in the new process: no re-fire
    again = open_store(state_path)
    assert get_state(again).state is TradingState.REDUCING and len(list_alerts(again)) == 1
    again.dispose()


def test_bad_config_is_named(store) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="hysteresis"):
        TriggerEngine(store, TriggerConfig(hysteresis=1.5))
