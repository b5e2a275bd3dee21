"""What each page shows, as plain data (the JSON API returns exactly this).

Every function takes the data source and returns JSON-ready dicts; templates only lay it out.
Addresses leave as text, times as ISO 8601 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from darkscope.web.data import DataSource, Host, TimeRange, ipv4_text, ipv6_text
from darkscope.web.rollups import feature_columns

TOOLS = ("mirai", "zmap", "masscan")
TOP = 10


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def _clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _iso(v) for k, v in row.items()} for row in rows]


def payload_text(head: bytes | None) -> str | None:
    """A payload's first bytes as an analyst reads them: hex, then the printable ASCII
    (anything else as a dot), as ``tcpdump -X`` shows them. Never raw bytes: the page escapes
    the text, and no byte of a capture reaches it unencoded."""
    if not head:
        return None
    shown = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in head)
    return f"{head.hex(' ')}  |{shown}|"


def _host_of(row: dict[str, Any], v4: str = "src", v6: str = "src6") -> str | None:
    return ipv6_text(row.get(v6)) or ipv4_text(row.get(v4))


def overview(data: DataSource, span: TimeRange) -> dict[str, Any]:
    window = span.params()
    out: dict[str, Any] = {"range": {"start": _iso(span.start), "end": _iso(span.end),
                                     "name": span.name},
                           "hourly": [], "top_ports": [], "top_victims": [],
                           "current_attacks": [], "tools": {}, "totals": {}}
    hours = span.hours()
    if data.has("verdicts"):
        out["hourly"] = _clean(data.query(
            "SELECT to_timestamp(hour * 3600) AS hour, verdict, sum(packets)::BIGINT AS "
            "packets, sum(hosts)::BIGINT AS hosts FROM verdict_hours "
            "WHERE hour >= ? AND hour < ? GROUP BY ALL ORDER BY 1, 2", hours))
        totals = data.query(
            "SELECT verdict, sum(windows)::BIGINT AS windows, sum(packets)::BIGINT AS packets "
            "FROM verdict_hours WHERE hour >= ? AND hour < ? GROUP BY verdict", hours)
        out["totals"] = {r["verdict"]: {"windows": r["windows"], "packets": r["packets"]}
                         for r in totals}
    if data.has("packets"):
        top = data.query(
            "SELECT proto, dport AS port, sum(packets)::BIGINT AS packets, "
            "bool_and(with_sources) AS every_hour FROM port_hours WHERE hour >= ? AND "
            f"hour < ? GROUP BY ALL ORDER BY packets DESC, proto, port LIMIT {TOP}", hours)
        hosts, estimated = data.port_hosts([(r["proto"], r["port"]) for r in top], hours)
        # every_hour: the port was among each hour's busiest, so no hour's hosts are missing
        out["top_ports"] = [{"proto": r["proto"], "port": r["port"], "packets": r["packets"],
                             "hosts": hosts.get((r["proto"], r["port"]), 0),
                             "hosts_estimated": estimated,
                             "hosts_partial": estimated and not r["every_hour"]} for r in top]
    if data.has("victims"):
        victims = data.query(
            "SELECT victim, sum(packets)::BIGINT AS packets, max(estimated_attack_pps) "
            "AS peak_pps, min(start) AS first, max(\"end\") AS last, count(*) AS attacks "
            "FROM victims WHERE \"end\" >= ? AND start < ? GROUP BY victim "
            f"ORDER BY packets DESC LIMIT {TOP}", window)
        out["top_victims"] = [{**r, "victim": ipv4_text(r["victim"])} for r in _clean(victims)]
        current = data.query(
            "SELECT victim, start, \"end\", packets, ports, estimated_attack_pps FROM victims "
            "WHERE \"end\" >= ? - INTERVAL 1 HOUR ORDER BY estimated_attack_pps DESC "
            f"LIMIT {TOP}", [span.end])
        out["current_attacks"] = [{**r, "victim": ipv4_text(r["victim"])}
                                  for r in _clean(current)]
    if data.has("hosts"):
        found, estimated = data.tool_hosts(hours)
        out["tools"] = {tool: int(found.get(tool, 0)) for tool in TOOLS}
        out["tools_estimated"] = estimated
    return out


def _src6(data: DataSource) -> str:
    return "src6" if "src6" in data.columns("verdicts") else "NULL"


def ip_context(data: DataSource, host: Host, sample: int = 50) -> dict[str, Any]:
    """Everything darkscope knows of one address, as a source and as a victim."""
    out: dict[str, Any] = {"ip": host.text, "first_seen": None, "last_seen": None,
                           "packets": 0, "windows": [], "sample": [], "ports": [],
                           "prefixes": [], "tools": [], "attacks": []}
    key_sql, key = ("src = ?", host.v4) if host.v4 is not None else ("src6 = ?", host.v6)
    if data.has("packets"):
        # packets_by_src (rollups.py): the packet columns ordered by source, so a lookup
        # reads a row group or two per file; IPv6 sources are the tables' 16 bytes there
        packet_key = [host.v4 if host.v4 is not None else host.packed]
        seen = data.query(f"SELECT min(ts) AS a, max(ts) AS b, count(*) AS n FROM "
                          f"packets_by_src WHERE {key_sql}", packet_key)[0]
        out.update(first_seen=_iso(seen["a"]), last_seen=_iso(seen["b"]), packets=seen["n"])
        rows = data.query("SELECT ts, dst, dst6, proto, sport, dport, tcp_flags, ttl, ip_id, "
                          "win AS window, tos, ip_len, tcp_layout AS options, payload_head "
                          f"FROM packets_by_src WHERE {key_sql} ORDER BY ts "
                          f"LIMIT {int(sample)}", packet_key)
        out["sample"] = [{**r, "dst": _host_of(r, "dst", "dst6"),
                          "payload_head": payload_text(r["payload_head"])} for r in _clean(rows)]
        for r in out["sample"]:
            r.pop("dst6", None)
        out["ports"] = data.query(
            f"SELECT proto, dport AS port, count(*) AS packets FROM packets_by_src WHERE "
            f"{key_sql} AND dport IS NOT NULL GROUP BY ALL ORDER BY packets DESC, port "
            f"LIMIT {TOP}", packet_key)
        if host.v4 is not None:
            prefixes = data.query(
                "SELECT (dst >> 8) AS p, count(*) AS packets FROM packets_by_src WHERE "
                f"src = ? AND dst IS NOT NULL GROUP BY p ORDER BY packets DESC, p LIMIT {TOP}",
                packet_key)
            out["prefixes"] = [{"prefix": f"{ipv4_text(r['p'] << 8)}/24",
                                "packets": r["packets"]} for r in prefixes]
        else:  # an IPv6 source: the /64s it reached (a /64 is IPv6's subnet, as /24 for v4)
            prefixes = data.query(
                "SELECT left(hex(dst6), 16) AS p, count(*) AS packets FROM packets_by_src "
                f"WHERE src6 = ? AND dst6 IS NOT NULL GROUP BY p ORDER BY packets DESC, p "
                f"LIMIT {TOP}", packet_key)
            out["prefixes"] = [{"prefix": f"{ipv6_text(bytes.fromhex(r['p']) + bytes(8))}/64",
                                "packets": r["packets"]} for r in prefixes]
    if data.has("verdicts"):
        # verdicts_by_src (rollups.py): the verdicts ordered by source
        rows = data.query(f"SELECT * EXCLUDE (src, src6) FROM verdicts_by_src WHERE {key_sql} "
                          "ORDER BY window_start", [key])
        features = feature_columns(set(rows[0]) if rows else set())
        out["windows"] = [
            {**{k: v for k, v in r.items() if k not in features},
             "features": {k: r[k] for k in features}} for r in _clean(rows)]
        if out["first_seen"] is None and rows:
            out["first_seen"] = out["windows"][0]["window_start"]
            out["last_seen"] = out["windows"][-1]["window_end"]
    if data.has("hosts") and host.v4 is not None:
        out["tools"] = _clean(data.query(
            "SELECT family, period_start, match_share, packets FROM hosts WHERE src = ? "
            "ORDER BY period_start", [key]))
    if data.has("victims") and host.v4 is not None:
        out["attacks"] = _clean(data.query(
            "SELECT start, \"end\", packets, ports, distinct_targets, estimated_attack_pps "
            "FROM victims WHERE victim = ? ORDER BY start", [key]))
    out["tags"] = _tags(out)
    return out


def _tags(context: dict[str, Any]) -> list[dict[str, str]]:
    """Tags with where they came from: a rule, a model version, a fingerprint."""
    tags: dict[str, str] = {}
    for window in context["windows"]:
        if window["verdict"] == "ddos":
            source = window["decided_by"]
            if source == "model" and window.get("model_version"):
                source = f"model {window['model_version']}"
            tags.setdefault("ddos-victim", source)
    for tool in context["tools"]:
        if tool["family"] not in (None, "unknown"):
            tags.setdefault(tool["family"], f"fingerprint (match {tool['match_share']:.0%})")
    if context["attacks"]:
        tags.setdefault("attacked", "victims table")
    return [{"tag": tag, "source": source} for tag, source in tags.items()]


def attacks(data: DataSource, span: TimeRange, port: int | None = None,
            icmp: bool = False) -> list[dict[str, Any]]:
    """Attacks in the range; ``port``: those whose victim replied from it; ``icmp``: those
    seen through ICMP errors (the victims table keeps reply ports, not whether they were TCP
    or UDP)."""
    if not data.has("victims"):
        return []
    where, params = ["\"end\" >= ?", "start < ?"], span.params()
    if port is not None:
        where.append("list_contains(string_split(ports, ','), ?)")
        params.append(str(port))
    if icmp:
        where.append("ports LIKE 'icmp-%'")
    rows = data.query("SELECT victim, start, \"end\", packets, ports, distinct_targets, "
                      "observed_pps, estimated_attack_pps FROM victims WHERE "
                      + " AND ".join(where) + " ORDER BY start LIMIT 5000", params)
    return [{**r, "victim": ipv4_text(r["victim"])} for r in _clean(rows)]


# -- scanner rules ----------------------------------------------------------------------------
RULE_PANELS = ("win", "tos", "dport")


def rules(data: DataSource, match: str | None = None, top: int = 6) -> dict[str, Any]:
    """The day-by-day timeline of fingerprint rules (``patterns.timeline``, the seed's
    three-panel figure: window, ToS and port rules), each rule's Mirai share at its peak."""
    from darkscope.patterns.timeline import build_timeline

    out: dict[str, Any] = {"periods": [], "rules": [], "panels": {}, "match": match}
    if not data.has("rules"):
        return out
    table = data.table("SELECT period_start, antecedent, consequent, support_hosts, "
                       "mirai_share FROM rules")
    if table.num_rows == 0:
        return out
    timeline = build_timeline(table)
    periods = [_iso(datetime.fromtimestamp(int(p) / 1e9, UTC)) for p in timeline.periods]
    rows = _clean(timeline.table.drop_columns(["appears", "vanishes"]).to_pylist())
    for row in rows:
        row["mirai_share_at_peak"] = _number(row["mirai_share_at_peak"])
    if match:
        rows = [r for r in rows if match in r["rule"]]
    out.update(periods=periods, rules=rows)
    for family in RULE_PANELS:
        out["panels"][family] = [r for r in rows if r["family"] == family][:top]
    return out


