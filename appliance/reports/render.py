"""Reports as CSV and Excel bytes. One file holds one or more reports (a scheduled bundle).

CSV: UTF-8 with a byte order mark and CRLF lines, as the call export in ``webadmin/export.py`` writes
them (Excel opens accents right). Each report is a section: its title, its period, the header, the rows,
the totals row, then an empty line. Money keeps two decimals, or all four when they are used.

Excel: one sheet per report, built in openpyxl's write-only mode (flat memory for long reports), title
and notes above the table, money as numbers with a money format so the totals can be summed again.

Text that a spreadsheet would run as a formula is written as text (OWASP "CSV injection"): extension
descriptions are typed by people and destinations come from the PBX.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from appliance.reports.model import Column, Report

CSV_MIME = "text/csv"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")
SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
NUMBER_FORMATS = {"money": "#,##0.00##", "float": "0.0000", "percent": "0.00%", "int": "0", "seconds": "0"}


def safe_text(text: str) -> str:
    """A leading apostrophe before text a spreadsheet would read as a formula (``+44...`` is a number)."""
    if text.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def money_text(value: Decimal) -> str:
    cents = value.quantize(Decimal("0.01"))
    return str(cents) if cents == value else format(value.normalize(), "f")


def cell_text(value: Any, column: Column) -> str:
    """A cell as text, for CSV and PDF."""
    if value is None or value == "":
        return ""
    if isinstance(value, Decimal):
        return money_text(value) if column.kind == "money" else str(value)
    if isinstance(value, str):
        return value
    return str(value)


def to_csv(reports: Report | Sequence[Report]) -> bytes:
    reports = [reports] if isinstance(reports, Report) else list(reports)
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, lineterminator="\r\n")
    for report in reports:
        writer.writerow([safe_text(report.title)])
        writer.writerow([f"Period: {report.period.label}"])
        for note in report.notes:
            writer.writerow([safe_text(note)])
        writer.writerow([c.label for c in report.columns])
        for row in report.rows:
            writer.writerow([safe_text(cell_text(v, c)) for v, c in zip(row, report.columns, strict=True)])
        if report.totals is not None:
            writer.writerow([safe_text(cell_text(v, c)) for v, c in zip(report.totals, report.columns, strict=True)])
        writer.writerow([])
    return buffer.getvalue().encode("utf-8")


def to_xlsx(reports: Report | Sequence[Report]) -> bytes:
    reports = [reports] if isinstance(reports, Report) else list(reports)
    workbook = Workbook(write_only=True)
    used: set[str] = set()
    for report in reports:
        sheet = workbook.create_sheet(_sheet_title(report.title, used))
        _write_sheet(sheet, report)
    # write-only workbooks save to a file; a temporary one keeps a large report out of memory until read.
    with tempfile.TemporaryFile() as handle:
        workbook.save(handle)
        handle.seek(0)
        return handle.read()


def _sheet_title(title: str, used: set[str]) -> str:
    base = SHEET_FORBIDDEN.sub(" ", title)[:31]
    name, n = base, 2
    while name.lower() in used:
        suffix = f" {n}"
        name, n = base[:31 - len(suffix)] + suffix, n + 1
    used.add(name.lower())
    return name


def _write_sheet(sheet: WriteOnlyWorksheet, report: Report) -> None:
    bold = Font(bold=True)
    title = WriteOnlyCell(sheet, report.title)
    title.font = Font(bold=True, size=14)
    sheet.append([title])
    sheet.append([f"Period: {report.period.label}"])
    for note in report.notes:
        sheet.append([_text_cell(sheet, note)])
    sheet.append([])
    header = []
    for column in report.columns:
        cell = WriteOnlyCell(sheet, column.label)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    for row in report.rows:
        sheet.append([_cell(sheet, v, c) for v, c in zip(row, report.columns, strict=True)])
    if report.totals is not None:
        cells = [_cell(sheet, v, c) for v, c in zip(report.totals, report.columns, strict=True)]
        for cell in cells:
            cell.font = bold
        sheet.append(cells)


def _text_cell(sheet: WriteOnlyWorksheet, text: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, text)
    cell.data_type = "s"  # never a formula, whatever the text starts with
    return cell


def _cell(sheet: WriteOnlyWorksheet, value: Any, column: Column) -> WriteOnlyCell:
    if isinstance(value, str):
        return _text_cell(sheet, value)
    cell = WriteOnlyCell(sheet, value)
    if column.kind in NUMBER_FORMATS and isinstance(value, (int, Decimal, float)):
        cell.number_format = NUMBER_FORMATS[column.kind]
    return cell
