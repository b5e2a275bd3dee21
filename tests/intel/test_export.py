"""``darkscope export`` on the held-out simulated traffic, judged by the CLI as a user does:
blocklists hold scanners and never victims (checked against the simulator's truth), known
research scanners are left out, and every STIX bundle passes the official STIX 2.1 validator."""

from __future__ import annotations

import csv
import ipaddress
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

stix2 = pytest.importorskip("stix2")
DARKSCOPE = str(Path(sys.executable).parent / "darkscope")
TELESCOPE = "203.0.0.0/16"
CENSYS = "162.142.125.7"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DARKSCOPE, *args, "--no-progress"], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def judged(sim_heldout, model_dir, tmp_path_factory) -> Path:
    """Verdicts, victims and host attributions of the held-out day, and one crafted verdict
    of a Censys scanner, in one directory (as a monitor leaves them)."""
    out = tmp_path_factory.mktemp("judged")
    done = _run("backscatter", "detect", str(sim_heldout.table), "--model", str(model_dir),
                "--telescope", TELESCOPE, "-o", str(out / "verdicts.parquet"),
                "--victims", str(out / "victims.parquet"), "--no-store")
    assert done.returncode == 0, done.stderr
    done = _run("hosts", "attribute", str(sim_heldout.table), "-o", str(out / "hosts.parquet"))
    assert done.returncode == 0, done.stderr
    # hourly rules, with items a STIX pattern can state (ports, windows, ZMap's IP ID) and
    # ones it cannot (initial TTL, other IP IDs)
    done = _run("rules", "mine", str(sim_heldout.table), "--period", "1h", "--min-hosts", "10",
                "--min-lift", "0", "--items", "win,tos,dport,ttl,ipid", "--top", "0", "-o",
                str(out / "rules.parquet"))
    assert done.returncode == 0, done.stderr
    verdicts = pq.read_table(out / "verdicts.parquet")
    row = verdicts.slice(0, 1).to_pylist()[0]
    row.update(src=int(ipaddress.IPv4Address(CENSYS)), verdict="not_ddos", decided_by="model")
    pq.write_table(pa.Table.from_pylist([row], schema=verdicts.schema),
                   out / "censys-verdicts.parquet")
    (out / "listings.jsonl").write_text(json.dumps(
        {"url": "http://x.onion/1", "title": "secret listing", "market": "m"}) + "\n")
    return out


_PATHS = {"dport": "dst_port", "win": "ipfix.tcpWindowSize", "tos": "ipfix.ipClassOfService",
          "ipid": "ipfix.fragmentIdentification"}


def _expected_rules(judged: Path) -> tuple[dict[str, list[dict]], int]:
    """The STIX pattern of every distinct rule itemset, with its rows, and how many itemsets
    have an item no pattern states (worked out here independently of darkscope's code)."""
    patterns: dict[str, list[dict]] = {}
    unstated = set()
    for row in pq.read_table(judged / "rules.parquet").to_pylist():
        items = sorted(row["antecedent"] + row["consequent"],
                       key=lambda i: (i.split("=")[0], int(i.split("=")[1])
                                      if i.split("=")[1].isdigit() else 0))
        terms = []
        for item in items:
            kind, value = item.split("=")
            value = {"zmap": "54321", "zero": "0"}.get(value, value) if kind == "ipid" else value
            if kind not in _PATHS or not value.isdigit():
                unstated.add(tuple(items))
                break
            terms.append(f"[network-traffic:protocols[*] = 'tcp' AND network-traffic:"
                         f"{_PATHS[kind]} = {value}]")
        else:
            patterns.setdefault(" AND ".join(terms), []).append(row)
    return patterns, len(unstated)


def _truth(sim) -> dict[str, bool]:
    table = pq.read_table(sim.truth, columns=["src", "ddos"]).to_pylist()
    return {str(ipaddress.IPv4Address(r["src"])): r["ddos"] for r in table}


