"""Exports of the call report: exactly the filtered rows, in CSV and Excel, streamed, audited."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from appliance.db.models import AuditEntry, Call, Posting
from tests.webadmin.conftest import START, login_as, make_call, make_posting
from tests.webadmin.test_report import ALL_TIME, records, seed
from webadmin.export import HEADER, csv_chunks, xlsx_chunks
from webadmin.report_query import ReportFilter, ReportRow, iter_report

BERLIN = ZoneInfo("Europe/Berlin")
FILTER = "start=2024-04-25&end=2024-05-01&room=0412&sort=amount&order=asc"


def _csv(data: bytes) -> list[list[str]]:
    assert data.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def _xlsx(data: bytes) -> list[list[object]]:
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    return [list(row) for sheet in workbook.worksheets for row in sheet.iter_rows(values_only=True)]


def _expected(db: Session, flt: ReportFilter, sort: str, descending: bool) -> list[ReportRow]:
    return list(iter_report(db, flt, BERLIN, sort=sort, descending=descending, batch=3))


def test_csv_export_holds_exactly_the_filtered_rows(app: Flask, client: FlaskClient, db: Session) -> None:
    keys = seed(db)
    login_as(app, client, "viewer")
    response = client.get(f"/report/export.csv?{FILTER}")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="calls-20240501-1200.csv"'
    assert response.headers["Cache-Control"] == "no-store"
    rows = _csv(response.get_data())
    assert rows[0] == list(HEADER)
    # The page with the same filter shows the same records, in the same order.
    page = client.get(f"/report/?{FILTER}&size=200").text
    assert [f"{row[0]}-{row[1]}" for row in rows[1:]] == records(page)
    assert [row[1:] for row in rows[1:] if row[0] == "refund"] == [
        [keys["refund"][7:], keys["refunded"][5:], "2024-05-01 11:30:00", "2412", "0412", "outgoing", "",
         "0049301234", "0", "international", "Germany", "", "", "-7.00", "USD", "Posted", "frida"]]
    calls = [row for row in rows[1:] if row[0] == "call"]
    assert [row[14] for row in calls] == ["0.00", "0.00", "0.00", "3.40", "3.40", "3.40", "7.00", "12.3456"]
    assert calls[3][1:] == [keys["posted"][5:], keys["posted"][5:], "2024-05-01 12:00:00", "2412", "0412",
                            "outgoing", "", "0044207946000", "125", "international", "United Kingdom", "ACME",
                            "", "3.40", "USD", "Posted", ""]


def test_xlsx_export_holds_exactly_the_filtered_rows(app: Flask, client: FlaskClient, db: Session) -> None:
    seed(db)
    login_as(app, client, "viewer")
    response = client.get(f"/report/export.xlsx?{FILTER}")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = _xlsx(response.get_data())
    expected = _expected(db, ReportFilter(start_date=datetime(2024, 4, 25).date(),
                                          end_date=datetime(2024, 5, 1).date(), room="0412"), "amount", False)
    assert sheet[0] == list(HEADER)
    assert len(sheet) == len(expected) + 1 == 10
    for cells, row in zip(sheet[1:], expected, strict=True):
        assert cells[0:3] == [row.record, row.id, row.call_id]
        assert cells[3] == row.start.astimezone(BERLIN).replace(tzinfo=None)
        assert Decimal(str(cells[14])) == row.amount
        assert cells[16] == row.state_label
    assert [Decimal(str(cells[14])) for cells in sheet[1:]][:2] == [Decimal("-7"), Decimal("0")]


def test_export_of_all_rows_matches_the_totals(app: Flask, client: FlaskClient, db: Session) -> None:
    for minute in range(250):
        make_call(db, start=START - timedelta(minutes=minute), amount=Decimal("0.25"))
    db.commit()
    login_as(app, client, "viewer")
    rows = _csv(client.get(f"/report/export.csv?{ALL_TIME}").get_data())[1:]
    assert len(rows) == 250 and len({row[1] for row in rows}) == 250
    assert sum(Decimal(row[14]) for row in rows) == Decimal("62.50")


def test_each_export_is_audited_with_its_filter(app: Flask, client: FlaskClient, db: Session) -> None:
    login_as(app, client, "viewer")
    client.get(f"/report/export.csv?{FILTER}&state=ok").get_data()
    client.get("/report/export.xlsx?call_id=42").get_data()
    entries = db.scalars(select(AuditEntry).where(AuditEntry.action == "report.export")
                         .order_by(AuditEntry.id)).all()
    assert [(e.username, e.target, e.at) for e in entries] == [("viewer", "report:calls", START)] * 2
    assert entries[0].after == {"format": "csv", "sort": "amount", "order": "asc", "filter": {
        "start_date": "2024-04-25", "end_date": "2024-05-01", "state": "ok", "room": "0412"}}
    assert entries[1].after["filter"] == {"call_id": "42"} and entries[1].after["format"] == "xlsx"


def test_export_of_a_bad_filter_is_refused(app: Flask, client: FlaskClient, db: Session) -> None:
    login_as(app, client, "viewer")
    assert client.get("/report/export.csv?state=nonsense").status_code == 400
    assert client.get("/report/export.xlsx?start=2024-05-02&end=2024-05-01").status_code == 400
    assert db.scalars(select(AuditEntry).where(AuditEntry.action == "report.export")).all() == []


def test_exports_need_a_session(client: FlaskClient) -> None:
    for path in ("/report/export.csv", "/report/export.xlsx"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/auth/login")


def test_cells_that_look_like_formulas_stay_text(db: Session) -> None:
    call = make_call(db, account_code="=HYPERLINK(\"http://x\")", pbx_call_id="@SUM(A1)",
                     caller="+15557654321", direction="incoming", dialled="", transfer="")
    make_posting(db, call, state="ok")
    db.commit()
    rows = list(iter_report(db, ReportFilter(), BERLIN))
    csv_rows = _csv(b"".join(csv_chunks(rows, BERLIN)))
    assert csv_rows[1][12:14] == ["'=HYPERLINK(\"http://x\")", "'@SUM(A1)"]
    assert csv_rows[1][7] == "+15557654321"  # a plain number keeps its sign
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(xlsx_chunks(rows, BERLIN))))
    cells = list(workbook.active.iter_rows(min_row=2, max_row=2))[0]
    assert cells[12].value == "=HYPERLINK(\"http://x\")" and cells[12].data_type == "s"
    assert cells[13].data_type == "s"


@pytest.mark.parametrize("count", [0, 4, 5])
def test_xlsx_moves_to_a_new_sheet_at_the_row_limit(db: Session, count: int) -> None:
    for n in range(count):
        make_call(db, start=START + timedelta(minutes=n))
    db.commit()
    rows = list(iter_report(db, ReportFilter(), BERLIN, descending=False))
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(xlsx_chunks(rows, BERLIN, max_rows=3))))
    sizes = [(sheet.title, sheet.max_row) for sheet in workbook.worksheets]
    expected = {0: [("Calls", 1)], 4: [("Calls", 3), ("Calls 2", 3)],
                5: [("Calls", 3), ("Calls 2", 3), ("Calls 3", 2)]}[count]
    assert sizes == expected


def test_iter_report_fetches_in_batches_and_in_order(db: Session) -> None:
    for n in range(7):
        make_call(db, start=START + timedelta(minutes=n), extension=str(100 + n))
    db.commit()
    rows = list(iter_report(db, ReportFilter(), BERLIN, sort="extension", descending=False, batch=2))
    assert [row.extension for row in rows] == [str(100 + n) for n in range(7)]


@pytest.mark.parametrize("query", [
    "room=0412'%20OR%20'1'%3D'1", "account=x'%3B%20DROP%20TABLE%20calls%3B--", "called=%25",
    "sort=amount%3B%20DELETE%20FROM%20postings",
])
def test_exports_are_not_open_to_sql_injection(app: Flask, client: FlaskClient, db: Session,
                                               query: str) -> None:
    seed(db)
    login_as(app, client, "viewer")
    rows = _csv(client.get(f"/report/export.csv?{ALL_TIME}&{query}").get_data())[1:]
    assert len(rows) == (13 if query.startswith("sort=") else 0)
    sheet = _xlsx(client.get(f"/report/export.xlsx?{ALL_TIME}&{query}").get_data())[1:]
    assert len(sheet) == len(rows)
    assert db.scalar(select(func.count()).select_from(Call)) == 11
    assert db.scalar(select(func.count()).select_from(Posting)) == 10
