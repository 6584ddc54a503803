"""The walk-forward evaluation as text (`quantdesk model evaluate`) and as a tearsheet section (HTML)."""

from __future__ import annotations

import html
import math
from typing import Any

WINDOW_COLS = (("start", "start"), ("events", "events"), ("pos", "positive_share"), ("AUC", "auc"),
               ("Brier", "brier"), ("skill", "brier_skill"), ("prec", "precision"), ("recall", "recall"),
               ("model", "model"))
VARIANT_COLS = (("Sharpe", "sharpe"), ("return", "total_return"), ("max DD", "max_drawdown"),
                ("turnover", "turnover"), ("trades", "trades"), ("cost", "cost"))


def _f(value: Any, key: str = "") -> str:
    if isinstance(value, str):
        return value[:10] if key == "start" else value
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, int) or key in ("events", "trades"):
        return f"{int(value)}"
    if key in ("total_return", "max_drawdown", "positive_share"):
        return f"{value:+.1%}" if key != "positive_share" else f"{value:.1%}"
    if key in ("cost",):
        return f"{value:,.0f}"
    return f"{value:+.3f}" if key == "brier_skill" else f"{value:.3f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def evaluation_text(ev: Any) -> str:
    """A plain-text report: windows, overall scores, calibration, variants through the backtester, CIs, verdict."""
    meta = ev.meta
    out = [f"walk-forward evaluation: {meta.get('strategy', '')} on {', '.join(meta.get('symbols', []))} "
           f"{meta.get('timeframe', '')}, retrain every {meta.get('retrain_every_days', 0):g} days "
           f"({'anchored' if meta.get('anchored', True) else 'rolling'}), selection embargo {ev.embargo_bars} bars"]
    if not ev.windows:
        return "\n".join(out + [f"verdict: {ev.verdict}"])
    out += ["", "windows (out of sample):"]
    out += _table([h for h, _ in WINDOW_COLS], [[_f(w.get(k), k) for _, k in WINDOW_COLS] for w in ev.windows])
    o = ev.overall
    out += ["", f"overall: {o['events']} events, positive share {_f(o['positive_share'], 'positive_share')}, "
                f"AUC {_f(o['auc'])}, Brier {_f(o['brier'])} vs base rate {_f(o['brier_base_rate'])} "
                f"-> Brier skill {_f(o['brier_skill'], 'brier_skill')}; precision {_f(o['precision'])} / recall "
                f"{_f(o['recall'])} at p > base rate"]
    out += ["", "calibration (predicted vs observed):"]
    out += _table(["p bin", "n", "mean p", "observed"],
                  [[f"{r['lo']:.1f}-{r['hi']:.1f}", str(r["n"]), f"{r['mean_p']:.3f}", f"{r['observed']:.3f}"]
                   for r in ev.calibration])
    out += ["", "through the backtester (costs included):"]
    rows = []
    for name, m in ev.variants.items():
        ci = ev.sharpe_diff_ci.get(name)
        rows.append([name, *[_f(m.get(k), k) for _, k in VARIANT_COLS], _f(ev.dsr.get(name)),
                     "-" if ci is None else f"[{_f(ci[0])}, {_f(ci[1])}]"])
    out += _table(["variant", *[h for h, _ in VARIANT_COLS], "DSR", f"dSharpe {meta.get('ci_level', 0.9):.0%} CI"],
                  rows)
    sc = ev.variants.get("overlay_scaled", {})
    if "turnover_no_band" in sc:
        out += [f"scaled overlay without the rebalance band: turnover {_f(sc['turnover_no_band'])}, cost "
                f"{_f(sc['cost_no_band'], 'cost')}, Sharpe {_f(sc['sharpe_no_band'])}"]
    out += [f"primary out-of-sample hit rate {_f(ev.primary_hit_rate)}, payoff {_f(ev.primary_payoff)}",
            "", f"verdict: {ev.verdict}"]
    return "\n".join(out)


def evaluation_html(ev: Any) -> str:
    """The same report as a tearsheet section (a <pre> block keeps the tables aligned)."""
    return f"<section><h2>Meta-model walk-forward evidence</h2><pre>{html.escape(evaluation_text(ev))}</pre></section>"


def evaluation_page(ev: Any) -> str:
    """A self-contained HTML tearsheet page holding the evaluation section (no scripts, no external resources)."""
    title = html.escape(f"Meta-model evidence: {ev.meta.get('strategy', '')}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>body{{font-family:"
            f"sans-serif;margin:2em}} pre{{font-size:12px}}</style></head><body><h1>{title}</h1>"
            f"{evaluation_html(ev)}</body></html>")
