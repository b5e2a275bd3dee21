"""Findings as a static MISP feed, built with PyMISP (MISP's own data model).

A feed directory, as MISP's "Feeds" page fetches it: one event per UTC day (``<uuid>.json``),
``manifest.json`` (every event's metadata, by uuid) and ``hashes.csv`` (the MD5 of every
attribute value with its event, for MISP's cache and correlation). In each day's event:

- every scanning source of that day is an ``ip-src`` attribute (category Network activity),
  ``to_ids`` only when confirmed (rule, expert, tool fingerprint), with its first/last seen, and
  tags for its tools (``misp-galaxy:botnet="Mirai"`` for Mirai; ``darkscope:tool="zmap"``) and
  for who decided (``darkscope:decided-by="rule:tcp-syn"``);
- every DDoS attack that began that day is a ``ddos`` object (MISP's object template): the
  victim as ``ip-dst`` (its /24 with ``--victims prefix24``), ``total-pps`` (the estimated
  attack rate), first/last seen, the attacked ports (``dst-port``: the ports the victim
  replied from), ``capture-origin`` "Indirect network capture (e.g. backscatter)" and
  ``type`` reflected-spoofed-attack;
- every scanner fingerprint rule mined in a period that began that day is a ``stix2-pattern``
  attribute (category Network activity; the pattern of :func:`darkscope.intel.stix.rule_pattern`),
  with its support in the comment and its tool family tagged. ``to_ids`` is off: a
  fingerprint describes a population of scanners, and a single packet matching it proves
  nothing; rules whose items no pattern states are left out, as in the STIX bundle.

Event uuids are derived from the operator and the day, and attribute and object uuids from
the event and what they say (UUID 5), so re-exporting a day updates its event in MISP instead
of adding a copy, or adding the same attributes to it again.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import uuid
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

from darkscope.intel.findings import Findings, Rule, Source, Victim
from darkscope.intel.stix import rule_pattern
from darkscope.io import atomic_path

_NAMESPACE = uuid.UUID("4c1d7a0e-2b7f-5a53-9c5e-6461726b7363")  # darkscope's own


def _pymisp():
    try:
        import pymisp
    except ImportError as exc:
        from darkscope.errors import DarkscopeError

        raise DarkscopeError("the MISP feed needs PyMISP: pip install 'darkscope[intel]'"
                             ) from exc
    return pymisp


def events(findings: Findings, operator: str, tlp: str = "clear",
           victims: str = "full") -> list[Any]:
    """One ``pymisp.MISPEvent`` per UTC day with a source or an attack."""
    pymisp = _pymisp()
    org = pymisp.MISPOrganisation()
    org.name = operator
    org.uuid = str(uuid.uuid5(_NAMESPACE, f"org:{operator}"))
    sources: dict[date, list[Source]] = defaultdict(list)
    for source in findings.sources:
        sources[source.day or source.first_seen.date()].append(source)
    attacks: dict[date, list[Victim]] = defaultdict(list)
    for victim in findings.victims:
        attacks[victim.start.date()].append(victim)
    rules: dict[date, list[tuple[Rule, str]]] = defaultdict(list)
    for rule in findings.rules:
        pattern = rule_pattern(rule)
        if pattern is not None:
            rules[rule.day or rule.first_period.date()].append((rule, pattern))
    out = []
    for day in sorted(set(sources) | set(attacks) | set(rules)):
        event = pymisp.MISPEvent()
        event.uuid = str(uuid.uuid5(_NAMESPACE, f"event:{operator}:{day.isoformat()}"))
        event.info = f"{operator}: network telescope findings of {day.isoformat()}"
        event.date = day
        event.analysis = 2          # completed: the day is judged
        event.threat_level_id = 3   # low: scanning and backscatter, seen from a darknet
        event.distribution = 3      # all communities: a feed is published to be shared
        event.Orgc = org
        event.add_tag(f"tlp:{tlp}")
        event.add_tag('darkscope:source="network-telescope"')
        for source in sources.get(day, []):
            _add_source(event, source)
        for victim in attacks.get(day, []):
            _add_attack(pymisp, event, victim, victims)
        for rule, pattern in rules.get(day, []):
            _add_rule(event, rule, pattern)
        _stable_uuids(event)
        out.append(event)
    return out


def _stable_uuids(event: Any) -> None:
    """Uuids from what each attribute and object says (a repeat of the same, counted)."""
    said: dict[str, int] = defaultdict(int)

    def stable(what: str) -> str:
        said[what] += 1
        return str(uuid.uuid5(_NAMESPACE, f"{event.uuid}:{what}:{said[what]}"))

    for attribute in event.attributes:
        attribute.uuid = stable(f"{attribute.type}={attribute.value}")
    for made in event.objects:
        made.uuid = stable(made.name + "|" + "|".join(
            f"{a.object_relation}={a.value}" for a in made.attributes))
        for attribute in made.attributes:
            attribute.uuid = stable(f"{made.uuid}:{attribute.object_relation}={attribute.value}")


def _add_source(event: Any, source: Source) -> None:
    attribute = event.add_attribute(
        "ip-src", source.ip, category="Network activity", to_ids=source.confirmed,
        comment=f"scanned the telescope: {source.packets} packets in {source.windows} "
                f"host-windows", first_seen=source.first_seen,
        last_seen=max(source.last_seen, source.first_seen))
    for family in source.families:
        attribute.add_tag('misp-galaxy:botnet="Mirai"' if family == "mirai"
                          else f'darkscope:tool="{family}"')
    for decided in source.decided_by:
        attribute.add_tag(f'darkscope:decided-by="{decided}"')


def _add_rule(event: Any, rule: Rule, pattern: str) -> None:
    attribute = event.add_attribute(
        "stix2-pattern", pattern, category="Network activity", to_ids=False,
        comment=f"scanner fingerprint {rule.text}: {rule.support_hosts} of "
                f"{rule.period_hosts} hosts (confidence {rule.confidence:.2f}, lift "
                f"{rule.lift:.2f}) in {rule.periods} period(s)",
        first_seen=rule.first_period, last_seen=rule.last_period)
    if rule.family == "mirai":
        attribute.add_tag('misp-galaxy:botnet="Mirai"')
    elif rule.family:
        attribute.add_tag(f'darkscope:tool="{rule.family}"')
    attribute.add_tag('darkscope:finding="scanner-fingerprint"')


def _add_attack(pymisp, event: Any, victim: Victim, mode: str) -> None:
    target = victim.ip if mode == "full" else str(
        ipaddress.ip_network(f"{victim.ip}/24", strict=False))
    attack = pymisp.MISPObject("ddos", standalone=False)
    attack.comment = (f"DDoS seen through its backscatter: {victim.packets} packets reached "
                      "the telescope")
    attack.add_attribute("ip-dst", target, to_ids=False)
    attack.add_attribute("total-pps", round(victim.estimated_attack_pps, 3))
    attack.add_attribute("first-seen", victim.start)
    attack.add_attribute("last-seen", max(victim.end, victim.start))
    attack.add_attribute("capture-origin", "Indirect network capture (e.g. backscatter)")
    attack.add_attribute("type", "reflected-spoofed-attack")
    # the victim replied from the ports under attack; ICMP errors carry no port
    for port in (p for p in victim.ports.split(",") if p.isdigit()):
        attack.add_attribute("dst-port", port)
    attack.add_attribute("text", f"backscatter packets: {victim.packets}; reply ports: "
                                 f"{victim.ports or 'none'}")
    event.add_object(attack)


def write_feed(made: list[Any], path: str | Path, overwrite: bool) -> Path:
    """The feed directory, written whole or not at all."""
    manifest: dict[str, Any] = {}
    hashes = io.StringIO()
    writer = csv.writer(hashes, lineterminator="\n")
    with atomic_path(path, overwrite) as tmp:
        tmp.mkdir()
        for event in made:
            feed = event.to_feed(with_meta=True)["Event"]
            for digest in feed.pop("_hashes"):
                writer.writerow([digest, event.uuid])
            manifest.update(feed.pop("_manifest"))
            (tmp / f"{event.uuid}.json").write_text(json.dumps({"Event": feed}, indent=1),
                                                    encoding="utf-8")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        (tmp / "hashes.csv").write_text(hashes.getvalue(), encoding="utf-8")
    return Path(path)
