"""Inline SVG charts (pure functions: data in, markup out; no JavaScript library).

Each chart is a ``<figure class="chart" data-chart=NAME data-points=N>`` with a
caption naming what is measured, its unit and its period; with no data it
says so instead of drawing empty axes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def number(value: float | int | None, digits: int = 1) -> str:
    """A value as shown on the page: thousands separated, ``digits`` decimals."""
    if value is None:
        return "n/a"
    if isinstance(value, int) or (float(value).is_integer() and digits == 0):
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def short(label: str, limit: int = 30) -> str:
    """``label`` cut to ``limit`` characters, keeping its end (a path's last touches)."""
    return label if len(label) <= limit else "…" + label[-(limit - 1) :]


def figure(name: str, caption: str, body: str, points: int, empty: str = "No data yet.") -> str:
    inner = body if points else f'<p class="empty">{escape(empty)}</p>'
    return (
        f'<figure class="chart" data-chart="{escape(name)}" data-points="{points}">'
        f"<figcaption>{escape(caption)}</figcaption>{inner}</figure>"
    )


def _svg(width: int, height: int, content: str, title: str) -> str:
    return (
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" {FONT}><title>{escape(title)}</title>{content}</svg>'
    )


def bar_chart(
    name: str,
    caption: str,
    rows: Sequence[tuple[str, float]],
    unit: str,
    reference: tuple[str, float] | None = None,
    digits: int = 1,
    empty: str = "No data yet.",
) -> str:
    """Horizontal bars, one per ``(label, value)``; ``reference`` draws a labelled line;
    ``empty`` is what the chart says when there are no rows."""
    label_w, bar_w, row_h = 190, 420, 22
    top = 24 if reference else 6
    height = top + row_h * len(rows) + 24
    peak = max([v for _, v in rows] + ([reference[1]] if reference else []) + [0]) or 1.0
    scale = bar_w / peak
    parts = []
    for i, (label, value) in enumerate(rows):
        y = top + i * row_h
        w = max(0.0, value * scale)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(short(label))}'
            f"<title>{escape(label)}</title></text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
            f'fill="{PALETTE[0]}"><title>{escape(label)}: {number(value, digits)} {escape(unit)}'
            f"</title></rect>"
            f'<text x="{label_w + w + 4:.1f}" y="{y + 15}">{number(value, digits)}</text>'
        )
    if reference:
        x = label_w + reference[1] * scale
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{height - 22}" '
            'stroke="#333" stroke-dasharray="4 3"/>'
            f'<text x="{x:.1f}" y="{top - 8}" text-anchor="middle">'
            f"{escape(reference[0])}: {number(reference[1], digits)}</text>"
        )
    parts.append(
        f'<text x="{label_w}" y="{height - 6}" fill="#555">{escape(unit)} (0 to '
        f"{number(peak, digits)})</text>"
    )
    body = _svg(label_w + bar_w + 80, height, "".join(parts), caption)
    return figure(name, caption, body, len(rows), empty)


def grouped_bars(
    name: str,
    caption: str,
    categories: Sequence[str],
    series: dict[str, dict[str, float]],
    unit: str,
    digits: int = 1,
) -> str:
    """Horizontal grouped bars: per category, one bar per series (with a legend)."""
    label_w, bar_w, bar_h = 190, 440, 9
    names = list(series)
    group_h = bar_h * len(names) + 8
    legend_h = 18 * ((len(names) + 3) // 4) + 6
    height = legend_h + group_h * len(categories) + 24
    values = [v for s in series.values() for v in s.values()]
    peak = max([*values, 0]) or 1.0
    scale = bar_w / peak
    parts = []
    for i, series_name in enumerate(names):
        x, y = 10 + (i % 4) * 170, 14 + 18 * (i // 4)
        parts.append(
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{PALETTE[i % 10]}"/>'
            f'<text x="{x + 14}" y="{y}">{escape(series_name)}</text>'
        )
    for c, category in enumerate(categories):
        y0 = legend_h + c * group_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y0 + group_h / 2 + 2:.1f}" text-anchor="end">'
            f"{escape(category)}</text>"
        )
        for i, series_name in enumerate(names):
            value = series[series_name].get(category, 0.0)
            w = max(0.0, value * scale)
            parts.append(
                f'<rect x="{label_w}" y="{y0 + i * bar_h}" width="{w:.1f}" height="{bar_h - 1}" '
                f'fill="{PALETTE[i % 10]}"><title>{escape(category)}, {escape(series_name)}: '
                f"{number(value, digits)} {escape(unit)}</title></rect>"
            )
    parts.append(
        f'<text x="{label_w}" y="{height - 6}" fill="#555">{escape(unit)} (0 to '
        f"{number(peak, digits)})</text>"
    )
    points = sum(1 for s in series.values() for v in s.values() if v)
    return figure(
        name, caption, _svg(label_w + bar_w + 40, height, "".join(parts), caption), points
    )


