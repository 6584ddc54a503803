"""The authoring kit as a new user meets it: `strategy new` writes a runnable module and its test in
./user_strategies, `strategy check` passes it and fails a peeking strategy, `backtest` runs it, and `strategy list`
shows a module with a syntax error or an import-time error with its file and line (not `unknown strategy`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SUPPORT = Path(__file__).resolve().parents[1] / "support" / "strategies"


def _q(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-c", "from console.cli import main; main()", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=240, env={**os.environ, **(env or {})})


def test_new_check_backtest_and_its_own_test_pass(tmp_path: Path) -> None:
    made = _q(tmp_path, "strategy", "new", "mystrat")
    assert made.returncode == 0, made.stderr
    module = tmp_path / "user_strategies" / "mystrat.py"
    assert module.exists() and (tmp_path / "user_strategies" / "tests" / "test_mystrat.py").exists()
    checked = _q(tmp_path, "strategy", "check", "mystrat")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "FAIL" not in checked.stdout and "no lookahead" in checked.stdout
    own = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "user_strategies/tests"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert own.returncode == 0, own.stdout[-2000:]
    bt = _q(tmp_path, "--state", str(tmp_path / "state.db"), "backtest", "mystrat", "--since", "30d", "--json")
    assert bt.returncode == 0, bt.stdout[-1500:] + bt.stderr[-1500:]
    again = _q(tmp_path, "strategy", "new", "mystrat")
    assert again.returncode == 2 and "taken" in again.stderr
    bad = _q(tmp_path, "strategy", "new", "My-Strat")
    assert bad.returncode == 2 and "lowercase" in bad.stderr


def test_list_shows_broken_modules_with_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "typo.py").write_text("import numpy\n\nx = (1 +\n")
    (folder / "boom.py").write_text("from engine.strategy.base import Strategy\n\n\nraise RuntimeError('boom')\n")
    out = _q(tmp_path, "strategy", "list", "--no-instances")
    assert out.returncode == 0, out.stderr
    assert "macro_trend" in out.stdout and "quantum_momentum" in out.stdout
    assert f"{folder / 'typo.py'}:3: SyntaxError" in out.stdout
    assert f"{folder / 'boom.py'}:4: RuntimeError: boom" in out.stdout
    check = _q(tmp_path, "strategy", "check", "boom")
    assert check.returncode == 2 and "failed to import" in check.stderr and "boom.py:4" in check.stderr


def test_check_fails_a_strategy_that_peeks(tmp_path: Path) -> None:
    out = _q(tmp_path, "strategy", "check", "peeking_oracle", env={"QUANTDESK_STRATEGY_PATH": str(SUPPORT)})
    assert out.returncode == 1
    assert "FAIL  no lookahead" in out.stdout and "PASS  shape" in out.stdout


def test_a_new_users_strategy_optimises_on_the_default_parallel_backend(tmp_path: Path) -> None:
    """`quantdesk optimize` of a strategy in ./user_strategies, on the default loky backend: its module is loaded from
    a file under a name no worker process can import, so the workers failed to unpickle the class and the command
    ended in a BrokenProcessPool traceback (TPE and random alike). The module now travels by value."""
    assert _q(tmp_path, "strategy", "new", "mystrat").returncode == 0
    for search in ("tpe", "random"):
        out = _q(tmp_path, "--state", str(tmp_path / "state.db"), "optimize", "mystrat", "--since", "30d",
                 "--windows", "2", "--trials", "4", "--jobs", "2", "--search", search)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stdout[-1500:] + out.stderr[-1500:]
        assert f"walk-forward mystrat ({search}, loky" in out.stdout and "tearsheet:" in out.stdout
