"""The report screens and the schedule editor walked in headless Chromium against the real Twisted server:
an admin opens each report for a day, sees its chart, downloads a CSV, creates and edits a schedule; a
viewer reads reports but never sees the schedules. No script or CSP error may happen on any page (the
charts are inline SVG coloured by the stylesheet). Screenshots at 1366x768 go to docs/screenshots/.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from appliance.db.models import Alert, AlertDelivery, Call, Extension, ReportSchedule
from tests.webadmin.conftest import LiveServer, make_call, make_posting, make_user
from tests.webadmin.test_browser_screens import Session, browser, site  # noqa: F401 (fixtures)
from webadmin import format_money

pytestmark = pytest.mark.browser
DAY = datetime(2026, 3, 10, tzinfo=timezone.utc)   # the site's zone is UTC in the ``site`` fixture
PERIOD = "start=2026-03-10&end=2026-03-10"
COUNTRIES = {"international": ["GB", "DE", "FR", "IT", "ES", "CH", "JP"], "national": ["US"], "local": ["US"],
             "mobile": ["US"]}


def _seed_day(app: Flask) -> Decimal:
    """A plausible hotel day: 220 calls, busier in the morning and evening, on four trunks; the guests'
    charges posted. Returns the cost of the outgoing calls (the reports' total)."""
    rng = random.Random(20260310)
    with app.extensions["appliance_db"].sessions() as db:
        db.add_all([Extension(number=f"{n}", category="guest", room=f"0{n}") for n in range(101, 121)]
                   + [Extension(number="150", category="lobby", description="Lobby"),
                      Extension(number="200", category="admin", description="Front office"),
                      Extension(number="210", category="admin", description="Sales"),
                      Extension(number="220", category="service", description="Kitchen")])
        for n in range(220):
            hour = rng.choices(range(24), weights=[1, 1, 1, 1, 1, 2, 4, 8, 10, 9, 8, 7, 7, 7, 8, 8, 8, 9, 10,
                                                   10, 9, 6, 3, 2])[0]
            start = DAY + timedelta(hours=hour, seconds=rng.randrange(3600))
            direction = rng.choices(["outgoing", "incoming", "internal"], weights=[65, 30, 5])[0]
            ext = rng.choice([*(str(e) for e in range(101, 121)), "150", "200", "210", "220"])
            category = "guest" if ext < "150" else "lobby" if ext == "150" else "admin"
            call_class = rng.choices(["local", "national", "international", "mobile"], weights=[5, 3, 2, 3])[0] \
                if direction == "outgoing" else ("internal" if direction == "internal" else "unknown")
            duration = rng.randrange(20, 900 if call_class != "international" else 1500)
            amount = (Decimal(duration) * Decimal({"local": "0.002", "national": "0.004", "international": "0.02",
                                                   "mobile": "0.006"}.get(call_class, "0"))).quantize(Decimal("0.01"))
            call = make_call(db, start=start, duration=duration, extension=ext, trunk=f"T{rng.randrange(1, 5)}",
                             direction=direction, category=category, room=f"0{ext}" if category == "guest" else "",
                             call_class=call_class, destination=rng.choice(COUNTRIES.get(call_class, [""])),
                             amount=amount, disposition="charge" if direction == "outgoing" else direction)
            if category == "guest" and direction == "outgoing" and amount:
                make_posting(db, call, state="ok", answered_at=start + timedelta(seconds=duration + 5),
                             created_at=start, updated_at=start + timedelta(seconds=duration + 5))
        db.commit()
        return db.scalar(select(func.sum(Call.amount)).where(Call.direction == "outgoing"))


def test_report_screens_and_schedule_editor(site: tuple[Flask, LiveServer], browser: Any,  # noqa: F811
                                            tmp_path: Any) -> None:
    app, server = site
    total = _seed_day(app)
    make_user(app, "ada", role="admin", must_change_password=False)
    make_user(app, "vic", role="viewer", must_change_password=False)

    admin = Session(browser, server, "ada")
    page = admin.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    page.get_by_role("heading", name="Reports").wait_for()
    page.get_by_role("link", name="Cost by department").first.click()
    page.get_by_label("From").fill("2026-03-10")
    page.get_by_label("To").fill("2026-03-10")
    page.get_by_role("button", name="Show").click()
    page.locator("#chart svg").wait_for()
    assert page.locator("#report-table tfoot td").last.inner_text() == format_money(total)
    admin.shot("reports-cost-by-department")

    with page.expect_download() as download:
        page.locator("#downloads").get_by_role("link", name="CSV").click()
    lines = download.value.path().read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "Cost by department" and lines[-2].endswith(f",{total.normalize():f}")  # then a blank line

    admin.go(f"/reports/calls_by_hour?{PERIOD}")
    assert page.locator("#chart svg rect.chart-s0").count() == 25   # 24 hours and the legend
    page.locator("#period").evaluate("element => window.scrollTo(0, element.offsetTop - 8)")
    admin.shot("reports-calls-by-hour")

    admin.go(f"/reports/trunk_utilisation?{PERIOD}")
    page.get_by_label("Trunks").fill("4")
    page.get_by_role("button", name="Show").click()
    page.locator("#chart svg .chart-limit").wait_for(state="attached")  # a line: no area, never "visible"
    assert "with 4 trunks" in page.locator("#figures").inner_text()
    page.locator("#period").evaluate("element => window.scrollTo(0, element.offsetTop - 8)")
    admin.shot("reports-trunk-utilisation")

    admin.go("/reports/frontdesk_daily?start=2026-03-10")
    assert page.locator("#report-table tfoot td").first.inner_text() == "Total"
    admin.shot("reports-frontdesk-daily")

    # The schedule editor: a new nightly mail, then a change of time.
    page.get_by_role("link", name="Scheduled reports").click()
    page.get_by_role("link", name="New schedule").click()
    page.get_by_label("Name").fill("night-audit")
    page.get_by_label("Report", exact=True).select_option("daily")
    page.get_by_label("Time of day").fill("03:30")
    page.get_by_label("Excel").uncheck()
    page.get_by_label("Recipients").fill("gm@hotel.example\nnight@hotel.example")
    admin.shot("report-schedule-edit")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Schedule night-audit created.").wait_for()
    page.get_by_role("link", name="night-audit").click()
    page.get_by_label("Time of day").fill("04:00")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Schedule night-audit saved.").wait_for()
    row = page.locator("#schedules tr", has_text="night-audit")
    assert "Daily at 04:00" in row.inner_text() and "CSV, PDF" in row.inner_text()
    admin.shot("report-schedules")
    admin.close()
    with app.extensions["appliance_db"].sessions() as db:
        saved = db.scalar(select(ReportSchedule).where(ReportSchedule.name == "night-audit"))
        assert (saved.hour, saved.minute, saved.formats, saved.updated_by) == (4, 0, ["csv", "pdf"], "ada")

    viewer = Session(browser, server, "vic")
    viewer.page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    viewer.page.get_by_role("link", name="Cost by extension").first.click()
    assert viewer.page.get_by_role("link", name="Scheduled reports").count() == 0
    # The alerts screen: a delivery that failed twice, then went through; opened under its alert.
    alert_id = _seed_alert(app)
    viewer.go("/alerts/")
    viewer.page.locator(f"#delivery-log-{alert_id} summary").click()
    log = viewer.page.locator(f"#delivery-log-{alert_id} table")
    assert log.locator("tbody tr").count() == 4 and "HTTP 503" in log.inner_text()
    viewer.shot("alerts-delivery-log")
    viewer.close()


def _seed_alert(app: Flask) -> int:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with app.extensions["appliance_db"].sessions() as db:
        alert = Alert(rule="lobby_long_distance", severity="warning", subject="150",
                      message="Lobby phone 150 dialled an international number (+44 20 7946 0000)",
                      created_at=now - timedelta(minutes=12))
        db.add(alert)
        db.flush()
        hook = "https://hooks.example.net/..."
        db.add_all([
            AlertDelivery(alert_id=alert.id, channel="security-desk", target=hook, attempt=1, at=alert.created_at,
                          outcome="retry", error="DeliveryError: HTTP 503 Service Unavailable"),
            AlertDelivery(alert_id=alert.id, channel="security-desk", target=hook, attempt=2,
                          at=alert.created_at + timedelta(seconds=30), outcome="retry",
                          error="DeliveryError: HTTP 503 Service Unavailable"),
            AlertDelivery(alert_id=alert.id, channel="security-desk", target=hook, attempt=3,
                          at=alert.created_at + timedelta(seconds=90), outcome="sent"),
            AlertDelivery(alert_id=alert.id, channel="night-manager", target="nm@hotel.example", attempt=1,
                          at=alert.created_at, outcome="sent"),
        ])
        db.commit()
        return alert.id


