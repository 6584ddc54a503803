"""Self-contained HTML tearsheets (inline SVG, inline CSS, no scripts or external URLs) for backtests and
walk-forward optimisations: equity, drawdown, monthly heatmap, trade distribution, lookahead result, DSR and PBO."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from engine.backtest.metrics import drawdown, monthly_returns
from engine.backtest.svg import heat_color, histogram, line_chart

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:22px;margin-bottom:2px} h2{font-size:16px;margin-top:26px;border-bottom:1px solid #ddd}
.sub{color:#666;font-size:12px} table{border-collapse:collapse;font-size:12px} td,th{padding:3px 8px;text-align:right}
th{background:#f2f2f2} .kv td:first-child{text-align:left;color:#555} .grid{display:flex;gap:24px;flex-wrap:wrap}
.ok{background:#e6f4ea;border-left:4px solid #2a9d4b;padding:8px} .bad{background:#fdecea;border-left:4px solid #c0392b;padding:8px}
.heat td{width:52px} code{font-size:11px}
"""

_PCT = {"total_return", "cagr", "volatility", "max_drawdown", "hit_rate", "exposure", "oos_return"}
_GROUPS = {
    "Returns": ["total_return", "cagr", "volatility", "sharpe", "sortino", "calmar"],
    "Risk": ["max_drawdown", "max_drawdown_bars", "skew", "kurtosis", "exposure", "avg_gross_leverage", "turnover"],
    "Trades": ["trades", "hit_rate", "profit_factor", "avg_trade_pnl", "avg_bars_held", "fees", "slippage", "funding"],
    "Selection bias": ["psr", "dsr", "n_trials", "trial_sharpe_variance", "pbo", "n_obs"],
}


def fmt(key: str, value: Any) -> str:
    """Format a metric for display (percentages, counts, ratios)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return "inf" if v > 0 else ("-inf" if v < 0 else "n/a")
        if key in _PCT:
            return f"{v:.2%}"
        if key in ("psr", "dsr", "pbo"):
            return f"{v:.3f}"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if 0 < abs(v) < 0.01:  # fees (0.0005), trial Sharpe variance: never rounded to 0.001 or 0.000
            return f"{v:.8f}".rstrip("0")
        return f"{v:.3f}"
    return html.escape(str(value))


def fmt_price(value: float) -> str:
    """A price in plain digits with thousands separators (48,450.12; 0.00012346), never scientific notation."""
    v = float(value)
    if not math.isfinite(v):
        return "n/a"
    if v == 0.0:
        return "0.00"
    digits = math.floor(math.log10(abs(v))) + 1
    return f"{v:,.{min(max(2, 6 - digits), 12)}f}"


def _kv_table(metrics: Mapping[str, Any], keys: list[str]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{fmt(k, metrics[k])}</td></tr>" for k in keys if k in metrics)
    return f'<table class="kv">{rows}</table>'


def metrics_block(metrics: Mapping[str, Any]) -> str:
    """The grouped metric tables."""
    cells = "".join(f"<div><h3>{g}</h3>{_kv_table(metrics, keys)}</div>" for g, keys in _GROUPS.items())
    return f'<div class="grid">{cells}</div>'


def heatmap_block(equity: pd.Series) -> str:
    """Monthly returns as a coloured year x month table."""
    table = monthly_returns(equity)
    scale = float(np.nanmax(np.abs(table.to_numpy()))) if table.size else 0.0
    head = "".join(f"<th>{m}</th>" for m in range(1, 13)) + "<th>year</th>"
    body = []
    for year, row in table.iterrows():
        cells = []
        for m in range(1, 13):
            v = float(row.get(m, np.nan)) if m in row.index else float("nan")
            text = f"{v:.1%}" if math.isfinite(v) else ""
            cells.append(f'<td style="background:{heat_color(v, scale)}">{text}</td>')
        yr = float(np.nanprod(1.0 + row.to_numpy(dtype="float64")) - 1.0)
        cells.append(f'<td style="background:{heat_color(yr, scale * 3)}"><b>{yr:.1%}</b></td>')
        body.append(f"<tr><th>{year}</th>{''.join(cells)}</tr>")
    return f'<table class="heat"><tr><th></th>{head}</tr>{"".join(body)}</table>'


def lookahead_block(lookahead: Any) -> str:
    """The lookahead check's verdict and the first changed values."""
    if lookahead is None:
        return '<div class="bad">Lookahead check was not run.</div>'
    la = lookahead.to_dict() if hasattr(lookahead, "to_dict") else dict(lookahead)
    cls = "ok" if la["ok"] else "bad"
    text = lookahead.summary() if hasattr(lookahead, "summary") else ("passed" if la["ok"] else "FAILED")
    out = [f'<div class="{cls}"><b>Lookahead check {html.escape(text)}</b><br>'
           f'<span class="sub">cut points: {html.escape(", ".join(la["cuts"]))}</span></div>']
    if la["violations"]:
        rows = "".join(f"<tr><td>{html.escape(v['cut'])}</td><td>{html.escape(v['ts'])}</td>"
                       f"<td>{html.escape(v['symbol'])}</td><td>{v['full']:g}</td><td>{v['truncated']:g}</td></tr>"
                       for v in la["violations"])
        out.append("<table><tr><th>cut</th><th>bar</th><th>symbol</th><th>full history</th><th>truncated</th></tr>"
                   f"{rows}</table>")
    return "".join(out)


