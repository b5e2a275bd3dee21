"""The dashboard as a person uses it: Debian's chromium, headless, driven by Playwright."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from .conftest import HOSTILE_HOST, PASSWORD

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


def test_a_hostile_string_renders_as_text(browser, served) -> None:
    page, dialogs = _login(browser, served, "victor")
    page.goto(f"{served.url}/ip/{HOSTILE_HOST}")
    cell = page.locator("table.verdicts tbody tr").first
    assert "<script>window.pwned=1</script>" in cell.inner_text()
    assert page.evaluate("window.pwned") is None  # the script never ran
    assert not dialogs  # nor did the onerror handler
