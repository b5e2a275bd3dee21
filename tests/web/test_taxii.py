"""``darkscope serve`` as a TAXII 2.1 server, read with the OASIS ``taxii2-client`` library as a
SOC's TAXII feed reader would: the collections hold exactly what ``darkscope export stix`` gives
for the same data, page by page; new findings come after ``added_after``; and only callers with
an API token or a password get in."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time

import httpx
import pytest

from darkscope.catalog import RESCAN_S

from .conftest import DARKSCOPE, PASSWORD, serving

taxii2client = pytest.importorskip("taxii2client.v21")
from taxii2client.common import TokenAuth  # noqa: E402


@pytest.fixture(scope="module")
def taxii(outputs, tmp_path_factory):
    """A server over a private copy of the monitor's outputs (the test adds findings to it),
    with a store of its own and a viewer's API token."""
    from darkscope.store import ReviewStore
    from darkscope.store.users import UserStore
    from darkscope.web.app import Settings

    root = tmp_path_factory.mktemp("taxii")
    data = root / "data"
    shutil.copytree(outputs.data / "monitor", data / "monitor")
    store = root / "darkscope.db"
    with sqlite3.connect(outputs.store) as source, sqlite3.connect(store) as target:
        source.backup(target)
    with ReviewStore(store) as opened:
        token, _ = UserStore(opened).create_token("victor", "taxii feed reader")
    with serving(Settings(data, store)) as url:
        yield url, data, token, store


def _all(collection) -> list[dict]:
    pages = list(taxii2client.as_pages(collection.get_objects, per_request=250))
    return [o for page in pages for o in page.get("objects", [])], len(pages)