def test_blocklist_holds_scanners_never_victims(judged, sim_heldout, tmp_path) -> None:
    out = tmp_path / "blocklist.csv"
    done = _run("export", "csv", str(judged), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "left out known scanners: 1 Censys" in done.stderr
    assert "listings.jsonl: not a verdicts, victims, hosts or rules table" in done.stderr
    rows = list(csv.DictReader(out.open()))
    assert rows and list(rows[0]) == ["ip", "first_seen", "last_seen", "kind", "tags",
                                      "confidence"]
    truth = _truth(sim_heldout)
    listed = {r["ip"] for r in rows}
    assert CENSYS not in listed
    known = [ip for ip in listed if ip in truth]
    assert len(known) == len(listed)      # every exported address sent to the telescope
    precision = sum(not truth[ip] for ip in known) / len(known)
    assert precision >= 0.98, precision   # held-out truth: they are not DDoS victims
    victims = {str(ipaddress.IPv4Address(v)) for v in
               pq.read_table(judged / "victims.parquet")["victim"].to_pylist()}
    assert victims and not victims & listed
    verdicts = pq.read_table(judged / "verdicts.parquet").to_pylist()
    expected = {str(ipaddress.IPv4Address(v["src"])) for v in verdicts
                if v["verdict"] == "not_ddos" and v["src"] is not None}
    assert listed == expected
    mirai = [r for r in rows if "tool:mirai" in r["tags"].split(";")]
    assert mirai and all(r["kind"] == "scanner" for r in rows)
    for r in rows[:50]:
        assert datetime.fromisoformat(r["first_seen"]) <= datetime.fromisoformat(
            r["last_seen"])
        assert 0 <= float(r["confidence"]) <= 1

    confirmed = tmp_path / "confirmed.jsonl"
    assert _run("export", "csv", str(judged), "--confirmed-only", "-o",
                str(confirmed)).returncode == 0
    kept = [json.loads(line) for line in confirmed.read_text().splitlines()]
    assert 0 < len(kept) < len(rows)
    assert all(any(t.startswith(("tool:", "decided-by:rule:", "decided-by:expert"))
                   for t in r["tags"].split(";")) for r in kept)


def test_allowlists_are_extended_and_can_be_switched_off(judged, tmp_path) -> None:
    every = tmp_path / "every.csv"
    assert _run("export", "csv", str(judged), "--no-default-allowlist", "-o",
                str(every)).returncode == 0
    rows = list(csv.DictReader(every.open()))
    assert CENSYS in {r["ip"] for r in rows}
    mine = tmp_path / "ours.toml"
    victim_of_ours = rows[0]["ip"]
    mine.write_text(f'[[scanner]]\nname = "our lab"\nnetworks = ["{victim_of_ours}/32"]\n')
    fewer = tmp_path / "fewer.csv"
    done = _run("export", "csv", str(judged), "--allowlist", str(mine), "-o", str(fewer))
    assert done.returncode == 0 and "1 our lab" in done.stderr
    assert victim_of_ours not in {r["ip"] for r in csv.DictReader(fewer.open())}
    broken = tmp_path / "broken.toml"
    broken.write_text('[[scanner]]\nname = "x"\nnetworks = ["10.0.0.0/33"]\n')
    bad = _run("export", "csv", str(judged), "--allowlist", str(broken), "-o",
               str(tmp_path / "no.csv"))
    assert bad.returncode == 2 and "'10.0.0.0/33' is not a network" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "no.csv").exists()


def _validated(path: Path):
    from stix2validator import ValidationOptions, validate_file

    result = validate_file(str(path), ValidationOptions(version="2.1", strict=True))
    assert result.is_valid, sorted({str(e)[:200] for o in result.object_results
                                    for e in o.errors})[:10]
    made = json.loads(path.read_text())
    # darkscope writes the objects itself (the library checks one of each shape): every one
    # must be exactly what the stix2 library makes of it
    for o in made["objects"]:
        assert json.loads(stix2.parse(o, allow_custom=False).serialize()) == o, o["id"]
    return made


