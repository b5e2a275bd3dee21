"""A single self-contained HTML page: inline SVG charts, no scripts, nothing fetched.

Listing text comes from criminal markets and is untrusted: every piece of it goes through
:func:`html.escape`, the page carries no script at all, and a Content-Security-Policy forbids
scripts and remote loads in case a browser ever finds markup we missed. URLs are shown as text,
never as links: an analyst's browser should not open .onion or ``javascript:`` addresses.
"""

from __future__ import annotations

from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}.num{text-align:right}.muted{color:#777;font-size:.85em}
.url{font-family:monospace;word-break:break-all}
.topic{display:flex;gap:2em;flex-wrap:wrap}
"""


def _color(topic: int) -> str:
    return PALETTE[topic % len(PALETTE)]


def word_bars(words: list[list], color: str, width: int = 300, bar_height: int = 14) -> str:
    """Horizontal bar chart of word weights as inline SVG."""
    if not words:
        return ""
    top = max(float(w[1]) for w in words) or 1.0
    label_width = 120
    rows = []
    for i, (word, weight) in enumerate(words):
        y = i * (bar_height + 3)
        length = (width - label_width - 50) * float(weight) / top
        rows.append(
            f'<text x="{label_width - 4}" y="{y + bar_height - 3}" text-anchor="end" '
            f'font-size="11">{escape(str(word))}</text>'
            f'<rect x="{label_width}" y="{y}" width="{length:.1f}" height="{bar_height}" '
            f'fill="{color}"/>'
            f'<text x="{label_width + length + 3:.1f}" y="{y + bar_height - 3}" '
            f'font-size="10" fill="#555">{float(weight):.3f}</text>')
    height = len(words) * (bar_height + 3)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img">{"".join(rows)}</svg>')


def trend_chart(trends: list[dict], market: str, k: int, labels: list[str],
                width: int = 700, height: int = 220) -> str:
    """Topic prevalence over crawl periods for one market, one line per topic (inline SVG)."""
    points = sorted((t for t in trends if t["market"] == market), key=lambda t: t["period"])
    if not points:
        return ""
    left, bottom, top_margin, right = 40, 30, 10, 10
    plot_w, plot_h = width - left - right, height - bottom - top_margin
    peak = max(max(p["prevalence"]) for p in points) or 1.0
    step = plot_w / max(len(points) - 1, 1)

    def xy(i: int, value: float) -> tuple[float, float]:
        return left + i * step, top_margin + plot_h * (1 - value / peak)

    lines = []
    for topic in range(k):
        coords = [xy(i, p["prevalence"][topic]) for i, p in enumerate(points)]
        tooltip = f"<title>{escape(f'topic {topic}: {labels[topic]}')}</title>"
        if len(coords) == 1:  # one period: a dot, since a line needs two
            lines.append(f'<circle cx="{coords[0][0]:.1f}" cy="{coords[0][1]:.1f}" r="3" '
                         f'fill="{_color(topic)}">{tooltip}</circle>')
        else:
            joined = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            lines.append(f'<polyline fill="none" stroke="{_color(topic)}" stroke-width="2" '
                         f'points="{joined}">{tooltip}</polyline>')
    ticks = [f'<text x="{left - 4}" y="{top_margin + plot_h * (1 - f) + 4:.1f}" font-size="10" '
             f'text-anchor="end">{peak * f:.2f}</text>' for f in (0, 0.5, 1)]
    every = max(1, len(points) // 8)
    xlabels = [f'<text x="{left + i * step:.1f}" y="{height - 8}" font-size="10" '
               f'text-anchor="middle">{escape(p["period"])}</text>'
               for i, p in enumerate(points) if i % every == 0]
    axes = (f'<line x1="{left}" y1="{top_margin}" x2="{left}" y2="{top_margin + plot_h}" '
            f'stroke="#999"/><line x1="{left}" y1="{top_margin + plot_h}" x2="{width - right}" '
            f'y2="{top_margin + plot_h}" stroke="#999"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img">{axes}{"".join(ticks)}{"".join(xlabels)}{"".join(lines)}</svg>')


def _products_table(products: list[dict]) -> str:
    if not products:
        return '<p class="muted">no listing has this topic</p>'
    head = ("<tr><th>title</th><th>share</th><th>market</th><th>vendor</th><th>price</th>"
            "<th>crawled</th><th>same product</th><th>url</th></tr>")
    rows = []
    for p in products:
        price = " ".join(str(v) for v in (p.get("price"), p.get("currency")) if v)
        rows.append(
            f"<tr><td>{escape(str(p.get('title') or ''))}</td>"
            f"<td class=num>{float(p['share']):.2f}</td>"
            f"<td>{escape(str(p.get('market') or ''))}</td>"
            f"<td>{escape(str(p.get('vendor') or ''))}</td>"
            f"<td>{escape(price)}</td><td>{escape(str(p.get('crawled_at') or ''))}</td>"
            f"<td class=num>{int(p.get('duplicates', 1))}</td>"
            f"<td class=url>{escape(str(p.get('url') or ''))}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def render_report(summary: dict, title: str = "darkscope: topics of market listings") -> str:
    """The HTML page for a ``topics.json`` document."""
    model = summary["model"]
    topics = summary["topics"]
    k = len(topics)
    labels = [t["label"] for t in topics]
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>{model['listings']} listings ({model['listings_without_words']} without words "
        f"after preprocessing), vocabulary {model['vocabulary']} words, k = {k} topics, "
        f"seed {model['seed']}, mean NPMI coherence {model['coherence_npmi']:.3f}.</p>",
    ]
    if model.get("k_search"):
        cells = "".join(f"<tr><td>{escape(kk)}</td><td class=num>{v:.3f}</td></tr>"
                        for kk, v in model["k_search"].items())
        parts.append(f"<p>k chosen by coherence:</p><table><tr><th>k</th><th>mean NPMI</th>"
                     f"</tr>{cells}</table>")
    overview = "".join(
        f'<tr><td style="color:{_color(t["id"])}">■ {t["id"]}</td><td>{escape(t["label"])}</td>'
        f'<td class=num>{t["prevalence"]:.3f}</td><td class=num>{t["coherence_npmi"]:.3f}</td>'
        "</tr>" for t in topics)
    parts.append("<h2>Topics</h2><table><tr><th>id</th><th>label</th><th>prevalence</th>"
                 f"<th>NPMI</th></tr>{overview}</table>")
    markets = sorted({t["market"] for t in summary["trends"]})
    if markets:
        parts.append(f"<h2>Trends (topic prevalence per {escape(model['period'])})</h2>"
                     '<p class="muted">Line colours as in the topic table; hover a line for '
                     "its topic.</p>")
        for market in markets:
            parts.append(f"<h3>{escape(market)}</h3>"
                         f"{trend_chart(summary['trends'], market, k, labels)}")
    for t in topics:
        parts.append(
            f'<h2 id="topic-{t["id"]}" style="color:{_color(t["id"])}">Topic {t["id"]}: '
            f'{escape(t["label"])}</h2><div class=topic><div>'
            f'{word_bars(t["words"], _color(t["id"]))}</div><div><h3>Representative products'
            f'</h3>{_products_table(t["products"])}</div></div>')
    parts.append("</body></html>")
    return "\n".join(parts)