def line_chart(
    name: str, caption: str, points: Sequence[tuple[dt.datetime, float]], unit: str
) -> str:
    """A line over time (x: time, y: value from 0)."""
    width, height, left, bottom = 640, 200, 50, 30
    if not points:
        return figure(name, caption, "", 0)
    t0, t1 = points[0][0], points[-1][0]
    span = max((t1 - t0).total_seconds(), 60.0)
    peak = max(v for _, v in points) or 1.0
    plot_w, plot_h = width - left - 10, height - bottom - 10

    def xy(t: dt.datetime, v: float) -> tuple[float, float]:
        return (
            left + (t - t0).total_seconds() / span * plot_w,
            10 + plot_h - v / peak * plot_h,
        )

    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(t, v) for t, v in points))
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{PALETTE[0]}"><title>'
        f"{t:%H:%M:%S}: {number(v, 0)} {escape(unit)} per minute</title></circle>"
        for (t, v), (x, y) in ((p, xy(*p)) for p in points)
    )
    axes = (
        f'<line x1="{left}" y1="{10 + plot_h}" x2="{width - 10}" y2="{10 + plot_h}" stroke="#999"/>'
        f'<line x1="{left}" y1="10" x2="{left}" y2="{10 + plot_h}" stroke="#999"/>'
        f'<text x="{left - 4}" y="16" text-anchor="end">{number(peak, 0)}</text>'
        f'<text x="{left - 4}" y="{10 + plot_h}" text-anchor="end">0</text>'
        f'<text x="{left}" y="{height - 8}">{t0:%H:%M} UTC</text>'
        f'<text x="{width - 10}" y="{height - 8}" text-anchor="end">{t1:%H:%M} UTC</text>'
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 8}" text-anchor="middle" fill="#555">'
        f"{escape(unit)} per minute</text>"
    )
    body = (
        f'<polyline points="{coords}" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>'
        + dots
        + axes
    )
    return figure(name, caption, _svg(width, height, body, caption), len(points))


def flow_diagram(name: str, caption: str, edges: Sequence[tuple[str, str, int]], unit: str) -> str:
    """Where journeys go next: sources on the left, destinations on the right, each
    link as wide as its count (a two-column Sankey diagram)."""
    if not edges:
        return figure(name, caption, "", 0)
    out: dict[str, int] = {}
    into: dict[str, int] = {}
    for src, dst, n in edges:
        out[src] = out.get(src, 0) + n
        into[dst] = into.get(dst, 0) + n
    total = sum(out.values())
    width, left_x, right_x, node_w, gap = 800, 210, 560, 12, 6
    height = max(240, 14 * max(len(out), len(into)) + 200)
    usable = height - 20 - gap * max(len(out), len(into))
    scale = usable / total

    def layout(nodes: dict[str, int]) -> dict[str, list[float]]:
        y, pos = 10.0, {}
        for node, n in sorted(nodes.items(), key=lambda kv: (-kv[1], kv[0])):
            pos[node] = [y, y]  # top, next free offset for links
            y += n * scale + gap
        return pos

    lpos, rpos = layout(out), layout(into)
    links = []
    for i, (src, dst, n) in enumerate(sorted(edges, key=lambda e: (-e[2], e[0], e[1]))):
        h = n * scale
        y1, y2 = lpos[src][1] + h / 2, rpos[dst][1] + h / 2
        lpos[src][1] += h
        rpos[dst][1] += h
        x1, x2 = left_x + node_w, right_x
        mid = (x1 + x2) / 2
        links.append(
            f'<path d="M{x1},{y1:.1f} C{mid},{y1:.1f} {mid},{y2:.1f} {x2},{y2:.1f}" '
            f'stroke="{PALETTE[i % 10]}" stroke-opacity="0.45" stroke-width="{max(h, 1):.1f}" '
            f'fill="none"><title>{escape(src)} → {escape(dst)}: {n:,} {escape(unit)}</title></path>'
        )
    nodes = []
    for side, pos, totals in (("l", lpos, out), ("r", rpos, into)):
        x = left_x if side == "l" else right_x
        for node, (top, _) in pos.items():
            h = totals[node] * scale
            label_x, anchor = (x - 6, "end") if side == "l" else (x + node_w + 6, "start")
            nodes.append(
                f'<rect x="{x}" y="{top:.1f}" width="{node_w}" height="{max(h, 1):.1f}" '
                f'fill="#555"/><text x="{label_x}" y="{top + max(h, 10) / 2 + 4:.1f}" '
                f'text-anchor="{anchor}">{escape(node)} ({totals[node]:,})</text>'
            )
    header = (
        f'<text x="{left_x}" y="{height - 4}" text-anchor="middle" fill="#555">from</text>'
        f'<text x="{right_x}" y="{height - 4}" text-anchor="middle" fill="#555">to</text>'
    )
    body = _svg(width, height, "".join(links + nodes) + header, caption)
    return figure(name, caption, body, len(edges))