def test_a_shape_the_library_rejects_is_caught() -> None:
    from darkscope.intel.stix import check

    good = {"type": "indicator", "spec_version": "2.1",
            "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "pattern": "[ipv4-addr:value = '192.0.2.1']", "pattern_type": "stix",
            "valid_from": "2026-01-01T00:00:00Z"}
    check([good])
    with pytest.raises(stix2.exceptions.InvalidValueError):
        check([{**good, "pattern": "[ipv4-addr:value = '192.0.2.1'"}])
    address = {"type": "ipv4-addr", "spec_version": "2.1", "value": "192.0.2.1",
               "id": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd"}
    with pytest.raises(AssertionError, match=r"192\.0\.2\.1"):
        check([address])


def test_stix_bundle_is_valid_and_indicators_only_for_confirmed(judged, tmp_path) -> None:
    out = tmp_path / "findings.json"
    done = _run("export", "stix", str(judged), "-o", str(out), "--operator", "Example CERT")
    assert done.returncode == 0, done.stderr
    objects = _validated(out)["objects"]
    by_type: dict[str, list[dict]] = {}
    for o in objects:
        by_type.setdefault(o["type"], []).append(o)
    assert [i["name"] for i in by_type["identity"]] == ["Example CERT"]
    rows = {r["ip"]: r for r in csv.DictReader(_blocklist(judged, tmp_path).open())}
    infra = {o["name"].removeprefix("scanner "): o for o in by_type["infrastructure"]}
    assert set(infra) == set(rows)
    confirmed = {ip for ip, r in rows.items() if any(
        t.startswith(("tool:", "decided-by:rule:", "decided-by:expert"))
        for t in r["tags"].split(";"))}
    patterns = {o["pattern"].split("'")[1]: o for o in by_type["indicator"]
                if o["pattern"].startswith("[ipv")}
    assert set(patterns) == confirmed
    for ip, indicator in list(patterns.items())[:100]:
        last = datetime.fromisoformat(rows[ip]["last_seen"])
        assert datetime.fromisoformat(indicator["valid_until"].replace("Z", "+00:00")) == \
            last + timedelta(days=7)
    sightings = {o["sighting_of_ref"] for o in by_type["sighting"]
                 if o["sighting_of_ref"].startswith("infrastructure--")}
    assert sightings == {o["id"] for o in infra.values()}
    mirai = next(o for o in by_type["malware"] if o["name"] == "Mirai")
    hosts = [r for r in by_type["relationship"] if r["relationship_type"] == "hosts"
             and r["target_ref"] == mirai["id"]]
    botnets = {o["id"] for o in infra.values() if o["infrastructure_types"] == ["botnet"]}
    assert hosts and {r["source_ref"] for r in hosts} == botnets
    victims = [o for o in by_type["observed-data"] if "ddos-victim" in o.get("labels", [])]
    [measures] = by_type["extension-definition"]
    assert victims and all(o["extensions"][measures["id"]]["estimated_attack_pps"] > 0
                           for o in victims)
    assert "secret listing" not in out.read_text()

    rules, unstated = _expected_rules(judged)
    assert rules and unstated and f"left out {unstated} rules" in done.stderr
    fingerprints = {o["pattern"]: o for o in by_type["indicator"]
                    if "scanner-fingerprint" in o.get("labels", [])}
    assert set(fingerprints) == set(rules)
    names = {o["id"]: o["name"] for o in by_type["malware"] + by_type["tool"]}
    indicated = {r["source_ref"]: names[r["target_ref"]] for r in by_type["relationship"]
                 if r["relationship_type"] == "indicates" and r["target_ref"] in names}
    sighted = {o["sighting_of_ref"]: o for o in by_type["sighting"]}
    for pattern, rows in rules.items():
        indicator = fingerprints[pattern]
        best = max(rows, key=lambda r: r["support_hosts"])
        assert f"{best['support_hosts']:,} of {best['period_hosts']:,} hosts" in \
            indicator["description"]
        family = {"mirai": "Mirai", "zmap": "ZMap", "masscan": "Masscan"}.get(best["family"])
        assert indicated.get(indicator["id"]) == family
        assert sighted[indicator["id"]]["count"] == len({r["period_start"] for r in rows})
    assert {"Mirai", "ZMap"} <= set(indicated.values())
    # the same findings give the same objects (ids from what they describe), so consumers
    # update rather than pile up copies
    again = tmp_path / "again.json"
    assert _run("export", "stix", str(judged), "-o", str(again), "--operator",
                "Example CERT").returncode == 0
    assert {o["id"]: o for o in json.loads(again.read_text())["objects"]} == \
        {o["id"]: o for o in objects}


def test_victims_can_leave_as_their_24_only(judged, tmp_path) -> None:
    out = tmp_path / "prefix.json"
    assert _run("export", "stix", str(judged), "--victims", "prefix24", "-o",
                str(out)).returncode == 0
    objects = _validated(out)["objects"]
    text = out.read_text()
    victims = {str(ipaddress.IPv4Address(v)) for v in
               pq.read_table(judged / "victims.parquet")["victim"].to_pylist()}
    scanners = {o["name"].removeprefix("scanner ") for o in objects
                if o["type"] == "infrastructure"}
    assert not any(f'"{v}"' in text for v in victims - scanners)
    prefixes = {o["value"] for o in objects if o["type"] == "ipv4-addr" and "/" in o["value"]}
    assert prefixes == {str(ipaddress.ip_network(f"{v}/24", strict=False)) for v in victims}


def _blocklist(judged: Path, tmp_path: Path) -> Path:
    out = tmp_path / "for-stix.csv"
    if not out.exists():
        assert _run("export", "csv", str(judged), "-o", str(out)).returncode == 0
    return out


def test_misp_feed_loads_in_pymisp_with_a_manifest_and_hashes(judged, tmp_path) -> None:
    import hashlib

    from pymisp import MISPEvent

    feed = tmp_path / "feed"
    done = _run("export", "misp", str(judged), "-o", str(feed), "--operator", "Example CERT",
                "--victims", "prefix24", "--tlp", "green")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((feed / "manifest.json").read_text())
    import pymisp

    template = (Path(pymisp.__file__).parent / "data" / "misp-objects" / "objects" / "ddos"
                / "definition.json")
    ddos_relations = set(json.loads(template.read_text())["attributes"])
    files = {p.stem for p in feed.glob("*.json")} - {"manifest"}
    assert files == set(manifest) and files
    verdicts = pq.read_table(judged / "verdicts.parquet").to_pylist()
    days: dict[str, set[str]] = {}
    for v in verdicts:
        if v["verdict"] == "not_ddos" and v["src"] is not None:
            day = v["window_start"].date().isoformat()
            days.setdefault(day, set()).add(str(ipaddress.IPv4Address(v["src"])))
    victims = pq.read_table(judged / "victims.parquet").to_pylist()
    rules, _ = _expected_rules(judged)
    assert any(a.type == "stix2-pattern" for uid in files for a in _event(feed, uid).attributes)
    values: list[str] = []
    uuids: dict[str, set[str]] = {}
    for uid in files:
        event = MISPEvent()
        event.load_file(feed / f"{uid}.json")
        assert event.Orgc.name == "Example CERT"
        assert "tlp:green" in {t.name for t in event.tags}
        day = event.date.isoformat()
        scanners = {a.value for a in event.attributes if a.type == "ip-src"}
        assert scanners == days.get(day, set())
        assert all(a.to_ids == any(t.name.startswith(('misp-galaxy:botnet', 'darkscope:tool',
                                                      'darkscope:decided-by="rule:',
                                                      'darkscope:decided-by="expert'))
                                   for t in a.tags)
                   for a in event.attributes if a.type == "ip-src")
        attacks = [o for o in event.objects if o.name == "ddos"]
        # every relation is one MISP's ddos template defines
        assert all(a.object_relation in ddos_relations for o in attacks for a in o.attributes)
        started = [v for v in victims if v["start"].date().isoformat() == day]
        assert len(attacks) == len(started)
        for o in attacks:
            target = o.get_attributes_by_relation("ip-dst")[0].value
            assert target.endswith(".0/24")
            assert float(o.get_attributes_by_relation("total-pps")[0].value) > 0
        patterns = {a.value: a for a in event.attributes if a.type == "stix2-pattern"}
        assert set(patterns) == {p for p, rows in rules.items() if any(
            r["period_start"].date().isoformat() == day for r in rows)}
        assert not any(a.to_ids for a in patterns.values())
        uuids[uid] = {a.uuid for a in event.attributes} | {
            a.uuid for o in event.objects for a in o.attributes}
        values += [a.value for a in event.attributes]
        values += [a.value for o in event.objects for a in o.attributes]
    hashes = [line.split(",") for line in (feed / "hashes.csv").read_text().splitlines()]
    assert {h for h, _ in hashes} >= {hashlib.md5(str(v).encode()).hexdigest()
                                      for v in values if isinstance(v, str)}
    assert {u for _, u in hashes} <= files
    again = _run("export", "misp", str(judged), "-o", str(tmp_path / "feed2"), "--operator",
                 "Example CERT", "--victims", "prefix24", "--tlp", "green")
    assert again.returncode == 0
    assert set(json.loads((tmp_path / "feed2" / "manifest.json").read_text())) == files
    # the same attributes again are the same attributes (MISP updates, never piles up)
    assert {uid: {a.uuid for a in _event(tmp_path / "feed2", uid).attributes} | {
        a.uuid for o in _event(tmp_path / "feed2", uid).objects for a in o.attributes}
        for uid in files} == uuids


def _event(feed: Path, uid: str):
    from pymisp import MISPEvent

    event = MISPEvent()
    event.load_file(feed / f"{uid}.json")
    return event


def test_expert_labels_leave_as_opinions_and_notes_only_when_asked(judged, tmp_path) -> None:
    from darkscope.store import ReviewStore

    rows = list(csv.DictReader(_blocklist(judged, tmp_path).open()))
    scanner, other = rows[0]["ip"], rows[1]["ip"]
    victim = str(ipaddress.IPv4Address(
        pq.read_table(judged / "victims.parquet")["victim"][0].as_py()))
    store = tmp_path / "review.db"
    hostile = 'seen "Mirai" <script>alert(1)</script>\nsecond line'
    with ReviewStore(store) as opened:
        opened.label(int(ipaddress.IPv4Address(scanner)), "scan", note=hostile, who="alice")
        opened.label(int(ipaddress.IPv4Address(other)), "other", who="alice")
        opened.label(int(ipaddress.IPv4Address(victim)), "ddos", note="confirmed", who="alice")
    plain = tmp_path / "plain.json"
    assert _run("export", "stix", str(judged), "-o", str(plain), "--store",
                str(store)).returncode == 0
    assert not {o["type"] for o in _validated(plain)["objects"]} & {"opinion", "note"}

    out = tmp_path / "notes.json"
    done = _run("export", "stix", str(judged), "-o", str(out), "--expert-notes", "--store",
                str(store))
    assert done.returncode == 0, done.stderr
    assert "3 expert opinions" in done.stdout
    objects = _validated(out)["objects"]
    ids = {o["id"]: o for o in objects}
    opinions = {(ids[o["object_refs"][0]].get("name") or ids[ids[o["object_refs"][0]][
        "object_refs"][0]]["value"]): o for o in objects if o["type"] == "opinion"}
    assert opinions["scanner " + scanner]["opinion"] == "strongly-agree"
    assert opinions["scanner " + other]["opinion"] == "disagree"
    assert opinions[victim]["opinion"] == "strongly-agree"
    indicator = [o["id"] for o in objects if o["type"] == "indicator"
                 and o["pattern"] == f"[ipv4-addr:value = '{scanner}']"]
    assert set(opinions["scanner " + scanner]["object_refs"]) == \
        {ids_ for ids_ in ids if ids[ids_].get("name") == "scanner " + scanner} | set(indicator)
    notes = {o["content"]: o for o in objects if o["type"] == "note"}
    assert set(notes) == {hostile, "confirmed"}
    assert notes[hostile]["object_refs"] == opinions["scanner " + scanner]["object_refs"]
    assert "alice" not in out.read_text()   # who labelled stays in-house

    shared = tmp_path / "shared24.json"
    assert _run("export", "stix", str(judged), "-o", str(shared), "--expert-notes",
                "--store", str(store), "--victims", "prefix24").returncode == 0
    assert "confirmed" not in {o.get("content") for o in _validated(shared)["objects"]}
    missing = _run("export", "stix", str(judged), "-o", str(tmp_path / "x.json"),
                   "--expert-notes", "--store", str(tmp_path / "nope.db"))
    assert missing.returncode == 2 and "no such review store" in missing.stderr
    assert not (tmp_path / "nope.db").exists()


def test_dark_web_topics_leave_only_when_asked(judged, tmp_path) -> None:
    themes = [["stealer", "botnet", "panel", "loader", "crypter"],
              ["fullz", "cvv", "dumps", "bank", "carding"]]
    listings = tmp_path / "listings.jsonl"
    listings.write_text("".join(json.dumps({
        "url": f"http://market{i % 2}.onion/listing/{i}", "market": f"market{i % 2}",
        "vendor": "v<b>", "price": "1.5", "currency": "BTC",
        "crawled_at": f"2026-11-{1 + i % 20:02d}T10:00:00Z",
        "title": f'{" ".join(themes[i % 2][j] for j in (i % 5, (i + 1) % 5, (i + 2) % 5))} '
                 f'<script>alert("{i}")</script>'}) + "\n" for i in range(40)))
    topics = tmp_path / "topics"
    done = _run("topics", "fit", str(listings), "-k", "2", "-o", str(topics))
    assert done.returncode == 0, done.stderr
    summary = json.loads((topics / "topics.json").read_text())

    plain = tmp_path / "plain.json"
    done = _run("export", "stix", str(judged), str(topics), "-o", str(plain))
    assert done.returncode == 0, done.stderr
    assert not {o["type"] for o in _validated(plain)["objects"]} & {"report", "note"}
    assert ".onion" not in plain.read_text() and "topics.json" in done.stderr

    shared = tmp_path / "shared.json"
    done = _run("export", "stix", str(judged), str(topics), "-o", str(shared), "--dark-web")
    assert done.returncode == 0, done.stderr
    objects = _validated(shared)["objects"]
    [report] = [o for o in objects if o["type"] == "report"]
    notes = {o["id"]: o for o in objects if o["type"] == "note"}
    assert set(report["object_refs"]) == set(notes) and len(notes) == len(summary["topics"])
    assert all(n["object_refs"] == [report["id"]] for n in notes.values())
    assert report["name"] == "Dark web market topics: market0, market1"
    assert report["published"] == "2026-11-20T10:00:00Z"
    contents = [n["content"] for n in notes.values()]
    for topic in summary["topics"]:
        [content] = [c for c in contents if c.startswith(f"Topic {topic['id']}:")]
        top = [w for w, weight in topic["words"][:3]]
        assert content.split("\n")[1].startswith("Words: " + " (".join(top[:1]))
        assert all(f"{w} (" in content for w in top)
        # listing titles pass as data, byte for byte
        assert all(p["title"] in content for p in topic["products"][:5])
