"""Server-rendered SVG charts: no script, readable by screen readers (title, description and
the table beside each chart), sharp at any width."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

# A narrow canvas, so that its text stays readable when a phone scales it down.
WIDTH, HEIGHT = 420, 236
LEFT, RIGHT, TOP, BOTTOM = 34, 6, 12, 50
FONT = 13
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
                     f'font-size="{FONT}" fill="#3f3f46">{tick}</text>')
    every = max(1, -(-len(labels) // 7))  # at most 7 day labels, so they never overlap
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
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - BOTTOM + 18}" '
                         f'text-anchor="middle" font-size="{FONT}" fill="#3f3f46">'
                         f'{escape(label)}</text>')
    legend_x = LEFT
    for name, _, colour in series:
        parts.append(f'<rect x="{legend_x}" y="{HEIGHT - 15}" width="12" height="12" '
                     f'fill="{colour}"/><text x="{legend_x + 17}" y="{HEIGHT - 4}" '
                     f'font-size="{FONT}" fill="#18181b">{escape(name)}</text>')
        legend_x += 30 + 7 * len(name)
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
