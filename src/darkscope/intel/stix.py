"""Findings as one STIX 2.1 bundle, built with the OASIS ``stix2`` library.

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
its address (and a ``note`` when the expert wrote one). Measurements STIX has no property
for (packets, attack rate, reply ports) travel in a STIX 2.1 property extension that the
bundle defines (``extension-definition``), as the standard asks, not as bare custom
properties.
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from darkscope.intel.findings import ExpertLabel, Findings, Source, Victim

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


def _stix():
    try:
        import stix2
    except ImportError as exc:
        from darkscope.errors import DarkscopeError

        raise DarkscopeError("STIX export needs the stix2 library: pip install "
                             "'darkscope[intel]'") from exc
    return stix2


COLLECTIONS = ("scanners", "indicators", "victims")
# How an expert's label of a host bears on what the export says of it.
_OPINION = {("scanner", "scan"): "strongly-agree", ("scanner", "other"): "disagree",
            ("scanner", "ddos"): "strongly-disagree", ("victim", "ddos"): "strongly-agree",
            ("victim", "other"): "disagree", ("victim", "scan"): "strongly-disagree"}


def collections(findings: Findings, operator: str = "darkscope telescope",
                decay: timedelta = SCANNER_DECAY, victims: str = "full") -> dict[str, list[Any]]:
    """The STIX objects of ``findings`` by finding type (the TAXII collections): ``scanners``
    (addresses, infrastructure, observed-data, sightings, tools, expert opinions and notes),
    ``indicators`` (of confirmed sources, with their ``indicates`` relationships) and
    ``victims``; the identity (and the measurements' extension) is in each. ``victims``:
    ``full`` or ``prefix24``."""
    stix2 = _stix()

    def sid(kind: str, *key: object) -> str:
        digest = hashlib.sha256("|".join(map(str, (kind, operator, *key))).encode()).digest()
        return f"{kind}--{uuid.UUID(bytes=digest[:16], version=4)}"

    fixed = {"created": DEFINED, "modified": DEFINED}
    me = stix2.Identity(id=sid("identity"), name=operator, identity_class="organization",
                        description="Operator of a network telescope (darknet) monitored "
                                    "with darkscope", **fixed)
    measures = stix2.ExtensionDefinition(
        id=sid("extension-definition", "measures"), created_by_ref=me.id,
        name="darkscope telescope measurements", version="1.0.0",
        description="What a darkscope network telescope measured of a source or a victim",
        schema=MEASURES, extension_types=["property-extension"], **fixed)
    groups: dict[str, list[Any]] = {"scanners": [me, measures], "indicators": [me],
                                    "victims": [me, measures]}
    known: dict[str, Any] = {}

    def family(name: str) -> Any:
        if name not in known:
            if name == "mirai":
                known[name] = stix2.Malware(id=sid("malware", name), name="Mirai",
                                            is_family=True, malware_types=["bot", "worm"],
                                            created_by_ref=me.id, **fixed)
            else:
                known[name] = stix2.Tool(id=sid("tool", name), name=_TOOLS.get(name, name),
                                         tool_types=["information-gathering"],
                                         created_by_ref=me.id, **fixed)
            groups["scanners"].append(known[name])
        return known[name]

    # what an expert's label of an address can be about: (collection, finding, object ids)
    about: dict[str, list[tuple[str, str, list[str]]]] = {}
    for source in findings.sources:
        made = _source_objects(stix2, sid, me, measures.id, source,
                               [family(f) for f in source.families], decay)
        for obj in made:
            indicating = obj.type == "indicator" or getattr(obj, "relationship_type",
                                                            None) == "indicates"
            groups["indicators" if indicating else "scanners"].append(obj)
        about.setdefault(source.ip, []).append((
            "scanners", "scanner",
            [o.id for o in made if o.type in ("infrastructure", "indicator")]))
    for victim in findings.victims:
        made = _victim_objects(stix2, sid, me, measures.id, victim, victims)
        groups["victims"] += made
        if victims == "full":  # a label of a shared /24 would say which address it was
            about.setdefault(victim.ip, []).append(
                ("victims", "victim", [o.id for o in made if o.type == "observed-data"]))
    for label in findings.labels:
        for group, finding, refs in about.get(label.ip, []):
            groups[group] += _expert_objects(stix2, sid, me, label, finding, refs)
    # an address seen twice (a victim attacked twice, two victims of one /24) is one object
    return {name: list({o.id: o for o in reversed(objs)}.values())[::-1]
            for name, objs in groups.items()}


def bundle(findings: Findings, operator: str = "darkscope telescope",
           decay: timedelta = SCANNER_DECAY, victims: str = "full") -> Any:
    """A ``stix2.Bundle`` of ``findings``: every collection's objects once."""
    groups = collections(findings, operator, decay, victims)
    unique = {o.id: o for name in COLLECTIONS for o in groups[name]}
    return _stix().Bundle(objects=list(unique.values()))


def _expert_objects(stix2, sid: Callable[..., str], me: Any, label: ExpertLabel,
                    finding: str, refs: list[str]) -> list[Any]:
    """An ``opinion`` of the expert's label on what the export says of the address, and a
    ``note`` with what the expert wrote; authors are left out (names stay in-house)."""
    scope = ("every window of the host" if label.window_start is None
             else f"the window from {label.window_start.isoformat()}")
    key = (finding, label.id, label.ip, label.window_start, label.label, label.note, label.at)
    dated = {"created": label.at, "modified": label.at, "created_by_ref": me.id}
    out = [stix2.Opinion(id=sid("opinion", *key), opinion=_OPINION[(finding, label.label)],
                         object_refs=refs, **dated,
                         explanation=f"An expert labelled {scope} of {label.ip} "
                                     f"'{label.label}' in review")]
    if label.note:
        out.append(stix2.Note(id=sid("note", *key), abstract=f"Expert note on {label.ip}",
                              content=label.note, object_refs=refs, **dated))
    return out


def _address(stix2, ip: str) -> Any:
    kind = stix2.IPv4Address if ipaddress.ip_network(ip, strict=False).version == 4 \
        else stix2.IPv6Address
    return kind(value=ip)


def _measured(extension: str, **values: Any) -> dict[str, Any]:
    return {extension: {"extension_type": "property-extension", **values}}


def _source_objects(stix2, sid: Callable[..., str], me: Any, extension: str, source: Source,
                    families: list[Any], decay: timedelta) -> list[Any]:
    address = _address(stix2, source.ip)
    botnet = "mirai" in source.families
    last = max(source.last_seen, source.first_seen)
    seen = {"first_seen": source.first_seen, "last_seen": last}
    dated = {"created": source.first_seen, "modified": last}
    infrastructure = stix2.Infrastructure(
        id=sid("infrastructure", source.ip), **dated,
        name=f"scanner {source.ip}", created_by_ref=me.id,
        infrastructure_types=["botnet" if botnet else "reconnaissance"],
        description=f"Scanned the telescope: {source.packets:,} packets in "
                    f"{source.windows:,} host-windows", labels=list(source.tags) or None,
        confidence=round(100 * source.confidence), **seen)
    observed = stix2.ObservedData(
        id=sid("observed-data", source.ip), **dated,
        created_by_ref=me.id, first_observed=source.first_seen,
        last_observed=last, number_observed=max(source.windows, 1),
        object_refs=[address.id], extensions=_measured(extension, packets=source.packets))
    sighting = stix2.Sighting(
        id=sid("sighting", source.ip), **dated,
        created_by_ref=me.id, sighting_of_ref=infrastructure.id, count=min(source.windows,
                                                                           999_999_999),
        observed_data_refs=[observed.id], where_sighted_refs=[me.id], **seen)
    def related(source_ref: Any, kind: str, target: Any) -> Any:
        return stix2.Relationship(source_ref, kind, target, created_by_ref=me.id,
                                  id=sid("relationship", source_ref.id, kind, target.id),
                                  **dated)

    out = [address, infrastructure, observed, sighting,
           related(infrastructure, "consists-of", address)]
    out += [related(infrastructure, "hosts", f) for f in families]
    if source.confirmed:
        indicator = stix2.Indicator(
            id=sid("indicator", source.ip), **dated,
            name=f"telescope scanner {source.ip}", created_by_ref=me.id,
            description="Sent unsolicited traffic to unused addresses (a network telescope); "
                        "decided by " + ", ".join(source.decided_by or ("fingerprint",)),
            pattern=f"[{address.type}:value = '{source.ip}']", pattern_type="stix",
            indicator_types=["malicious-activity" if botnet else "anomalous-activity"],
            valid_from=source.first_seen, valid_until=last + decay,
            confidence=round(100 * source.confidence), labels=list(source.tags) or None)
        out += [indicator, related(indicator, "indicates", infrastructure)]
    return out


def _victim_objects(stix2, sid: Callable[..., str], me: Any, extension: str, victim: Victim,
                    mode: str) -> list[Any]:
    ip = victim.ip
    if mode == "prefix24":
        ip = str(ipaddress.ip_network(f"{ip}/24", strict=False))
    address = _address(stix2, ip)
    end = max(victim.end, victim.start)
    observed = stix2.ObservedData(
        # keyed by what is shared (a /24 stays a /24: the id must not let anyone test which
        # address of it was the victim)
        id=sid("observed-data", "attack", ip, victim.start.isoformat(), end.isoformat(),
               victim.packets),
        created=victim.start, modified=end,
        created_by_ref=me.id, first_observed=victim.start,
        last_observed=end, number_observed=1,
        object_refs=[address.id], labels=["ddos-victim"],
        extensions=_measured(extension,
                             estimated_attack_pps=round(victim.estimated_attack_pps, 3),
                             backscatter_packets=victim.packets, reply_ports=victim.ports))
    return [address, observed]
