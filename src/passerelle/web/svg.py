"""Charts drawn on the server as inline SVG: no script, nothing fetched, printable.

- :func:`intervals`: one row per item, its estimate as a dot and its interval as a line,
  with the zero line, so every figure with an interval shows it;
- :func:`grouped_bars`: one group of bars per label, one bar per series (attribution models
  side by side).

Every chart carries a title and a description for screen readers; the table beside it
holds the same figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#0b5394", "#c25700", "#1a6b32", "#6a3d9a", "#a4161a", "#4f5b66", "#b8860b",
           "#00838f")
INK, MUTED, LINE = "#1b1f24", "#4f5b66", "#d0d7de"


def _short(text: str, size: int) -> str:
    return text if len(text) <= size else text[:size - 1] + "…"


def _scale(low: float, high: float, x0: float, x1: float) -> Callable[[float], float]:
    span = (high - low) or 1.0
    return lambda v: round(x0 + (v - low) / span * (x1 - x0), 1)


def intervals(rows: Sequence[tuple[str, float | None, float | None, float | None]],
              title: str, label: Callable[[float], str], width: int = 640) -> Markup:
    """``rows`` of (label, estimate, low, high); a row without an estimate is left out."""
    shown = [r for r in rows if r[1] is not None]
    if not shown:
        return Markup("")
    values = [v for r in shown for v in r[1:] if v is not None] + [0.0]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or 1.0
    left, right, row_h = 240, width - 40, 26
    x = _scale(lo - pad, hi + pad, left, right)
    height = row_h * len(shown) + 40
    parts = [f'<svg class="svgchart" role="img" viewBox="0 0 {width} {height}" '
             f'width="100%" preserveAspectRatio="xMinYMin meet" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>",
             f'<line x1="{x(0)}" y1="10" x2="{x(0)}" y2="{height - 24}" stroke="{MUTED}" '
             'stroke-dasharray="4 3"/>']
    for i, (name, est, low, high) in enumerate(shown):
        y = 20 + i * row_h
        parts.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end" font-size="12" '
                     f'fill="{INK}">{escape(_short(name, 36))}</text>')
        if low is not None and high is not None:
            parts.append(f'<line x1="{x(low)}" y1="{y}" x2="{x(high)}" y2="{y}" '
                         f'stroke="{PALETTE[0]}" stroke-width="3"/>')
            for end in (low, high):
                parts.append(f'<line x1="{x(end)}" y1="{y - 6}" x2="{x(end)}" y2="{y + 6}" '
                             f'stroke="{PALETTE[0]}" stroke-width="2"/>')
        parts.append(f'<circle cx="{x(est)}" cy="{y}" r="5" fill="{PALETTE[1]}">'
                     f"<title>{escape(name)}: {escape(label(est))}</title></circle>")
    axis_y = height - 10
    ticks = [lo, hi]
    if lo < 0 < hi and min(x(0) - x(lo), x(hi) - x(0)) > 60:  # zero apart from the ends
        ticks.insert(1, 0.0)
    for v in ticks:
        parts.append(f'<text x="{x(v)}" y="{axis_y}" text-anchor="middle" font-size="11" '
                     f'fill="{INK}">{escape(label(v))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def grouped_bars(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]],
                 title: str, label: Callable[[float], str], width: int = 640) -> Markup:
    """Horizontal bars: for each of ``labels`` one bar per (name, values) of ``series``."""
    if not labels or not series:
        return Markup("")
    top = max([v for _, values in series for v in values] + [0.0]) or 1.0
    left, right, bar_h = 150, width - 70, 9
    group_h = bar_h * len(series) + 10
    legend_h = 18 * ((len(series) + 2) // 3)
    height = group_h * len(labels) + legend_h + 16
    x = _scale(0.0, top, left, right)
    parts = [f'<svg class="svgchart" role="img" viewBox="0 0 {width} {height}" '
             f'width="100%" preserveAspectRatio="xMinYMin meet" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for i, (name, _) in enumerate(series):
        lx, ly = 10 + (i % 3) * 210, 12 + (i // 3) * 18
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" '
                     f'fill="{PALETTE[i % len(PALETTE)]}"/><text x="{lx + 14}" y="{ly}" '
                     f'font-size="12" fill="{INK}">{escape(name)}</text>')
    for gi, text in enumerate(labels):
        y0 = legend_h + 10 + gi * group_h
        parts.append(f'<text x="{left - 8}" y="{y0 + group_h / 2}" text-anchor="end" '
                     f'font-size="12" fill="{INK}">{escape(_short(text, 22))}</text>')
        for si, (name, values) in enumerate(series):
            v = values[gi] if gi < len(values) else 0.0
            y = y0 + si * bar_h
            parts.append(f'<rect x="{left}" y="{y}" height="{bar_h - 1}" '
                         f'width="{max(x(v) - left, 0)}" fill="{PALETTE[si % len(PALETTE)]}">'
                         f"<title>{escape(text)}, {escape(name)}: {escape(label(v))}</title>"
                         "</rect>")
    parts.append("</svg>")
    return Markup("".join(parts))
