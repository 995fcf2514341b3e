"""The dashboard in a real browser (headless Chromium driven by Selenium): what people will actually use.

The HTTP tests (test_dashboard.py) check each response; this checks what only a browser shows: that the
login form, the session cookie (Secure, SameSite=Strict, on plain-HTTP loopback) and the logout button
work together, that the stylesheet and the inline SVG charts are allowed by the page's own
Content-Security-Policy (a violation is a SEVERE console entry), and that hostile texts stay text.

The browser is the Debian package (scripts/install-servers); nothing is downloaded: the driver's path is
given, so Selenium Manager is never asked, and the browser's own background traffic is switched off.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from bot.db.health_log import Sample, store_samples
from bot.db.history import History, make_entry
from tests.bot.appserver import ALICE, BOB, serve
from tests.bot.test_dashboard import PASSWORD, dashboard_settings

pytestmark = [pytest.mark.anyio, pytest.mark.servers]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--window-size=1200,900",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    profile = tempfile.mkdtemp(prefix="operator-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def severe(driver: WebDriver) -> list[str]:
    """Console entries at SEVERE since the last call (CSP violations, failed loads, script errors)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def text_of(driver: WebDriver, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def follow(driver: WebDriver, by: str, value: str) -> None:
    """Click what navigates, then wait for the next page: a click returns before a form's POST and its
    redirect are done."""
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(by, value).click()
    WebDriverWait(driver, 10).until(expected_conditions.staleness_of(page))


def visit(driver: WebDriver, base: str) -> dict[str, object]:
    """One person's visit, synchronously (Selenium blocks; the test runs it in a thread while the
    event loop serves the app). Returns what was seen, for the test to assert on."""
    seen: dict[str, object] = {}
    driver.delete_all_cookies()
    driver.get(base + "/dashboard")
    seen["redirected_to"] = driver.current_url
    seen["login_title"] = driver.title
    driver.find_element(By.NAME, "username").send_keys("alice")
    driver.find_element(By.NAME, "password").send_keys("wrong password!")
    follow(driver, By.CSS_SELECTOR, "form button[type=submit]")
    seen["wrong_error"] = driver.find_element(By.CSS_SELECTOR, "body").text
    seen["after_wrong"] = driver.current_url
    seen["wrong_severe"] = severe(driver)  # the 401 of the wrong password, and nothing else
    driver.find_element(By.NAME, "username").clear()
    driver.find_element(By.NAME, "username").send_keys("alice")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    follow(driver, By.CSS_SELECTOR, "form button[type=submit]")
    seen["overview_url"] = driver.current_url
    seen["texts_in"] = text_of(driver, "#texts-in")
    seen["who"] = text_of(driver, ".who")
    seen["cookies"] = {cookie["name"]: cookie for cookie in driver.get_cookies()}
    seen["charts"] = len(driver.find_elements(By.CSS_SELECTOR, "svg.chart"))
    card = driver.find_element(By.CSS_SELECTOR, ".card")
    seen["card_border"] = card.value_of_css_property("border-top-style")  # only the stylesheet sets it
    header = driver.find_element(By.CSS_SELECTOR, "header.top")
    seen["header_display"] = header.value_of_css_property("display")
    cell = driver.find_elements(By.CSS_SELECTOR, "svg .cell.down, svg rect.down")
    seen["down_fill"] = cell[0].value_of_css_property("fill") if cell else None
    seen["overview_severe"] = severe(driver)
    follow(driver, By.LINK_TEXT, "Messages")
    seen["messages_url"] = driver.current_url
    seen["message_rows"] = len(driver.find_elements(By.CSS_SELECTOR, "table.messages tbody tr"))
    seen["messages_text"] = driver.find_element(By.CSS_SELECTOR, "table.messages").text
    seen["messages_title"] = driver.title
    seen["injected_images"] = len(driver.find_elements(By.CSS_SELECTOR, "table.messages img"))
    follow(driver, By.LINK_TEXT, "Older")
    seen["older_url"] = driver.current_url
    seen["older_rows"] = len(driver.find_elements(By.CSS_SELECTOR, "table.messages tbody tr"))
    seen["messages_severe"] = severe(driver)
    follow(driver, By.ID, "logout")
    seen["after_logout"] = driver.current_url
    seen["cookies_after_logout"] = [cookie["name"] for cookie in driver.get_cookies()]
    driver.get(base + "/dashboard")
    seen["after_logout_visit"] = driver.current_url
    seen["final_severe"] = severe(driver)
    return seen


async def test_a_person_logs_in_reads_the_pages_and_logs_out(browser: WebDriver, tmp_path: Path) -> None:
    async with serve(dashboard_settings(tmp_path)) as bot:
        now = datetime.now(UTC)
        history: History = bot.app.state.history
        entries = [make_entry(ALICE if i % 2 else BOB, "in", f"status {i}", intent="status", command="status",
                              latency_ms=20.0 + i, at=now - timedelta(minutes=i + 1)) for i in range(60)]  # fmt: skip
        entries.append(make_entry(BOB, "in", HOSTILE, intent="unknown", outcome="unknown", at=now))
        await history.store(entries)
        await store_samples(history.database, [Sample(now - timedelta(minutes=m), "prometheus", m > 30, "x", 1.0)
                                             for m in range(1, 240)])  # fmt: skip
        seen = await asyncio.to_thread(visit, browser, bot.url)

    assert seen["redirected_to"] == bot.url + "/dashboard/login"
    assert "Log in" in str(seen["login_title"])
    assert "Wrong login name or password" in str(seen["wrong_error"])
    assert seen["after_wrong"] == bot.url + "/dashboard/login"
    assert seen["overview_url"] == bot.url + "/dashboard"
    assert seen["texts_in"] == "61"
    assert seen["who"] == "alice"
    cookies = seen["cookies"]
    assert isinstance(cookies, dict)
    session = cookies["operator_dashboard"]
    assert session["httpOnly"] is True and session["secure"] is True and session["sameSite"] == "Strict"
    assert session["path"] == "/dashboard"
    assert isinstance(seen["charts"], int) and seen["charts"] >= 3  # per hour, intents, the health strip
    assert seen["card_border"] == "solid" and seen["header_display"] == "flex"
    assert seen["down_fill"] == "rgb(210, 65, 58)"  # --down: the SVG is styled by the stylesheet under the CSP
    assert seen["messages_url"] == bot.url + "/dashboard/messages"
    assert seen["message_rows"] == 50
    assert HOSTILE in str(seen["messages_text"])  # shown as text …
    assert seen["injected_images"] == 0 and seen["messages_title"] != "pwned"  # … never as markup
    assert ALICE not in str(seen["messages_text"]) and BOB not in str(seen["messages_text"])  # masked
    assert seen["older_url"] == bot.url + "/dashboard/messages?page=2"
    assert seen["older_rows"] == 11
    assert seen["after_logout"] == bot.url + "/dashboard/login"
    assert "operator_dashboard" not in seen["cookies_after_logout"]  # type: ignore[operator]
    assert seen["after_logout_visit"] == bot.url + "/dashboard/login"
    assert len(seen["wrong_severe"]) == 1 and "401" in seen["wrong_severe"][0]  # type: ignore[arg-type,index]
    for key in ("overview_severe", "messages_severe", "final_severe"):
        assert seen[key] == [], (key, seen[key])
