"""The first-boot setup in headless Chromium (Debian's ``/usr/bin/chromium``, Playwright's sync API), against
the real Twisted server: the setup code, the admin, the site, "Test this link" on a PBX (a fake PBX printing
Mitel SMDR) and on a FIAS PMS (the PMS simulator), review and finish, then sign-in as the new admin.
Screenshots at 1366x768 go to docs/screenshots/setup-*.png. No CSP violation or script error may appear.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from flask import Flask

from appliance.db.session import upgrade
from appliance.firstboot import SetupState, format_code
from tests.test_link_probe import free_port, mitel_records, pms_simulator, send_later  # noqa: F401
from tests.webadmin.conftest import LiveServer
from tests.webadmin.test_browser import CHROMIUM, CHROMIUM_ARGS, _require_chromium
from webadmin import create_app

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1366, "height": 768}
PASSWORD = "the first admin password"


@pytest.fixture
def setup_server(tmp_path: Path) -> Iterator[tuple[Flask, LiveServer, Path]]:
    url = f"sqlite:///{tmp_path / 'appliance.db'}"
    upgrade(url)
    state = tmp_path / "state"
    state.mkdir()
    app = create_app({"DATABASE_URL": url, "SITE_TIMEZONE": "UTC", "SETUP_DIR": str(state),
                      "SETUP_PROBE_SECONDS": {"pbx": 8.0, "pms": 15.0}})
    server = LiveServer(app)
    try:
        yield app, server, state
    finally:
        server.stop()
        app.extensions["appliance_db"].engine.dispose()


def test_setup_walk_through_in_a_browser(setup_server: tuple[Flask, LiveServer, Path], pms_simulator: int) -> None:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    _app, server, state = setup_server
    problems: list[str] = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))

            page.goto(server.url + "/")
            expect(page).to_have_url(server.url + "/setup/")
            expect(page.get_by_role("heading", name="Set up this appliance")).to_be_visible()
            page.screenshot(path=str(SCREENSHOTS / "setup-code.png"))
            code = SetupState(state).current_code()
            assert code is not None
            page.get_by_label("Setup code").fill(format_code(code).lower())
            page.get_by_role("button", name="Continue").click()

            expect(page).to_have_url(server.url + "/setup/admin")
            page.get_by_label("Username").fill("manager")
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_label("Password again").fill(PASSWORD)
            page.get_by_role("button", name="Save and continue").click()

            expect(page).to_have_url(server.url + "/setup/site")
            page.get_by_label("Hotel name").fill("Hotel Playwright")
            page.get_by_label("Time zone").fill("Europe/Vienna")
            page.get_by_label("Country (ISO code)").fill("AT")
            page.get_by_label("Currency (ISO code)").fill("EUR")
            page.get_by_label("Guest room extensions").fill("101-140")
            page.get_by_role("button", name="Save and continue").click()

            expect(page).to_have_url(server.url + "/setup/link/pbx")
            port = free_port()
            page.get_by_label("Driver").select_option("mitel_mivb")
            page.get_by_label("Link name").fill("main")
            page.get_by_label("Transport").select_option("tcp-server")
            page.get_by_label("Host (address)").fill("127.0.0.1")
            page.get_by_label("TCP port").fill(str(port))
            send_later(port, mitel_records(3), delay=0.5)
            page.get_by_role("button", name="Test this link").click()
            expect(page.get_by_role("status")).to_contain_text("3 call record(s) received")
            expect(page.get_by_text("extension 101").first).to_be_visible()
            page.screenshot(path=str(SCREENSHOTS / "setup-pbx-test.png"), full_page=True)
            page.get_by_role("button", name="Save and continue").click()

            expect(page).to_have_url(server.url + "/setup/link/pms")
            page.get_by_label("Driver").select_option("fias")
            page.get_by_label("Link name").fill("opera")
            page.get_by_label("Transport").select_option("tcp-client")
            page.get_by_label("Host (address)").fill("127.0.0.1")
            page.get_by_label("TCP port").fill(str(pms_simulator))
            page.get_by_role("button", name="Test this link").click()
            expect(page.get_by_role("status")).to_contain_text("handshake complete")
            page.screenshot(path=str(SCREENSHOTS / "setup-pms-test.png"), full_page=True)
            page.get_by_role("button", name="Save and continue").click()

            expect(page).to_have_url(server.url + "/setup/finish")
            expect(page.locator("pre.yaml")).to_contain_text("Hotel Playwright")
            page.screenshot(path=str(SCREENSHOTS / "setup-review.png"), full_page=True)
            page.get_by_role("button", name="Finish setup").click()
            expect(page.get_by_role("heading", name="Setup complete")).to_be_visible()

            page.get_by_role("link", name="Sign in").click()
            expect(page).to_have_url(server.url + "/auth/login")
            page.get_by_label("Username").fill("manager")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("link", name="Dashboard")).to_be_visible()
            seen = list(problems)  # the 404 below is logged by the browser as a console error, on purpose
            response = page.goto(server.url + "/setup/")
            assert response is not None and response.status == 404
            expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        finally:
            browser.close()
    assert seen == []
    written = yaml.safe_load((state / "appliance.yaml").read_text())
    assert written["site"]["timezone"] == "Europe/Vienna" and written["pbx"][0]["port"] == port
    assert written["pms"]["port"] == pms_simulator
