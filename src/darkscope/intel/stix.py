"""Findings as STIX 2.1 objects, checked with the OASIS ``stix2`` library.

Per scanning source: its ``ipv4-addr``/``ipv6-addr``; an ``infrastructure`` (``botnet`` when
fingerprinted as Mirai, else ``reconnaissance``) that ``consists-of`` the address and
``hosts`` the ``malware`` Mirai or the ``tool`` ZMap / Masscan it was fingerprinted as; the
``observed-data`` of its windows; and a ``sighting`` of the infrastructure by the telescope's
``identity`` (count: host-windows; first/last seen). Only *confirmed* sources (a labelling rule,
an expert or a tool fingerprint decided them) also get an ``indicator``
(``[ipv4-addr:value = '…']``) that ``indicates`` the infrastructure, valid from the first
window until ``decay`` after the last: scanning addresses are bots and rented hosts whose
owners change within days, so an indicator that never expires blocks innocents. DDoS victims
are ``observed-data`` of the victim's address with the estimated attack rate, optionally
truncated to its /24. An expert's label, when exported, is an ``opinion`` on the objects of
its address (and a ``note`` when the expert wrote one). A scanner fingerprint rule is an
``indicator`` whose pattern is its items, each an observation of TCP traffic
(``[network-traffic:protocols[*] = 'tcp' AND network-traffic:dst_port = 23] AND …``, TCP
window and ToS as the IPFIX elements ``tcpWindowSize`` and ``ipClassOfService``), with a
``sighting`` (count: periods it was mined in) and, when most of its hosts were fingerprinted
as a tool, ``indicates`` that tool; rules with an item no STIX pattern can state (initial TTL,
option layout, a Masscan IP ID) are left out rather than shared broader than mined. Dark web
topics, only when asked, are a ``report`` of ``note``s, one per topic. Measurements STIX
has no property for (packets, attack rate, reply ports) travel in a STIX 2.1 property
extension that the bundle defines (``extension-definition``), as the standard asks, not as
bare custom properties.

The objects are plain dicts in exactly the form ``stix2`` serialises (the tests parse every
one back through the library and get it unchanged): building a ``stix2`` object costs about
0.9 ms (a third of it the pattern parser on each indicator), which made a /16's day of
sources tens of minutes. Here the library checks the first object of each shape (type and
properties) of every export, and the values that vary between objects of one shape are made
valid by construction: addresses parsed by :mod:`ipaddress`, timestamps formatted here,
counts clamped to STIX's bounds.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from darkscope.intel.findings import ExpertLabel, Findings, Rule, Source, Victim

Obj = dict[str, Any]
SCANNER_DECAY = timedelta(days=7)
# Objects are identified by what they describe (a hash of the operator and the finding, laid
# out as the UUIDv4 that STIX 2.1 asks of domain objects) and
# dated by what was seen, so exporting the same findings again gives the same objects, and a
# source seen again gives a new version (later ``modified``) of the same ones: a consumer
# (MISP, a TAXII client, an SIEM) updates instead of piling up copies.
DEFINED = datetime(2026, 1, 1, tzinfo=UTC)   # created/modified of the fixed objects
MEASURES = ("Telescope measurements as properties: on observed-data of a scanning source, "
            "packets (integer: packets it sent to the telescope); on observed-data of a DDoS "
            "victim, estimated_attack_pps (number: attack packets per second, scaled by the "
            "telescope's share of the address space), backscatter_packets (integer) and "
            "reply_ports (string: the victim's reply ports, most packets first, "
            "'icmp-<type>' for ICMP).")
_TOOLS = {"zmap": "ZMap", "masscan": "Masscan"}
# STIX 2.1 §2.9: cyber-observable ids are UUIDv5 in this namespace over the canonical JSON of
# the object's ID contributing properties (``value`` for addresses).
_SCO_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
_MOST = 999_999_999   # the largest count and number_observed STIX allows
# The object path of each item kind a STIX pattern can state, and its values.
_ITEM_PATHS = {"dport": "network-traffic:dst_port",
               "win": "network-traffic:ipfix.tcpWindowSize",
               "tos": "network-traffic:ipfix.ipClassOfService",
               "ipid": "network-traffic:ipfix.fragmentIdentification"}
_ITEM_VALUES = {"ipid": {"zmap": "54321", "zero": "0"}}
_FAMILY_NAMES = {"mirai": "Mirai", **_TOOLS}
_LITERALS = re.compile(r"'[^']*'|\b\d+\b")   # what varies between patterns of one shape


def _stix():
    try:
        import stix2
    except ImportError as exc:
        from darkscope.errors import DarkscopeError

        raise DarkscopeError("STIX export needs the stix2 library: pip install "
                             "'darkscope[intel]'") from exc
    return stix2


COLLECTIONS = ("scanners", "indicators", "rules", "victims")   # served over TAXII
# How an expert's label of a host bears on what the export says of it.
_OPINION = {("scanner", "scan"): "strongly-agree", ("scanner", "other"): "disagree",
            ("scanner", "ddos"): "strongly-disagree", ("victim", "ddos"): "strongly-agree",
            ("victim", "other"): "disagree", ("victim", "scan"): "strongly-disagree"}


def collections(findings: Findings, operator: str = "darkscope telescope",
                decay: timedelta = SCANNER_DECAY, victims: str = "full") -> dict[str, list[Obj]]:
    """The STIX objects of ``findings`` by finding type (the TAXII collections): ``scanners``
    (addresses, infrastructure, observed-data, sightings, tools, expert opinions and notes),
    ``indicators`` (of confirmed sources, with their ``indicates`` relationships), ``rules``
    (scanner fingerprints and their sightings), ``victims``, and ``darkweb`` (topics; empty
    unless the findings hold some); the identity (and the measurements' extension) is in
    each. ``victims``: ``full`` or ``prefix24``."""
    def sid(kind: str, *key: object) -> str:
        digest = hashlib.sha256("|".join(map(str, (kind, operator, *key))).encode()).digest()
        return f"{kind}--{uuid.UUID(bytes=digest[:16], version=4)}"

    defined = _made(DEFINED)
    fixed = {"created": defined, "modified": defined}
    me = _sdo("identity", sid("identity"), fixed, name=operator, identity_class="organization",
              description="Operator of a network telescope (darknet) monitored with darkscope")
    measures = _sdo("extension-definition", sid("extension-definition", "measures"), fixed,
                    created_by_ref=me["id"], name="darkscope telescope measurements",
                    description="What a darkscope network telescope measured of a source or "
                                "a victim",
                    schema=MEASURES, version="1.0.0", extension_types=["property-extension"])
    groups: dict[str, list[Obj]] = {"scanners": [me, measures], "indicators": [me],
                                    "rules": [me], "victims": [me, measures],
                                    "darkweb": [me] if findings.topics else []}
    known: dict[str, Obj] = {}

    def family(name: str) -> Obj:
        if name not in known:
            if name == "mirai":
                known[name] = _sdo("malware", sid("malware", name), fixed,
                                   created_by_ref=me["id"], name="Mirai",
                                   malware_types=["bot", "worm"], is_family=True)
            else:
                known[name] = _sdo("tool", sid("tool", name), fixed, created_by_ref=me["id"],
                                   name=_TOOLS.get(name, name),
                                   tool_types=["information-gathering"])
            groups["scanners"].append(known[name])
        return known[name]

    # what an expert's label of an address can be about: (collection, finding, object ids)
    about: dict[str, list[tuple[str, str, list[str]]]] = {}
    for source in findings.sources:
        made = _source_objects(sid, me["id"], measures["id"], source,
                               [family(f) for f in source.families], decay)
        for obj in made:
            indicating = obj["type"] == "indicator" or obj.get("relationship_type") == \
                "indicates"
            groups["indicators" if indicating else "scanners"].append(obj)
        about.setdefault(source.ip, []).append((
            "scanners", "scanner",
            [o["id"] for o in made if o["type"] in ("infrastructure", "indicator")]))
    for rule in findings.rules:
        pattern = rule_pattern(rule)
        if pattern is not None:
            tool = family(rule.family) if rule.family else None
            groups["rules"] += [*([tool] if tool else []),
                                *_rule_objects(sid, me["id"], rule, pattern, tool, decay)]
    for summary in findings.topics:
        groups["darkweb"] += _topic_objects(sid, me["id"], summary)
    for victim in findings.victims:
        made = _victim_objects(sid, me["id"], measures["id"], victim, victims)
        groups["victims"] += made
        if victims == "full":  # a label of a shared /24 would say which address it was
            about.setdefault(victim.ip, []).append(
                ("victims", "victim", [o["id"] for o in made if o["type"] == "observed-data"]))
    for label in findings.labels:
        for group, finding, refs in about.get(label.ip, []):
            groups[group] += _expert_objects(sid, me["id"], label, finding, refs)
    # an address seen twice (a victim attacked twice, two victims of one /24) is one object
    out = {name: list({o["id"]: o for o in reversed(objs)}.values())[::-1]
           for name, objs in groups.items()}
    check(o for objs in out.values() for o in objs)
    return out


def bundle(findings: Findings, operator: str = "darkscope telescope",
           decay: timedelta = SCANNER_DECAY, victims: str = "full") -> Obj:
    """A STIX bundle of ``findings``: every collection's objects once."""
    groups = collections(findings, operator, decay, victims)
    unique = {o["id"]: o for objects in groups.values() for o in objects}
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": list(unique.values())}


def check(objects: Iterable[Obj]) -> None:
    """Have ``stix2`` parse the first object of each shape (its type, its properties and its
    pattern without literals): a missing or misnamed property, a value outside its
    vocabulary, a reference to the wrong type or a pattern the STIX pattern grammar rejects
    fails here, at once, as a bug of darkscope's. Address ids are compared with the ones the
    library derives."""
    stix2 = _stix()
    seen: set[tuple[str, ...]] = set()
    for obj in objects:
        shape = (obj["type"], *obj, *obj.get("extensions", {}),
                 _LITERALS.sub("", obj.get("pattern", "")))
        if shape in seen:
            continue
        seen.add(shape)
        parsed = stix2.parse(obj, allow_custom=False, version="2.1")
        if obj["type"].endswith("-addr") and type(parsed)(value=obj["value"]).id != obj["id"]:
            raise AssertionError(f"darkscope's id of {obj['value']} is not the one STIX 2.1 "
                                 "derives")


def _made(when: datetime) -> str:
    """``created``/``modified`` as stix2 writes them: at least milliseconds (STIX 2.1 §3.2)."""
    when = when.astimezone(UTC)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{when.microsecond:06d}".rstrip("0").ljust(23, "0") + "Z"


def _stamp(when: datetime) -> str:
    """Any other STIX timestamp as stix2 writes it: the fraction of a second only as long as
    it needs to be."""
    when = when.astimezone(UTC)
    text = f"{when:%Y-%m-%dT%H:%M:%S}"
    return (f"{text}.{when.microsecond:06d}".rstrip("0") if when.microsecond else text) + "Z"


def _sdo(kind: str, sid: str, dated: dict[str, str], **properties: Any) -> Obj:
    """A domain or relationship object; properties that are None are left out, as STIX asks
    of optional properties without a value."""
    return {"type": kind, "spec_version": "2.1", "id": sid, **dated,
            **{k: v for k, v in properties.items() if v is not None}}


def _address(ip: str) -> Obj:
    kind = "ipv4-addr" if ipaddress.ip_network(ip, strict=False).version == 4 else "ipv6-addr"
    contributing = json.dumps({"value": ip}, separators=(",", ":"), ensure_ascii=False)
    return {"type": kind, "spec_version": "2.1",
            "id": f"{kind}--{uuid.uuid5(_SCO_NAMESPACE, contributing)}", "value": ip}


def _measured(extension: str, **values: Any) -> dict[str, Any]:
    return {extension: {"extension_type": "property-extension", **values}}


def _confidence(value: float) -> int:
    return min(max(round(100 * value), 0), 100)


def _expert_objects(sid: Callable[..., str], me: str, label: ExpertLabel,
                    finding: str, refs: list[str]) -> list[Obj]:
    """An ``opinion`` of the expert's label on what the export says of the address, and a
    ``note`` with what the expert wrote; authors are left out (names stay in-house)."""
    scope = ("every window of the host" if label.window_start is None
             else f"the window from {label.window_start.isoformat()}")
    key = (finding, label.id, label.ip, label.window_start, label.label, label.note, label.at)
    at = _made(label.at)
    dated = {"created": at, "modified": at}
    out = [_sdo("opinion", sid("opinion", *key), dated, created_by_ref=me,
                explanation=f"An expert labelled {scope} of {label.ip} '{label.label}' in "
                            "review",
                opinion=_OPINION[(finding, label.label)], object_refs=refs)]
    if label.note:
        out.append(_sdo("note", sid("note", *key), dated, created_by_ref=me,
                        abstract=f"Expert note on {label.ip}", content=label.note,
                        object_refs=refs))
    return out


def _source_objects(sid: Callable[..., str], me: str, extension: str, source: Source,
                    families: list[Obj], decay: timedelta) -> list[Obj]:
    address = _address(source.ip)
    botnet = "mirai" in source.families
    last = max(source.last_seen, source.first_seen)
    first_seen, last_seen = _stamp(source.first_seen), _stamp(last)
    dated = {"created": _made(source.first_seen), "modified": _made(last)}
    confidence = _confidence(source.confidence)
    labels = list(source.tags) or None
    infrastructure = _sdo(
        "infrastructure", sid("infrastructure", source.ip), dated, created_by_ref=me,
        name=f"scanner {source.ip}",
        description=f"Scanned the telescope: {source.packets:,} packets in "
                    f"{source.windows:,} host-windows",
        infrastructure_types=["botnet" if botnet else "reconnaissance"],
        first_seen=first_seen, last_seen=last_seen, labels=labels, confidence=confidence)
    observed = _sdo(
        "observed-data", sid("observed-data", source.ip), dated, created_by_ref=me,
        first_observed=first_seen, last_observed=last_seen,
        number_observed=min(max(source.windows, 1), _MOST), object_refs=[address["id"]],
        extensions=_measured(extension, packets=source.packets))
    sighting = _sdo(
        "sighting", sid("sighting", source.ip), dated, created_by_ref=me,
        first_seen=first_seen, last_seen=last_seen, count=min(source.windows, _MOST),
        sighting_of_ref=infrastructure["id"], observed_data_refs=[observed["id"]],
        where_sighted_refs=[me])

    def related(source_ref: str, kind: str, target_ref: str) -> Obj:
        return _sdo("relationship", sid("relationship", source_ref, kind, target_ref), dated,
                    created_by_ref=me, relationship_type=kind, source_ref=source_ref,
                    target_ref=target_ref)

    out = [address, infrastructure, observed, sighting,
           related(infrastructure["id"], "consists-of", address["id"])]
    out += [related(infrastructure["id"], "hosts", f["id"]) for f in families]
    if source.confirmed:
        indicator = _sdo(
            "indicator", sid("indicator", source.ip), dated, created_by_ref=me,
            name=f"telescope scanner {source.ip}",
            description="Sent unsolicited traffic to unused addresses (a network telescope); "
                        "decided by " + ", ".join(source.decided_by or ("fingerprint",)),
            indicator_types=["malicious-activity" if botnet else "anomalous-activity"],
            pattern=f"[{address['type']}:value = '{source.ip}']", pattern_type="stix",
            pattern_version="2.1",
            valid_from=first_seen, valid_until=_stamp(last + decay), labels=labels,
            confidence=confidence)
        out += [indicator, related(indicator["id"], "indicates", infrastructure["id"])]
    return out


def rule_pattern(rule: Rule) -> str | None:
    """The STIX pattern of a fingerprint rule: one observation of TCP traffic per item, all
    of which its hosts showed; None when an item is one a pattern cannot state."""
    observations = []
    for item in rule.items:
        kind, _, value = item.partition("=")
        value = _ITEM_VALUES.get(kind, {}).get(value, value)
        if kind not in _ITEM_PATHS or not value.isdigit():
            return None
        observations.append(f"[network-traffic:protocols[*] = 'tcp' AND "
                            f"{_ITEM_PATHS[kind]} = {int(value)}]")
    return " AND ".join(observations)


def _rule_objects(sid: Callable[..., str], me: str, rule: Rule, pattern: str,
                  tool: Obj | None, decay: timedelta) -> list[Obj]:
    dated = {"created": _made(rule.first_period), "modified": _made(rule.last_period)}
    first, last = _stamp(rule.first_period), _stamp(rule.last_period)
    family = _FAMILY_NAMES.get(rule.family or "", rule.family)
    periods = "period" if rule.periods == 1 else "periods"
    indicator = _sdo(
        "indicator", sid("indicator", "rule", *rule.items), dated, created_by_ref=me,
        name=f"scanner fingerprint {', '.join(rule.items)}",
        description=f"Items that hosts scanning a network telescope carried together in their "
                    f"TCP SYNs, mined as the rule {rule.text}: {rule.support_hosts:,} of "
                    f"{rule.period_hosts:,} hosts in its busiest period (confidence "
                    f"{rule.confidence:.2f}, lift {rule.lift:.2f}); mined in {rule.periods:,} "
                    f"{periods} from {first} to {last}. Every observation must come from one "
                    "source for the pattern to mean what was mined"
                    + (f"; {rule.family_share:.0%} of its hosts were fingerprinted as {family}"
                       if family else "") + ".",
        indicator_types=["attribution"] if family else ["anomalous-activity"],
        pattern=pattern, pattern_type="stix", pattern_version="2.1", valid_from=first,
        valid_until=_stamp(rule.last_period + decay),
        labels=["scanner-fingerprint", *([f"tool:{rule.family}"] if family else [])],
        confidence=_confidence(rule.confidence))
    out = [indicator, _sdo(
        "sighting", sid("sighting", "rule", *rule.items), dated, created_by_ref=me,
        first_seen=first, last_seen=last, count=min(rule.periods, _MOST),
        sighting_of_ref=indicator["id"], where_sighted_refs=[me])]
    if tool is not None:
        out.append(_sdo("relationship", sid("relationship", indicator["id"], "indicates",
                                            tool["id"]), dated, created_by_ref=me,
                        relationship_type="indicates", source_ref=indicator["id"],
                        target_ref=tool["id"]))
    return out


def _topic_objects(sid: Callable[..., str], me: str, summary: dict[str, Any]) -> list[Obj]:
    """A ``report`` on one topic model of dark web listings, and a ``note`` per topic with
    its words, representative products and share of listings over time."""
    documents = summary.get("documents") or []
    topics = summary.get("topics") or []
    if not topics:
        return []
    markets = sorted({str(d["market"]) for d in documents if d.get("market")})
    crawled = sorted(_when(d["crawled_at"]) for d in documents if d.get("crawled_at"))
    first, last = (crawled[0], crawled[-1]) if crawled else (DEFINED, DEFINED)
    report_id = sid("report", "topics", *markets, first.isoformat(), last.isoformat(),
                    len(topics))
    dated = {"created": _made(last), "modified": _made(last)}
    notes = []
    for topic in topics:
        lines = [f"Topic {topic.get('id')}: {topic.get('label', '')}",
                 "Words: " + ", ".join(f"{word} ({weight:.3f})"
                                       for word, weight in (topic.get("words") or [])[:15]
                                       if weight >= 0.0005)]
        for product in (topic.get("products") or [])[:5]:
            lines.append(f"Product: {product.get('title', '')} by {product.get('vendor', '?')} "
                         f"on {product.get('market', '?')}, {product.get('price', '?')} "
                         f"{product.get('currency', '')} ({product.get('url', '')})")
        for trend in summary.get("trends") or []:
            shares = trend.get("prevalence") or []
            index = topic.get("id")
            if isinstance(index, int) and index < len(shares):
                lines.append(f"Share of {trend.get('market')}'s listings in "
                             f"{trend.get('period')}: {shares[index]:.0%}")
        notes.append(_sdo("note", sid("note", report_id, topic.get("id")), dated,
                          created_by_ref=me, abstract=lines[0], content="\n".join(lines),
                          object_refs=[report_id]))
    model = summary.get("model") or {}
    report = _sdo(
        "report", report_id, dated, created_by_ref=me,
        name="Dark web market topics: " + (", ".join(markets) or "unnamed markets"),
        description=f"{len(topics)} topics (LDA, darkscope topics fit) of "
                    f"{model.get('listings', len(documents))} listings crawled from "
                    f"{_stamp(first)} to {_stamp(last)}",
        report_types=["threat-report"], published=_stamp(last),
        object_refs=[n["id"] for n in notes])
    return [report, *notes]


def _when(text: str) -> datetime:
    when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _victim_objects(sid: Callable[..., str], me: str, extension: str, victim: Victim,
                    mode: str) -> list[Obj]:
    ip = victim.ip
    if mode == "prefix24":
        ip = str(ipaddress.ip_network(f"{ip}/24", strict=False))
    address = _address(ip)
    end = max(victim.end, victim.start)
    observed = _sdo(
        # keyed by what is shared (a /24 stays a /24: the id must not let anyone test which
        # address of it was the victim)
        "observed-data", sid("observed-data", "attack", ip, victim.start.isoformat(),
                             end.isoformat(), victim.packets),
        {"created": _made(victim.start), "modified": _made(end)}, created_by_ref=me,
        first_observed=_stamp(victim.start), last_observed=_stamp(end), number_observed=1,
        object_refs=[address["id"]], labels=["ddos-victim"],
        extensions=_measured(extension,
                             estimated_attack_pps=round(victim.estimated_attack_pps, 3),
                             backscatter_packets=victim.packets, reply_ports=victim.ports))
    return [address, observed]
