"""What each page shows, as plain data (the JSON API returns exactly this).

Every function takes the data source and returns JSON-ready dicts; templates only lay it out.
Addresses leave as text, times as ISO 8601 UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from darkscope.web.data import DataSource, Host, TimeRange, ipv4_text

TOOLS = ("mirai", "zmap", "masscan")
TOP = 10


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def _clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _iso(v) for k, v in row.items()} for row in rows]


def _host_of(row: dict[str, Any], v4: str = "src", v6: str = "src6") -> str | None:
    return row.get(v6) or ipv4_text(row.get(v4))


def overview(data: DataSource, span: TimeRange) -> dict[str, Any]:
    window = span.params()
    out: dict[str, Any] = {"range": {"start": _iso(span.start), "end": _iso(span.end),
                                     "name": span.name},
                           "hourly": [], "top_ports": [], "top_victims": [],
                           "current_attacks": [], "tools": {}, "totals": {}}
    if data.has("verdicts"):
        out["hourly"] = _clean(data.query(
            "SELECT date_trunc('hour', window_start) AS hour, verdict, "
            "sum(packets)::BIGINT AS packets, count(DISTINCT src) + count(DISTINCT "
            + _src6(data) + ") AS hosts FROM verdicts "
            "WHERE window_start >= ? AND window_start < ? GROUP BY ALL ORDER BY hour, verdict",
            window))
        totals = data.query(
            "SELECT verdict, count(*) AS windows, sum(packets)::BIGINT AS packets FROM verdicts "
            "WHERE window_start >= ? AND window_start < ? GROUP BY verdict", window)
        out["totals"] = {r["verdict"]: {"windows": r["windows"], "packets": r["packets"]}
                         for r in totals}
    if data.has("packets"):
        out["top_ports"] = data.query(
            "SELECT proto, dport AS port, count(*) AS packets, count(DISTINCT src) AS hosts "
            "FROM packets WHERE ts >= ? AND ts < ? AND dport IS NOT NULL "
            f"GROUP BY ALL ORDER BY packets DESC LIMIT {TOP}", window)
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
        counts = data.query(
            "SELECT family, count(DISTINCT src) AS hosts FROM hosts "
            "WHERE period_start >= ? AND period_start < ? GROUP BY family", window)
        found = {r["family"]: r["hosts"] for r in counts}
        out["tools"] = {tool: int(found.get(tool, 0)) for tool in TOOLS}
    return out


def _src6(data: DataSource) -> str:
    return "src6" if "src6" in data.columns("verdicts") else "NULL"


def ip_context(data: DataSource, host: Host, sample: int = 50) -> dict[str, Any]:
    """Everything darkscope knows of one address, as a source and as a victim."""
    out: dict[str, Any] = {"ip": host.text, "first_seen": None, "last_seen": None,
                           "packets": 0, "windows": [], "sample": [], "ports": [],
                           "prefixes": [], "tools": [], "attacks": []}
    key_sql, key = ("src = ?", host.v4) if host.v4 is not None else ("src6 = ?", host.v6)
    if data.has("packets") and (host.v4 is not None or "src6" in data.columns("packets")):
        seen = data.query(f"SELECT min(ts) AS a, max(ts) AS b, count(*) AS n FROM packets "
                          f"WHERE {key_sql}", [key])[0]
        out.update(first_seen=_iso(seen["a"]), last_seen=_iso(seen["b"]), packets=seen["n"])
        columns = data.columns("packets")
        wanted = [c for c in ("ts", "dst", "dst6", "proto", "sport", "dport", "tcp_flags",
                              "ttl", "ip_id", "window", "tos", "ip_len") if c in columns]
        rows = data.query(f"SELECT {', '.join(wanted)} FROM packets WHERE {key_sql} "
                          f"ORDER BY ts LIMIT {int(sample)}", [key])
        out["sample"] = [{**r, "dst": _host_of(r, "dst", "dst6")} for r in _clean(rows)]
        for r in out["sample"]:
            r.pop("dst6", None)
        out["ports"] = data.query(
            f"SELECT proto, dport AS port, count(*) AS packets FROM packets WHERE {key_sql} "
            f"AND dport IS NOT NULL GROUP BY ALL ORDER BY packets DESC LIMIT {TOP}", [key])
        if host.v4 is not None:
            prefixes = data.query(
                "SELECT (dst >> 8) AS p, count(*) AS packets FROM packets WHERE src = ? "
                f"AND dst IS NOT NULL GROUP BY p ORDER BY packets DESC LIMIT {TOP}", [key])
            out["prefixes"] = [{"prefix": f"{ipv4_text(r['p'] << 8)}/24",
                                "packets": r["packets"]} for r in prefixes]
    if data.has("verdicts") and (host.v4 is not None or "src6" in data.columns("verdicts")):
        columns = data.columns("verdicts")
        extra = [c for c in ("model_version", "context_packets") if c in columns]
        features = [c for c in columns if c not in {
            "src", "src6", "window_start", "window_end", "packets", "verdict", "decided_by",
            "confidence", "model_version", "context_packets", "date", "hour"}]
        rows = data.query(
            "SELECT window_start, window_end, packets, verdict, decided_by, confidence"
            + "".join(f", {c}" for c in extra) + "".join(f', "{c}"' for c in sorted(features))
            + f" FROM verdicts WHERE {key_sql} ORDER BY window_start", [key])
        out["windows"] = [
            {**{k: v for k, v in r.items() if k not in features},
             "features": {k: r[k] for k in sorted(features)}} for r in _clean(rows)]
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