def _x_ms(index: pd.DatetimeIndex) -> np.ndarray:
    return index.as_unit("ms").asi8.astype("float64")


def _page(title: str, subtitle: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{html.escape(h)}</h2>{content}" for h, content in sections)
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f'<div class="sub">{subtitle}</div>{body}</body></html>')


def _dsr_line(metrics: Mapping[str, Any]) -> str:
    by = metrics.get("n_trials_by_strategy") or {}
    split = ", ".join(f"{html.escape(str(k))} {int(v):,}" for k, v in by.items())
    note = metrics.get("dsr_note")
    return (f'<p><b>Deflated Sharpe ratio {fmt("dsr", metrics.get("dsr", float("nan")))}</b> '
            + (f'<b>({html.escape(str(note))})</b> ' if note else "")
            + f'(probability the Sharpe beats the best of N = {metrics.get("n_trials", 1):,} trials by luck alone'
            + (f": {split}" if split else "")
            + f'; trial family {html.escape(str(metrics.get("trial_family", "this dataset")))}; '
            f'PSR vs 0: {fmt("psr", metrics.get("psr", float("nan")))}, annualised Sharpe '
            f'{fmt("sharpe", metrics.get("sharpe", float("nan")))}).<br><span class="sub">Conventions: '
            f'{html.escape(str(metrics.get("dsr_conventions", "")))}</span></p>')


def provenance_block(provenance: Mapping[str, Any] | None) -> str:
    """Where the bars came from; a synthetic-data warning and the resampling rule when they apply."""
    if not provenance:
        return ""
    out = [f'<p class="sub">data: {html.escape(str(provenance.get("exchange")))} '
           f'({html.escape(str(provenance.get("source")))})</p>']
    if provenance.get("synthetic"):
        out.append('<div class="bad"><b>Synthetic data</b>: these bars come from the built-in simulator, not a '
                   "market. Returns and Sharpe ratios here say nothing about real performance.</div>")
    if provenance.get("resampled"):
        out.append(f'<p class="sub">{html.escape(str(provenance["resampled"]))} '
                   f'({int(provenance.get("resample_dropped_buckets", 0))} incomplete buckets dropped)</p>')
    return "".join(out)


def _failed_first(lookahead: Any) -> str:
    """A FAILED lookahead check heads the report, before any number that might look good."""
    if lookahead is None or getattr(lookahead, "ok", True):
        return ""
    return ('<div class="bad"><b>FAILED: the lookahead check found signals that use future data. Every number below '
            "is invalid; this trial is excluded from trial counts, gates and leaderboards.</b></div>")


