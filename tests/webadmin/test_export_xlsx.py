"""The streamed Excel export (webadmin.export.xlsx_chunks): an .xlsx package written part by part as
the rows arrive, read back with openpyxl and compared with the database, its sheet and size limits, and
text that XML cannot hold as it is."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.webadmin.conftest import START, login_as, make_call, make_posting
from tests.webadmin.test_report import ALL_TIME, seed
from webadmin.export import CHUNK, HEADER, xlsx_chunks
from webadmin.report_query import ReportFilter, ReportRow, iter_report, report_totals

BERLIN = ZoneInfo("Europe/Berlin")


def _row(n: int, **fields: object) -> ReportRow:
    values: dict[str, object] = dict(
        record="call", id=n, call_id=n, start=START + timedelta(seconds=n), extension="2412", room="0412",
        direction="outgoing", caller="", dialled=f"0044207946{n:04d}", duration=60 + n,
        call_class="international",
        destination="United Kingdom", account_code="", pbx_call_id=f"P{n}", amount=Decimal("1.25"),
        currency="USD", state="ok", posting_id=n, by="")
    values.update(fields)
    return ReportRow(**values)  # type: ignore[arg-type]


def _sheets(data: bytes) -> list[tuple[str, list[tuple[object, ...]]]]:
    """Each sheet's title and rows; a row is padded to the header's width (an empty text is no cell,
    and read-only openpyxl ends a row at its last cell)."""
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    width = len(HEADER)
    return [(sheet.title, [tuple(row) + (None,) * (width - len(row))
                           for row in sheet.iter_rows(values_only=True)])
            for sheet in workbook.worksheets]


def test_the_first_bytes_leave_before_the_first_row_is_read() -> None:
    pulled: list[int] = []

    def rows() -> Iterator[ReportRow]:
        for n in range(3):
            pulled.append(n)
            yield _row(n)

    chunks = xlsx_chunks(rows(), BERLIN)
    first = next(chunks)
    assert first.startswith(b"PK\x03\x04") and pulled == []
    rest = b"".join(chunks)
    assert pulled == [0, 1, 2]
    with zipfile.ZipFile(io.BytesIO(first + rest)) as package:
        assert package.testzip() is None
        sheet = package.getinfo("xl/worksheets/sheet1.xml")
        assert sheet.flag_bits & 0x08  # sizes in a data descriptor: written without going back


def test_a_large_export_goes_out_in_bounded_chunks() -> None:
    """20,000 rows: many chunks, none much larger than CHUNK, so nothing waits for the whole file."""
    sizes = [len(chunk) for chunk in xlsx_chunks((_row(n) for n in range(20_000)), BERLIN)]
    assert len(sizes) > 5
    assert max(sizes) < 3 * CHUNK
    data_rows = _sheets(b"".join(xlsx_chunks((_row(n) for n in range(20_000)), BERLIN)))[0][1][1:]
    assert len(data_rows) == 20_000
    assert data_rows[-1][1] == 19_999 and data_rows[-1][8] == "004420794619999"


def test_the_export_reads_back_as_the_database_has_it(app: Flask, client: FlaskClient, db: Session) -> None:
    seed(db)
    login_as(app, client, "viewer")
    response = client.get(f"/report/export.xlsx?{ALL_TIME}&sort=start&order=asc")
    assert response.status_code == 200 and response.is_streamed
    [(title, sheet)] = _sheets(response.get_data())
    assert title == "Calls" and sheet[0] == HEADER
    expected = list(iter_report(db, ReportFilter(), BERLIN, sort="start", descending=False))
    assert len(sheet) - 1 == len(expected) == 13
    for cells, row in zip(sheet[1:], expected, strict=True):
        assert cells == (row.record, row.id, row.call_id, row.start.astimezone(BERLIN).replace(tzinfo=None),
                         row.extension or None, row.room or None, row.direction or None, row.caller or None,
                         row.dialled or None, row.duration, row.call_class or None, row.destination or None,
                         row.account_code or None, row.pbx_call_id or None, cells[14], row.currency,
                         row.state_label, row.by or None)
        assert Decimal(str(cells[14])) == row.amount
    totals = report_totals(db, ReportFilter(), BERLIN)
    amounts = [Decimal(str(cells[14])) for cells in sheet[1:]]
    assert sum(amounts[n] for n, cells in enumerate(sheet[1:]) if cells[0] == "call") == totals.charged
    assert sum(amounts[n] for n, cells in enumerate(sheet[1:]) if cells[0] == "refund") == totals.refunded
    assert sum(cells[9] for cells in sheet[1:]) == totals.duration
    assert sum(1 for cells in sheet[1:] if cells[0] == "refund") == totals.refunds == 2


def test_amounts_keep_every_decimal_and_dates_their_format() -> None:
    data = b"".join(xlsx_chunks([_row(1, amount=Decimal("12.3456")), _row(2, amount=Decimal("-7.00"))],
                                BERLIN))
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert sheet["O2"].value == pytest.approx(12.3456) and str(sheet["O2"].value) == "12.3456"
    assert sheet["O2"].number_format == "#,##0.00##" and sheet["O3"].value == -7
    assert sheet["D2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert sheet["D2"].value == datetime(2024, 5, 1, 12, 0, 1)  # 10:00:01 UTC in Berlin (summer time)
    assert sheet.freeze_panes == "A2"
    assert sheet["A1"].font.b


@pytest.mark.parametrize(("count", "expected"), [
    (0, [("Calls", 1)]), (2, [("Calls", 3)]), (3, [("Calls", 3), ("Calls 2", 2)]),
    (7, [("Calls", 3), ("Calls 2", 3), ("Calls 3", 3), ("Calls 4", 2)]),
])
def test_rows_past_the_sheet_limit_go_on_in_a_new_sheet(count: int, expected: list[tuple[str, int]]) -> None:
    """Excel's 1,048,576 rows a sheet, made 3 here: each sheet has the header and two rows, in order."""
    data = b"".join(xlsx_chunks([_row(n) for n in range(count)], BERLIN, max_rows=3))
    sheets = _sheets(data)
    assert [(title, len(rows)) for title, rows in sheets] == expected
    assert all(rows[0] == HEADER for _, rows in sheets)
    assert [row[1] for _, rows in sheets for row in rows[1:]] == list(range(count))
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    assert workbook.active.title == "Calls"


