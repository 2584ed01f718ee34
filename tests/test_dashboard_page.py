"""The fleet dashboard as an operator uses it with more companies than fit on a page, in real
headless Chromium: server-side pages, search by name, filter, rows updated one by one from the
fleet stream, actions only where they make sense, ids that never break at a hyphen, charts of the
timeseries. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import pytest

from tests.harness import ADMIN_TOKEN, Node
from tests.test_pages import ARTIFACTS, browser, by_id, count, login, until  # noqa: F401 (fixture)

LONG_ID = "salon-de-beleza-centro-sao-paulo"
SHOPS = 55  # more than a page (50)


def rows(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#rows tr')).map(r => r.dataset.company);"
    )


def actions(driver, company: str) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(`#rows tr[data-company='${arguments[0]}'] "
        "button[data-action]`)).map(b => b.dataset.action);",
        company,
    )


def log_requests(driver) -> None:
    """From now on window.__urls lists every API request the page makes."""
    driver.execute_script(
        """
        window.__urls = [];
        var original = window.fetch;
        window.fetch = function (url) { window.__urls.push(String(url)); return original.apply(this, arguments); };
        """
    )


def fleet(node: Node) -> None:
    for i in range(SHOPS):
        node.create_company(f"shop-{i:03d}", name=f"Shop number {i}")
    node.create_company(LONG_ID, name="Salão Rosa")
    node.connect("shop-001")
    node.connect("shop-052")


@pytest.fixture
def dashboard(node_factory, browser):  # noqa: F811
    node: Node = node_factory(WHATSAPP_RECONNECT_DELAY="300").start()
    fleet(node)
    login(browser, f"{node.base_url}/", ADMIN_TOKEN)
    until(browser, lambda d: len(rows(d)) == 50, what="the first page")
    return node, browser


def test_pages_search_by_name_filter_and_actions_per_state(dashboard) -> None:
    node, driver = dashboard
    assert by_id(driver, "range").text == "1–50 of 56"
    assert (
        rows(driver)[0] == LONG_ID
        and "Salão Rosa" in driver.find_element("css selector", f"#rows tr[data-company='{LONG_ID}']").text
    )
    by_id(driver, "next").click()
    until(driver, lambda d: len(rows(d)) == 6, what="the second page")
    assert by_id(driver, "range").text == "51–56 of 56" and not by_id(driver, "next").is_enabled()
    assert rows(driver)[0] == "shop-049"
    by_id(driver, "prev").click()
    until(driver, lambda d: len(rows(d)) == 50, what="back to the first page")

    # a name the id does not contain, as typed with its accent or without
    by_id(driver, "search").send_keys("salao ros")
    until(driver, lambda d: rows(d) == [LONG_ID], what="the search by name")
    assert by_id(driver, "range").text == "1–1 of 1"
    by_id(driver, "search").clear()
    by_id(driver, "search").send_keys("number 5")
    until(
        driver, lambda d: rows(d) == ["shop-005"] + [f"shop-{i:03d}" for i in range(50, 55)], what="5, 50-54"
    )

    from selenium.webdriver.support.ui import Select

    Select(by_id(driver, "filter-status")).select_by_value("connected")
    until(driver, lambda d: rows(d) == ["shop-052"], what="search and filter together")
    by_id(driver, "search").clear()
    by_id(driver, "search").send_keys(" ")
    until(driver, lambda d: rows(d) == ["shop-001", "shop-052"], what="the connected ones")
    assert actions(driver, "shop-001") == ["stop", "cleanup"]  # no reconnect on a connected one
    Select(by_id(driver, "filter-status")).select_by_value("stopped")
    until(driver, lambda d: len(rows(d)) == 50 and "shop-001" not in rows(d), what="the stopped ones")
    assert actions(driver, "shop-000") == ["reconnect", "cleanup"]  # no stop on a stopped one
    assert driver.find_element("css selector", "#rows tr[data-company=shop-000] button").text == "Start"

    # stopping from the row turns its actions over at once
    Select(by_id(driver, "filter-status")).select_by_value("")
    until(driver, lambda d: "shop-001" in rows(d), what="all again")
    driver.find_element("css selector", "#rows tr[data-company=shop-001] button[data-action=stop]").click()
    until(driver, lambda d: actions(d, "shop-001") == ["reconnect", "cleanup"], what="shop-001 stopped")
    assert node.status("shop-001")["status"] == "stopped"
    driver.save_screenshot(str(ARTIFACTS / "dashboard-pages.png"))


@pytest.mark.parametrize("width", [1280, 390])
def test_ids_do_not_break_at_hyphens(node_factory, browser, width: int) -> None:  # noqa: F811
    node: Node = node_factory().start()
    node.create_company(LONG_ID, name="Salão Rosa")
    node.create_company("x", name="X")
    browser.set_window_size(width, 900)
    login(browser, f"{node.base_url}/", ADMIN_TOKEN)
    until(browser, lambda d: len(rows(d)) == 2, what="the rows")
    lines = browser.execute_script(
        """
        var row = document.querySelector(`#rows tr[data-company='${arguments[0]}']`);
        var walk = document.createTreeWalker(row, NodeFilter.SHOW_TEXT);
        var id = null;
        while (walk.nextNode()) if (walk.currentNode.textContent === arguments[0]) { id = walk.currentNode; break; }
        var range = document.createRange(); range.selectNodeContents(id);
        var tops = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top)));
        return tops.size;
        """,
        LONG_ID,
    )
    assert lines == 1
    browser.execute_script("document.querySelector('#rows tr').scrollIntoView();")
    browser.save_screenshot(str(ARTIFACTS / f"dashboard-ids-{width}.png"))


def test_live_events_update_one_row_without_refetching_the_fleet(dashboard) -> None:
    node, driver = dashboard
    until(driver, lambda d: by_id(d, "live").get_attribute("data-state") == "open", what="the stream")
    until(driver, lambda d: count(d, "connected") == "2", what="the counts")
    log_requests(driver)
    assert node.post("/api/sandbox/shop-001/crash").status_code == 202
    until(
        driver,
        lambda d: (
            d.execute_script(
                "var r = document.querySelector('#rows tr[data-company=shop-001]');"
                "return r.dataset.status + '/' + r.querySelector('.restarts').textContent;"
            )
            == "connected/1"
        ),
        what="shop-001's row: back, one restart",
    )
    # shop-052 is on the next page: its change moves the counts only
    assert node.post("/api/whatsapp/sessions/shop-052/stop").status_code == 200
    until(driver, lambda d: count(d, "connected") == "1" and count(d, "stopped") == "55", what="counts")
    urls = driver.execute_script("return window.__urls;")
    assert not [u for u in urls if u.startswith("/api/whatsapp/sessions?")], urls  # no list refetch
    assert "/api/whatsapp/sessions/shop-001/status" in urls
    assert not [u for u in urls if "/sessions/" in u and "shop-001" not in u], urls
    assert len(rows(driver)) == 50


def test_charts_plot_the_timeseries(node_factory, browser) -> None:  # noqa: F811
    node: Node = node_factory(
        WHATSAPP_METRICS_INTERVAL="200", WHATSAPP_RECONNECT_DELAY="100", STATSD_HOST=""
    ).start()
    node.create_company("alpha")
    node.create_company("beta")
    node.connect("alpha")
    node.connect("beta")
    for n in range(3):
        r = node.post("/api/sandbox/alpha/inbound", {"from": "15551234567", "text": f"hello {n}"})
        assert r.status_code == 202, r.text
    assert node.post("/api/sandbox/beta/disconnect", {"reason": "transient"}).status_code == 202
    node.wait_status("beta", "connected")

    def saved() -> list[dict] | None:
        r = node.client.get("/api/whatsapp/metrics/timeseries?minutes=360", headers=node.admin())
        points = r.json()["points"]
        done = (
            sum(p["messagesIn"] for p in points) == 3
            and sum(p["restarts"] for p in points) == 1
            and points[-1]["connected"] == 2
        )
        return points if done else None

    from tests.harness import wait_for

    points = wait_for(saved, what="the minutes saved")
    login(browser, f"{node.base_url}/", ADMIN_TOKEN)
    until(browser, lambda d: d.find_elements("css selector", "#chart-errors svg"), what="the charts")

    def chart(name: str) -> dict:
        return browser.execute_script(
            """
            var f = document.getElementById('chart-' + arguments[0]);
            return {max: Number(f.dataset.max), points: Number(f.dataset.points),
                    bars: f.querySelectorAll('rect.bar').length,
                    marks: f.querySelectorAll('path.line, circle.dot').length,
                    caption: f.querySelector('figcaption').textContent,
                    label: f.querySelector('svg').getAttribute('aria-label')};
            """,
            name,
        )

    connected = chart("connected")
    assert connected["points"] == 360 and connected["marks"] >= 1
    assert connected["max"] == max(p["connected"] for p in points) == 2
    assert connected["caption"] == "Connected sessions now: 2"
    messages = chart("messages")
    assert messages["max"] == max(max(p["messagesIn"], p["messagesOut"]) for p in points)
    assert "in " in messages["caption"] and "out " in messages["caption"]
    restarts = chart("restarts")
    assert restarts["bars"] == sum(1 for p in points if p["restarts"]) >= 1
    assert restarts["max"] == max(p["restarts"] for p in points)
    errors = chart("errors")
    assert errors["bars"] == sum(1 for p in points if p["errors"])
    assert "Errors per minute" in errors["label"]
    assert not by_id(browser, "charts-note").is_displayed()
    browser.save_screenshot(str(ARTIFACTS / "dashboard-charts.png"))

    from selenium.webdriver.support.ui import Select

    Select(by_id(browser, "chart-range")).select_by_value("60")
    until(browser, lambda d: chart("errors")["points"] == 60, what="the last hour")
    assert chart("connected")["max"] == 2
