"""The README stays true: its key table is the console's real bindings, and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()


def test_readme_key_table_matches_the_bindings() -> None:
    from console.keymap import bindings_markdown

    for line in bindings_markdown().splitlines():
        if line.startswith("| `"):
            assert line in README, f"README key table is out of date: {line}"


def test_every_readme_command_group_exists() -> None:
    from console.cli import _register_all, app

    _register_all()
    runner = CliRunner()
    block = README[README.index("## Commands"):README.index("## Configuration")]
    groups = sorted({m.group(1) for m in re.finditer(r"^quantdesk (\w+)", block, re.M)})
    assert {"engine", "halt", "data", "backtest", "optimize", "model", "strategy", "alerts", "status"} <= set(groups)
    for group in groups:
        out = runner.invoke(app, [group, "--help"])
        assert out.exit_code == 0, f"quantdesk {group} --help failed: {out.output}"
