"""The champion/challenger promotion gate: a challenger replaces the champion only on out-of-sample evidence of value.

Both models are graded on the SAME out-of-sample events (the challenger's test rows, which the champion never
trained on): ROC AUC, the Brier score (a proper scoring rule: lower is better) and the Sharpe ratio of the default
(scaled) overlay over those events. The challenger must be at least as good on both the overlay Sharpe and the Brier
score, and better than the champion by a margin on at least one of them. AUC alone never promotes: it only ranks,
and an AUC tie said nothing about value (a challenger with an equal AUC and a lower overlay Sharpe was promoted).
Every number goes into the gate's audit entry and result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

SHARPE_MARGIN = 0.10  # annualised overlay Sharpe a challenger must add (when the Brier score decides nothing)
BRIER_MARGIN = 0.0005  # Brier score a challenger must shave off (when the Sharpe decides nothing)


@dataclass(frozen=True)
class GateDecision:
    """Promote or not, why, and the numbers both models scored on the same events."""

    promote: bool
    reason: str
    challenger: dict
    champion: dict | None
    basis: str
    margins: dict = field(default_factory=lambda: {"overlay_sharpe": SHARPE_MARGIN, "brier": BRIER_MARGIN})

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the audit log and the train result."""
        return {"promote": self.promote, "reason": self.reason, "challenger": self.challenger,
                "champion": self.champion, "basis": self.basis, "margins": self.margins}


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def decide(challenger: Mapping[str, float], champion: Mapping[str, float] | None, basis: str,
           sharpe_margin: float = SHARPE_MARGIN, brier_margin: float = BRIER_MARGIN) -> GateDecision:
    """The gate on {roc_auc, brier, overlay_sharpe} of both models graded on the same out-of-sample events."""
    ch = dict(challenger)
    margins = {"overlay_sharpe": sharpe_margin, "brier": brier_margin}
    if champion is None:
        return GateDecision(True, f"no comparable champion ({basis})", ch, None, basis, margins)
    cp = dict(champion)
    missing = [k for k in ("overlay_sharpe", "brier") if not (_finite(ch.get(k)) and _finite(cp.get(k)))]
    if missing:
        return GateDecision(False, f"no out-of-sample evidence of value: {', '.join(missing)} not measured on both "
                                   "models", ch, cp, basis, margins)
    d_sharpe = ch["overlay_sharpe"] - cp["overlay_sharpe"]
    d_brier = cp["brier"] - ch["brier"]  # > 0: the challenger's Brier is lower (better)
    nums = (f"overlay Sharpe {ch['overlay_sharpe']:.3f} vs {cp['overlay_sharpe']:.3f}, Brier {ch['brier']:.5f} vs "
            f"{cp['brier']:.5f}, AUC {ch.get('roc_auc', float('nan')):.4f} vs {cp.get('roc_auc', float('nan')):.4f}")
    if d_sharpe < 0 or d_brier < 0:
        worse = "overlay Sharpe" if d_sharpe < 0 else "Brier score"
        return GateDecision(False, f"challenger's {worse} is worse than the champion's ({nums})", ch, cp, basis,
                            margins)
    if d_sharpe >= sharpe_margin or d_brier >= brier_margin:
        return GateDecision(True, f"challenger better out of sample ({nums})", ch, cp, basis, margins)
    return GateDecision(False, f"challenger not better by a margin (overlay Sharpe +{sharpe_margin} or Brier "
                               f"-{brier_margin}): {nums}", ch, cp, basis, margins)


def scores_on(prob: np.ndarray, ds: Any, rows: np.ndarray, panel: Mapping[str, Any] | None,
              oos: Mapping[str, float], periods_per_year: float) -> dict[str, float]:
    """{roc_auc, brier, overlay_sharpe} of probabilities for the dataset rows, with the challenger's overlay rule."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    from engine.ml.meta_model import overlay_positions, overlay_sizes, simple_sharpe

    y = ds.y[rows]
    out = {"roc_auc": float(roc_auc_score(y, prob)) if len(np.unique(y)) > 1 else float("nan"),
           "brier": float(brier_score_loss(y, prob)), "overlay_sharpe": float("nan")}
    if panel:
        ev = ds.events.iloc[rows]
        symbols = sorted(panel)
        index = panel[symbols[0]].index
        index = index[(index >= ev.index.min()) & (index <= ev.index.max())]
        size = overlay_sizes(prob, "scaled", float(oos["train_base_rate"]), ds.spec.payoff_ratio,
                             float(oos["decision_threshold"]))
        _primary, overlay = overlay_positions(ds, rows, prob, index, symbols, size)
        out["overlay_sharpe"] = float(simple_sharpe(overlay, panel, periods_per_year))
    return out


def promotion_gate(registry: Any, strategy: str, ds: Any, report: Any, panel: Mapping[str, Any] | None,
                   periods_per_year: float) -> GateDecision:
    """Grade the champion on the challenger's out-of-sample events and decide (see the module docstring)."""
    from engine.ml.registry import ModelIntegrityError

    rows = report.test_rows
    challenger = {"roc_auc": float(report.oos.get("roc_auc", float("nan"))),
                  "brier": float(report.oos.get("brier", float("nan"))),
                  "overlay_sharpe": float(report.oos.get("sharpe_overlay", float("nan")))}
    if registry.champion_record(strategy) is None:
        return decide(challenger, None, "no champion")
    try:
        champ = registry.champion(strategy)
    except ModelIntegrityError as exc:
        return decide(challenger, None, f"champion unusable: {exc}")
    if champ is None:
        return decide(challenger, None, "no champion")
    test_start = int(ds.X.index[rows].as_unit("ms").asi8.min()) if len(rows) else None
    if champ.features == ds.features and test_start is not None and champ.record.train_end < test_start:
        champion = scores_on(champ.predict_proba(ds.X.iloc[rows]), ds, rows, panel, report.oos, periods_per_year)
        return decide(challenger, champion, f"v{champ.version} and the challenger on the challenger's {len(rows)} "
                                            "out-of-sample events")
    # the champion trained on these events (a rolling retrain refits on its whole window) or reads other features:
    # compare with the out-of-sample numbers recorded when it was trained
    recorded = dict((champ.record.cv_scores or {}).get("oos") or {})
    champion = {"roc_auc": float(recorded.get("roc_auc", champ.record.oos_score if champ.record.oos_score is not None
                                              else float("nan"))),
                "brier": float(recorded.get("brier", float("nan"))),
                "overlay_sharpe": float(recorded.get("sharpe_overlay", float("nan")))}
    return decide(challenger, champion, f"v{champ.version} recorded out-of-sample scores (its own test events)")
