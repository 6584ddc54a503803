"""Scheduled re-optimisation (issue 16): walk-forward on the latest stored bars starts a paper challenger with its
lineage when it beats the champion's DSR and passes PBO, never otherwise, and a losing challenger is retired; every
decision is audited. Real SQLite store, real APScheduler inside the engine service, synthetic stored bars."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert, select

from engine.clock import now_ms
from engine.config import Settings, StrategyInstanceConfig, settings_with
from engine.execution.orders import positions_on_venue
from engine.store import open_store
from engine.store.candles import upsert_candles
from engine.store.schema import alerts, audit_log, equity_snapshots
from engine.trading.lifecycle import LifecycleError, get_instance, list_instances, set_status, sync_instances
from engine.trading.reoptimize import challengers_of, reoptimize_instance, retire_losers
from tests.support.waiting import wait_for

HOUR = 3_600_000
DAY = 86_400_000
STRATS = str(Path(__file__).resolve().parent / "reopt_strategies")


def _settings(tmp_path: Path, params: dict, **reopt: object) -> Settings:
    base = settings_with(Settings(), store={"path": str(tmp_path / "state.db")},
                         data={"symbols": ["BTC/USDT"], "timeframes": ["1m"], "feeds": []},
                         simulator={"history_days": 1}, ml={"train_at_start": False},
                         reopt={"n_trials": 6, "n_windows": 2, "pbo_splits": 4, "lookback_days": 20.0,
                                "first_run_delay_s": 0.0, **reopt})
    inst = StrategyInstanceConfig(strategy="lean", symbols=("BTC/USDT",), timeframe="1h", capital=10_000.0,
                                  params=params)
    return dataclasses.replace(base, strategies={"champ": inst})


def _store_rising_bars(store, end: int) -> None:  # noqa: ANN001
    """20 days of 1h bars drifting up 0.1% a bar with small noise, ending at `end`: with Lean, a larger gap is better
    in every window (fewer round trips, more bars long)."""
    n = 480
    rng = np.random.default_rng(3)
    close = 100.0 * np.cumprod(1.0 + 0.001 + rng.normal(0, 0.0005, n))
    ts = (end - end % HOUR) - HOUR * np.arange(n, 0, -1)
    opens = np.concatenate(([100.0], close[:-1]))
    rows = np.column_stack([ts, opens, np.maximum(opens, close) * 1.001, np.minimum(opens, close) * 0.999, close,
                            np.full(n, 1e6)])
    upsert_candles(store, "sim", "BTC/USDT", "1h", rows)


def _job_run(store, job_id: str):  # noqa: ANN001, ANN202 - (ok, result, error) of the first finished run
    from engine.store.schema import job_runs

    with store.connect() as conn:
        return conn.execute(select(job_runs.c.ok, job_runs.c.result, job_runs.c.error).where(
            job_runs.c.job_id == job_id, job_runs.c.finished_at.is_not(None)).order_by(job_runs.c.id)).first()


def _audits(store, action: str) -> list[dict]:  # noqa: ANN001
    with store.connect() as conn:
        return [json.loads(r[0]) for r in conn.execute(select(audit_log.c.details).where(
            audit_log.c.action == action).order_by(audit_log.c.id))]


def _run_and_optuna_trials(store, run_id: int) -> tuple[dict, int, int]:  # noqa: ANN001
    """A walk-forward run's params, its registry trial count and its studies' COMPLETE + PRUNED optuna trials."""
    import optuna

    from engine.backtest.optuna_search import open_storage
    from engine.backtest.registry import count_trials
    from engine.store.schema import backtest_runs

    with store.connect() as conn:
        raw, d_hash = conn.execute(select(backtest_runs.c.params, backtest_runs.c.dataset_hash).where(
            backtest_runs.c.id == run_id)).one()
    params = json.loads(raw)
    storage = open_storage(store)
    try:
        done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        n = sum(t.state in done for name in params["studies"]
                for t in optuna.load_study(study_name=name, storage=storage).trials)
    finally:
        storage.engine.dispose()
    return params, count_trials(store, d_hash), n


@pytest.fixture
def strategies_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTDESK_STRATEGY_PATH", STRATS)


def test_the_engine_job_starts_a_paper_challenger_with_lineage_and_retires_it_when_it_loses(
        tmp_path: Path, strategies_on_path: None) -> None:
    from engine.runtime.service import EngineService

    # judged once 1.5 s old: when a run ends just before the next 2.16 s slot, the next run starts at once, and with
    # retire_after_days=0 it retired the challenger while its first paper order was still unfilled (so nothing was
    # flat-closed and its fill was left open: seen once in 14 runs with TPE's ~2 s runs, a likely reading of it)
    settings = _settings(tmp_path, {"gap": 2}, interval_hours=0.0006, retire_after_days=1.5 / 86_400)
    store = open_store(settings.store_url())
    _store_rising_bars(store, now_ms())
    svc = EngineService(settings, install_signals=False)
    svc.store = store
    svc._build_trading()
    svc._start_scheduler()
    try:
        assert "reopt:champ" in {j.id for j in svc.scheduler.get_jobs()}
        first = wait_for(lambda: challengers_of(store, "champ", running_only=False), 25, "a challenger")[0]
        assert first.stage == "paper" and first.role == "challenger" and first.parent_id == "champ"
        assert first.params["gap"] > 2 and first.origin_run_id is not None
        assert first.capital == pytest.approx(10_000.0 * settings.reopt.challenger_capital_fraction)
        started = _audits(store, "strategy.challenger.start")[0]
        assert started["instance_id"] == first.id and started["origin_run_id"] == first.origin_run_id
        decision = [d for d in _audits(store, "strategy.reopt") if d["started"]][0]
        assert decision["candidate_dsr"] > (decision["champion_dsr"] or 0.0) and decision["pbo"] <= 0.5
        # the default search is TPE: the job's walk-forward is an optuna run whose every trial is a registry trial
        params, n_registry, n_optuna = _run_and_optuna_trials(store, decision["run_id"])
        assert settings.reopt.search == "tpe" == params["search"] and len(params["studies"]) == 2
        assert 0 < n_optuna == n_registry
        wait_for(lambda: svc.scheduler.get_job(f"tick:{first.id}"), 10, "the challenger's tick job")  # it trades
        run = wait_for(lambda: _job_run(store, f"tick:{first.id}"), 15, "a finished tick of the challenger")
        # the trader loaded Lean with the challenger's stored params (long) and sent its first paper order
        assert run[0] == 1 and json.loads(run[1])["targets"]["BTC/USDT"] > 0, run
        # 1.5 s old and no paper record to speak of: a later run judges it, it has no DSR, it is retired
        wait_for(lambda: get_instance(store, first.id).status == "retired", 25, "the losing challenger retired")
        retired = [a for a in _audits(store, "strategy.challenger.retire") if a["instance_id"] == first.id]
        wait_for(lambda: not svc.scheduler.get_job(f"tick:{first.id}"), 10, "the retired challenger's tick removed")
        # it trades nowhere any more: what it held is closed (the paper broker fills the closing order)
        wait_for(lambda: not [p for p in positions_on_venue(store, "paper") if p["instance_id"] == first.id], 15,
                 "the retired challenger flat")
        assert retired and retired[0]["parent_id"] == "champ"
        with store.connect() as conn:
            kinds = {r[0] for r in conn.execute(select(alerts.c.rule))}
        assert {"reopt.challenger", "reopt.retire"} <= kinds
    finally:
        svc.scheduler.shutdown(wait=True)
        store.dispose()


def test_no_challenger_when_the_candidate_does_not_beat_the_champion(tmp_path: Path,
                                                                     strategies_on_path: None) -> None:
    settings = _settings(tmp_path, {"gap": 8})  # the champion already holds the best configuration
    store = open_store(settings.store_url())
    end = now_ms()
    _store_rising_bars(store, end)
    sync_instances(store, settings)
    decision = reoptimize_instance(store, settings, "champ", "sim", end)
    assert decision.challenger_id is None and decision.run_id is not None
    assert any("does not beat champion" in r for r in decision.reasons), decision.reasons
    assert [i.id for i in list_instances(store)] == ["champ"]
    audited = _audits(store, "strategy.reopt")
    assert len(audited) == 1 and audited[0]["started"] is False and audited[0]["run_id"] == decision.run_id
    store.dispose()


def _equity(store, scope: str, start: int, step: float) -> None:  # noqa: ANN001
    rng = np.random.default_rng(len(scope))
    eq = 10_000.0 * np.cumprod(1.0 + step + rng.normal(0, 0.001, 200))
    with store.begin() as conn:
        for i, e in enumerate(eq):
            conn.execute(insert(equity_snapshots).values(
                ts=start + i * HOUR, scope=scope, equity=float(e), cash=float(e), gross_exposure=0.0,
                net_exposure=0.0, unrealized_pnl=0.0, realized_pnl=0.0))


def test_a_challenger_is_judged_only_after_the_configured_time_and_only_a_loser_is_retired(
        tmp_path: Path, strategies_on_path: None) -> None:
    settings = _settings(tmp_path, {"gap": 2}, retire_after_days=5.0)
    store = open_store(settings.store_url())
    end = now_ms()
    _store_rising_bars(store, end)
    sync_instances(store, settings)
    first = reoptimize_instance(store, settings, "champ", "sim", end).challenger_id
    assert first is not None
    born = get_instance(store, first).created_at
    _equity(store, "champ", born, 0.001)  # the champion's paper record rises
    _equity(store, first, born, -0.001)  # the challenger's falls
    assert retire_losers(store, settings, "champ", now=born + 4 * DAY) == []  # too early to judge
    assert get_instance(store, first).status == "running"
    assert retire_losers(store, settings, "champ", now=born + 6 * DAY) == [first]
    assert get_instance(store, first).status == "retired"
    audit = _audits(store, "strategy.challenger.retire")[0]
    assert audit["challenger_dsr"] < audit["champion_dsr"] and audit["age_days"] == pytest.approx(6.0)
    with pytest.raises(LifecycleError, match="retired challenger"):
        set_status(store, first, "running", "cli", "operator")  # a retired challenger stays retired
    store.dispose()


def test_a_winning_challenger_is_kept(tmp_path: Path, strategies_on_path: None) -> None:
    settings = _settings(tmp_path, {"gap": 2}, retire_after_days=1.0)
    store = open_store(settings.store_url())
    end = now_ms()
    _store_rising_bars(store, end)
    sync_instances(store, settings)
    ch = reoptimize_instance(store, settings, "champ", "sim", end).challenger_id
    born = get_instance(store, ch).created_at
    _equity(store, "champ", born, -0.001)
    _equity(store, ch, born, 0.001)
    assert retire_losers(store, settings, "champ", now=born + 2 * DAY) == []
    assert get_instance(store, ch).status == "running" and _audits(store, "strategy.challenger.retire") == []
    store.dispose()


def test_strategy_list_shows_challengers_beside_champions_with_lineage(tmp_path: Path,
                                                                      strategies_on_path: None) -> None:
    from typer.testing import CliRunner

    from console.cli import _register_all, app

    if not (app.registered_commands or app.registered_groups):  # once per process
        _register_all()

    settings = _settings(tmp_path, {"gap": 2})
    store = open_store(settings.store_url())
    end = now_ms()
    _store_rising_bars(store, end)
    sync_instances(store, settings)
    decision = reoptimize_instance(store, settings, "champ", "sim", end)
    store.dispose()
    out = CliRunner().invoke(app, ["--state", str(tmp_path / "state.db"), "strategy", "list"])
    assert out.exit_code == 0, out.output
    lines = {line.split()[0]: line for line in out.output.splitlines() if line.startswith("  champ")}
    assert lines["champ"].rstrip().endswith("champion")
    assert f"challenger of champ from walk-forward run #{decision.run_id}" in lines[decision.challenger_id]


TPE_RUN_END_MS = 1_796_400_000_000  # 2026-12-05 ~13:20 UTC, an end at which the seeded search runs all 12 trials


def test_the_job_can_search_with_tpe_and_choose_by_plateau(tmp_path: Path, strategies_on_path: None) -> None:
    """`reopt.search = "tpe"`: the walk-forward behind the decision is an optuna run (its studies stored beside
    state.db, every optuna trial a registry trial), it has a PBO for the gate, and the challenger is what the last
    window chose under `reopt.selection`."""
    settings = _settings(tmp_path, {"gap": 2}, search="tpe", selection="plateau")
    store = open_store(settings.store_url())
    # a fixed end, not now: the bars' times feed the seeded TPE's suggestions, and at some wall-clock times its first
    # window kept proposing configurations it had evaluated (told as FAIL, not trials) until the search stopped at 11
    end = TPE_RUN_END_MS
    _store_rising_bars(store, end)
    sync_instances(store, settings)
    decision = reoptimize_instance(store, settings, "champ", "sim", end)
    params, n_registry, n_optuna = _run_and_optuna_trials(store, decision.run_id)
    assert params["search"] == "tpe" and params["selection"] == "plateau" and len(params["studies"]) == 2
    assert n_optuna == 12 == n_registry
    assert np.isfinite(decision.pbo)
    assert decision.challenger_id is not None
    assert get_instance(store, decision.challenger_id).params["gap"] == params["best"][-1]["gap"]
    store.dispose()
