"""What the engine-process tests run: test strategies copied into a folder's ./user_strategies (where discovery finds
them as it finds a user's strategy: the engine runs with that folder as its working directory), and a calm market."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.strategy.registry import DEFAULT_USER_DIR

FOLDER = Path(__file__).resolve().parent / "strategies"
# For tests about engines, halts, kills and exchange mechanics, not triggers: the simulated book's depth, spread and
# VPIN wander with the market hour the simulator or twin starts at, and a dip moving the desk to REDUCING would stop it
# adding exposure and starve the tests' waits for orders; these thresholds are beyond the simulated market's reach.
CALM_MARKET_TRIGGERS = """[triggers]
depth_collapse_reduce = 0.02
depth_collapse_halt = 0.01
spread_bps_reduce = 5000.0
spread_bps_halt = 9000.0
vpin_cdf_reduce = 1.0
vpin_cdf_halt = 1.0
"""


def install(folder: Path, *names: str) -> Path:
    """Copy the named test strategies (module names in tests/support/strategies, e.g. "rhythms") into folder/user_strategies."""
    target = folder / DEFAULT_USER_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(FOLDER / f"{name}.py", target / f"{name}.py")
    return target
