"""Tiny inline-SVG charts (line/area, histogram) for self-contained HTML reports: no JavaScript, no external URLs."""

from __future__ import annotations

import html
import math
from typing import Sequence

import numpy as np

MAX_POINTS = 1500


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most MAX_POINTS points, preserving each bucket's extreme so drawdown troughs stay visible."""
    n = len(x)
    if n <= MAX_POINTS:
        return x, y
    edges = np.linspace(0, n, MAX_POINTS // 2 + 1).astype(int)
    keep = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b <= a:
            continue
        seg = y[a:b]
        i_min, i_max = a + int(np.nanargmin(seg)), a + int(np.nanargmax(seg))
        keep.extend(sorted({i_min, i_max}))
    keep.append(n - 1)
    idx = np.unique(np.array(keep))
    return x[idx], y[idx]


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def line_chart(x_ms: np.ndarray, series: Sequence[tuple[str, np.ndarray, str]], *, width: int = 900,
               height: int = 260, fill: bool = False, y_fmt: str = "{:,.0f}", title: str = "") -> str:
    """An SVG line (or filled area) chart of one or more series over epoch-ms x values."""
    pad_l, pad_r, pad_t, pad_b = 70, 10, 24, 28
    xs = np.asarray(x_ms, dtype="float64")
    if len(xs) < 2:
        return f'<svg width="{width}" height="{height}"></svg>'
    thinned = [(name, *_thin(xs, np.asarray(y, dtype="float64")), color) for name, y, color in series]
    all_y = np.concatenate([t[2][np.isfinite(t[2])] for t in thinned] + [np.zeros(1) if fill else np.empty(0)])
    lo, hi = (float(all_y.min()), float(all_y.max())) if all_y.size else (0.0, 1.0)
    if hi == lo:
        hi, lo = hi + 1.0, lo - 1.0
    x0, x1 = xs[0], xs[-1]

    def px(x: np.ndarray) -> np.ndarray:
        return pad_l + (x - x0) / (x1 - x0) * (width - pad_l - pad_r)

    def py(y: np.ndarray) -> np.ndarray:
        return pad_t + (hi - y) / (hi - lo) * (height - pad_t - pad_b)

    parts = [f'<svg width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">']
    if title:
        parts.append(f'<text x="{pad_l}" y="15" font-weight="bold">{html.escape(title)}</text>')
    for tick in _nice_ticks(lo, hi):
        y = float(py(np.array(tick)))
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{pad_l - 4}" y="{y + 4:.1f}" text-anchor="end">{html.escape(y_fmt.format(tick))}'
                     '</text>')
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        xv = x0 + frac * (x1 - x0)
        label = np.datetime64(int(xv), "ms").astype("datetime64[D]")
        # the end labels anchor inward so they stay inside the frame instead of being clipped at its edge
        anchor = "start" if frac == 0.0 else ("end" if frac == 1.0 else "middle")
        parts.append(f'<text x="{float(px(np.array(xv))):.1f}" y="{height - 8}" text-anchor="{anchor}">{label}</text>')
    for i, (name, tx, ty, color) in enumerate(thinned):
        ok = np.isfinite(ty)
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px(tx[ok]), py(ty[ok])))
        if fill:
            base = float(py(np.array(0.0)))
            first, last = float(px(tx[ok][0])), float(px(tx[ok][-1]))
            parts.append(f'<polygon points="{first:.1f},{base:.1f} {pts} {last:.1f},{base:.1f}" fill="{color}" '
                         'fill-opacity="0.35" stroke="none"/>')
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.3"/>')
        parts.append(f'<text x="{width - pad_r - 150}" y="{15 + 13 * i}" fill="{color}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(values: np.ndarray, *, bins: int = 40, width: int = 440, height: int = 220, title: str = "",
              x_fmt: str = "{:.1%}") -> str:
    """An SVG histogram (wins green, losses red) of e.g. trade returns."""
    v = np.asarray(values, dtype="float64")
    v = v[np.isfinite(v)]
    pad_l, pad_r, pad_t, pad_b = 40, 10, 24, 28
    parts = [f'<svg width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">']
    if title:
        parts.append(f'<text x="{pad_l}" y="15" font-weight="bold">{html.escape(title)}</text>')
    if v.size == 0:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no trades</text></svg>')
        return "".join(parts)
    counts, edges = np.histogram(v, bins=bins)
    top = max(int(counts.max()), 1)
    bw = (width - pad_l - pad_r) / len(counts)
    for i, c in enumerate(counts):
        h = c / top * (height - pad_t - pad_b)
        color = "#2a9d4b" if edges[i] >= 0 else "#c0392b"
        parts.append(f'<rect x="{pad_l + i * bw:.1f}" y="{height - pad_b - h:.1f}" width="{max(bw - 1, 1):.1f}" '
                     f'height="{h:.1f}" fill="{color}"><title>{int(c)}</title></rect>')
    for frac in (0.0, 0.5, 1.0):
        xv = edges[0] + frac * (edges[-1] - edges[0])
        anchor = "start" if frac == 0.0 else ("end" if frac == 1.0 else "middle")
        parts.append(f'<text x="{pad_l + frac * (width - pad_l - pad_r):.1f}" y="{height - 8}" '
                     f'text-anchor="{anchor}">{html.escape(x_fmt.format(xv))}</text>')
    parts.append(f'<text x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end">{top}</text></svg>')
    return "".join(parts)


def heat_color(value: float, scale: float) -> str:
    """Background colour for a return in a heatmap cell: red for losses, green for gains."""
    if not math.isfinite(value):
        return "#f4f4f4"
    a = min(abs(value) / scale, 1.0) if scale > 0 else 0.0
    if value >= 0:
        return f"rgba(42,157,75,{0.15 + 0.75 * a:.2f})"
    return f"rgba(192,57,43,{0.15 + 0.75 * a:.2f})"
