"""The screens people use, walked in headless Chromium against the real Twisted server (issue 6):
sign in as each role and see only its screens, filter the call report and export it, refund a whole call
and a custom amount, re-post a failed posting. Screenshots of the main screens at 1366x768 are written
to docs/screenshots/.

Chromium is Debian's ``/usr/bin/chromium``; see test_browser.py for the flags and the skip rule.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from flask import Flask
from sqlalchemy import select

from appliance.db.models import Alert, Extension, LinkStatus, Posting, PostingEvent, Stay
from appliance.db.session import upgrade
from tests.helpers import make_config
from tests.webadmin.conftest import PASSWORD, LiveServer, make_call, make_posting, make_user
from tests.webadmin.test_browser import CHROMIUM, CHROMIUM_ARGS, _require_chromium
from webadmin import create_app

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1366, "height": 768}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Flask, LiveServer]]:
    """The web admin with a full configuration (tariff, links), on SQLite, served by Twisted; wall clock."""
    url = f"sqlite:///{tmp_path / 'appliance.db'}"
    upgrade(url)
    app = create_app({"DATABASE_URL": url, "SITE_TIMEZONE": "UTC", "SITE_NAME": "Grand Example Hotel"},
                     config=make_config(url))
    server = LiveServer(app)
    try:
        yield app, server
    finally:
        server.stop()
        app.extensions["appliance_db"].engine.dispose()


@pytest.fixture
def browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Session:
    """One signed-in browser tab that collects console errors (a CSP violation shows up as one)."""

    def __init__(self, browser: Any, server: LiveServer, username: str) -> None:
        self.context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda msg: self.problems.append(msg.text) if msg.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.problems.append(str(exc)))
        self.page.on("dialog", lambda dialog: dialog.accept())  # the refund / write-off confirmations
        self.base = server.url
        self.page.goto(self.base + "/auth/login")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_role("heading", name="Dashboard").wait_for()

    def go(self, path: str) -> Any:
        self.page.goto(self.base + path)
        return self.page

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))

    def close(self, *, forbidden_seen: bool = False) -> None:
        """Close the tab; no script or CSP error may have happened (nor a 403 unless one was asked for)."""
        self.context.close()
        expected = "the server responded with a status of 403"
        assert [p for p in self.problems if not (forbidden_seen and expected in p)] == []


def _seed(app: Flask) -> dict[str, int]:
    """A small but lively hotel: calls today in two rooms, a failed posting, alerts, links, a guest."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    # Every call of the seed falls on today's date (UTC, the site's zone here), whatever the hour now.
    day = now.replace(hour=0, minute=0, second=0)
    ids: dict[str, int] = {}
    with app.extensions["appliance_db"].sessions() as db:
        db.add_all([Extension(number="101", category="guest", room="0101", description=""),
                    Extension(number="102", category="guest", room="0102", description=""),
                    Extension(number="150", category="lobby", room="", description="lobby phone"),
                    Stay(room="0101", guest_id="G1", name="Ada Example",
                         checked_in_at=now - timedelta(days=2)),
                    Stay(room="0102", guest_id="G2", name="Ben Example",
                         checked_in_at=now - timedelta(days=1))])
        db.flush()
        for n in range(6):
            room = "0101" if n % 2 == 0 else "0102"
            call = make_call(db, start=day + timedelta(minutes=60 - 10 * n), extension=room[1:], room=room,
                             dialled=f"00442079460{n:02d}", amount=Decimal("2.00") + n,
                             raw=f"\x02{n:02d} {room} 00442079460{n:02d} 00:02:05\r\n".encode())
            posting = make_posting(db, call, state="ok", sequence=n + 1, answer_code="OK",
                                   answer_text="posted",
                                   created_at=call.start, updated_at=call.start)
            db.add(PostingEvent(posting_id=posting.id, at=call.start, from_state="", to_state="open",
                                cause="call rated and routed"))
            db.add(PostingEvent(posting_id=posting.id, at=call.start, from_state="open", to_state="ok",
                                cause="OK: posted", sequence=n + 1, raw=f"PA|RN{room}|P#{n + 1}|ASOK|"))
            ids[f"call{n}"] = call.id
        failed_call = make_call(db, start=day + timedelta(minutes=1), extension="102", room="0102",
                                dialled="0033140000000", amount=Decimal("4.10"))
        failed = make_posting(db, failed_call, state="failed", attempts=1, sequence=9, sent_at=now,
                              answer_code="NG", answer_text="guest not found",
                              reason="PMS refused it, NG: guest not found", created_at=failed_call.start,
                              updated_at=failed_call.start + timedelta(seconds=30))
        ids["failed"] = failed.id
        db.add_all([
            LinkStatus(name="pbx", kind="pbx", state="up", since=now - timedelta(hours=5), detail="",
                       last_record_at=now - timedelta(minutes=5)),
            LinkStatus(name="pms", kind="pms", state="up", since=now - timedelta(hours=5), detail="",
                       last_answer_at=now - timedelta(minutes=5)),
            Alert(rule="lobby_long_distance", severity="warning", subject="150",
                  message="Lobby phone 150 dialled an international number",
                  created_at=now - timedelta(hours=1)),
        ])
        db.commit()
    for username, role in (("vera", "viewer"), ("frida", "frontdesk"), ("ivan", "admin")):
        make_user(app, username, role=role)
    return ids


