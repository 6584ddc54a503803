"""Walk-forward evidence: a planted informative feature switches the overlay on, noise or no evidence keeps it off,
and live sizing records which and why."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from engine.config import Settings, settings_with
from engine.ml.dataset import build_dataset
from engine.ml.evaluate import EvalSpec, block_bootstrap_diff, evaluate_walk_forward, hysteresis
from engine.ml.evidence import evidence_from, latest_evidence, overlay_decision, record_evidence
from engine.ml.labels import BarrierSpec
from engine.store import open_store
from engine.store.schema import sizing_decisions

SYM = "AAA/USDT"


class Planted:
    """Always long; its one feature is the drift of the coming bars (planted) or unrelated noise."""

    name = "planted"
    default_timeframe = "1h"
    warmup_bars = 10

    def __init__(self, feature: pd.Series) -> None:
        self.feature = feature

    def warmup(self) -> int:
        return self.warmup_bars

    def signals(self, panel: dict) -> pd.DataFrame:
        return pd.DataFrame({s: np.ones(len(f), dtype=np.int8) for s, f in panel.items()}, index=panel[SYM].index)

    def features(self, panel: dict) -> dict:
        return {s: pd.DataFrame({"planted": self.feature.reindex(f.index)}) for s, f in panel.items()}


def _world(days: int = 200, informative: bool = True, seed: int = 3) -> tuple[dict, Planted]:
    """Hourly bars whose drift switches every 24 bars and a feature that knows it; or a driftless walk and noise."""
    rng = np.random.default_rng(seed)
    n = days * 24
    regime = np.repeat(rng.normal(size=n // 24 + 1), 24)[:n]
    drift = 0.0015 if informative else 0.0
    rets = np.concatenate([[0.0], drift * regime[:-1]]) + rng.normal(0, 0.004, n)
    close = 100 * np.exp(np.cumsum(rets))
    idx = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    opens = np.concatenate([[100.0], close[:-1]])
    frame = pd.DataFrame({"open": opens, "high": np.maximum(opens, close) * 1.001,
                          "low": np.minimum(opens, close) * 0.999, "close": close,
                          "volume": rng.uniform(50, 150, n)}, index=idx)
    feat = regime if informative else rng.normal(size=n)
    return {SYM: frame}, Planted(pd.Series(feat, index=idx))


SPEC = BarrierSpec(2.0, 1.0, 24, 50)
FAST = EvalSpec(retrain_every=pd.Timedelta(days=40), min_train_events=300, selection_folds=2,
                families=("logistic",), calibrations=("sigmoid",), n_boot=200)


def _evaluate(informative: bool) -> tuple:
    panel, strat = _world(informative=informative)
    ds = build_dataset(strat, panel, SPEC, features=None, select=False)
    return evaluate_walk_forward(ds, panel, strat, FAST), strat


def test_planted_informative_feature_switches_the_overlay_on(tmp_path: Path) -> None:
    ev, _ = _evaluate(True)
    assert len(ev.windows) >= 3 and ev.embargo_bars == 168 + 24
    assert ev.brier_skill > 0.05 and ev.overall["auc"] > 0.65
    assert max(lo for lo, _hi in ev.sharpe_diff_ci.values()) > 0
    assert ev.verdict.startswith("overlay adds value")
    js = ev.as_json()
    assert {"windows", "brier_skill", "sharpe", "sharpe_diff_ci", "verdict"} <= set(js)
    assert set(js["sharpe"]) == {"primary", "overlay_scaled", "overlay_gated"}
    json.dumps(js, default=str)  # one JSON object
    store = open_store(tmp_path / "state.db")
    record_evidence(store, evidence_from(ev, "planted", "1h"))
    decision = overlay_decision(latest_evidence(store, "planted"))
    assert decision.on and decision.reason.startswith("overlay on: Brier skill +")


def test_noise_feature_leaves_the_overlay_off_and_absent_evidence_too(tmp_path: Path) -> None:
    ev, _ = _evaluate(False)
    # no drift to find: at most the barriers' mechanical predictability, far below the planted world's skill
    assert ev.brier_skill < 0.03
    assert max(lo for lo, _hi in ev.sharpe_diff_ci.values()) <= 0
    store = open_store(tmp_path / "state.db")
    assert not overlay_decision(latest_evidence(store, "planted")).on  # nothing recorded yet
    assert "no walk-forward evidence" in overlay_decision(None).reason
    record_evidence(store, evidence_from(ev, "planted", "1h"))
    decision = overlay_decision(latest_evidence(store, "planted"))
    assert not decision.on and decision.reason.startswith("overlay off: Brier skill")
    assert f"over {len(ev.windows)} windows" in decision.reason
    assert decision.hit_rate is not None and 0 < decision.hit_rate < 1 and decision.payoff > 0


def test_live_sizing_says_overlay_off_and_sizes_by_the_primary_kelly(tmp_path: Path) -> None:
    from engine.ml.evidence import OverlayEvidence
    from engine.trading.lifecycle import Instance
    from engine.trading.live_sizing import LiveSizer

    settings = settings_with(Settings(), store={"path": str(tmp_path / "state.db")})
    store = open_store(tmp_path / "state.db")
    inst = Instance("qm", "quantum_momentum", "paper", "active", 10_000.0, (SYM,), "1h", {}, 0)
    sizer = LiveSizer(store, settings)
    qty0 = sizer.size(inst, SYM, 1.0, 100.0, 10_000.0, 1, {}, None, {}, None, {SYM: 100.0})
    ev = OverlayEvidence("quantum_momentum", 0, 6, 900, -0.01, 0.5, {}, {"overlay_scaled": [-0.4, 0.3]},
                         0.45, 2.0, "no evidence")
    record_evidence(store, ev)
    sizer._overlay.clear()  # a fresh read of the evidence (the sizer caches it for a few minutes)
    qty1 = sizer.size(inst, SYM, 1.0, 100.0, 10_000.0, 2, {}, None, {"AAA/USDT": 0.9}, None, {SYM: 100.0})
    with store.connect() as conn:
        rows = conn.execute(select(sizing_decisions.c.meta_prob, sizing_decisions.c.inputs)
                            .order_by(sizing_decisions.c.id)).all()
    first, second = json.loads(rows[0][1]), json.loads(rows[1][1])
    assert first["overlay"].startswith("overlay off: no walk-forward evidence") and qty0 > 0
    assert second["overlay"] == "overlay off: Brier skill -0.010 over 6 windows"
    assert rows[1][0] == pytest.approx(0.45)  # the primary's own hit rate, not the model's 0.9
    assert second["risk_method"] == "kelly"
    kelly = settings.risk.kelly_fraction * (0.45 - 0.55 / 2.0)
    assert qty1 == pytest.approx(min(kelly, settings.risk.max_trade_fraction) * 10_000 / 100, rel=1e-6)


def test_hysteresis_only_resizes_outside_the_band() -> None:
    tgt = np.array([[0.5], [0.52], [0.47], [0.30], [0.31], [-0.2], [0.0]])
    out = hysteresis(tgt, 0.1)
    assert out[:, 0].tolist() == [0.5, 0.5, 0.5, 0.30, 0.30, -0.2, 0.0]
    assert np.abs(np.diff(out[:, 0])).sum() < np.abs(np.diff(tgt[:, 0])).sum()


def test_block_bootstrap_interval_brackets_a_known_difference() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0.001, 0.01, 4000)
    same = block_bootstrap_diff(a, a, 8760, 200, 24, 0.9)
    assert same == [0.0, 0.0]
    better = block_bootstrap_diff(a + 0.002, a, 8760, 200, 24, 0.9)
    assert better[0] > 0
