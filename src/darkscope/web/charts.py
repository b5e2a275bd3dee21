"""Charts as inline SVG drawn on the server: no chart library, no script, nothing for the CSP to
allow; the browser draws them and every label is escaped like any other text."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

COLOURS = {"ddos": "#c0392b", "not_ddos": "#2e86c1", "needs_review": "#f39c12"}
WIDTH, HEIGHT, PAD = 900, 220, 40


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def hourly(rows: list[dict[str, Any]]) -> Markup:
    """Stacked bars of packets per hour by verdict, each bar titled with its numbers."""
    if not rows:
        return Markup('<p class="empty">No verdicts in this range.</p>')
    by_hour: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        by_hour[row["hour"]][row["verdict"]] = int(row["packets"] or 0)
    hours = sorted(by_hour)
    top = max(sum(v.values()) for v in by_hour.values()) or 1
    step = (WIDTH - 2 * PAD) / len(hours)
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             'aria-label="packets per hour by verdict">']
    for i, hour in enumerate(hours):
        y = HEIGHT - PAD
        x = PAD + i * step
        for verdict in ("not_ddos", "needs_review", "ddos"):
            value = by_hour[hour].get(verdict, 0)
            if not value:
                continue
            h = (HEIGHT - 2 * PAD) * value / top
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(step - 1, 1):.1f}" '
                         f'height="{h:.1f}" fill="{COLOURS[verdict]}"><title>'
                         f'{escape(hour)} {verdict}: {value:,} packets</title></rect>')
    for i in range(0, len(hours), max(1, len(hours) // 6)):
        parts.append(f'<text x="{PAD + i * step:.1f}" y="{HEIGHT - PAD + 16}" '
                     f'class="axis">{escape(hours[i][5:16].replace("T", " "))}</text>')
    parts.append(f'<text x="4" y="{PAD - 8}" class="axis">{top:,} packets</text>')
    for j, verdict in enumerate(("ddos", "needs_review", "not_ddos")):
        parts.append(f'<rect x="{WIDTH - 300 + j * 100}" y="6" width="10" height="10" '
                     f'fill="{COLOURS[verdict]}"/><text x="{WIDTH - 286 + j * 100}" y="15" '
                     f'class="axis">{verdict}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def timeline(attacks: list[dict[str, Any]]) -> Markup:
    """One line per victim from attack start to end, its thickness the estimated rate."""
    if not attacks:
        return Markup('<p class="empty">No attacks in this range.</p>')
    shown = attacks[:60]
    starts = [_time(a["start"]) for a in shown]
    ends = [_time(a["end"]) for a in shown]
    low, high = min(starts), max(ends)
    total = (high - low).total_seconds() or 1.0
    peak = max(float(a["estimated_attack_pps"] or 0) for a in shown) or 1.0
    row, left = 14, 130  # room for the victim's address, a link to its page
    height = 2 * PAD + row * len(shown)
    span = WIDTH - left - PAD
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
             'aria-label="attacks over time">']
    for i, (attack, start, end) in enumerate(zip(shown, starts, ends, strict=True)):
        x0 = left + span * (start - low).total_seconds() / total
        x1 = left + span * (end - low).total_seconds() / total
        y = PAD + i * row
        victim = escape(attack["victim"])
        parts.append(f'<a href="/ip/{victim}"><text x="4" y="{y + 4}" class="axis">{victim}'
                     '</text></a>')
        thick = 2 + 8 * float(attack["estimated_attack_pps"] or 0) / peak
        parts.append(f'<line x1="{x0:.1f}" y1="{y}" x2="{max(x1, x0 + 2):.1f}" y2="{y}" '
                     f'stroke="#c0392b" stroke-width="{thick:.1f}"><title>'
                     f'{escape(attack["victim"])}: {escape(attack["start"])} to '
                     f'{escape(attack["end"])}, ~{float(attack["estimated_attack_pps"] or 0):,.0f}'
                     ' pps</title></line>')
    parts.append(f'<text x="{left}" y="{PAD - 14}" class="axis">{low:%Y-%m-%d %H:%M:%S} UTC'
                 '</text>')
    parts.append(f'<text x="{WIDTH - PAD - 150}" y="{PAD - 14}" class="axis">'
                 f'{high:%Y-%m-%d %H:%M:%S}</text></svg>')
    return Markup("".join(parts))