NAV = {"viewer": ["Dashboard", "Calls", "Reports", "Alerts"],
       "frontdesk": ["Dashboard", "Calls", "Reports", "Refunds", "Alerts"],
       "admin": ["Dashboard", "Calls", "Reports", "Refunds", "Failed postings", "Alerts", "Settings"]}


def test_each_role_signs_in_and_sees_only_its_screens(site: tuple[Flask, LiveServer], browser: Any) -> None:
    from playwright.sync_api import expect

    app, server = site
    ids = _seed(app)
    for username, role in (("vera", "viewer"), ("frida", "frontdesk"), ("ivan", "admin")):
        tab = Session(browser, server, username)
        page = tab.page
        links = page.locator("nav[aria-label=Main] a").all_inner_texts()
        assert links == NAV[role], role
        forbidden = {"viewer": ["/refunds/", "/failed/", "/settings/", "/settings/users/"],
                     "frontdesk": ["/failed/", "/settings/", "/settings/users/", "/settings/tariffs"],
                     "admin": []}[role]
        for path in forbidden:
            tab.go(path)
            expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        tab.go(f"/calls/{ids['call0']}")
        refund_button = page.get_by_role("button", name="Refund the whole call")
        expect(refund_button).to_have_count(0 if role == "viewer" else 1)
        if role == "admin":
            tab.go("/")
            expect(page.locator("#calls-today")).to_have_text("7")
            tab.shot("dashboard")
            for path, name in (("/alerts/", "alerts"), ("/settings/", "settings-extensions"),
                               ("/settings/tariffs", "settings-tariff"), ("/settings/users/",
                                                                          "settings-users"),
                               ("/settings/links", "settings-links")):
                tab.go(path)
                tab.shot(name)
        tab.close(forbidden_seen=role != "admin")


def test_filter_the_call_report_and_export_it(site: tuple[Flask, LiveServer], browser: Any) -> None:
    from playwright.sync_api import expect

    app, server = site
    _seed(app)
    tab = Session(browser, server, "vera")
    page = tab.page
    page.get_by_role("link", name="Calls", exact=True).click()
    expect(page.locator("#report tbody tr")).to_have_count(7)
    page.get_by_label("Room", exact=True).fill("0101")
    page.get_by_label("Posting state").select_option("ok")
    page.get_by_role("button", name="Show").click()
    rows = page.locator("#report tbody tr")
    expect(rows).to_have_count(3)
    for text in rows.all_inner_texts():
        assert "0101" in text and "Posted" in text
    expect(page.locator("#totals")).to_contain_text("3 records (3 calls, 0 refunds)")
    expect(page.locator("#net")).to_have_text("12.00")  # 2 + 4 + 6
    tab.shot("report")

    with page.expect_download() as csv_download:
        page.get_by_role("link", name="CSV").click()
    text = Path(csv_download.value.path()).read_text(encoding="utf-8-sig")
    lines = list(csv.reader(io.StringIO(text)))
    assert [(line[5], line[14], line[16]) for line in lines[1:]] == [("0101", "2.00", "Posted"),
                                                                    ("0101", "4.00", "Posted"),
                                                                    ("0101", "6.00", "Posted")]
    with page.expect_download() as xlsx_download:
        page.get_by_role("link", name="Excel").click()
    data = Path(xlsx_download.value.path()).read_bytes()
    sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).active
    assert [row[5] for row in sheet.iter_rows(min_row=2, values_only=True)] == ["0101"] * 3
    tab.close()


