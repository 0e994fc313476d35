"""The renderers: CSV parses back, openpyxl reads the workbook back and pdftoppm renders the PDF, and the
totals in each file equal the database's own sums."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from decimal import Decimal as D

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from appliance.db.models import Call
from appliance.reports import (
    Period, calls_by_hour, cost_by_country, cost_by_department, cost_by_extension, frontdesk_daily,
    trunk_utilisation,
)
from appliance.reports.pdf import to_pdf
from appliance.reports.render import safe_text, to_csv, to_xlsx
from tests.reports.conftest import DAY, TZ, add_call, local

PERIOD = Period.day(DAY, TZ)


def db_total(session) -> D:
    return session.scalar(select(func.sum(Call.amount)).where(
        Call.start >= PERIOD.utc_start, Call.start < PERIOD.utc_end, Call.direction == "outgoing"))


def reports(session):
    return [cost_by_extension(session, PERIOD), cost_by_department(session, PERIOD),
            calls_by_hour(session, PERIOD), trunk_utilisation(session, PERIOD, trunk_count=4),
            frontdesk_daily(session, DAY, TZ)]


def test_csv_parses_back(seeded) -> None:
    data = to_csv(reports(seeded))
    assert data.startswith("\ufeff".encode())
    lines = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert lines[0] == ["Cost by extension"]
    assert lines[1] == ["Period: 2024-03-05"]
    assert lines[2] == ["Extension", "Category", "Calls", "Duration (s)", "Amount"]
    totals = next(line for line in lines if line and line[0] == "Total")
    assert totals == ["Total", "", "7", "5890", "32.8856"]
    assert D(totals[-1]) == db_total(seeded)
    assert ["Room", "Charges", "Charged", "Refunds", "Refunded", "Net"] in lines
    assert ["Total", "3", "10.45", "2", "2.20", "8.25"] in lines


def test_xlsx_reads_back_with_the_database_totals(seeded) -> None:
    workbook = load_workbook(io.BytesIO(to_xlsx(reports(seeded))), read_only=True)
    assert workbook.sheetnames == ["Cost by extension", "Cost by department",
                                   "Inbound and outbound calls by h", "Trunk utilisation (all trunks)",
                                   "Front desk daily billing summar"]
    rows = list(workbook["Cost by extension"].iter_rows(values_only=True))
    assert rows[0][0] == "Cost by extension"
    header = rows.index(("Extension", "Category", "Calls", "Duration (s)", "Amount"))
    body, totals = rows[header + 1:-1], rows[-1]
    assert totals[0] == "Total"
    # Numbers, not text: the sheet's rows add up to its totals row, which is the database's sum.
    assert D(str(totals[-1])) == db_total(seeded) == D("32.8856")
    assert sum(D(str(row[-1])) for row in body) == D("32.8856")
    assert sum(row[2] for row in body) == totals[2] == 7
    billing = list(workbook["Front desk daily billing summar"].iter_rows(values_only=True))
    assert billing[-1][0] == "Total" and D(str(billing[-1][-1])) == D("8.25")
    workbook.close()


def test_formula_like_text_stays_text(sessions) -> None:
    with sessions.begin() as session:
        add_call(session, 1, local("2024-03-05 10:00:00"), 60, extension="=1+2", amount="1.00")
    with sessions() as session:
        report = cost_by_extension(session, PERIOD)
    assert safe_text("=1+2") == "'=1+2" and safe_text("+4420") == "+4420"
    assert "'=1+2" in to_csv(report).decode("utf-8-sig")
    sheet = load_workbook(io.BytesIO(to_xlsx(report)))["Cost by extension"]
    assert any(cell.value == "=1+2" and cell.data_type == "s" for row in sheet.iter_rows() for cell in row)


def test_pdf_renders_with_pdftoppm(seeded, tmp_path) -> None:
    if shutil.which("pdftoppm") is None:  # `make test` installs poppler-utils; a bare checkout may not have it
        if os.environ.get("CI") == "true":
            pytest.fail("pdftoppm (poppler-utils) is required under CI")
        pytest.skip("pdftoppm (poppler-utils) not installed")
    data = to_pdf(reports(seeded) + [cost_by_country(seeded, PERIOD)], title="Daily call summary",
                  site="Test Hotel")
    assert data.startswith(b"%PDF")
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")],
                   check=True, capture_output=True, timeout=60)
    pages = list(tmp_path.glob("page*.png"))
    assert pages and pages[0].stat().st_size > 1000
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                              timeout=60).stdout.decode()
        # The totals printed in the PDF are the database's.
        assert "32.8856" in text and "Cost by extension" in text and "8.25" in text


def test_pdf_of_an_empty_report(sessions, tmp_path) -> None:
    with sessions() as session:
        data = to_pdf(cost_by_extension(session, PERIOD))
    assert data.startswith(b"%PDF") and len(data) > 500
