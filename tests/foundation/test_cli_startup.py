"""The everyday CLI commands start without the heavy research libraries: `quantdesk status`, `halt` and `model list`
are what an operator types during an incident, so they load neither numpy, pandas, scipy, sklearn, numba nor ccxt
(each one costs from a tenth of a second to seconds to import, and tests spawn these commands hundreds of times)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
HEAVY = ("numpy", "pandas", "scipy", "sklearn", "numba", "ccxt", "textual", "apprise")

# Runs one command in a fresh interpreter through the console script's entry point, then lists what it loaded.
_PROBE = """
import sys
from console.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("EXIT", code)
print("LOADED", ",".join(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[0].split(',')))))
"""


def _loaded(tmp_path: Path, *args: str) -> tuple[str, str]:
    out = subprocess.run([sys.executable, "-c", _PROBE.replace("sys.argv[0]", repr(",".join(HEAVY))),
                          "--state", str(tmp_path / "state.db"), *args],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)})
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if line.startswith(("EXIT", "LOADED")))
    assert "EXIT" in lines, out.stdout + out.stderr
    return lines["EXIT"], lines.get("LOADED", "").strip()


@pytest.fixture
def desk(tmp_path: Path) -> Path:
    subprocess.run([sys.executable, "-c", "from console.cli import main; main()", "--state",
                    str(tmp_path / "state.db"), "init"], check=True, capture_output=True, cwd=tmp_path,
                   env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)})
    return tmp_path


@pytest.mark.parametrize("args", [("status",), ("halt", "--reason", "startup probe"), ("model", "list")],
                         ids=["status", "halt", "model-list"])
def test_incident_commands_load_no_heavy_library(desk: Path, args: tuple[str, ...]) -> None:
    code, loaded = _loaded(desk, *args)
    assert code in ("0", "None"), f"quantdesk {' '.join(args)} exited {code}"
    assert loaded == "", f"quantdesk {' '.join(args)} imported {loaded}"
