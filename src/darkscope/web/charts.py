"""Charts as inline SVG drawn on the server: no chart library, no script, nothing for the CSP to
allow; the browser draws them and every label is escaped like any other text."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import datetime
from typing import Any
from urllib.parse import quote

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


PALETTE = ("#2e86c1", "#c0392b", "#27ae60", "#8e44ad", "#f39c12", "#16a085", "#7f8c8d",
           "#d35400")
PANEL_TITLES = {"win": "TCP window rules", "tos": "ToS rules", "dport": "destination port rules"}


def rule_panels(periods: list[str], panels: dict[str, list[dict[str, Any]]]) -> Markup:
    """The rules timeline as the seed draws it: one panel per item kind (window, ToS, port),
    a line per rule of its hosts per period; each line and legend entry links to the rule's
    page, and its title gives the numbers and the Mirai share at the peak."""
    shown = {family: rows for family, rows in panels.items() if rows}
    if not periods or not shown:
        return Markup('<p class="empty">No rules tables under --data.</p>')
    panel_h, legend_w = 170, 330
    width = WIDTH + legend_w - 200
    plot_w = width - legend_w - PAD
    # x in proportion to time within each run of contiguous periods (they need not be evenly
    # spaced: rules of hourly and daily mining together); a gap where no periods were mined
    # is drawn as a break of fixed width, not as months of empty axis
    seconds = [_time(p).timestamp() for p in periods]
    runs = contiguous_runs(seconds)
    xs = [PAD + x for x in _broken_axis(seconds, runs, plot_w)]
    parts = [f'<svg class="chart rules" viewBox="0 0 {width} {len(shown) * (panel_h + 30)}" '
             'role="img" aria-label="rules timeline">']
    for p, (family, rows) in enumerate(shown.items()):
        top = p * (panel_h + 30) + 22
        peak = max(max(r["daily_hosts"]) for r in rows) or 1
        parts.append(f'<text x="{PAD}" y="{top - 6}" class="title">'
                     f'{escape(PANEL_TITLES.get(family, family))}</text>')
        parts.append(f'<text x="4" y="{top + 10}" class="axis">{peak:,}</text>')
        parts.append(f'<line x1="{PAD}" y1="{top + panel_h - 20}" x2="{PAD + plot_w}" '
                     f'y2="{top + panel_h - 20}" class="grid"/>')
        for i, row in enumerate(rows):
            colour = PALETTE[i % len(PALETTE)]
            ys = [top + (panel_h - 20) * (1 - n / peak) for n in row["daily_hosts"]]
            share = row["mirai_share_at_peak"]
            note = "" if share is None else f", Mirai share at the peak {share:.0%}"
            title = escape(f"{row['rule']}: peak {row['peak_hosts']:,} hosts on "
                           f"{row['peak_period'][:10]}{note}")
            href = f"/rules/rule?text={quote(row['rule'], safe='')}"
            pieces = []
            for run in runs:
                if len(run) == 1:
                    pieces.append(f'<circle cx="{xs[run[0]]:.1f}" cy="{ys[run[0]]:.1f}" r="3" '
                                  f'fill="{colour}"/>')
                else:
                    points = " ".join(f"{xs[j]:.1f},{ys[j]:.1f}" for j in run)
                    pieces.append(f'<polyline points="{points}" fill="none" '
                                  f'stroke="{colour}" stroke-width="2"/>')
            parts.append(f'<a href="{escape(href)}"><g class="rule"><title>{title}</title>'
                         + "".join(pieces) + "</g></a>")
            y = top + 8 + i * 16
            label = row["rule"] if len(row["rule"]) <= 44 else row["rule"][:43] + "…"
            parts.append(f'<a href="{escape(href)}"><rect x="{width - legend_w + 8}" '
                         f'y="{y - 9}" width="10" height="10" fill="{colour}"/><text '
                         f'x="{width - legend_w + 24}" y="{y}" class="axis">{escape(label)}'
                         f'<title>{title}</title></text></a>')
        for run in runs[1:]:
            mid = (xs[run[0]] + xs[run[0] - 1]) / 2
            parts.append(f'<text x="{mid - 5:.1f}" y="{top + panel_h - 16}" class="axis break">'
                         '//<title>no periods mined in between</title></text>')
        for j in _labelled(xs, [run[0] for run in runs]):
            parts.append(f'<text x="{xs[j]:.1f}" y="{top + panel_h - 6}" '
                         f'class="axis">{escape(periods[j][:16].replace("T", " "))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def contiguous_runs(seconds: list[float], slack: float = 1.5) -> list[list[int]]:
    """Period indices split where a step is longer than ``slack`` times the usual (median)
    step: no periods were mined in between, so a line across would invent a trend. A lone
    period becomes a run of one (drawn as a dot)."""
    if len(seconds) < 2:
        return [list(range(len(seconds)))]
    steps = [b - a for a, b in itertools.pairwise(seconds)]
    usual = sorted(steps)[len(steps) // 2]
    runs = [[0]]
    for j, step in enumerate(steps, start=1):
        if step > slack * usual:
            runs.append([])
        runs[-1].append(j)
    return runs


def _broken_axis(seconds: list[float], runs: list[list[int]], width: float,
                 gap: float = 36.0) -> list[float]:
    """x of each period: runs share ``width`` in proportion to the time they cover, with
    ``gap`` between runs (a run of one period takes no width)."""
    spans = [seconds[run[-1]] - seconds[run[0]] for run in runs]
    total = sum(spans)
    if not total:  # single periods only: spread evenly
        step = width / (len(runs) - 1) if len(runs) > 1 else 0.0
        return [step * i if len(runs) > 1 else width / 2 for i in range(len(seconds))]
    free = max(width - gap * (len(runs) - 1), 0.0)
    xs = [0.0] * len(seconds)
    x = 0.0
    for run, span in zip(runs, spans, strict=True):
        share = free * span / total if total else 0.0
        for j in run:
            xs[j] = x + (share * (seconds[j] - seconds[run[0]]) / span if span else 0.0)
        x += share + gap
    return xs


def _labelled(xs: list[float], first: list[int], gap: float = 120.0) -> list[int]:
    """Which periods get a date under the axis: each run's first, then others, none closer
    than ``gap`` to another."""
    chosen: list[int] = []
    for j in [*first, *range(len(xs))]:
        if j not in chosen and all(abs(xs[j] - xs[k]) >= gap for k in chosen):
            chosen.append(j)
    return sorted(chosen)


def feature_map(points: list[dict[str, Any]], axes: list[dict[str, Any]]) -> Markup:
    """Host-windows as dots coloured by verdict, queued items ringed; every dot links to its
    IP page, and map.js lets a dragged rectangle select several."""
    if not points:
        return Markup('<p class="empty">No verdicts under --data.</p>')
    width, height = WIDTH, 520
    xs = [p["x"] for p in points]
    ys = [p["y"] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (width - 2 * PAD) / ((x1 - x0) or 1.0)
    sy = (height - 2 * PAD) / ((y1 - y0) or 1.0)
    parts = [f'<svg class="chart map" id="feature-map" viewBox="0 0 {width} {height}" '
             'role="img" aria-label="host-windows by their features">',
             f'<rect class="frame" x="{PAD}" y="{PAD}" width="{width - 2 * PAD}" '
             f'height="{height - 2 * PAD}"/>']
    order = sorted(points, key=lambda p: (p["verdict"] != "not_ddos", p["queued"]))
    for p in order:  # the common verdict first, so the rare ones are drawn on top
        cx = PAD + (p["x"] - x0) * sx
        cy = height - PAD - (p["y"] - y0) * sy
        ring = ' class="queued"' if p["queued"] else ""
        title = escape(f"{p['ip']} {p['verdict']} ({p['decided_by']}), {p['packets']} packets"
                       + (", in the review queue" if p["queued"] else ""))
        parts.append(f'<a href="/ip/{escape(p["ip"])}"><circle cx="{cx:.1f}" cy="{cy:.1f}" '
                     f'r="{4 if p["queued"] else 3}" fill="{COLOURS.get(p["verdict"], "#777")}"'
                     f'{ring} data-ip="{escape(p["ip"])}" data-verdict="{escape(p["verdict"])}">'
                     f'<title>{title}</title></circle></a>')
    for axis, (x, y, anchor) in zip(axes, ((width / 2, height - 8, "middle"),
                                           (12, PAD - 12, "start")), strict=False):
        names = ", ".join(f"{f['name']} {'+' if f['loading'] > 0 else '−'}"
                          for f in axis["features"])
        parts.append(f'<text x="{x}" y="{y}" class="axis" text-anchor="{anchor}">'
                     f'PC{axis["component"]} ({axis["variance"]:.0%} of the variance): '
                     f'{escape(names)}</text>')
    left = width - 430
    for j, verdict in enumerate(("ddos", "needs_review", "not_ddos")):
        parts.append(f'<circle cx="{left + j * 105}" cy="10" r="4" '
                     f'fill="{COLOURS[verdict]}"/><text x="{left + 8 + j * 105}" '
                     f'y="14" class="axis">{verdict}</text>')
    parts.append(f'<circle cx="{left + 3 * 105}" cy="10" r="4" fill="none" '
                 f'class="queued"/><text x="{left + 8 + 3 * 105}" y="14" '
                 'class="axis">in review queue</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def trend(points: list[dict[str, Any]]) -> Markup:
    """A topic's prevalence per crawl period, as a small line (a dot for one period)."""
    values = [(p["period"], p["prevalence"]) for p in points if p["prevalence"] is not None]
    if not values:
        return Markup("")
    width, height = 220, 44
    step = (width - 8) / max(len(values) - 1, 1)
    coords = [(4 + i * step, height - 4 - (height - 8) * float(v)) for i, (_, v) in
              enumerate(values)]
    title = escape("; ".join(f"{period}: {float(v):.0%}" for period, v in values))
    shape = (f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in coords)}" '
             'fill="none" stroke="#1f5fbf" stroke-width="2"/>' if len(coords) > 1 else
             f'<circle cx="{coords[0][0] + 100:.1f}" cy="{coords[0][1]:.1f}" r="3" '
             'fill="#1f5fbf"/>')
    return Markup(f'<svg class="spark" viewBox="0 0 {width} {height}" role="img" '
                  f'aria-label="prevalence per period"><title>{title}</title>{shape}</svg>')
