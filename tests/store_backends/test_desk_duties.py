"""Backups and retention run once per desk, not once per engine, on each store backend: two engines' job handlers
(main and beta, sharing one store) each run the desk's retention sweep and backup on their own schedule; one of them
does the work per interval, the other's run says it was skipped; when the first engine is gone the other takes over.
Before, every engine's scheduler ran both, so a desk with N engines copied its database N times per interval."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from engine.config import Settings, settings_with
from engine.config_rules import state_target
from engine.runtime.job_handlers import JobHandlers
from engine.store import open_store
from engine.store.duties import claim_duty

HOUR_MS = 3_600_000


def test_one_claim_per_interval_whichever_engine_comes_first(backend_url: str) -> None:
    store = open_store(backend_url)
    try:
        t = 1_800_000_000_000
        assert claim_duty(store, "retention", "main", HOUR_MS, t)
        assert not claim_duty(store, "retention", "beta", HOUR_MS, t + HOUR_MS // 3)  # main ran it 20 min ago
        assert not claim_duty(store, "retention", "main", HOUR_MS, t + HOUR_MS // 3)
        assert claim_duty(store, "backup", "beta", HOUR_MS, t + HOUR_MS // 3)  # duties are claimed one by one
        assert claim_duty(store, "retention", "main", HOUR_MS, t + HOUR_MS)
        assert not claim_duty(store, "retention", "beta", HOUR_MS, t + HOUR_MS + HOUR_MS // 3)
        # main stopped: beta's next scheduled run finds the duty due and takes it over
        assert claim_duty(store, "retention", "beta", HOUR_MS, t + 2 * HOUR_MS + HOUR_MS // 3)
    finally:
        store.dispose()


def _engines(store, settings: Settings) -> list[SimpleNamespace]:  # noqa: ANN001
    """What the job handlers of engines main and beta use: the shared store, the settings and each one's name."""
    out = []
    for name in ("main", "beta"):
        eng = SimpleNamespace(store=store, settings=settings, name=name)
        eng._desk_duty = lambda duty, hours, e=eng: JobHandlers._desk_duty(e, duty, hours)
        out.append(eng)
    return out


def test_two_engines_run_the_retention_sweep_and_the_backup_once(backend_url: str, tmp_path: Path) -> None:
    store = open_store(backend_url)
    settings = settings_with(Settings(), store={**state_target(backend_url), "backup_dir": str(tmp_path / "b")})
    try:
        swept = [JobHandlers._retention(e) for e in _engines(store, settings)]
        assert "skipped" not in swept[0] and swept[1] == {"skipped": "another engine of the desk ran it"}
        if store.is_sqlite:  # a PostgreSQL desk is backed up with pg_dump, not by the engine
            made = [JobHandlers._backup(e) for e in _engines(store, settings)]
            assert "backup" in made[0] and made[1] == {"skipped": "another engine of the desk ran it"}
            assert len(list((tmp_path / "b").glob("state-*.db"))) == 1
    finally:
        store.dispose()
