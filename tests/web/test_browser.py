"""The dashboard as a person uses it: Debian's chromium, headless, driven by Playwright."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest

from .conftest import HOSTILE, HOSTILE_HOST, HOSTILE_URL, PASSWORD

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="needs Debian's chromium (in .ci/apt-packages)")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where screenshots go: DARKSCOPE_SCREENSHOTS (docs/img when refreshing the docs)."""
    target = Path(os.environ.get("DARKSCOPE_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def _login(browser, served, name: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(served.url + "/")
    assert "/login" in page.url  # nothing before login
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(served.url + "/")
    return page, dialogs


def test_overview_to_an_ip_and_its_packets(browser, served, shots) -> None:
    page, dialogs = _login(browser, served, "victor")
    assert page.locator("h1").inner_text() == "Overview"
    hourly = page.request.get(served.url + "/api/v1/overview").json()["hourly"]
    bars = page.locator("svg.chart rect title")  # one titled bar per hour and verdict
    assert bars.count() == sum(1 for row in hourly if row["packets"]) >= 2
    page.screenshot(path=str(shots / "overview.png"), full_page=True)
    victim = page.locator("section >> text=Top victims").locator("xpath=..").locator(
        "tbody a").first
    address = victim.inner_text()
    victim.click()
    page.wait_for_url(re.compile(r".*/ip/.*"))
    assert page.locator("h1").inner_text() == address
    assert page.locator("table.verdicts tbody tr").count() >= 1
    rows = page.locator("table.packets tbody tr")
    assert rows.count() >= 1 and "no packets" not in rows.first.inner_text()
    page.screenshot(path=str(shots / "ip.png"), full_page=True)
    page.goto(served.url + "/attacks")
    assert page.locator("svg.chart line").count() >= 1
    page.screenshot(path=str(shots / "attacks.png"))
    assert not dialogs


def test_label_with_the_keyboard_and_undo(browser, served, shots) -> None:
    page, dialogs = _login(browser, served, "alice")
    page.goto(served.url + "/review")
    pending = int(page.locator("#pending-count").inner_text())
    history = page.locator("#history tbody tr.event").count()
    first = page.locator("#queue tr.item").first
    host = first.locator("td a").inner_text()
    page.keyboard.press("d")
    page.wait_for_load_state()
    page.locator("#notice").wait_for()
    assert int(page.locator("#pending-count").inner_text()) == pending - 1
    assert "labelled ddos" in page.locator("#notice").inner_text()
    assert "now decides" in page.locator("#notice").inner_text()
    top = page.locator("#history tbody tr.event").first.inner_text()
    assert host in top and "alice" in top and "ddos" in top
    assert page.locator("#history tbody tr.event").count() == min(history + 1, 20)
    page.screenshot(path=str(shots / "review.png"), full_page=True)
    page.keyboard.press("u")
    page.wait_for_load_state()
    page.locator("#notice").wait_for()
    assert int(page.locator("#pending-count").inner_text()) == pending
    assert "withdrawn" in page.locator("#history tbody tr.event").first.inner_text()
    assert not dialogs


def test_skip_moves_an_item_down_and_keys_label_the_selected_one(browser, served) -> None:
    page, dialogs = _login(browser, served, "carol")
    page.goto(served.url + "/review")
    hosts = page.locator("#queue tr.item td a")
    order = [hosts.nth(i).inner_text() for i in range(min(hosts.count(), 4))]
    assert len(order) == 4
    page.keyboard.press("x")                       # skip the first: it goes last
    assert hosts.last.inner_text() == order[0]
    assert page.locator("#queue tr.selected td a").inner_text() == order[1]
    page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("j")                       # the third item, now second
    assert page.locator("#queue tr.selected td a").inner_text() == order[2]
    page.keyboard.press("o")
    page.wait_for_load_state()
    page.locator("#notice").wait_for()
    assert "labelled other" in page.locator("#notice").inner_text()
    top = page.locator("#history tbody tr.event").first.inner_text()
    assert order[2] in top and "carol" in top and "other" in top
    # after the reload the skipped item is still at the end, the next one on top
    assert hosts.first.inner_text() == order[1] and hosts.last.inner_text() == order[0]
    page.keyboard.press("u")                       # leave the queue as it was
    page.wait_for_load_state()
    page.locator("#notice").wait_for()
    assert not dialogs


def test_a_hostile_string_renders_as_text(browser, served) -> None:
    page, dialogs = _login(browser, served, "victor")
    page.goto(f"{served.url}/ip/{HOSTILE_HOST}")
    cell = page.locator("table.verdicts tbody tr").first
    assert "<script>window.pwned=1</script>" in cell.inner_text()
    packets = page.locator("table.packets tbody").inner_text()   # crafted payload bytes
    assert "3c 73 63 72 69 70 74 3e" in packets and "|<script>pwned=3<|" in packets
    assert "|..[2J</td><b>....|" in packets and HOSTILE in packets
    assert page.evaluate("window.pwned") is None  # the script never ran
    assert not dialogs  # nor did the onerror handler


def test_rules_timeline_to_a_rule(browser, served, shots) -> None:
    page, dialogs = _login(browser, served, "victor")
    page.goto(served.url + "/rules")
    lines = page.locator("svg.rules polyline")
    assert lines.count() >= 1
    page.screenshot(path=str(shots / "rules.png"), full_page=True)
    first = page.locator("table tbody tr td a").first
    rule = first.inner_text()
    first.click()
    page.wait_for_url(re.compile(r".*/rules/rule\?text=.*"))
    assert page.locator("h1").inner_text() == rule
    assert page.locator("table tbody tr").count() >= 1
    assert not dialogs


def test_feature_map_selects_hosts_by_dragging(browser, served, shots) -> None:
    page, dialogs = _login(browser, served, "victor")
    page.goto(served.url + "/map")
    dots = page.locator("#feature-map circle[data-ip]")
    assert dots.count() >= 3
    assert page.locator("#feature-map circle.queued[data-ip]").count() >= 1
    box = page.locator("#feature-map").bounding_box()
    # drag over the whole plot: every drawn host is listed, each linking to its IP page
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 5, box["y"] + box["height"] - 5, steps=8)
    page.mouse.up()
    hosts = {d.get_attribute("data-ip") for d in dots.all()}
    listed = page.locator("#map-selection li a")
    assert listed.count() == len(hosts)
    assert page.locator("#map-count").inner_text() == f"{len(hosts)} hosts selected"
    page.screenshot(path=str(shots / "map.png"), full_page=True)
    target = listed.first.inner_text()
    listed.first.click()
    page.wait_for_url(re.compile(r".*/ip/.*"))
    assert page.locator("h1").inner_text() == target
    assert not dialogs


def test_dark_web_pages_show_market_strings_as_text(browser, served, shots) -> None:
    page, dialogs = _login(browser, served, "victor")
    page.goto(served.url + "/darkweb")
    assert page.locator("article.topic").count() == 4
    assert HOSTILE in page.locator("table.listings").inner_text()  # as text, not markup
    page.screenshot(path=str(shots / "darkweb.png"), full_page=True)
    page.locator("article.topic ul.products a").first.click()
    page.wait_for_url(re.compile(r".*/darkweb/listing\?url=.*"))
    assert "<b>escrow</b>" in page.locator("p.description").inner_text()
    assert page.locator("p.description b").count() == 0
    page.screenshot(path=str(shots / "listing.png"), full_page=True)
    page.goto(served.url + "/darkweb/listing?url=" + quote(HOSTILE_URL, safe=""))
    assert page.locator("h1").inner_text() == HOSTILE
    assert page.evaluate("window.pwned") is None
    assert not dialogs


def test_ppml_rounds(browser, served, shots) -> None:
    page, dialogs = _login(browser, served, "victor")
    page.goto(served.url + "/ppml")
    rows = page.locator("table tbody tr.round")
    assert rows.count() == 2
    published = page.locator("tr.model-published")
    assert "nict:" in published.inner_text() and "%" in published.inner_text()
    assert "nict, osaka" in page.locator("tr.waiting").inner_text()
    page.screenshot(path=str(shots / "ppml.png"), full_page=True)
    assert not dialogs


def test_admin_adds_a_user_and_a_token_that_opens_the_api(browser, served, shots) -> None:
    page, dialogs = _login(browser, served, "admin")
    page.click("nav >> text=Users")
    page.wait_for_url(served.url + "/admin")
    form = page.locator("#add-user")
    form.locator("input[name=name]").fill("erin")
    form.locator("select[name=role]").select_option("expert")
    form.locator("input[name=password]").fill("erin's long password")
    form.locator("button").click()
    page.locator("#notice").wait_for()
    assert "user erin (expert) added" in page.locator("#notice").inner_text()
    assert page.locator("#users tr.user[data-name=erin]").count() == 1
    tokens = page.locator("#add-token")
    tokens.locator("select[name=name]").select_option("erin")
    tokens.locator("input[name=label]").fill("SIEM pull")
    tokens.locator("select[name=role]").select_option("viewer")
    tokens.locator("button").click()
    page.locator("#notice").wait_for()
    secret = re.search(r"dsk_[\w-]+", page.locator("#notice").inner_text()).group(0)
    row = page.locator("#tokens tr.token").filter(has_text="SIEM pull")
    assert "erin" in row.inner_text() and "viewer" in row.inner_text()
    page.screenshot(path=str(shots / "admin.png"), full_page=True)
    page.reload()
    assert page.locator("#notice").count() == 0   # the token is shown once
    tool = browser.new_context()   # no cookies: the token alone
    me = tool.request.get(served.url + "/api/v1/me",
                          headers={"Authorization": f"Bearer {secret}"})
    assert me.ok and me.json()["name"] == "erin" and me.json()["role"] == "viewer"
    assert tool.request.get(served.url + "/api/v1/me").status == 401
    tool.close()
    assert not dialogs


def test_labelling_the_evaluation_slice_measures_the_model(browser, served) -> None:
    page, dialogs = _login(browser, served, "bob")
    page.goto(served.url + "/review?slice=evaluation")
    if page.locator("#queue tr.item").count() == 0:
        pytest.skip("the held-out day queued no evaluation-slice item")
    page.keyboard.press("s")
    page.wait_for_load_state()
    page.locator("#notice").wait_for()
    scored = page.request.get(served.url + "/api/v1/review/evaluation").json()
    assert scored["scored"] >= 1
    text = page.locator("#slice-accuracy").inner_text()
    assert f"{scored['correct']} of {scored['scored']}" in text and "95% interval" in text
    assert page.locator("#confusion tbody tr").count() == 3
    assert not dialogs