def backtest_html(result: Any, provenance: Mapping[str, Any] | None = None) -> str:
    """HTML tearsheet of one BacktestResult (with where its data came from, when known)."""
    m = result.metrics
    eq = result.equity
    x = _x_ms(eq.index)
    trades = result.trades
    sub = (f"params <code>{html.escape(json.dumps(result.params, default=str))}</code> &middot; symbols "
           f"{html.escape(', '.join(result.positions.columns))} &middot; {eq.index[0]} to {eq.index[-1]} &middot; "
           f"dataset <code>{result.dataset_hash[:16]}</code>")
    by_reason = trades.groupby("exit_reason")["pnl"].agg(["count", "sum"]) if len(trades) else pd.DataFrame()
    reason_rows = "".join(f"<tr><td>{html.escape(str(r))}</td><td>{int(c)}</td><td>{s:,.2f}</td></tr>"
                          for r, (c, s) in by_reason.iterrows())
    last = trades.tail(20)
    trade_rows = "".join(
        f"<tr><td>{html.escape(t.symbol)}</td><td>{'long' if t.side > 0 else 'short'}</td><td>{t.entry_ts}</td>"
        f"<td>{t.exit_ts}</td><td>{fmt_price(t.entry_price)}</td><td>{fmt_price(t.exit_price)}</td><td>{t.pnl:,.2f}</td>"
        f"<td>{t.fees:,.2f}</td><td>{html.escape(t.exit_reason)}</td></tr>" for t in last.itertuples())
    sections = [
        ("Summary", _failed_first(result.lookahead) + provenance_block(provenance) + _dsr_line(m)
         + lookahead_block(result.lookahead) + metrics_block(m)),
        ("Equity", line_chart(x, [("equity", eq.to_numpy(), "#1f5fa8")], title="Equity")),
        ("Drawdown", line_chart(x, [("drawdown", drawdown(eq).to_numpy(), "#c0392b")], fill=True,
                                y_fmt="{:.0%}", height=180, title="Drawdown from peak")),
        ("Monthly returns", heatmap_block(eq)),
        ("Trades", '<div class="grid">' + histogram(trades["return"].to_numpy() if len(trades) else np.empty(0),
                                                    title="Trade return distribution")
         + f"<table><tr><th>exit</th><th>trades</th><th>PnL</th></tr>{reason_rows}</table></div>"
         + "<h3>Last trades</h3><table><tr><th>symbol</th><th>side</th><th>entry</th><th>exit</th>"
         "<th>entry px</th><th>exit px</th><th>PnL</th><th>fees</th><th>exit</th></tr>" + trade_rows + "</table>"),
        ("Costs and fills", _kv_table({"fill_model": result.config.fill_model, "fee_taker": result.config.fee_taker,
                                       "fee_maker": result.config.fee_maker,
                                       "half_spread_bps": result.config.half_spread_bps,
                                       "impact_coef": result.config.impact_coef, "fills": len(result.fills)},
                                      ["fill_model", "fee_taker", "fee_maker", "half_spread_bps", "impact_coef",
                                       "fills"])),
    ]
    return _page(f"Backtest: {result.strategy}", sub, sections)


def _oos_trades_block(trades: pd.DataFrame | None) -> str:
    """Stitched out-of-sample trades: counts per window and the return distribution."""
    if trades is None or not len(trades):
        return "<p>No trades were entered out of sample.</p>"
    per = trades.groupby("window")["pnl"].agg(["count", "sum"])
    rows = "".join(f"<tr><td>{int(w)}</td><td>{int(c):,}</td><td>{v:,.2f}</td></tr>" for w, (c, v) in per.iterrows())
    return ('<div class="grid">' + histogram(trades["return"].to_numpy(), title="OOS trade return distribution")
            + f"<table><tr><th>window</th><th>OOS trades</th><th>PnL</th></tr>{rows}</table></div>"
            '<p class="sub">Trades entered inside each out-of-sample segment by the parameters selected in-sample; '
            "a trade still open at a segment's end is closed there.</p>")


