"""An engine builds ONE market source and hands it to everything: broker, trader, monitors, pulls and retraining.

The retrain job once built its own simulator without the resumed clock (so it trained on bars from the wrong market
time); the sizer once got its VPIN readings by mutation inside the first monitors job.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import insert, select

from engine.clock import now_ms
from engine.config import Settings, settings_with
from engine.config_rules import state_target
from engine.data.simulator import SimulatedExchange
from engine.runtime.service import EngineService
from engine.store import open_store
from engine.store.schema import audit_log, equity_snapshots

DAY = 86_400_000


@pytest.fixture
def built(state_url: str, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - (service, constructions list)
    made: list[SimulatedExchange] = []
    original = SimulatedExchange.__init__

    def counting(self: SimulatedExchange, *args: object, **kwargs: object) -> None:
        made.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(SimulatedExchange, "__init__", counting)
    settings = settings_with(Settings(), store=state_target(state_url),
                             simulator={"speed": 60.0, "history_days": 2},
                             ml={"train_window_days": 1, "train_at_start": False})
    store = open_store(settings.store_url())
    resume = now_ms() + 2 * DAY  # a restarted speed-60 engine: its market time ran 2 days ahead of the wall
    with store.begin() as conn:
        conn.execute(insert(equity_snapshots).values(ts=resume, scope="portfolio", equity=1.0, cash=1.0,
                                                     gross_exposure=0.0, net_exposure=0.0, unrealized_pnl=0.0,
                                                     realized_pnl=0.0))
    svc = EngineService(settings, install_signals=False)
    svc.store = store
    svc._build_trading()
    yield svc, made, resume
    store.dispose()


def test_the_engine_builds_one_source_and_hands_it_to_everything(built) -> None:  # noqa: ANN001
    svc, made, resume = built
    assert made == [svc.source]
    assert svc.broker.paper.source is svc.source and svc.trader.source is svc.source
    assert svc.monitors.source is svc.source
    assert svc.source.milliseconds() >= resume  # the simulator resumed its market clock
    svc._pull(svc.settings.data.symbols[0], "1m")
    svc._equity()
    assert made == [svc.source], f"{len(made)} sources built"


@pytest.mark.slow  # imports sklearn/scipy for the training step (~10 s of a cold process)
def test_retraining_uses_the_engines_source_and_its_market_clock(built) -> None:  # noqa: ANN001
    svc, made, resume = built
    try:
        svc._retrain("quantum_momentum")
    except ValueError:  # one day of bars is too few events to train; the data step ran on the engine's source
        pass
    assert made == [svc.source], f"{len(made)} sources built"
    with svc.store.connect() as conn:
        details = conn.execute(select(audit_log.c.details).where(audit_log.c.action == "model.train.data")).scalar()
    assert json.loads(details)["until"] >= resume - DAY  # trained on the engine's market time, not the wall clock


def test_the_sizer_reads_the_monitors_vpin_from_the_start(built) -> None:  # noqa: ANN001
    svc, _made, _resume = built
    assert svc.trader.sizer.vpin_cdf is svc.monitors.toxicity.cdf  # before any monitors job ran
