"""`quantdesk model train` on a stored range in the past and `model evaluate --json` on imported CSV history."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.cli import cli_in


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Invoke `quantdesk --state <tmp>/state.db ...` from an empty working directory."""
    return cli_in(tmp_path, monkeypatch)


def _csv(folder: Path, days: int = 110) -> Path:
    """Hourly BTC/USD bars from 2017-01-01 (a range `now - --days` cannot reach)."""
    rng = np.random.default_rng(5)
    n = days * 24
    close = 1000 * np.exp(np.cumsum(rng.normal(0.0001, 0.006, n)))
    opens = np.r_[1000.0, close[:-1]]
    ts = pd.date_range("2017-01-01", periods=n, freq="h", tz="UTC").as_unit("ms").asi8
    frame = pd.DataFrame({"timestamp": ts, "open": opens, "high": np.maximum(opens, close) * 1.002,
                          "low": np.minimum(opens, close) * 0.998, "close": close, "volume": rng.uniform(5, 50, n)})
    path = folder / "testx_BTCUSD_1h_20170101-20170420.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.slow  # two trainings and a walk-forward evaluation: ~30 s alone, 2 min on a busy 2-core machine
def test_train_and_evaluate_on_an_imported_past_range(run, tmp_path: Path) -> None:  # noqa: ANN001
    src = f"csv:{_csv(tmp_path)}"
    pulled = run("data", "pull", "--source", src, "--symbols", "BTC/USD", "--timeframe", "1h", "--since",
                 "2017-01-01", "--until", "2017-04-21")
    assert pulled.exit_code == 0, pulled.output
    trained = run("model", "train", "quantum_momentum", "--source", src, "--symbols", "BTC/USD", "--since",
                  "2017-01-01", "--until", "2017-04-20", "--no-gate")
    assert trained.exit_code == 0, trained.output
    assert "model quantum_momentum v1" in trained.output
    assert "by past-only walk-forward CV" in trained.output and "embargo 35 days" in trained.output
    ev = run("model", "evaluate", "quantum_momentum", "--source", src, "--symbols", "BTC/USD", "--since",
             "2017-01-01", "--until", "2017-04-20", "--retrain-every", "20d", "--bootstrap", "50", "--json",
             "--report", str(tmp_path / "evidence.html"))
    assert ev.exit_code == 0, ev.output
    js = json.loads(ev.output.strip().splitlines()[-1])
    assert {"windows", "brier_skill", "sharpe", "sharpe_diff_ci", "verdict"} <= set(js)
    assert len(js["windows"]) >= 2 and set(js["sharpe"]) == {"primary", "overlay_scaled", "overlay_gated"}
    for lo_hi in js["sharpe_diff_ci"].values():
        assert lo_hi[0] <= lo_hi[1]
    page = (tmp_path / "evidence.html").read_text()
    assert "Meta-model walk-forward evidence" in page and "verdict:" in page and "<script" not in page
    status = run("status")
    assert "ml overlay    : quantum_momentum: overlay " in status.output
    assert "macro_trend: overlay off: no walk-forward evidence" in status.output
    bad = run("model", "evaluate", "quantum_momentum", "--source", src, "--symbols", "BTC/USD", "--since",
              "2015-01-01", "--until", "2015-03-01")
    assert bad.exit_code == 2 and "no stored 1h bars" in bad.output and "Traceback" not in bad.output
