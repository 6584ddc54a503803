"""Shared fixtures. `report(title, values)` prints measured values in the test run's summary, even under xdist."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import pytest

_REPORT_ENV = "QUANTDESK_TEST_REPORT_DIR"


def pytest_addoption(parser: pytest.Parser) -> None:
    """--store-backend: which stores the backend-parametrised tests run on (both by default)."""
    parser.addoption("--store-backend", action="append", choices=("sqlite", "postgresql"), default=None,
                     help="run store/runtime backend tests on this backend (repeatable; default: both)")


def pytest_configure(config: pytest.Config) -> None:
    """Create one report directory per run (inherited by xdist workers through the environment)."""
    if _REPORT_ENV not in os.environ:
        os.environ[_REPORT_ENV] = tempfile.mkdtemp(prefix="quantdesk-report-")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest first: the tests marked slow (real engines, the exchange twin, PostgreSQL, fault runs; 30 s to minutes
    each) start before the short ones, so the workers do not sit idle at the end waiting for one long test that was
    handed out last. Stable: within each group the collection order stays (every xdist worker sorts alike)."""
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, "postgresql" not in item.nodeid))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise `store_backend` (and so `backend_url`, `state_url` and the runtime/fault tests' `store`) over the
    selected store backends (sqlite, postgresql)."""
    if "store_backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--store-backend") or ["sqlite", "postgresql"]
        metafunc.parametrize("store_backend", chosen, indirect=True)


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    """The store backend this test instance runs on: "sqlite" or "postgresql" (parametrised above)."""
    return str(request.param)


@pytest.fixture(scope="session")
def postgres_server():  # noqa: ANN201 - tests.support.postgres.PostgresServer
    """One throwaway PostgreSQL server per test process (xdist worker), on 127.0.0.1; skipped where the server is
    not installed, except in CI (CI=true), where a missing server fails: `.ci/run` installs it."""
    from tests.support.postgres import PostgresUnavailable, start_server

    try:
        server = start_server()
    except PostgresUnavailable as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def backend_url(request: pytest.FixtureRequest, store_backend: str, tmp_path: Path):  # noqa: ANN201 - Iterator[str]
    """A fresh, empty store URL on the parametrised backend: a temp SQLite file or a new PostgreSQL database."""
    if store_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url = server.fresh_database()
    yield url
    server.drop(url)


@pytest.fixture
def state_url(request: pytest.FixtureRequest, store_backend: str, tmp_path: Path):  # noqa: ANN201 - Iterator[str]
    """The store target (`--state`, open_store) on the parametrised backend, as a user would write it: the path of a
    not-yet-created state.db in the test's folder, or a new PostgreSQL database already holding the migrated schema
    (cloned from a template). The database is dropped afterwards, ending connections the test left open."""
    if store_backend == "sqlite":
        yield str(tmp_path / "state.db")
        return
    server = request.getfixturevalue("postgres_server")
    url = server.migrated_database()
    yield url
    server.drop(url)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print every value a test reported, grouped by title."""
    if hasattr(config, "workerinput"):
        return
    folder = Path(os.environ.get(_REPORT_ENV, ""))
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        return
    terminalreporter.section("quantdesk measured values")
    for path in files:
        entry = json.loads(path.read_text())
        terminalreporter.write_line(f"{entry['title']}  ({entry['test']})")
        for key, value in entry["values"].items():
            shown = f"{value:.6g}" if isinstance(value, float) else str(value)
            terminalreporter.write_line(f"    {key}: {shown}")


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str, Mapping[str, Any]], None]:
    """Record values (e.g. stylised facts, precision before/after) to print in the run summary."""
    counter = {"n": 0}

    def _report(title: str, values: Mapping[str, Any]) -> None:
        counter["n"] += 1
        folder = Path(os.environ[_REPORT_ENV])
        safe = request.node.nodeid.replace("/", "_").replace(":", "_").replace("[", "_").replace("]", "_")
        (folder / f"{safe}-{counter['n']}.json").write_text(
            json.dumps({"title": title, "test": request.node.nodeid, "values": dict(values)}, default=str))
        print(title, dict(values))

    return _report


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    """A fresh state.db path in the test's temp directory."""
    return tmp_path / "state.db"


@pytest.fixture
def store(state_path: Path):  # noqa: ANN201 - engine.store.Store
    """A migrated, writable state store on a temp file."""
    from engine.store import open_store

    st = open_store(state_path)
    yield st
    st.dispose()
