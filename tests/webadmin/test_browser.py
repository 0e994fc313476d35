"""The web admin in headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright's sync API),
against the real Twisted server over a migrated SQLite database.

Playwright's own browser download is never used. Without Chromium the test skips locally and fails under
``CI=true``; ``make browser`` installs it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from appliance.db.session import upgrade
from tests.webadmin.conftest import LiveServer, make_call, make_posting, make_user
from webadmin import create_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
TEMPORARY = "temporary-pass-1"
CHOSEN = "my own password 2"


def _require_chromium() -> None:
    if os.path.exists(CHROMIUM):
        return
    message = f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[Flask]:
    # Real time here: the browser's session runs on the wall clock, like in production.
    url = f"sqlite:///{tmp_path / 'appliance.db'}"
    upgrade(url)
    app = create_app({"DATABASE_URL": url, "SITE_TIMEZONE": "UTC"})
    yield app
    app.extensions["appliance_db"].engine.dispose()


@pytest.fixture
def server(sqlite_app: Flask) -> Iterator[LiveServer]:
    server = LiveServer(sqlite_app)
    try:
        yield server
    finally:
        server.stop()


def test_first_sign_in_password_change_and_recent_calls(sqlite_app: Flask, server: LiveServer) -> None:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    make_user(sqlite_app, "frontdesk1", TEMPORARY, role="frontdesk", must_change_password=True)
    with sqlite_app.extensions["appliance_db"].sessions() as db:
        _seed_call(db)

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            # A CSP violation or a script error shows up as a console error.
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))

            page.goto(server.url + "/")
            expect(page).to_have_url(re.compile(r"/auth/login"))
            page.get_by_label("Username").fill("frontdesk1")
            page.get_by_label("Password").fill(TEMPORARY)
            page.get_by_role("button", name="Sign in").click()

            expect(page).to_have_url(re.compile(r"/auth/password$"))
            expect(page.get_by_role("heading", name="Change password")).to_be_visible()
            page.get_by_label("Current password").fill(TEMPORARY)
            page.get_by_label("New password", exact=True).fill(CHOSEN)
            page.get_by_label("New password again").fill(CHOSEN)
            page.get_by_role("button", name="Change password").click()

            expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
            expect(page.get_by_role("status")).to_contain_text("Your password has been changed.")
            page.get_by_role("link", name="Recent calls and postings").click()
            row = page.locator("#calls tbody tr").first
            expect(row).to_contain_text("0412")
            expect(row).to_contain_text("0044207946000")
            expect(row).to_contain_text("3.40 USD")
            expect(row).to_contain_text("Posted")
            # The stylesheet loaded (from this server only): the header is dark.
            background = page.locator("header.top").evaluate("e => getComputedStyle(e).backgroundColor")
            assert background == "rgb(29, 35, 48)"

            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        finally:
            browser.close()
    assert problems == []


def _seed_call(db: Session) -> None:
    call = make_call(db, room="0412", amount=Decimal("3.40"))
    make_posting(db, call, state="ok", sequence=1, answer_code="OK")
    db.commit()
