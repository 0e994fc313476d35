"""The call report as CSV or Excel, as iterators of bytes that a streamed response sends as they come.

Memory stays flat however many rows there are: rows arrive in batches from ``iter_report`` (a server-side
cursor on PostgreSQL), CSV goes out in chunks of about ``CHUNK`` bytes, and openpyxl's write-only workbook
keeps its sheet in a temporary file, which is sent in chunks once the workbook is closed (a ZIP file's
directory comes last, so an .xlsx cannot be sent before it is complete).

A cell that a spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@`` followed by something other
than a plain number) is written as text, with a leading apostrophe in CSV: fields such as the account code
come from the PBX and must not run as formulas on the night auditor's PC (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from webadmin.report_query import ReportRow

CHUNK = 64 * 1024
XLSX_MAX_ROWS = 1_048_576  # per sheet, header included; more rows go on the next sheet
HEADER = ("Record", "ID", "Call ID", "Start", "Extension", "Room", "Direction", "Caller", "Called",
          "Duration (s)", "Class", "Destination", "Account", "PBX call ID", "Amount", "Currency", "State",
          "Refunded by")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")
CSV_MIME = "text/csv; charset=utf-8"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _safe(text: str) -> str:
    if text.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _values(row: ReportRow, zone: ZoneInfo) -> tuple[object, ...]:
    """One row's cells, in ``HEADER`` order; the start is a naive site-local time (sheets have no zones)."""
    return (row.record, row.id, row.call_id if row.call_id is not None else "",
            row.start.astimezone(zone).replace(tzinfo=None), row.extension, row.room, row.direction,
            row.caller, row.dialled, row.duration, row.call_class, row.destination, row.account_code,
            row.pbx_call_id, row.amount, row.currency, row.state_label, row.by)


def _csv_text(value: object) -> object:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, Decimal):
        # Two decimals, or all four the database keeps when they are used: never rounded away.
        cents = value.quantize(Decimal("0.01"))
        return str(cents) if cents == value else format(value.normalize(), "f")
    if isinstance(value, str):
        return _safe(value)
    return value


def csv_chunks(rows: Iterable[ReportRow], zone: ZoneInfo) -> Iterator[bytes]:
    """UTF-8 CSV with a byte order mark (so Excel opens accents right), one header line, CRLF lines."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(HEADER)
    for row in rows:
        cells = _values(row, zone)
        writer.writerow([_csv_text(value) for value in cells])
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def xlsx_chunks(rows: Iterable[ReportRow], zone: ZoneInfo, title: str = "Calls", *,
                max_rows: int = XLSX_MAX_ROWS) -> Iterator[bytes]:
    """An .xlsx workbook built in openpyxl's write-only mode, then read back in chunks. A sheet holds at
    most ``max_rows`` rows with its header (Excel's limit); the rows go on in sheets "Calls 2", ..."""
    workbook = Workbook(write_only=True)
    sheet = _new_sheet(workbook, title)
    used = 1
    for row in rows:
        if used == max_rows:
            sheet = _new_sheet(workbook, f"{title} {len(workbook.worksheets) + 1}")
            used = 1
        sheet.append(_xlsx_cells(sheet, _values(row, zone)))
        used += 1
    with tempfile.TemporaryFile() as handle:
        workbook.save(handle)
        handle.seek(0)
        while chunk := handle.read(CHUNK):
            yield chunk


def _new_sheet(workbook: Workbook, title: str) -> WriteOnlyWorksheet:
    sheet = workbook.create_sheet(title)
    sheet.freeze_panes = "A2"
    sheet.append(HEADER)
    return sheet


def _xlsx_cells(sheet: WriteOnlyWorksheet, values: tuple[object, ...]) -> list[object]:
    cells: list[object] = []
    for value in values:
        if isinstance(value, datetime):
            cell = WriteOnlyCell(sheet, value)
            cell.number_format = "yyyy-mm-dd hh:mm:ss"
            cells.append(cell)
        elif isinstance(value, Decimal):
            cell = WriteOnlyCell(sheet, value)
            cell.number_format = "#,##0.00##"
            cells.append(cell)
        elif isinstance(value, str) and value.startswith("="):
            # openpyxl stores a string starting with "=" as a formula; force it to be text.
            cell = WriteOnlyCell(sheet, value)
            cell.data_type = "s"
            cells.append(cell)
        else:
            cells.append(value)
    return cells
