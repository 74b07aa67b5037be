"""Small inline SVG charts, written by hand: no fonts, no images, no scripts, nothing fetched.

Each chart scales with the page (viewBox, width 100%), carries a text alternative (role="img",
aria-label and <title>) and uses the page's own font. Every piece of text is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup, escape

from report.i18n import Words

BAR = "#1f5f8b"
BAR_LIGHT = "#9cc3dd"
AXIS = "#666666"


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def posts_over_time(series: Sequence[tuple[datetime, int]], unit: str, words: Words) -> Markup:
    """Columns: posts per day, week or month, with the first and last period and the highest count labelled."""
    width, height, top, bottom, left = 320, 96, 14, 18, 4
    n = max(1, len(series))
    peak = max((c for _, c in series), default=0)
    plot_h = height - top - bottom
    step = (width - 2 * left) / n
    gap = min(2.0, step * 0.2)
    total = sum(c for _, c in series)
    unit_word = words(f"unit_{unit}")
    desc = words("chart_desc", total=total, first=words.short_date(series[0][0]) if series else "-",
                 last=words.short_date(series[-1][0]) if series else "-", unit=unit_word, max=peak)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="{escape(desc)}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(desc)}</title>"]
    for i, (start, count) in enumerate(series):
        h = 0 if peak == 0 else max(1.0 if count else 0.0, plot_h * count / peak)
        x = left + i * step + gap / 2
        parts.append(f'<rect x="{_num(x)}" y="{_num(top + plot_h - h)}" width="{_num(max(step - gap, 0.5))}" '
                     f'height="{_num(h)}" fill="{BAR}"><title>{escape(words.short_date(start))}: '
                     f"{escape(words.number(count))}</title></rect>")
    base = top + plot_h
    parts.append(f'<line x1="{left}" y1="{base}" x2="{width - left}" y2="{base}" stroke="{AXIS}" '
                 'stroke-width="0.5"/>')
    if series:
        parts.append(f'<text x="{left}" y="{height - 4}" font-size="10" fill="{AXIS}">'
                     f"{escape(words.short_date(series[0][0]))}</text>")
        parts.append(f'<text x="{width - left}" y="{height - 4}" font-size="10" fill="{AXIS}" text-anchor="end">'
                     f"{escape(words.short_date(series[-1][0]))}</text>")
    parts.append(f'<text x="{width - left}" y="10" font-size="10" fill="{AXIS}" text-anchor="end">'
                 f"max {escape(words.number(peak))}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))


def ideas_per_theme(rows: Sequence[tuple[str, int, str]], words: Words) -> Markup:
    """Horizontal bars: (theme name, number of ideas, anchor id) per row; each bar links to its section."""
    label_w, bar_w, row_h, width = 178, 182, 22, 400  # narrow viewBox: labels stay legible on a phone
    height = row_h * max(1, len(rows)) + 4
    peak = max((n for _, n, _ in rows), default=0)
    desc = "; ".join(f"{name}: {words.number(n)}" for name, n, _ in rows)
    parts = [f'<svg class="chart overview" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="{escape(words("chart_overview"))}: {escape(desc)}" xmlns="http://www.w3.org/2000/svg">',
             f'<title>{escape(words("chart_overview"))}</title>']
    for i, (name, n, anchor) in enumerate(rows):
        y = 2 + i * row_h
        w = 0 if peak == 0 else max(1.0 if n else 0.0, bar_w * n / peak)
        parts.append(f'<a href="#{escape(anchor)}"><text x="{label_w - 6}" y="{y + 15}" font-size="12" '
                     f'text-anchor="end" fill="#222222">{escape(name)}</text>'
                     f'<rect x="{label_w}" y="{y + 4}" width="{_num(w)}" height="{row_h - 8}" fill="{BAR}"/>'
                     f'<text x="{_num(label_w + w + 5)}" y="{y + 15}" font-size="12" fill="#222222">'
                     f"{escape(words.number(n))}</text></a>")
    parts.append("</svg>")
    return Markup("".join(parts))


def sparkline(counts: Sequence[int]) -> str:
    """Plain-text columns for the Markdown digest: ▁▂▃▄▅▆▇█ (empty periods as ·)."""
    blocks = "▁▂▃▄▅▆▇█"
    peak = max(counts, default=0)
    if peak == 0:
        return ""
    return "".join("·" if c == 0 else blocks[min(7, int(c * 7 / peak + 0.5))] for c in counts)
