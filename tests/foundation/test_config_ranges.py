"""Range checks at load (issue 11, finding 4): every bad value class is refused naming `section.key`, the value and
the valid range; the engine and the CLI refuse to start with one line and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import ConfigError, load_settings

REPO = Path(__file__).parents[2]


@pytest.mark.parametrize("body, key, shown", [
    ("[risk]\nkelly_fraction = -0.25\n", "risk.kelly_fraction", "-0.25"),
    ("[risk]\nkelly_fraction = nan\n", "risk.kelly_fraction", "nan"),
    ("[strategies.qm]\nstrategy = \"quantum_momentum\"\ncapital = -50000\n", "strategies.qm.capital", "-50000"),
    ("[data]\nsymbols = []\n", "data.symbols", "[]"),
    ("[strategies.qm]\nstrategy = \"quantum_momentum\"\nsymbols = []\n", "strategies.qm.symbols", "[]"),
    ("[risk]\nmax_portfolio_leverage = inf\n", "risk.max_portfolio_leverage", "inf"),
    ("[simulator]\nspeed = 0\n", "simulator.speed", "0"),
    ("[simulator]\nspeed = -3\n", "simulator.speed", "-3"),
    ("[strategies.qm]\nstrategy = \"quantum_momentum\"\ntimeframe = \"7x\"\n", "strategies.qm.timeframe", "7x"),
    ("[data]\ntimeframes = [\"1m\", \"7x\"]\n", "data.timeframes", "7x"),
    ("[data]\nsource = \"bogus\"\n", "data.source", "bogus"),
    ("[store]\nurl = \"mysql://x\"\n", "store.url", "mysql://x"),
    ("[runtime]\nheartbeat_interval_s = 10.0\nheartbeat_timeout_s = 5.0\n", "runtime.heartbeat_timeout_s", "5"),
])
def test_out_of_range_values_are_refused(tmp_path: Path, body: str, key: str, shown: str) -> None:
    cfg = tmp_path / "q.toml"
    cfg.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    text = str(err.value)
    assert text.startswith(key), text
    assert shown in text
    assert "must be" in text  # the valid range is named


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    cfg = tmp_path / "q.toml"
    cfg.write_text("[risk]\nkelly_fraction = -1\nmax_portfolio_leverage = inf\n[simulator]\nspeed = 0\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    assert {"risk.kelly_fraction", "risk.max_portfolio_leverage", "simulator.speed"} <= {
        line.split(":")[0] for line in err.value.problems}


def test_every_number_in_every_section_has_a_declared_range() -> None:
    from engine.config import Settings
    from engine.config_rules import undeclared_fields

    assert undeclared_fields(Settings) == []


def test_secret_looking_values_are_not_echoed(tmp_path: Path) -> None:
    from engine.config_rules import Check, check_value

    with pytest.raises(ConfigError) as err:
        load_settings(environ={"QUANTDESK__DATA__FEED_SPECS__API_TOKEN": "[1]"})
    assert "api_token" in str(err.value) and "[1]" not in str(err.value)
    msg = check_value("exchange.api_secret", "hunter2hunter2", Check(choices=("a", "b")))
    assert msg is not None and "hunter2" not in msg and "exchange.api_secret" in msg


def test_unknown_strategy_is_refused_before_the_engine_starts(tmp_path: Path) -> None:
    cfg = tmp_path / "q.toml"
    cfg.write_text("[strategies.x]\nstrategy = \"no_such_strategy\"\n")
    out = subprocess.run([sys.executable, "-m", "engine.runtime.main", "--state", str(tmp_path / "s.db"),
                          "--config", str(cfg)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "strategies.x.strategy" in out.stderr and "no_such_strategy" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize("argv", [["engine"], ["status"], ["halt"]])
def test_front_ends_print_one_line_for_a_range_error(tmp_path: Path, argv: list[str]) -> None:
    cfg = tmp_path / "q.toml"
    cfg.write_text("[risk]\nkelly_fraction = nan\n")
    out = subprocess.run([sys.executable, "-c", "from console.cli import main; main()", "--config", str(cfg),
                          "--state", str(tmp_path / "s.db"), *argv], capture_output=True, text=True, cwd=REPO,
                         timeout=60)
    assert out.returncode == 2
    assert "risk.kelly_fraction" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "s.db").exists()


def test_engine_process_refuses_a_range_error_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "q.toml"
    cfg.write_text("[simulator]\nspeed = 0\n")
    out = subprocess.run([sys.executable, "-m", "engine.runtime.main", "--state", str(tmp_path / "s.db"),
                          "--config", str(cfg)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 2
    assert "simulator.speed" in out.stderr and "Traceback" not in out.stderr
