"""Test strategies for engine processes: copied into a folder's ./user_strategies, where discovery finds them as it
finds a user's strategy (the engine runs with that folder as its working directory)."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.strategy.registry import DEFAULT_USER_DIR

FOLDER = Path(__file__).resolve().parent / "strategies"


def install(folder: Path, *names: str) -> Path:
    """Copy the named test strategies (module names in tests/support/strategies) into folder/user_strategies."""
    target = folder / DEFAULT_USER_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(FOLDER / f"{name}.py", target / f"{name}.py")
    return target