def _number(value: Any) -> float | None:
    """NaN (no Mirai share known) as null: JSON has no NaN."""
    return None if value is None or value != value else float(value)


def rule(data: DataSource, text: str, hosts_limit: int = 200) -> dict[str, Any] | None:
    """One rule through time: its host count, confidence, lift and Mirai share per period, and
    its hosts: the support sets the rules table keeps (``support_src``), or for tables written
    before it had them, the hosts fingerprinted as the rule's tool family (``hosts
    attribute``) in those periods."""
    from darkscope.patterns.mining import rule_text

    if not data.has("rules"):
        return None
    table = data.table("SELECT * FROM rules ORDER BY period_start")
    periods = [r for r in table.to_pylist()
               if rule_text(r["antecedent"] or [], r["consequent"] or []) == text]
    if not periods:
        return None
    for row in periods:
        row.pop("date", None)
        for key in ("mirai_share", "family_share", "confidence", "lift"):
            if key in row:
                row[key] = _number(row[key])
    family = next((r.get("family") for r in reversed(periods) if r.get("family")), None)
    hosts: list[dict[str, Any]] = []
    support = [r.pop("support_src", None) for r in periods]
    if any(s is not None for s in support):
        # the rule's own support set, as `rules mine` kept it (busiest first, up to 1,000 a
        # period): each host with the periods it carried the rule in
        seen: dict[int, dict[str, Any]] = {}
        for row, srcs in zip(periods, support, strict=True):
            for rank, src in enumerate(srcs or []):
                host = seen.setdefault(src, {"src": src, "ip": ipv4_text(src), "periods": 0,
                                             "first": row["period_start"], "best_rank": rank})
                host["periods"] += 1
                host["last"] = row["period_start"]
                host["best_rank"] = min(host["best_rank"], rank)
        ranked = sorted(seen.values(), key=lambda h: (-h["periods"], h["best_rank"], h["src"]))
        return {"rule": text, "family": family, "periods": _clean(periods),
                "hosts_source": "support", "hosts": _clean(ranked[:hosts_limit])}
    if family and family != "unknown" and data.has("hosts"):
        first = periods[0]["period_start"]
        last = periods[-1]["period_start"]
        found = data.query(
            "SELECT src, min(period_start) AS first, max(period_start) AS last, "
            "sum(packets)::BIGINT AS packets, avg(match_share) AS match FROM hosts "
            "WHERE family = ? AND period_start >= ? AND period_start < ? + INTERVAL 1 DAY "
            f"GROUP BY src ORDER BY packets DESC, src LIMIT {int(hosts_limit)}",
            [family, first, last])
        hosts = [{**r, "ip": ipv4_text(r["src"])} for r in _clean(found)]
    return {"rule": text, "family": family, "periods": _clean(periods),
            "hosts_source": "family" if hosts else None, "hosts": hosts}


