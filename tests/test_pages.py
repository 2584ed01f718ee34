"""The connect page and the dashboard in real headless Chromium (Debian's chromium + chromedriver).

Screenshots go to tests/artifacts/ (git-ignored). Synchronisation is by DOM conditions only.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import ADMIN_TOKEN, Node

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PHONE = "5511999998888"


@pytest.fixture
def browser() -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), (
        "Chromium is needed: apt-get install -y chromium chromium-driver"
    )
    profile = tempfile.mkdtemp(prefix="wafleet-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def until(driver, condition, timeout: float = 10.0, what: str = ""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda d: condition(d), message=f"waiting for {what}"
    )


def by_id(driver, element_id: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def state(driver) -> str | None:
    return driver.execute_script("var s = document.getElementById('status'); return s && s.dataset.state;")


def login(driver, url: str, token: str) -> None:
    driver.get(url)
    field = until(driver, lambda d: by_id(d, "token"), what="the login form")
    field.send_keys(token)
    by_id(driver, "token").submit()


def count(driver, name: str) -> str:
    return by_id(driver, f"count-{name}").text


def requested_urls(driver) -> list[str]:
    """Every URL the browser asked for or was redirected to, from the performance log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(params["request"]["url"])
            urls.append(params.get("documentURL", ""))
            if params.get("redirectResponse"):
                urls.append(params["redirectResponse"].get("url", ""))
                urls.append(params["redirectResponse"].get("headers", {}).get("Location", ""))
    return urls


