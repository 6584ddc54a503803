"""Configuration: defaults without a file, TOML + env overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import ConfigError, load_settings


def test_missing_default_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={})
    assert s.execution.mode == "paper"
    assert s.data.source == "sim"
    assert set(s.strategies) == {"quantum_momentum", "macro_trend"}


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_toml_values_are_validated_and_frozen(tmp_path: Path) -> None:
    cfg = tmp_path / "q.toml"
    cfg.write_text('[risk]\nkelly_fraction = 0.5\n[data]\nsymbols = ["BTC/USDT"]\n'
                   '[strategies.qm_fast]\nstrategy = "quantum_momentum"\ncapital = 1000\nparams = {lookback = 30}\n')
    s = load_settings(cfg, environ={})
    assert s.risk.kelly_fraction == 0.5
    assert s.data.symbols == ("BTC/USDT",)
    assert s.strategies["qm_fast"].capital == 1000.0
    assert s.strategies["qm_fast"].params == {"lookback": 30}
    with pytest.raises(AttributeError):
        s.risk.kelly_fraction = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("body, key", [
    ("[risk]\nkely_fraction = 0.5\n", "risk.kely_fraction"),
    ("[risk]\nkelly_fraction = \"half\"\n", "risk.kelly_fraction"),
    ("[nosuch]\nx = 1\n", "nosuch"),
    ("[data]\nsymbols = \"BTC/USDT\"\n", "data.symbols"),
    ("[execution]\nmode = \"yolo\"\n", "execution.mode"),
    ("[strategies.a]\ncapitol = 5\n", "strategies.a.capitol"),
    ("[strategies.a]\nstage = \"prod\"\n", "strategies.a.stage"),
    ("[runtime]\ncommand_poll_ms = 1.5\n", "runtime.command_poll_ms"),
])
def test_bad_config_names_the_key(tmp_path: Path, body: str, key: str) -> None:
    cfg = tmp_path / "q.toml"
    cfg.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    assert str(err.value).startswith(key)


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "q.toml"
    cfg.write_text("[risk\n")
    with pytest.raises(ConfigError, match="q.toml"):
        load_settings(cfg, environ={})


def test_env_overrides_beat_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "q.toml"
    cfg.write_text("[simulator]\nspeed = 2.0\n")
    env = {"QUANTDESK__SIMULATOR__SPEED": "60", "QUANTDESK__DATA__SYMBOLS": '["ETH/USDT"]',
           "QUANTDESK__STORE__PATH": "/tmp/x.db", "QUANTDESK__STRATEGIES__MACRO_TREND__CAPITAL": "123"}
    s = load_settings(cfg, environ=env)
    assert s.simulator.speed == 60.0
    assert s.data.symbols == ("ETH/USDT",)
    assert s.store.path == "/tmp/x.db"
    assert s.strategies["macro_trend"].capital == 123.0


def test_env_override_with_wrong_type_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^risk\.kelly_fraction"):
        load_settings(environ={"QUANTDESK__RISK__KELLY_FRACTION": "abc"})


def test_cli_reports_broken_config(tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = tmp_path / "q.toml"
    cfg.write_text("[risk]\nkely_fraction = 0.5\n")
    out = subprocess.run([sys.executable, "-c", "from console.cli import main; main()", "--config", str(cfg),
                          "--state", str(tmp_path / "s.db"), "status"],
                         capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert out.returncode != 0
    assert "risk.kely_fraction" in out.stderr
