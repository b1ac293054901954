"""Server-rendered SVG charts: no script, readable by screen readers (title, description and
the table beside each chart), sharp at any width."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 36, 8, 10, 34
Series = tuple[str, Sequence[int], str]  # name, one value per label, fill colour


def stacked_bars(labels: Sequence[str], series: Sequence[Series], title: str) -> Markup:
    """Columns per label, the series stacked bottom-up, with a y axis and a legend."""
    totals = [sum(values[i] for _, values, _ in series) for i in range(len(labels))]
    top = _nice_ceiling(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(labels))
    bar = max(2.0, slot * 0.7)
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet">',
             f"<title>{escape(title)}</title>"]
    for tick in (0, top // 2, top):
        y = TOP + plot_h - plot_h * tick / top
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#d4d4d8" stroke-width="1"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'font-size="11" fill="#3f3f46">{tick}</text>')
    every = max(1, len(labels) // 10)  # at most ~10 day labels, so they never overlap
    for i, label in enumerate(labels):
        x = LEFT + slot * i + (slot - bar) / 2
        base = float(TOP + plot_h)
        for name, values, colour in series:
            value = values[i]
            if value <= 0:
                continue
            h = plot_h * value / top
            base -= h
            parts.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{colour}"><title>{escape(label)}: '
                         f'{value} {escape(name)}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                         f'text-anchor="middle" font-size="11" fill="#3f3f46">'
                         f'{escape(label)}</text>')
    legend_x = LEFT
    for name, _, colour in series:
        parts.append(f'<rect x="{legend_x}" y="{HEIGHT - 12}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{legend_x + 14}" y="{HEIGHT - 3}" '
                     f'font-size="11" fill="#18181b">{escape(name)}</text>')
        legend_x += 24 + 7 * len(name)
    parts.append("</svg>")
    return Markup("".join(parts))


def _nice_ceiling(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least `value` (and even, so that
    the middle tick is a whole number)."""
    if value <= 2:
        return 2
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            candidate = step * magnitude
            if candidate >= value and candidate % 2 == 0:
                return candidate
        magnitude *= 10
