"""A strategy's latest walk-forward evidence, stored in the audit log, and the overlay on/off rule built on it.

`model evaluate` (and anything else that runs `evaluate_walk_forward`) records an `OverlayEvidence` as an audit row
(action `model.evidence`), so the record is durable, timestamped and visible to every front end. Live and paper
sizing use the meta-model overlay for a strategy only while `overlay_decision` says its latest evidence shows value:
Brier skill > 0 out of sample and the lower bound of the overlay's Sharpe-difference interval above
`ml.overlay_sharpe_floor`. Otherwise sizing uses the primary signal with Kelly from the strategy's own out-of-sample
hit rate and payoff, and the reason reads like "overlay off: Brier skill -0.010 over 6 windows". The champion /
challenger gate can use the same object (`shows_value`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from engine.store.db import Store
from engine.store.ops import audit
from engine.store.schema import audit_log

EVIDENCE_ACTION = "model.evidence"
SCAN_ROWS = 5000  # newest evidence rows searched for a strategy


@dataclass(frozen=True)
class OverlayEvidence:
    """What one walk-forward evaluation showed about a strategy's overlay."""

    strategy: str
    created_ms: int
    n_windows: int
    n_events: int
    brier_skill: float
    auc: float
    sharpe: dict[str, float]
    sharpe_diff_ci: dict[str, list[float]]
    primary_hit_rate: float
    primary_payoff: float
    verdict: str
    timeframe: str = ""
    symbols: tuple[str, ...] = ()
    span: tuple[str, str] = ("", "")
    extra: dict[str, Any] = field(default_factory=dict)

    def best_overlay(self) -> tuple[str, float]:
        """The overlay variant with the highest CI lower bound, and that bound."""
        finite = {k: v[0] for k, v in self.sharpe_diff_ci.items() if v and _finite(v[0])}
        if not finite:
            return "", float("nan")
        name = max(finite, key=lambda k: finite[k])
        return name, float(finite[name])

    def shows_value(self, sharpe_floor: float = 0.0) -> tuple[bool, str]:
        """(overlay earns its place, why) - Brier skill > 0 and a Sharpe-difference CI lower bound above the floor."""
        if self.n_windows < 1:
            return False, "overlay off: no walk-forward window could be graded"
        skill = f"Brier skill {self.brier_skill:+.3f} over {self.n_windows} windows"
        if not (_finite(self.brier_skill) and self.brier_skill > 0):
            return False, f"overlay off: {skill}"
        name, lo = self.best_overlay()
        if not name or not lo > sharpe_floor:
            return False, (f"overlay off: {skill}, but the Sharpe-difference CI lower bound {lo:+.2f} is not above "
                           f"{sharpe_floor:g}")
        return True, f"overlay on: {skill}, {name} Sharpe-difference CI lower bound {lo:+.2f} > {sharpe_floor:g}"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def evidence_from(evaluation: Any, strategy: str, timeframe: str = "") -> OverlayEvidence:
    """The stored summary of an `engine.ml.evaluate.Evaluation`."""
    w = evaluation.windows
    span = (w[0]["start"], w[-1]["end"]) if w else ("", "")
    return OverlayEvidence(
        strategy=strategy, created_ms=int(time.time() * 1000), n_windows=len(w),
        n_events=int(evaluation.overall.get("events", 0)), brier_skill=float(evaluation.brier_skill),
        auc=float(evaluation.overall.get("auc", float("nan"))),
        sharpe={k: float(v.get("sharpe", float("nan"))) for k, v in evaluation.variants.items()},
        sharpe_diff_ci={k: [float(x) for x in v] for k, v in evaluation.sharpe_diff_ci.items()},
        primary_hit_rate=float(evaluation.primary_hit_rate), primary_payoff=float(evaluation.primary_payoff),
        verdict=evaluation.verdict, timeframe=timeframe, symbols=tuple(evaluation.meta.get("symbols", ())),
        span=span)


def _clean(obj: Any) -> Any:
    """NaN/inf as None so the audit row is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def record_evidence(store: Store, evidence: OverlayEvidence, source: str = "cli", user: str | None = None) -> int:
    """Append the evidence to the audit log; returns the row id."""
    return audit(store, source, EVIDENCE_ACTION, _clean(asdict(evidence)), user=user)


def _nan(x: Any) -> float:
    return float("nan") if x is None else float(x)


def latest_evidence(store: Store, strategy: str) -> OverlayEvidence | None:
    """The newest recorded evidence for `strategy`, or None."""
    stmt = (select(audit_log.c.details).where(audit_log.c.action == EVIDENCE_ACTION)
            .order_by(audit_log.c.id.desc()).limit(SCAN_ROWS))
    with store.connect() as conn:
        for (details,) in conn.execute(stmt):
            d = json.loads(details or "{}")
            if d.get("strategy") != strategy:
                continue
            return OverlayEvidence(
                strategy=strategy, created_ms=int(d.get("created_ms") or 0), n_windows=int(d.get("n_windows") or 0),
                n_events=int(d.get("n_events") or 0), brier_skill=_nan(d.get("brier_skill")),
                auc=_nan(d.get("auc")), sharpe={k: _nan(v) for k, v in (d.get("sharpe") or {}).items()},
                sharpe_diff_ci={k: [_nan(x) for x in v] for k, v in (d.get("sharpe_diff_ci") or {}).items()},
                primary_hit_rate=_nan(d.get("primary_hit_rate")), primary_payoff=_nan(d.get("primary_payoff")),
                verdict=str(d.get("verdict", "")), timeframe=str(d.get("timeframe", "")),
                symbols=tuple(d.get("symbols") or ()), span=tuple(d.get("span") or ("", "")),  # type: ignore[arg-type]
                extra=dict(d.get("extra") or {}))
    return None


@dataclass(frozen=True)
class OverlayDecision:
    """Whether sizing uses the overlay for a strategy, why, and the primary's own Kelly inputs when it does not."""

    on: bool
    reason: str
    hit_rate: float | None = None
    payoff: float | None = None


def overlay_decision(evidence: OverlayEvidence | None, sharpe_floor: float = 0.0,
                     require_evidence: bool = True) -> OverlayDecision:
    """Overlay on only while the latest walk-forward evidence shows value; otherwise the primary's own Kelly."""
    if evidence is None:
        if not require_evidence:
            return OverlayDecision(True, "overlay on: ml.overlay_requires_evidence is false (no evidence recorded)")
        return OverlayDecision(False, "overlay off: no walk-forward evidence (run `quantdesk model evaluate`)")
    on, reason = evidence.shows_value(sharpe_floor)
    hit, payoff = evidence.primary_hit_rate, evidence.primary_payoff
    ok = _finite(hit) and _finite(payoff) and payoff > 0 and 0 <= hit <= 1
    return OverlayDecision(on, reason, hit if ok else None, payoff if ok else None)


def overlay_status(store: Store, strategies: Any, sharpe_floor: float = 0.0,
                   require_evidence: bool = True) -> dict[str, str]:
    """strategy -> "overlay on/off: why" for each distinct strategy of the configured instances (for `status`)."""
    names = sorted({getattr(inst, "strategy", "") or inst_id for inst_id, inst in dict(strategies).items()})
    return {name: overlay_decision(latest_evidence(store, name), sharpe_floor, require_evidence).reason
            for name in names}