def test_collections_hold_what_export_gives_page_by_page(taxii, tmp_path) -> None:
    url, data, token, _ = taxii
    server = taxii2client.Server(f"{url}/taxii2/", auth=TokenAuth(token))
    assert server.title == "darkscope"
    [root] = server.api_roots
    assert root.url == server.default.url
    collections = {c.title: c for c in root.collections}
    assert set(collections) == {"scanners", "indicators", "rules", "victims"}
    assert all(c.can_read and not c.can_write for c in collections.values())

    served: dict[str, dict] = {}
    for name, collection in collections.items():
        objects, pages = _all(collection)
        ids = [o["id"] for o in objects]
        assert len(ids) == len(set(ids)), f"{name}: an object on two pages"
        if name == "scanners":
            assert pages > 2   # paged, as the client asked
        served.update({o["id"]: o for o in objects})
        manifest = collection.get_manifest()["objects"]
        assert [m["id"] for m in manifest] == ids[:len(manifest)]
        assert all(m["version"] == (o.get("modified") or m["date_added"])
                   for m, o in zip(manifest, objects, strict=False))
    kinds = {o["type"] for o in served.values()}
    assert {"indicator", "infrastructure", "sighting", "observed-data", "identity"} <= kinds
    fingerprints = [o for o in _all(collections["rules"])[0] if o["type"] == "indicator"]
    assert fingerprints and all("scanner-fingerprint" in o["labels"] for o in fingerprints)
    assert {o["type"] for o in _all(collections["indicators"])[0]} <= \
        {"identity", "indicator", "relationship"}

    exported = tmp_path / "export.json"
    done = subprocess.run([DARKSCOPE, "export", "stix", str(data), "-o", str(exported),
                           "--victims", "prefix24", "--no-progress"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert served == {o["id"]: o for o in json.loads(exported.read_text())["objects"]}
    victims = [o["value"] for o in served.values() if o["type"] == "ipv4-addr"
               and o["id"] in {r for v in _all(collections["victims"])[0]
                               for r in v.get("object_refs", [])}]
    assert victims and all(v.endswith(".0/24") for v in victims)  # the default: /24s only

    some = next(o for o in served.values() if o["type"] == "indicator")
    got = collections["indicators"].get_object(some["id"])["objects"]
    assert got == [some]
    assert collections["indicators"].object_versions(some["id"])["versions"] == \
        [some["modified"]]
    assert collections["indicators"].get_object(some["id"], version=some["modified"])[
        "objects"] == [some]
    with pytest.raises(Exception, match="404"):   # no such version of it
        collections["indicators"].get_object(some["id"], version="2001-01-01T00:00:00.000Z")
    typed = collections["scanners"].get_objects(type="malware")["objects"]
    assert typed and {o["type"] for o in typed} == {"malware"}


def _manifest(collection) -> dict[str, dict]:
    pages = taxii2client.as_pages(collection.get_manifest, per_request=1000)
    return {m["id"]: m for page in pages for m in page.get("objects", [])}


def test_new_findings_come_after_added_after(taxii) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from darkscope.web.app import Settings

    url, data, token, store = taxii
    root = taxii2client.Server(f"{url}/taxii2/", auth=TokenAuth(token)).api_roots[0]
    by_title = {c.title: c for c in root.collections}
    scanners, indicators = by_title["scanners"], by_title["indicators"]
    before = _manifest(scanners)
    newest = max(m["date_added"] for m in before.values())
    newest_indicator = max(m["date_added"] for m in _manifest(indicators).values())
    assert not scanners.get_objects(added_after=newest).get("objects")
    # a new scanning source, confirmed by a rule: one verdict of an address nobody saw
    verdicts = ds.dataset(data / "monitor" / "verdicts", format="parquet",
                          partitioning="hive").to_table()
    row = verdicts.filter(pc.equal(verdicts["verdict"], "not_ddos")).slice(0, 1).to_pylist()[0]
    row.update(src=int.from_bytes(bytes([198, 18, 7, 9]), "big"), decided_by="rule:tcp-syn")
    pq.write_table(pa.Table.from_pylist([row]), data / "new-verdicts.parquet")
    time.sleep(RESCAN_S + 0.5)

    fresh = scanners.get_objects(added_after=newest)["objects"]
    assert "scanner 198.18.7.9" in {o.get("name") for o in fresh}
    assert all(o["id"] not in before or before[o["id"]]["version"] != o.get("modified")
               for o in fresh)   # only what is new or changed
    assert [o["pattern"] for o in indicators.get_objects(
        added_after=newest_indicator)["objects"]
            if o["type"] == "indicator"] == ["[ipv4-addr:value = '198.18.7.9']"]
    after = _manifest(scanners)
    unchanged = [i for i, m in before.items() if after.get(i, {}).get("version") == m["version"]]
    assert len(unchanged) >= len(before) - 2
    assert all(after[i]["date_added"] == before[i]["date_added"] for i in unchanged)
    with serving(Settings(data, store)) as restarted:   # date_added outlives the process
        again = taxii2client.Server(f"{restarted}/taxii2/", auth=TokenAuth(token))
        assert _manifest({c.title: c for c in again.api_roots[0].collections}["scanners"]) \
            == after


def test_only_callers_with_a_token_or_password_get_in(taxii) -> None:
    url, _, token, _ = taxii
    base = f"{url}/taxii2/"
    accept = {"Accept": "application/taxii+json;version=2.1"}
    anonymous = httpx.get(base, headers=accept)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/taxii+json")
    assert "Basic" in anonymous.headers["www-authenticate"]
    assert anonymous.json()["http_status"] == "401"
    wrong = httpx.get(base, headers={**accept, "Authorization": "Token dsk_nope"})
    assert wrong.status_code == 401
    by_password = taxii2client.Server(base, user="victor", password=PASSWORD)
    assert [c.title for c in by_password.api_roots[0].collections]
    with pytest.raises(Exception, match="401"):
        taxii2client.Server(base, user="victor", password="not the password").title  # noqa: B018
    by_token_as_password = taxii2client.Server(base, user="feed", password=token)
    assert by_token_as_password.title == "darkscope"

    auth = {**accept, "Authorization": f"Bearer {token}"}
    assert httpx.get(base, headers={**auth, "Accept": "text/html"}).status_code == 406
    root = f"{base}darkscope/"
    collection = httpx.get(f"{root}collections/", headers=auth).json()["collections"][0]
    objects = f"{root}collections/{collection['id']}/objects/"
    refused = httpx.post(objects, headers={**auth, "Content-Type":
                                           "application/taxii+json;version=2.1"},
                         content=b'{"objects": []}')
    assert refused.status_code == 403 and refused.json()["http_status"] == "403"
    some = httpx.get(objects, headers=auth, params={"limit": 1}).json()["objects"][0]
    deleting = httpx.delete(f"{objects}{some['id']}/", headers=auth)
    assert deleting.status_code == 403 and deleting.json()["http_status"] == "403"
    assert httpx.get(f"{root}collections/nope/objects/", headers=auth).status_code == 404
    assert httpx.get(f"{base}other/", headers=auth).status_code == 404
    bad = httpx.get(objects, headers=auth, params={"added_after": "yesterday"})
    assert bad.status_code == 400 and "added_after" in bad.json()["title"]
    assert httpx.get(objects, headers=auth, params={"next": "%%%"}).status_code == 400
    missing = httpx.get(f"{objects}indicator--00000000-0000-4000-8000-000000000000/",
                        headers=auth)
    assert missing.status_code == 404