def test_connect_page_qr_scan_pairing_and_dashboard_live(node_factory, browser) -> None:
    node: Node = node_factory(WHATSAPP_RECONNECT_DELAY="300").start()
    acme = node.create_company("acme")
    bistro = node.create_company("bistro")

    # -- the connect page: log in, start, a QR appears ------------------------------------------
    login(browser, f"{node.base_url}/connect/acme", acme)
    until(browser, lambda d: state(d) == "stopped", what="the page to show the stopped state")
    assert browser.current_url == f"{node.base_url}/connect/acme"
    by_id(browser, "initialize").click()
    until(browser, lambda d: state(d) == "qr", what="the QR state")
    until(
        browser,
        lambda d: d.execute_script(
            "var i = document.getElementById('qr'); return i.complete && i.naturalWidth > 0 && i.src;"
        ),
        what="the QR image to load",
    )
    assert by_id(browser, "qr").is_displayed()
    assert "/api/whatsapp/sessions/acme/qr?round=" in by_id(browser, "qr").get_attribute("src")
    browser.save_screenshot(str(ARTIFACTS / "connect-qr.png"))

    # -- a sandbox scan turns the page to connected within 2 s, without a reload -----------------
    browser.execute_script("window.__noReload = 42;")
    assert node.post("/api/sandbox/acme/scan").status_code == 202
    start = time.monotonic()
    until(browser, lambda d: state(d) == "connected", timeout=2.0, what="connected within 2 s")
    assert time.monotonic() - start <= 2.0
    assert browser.execute_script("return window.__noReload;") == 42
    assert not by_id(browser, "qr-card").is_displayed()
    assert by_id(browser, "status-label").text == "Connected"
    browser.save_screenshot(str(ARTIFACTS / "connect-connected.png"))

    # -- another company on a phone-sized screen: a pairing code after entering the phone --------
    browser.set_window_size(390, 844)
    login(browser, f"{node.base_url}/connect/bistro", bistro)
    until(browser, lambda d: state(d) is not None, what="bistro's page")
    by_id(browser, "phone").send_keys(PHONE)
    by_id(browser, "pair-button").click()
    code = until(
        browser,
        lambda d: (
            re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", by_id(d, "pairing-code").text)
            and by_id(d, "pairing-code").text
        ),
        what="a pairing code",
    )
    until(browser, lambda d: "Expires in" in by_id(d, "pair-expiry").text, what="the countdown")
    assert node.status("bistro")["pairingCode"]["code"] == code
    browser.save_screenshot(str(ARTIFACTS / "connect-pairing-phone.png"))

    # -- the dashboard: counts change live when a session crashes and comes back ------------------
    browser.set_window_size(1280, 900)
    login(browser, f"{node.base_url}/", ADMIN_TOKEN)
    until(browser, lambda d: count(d, "connected") == "1", what="one connected session")
    until(browser, lambda d: len(d.find_elements("css selector", "#rows tr")) == 2, what="two rows")
    browser.execute_script("window.__noReload = 7;")
    # The reconnecting state lasts ~300 ms: record every value the counters take in the page.
    browser.execute_script(
        """
        window.__seen = [];
        var snap = function () {
          window.__seen.push(document.getElementById('count-connected').textContent + '/' +
                             document.getElementById('count-reconnecting').textContent);
        };
        new MutationObserver(snap).observe(document.getElementById('counts'),
          {subtree: true, childList: true, characterData: true});
        """
    )
    assert node.post("/api/sandbox/acme/crash").status_code == 202
    until(
        browser,
        lambda d: "0/1" in d.execute_script("return window.__seen;"),
        timeout=5,
        what="the dashboard to show acme reconnecting (connected 0, reconnecting 1)",
    )
    until(
        browser,
        lambda d: (
            count(d, "connected") == "1"
            and count(d, "reconnecting") == "0"
            and d.find_element("css selector", "#rows tr[data-company=acme] .restarts").text == "1"
        ),
        timeout=10,
        what="acme back, restart counted",
    )
    assert "crash" in browser.find_element("css selector", "#rows tr[data-company=acme]").text
    assert browser.execute_script("return window.__noReload;") == 7

    # filter and search (on the server)
    from selenium.webdriver.support.ui import Select

    Select(by_id(browser, "filter-status")).select_by_value("connected")
    until(browser, lambda d: len(d.find_elements("css selector", "#rows tr")) == 1, what="filtered rows")
    Select(by_id(browser, "filter-status")).select_by_value("")
    by_id(browser, "search").send_keys("bis")
    until(
        browser,
        lambda d: (
            [r.get_attribute("data-company") for r in d.find_elements("css selector", "#rows tr")]
            == ["bistro"]
        ),
        what="search to keep only bistro",
    )
    by_id(browser, "search").clear()
    by_id(browser, "search").send_keys(" ")  # an input event with an empty query
    until(browser, lambda d: len(d.find_elements("css selector", "#rows tr")) == 2, what="all rows")
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))

    # an action button: stop acme from its row
    browser.find_element("css selector", "#rows tr[data-company=acme] button[data-action=stop]").click()
    until(browser, lambda d: count(d, "stopped") == "1" and count(d, "connected") == "0", what="acme stopped")
    browser.set_window_size(390, 844)
    browser.save_screenshot(str(ARTIFACTS / "dashboard-phone.png"))

    # the token never appeared in any URL the browser used, and scripts cannot read the cookie
    urls = requested_urls(browser)
    assert any("/connect/acme" in u for u in urls)
    for token in (acme, bistro, ADMIN_TOKEN):
        assert not [u for u in urls if token in u]
    assert "wafleet_session" not in browser.execute_script("return document.cookie;")


def test_login_cookie_flags_and_token_never_in_url(node: Node) -> None:
    token = node.create_company("acme")
    with httpx.Client(base_url=node.base_url) as client:
        r = client.get("/connect/acme")
        assert r.status_code == 200 and 'type="password"' in r.text and 'method="post"' in r.text
        r = client.post("/connect/acme/login", data={"token": "wrong"})
        assert r.status_code == 401 and "wafleet_session" not in r.headers.get("set-cookie", "")
        r = client.post("/connect/acme/login", data={"token": token})
        assert r.status_code == 303
        assert r.headers["location"] == "/connect/acme"
        assert token not in r.headers["location"]
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        page = client.get("/connect/acme")
        assert page.status_code == 200 and token not in page.text
        assert client.get("/api/whatsapp/sessions/acme/status").json()["companyId"] == "acme"
        # a company token does not open the dashboard either as a page or via /login
        assert client.post("/login", data={"token": token}).status_code == 401


