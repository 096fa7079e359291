"""The terminal in a real browser: Debian's chromium driven by Playwright, against a
running platform (`tickplane up --no-ui`) and `tickplane ui`.

A trader logs in, places a limit order from the ticket, sees it on Orders; a second
account (a key from `tickplane keys create`) crosses it; the fill shows on Executions
and the position on Positions; another order is canceled from Orders. Every page is
screenshotted into the test's tmp dir (`<tmp>/screenshots/*.png`)."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.ui.conftest import Platform, order

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Missing is a failure, not a skip: `make services` installs it.
    assert Path(CHROMIUM).exists(), "no chromium: run scripts/browser/install.sh (make services)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--disable-gpu"])
        yield b
        b.close()


def _go(page: Page, name: str) -> None:
    # The label is the page's icon (a ligature of the icon font) and its name.
    labels = page.locator("[data-testid=stSidebar] label", has_text=re.compile(rf"\b{name}$"))
    labels.first.click()


def _cell(page: Page, text: str) -> None:
    """Wait until a table cell on the page reads `text` exactly."""
    cells = page.locator(
        "[data-testid=stDataFrame] td", has_text=re.compile(rf"^{re.escape(text)}$")
    )
    expect(cells.first).to_be_attached(timeout=WAIT_MS)


def _order_id(confirmation: str) -> int:
    found = re.search(r"order #(\d+)", confirmation)
    assert found, confirmation
    return int(found.group(1))


def _shot(page: Page, shots: Path, name: str) -> None:
    # Wait out the rerun: elements of the page before are marked stale until replaced.
    expect(page.locator("[data-stale=true]")).to_have_count(0, timeout=WAIT_MS)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def test_trade_fill_position_cancel_in_a_browser(
    browser: Browser, terminal: str, ui_platform: Platform, tmp_path: Path
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    bob_key = ui_platform.key("bob")
    with ui_platform.http(bob_key) as bob:
        for qty, price in ((2, 10005), (3, 10010)):  # trades for the tape and the chart
            assert (
                bob.post("/api/v1/orders", json=order("GOOG", "buy", qty, price)).status_code == 201
            )

    page = browser.new_page(viewport={"width": 1440, "height": 1400})
    page.goto(terminal)
    page.get_by_label("Key id (APCA-API-KEY-ID)").fill(ui_platform.demo["key_id"])
    page.get_by_label("Secret (APCA-API-SECRET-KEY)").fill(ui_platform.demo["secret"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Order ticket")).to_be_visible(timeout=WAIT_MS)
    assert ui_platform.demo["secret"] not in page.url

    # The ticket: buy 5 GOOG at 100.00, inside the maker's spread (99.95 / 100.15 now).
    page.get_by_role("textbox", name="Quantity (shares)").fill("5")
    page.get_by_role("textbox", name="Limit price").fill("100.00")
    page.get_by_role("button", name="Send order").click()
    sent = page.get_by_text(re.compile(r"order #\d+: new"))
    expect(sent).to_be_visible(timeout=WAIT_MS)
    order_id = _order_id(sent.inner_text())
    expect(page.get_by_text("buy 5 GOOG limit 100.00 gtc")).to_be_visible()
    _cell(page, "100.00")  # our bid is on the ladder

    _go(page, "Orders")
    _cell(page, str(order_id))
    expect(page.get_by_role("combobox", name="Order")).to_have_value(
        f"#{order_id} buy 5 GOOG limit @ 100.00", timeout=WAIT_MS
    )
    _shot(page, shots, "orders")

    # A second account crosses it.
    with ui_platform.http(bob_key) as bob:
        r = bob.post("/api/v1/orders", json=order("GOOG", "sell", 5, 10000))
        assert r.status_code == 201 and r.json()["status"] == "filled", r.text

    _go(page, "Executions")
    _cell(page, str(order_id))
    _cell(page, "maker")
    _cell(page, "100.00")
    _shot(page, shots, "executions")
    with page.expect_download(timeout=WAIT_MS) as download:
        page.get_by_role("button", name=re.compile("Export CSV")).click()
    rows = list(csv.DictReader(Path(download.value.path()).read_text().splitlines()))
    mine = [r for r in rows if r["order"] == str(order_id)]
    assert [(r["side"], r["price"], r["qty"], r["liquidity"]) for r in mine] == [
        ("buy", "100.00", "5", "maker")
    ]

    _go(page, "Positions")
    _cell(page, "100.0000")  # the average price, exact
    _cell(page, "5")
    _shot(page, shots, "positions")

    # Cancel: a second order from the ticket, canceled from Orders.
    _go(page, "Trade")
    page.get_by_role("textbox", name="Quantity (shares)").fill("3")
    page.get_by_role("textbox", name="Limit price").fill("99.97")
    page.get_by_role("button", name="Send order").click()
    sent = page.get_by_text(re.compile(r"order #\d+: new"))
    expect(sent).to_contain_text("order #", timeout=WAIT_MS)
    expect(page.get_by_text("buy 3 GOOG limit 99.97 gtc")).to_be_visible(timeout=WAIT_MS)
    second = _order_id(sent.inner_text())
    _go(page, "Orders")
    expect(page.get_by_role("combobox", name="Order")).to_have_value(
        f"#{second} buy 3 GOOG limit @ 99.97", timeout=WAIT_MS
    )
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.get_by_text(f"Canceled #{second}")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("No open orders.")).to_be_visible(timeout=WAIT_MS)
    with ui_platform.http(ui_platform.demo) as gw:
        assert gw.get(f"/api/v1/orders/{second}").json()["status"] == "canceled"
        assert gw.get(f"/api/v1/orders/{order_id}").json()["status"] == "filled"

    _go(page, "Strategies")
    expect(page.get_by_text(re.compile("No strategies"))).to_be_visible(timeout=WAIT_MS)
    _shot(page, shots, "strategies")

    _go(page, "Monitoring")
    expect(page.get_by_text("Orders/s")).to_be_visible(timeout=WAIT_MS)
    # The charts need two scrapes of the engine's metrics: a refresh or two.
    expect(page.locator("[data-testid=stVegaLiteChart]").first).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("Request latency histogram", exact=False)).to_be_visible()
    _shot(page, shots, "monitoring")

    _go(page, "Trade")
    expect(page.get_by_text("Last trades")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("[data-testid=stVegaLiteChart]").first).to_be_visible(timeout=WAIT_MS)
    _shot(page, shots, "trade")
    assert sorted(p.name for p in shots.iterdir()) == [
        f"{n}.png"
        for n in ("executions", "monitoring", "orders", "positions", "strategies", "trade")
    ]
    page.close()
