"""Charts as SVG text, drawn on the server: the web admin serves every asset itself (no JavaScript chart
library, no internet), and an SVG inlined in the page needs no second request and prints sharply.

Three shapes, each returning one ``<svg>`` element as a string, every piece of text escaped:

- ``bar_chart``: vertical bars for one or more series over the same categories (calls by hour,
  inbound beside outbound);
- ``hbar_chart``: horizontal bars for long labels (cost by department, extension, country...);
- ``step_chart``: a quantity over time that holds its value until the next point (calls up at once),
  with an optional limit line (the trunk count).

Colours come from CSS classes (``chart-s0``, ``chart-s1``, ``chart-limit``...) in webadmin/static/style.css:
the page's Content-Security-Policy allows no inline style. Each chart has ``role="img"``, a ``<title>``
for screen readers and a ``<title>`` per bar or step as its tooltip; the table under it stays the exact
record. Values are Decimal, int or float; only the drawing uses floats, never a figure shown as text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from xml.sax.saxutils import escape, quoteattr

Number = int | float | Decimal
FONT = 12
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 44


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top``: steps of 1, 2 or 5 times a power of ten."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < top - 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _tick_text(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}".rstrip("0").rstrip(".")


def _open(width: int, height: int, title: str, css: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {escape(css)}" role="img" '
            f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
            f'aria-label={quoteattr(title)}>', f"<title>{escape(title)}</title>"]


def _value_axis(parts: list[str], ticks: list[float], scale: Callable[[float], float], width: int) -> None:
    for tick in ticks:
        y = scale(tick)
        parts.append(f'<line class="chart-grid" x1="{LEFT}" y1="{y:.1f}" x2="{width - RIGHT}" y2="{y:.1f}"/>')
        parts.append(f'<text class="chart-axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{_tick_text(tick)}</text>")


def _legend(parts: list[str], names: Sequence[str], width: int) -> None:
    if len(names) < 2:
        return
    x = width - RIGHT
    for index in reversed(range(len(names))):
        label = escape(names[index])
        x -= 7 * len(names[index]) + 26
        parts.append(f'<rect class="chart-s{index}" x="{x}" y="6" width="12" height="12"/>')
        parts.append(f'<text class="chart-axis" x="{x + 16}" y="16">{label}</text>')


def bar_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[Number]]], *, title: str,
              width: int = 960, height: int = 280, fmt: Callable[[Number], str] = str,
              label_every: int = 1) -> str:
    """Grouped vertical bars: ``series`` is ``[(name, values), ...]`` with one value per label."""
    parts = _open(width, height, title, "chart-bars")
    top = max((float(v) for _, values in series for v in values), default=0.0)
    ticks = nice_ticks(top)
    plot_h = height - TOP - BOTTOM
    plot_w = width - LEFT - RIGHT

    def scale(value: float) -> float:
        return TOP + plot_h - plot_h * value / ticks[-1]

    _value_axis(parts, ticks, scale, width)
    _legend(parts, [name for name, _ in series], width)
    slot = plot_w / max(len(labels), 1)
    bar = slot * 0.8 / max(len(series), 1)
    for i, label in enumerate(labels):
        x0 = LEFT + i * slot + slot * 0.1
        for s, (name, values) in enumerate(series):
            value = values[i]
            y = scale(float(value))
            parts.append(f'<rect class="chart-s{s}" x="{x0 + s * bar:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                         f'height="{TOP + plot_h - y:.1f}"><title>{escape(f"{label} {name}: {fmt(value)}")}'
                         f"</title></rect>")
        if i % label_every == 0:
            centre = LEFT + (i + 0.5) * slot
            parts.append(f'<text class="chart-axis" x="{centre:.1f}" y="{height - BOTTOM + 16}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append(f'<line class="chart-base" x1="{LEFT}" y1="{TOP + plot_h}" x2="{width - RIGHT}" '
                 f'y2="{TOP + plot_h}"/>')
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(labels: Sequence[str], values: Sequence[Number], *, title: str, width: int = 960,
               fmt: Callable[[Number], str] = str, limit: int = 15) -> str:
    """Horizontal bars, largest first as given, at most ``limit`` of them (the table has the rest)."""
    labels, values = list(labels)[:limit], list(values)[:limit]
    row, label_w = 22, 180
    height = TOP + row * max(len(labels), 1) + 24
    parts = _open(width, height, title, "chart-hbars")
    top = max((float(v) for v in values), default=0.0)
    ticks = nice_ticks(top)
    plot_w = width - label_w - RIGHT - 90

    def scale(value: float) -> float:
        return label_w + plot_w * max(value, 0.0) / ticks[-1]

    for tick in ticks:
        x = scale(tick)
        parts.append(f'<line class="chart-grid" x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" '
                     f'y2="{height - 20}"/>')
        parts.append(f'<text class="chart-axis" x="{x:.1f}" y="{TOP - 10}" text-anchor="middle">'
                     f"{_tick_text(tick)}</text>")
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = TOP + i * row
        short = label if len(label) <= 26 else label[:25] + "…"
        parts.append(f'<text class="chart-axis" x="{label_w - 8}" y="{y + 15}" text-anchor="end">'
                     f"{escape(short)}</text>")
        end = scale(float(value))
        parts.append(f'<rect class="chart-s0" x="{label_w}" y="{y + 3}" width="{end - label_w:.1f}" '
                     f'height="{row - 6}"><title>{escape(f"{label}: {fmt(value)}")}</title></rect>')
        parts.append(f'<text class="chart-value" x="{end + 6:.1f}" y="{y + 15}">{escape(fmt(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def step_chart(points: Sequence[tuple[datetime, Number]], *, title: str, end: datetime,
               limit: Number | None = None, limit_label: str = "", width: int = 960, height: int = 280,
               time_format: str = "%H:%M", label_count: int = 8) -> str:
    """A step line (and its filled area) of ``points`` ``[(time, value), ...]`` in time order; each value
    holds until the next point, the last until ``end``. ``limit`` draws a dashed line (trunks available)."""
    parts = _open(width, height, title, "chart-steps")
    top = max([float(v) for _, v in points] + [float(limit or 0)], default=0.0)
    ticks = nice_ticks(max(top, 1.0))
    plot_h = height - TOP - BOTTOM
    plot_w = width - LEFT - RIGHT
    if not points:
        parts.append(f'<text class="chart-axis" x="{width / 2}" y="{height / 2}" text-anchor="middle">'
                     "No calls in this period</text></svg>")
        return "".join(parts)
    start = points[0][0]
    span = max((end - start).total_seconds(), 1.0)

    def x_of(moment: datetime) -> float:
        return LEFT + plot_w * (moment - start).total_seconds() / span

    def y_of(value: float) -> float:
        return TOP + plot_h - plot_h * value / ticks[-1]

    _value_axis(parts, ticks, y_of, width)
    path = [f"M{x_of(start):.1f},{y_of(0):.1f}"]
    for index, (moment, value) in enumerate(points):
        following = points[index + 1][0] if index + 1 < len(points) else end
        y = y_of(float(value))
        path.append(f"L{x_of(moment):.1f},{y:.1f} L{x_of(following):.1f},{y:.1f}")
    path.append(f"L{x_of(end):.1f},{y_of(0):.1f} Z")
    parts.append(f'<path class="chart-area" d="{" ".join(path)}"/>')
    for index, (moment, value) in enumerate(points):
        following = points[index + 1][0] if index + 1 < len(points) else end
        parts.append(f'<rect class="chart-hit" x="{x_of(moment):.1f}" y="{TOP}" '
                     f'width="{max(x_of(following) - x_of(moment), 0.5):.1f}" height="{plot_h}">'
                     f"<title>{escape(f'{moment.strftime(time_format)}: {value}')}</title></rect>")
    if limit is not None:
        y = y_of(float(limit))
        parts.append(f'<line class="chart-limit" x1="{LEFT}" y1="{y:.1f}" x2="{width - RIGHT}" '
                     f'y2="{y:.1f}"/>')
        parts.append(f'<text class="chart-limit-text" x="{width - RIGHT - 4}" y="{y - 5:.1f}" '
                     f'text-anchor="end">{escape(limit_label)}</text>')
    for n in range(label_count + 1):
        moment = start + (end - start) * n / label_count
        anchor = "start" if n == 0 else "end" if n == label_count else "middle"
        parts.append(f'<text class="chart-axis" x="{x_of(moment):.1f}" y="{height - BOTTOM + 16}" '
                     f'text-anchor="{anchor}">{escape(moment.strftime(time_format))}</text>')
    parts.append(f'<line class="chart-base" x1="{LEFT}" y1="{y_of(0):.1f}" x2="{width - RIGHT}" '
                 f'y2="{y_of(0):.1f}"/>')
    parts.append("</svg>")
    return "".join(parts)
