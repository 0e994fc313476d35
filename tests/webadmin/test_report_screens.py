"""The report screens: every report for a picked period, totals equal to the database's own sums, charts
drawn as SVG on the server, downloads as CSV, Excel and PDF written to the audit log, and roles.

The calls are the hand-built day of tests/reports/conftest.py (2024-03-05), here in the web admin's zone
(Europe/Berlin); the expected totals are plain SQL sums over the calls table, not the report code.
"""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from appliance.db.models import AuditEntry, Call, Extension, Posting
from appliance.reports.traffic import erlang_b
from tests.reports.conftest import CALLS, POSTINGS
from tests.reports.conftest import add_call as add_report_call
from tests.webadmin.conftest import login_as, table_rows
from webadmin import format_money

BERLIN = ZoneInfo("Europe/Berlin")
DAY = "2024-03-05"
PERIOD = {"start": DAY, "end": DAY}
SCREENS = ["cost_by_department", "cost_by_extension", "cost_by_trunk", "cost_by_call_class", "cost_by_country",
           "calls_by_hour", "trunk_utilisation", "frontdesk_daily"]


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


@pytest.fixture
def seeded(db: Session) -> Session:
    db.add_all([Extension(number="101", category="guest", room="101"),
                Extension(number="200", category="admin", description="Front office")])
    for n, (start, duration, ext, cat, trunk, direction, cls, dest, amount) in enumerate(CALLS):
        add_report_call(db, 1000 + n, local(start), duration, ext, cat, trunk, direction, cls, dest, amount)
    for room, kind, state, amount, answered in POSTINGS:
        moment = local(answered) if answered else local("2024-03-05 12:00:00")
        db.add(Posting(kind=kind, link="pms", room=room, amount=Decimal(amount), currency="USD", state=state,
                       created_at=moment, updated_at=moment, answered_at=local(answered) if answered else None))
    db.commit()
    return db


def day_bounds() -> tuple[datetime, datetime]:
    start = local(f"{DAY} 00:00:00")
    return start, start + timedelta(days=1)


def db_outgoing_totals(db: Session) -> tuple[int, Decimal]:
    low, high = day_bounds()
    count, amount = db.execute(select(func.count(Call.id), func.sum(Call.amount))
                               .where(Call.start >= low, Call.start < high, Call.direction == "outgoing")).one()
    return int(count), amount


@pytest.mark.parametrize("key", SCREENS)
@pytest.mark.parametrize("role", ["viewer", "frontdesk"])
def test_every_report_screen_reads_for_viewer_and_front_desk(app: Flask, client: FlaskClient, seeded: Session,
                                                             key: str, role: str) -> None:
    login_as(app, client, role)
    response = client.get(f"/reports/{key}", query_string=PERIOD)
    assert response.status_code == 200, response.text
    assert 'id="report-table"' in response.text and "Period: <strong>2024-03-05</strong>" in response.text
    assert f"/reports/{key}/download.pdf?start={DAY}" in response.text
    assert "New schedule" not in response.text and "Scheduled reports" not in response.text  # admin's only


@pytest.mark.parametrize("key", ["cost_by_department", "cost_by_extension", "cost_by_trunk", "cost_by_call_class",
                                 "cost_by_country"])
def test_cost_totals_equal_the_database(app: Flask, client: FlaskClient, seeded: Session, key: str) -> None:
    calls, amount = db_outgoing_totals(seeded)
    login_as(app, client, "viewer")
    page = client.get(f"/reports/{key}", query_string=PERIOD).text
    *rows, totals = table_rows(page, "report-table")
    assert totals[0] == "Total" and totals[-1] == format_money(amount) and totals[-3] == str(calls)
    # The rows add up to the totals too (money parsed back exactly).
    assert sum(Decimal(r[-1].replace(",", "")) for r in rows) == amount
    assert "<svg" in page and 'role="img"' in page


def test_cost_by_department_rows_and_chart(app: Flask, client: FlaskClient, seeded: Session) -> None:
    login_as(app, client, "viewer")
    page = client.get("/reports/cost_by_department", query_string=PERIOD).text
    rows = table_rows(page, "report-table")
    # Largest first: the guests' 0.10 + 0.70 + 6.50 + 3.25 + 9.99, then ext 200 by its description.
    assert rows[:2] == [["guest", "5", "0:38:10", "20.54"], ["Front office", "1", "0:50:00", "12.3456"]]
    assert "<title>Front office: 12.3456</title>" in page            # the bar's tooltip


def test_calls_by_hour_draws_outbound_and_inbound_bars(app: Flask, client: FlaskClient, seeded: Session) -> None:
    login_as(app, client, "frontdesk")
    page = client.get("/reports/calls_by_hour", query_string=PERIOD).text
    rows = table_rows(page, "report-table")
    low, high = day_bounds()
    outbound, inbound = (seeded.scalar(select(func.count(Call.id)).where(
        Call.start >= low, Call.start < high, Call.direction == d)) for d in ("outgoing", "incoming"))
    assert rows[-1][1] == str(outbound) and rows[-1][3] == str(inbound)
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert svg.count('<rect class="chart-s0"') == 24 + 1 and svg.count('<rect class="chart-s1"') == 24 + 1  # + legend
    assert "<title>9 Outbound: 2</title>" in svg and "<title>14 Inbound: 1</title>" in svg