def walkforward_html(wf: Any, provenance: Mapping[str, Any] | None = None) -> str:
    """HTML tearsheet of a WalkForwardResult: the window table, stitched OOS equity, DSR and PBO."""
    m = wf.metrics
    eq = wf.oos_equity
    x = _x_ms(eq.index)
    rows = "".join(
        f"<tr><td>{r.window}</td><td>{r.is_start}</td><td>{r.oos_start}</td><td>{r.oos_end}</td>"
        f"<td style='text-align:left'><code>{html.escape(json.dumps(r.best_params, default=str))}</code></td>"
        f"<td>{r.is_sharpe:.2f}</td><td>{r.oos_sharpe:.2f}</td><td>{r.oos_return:.2%}</td></tr>"
        for r in wf.table.itertuples())
    pbo = wf.pbo
    pbo_text = (f"<p><b>Probability of backtest overfitting (CSCV): {fmt('pbo', pbo.get('pbo', float('nan')))}"
                f"</b> over {pbo.get('n_combinations', 0):,} combinatorial splits of "
                f"{pbo.get('n_configurations', len(wf.params)):,} parameter sets"
                + (f" ({html.escape(str(pbo['method']))})" if pbo.get("method") else "")
                + "; above 0.5 the in-sample winner is more likely than not to underperform out of sample.</p>")
    if pbo.get("note"):
        pbo_text = f"<p><b>Probability of backtest overfitting (CSCV):</b> {html.escape(str(pbo['note']))}.</p>"
    sub = (f"{wf.search} search &middot; {len(wf.trials)} in-sample trials over {len(wf.table)} windows "
           f"&middot; backend {html.escape(wf.backend)} &middot; {wf.elapsed_s:.1f} s &middot; dataset "
           f"<code>{wf.dataset_hash[:16]}</code>")
    sections = [
        ("Summary", provenance_block(provenance) + _dsr_line(m) + pbo_text + metrics_block(m)),
        ("Out-of-sample trades", _oos_trades_block(getattr(wf, "oos_trades", None))),
        ("Walk-forward windows", "<table><tr><th>window</th><th>IS start</th><th>OOS start</th><th>OOS end</th>"
         f"<th>best params</th><th>IS Sharpe</th><th>OOS Sharpe</th><th>OOS return</th></tr>{rows}</table>"),
        ("Out-of-sample equity", line_chart(x, [("stitched OOS equity", eq.to_numpy(), "#1f5fa8")])),
        ("Drawdown", line_chart(x, [("drawdown", drawdown(eq).to_numpy(), "#c0392b")], fill=True, y_fmt="{:.0%}",
                                height=180)),
        ("Monthly returns (out of sample)", heatmap_block(eq)),
        ("In-sample vs out-of-sample Sharpe of every trial",
         histogram(wf.trials["oos_sharpe"].to_numpy() - wf.trials["is_sharpe"].to_numpy(), x_fmt="{:.2f}",
                   title="OOS minus IS Sharpe (annualised)")),
    ]
    return _page(f"Walk-forward optimisation: {wf.strategy}", sub, sections)


def write_html(text: str, path: str | Path) -> Path:
    """Write a report atomically (temp file + rename) and return its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target


def write_tearsheet(result: Any, path: str | Path, provenance: Mapping[str, Any] | None = None) -> Path:
    """Write a BacktestResult's tearsheet to `path`."""
    return write_html(backtest_html(result, provenance), path)


def write_walkforward_tearsheet(wf: Any, path: str | Path, provenance: Mapping[str, Any] | None = None) -> Path:
    """Write a WalkForwardResult's tearsheet to `path`."""
    return write_html(walkforward_html(wf, provenance), path)
