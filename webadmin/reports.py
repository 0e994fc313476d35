"""Reports (blueprint ``reports``): cost by department, extension, trunk, call class and destination
country; inbound and outbound calls by hour; trunk utilisation with busy hour, peak and Erlang B; the
front desk's daily billing summary. Each for a period picked in the page, with a chart drawn on the
server as SVG (appliance/reports/svg.py), the table with its totals, and downloads as CSV, Excel and PDF
through the same renderers the scheduled mail uses (appliance/reports/render.py, pdf.py).

The figures come from ``appliance.reports`` (docs/reports.md): the page only picks the period and shows
what those functions return, so the screen, the downloads and the scheduled mails always agree. Any
signed-in role may read reports (they change nothing; the period travels in the query string, so a
report can be bookmarked); every download is written to the audit log before it is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy.orm import Session
from wtforms import DateField, IntegerField
from wtforms.validators import NumberRange, Optional

from appliance import audit
from appliance.reports import costs, svg
from appliance.reports.billing import frontdesk_daily
from appliance.reports.model import Column, Report
from appliance.reports.pdf import PDF_MIME, to_pdf
from appliance.reports.period import Period
from appliance.reports.render import CSV_MIME, XLSX_MIME, to_csv, to_xlsx
from appliance.reports.traffic import trunk_utilisation
from webadmin import format_money, get_db, now, site_zone

bp = Blueprint("reports", __name__, url_prefix="/reports")
DEFAULT_DAYS = 7
CHART_POINTS = 288  # 5-minute buckets for a day; wider for longer periods
MAX_DAYS = 366  # a year of calls is still a handful of GROUP BY queries; more is not a screen's job
FORMATS = {"csv": (CSV_MIME, to_csv), "xlsx": (XLSX_MIME, to_xlsx), "pdf": (PDF_MIME, None)}


@dataclass(frozen=True)
class Screen:
    key: str
    title: str
    build: Callable[[Session, Period, int], Report]
    one_day: bool = False  # the front desk summary is one business day
    about: str = ""


def _cost(function: Callable[[Session, Period], Report]) -> Callable[[Session, Period, int], Report]:
    return lambda session, period, _trunks: function(session, period)


SCREENS = {s.key: s for s in (
    Screen("cost_by_department", "Cost by department", _cost(costs.cost_by_department),
           about="Outgoing calls by the extension's description, else its category."),
    Screen("cost_by_extension", "Cost by extension", _cost(costs.cost_by_extension)),
    Screen("cost_by_trunk", "Cost by trunk", _cost(costs.cost_by_trunk)),
    Screen("cost_by_call_class", "Cost by call class", _cost(costs.cost_by_call_class)),
    Screen("cost_by_country", "Cost by destination country", _cost(costs.cost_by_country)),
    Screen("calls_by_hour", "Inbound and outbound by hour", _cost(costs.calls_by_hour),
           about="Calls and talk time by the local hour they started, summed over the period."),
    Screen("trunk_utilisation", "Trunk utilisation",
           lambda session, period, trunks: trunk_utilisation(session, period, trunk_count=trunks,
                                                             series_points=CHART_POINTS),
           about="Calls up at once over time, the busy hour and the Erlang B blocking estimate."),
    Screen("frontdesk_daily", "Front desk daily billing",
           lambda session, period, _trunks: frontdesk_daily(session, period.start.date(), period.tz),
           one_day=True, about="What reached each room's folio on the day the PMS accepted it."),
)}


class PeriodForm(FlaskForm):  # type: ignore[misc]
    class Meta:
        csrf = False  # a GET form that only reads

    start = DateField("From", validators=[Optional()])
    end = DateField("To", validators=[Optional()])
    trunks = IntegerField("Trunks", validators=[Optional(), NumberRange(min=0, max=10_000)])


def configured_trunks() -> int:
    config = current_app.extensions.get("appliance_config")
    return config.reports.trunk_count if config is not None else 0


def _period(screen: Screen) -> tuple[PeriodForm, Period | None]:
    """The form and the period it asks for; a fresh visit shows the last week (today for one day)."""
    form = PeriodForm(formdata=request.args)
    today = now().astimezone(site_zone()).date()
    if form.start.data is None and not form.start.raw_data:
        form.start.data = today if screen.one_day else today - timedelta(days=DEFAULT_DAYS - 1)
    if form.end.data is None and not form.end.raw_data:
        form.end.data = today
    if form.trunks.data is None and not form.trunks.raw_data:
        form.trunks.data = configured_trunks()
    if not form.validate() or form.start.data is None or form.end.data is None:
        return form, None
    first: date = form.start.data
    last: date = first if screen.one_day else form.end.data
    if last < first:
        form.end.errors = [*form.end.errors, "The end date is before the start date."]
        return form, None
    if (last - first).days >= MAX_DAYS:
        form.end.errors = [*form.end.errors, f"Pick at most {MAX_DAYS} days."]
        return form, None
    return form, Period.between(first, last, site_zone())


def presets(screen: Screen) -> list[tuple[str, dict[str, str]]]:
    """Quick periods as query arguments: what people ask for most."""
    today = now().astimezone(site_zone()).date()
    yesterday = today - timedelta(days=1)
    if screen.one_day:
        return [("Today", {"start": today.isoformat()}), ("Yesterday", {"start": yesterday.isoformat()})]
    monday = today - timedelta(days=today.weekday())
    first = today.replace(day=1)
    last_month_end = first - timedelta(days=1)

    def span(a: date, b: date) -> dict[str, str]:
        return {"start": a.isoformat(), "end": b.isoformat()}

    return [("Today", span(today, today)), ("Yesterday", span(yesterday, yesterday)),
            ("Last 7 days", span(today - timedelta(days=6), today)),
            ("This week", span(monday, today)),
            ("Last week", span(monday - timedelta(days=7), monday - timedelta(days=1))),
            ("This month", span(first, today)),
            ("Last month", span(last_month_end.replace(day=1), last_month_end))]


@bp.app_template_filter("report_cell")
def report_cell(value: Any, column: Column) -> str:
    """A report cell for the page: money with two decimals (or four when used), seconds as h:mm:ss."""
    if value is None or value == "":
        return ""
    if column.kind == "money" and isinstance(value, Decimal):
        return format_money(value)
    if column.kind == "seconds" and isinstance(value, int):
        minutes, seconds = divmod(value, 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    if column.kind == "int" and isinstance(value, int):
        return f"{value:,}"
    return str(value)


def chart(screen: Screen, report: Report, period: Period, trunks: int) -> Markup | None:
    """The chart of a report, or None where a chart would say nothing the table does not."""
    if not report.rows:
        return None
    if screen.key == "calls_by_hour":
        hours = [str(int(row[0][:2])) for row in report.rows]
        drawing = svg.bar_chart(hours, [("Outbound", report.column("Outbound calls")),
                                        ("Inbound", report.column("Inbound calls"))],
                                title="Calls by hour of day, outbound and inbound")
    elif screen.key == "trunk_utilisation":
        points = report.extra["utilisation"].series  # collected in the report's own sweep
        days = period.seconds / 86400
        fmt = "%H:%M" if days <= 1 else "%m-%d %H:%M" if days <= 7 else "%m-%d"
        drawing = svg.step_chart(points, title="Calls up at once", end=period.end, limit=trunks or None,
                                 limit_label=f"{trunks} trunks", time_format=fmt)
    else:
        index = report.chart.value_column if report.chart else len(report.columns) - 1
        label = report.chart.label_column if report.chart else 0
        money = report.columns[index].kind == "money"
        drawing = svg.hbar_chart([str(row[label]) for row in report.rows],
                                 [row[index] for row in report.rows],
                                 title=report.chart.title if report.chart else report.title,
                                 fmt=(lambda v: format_money(v)) if money else str)  # type: ignore[arg-type]
    return Markup(drawing)  # noqa: S704 (built by svg.py, every text escaped there)


@bp.route("/")
@login_required
def index() -> ResponseReturnValue:
    return render_template("reports_index.html", screens=SCREENS.values())


@bp.route("/<key>")
@login_required
def show(key: str) -> ResponseReturnValue:
    screen = SCREENS.get(key) or abort(404)
    form, period = _period(screen)
    if period is None:
        return render_template("reports.html", screen=screen, screens=SCREENS.values(), form=form,
                               report=None, chart=None, presets=presets(screen), query={}), 400
    trunks = form.trunks.data or 0
    session = get_db()
    report = screen.build(session, period, trunks)
    query = _query(form, screen)
    return render_template("reports.html", screen=screen, screens=SCREENS.values(), form=form, report=report,
                           chart=chart(screen, report, period, trunks), presets=presets(screen),
                           query=query, utilisation=report.extra.get("utilisation"))


def _query(form: PeriodForm, screen: Screen) -> dict[str, str]:
    args = {"start": form.start.data.isoformat()}
    if not screen.one_day:
        args["end"] = form.end.data.isoformat()
    if screen.key == "trunk_utilisation":
        args["trunks"] = str(form.trunks.data or 0)
    return args


@bp.route("/<key>/download.<fmt>")
@login_required
def download(key: str, fmt: str) -> ResponseReturnValue:
    screen = SCREENS.get(key) or abort(404)
    if fmt not in FORMATS:
        abort(404)
    form, period = _period(screen)
    if period is None:
        abort(400)
    trunks = form.trunks.data or 0
    session = get_db()
    report = screen.build(session, period, trunks)
    mimetype, render = FORMATS[fmt]
    site = current_app.config["SITE_NAME"]
    if render is not None:
        body = render(report)
    else:
        body = to_pdf(report, title=f"{report.title} {period.label}", site=site)
    audit.record(session, current_user.username, "report.download", f"report:{key}",
                 after={"format": fmt, "period": period.label, "rows": len(report.rows)}, at=now())
    session.commit()
    name = f"{key}-{period.label}".replace(" ", "_")
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_template_global()
def report_url(key: str, **args: str) -> str:
    return url_for("reports.show", key=key, **args)
