"""The three scheduled reports, each a bundle of reports sent as CSV, Excel and PDF attachments.

- daily call summary (the day before the run): calls by hour, cost by extension and class, the front
  desk's billing summary and trunk utilisation;
- weekly cost report (the ISO week before the run): cost by department, extension, trunk, class, country;
- monthly overview (the month before the run): cost by department, class and country, calls by hour and
  trunk utilisation by day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from appliance.reports.billing import frontdesk_daily
from appliance.reports.costs import (
    calls_by_hour, cost_by_call_class, cost_by_country, cost_by_department, cost_by_extension, cost_by_trunk,
)
from appliance.reports.model import Report
from appliance.reports.period import Period
from appliance.reports.traffic import trunk_utilisation

Attachment = tuple[str, bytes, str]
TITLES = {"daily": "Daily call summary", "weekly": "Weekly cost report", "monthly": "Monthly overview"}


@dataclass(frozen=True, kw_only=True)
class ReportOptions:
    """Site facts the reports need: the zone, the name for titles and the trunk count for Erlang B."""

    tz: ZoneInfo
    site_name: str = ""
    trunk_count: int = 0


def period_for(kind: str, due: datetime, tz: ZoneInfo) -> Period:
    """The period a run due at ``due`` reports on: the day, ISO week or month before the due date."""
    today = due.astimezone(tz).date()
    if kind == "daily":
        return Period.day(today - timedelta(days=1), tz)
    if kind == "weekly":
        return Period.week(today - timedelta(days=7), tz)
    if kind == "monthly":
        last_month = today.replace(day=1) - timedelta(days=1)
        return Period.month(last_month.year, last_month.month, tz)
    raise ValueError(f"unknown schedule kind {kind!r}")


def reports_for(session: Session, kind: str, period: Period, options: ReportOptions) -> list[Report]:
    trunks = max(options.trunk_count, 0)
    builders: dict[str, list[Callable[[], Report]]] = {
        "daily": [lambda: calls_by_hour(session, period), lambda: cost_by_extension(session, period),
                  lambda: cost_by_call_class(session, period),
                  lambda: frontdesk_daily(session, _first_day(period), period.tz),
                  lambda: trunk_utilisation(session, period, trunk_count=trunks)],
        "weekly": [lambda: cost_by_department(session, period), lambda: cost_by_extension(session, period),
                   lambda: cost_by_trunk(session, period), lambda: cost_by_call_class(session, period),
                   lambda: cost_by_country(session, period)],
        "monthly": [lambda: cost_by_department(session, period), lambda: cost_by_call_class(session, period),
                    lambda: cost_by_country(session, period), lambda: calls_by_hour(session, period),
                    lambda: trunk_utilisation(session, period, trunk_count=trunks, by="day")],
    }
    return [build() for build in builders[kind]]


def _first_day(period: Period) -> date:
    return period.start.date()


def build_bundle(session: Session, kind: str, due: datetime, options: ReportOptions,
                 formats: tuple[str, ...] = ("csv", "xlsx", "pdf")) -> tuple[str, str, list[Attachment]]:
    """``(subject, body, attachments)`` for the run of a ``kind`` schedule due at ``due``."""
    # openpyxl and reportlab weigh about 17 MB resident: the daemon loads them when a report is due.
    from appliance.reports import pdf, render

    period = period_for(kind, due, options.tz)
    reports = reports_for(session, kind, period, options)
    title = TITLES[kind]
    stem = f"{kind}-{period.label}".replace(" ", "_")
    attachments: list[Attachment] = []
    if "csv" in formats:
        attachments.append((f"{stem}.csv", render.to_csv(reports), render.CSV_MIME))
    if "xlsx" in formats:
        attachments.append((f"{stem}.xlsx", render.to_xlsx(reports), render.XLSX_MIME))
    if "pdf" in formats:
        attachments.append((f"{stem}.pdf", pdf.to_pdf(reports, title=f"{title} {period.label}",
                                                      site=options.site_name), pdf.PDF_MIME))
    site = f"{options.site_name}: " if options.site_name else ""
    subject = f"{site}{title} {period.label}"
    lines = [f"{title} for {period.label} ({options.tz.key}).", ""]
    for report in reports:
        money = report.totals is not None and report.columns[-1].kind == "money"
        total = f", total {report.totals[-1]}" if money and report.totals else ""
        lines.append(f"- {report.title}: {len(report.rows)} rows{total}")
    lines += ["", "The reports are attached as " + ", ".join(f.upper() for f in formats) + "."]
    return subject, "\n".join(lines) + "\n", attachments