def test_trunk_utilisation_figures_and_chart(app: Flask, client: FlaskClient, seeded: Session) -> None:
    login_as(app, client, "viewer")
    page = client.get("/reports/trunk_utilisation", query_string={**PERIOD, "trunks": "2"}).text
    figures = re.sub(r"\s+", " ", page[page.index('id="figures"'):page.index('id="chart"')])
    # By hand (conftest table): 14:50-15:00 has calls e, f and g up at once (peak 3). The 14:00 hour
    # carries e 1800 s + f 600 s + g 600 s = 3000 s; the 15:00 hour g 300 s + h 3000 s = 3300 s, so the
    # busy hour is 15:00 with 3300 / 3600 = 0.9167 Erlang.
    assert "<p class=\"big\">3</p>" in figures
    assert "0.9167 E" in figures
    assert f"{erlang_b(0.9167, 2) * 100:.2f} %" in figures
    assert 'class="chart-limit"' in page and "2 trunks" in page
    assert page.count('class="chart-hit"') == 288   # a day in 5-minute buckets


def test_front_desk_summary_net_equals_the_postings(app: Flask, client: FlaskClient, seeded: Session) -> None:
    login_as(app, client, "frontdesk")
    page = client.get("/reports/frontdesk_daily", query_string={"start": DAY}).text
    low, high = day_bounds()
    charged = seeded.scalar(select(func.sum(Posting.amount)).where(
        Posting.kind == "charge", Posting.state.in_(("ok", "refunded")), Posting.answered_at >= low,
        Posting.answered_at < high))
    refunded = seeded.scalar(select(func.sum(Posting.amount)).where(
        Posting.kind == "refund", Posting.state == "ok", Posting.answered_at >= low, Posting.answered_at < high))
    totals = table_rows(page, "report-table")[-1]
    assert totals[0] == "Total" and totals[-1] == format_money(charged - refunded)
    assert totals[2] == format_money(charged) and totals[4] == format_money(refunded)


def test_downloads_are_audited_and_carry_the_same_totals(app: Flask, client: FlaskClient, seeded: Session) -> None:
    _, amount = db_outgoing_totals(seeded)
    login_as(app, client, "viewer", "vera")
    csv = client.get("/reports/cost_by_extension/download.csv", query_string=PERIOD)
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert 'filename="cost_by_extension-2024-03-05.csv"' in csv.headers["Content-Disposition"]
    assert csv.data.decode("utf-8-sig").splitlines()[-2].endswith(f",{amount}")
    xlsx = client.get("/reports/cost_by_extension/download.xlsx", query_string=PERIOD)
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    assert Decimal(str(list(sheet.iter_rows(values_only=True))[-1][-1])) == amount
    pdf = client.get("/reports/trunk_utilisation/download.pdf", query_string={**PERIOD, "trunks": "4"})
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    seeded.expire_all()
    entries = seeded.scalars(select(AuditEntry).where(AuditEntry.action == "report.download")
                             .order_by(AuditEntry.id)).all()
    assert [(e.username, e.target, e.after["format"], e.after["period"]) for e in entries] == [
        ("vera", "report:cost_by_extension", "csv", DAY), ("vera", "report:cost_by_extension", "xlsx", DAY),
        ("vera", "report:trunk_utilisation", "pdf", DAY)]


def test_a_fresh_visit_shows_the_last_week_and_bad_periods_are_refused(app: Flask, client: FlaskClient,
                                                                       seeded: Session) -> None:
    login_as(app, client, "viewer")
    page = client.get("/reports/cost_by_trunk").text
    assert "Period: <strong>2024-04-25 to 2024-05-01</strong>" in page   # the test clock: 2024-05-01
    assert "No calls in this period." in page
    backwards = client.get("/reports/cost_by_trunk", query_string={"start": "2024-03-06", "end": "2024-03-05"})
    assert backwards.status_code == 400 and "The end date is before the start date." in backwards.text
    too_long = client.get("/reports/cost_by_trunk", query_string={"start": "2022-01-01", "end": "2024-03-05"})
    assert too_long.status_code == 400
    assert client.get("/reports/no_such_report").status_code == 404
    assert client.get("/reports/cost_by_trunk/download.docx", query_string=PERIOD).status_code == 404
    assert client.get("/reports/cost_by_trunk/download.csv",
                      query_string={"start": "2024-03-06", "end": "2024-03-05"}).status_code == 400


def test_reports_need_a_sign_in(client: FlaskClient) -> None:
    response = client.get("/reports/cost_by_trunk")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    assert client.get("/reports/cost_by_trunk/download.csv").status_code == 302


def test_the_index_lists_every_report(app: Flask, client: FlaskClient) -> None:
    login_as(app, client, "admin")
    page = client.get("/reports/").text
    for key in SCREENS:
        assert f'href="/reports/{key}"' in page
    assert 'href="/reports/schedules/"' in page


