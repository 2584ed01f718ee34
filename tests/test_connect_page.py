"""The connect page explains itself, in real headless Chromium: the stored phone prefilled, one
pairing code at a time, WhatsApp's ban with its end, QR codes that ran out, a connection
indicator, a cooldown said once. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tests.harness import Node
from tests.test_pages import ARTIFACTS, browser, by_id, login, state, until  # noqa: F401 (fixture)

PHONE = "5511999990001"
FAST_QR = {"WAFLEET_QR_FIRST_TIMEOUT": "150", "WAFLEET_QR_TIMEOUT": "150"}


def visible_text(driver) -> str:
    return driver.execute_script("return document.body.innerText;")


def count_fetches(driver) -> None:
    """From now on window.__asked / window.__done count the page's API requests."""
    driver.execute_script(
        """
        window.__asked = 0; window.__done = 0;
        var original = window.fetch;
        window.fetch = function () {
          window.__asked++;
          return original.apply(this, arguments).finally(function () { window.__done++; });
        };
        """
    )


def test_stored_phone_prefilled_and_one_pairing_code_at_a_time(node_factory, browser) -> None:  # noqa: F811
    node: Node = node_factory().start()
    token = node.create_company("salon-rosa", name="Salão Rosa", phone=PHONE)
    login(browser, f"{node.base_url}/connect/salon-rosa", token)
    until(browser, lambda d: state(d) == "stopped", what="the stopped state")
    assert by_id(browser, "phone").get_attribute("value") == PHONE

    # the connection indicator says what "live" means, with its state
    until(browser, lambda d: by_id(d, "live").get_attribute("data-state") == "open", what="live updates")
    assert "changes appear as they happen" in by_id(browser, "live").text

    by_id(browser, "pair-button").click()  # the prefilled phone is enough
    until(
        browser,
        lambda d: re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", by_id(d, "pairing-code").text),
        what="a code",
    )
    button = by_id(browser, "pair-button")
    until(browser, lambda d: not by_id(d, "pair-button").is_enabled(), what="the button disabled")
    assert re.search(r"available in \d+ s", button.text)
    browser.save_screenshot(str(ARTIFACTS / "connect-code-live.png"))
    # a click (or Enter in the form) while the code lives asks for nothing
    count_fetches(browser)
    browser.execute_script("document.getElementById('pair-form').requestSubmit();")
    assert browser.execute_script("return window.__asked;") == 0
    issued = [h for h in node.status("salon-rosa")["history"] if h["status"] == "pairing"]
    assert len(issued) == 1
    codes = node.client.get("/api/whatsapp/sessions/salon-rosa/status", headers=node.admin()).json()
    assert codes["pairingCode"]["code"] == by_id(browser, "pairing-code").text


def test_whatsapp_ban_says_whose_ban_and_when_it_ends(node_factory, browser) -> None:  # noqa: F811
    node: Node = node_factory().start()
    token = node.create_company("loja-azul", name="Loja Azul")
    node.connect("loja-azul")
    login(browser, f"{node.base_url}/connect/loja-azul", token)
    until(browser, lambda d: state(d) == "connected", what="connected")
    ends = datetime.now(UTC) + timedelta(hours=2)
    r = node.post(
        "/api/sandbox/loja-azul/disconnect",
        {"reason": "banned", "until": ends.isoformat(timespec="seconds").replace("+00:00", "Z")},
    )
    assert r.status_code == 202, r.text
    until(browser, lambda d: state(d) == "failed", what="the failed state")
    label, detail = by_id(browser, "status-label").text, by_id(browser, "status-detail").text
    assert label == "Banned by WhatsApp"
    assert "WhatsApp has temporarily banned this number" in detail
    assert "repeated errors" not in visible_text(browser)
    # the end time as the browser's locale writes it, and the minutes left
    shown = browser.execute_script("return new Date(arguments[0]).toLocaleString();", ends.isoformat())
    assert f"The ban ends {shown}" in detail
    assert re.search(r"in 1[12]\d min", detail)
    assert not by_id(browser, "initialize").is_enabled()  # connecting before the end does not help
    browser.save_screenshot(str(ARTIFACTS / "connect-banned.png"))