# -- feature map ------------------------------------------------------------------------------
MAP_POINTS = 3000


def feature_map(data: DataSource, queued: set[tuple[int, int]],
                points: int = MAP_POINTS) -> dict[str, Any]:
    """Host-windows in two dimensions: a principal-component projection of their 17 features
    (signed log, standardised). Every ddos and needs-review window and every queued item is
    drawn; not-ddos windows are a fixed hash-chosen sample, so the picture is the same at each
    reload and between users. PCA rather than t-SNE/UMAP: deterministic, milliseconds, and its
    axes are named by the features that load on them."""
    import numpy as np
    from sklearn.decomposition import PCA

    out: dict[str, Any] = {"points": [], "axes": [], "sampled": 0, "windows": 0}
    if not data.has("verdicts"):
        return out
    counts = {r["verdict"]: r["n"] for r in data.query(
        "SELECT verdict, sum(windows)::BIGINT AS n FROM verdict_hours GROUP BY verdict")}
    common = counts.get("not_ddos", 0)
    rare = sum(counts.values()) - common
    keep = max(points - rare, points // 2)
    per_mille = min(1000, max(1, -(-1000 * keep // max(common, 1))))
    # the sample does not depend on the queue, so a label does not recompute it; queued
    # windows are looked up by source (verdicts_by_src is ordered by it) and added
    rows = data.query(
        "SELECT * EXCLUDE (src6), epoch_ns(window_start) AS start_ns FROM verdicts_by_src "
        "WHERE src IS NOT NULL AND (verdict <> 'not_ddos' OR hash(src, window_start) % 1000 "
        f"< {per_mille}) ORDER BY verdict <> 'not_ddos' DESC, hash(src, window_start) "
        f"LIMIT {int(points)}")
    drawn = {(r["src"], r["start_ns"]) for r in rows}
    missing = sorted(queued - drawn)[:1000]
    if missing:
        sources = ", ".join(str(int(src)) for src in sorted({src for src, _ in missing}))
        wanted = set(missing)
        rows = rows + [r for r in data.query(
            "SELECT * EXCLUDE (src6), epoch_ns(window_start) AS start_ns FROM verdicts_by_src "
            f"WHERE src IN ({sources}) ORDER BY src, window_start")
            if (r["src"], r["start_ns"]) in wanted]
    if len(rows) < 3:
        return out
    names = feature_columns(set(rows[0]))
    X = np.array([[r[n] if r[n] is not None else 0.0 for n in names] for r in rows], float)
    X = np.sign(X) * np.log1p(np.abs(X))
    spread = X.std(axis=0)
    X = (X - X.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    pca = PCA(n_components=2, svd_solver="full").fit(X)
    xy = pca.transform(X)
    out["axes"] = [{"component": i + 1, "variance": float(pca.explained_variance_ratio_[i]),
                    "features": [{"name": names[j], "loading": float(pca.components_[i, j])}
                                 for j in np.argsort(-np.abs(pca.components_[i]))[:3]]}
                   for i in range(2)]
    out["points"] = [{"ip": ipv4_text(r["src"]), "src": r["src"],
                      "window_start": r["start_ns"], "verdict": r["verdict"],
                      "decided_by": r["decided_by"], "confidence": _number(r["confidence"]),
                      "packets": r["packets"], "queued": (r["src"], r["start_ns"]) in queued,
                      "x": float(x), "y": float(y)} for r, (x, y) in zip(rows, xy, strict=True)]
    out.update(sampled=len(rows), windows=sum(counts.values()), not_ddos_per_mille=per_mille)
    return out


# -- dark web ---------------------------------------------------------------------------------
# one row per listing version (its page's hash): a topics directory keeps a copy of the crawl
# it modelled (with times typed, where the crawl's JSON Lines has text), and a crawl seen
# twice under --data is the same crawl
_LISTINGS = ("(SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY market, url, "
             "page_sha256 ORDER BY crawled_at) AS copy FROM {kind}) WHERE copy = 1)")


def _listing_kind(data: DataSource) -> str | None:
    return next((k for k in ("listings", "topic_listings") if data.has(k)), None)


def _listings(data: DataSource) -> str | None:
    kind = _listing_kind(data)
    return None if kind is None else _LISTINGS.format(kind=kind)


def darkweb(data: DataSource, q: str | None = None, limit: int = 100) -> dict[str, Any]:
    """Markets and their crawls, listings (newest first, ``q`` in the title), and the topic
    models fitted on them: topics with words, representative products and trends."""
    out: dict[str, Any] = {"markets": [], "listings": [], "models": [], "q": q}
    source = _listings(data)
    if source is not None:
        out["markets"] = data.query(
            "SELECT market, count(DISTINCT url) AS listings, count(DISTINCT vendor) AS "
            "vendors, min(crawled_at) AS first_crawled, max(crawled_at) AS last_crawled, "
            f"count(DISTINCT category) AS categories FROM {source} GROUP BY market "
            "ORDER BY listings DESC, market")
        # every crawl counts here, also those that found a listing unchanged
        days = {r["market"]: r["n"] for r in data.query(
            "SELECT market, count(DISTINCT left(crawled_at::VARCHAR, 10)) AS n FROM "
            f'"{_listing_kind(data)}" GROUP BY market')}
        out["markets"] = [{**m, "crawl_days": days.get(m["market"], 0)} for m in out["markets"]]
        where, params = "", []
        if q:
            where, params = "WHERE contains(lower(title), lower(?))", [q]
        out["listings"] = data.query(
            "SELECT market, url, title, vendor, price, currency, category, crawled_at "
            f"FROM {source} {where} ORDER BY crawled_at DESC, url LIMIT {int(limit)}", params)
    for path, document in data.documents("topic_summaries"):
        out["models"].append(_topic_model(path, document, data.catalog.root))
    return out


def _topic_model(path: Any, document: dict[str, Any], root: Any) -> dict[str, Any]:
    trends = document.get("trends") or []
    topics = []
    for topic in document.get("topics") or []:
        topics.append({
            "id": topic.get("id"), "label": topic.get("label"),
            "words": (topic.get("words") or [])[:12],
            "prevalence": topic.get("prevalence"), "coherence_npmi": topic.get("coherence_npmi"),
            "products": (topic.get("products") or [])[:5],
            "trend": [{"period": t.get("period"), "market": t.get("market"),
                       "prevalence": _at(t.get("prevalence"), topic.get("id"))}
                      for t in trends]})
    return {"path": str(path.parent.relative_to(root)), "model": document.get("model") or {},
            "topics": topics}


def _at(values: Any, index: Any) -> Any:
    ok = isinstance(values, list) and isinstance(index, int) and 0 <= index < len(values)
    return values[index] if ok else None


def listing(data: DataSource, url: str) -> dict[str, Any] | None:
    """Every crawled version of one listing, and its topic mixture in each model."""
    source = _listings(data)
    if source is None:
        return None
    versions = data.query(f"SELECT * EXCLUDE (copy) FROM {source} WHERE url = ? "
                          "ORDER BY crawled_at", [url])
    if not versions:
        return None
    topics = []
    for path, document in data.documents("topic_summaries"):
        labels = {t.get("id"): t.get("label") for t in document.get("topics") or []}
        for doc in document.get("documents") or []:
            if doc.get("url") == url and doc.get("topic") is not None:
                topics.append({"model": str(path.parent.relative_to(data.catalog.root)),
                               "topic": doc["topic"], "label": labels.get(doc["topic"]),
                               "mixture": doc.get("mixture"),
                               "crawled_at": doc.get("crawled_at")})
    return {"url": url, "versions": versions, "topics": topics}


# -- PP-ELM rounds ----------------------------------------------------------------------------
def ppml_rounds(state: Any, data: DataSource) -> dict[str, Any]:
    """The rounds of a PP-ELM aggregator's state directory (read only): parties in and
    waiting, quorum, deadline, whether the aggregate was released and a model published, and
    the accuracy parties reported for that model (``ppml evaluate``: counts and rates only;
    no data value exists anywhere here, and ciphertexts are only counted)."""
    import hashlib
    import io
    import json

    import numpy as np

    from darkscope.errors import DarkscopeError
    from darkscope.ppml.rounds import RoundConfig
    from darkscope.ppml.wire import decode

    out: dict[str, Any] = {"state": None if state is None else str(state), "rounds": [],
                           "problems": []}
    evaluations = [doc for _, doc in data.documents("ppml_evaluations")
                   if isinstance(doc, dict)]
    if state is None:
        return out
    for folder in sorted((state / "rounds").glob("*/")):
        try:
            message = decode((folder / "round.dsp").read_bytes(), str(folder / "round.dsp"))
            config = RoundConfig.from_json(message.header["config"])
        except (OSError, KeyError, ValueError, DarkscopeError) as exc:
            out["problems"].append({"round": folder.name, "error": str(exc)})
            continue
        contributed = sorted(p.stem for p in (folder / "contributions").glob("*.dsp"))
        model_path = folder / "model.npz"
        model = None
        if model_path.is_file():
            raw = model_path.read_bytes()
            digest = hashlib.sha256(raw).hexdigest()
            try:
                with np.load(io.BytesIO(raw)) as arrays:
                    meta = json.loads(bytes(arrays["meta"]).decode())
            except (OSError, ValueError, KeyError) as exc:
                meta = {"error": str(exc)}
            reports = [{k: e.get(k) for k in ("party", "rows", "accuracy", "per_class",
                                              "evaluated_at")}
                       for e in evaluations
                       if e.get("round") == config.round_id and e.get("model_sha256") == digest]
            accuracies = [r["accuracy"] for r in reports if isinstance(r["accuracy"], float)]
            model = {"sha256": digest, "bytes": len(raw), "C": meta.get("C"),
                     "classes": meta.get("classes"), "published": _iso(datetime.fromtimestamp(
                         model_path.stat().st_mtime, UTC)),
                     "evaluations": reports,
                     "accuracy_mean": (sum(accuracies) / len(accuracies)) if accuracies
                     else None}
        closed = config.closed()
        out["rounds"].append({
            "round": config.round_id, "backend": config.backend,
            "parties": list(config.parties), "contributed": contributed,
            "waiting": [p for p in config.parties if p not in contributed],
            "quorum": config.quorum or len(config.parties), "deadline": config.deadline or None,
            "closed": closed, "failed": closed and len(contributed) < (
                config.quorum or len(config.parties)),
            "released": (folder / "aggregate.dsp").is_file(), "n_hidden": config.n_hidden,
            "classes": list(config.classes), "model": model,
            "status": ("model published" if model else "released" if (
                folder / "aggregate.dsp").is_file() else "failed" if closed and len(
                contributed) < (config.quorum or len(config.parties)) else "waiting")})
    return out
