"""The call report as CSV or Excel, as iterators of bytes that a streamed response sends as they come.

Memory stays flat however many rows there are: rows arrive in batches from ``iter_report`` (a server-side
cursor on PostgreSQL) and both formats go out in chunks of about ``CHUNK`` bytes as the rows are written.

The Excel file is written here rather than by openpyxl, whose write-only workbook must be complete before
its ZIP file can be read back and sent. An .xlsx file is a ZIP package of XML parts (ECMA-376 Part 1,
"SpreadsheetML", and Part 2, "Open Packaging Conventions"); ``zipfile`` writes it to a sink that cannot
seek, so each part carries a data descriptor (APPNOTE.TXT 4.3.9: CRC and sizes after the data) and its
compressed bytes can leave before the part is finished. The worksheets come first, as the rows arrive; the
workbook, its relationships and ``[Content_Types].xml`` (which name the sheets) follow once the number of
sheets is known, and the ZIP directory ends the file. A reader finds the parts through that directory, so
their order in the file does not matter (OPC, part 2, 10.2: a package's parts are unordered).

A sheet holds at most 1,048,576 rows with its header (Excel's limit, "Excel specifications and limits");
the rows go on in sheets "Calls 2", "Calls 3", ..., each with the header. A sheet also ends before its XML
reaches 2 GiB, the most a ZIP entry holds without ZIP64 extensions, which some spreadsheet programs read
badly; at a few hundred bytes per row that limit is never met before the row limit.

A cell that a spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@`` followed by something other
than a plain number) is written as text, with a leading apostrophe in CSV: fields such as the account code
come from the PBX and must not run as formulas on the night auditor's PC (OWASP "CSV injection"). In the
Excel file every string is an inline string (``t="inlineStr"``), which a spreadsheet never evaluates.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from webadmin.report_query import ReportRow

CHUNK = 64 * 1024
XLSX_MAX_ROWS = 1_048_576  # per sheet, header included; more rows go on the next sheet
XLSX_MAX_SHEET_BYTES = (1 << 31) - 1 - (1 << 20)  # a ZIP entry without ZIP64, less room for the last row
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


# -- Excel (SpreadsheetML in a ZIP package, written as it goes) ------------------------------------------

_COLUMNS = [chr(ord("A") + n) for n in range(len(HEADER))]  # 18 columns: A..R
_LAST_COLUMN = _COLUMNS[-1]
# Cell styles, indexes into <cellXfs> below: 1 = date and time, 2 = money, 3 = the bold header.
_DATE_STYLE, _MONEY_STYLE, _HEADER_STYLE = 1, 2, 3
# XML 1.0 allows no control characters but tab, newline and carriage return; a PBX field may hold one.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_EXCEL_EPOCH = datetime(1899, 12, 30)  # day 0 of the 1900 date system, as Excel counts after Feb 1900
ZIP_LEVEL = 1  # sheet XML is repetitive: level 1 gets most of the gain (about 10:1) for a third of the time

_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_STYLES = (
    _DECLARATION + f'<styleSheet {_NS}>'
    '<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/>'
    '<numFmt numFmtId="165" formatCode="#,##0.00##"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    '</styleSheet>'
)
_ROOT_RELS = (
    _DECLARATION + f'<Relationships xmlns="{_PKG_REL_NS}">'
    f'<Relationship Id="rId1" Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/>'
    '</Relationships>'
)
_WIDTHS = (8, 10, 10, 19, 10, 8, 10, 16, 18, 12, 14, 18, 12, 14, 12, 9, 12, 12)


class _Sink:
    """The ZIP file's destination: collects what ``zipfile`` writes until the generator sends it. It has
    no ``tell`` or ``seek``, so ``zipfile`` writes data descriptors instead of going back to the headers."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        self.size = 0
        return data


def _text(value: str) -> str:
    if _NOT_XML.search(value):
        value = _NOT_XML.sub("\ufffd", value)
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _string_cell(ref: str, value: str, style: str = "") -> str:
    # Leading or trailing spaces survive only with xml:space="preserve".
    space = ' xml:space="preserve"' if value[:1].isspace() or value[-1:].isspace() else ""
    return f'<c r="{ref}" t="inlineStr"{style}><is><t{space}>{_text(value)}</t></is></c>'


def _excel_serial(value: datetime) -> str:
    """A naive date and time as Excel's serial number: days since 1899-12-30, the time as a fraction."""
    delta = value - _EXCEL_EPOCH
    return repr(delta.days + (delta.seconds + delta.microseconds / 1e6) / 86400)