def test_qr_exhausted_offers_the_phone_form(node_factory, browser) -> None:  # noqa: F811
    node: Node = node_factory(**FAST_QR).start()
    token = node.create_company("nophone", name="No Phone")
    login(browser, f"{node.base_url}/connect/nophone", token)
    until(browser, lambda d: state(d) == "stopped", what="the stopped state")
    by_id(browser, "initialize").click()
    until(
        browser,
        lambda d: (
            d.execute_script("return document.getElementById('status').dataset.reason;") == "qr_exhausted"
        ),
        timeout=15,
        what="the QR codes to run out",
    )
    detail = by_id(browser, "status-detail").text
    assert "QR codes ran out" in detail and "phone number" in detail
    assert by_id(browser, "pair-card").is_displayed() and by_id(browser, "pair-why").is_displayed()
    assert "Enter the phone number" in by_id(browser, "pair-why").text
    assert by_id(browser, "initialize").text == "Start again with a new QR code"
    browser.save_screenshot(str(ARTIFACTS / "connect-qr-exhausted.png"))
    # the offered form works: a code for the typed phone
    by_id(browser, "phone").send_keys(PHONE)
    by_id(browser, "pair-button").click()
    until(browser, lambda d: state(d) == "pairing", what="pairing")
    assert not by_id(browser, "pair-why").is_displayed()


def test_pairing_cooldown_is_said_once(node_factory, browser) -> None:  # noqa: F811
    node: Node = node_factory().start()
    token = node.create_company("eager", name="Eager", phone=PHONE)
    for n in range(5):
        r = node.post("/api/whatsapp/sessions/eager/pairing-code", {"phoneNumber": PHONE})
        assert r.status_code == 200, (n, r.text)
    node.post("/api/whatsapp/sessions/eager/stop")
    login(browser, f"{node.base_url}/connect/eager", token)
    until(browser, lambda d: state(d) == "stopped", what="the stopped state")
    count_fetches(browser)
    by_id(browser, "pair-button").click()  # the sixth code in the hour trips the cooldown
    until(browser, lambda d: state(d) == "blocked", what="the blocked state")
    until(browser, lambda d: "Too many pairing codes" in by_id(d, "status-detail").text, what="why")
    until(browser, lambda d: d.execute_script("return window.__done;") >= 2, what="the refusal and a refresh")
    text = visible_text(browser)
    assert len(re.findall(r"\d+ min\b", text)) == 1, text
    # the cooldown holds QR codes too: the page does not offer one
    assert not by_id(browser, "initialize").is_enabled()
    browser.save_screenshot(str(ARTIFACTS / "connect-cooldown.png"))


def test_the_page_follows_a_ban_to_its_end(node_factory, browser) -> None:  # noqa: F811
    node: Node = node_factory().start()
    token = node.create_company("brief", name="Brief Ban")
    node.connect("brief")
    login(browser, f"{node.base_url}/connect/brief", token)
    until(browser, lambda d: state(d) == "connected", what="connected")
    ends = datetime.now(UTC) + timedelta(seconds=3)
    r = node.post(
        "/api/sandbox/brief/disconnect",
        {"reason": "banned", "until": ends.isoformat(timespec="milliseconds").replace("+00:00", "Z")},
    )
    assert r.status_code == 202, r.text
    until(browser, lambda d: by_id(d, "status-label").text == "Banned by WhatsApp", what="the ban")
    assert not by_id(browser, "initialize").is_enabled()
    # when the ban ends the page says so (or the session is already back): it never hangs
    until(
        browser,
        lambda d: "the ban ended" in by_id(d, "status-detail").text or state(d) != "failed",
        timeout=15,
        what="the ban's end",
    )
    if state(browser) == "failed":
        assert by_id(browser, "initialize").is_enabled()
    until(browser, lambda d: state(d) == "connected", timeout=15, what="the session back by itself")