def test_refund_a_whole_call_and_a_custom_amount(site: tuple[Flask, LiveServer], browser: Any) -> None:
    from playwright.sync_api import expect

    app, server = site
    ids = _seed(app)
    tab = Session(browser, server, "frida")
    page = tab.page
    tab.go(f"/report/?call_id={ids['call1']}")
    page.get_by_role("link", name=f"call {ids['call1']}").click()
    expect(page.get_by_role("heading", name=f"Call {ids['call1']}")).to_be_visible()
    page.get_by_label("Reason").first.fill("guest says the line was dead")
    page.get_by_role("button", name="Refund the whole call").click()
    expect(page.get_by_role("status")).to_contain_text("refunded: 3.00 USD back to room 0102")
    expect(page.locator("#refunded-banner")).to_contain_text("Refunded in full by frida")
    expect(page.get_by_role("button", name="Refund the whole call")).to_have_count(0)
    tab.shot("call-detail")

    page.get_by_role("link", name="Refunds", exact=True).click()
    page.get_by_label("Room", exact=True).fill("0101")
    page.get_by_label("Amount", exact=True).fill("7.50")
    page.get_by_label("Reason", exact=True).fill("broken minibar")
    page.get_by_role("button", name="Refund to this room").click()
    expect(page.get_by_role("status")).to_contain_text("7.50 USD refunded to room 0101")
    first = page.locator("#refunds tbody tr").first
    expect(first).to_contain_text("-7.50 USD")
    expect(first).to_contain_text("REF0")
    expect(page.locator("#refunds tbody tr")).to_have_count(2)
    tab.shot("refunds")
    tab.close()
    with app.extensions["appliance_db"].sessions() as db:
        refunds = db.scalars(select(Posting).where(Posting.kind == "refund").order_by(Posting.id)).all()
        assert [(r.room, r.amount, r.state, r.created_by, r.call_id is None) for r in refunds] == [
            ("0102", Decimal("3.00"), "open", "frida", False), ("0101", Decimal("7.50"), "open", "frida",
                                                                True)]


def test_re_post_a_failed_posting(site: tuple[Flask, LiveServer], browser: Any) -> None:
    from playwright.sync_api import expect

    app, server = site
    ids = _seed(app)
    tab = Session(browser, server, "ivan")
    page = tab.page
    page.get_by_role("link", name="Failed postings").click()
    row = page.locator("#failed tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("NG guest not found")
    tab.shot("failed-postings")
    page.get_by_label("Select all").check()  # admin.js ticks every posting
    expect(page.get_by_label(f"Select posting {ids['failed']}")).to_be_checked()
    page.get_by_label("Action").select_option("repost")
    page.get_by_label("Note").fill("guest moved to 0102, PMS fixed")
    page.get_by_role("button", name="Apply to the selected postings").click()
    expect(page.get_by_role("status")).to_contain_text(f"1 posting(s) re-posted: {ids['failed']}.")
    expect(page.get_by_text("No failed postings. Nothing to do.")).to_be_visible()
    tab.close()
    with app.extensions["appliance_db"].sessions() as db:
        posting = db.get(Posting, ids["failed"])
        assert (posting.state, posting.sent_at, posting.note) == ("open", None,
                                                                  "guest moved to 0102, PMS fixed")
        assert re.search(r"re-posted by ivan", posting.reason)