def _row_xml(number: int, values: tuple[object, ...]) -> str:
    cells = []
    for column, value in zip(_COLUMNS, values):
        ref = f"{column}{number}"
        if isinstance(value, str):
            if value:  # an empty text is an empty cell
                cells.append(_string_cell(ref, value))
        elif isinstance(value, bool):
            cells.append(f'<c r="{ref}" t="b"><v>{int(value)}</v></c>')
        elif isinstance(value, int):
            cells.append(f'<c r="{ref}"><v>{value}</v></c>')
        elif isinstance(value, Decimal):
            # The Decimal's own digits (fixed point, never an exponent): no float on the way.
            cells.append(f'<c r="{ref}" s="{_MONEY_STYLE}"><v>{format(value, "f")}</v></c>')
        elif isinstance(value, datetime):
            cells.append(f'<c r="{ref}" s="{_DATE_STYLE}"><v>{_excel_serial(value)}</v></c>')
        elif value is not None:
            cells.append(_string_cell(ref, str(value)))
    return f'<row r="{number}">{"".join(cells)}</row>'


def _sheet_start(first: bool) -> str:
    selected = ' tabSelected="1"' if first else ""
    columns = "".join(f'<col min="{n}" max="{n}" width="{width}" customWidth="1"/>'
                      for n, width in enumerate(_WIDTHS, start=1))
    header = "".join(_string_cell(f"{column}1", title, f' s="{_HEADER_STYLE}"')
                     for column, title in zip(_COLUMNS, HEADER))
    # No <dimension> (optional, ECMA-376 18.3.1.35): the extent is not known until the last row, and a
    # wrong one misleads readers (openpyxl's read-only mode reads only the cells it names).
    return (_DECLARATION + f'<worksheet {_NS} xmlns:r="{_REL_NS}">'
            f'<sheetViews><sheetView workbookViewId="0"{selected}>'
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>'
            f'<sheetFormatPr defaultRowHeight="15"/><cols>{columns}</cols>'
            f'<sheetData><row r="1">{header}</row>')


_SHEET_END = "</sheetData></worksheet>"


def _workbook(titles: list[str]) -> str:
    sheets = "".join(f'<sheet name="{_text(title)}" sheetId="{n}" r:id="rId{n}"/>'
                     for n, title in enumerate(titles, start=1))
    return (_DECLARATION + f'<workbook {_NS} xmlns:r="{_REL_NS}">'
            '<bookViews><workbookView activeTab="0"/></bookViews>'
            f'<sheets>{sheets}</sheets></workbook>')


def _workbook_rels(count: int) -> str:
    sheets = "".join(f'<Relationship Id="rId{n}" Type="{_REL_NS}/worksheet" '
                     f'Target="worksheets/sheet{n}.xml"/>' for n in range(1, count + 1))
    return (_DECLARATION + f'<Relationships xmlns="{_PKG_REL_NS}">{sheets}'
            f'<Relationship Id="rId{count + 1}" Type="{_REL_NS}/styles" Target="styles.xml"/>'
            '</Relationships>')


def _content_types(count: int) -> str:
    main = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    sheets = "".join(f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="{main}.worksheet+xml"/>'
                     for n in range(1, count + 1))
    return (_DECLARATION + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{main}.sheet.main+xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{main}.styles+xml"/>'
            f'{sheets}</Types>')


def xlsx_chunks(rows: Iterable[ReportRow], zone: ZoneInfo, title: str = "Calls", *,
                max_rows: int = XLSX_MAX_ROWS,
                max_sheet_bytes: int = XLSX_MAX_SHEET_BYTES) -> Iterator[bytes]:
    """An .xlsx workbook, sent as it is written. A sheet holds at most ``max_rows`` rows with its header
    and at most about ``max_sheet_bytes`` of XML; the rows go on in sheets "Calls 2", "Calls 3", ..."""
    sink = _Sink()
    package = zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL)
    package.writestr("xl/styles.xml", _STYLES)
    titles = [title]
    sheet = package.open("xl/worksheets/sheet1.xml", mode="w")
    yield sink.take()  # the first bytes leave before the first row is fetched
    pending: list[str] = [_sheet_start(first=True)]
    pending_size = used = sheet_bytes = 0
    for row in rows:
        if used + 1 == max_rows or sheet_bytes + pending_size >= max_sheet_bytes:
            pending.append(_SHEET_END)
            sheet.write("".join(pending).encode("utf-8"))
            sheet.close()
            titles.append(f"{title} {len(titles) + 1}")
            sheet = package.open(f"xl/worksheets/sheet{len(titles)}.xml", mode="w")
            pending, pending_size, used, sheet_bytes = [_sheet_start(first=False)], 0, 0, 0
        used += 1
        xml = _row_xml(used + 1, _values(row, zone))
        pending.append(xml)
        pending_size += len(xml)
        if pending_size >= CHUNK:
            data = "".join(pending).encode("utf-8")
            sheet.write(data)
            sheet_bytes += len(data)
            pending, pending_size = [], 0
            if sink.size >= CHUNK:
                yield sink.take()
    pending.append(_SHEET_END)
    sheet.write("".join(pending).encode("utf-8"))
    sheet.close()
    package.writestr("xl/workbook.xml", _workbook(titles))
    package.writestr("xl/_rels/workbook.xml.rels", _workbook_rels(len(titles)))
    package.writestr("_rels/.rels", _ROOT_RELS)
    package.writestr("[Content_Types].xml", _content_types(len(titles)))
    package.close()
    yield sink.take()