def test_a_sheet_also_ends_before_its_xml_gets_too_big() -> None:
    """The 2 GiB a ZIP entry holds without ZIP64, made 1,000 bytes here: a row is about 450 bytes of XML,
    so a sheet ends after its third row at the latest."""
    data = b"".join(xlsx_chunks([_row(n) for n in range(9)], BERLIN, max_sheet_bytes=1000))
    sheets = _sheets(data)
    assert len(sheets) >= 3 and all(rows[0] == HEADER and 2 <= len(rows) <= 4 for _, rows in sheets)
    assert [row[1] for _, rows in sheets for row in rows[1:]] == list(range(9))


def test_text_that_xml_cannot_hold_as_it_is() -> None:
    row = _row(1, account_code="A&B <x> \"q\"", caller=" padded ", destination="bell\x07here",
               pbx_call_id="=HYPERLINK(\"http://x\")", by="Zoë")
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(xlsx_chunks([row], BERLIN))))
    cells = [cell for cell in next(workbook.active.iter_rows(min_row=2, max_row=2))]
    assert cells[12].value == "A&B <x> \"q\""
    assert cells[7].value == " padded "
    assert cells[11].value == "bell\ufffdhere"  # a control character XML 1.0 does not allow
    assert cells[13].value == "=HYPERLINK(\"http://x\")" and cells[13].data_type == "s"
    assert cells[17].value == "Zoë"


def test_a_refund_without_a_call_leaves_the_call_cells_empty(db: Session) -> None:
    make_posting(db, None, kind="refund", room="0101", amount=Decimal("1.50"), state="open", created_by="max",
                 destination="REF0", created_at=START, updated_at=START)
    make_posting(db, make_call(db, start=START - timedelta(hours=1)), state="ok")
    db.commit()
    rows = list(iter_report(db, ReportFilter(), BERLIN))
    [(_, sheet)] = _sheets(b"".join(xlsx_chunks(rows, BERLIN)))
    refund = sheet[1]
    assert refund[0] == "refund" and refund[2] is None and refund[4] is None and refund[17] == "max"
    assert Decimal(str(refund[14])) == Decimal("-1.50")


def test_times_are_site_local_without_a_zone() -> None:
    winter = _row(1, start=datetime(2024, 1, 15, 23, 30, tzinfo=timezone.utc))
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(xlsx_chunks([winter], BERLIN)))).active
    assert sheet["D2"].value == datetime(2024, 1, 16, 0, 30)