def test_company_cookie_does_not_open_another_company(node: Node) -> None:
    acme = node.create_company("acme")
    node.create_company("bistro")
    with httpx.Client(base_url=node.base_url) as client:
        assert client.post("/connect/acme/login", data={"token": acme}).status_code == 303
        other = client.get("/connect/bistro")
        assert other.status_code == 403 and 'id="token"' in other.text and "pairing" not in other.text
        assert client.post("/connect/bistro/login", data={"token": acme}).status_code == 401
        assert client.get("/api/whatsapp/sessions/bistro/status").status_code == 403
        assert client.post("/api/whatsapp/sessions/bistro/initialize", json={}).status_code == 403
        assert client.get("/api/whatsapp/sessions").status_code == 403
        dashboard = client.get("/")
        assert dashboard.status_code == 403 and 'id="counts"' not in dashboard.text
        # a cross-site POST riding on the cookie is refused even for the company's own routes
        evil = client.post(
            "/api/whatsapp/sessions/acme/initialize", json={}, headers={"Origin": "https://evil.example"}
        )
        assert evil.status_code == 403
        # a header still wins over the cookie
        r = client.get("/api/whatsapp/sessions/bistro/status", headers=node.admin())
        assert r.status_code == 200
        # logging out clears the cookie
        client.post("/connect/acme/logout")
        assert client.get("/api/whatsapp/sessions/acme/status").status_code == 401


def test_page_login_holds_a_revocable_session_not_the_token(node_factory, browser) -> None:
    node: Node = node_factory(WAFLEET_SSE_HEARTBEAT="60000").start()
    acme = node.create_company("acme")
    login(browser, f"{node.base_url}/connect/acme", acme)
    until(browser, lambda d: state(d) == "stopped", what="the connect page")
    cookies = {c["name"]: c for c in browser.get_cookies()}
    assert set(cookies) == {"wafleet_session"}
    session = cookies["wafleet_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert session["value"] != acme and acme not in session["value"]
    with httpx.Client(base_url=node.base_url, cookies={"wafleet_session": session["value"]}) as copy:
        assert copy.get("/api/whatsapp/sessions/acme/status").status_code == 200
        # the page's own live stream is open with this session
        until(
            browser,
            lambda d: by_id(d, "live").get_attribute("data-state") == "open",
            what="the live stream open",
        )

        from selenium.webdriver.common.by import By

        browser.find_element(By.CSS_SELECTOR, "form[action='/connect/acme/logout'] button").click()
        until(browser, lambda d: d.find_elements(By.ID, "token"), what="the login form after logout")
        # revoked on the server: the copied cookie opens nothing any more
        assert copy.get("/api/whatsapp/sessions/acme/status").status_code == 401

    # log in again; rotating the token ends this login too
    login(browser, f"{node.base_url}/connect/acme", acme)
    until(browser, lambda d: state(d) == "stopped", what="the connect page again")
    r = node.client.post("/admin/companies/acme/token", headers=node.admin())
    assert r.status_code == 200
    browser.refresh()
    until(browser, lambda d: d.find_elements("id", "token"), what="the login form after rotation")
    login(browser, f"{node.base_url}/connect/acme", acme)  # the old token no longer logs in
    until(browser, lambda d: "does not open" in d.page_source, what="the refusal")
    login(browser, f"{node.base_url}/connect/acme", r.json()["token"])
    until(browser, lambda d: state(d) == "stopped", what="the page with the new token")


def test_login_csrf_from_another_site_is_refused(node_factory, browser, tmp_path) -> None:
    """An attacker's page posts the attacker's own token to our login form, to log the victim
    into the attacker's connect page (the victim would then link their WhatsApp to it)."""
    import http.server
    import threading

    node: Node = node_factory().start()
    evil_token = node.create_company("evil")
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text(
        f"""<!doctype html><form id="f" method="post" action="{node.base_url}/connect/evil/login">
        <input type="hidden" name="token" value="{evil_token}"></form>
        <script>document.getElementById('f').submit();</script>"""
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path / "www"), **kwargs)

        def log_message(self, *args) -> None:
            pass

    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{attacker.server_address[1]}/index.html")
        until(browser, lambda d: "another site" in d.page_source, what="the refusal page")
        assert browser.get_cookies() == [] or all(
            c["name"] != "wafleet_session" for c in browser.get_cookies()
        )
        browser.get(f"{node.base_url}/connect/evil")
        until(browser, lambda d: d.find_elements("id", "token"), what="the login form: not logged in")
    finally:
        attacker.shutdown()
