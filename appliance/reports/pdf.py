"""Reports as PDF: a title, the period, the notes, a bar chart where it helps, and a plain table with a
totals row. reportlab's platypus lays out the pages (tables split across pages, header repeated) and
reportlab.graphics draws the chart, so no browser or external tool is needed on the appliance.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from decimal import Decimal
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from appliance.reports.model import Report
from appliance.reports.render import cell_text

PDF_MIME = "application/pdf"
CHART_BARS = 24  # more bars than this are unreadable; the chart shows the first ones (largest first)
NUMERIC = ("int", "money", "seconds", "float", "percent")


def to_pdf(reports: Report | Sequence[Report], *, title: str = "", site: str = "") -> bytes:
    """One PDF with each report on its own page(s); ``title`` and ``site`` go in the document metadata
    and the page footer."""
    reports = [reports] if isinstance(reports, Report) else list(reports)
    buffer = io.BytesIO()
    doc_title = title or (reports[0].title if reports else "Report")
    footer = " - ".join(part for part in (site, doc_title) if part)

    def on_page(canvas, doc) -> None:  # type: ignore[no-untyped-def]
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.drawString(15 * mm, 8 * mm, footer)
        canvas.drawRightString(doc.pagesize[0] - 15 * mm, 8 * mm, f"Page {doc.page}")
        canvas.restoreState()

    document = SimpleDocTemplate(buffer, pagesize=landscape(A4), title=doc_title, author=site or "appliance",
                                 leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm, bottomMargin=15 * mm)
    story: list[Flowable] = []
    for index, report in enumerate(reports):
        if index:
            story.append(PageBreak())
        story.extend(_report_story(report, document.width))
    if not story:
        story.append(Paragraph("No reports", getSampleStyleSheet()["Title"]))
    document.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return buffer.getvalue()


def _report_story(report: Report, width: float) -> list[Flowable]:
    styles = getSampleStyleSheet()
    story: list[Flowable] = [Paragraph(escape(report.title), styles["Title"]),
                             Paragraph(escape(f"Period: {report.period.label}"), styles["Normal"])]
    story += [Paragraph(escape(note), styles["Normal"]) for note in report.notes]
    story.append(Spacer(1, 4 * mm))
    chart = _chart(report, width)
    if chart is not None:
        story += [chart, Spacer(1, 4 * mm)]
    story.append(_table(report))
    return story


def _table(report: Report) -> Table:
    header = [c.label for c in report.columns]
    body = [[cell_text(v, c) for v, c in zip(row, report.columns, strict=True)] for row in report.rows]
    if not body:
        body = [["No calls in this period"] + [""] * (len(header) - 1)]
    data = [header, *body]
    if report.totals is not None:
        data.append([cell_text(v, c) for v, c in zip(report.totals, report.columns, strict=True)])
    table = Table(data, repeatRows=1)
    style = [
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 9),
        ("FONT", (0, 1), (-1, -1), "Helvetica", 9),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f2f2f2")]),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#bbbbbb")),
    ]
    for index, column in enumerate(report.columns):
        if column.kind in NUMERIC:
            style.append(("ALIGN", (index, 0), (index, -1), "RIGHT"))
    if report.totals is not None:
        style += [("FONT", (0, -1), (-1, -1), "Helvetica-Bold", 9),
                  ("LINEABOVE", (0, -1), (-1, -1), 0.8, colors.black),
                  ("BACKGROUND", (0, -1), (-1, -1), colors.HexColor("#dde6f0"))]
    table.setStyle(TableStyle(style))
    return table


def _chart(report: Report, width: float) -> Drawing | None:
    spec = report.chart
    if spec is None or not report.rows:
        return None
    rows = report.rows[:CHART_BARS]
    values = [float(row[spec.value_column]) if isinstance(row[spec.value_column], (int, Decimal, float)) else 0.0
              for row in rows]
    if not any(values):
        return None
    height = 60 * mm
    drawing = Drawing(width, height)
    chart = VerticalBarChart()
    chart.x, chart.y = 15 * mm, 14 * mm
    chart.width, chart.height = width - 25 * mm, height - 24 * mm
    chart.data = [values]
    chart.categoryAxis.categoryNames = [str(row[spec.label_column])[:14] for row in rows]
    chart.categoryAxis.labels.angle = 30 if len(rows) > 8 else 0
    chart.categoryAxis.labels.boxAnchor = "ne" if len(rows) > 8 else "n"
    chart.categoryAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = min(0.0, min(values))
    chart.valueAxis.labels.fontSize = 7
    chart.bars[0].fillColor = colors.HexColor("#4a78a8")
    drawing.add(chart)
    label = spec.title or report.columns[spec.value_column].label
    drawing.add(String(15 * mm, height - 6 * mm, label, fontName="Helvetica-Bold", fontSize=9))
    return drawing
