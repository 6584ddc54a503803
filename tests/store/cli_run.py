"""Run the real `quantdesk` entry point (console.cli.main) in a subprocess, so exit codes and stderr are the user's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def quantdesk(*args: str, cwd: Path | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """`quantdesk ARGS...` as a child process; returns the completed process (text output)."""
    return subprocess.run([sys.executable, "-c", "from console.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd or REPO, timeout=timeout)
