"""The call report (blueprint ``report``): every filter of the report, paginated and sortable, with
totals for the filter, and the export of exactly the filtered rows to CSV and Excel, streamed.

Filters travel in the query string (a GET form without CSRF token: it changes nothing), so a filtered
report can be bookmarked, and the export links carry the very same filter. Read-only; any signed-in role.
Each export is written to the audit log with its filter before the first byte goes out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session, sessionmaker
from wtforms import DateField, SelectField, StringField
from wtforms.validators import Length, Optional

from appliance import audit
from webadmin import get_db, now, site_zone
from webadmin.export import CSV_MIME, XLSX_MIME, csv_chunks, xlsx_chunks
from webadmin.forms import choices
from webadmin.queries import state_label
from webadmin.report_query import (
    DEFAULT_PAGE_SIZE,
    PAGE_SIZES,
    SORTS,
    STATES,
    ReportFilter,
    ReportRow,
    iter_report,
    report_page,
    report_totals,
)

bp = Blueprint("report", __name__, url_prefix="/report")
DEFAULT_DAYS = 7  # an empty form shows the last week: what a front desk asks about
RECORD_CHOICES = [("both", "Charges and refunds"), ("charges", "Charges only"), ("refunds", "Refunds only")]


class ReportForm(FlaskForm):  # type: ignore[misc]
    class Meta:
        csrf = False  # a GET form that only reads

    start = DateField("From", validators=[Optional()])
    end = DateField("To", validators=[Optional()])
    state = SelectField("Posting state", validators=[Optional()],
                        choices=choices([("", "Any")] + [(s, state_label(s)) for s in STATES]))
    record_type = SelectField("Records", choices=choices(RECORD_CHOICES), default="both",
                              validators=[Optional()])
    room = StringField("Room", validators=[Optional(), Length(max=16)])
    extension = StringField("Extension", validators=[Optional(), Length(max=32)])
    caller = StringField("Caller number", validators=[Optional(), Length(max=64)])
    called = StringField("Called number", validators=[Optional(), Length(max=64)])
    account = StringField("Billing account", validators=[Optional(), Length(max=32)])
    call_id = StringField("Call ID", validators=[Optional(), Length(max=64)])
    size = SelectField("Rows per page", choices=choices((str(n), str(n)) for n in PAGE_SIZES),
                       default=str(DEFAULT_PAGE_SIZE), validators=[Optional()])

    def validate(self, extra_validators: Any = None) -> bool:
        ok = bool(super().validate(extra_validators))
        if ok and self.start.data and self.end.data and self.end.data < self.start.data:
            self.end.errors = [*self.end.errors, "The end date is before the start date."]
            ok = False
        return ok

    def to_filter(self) -> ReportFilter:
        return ReportFilter(
            start_date=self.start.data, end_date=self.end.data, state=self.state.data or "",
            record_type=self.record_type.data or "both", room=self.room.data or "",
            extension=self.extension.data or "", caller=self.caller.data or "",
            called=self.called.data or "", account=self.account.data or "", call_id=self.call_id.data or "")


def _form() -> ReportForm:
    form = ReportForm(formdata=request.args)
    if not request.args:
        # A fresh visit: the last DEFAULT_DAYS days. A submitted form with empty dates means "no limit".
        today = now().astimezone(site_zone()).date()
        form.start.data = today - timedelta(days=DEFAULT_DAYS - 1)
        form.end.data = today
    return form


def _sorting() -> tuple[str, bool]:
    sort = request.args.get("sort", "start")
    return (sort if sort in SORTS else "start"), request.args.get("order", "desc") != "asc"


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return min(max(int(raw), 1), 10**6) if raw.isdigit() else 1


@bp.route("/")
@login_required
def index() -> ResponseReturnValue:
    form = _form()
    sort, descending = _sorting()
    if not form.validate():
        return render_template("report.html", form=form, rows=None, totals=None, sort=sort,
                               descending=descending, page=1, pages=0, query={}), 400
    flt = form.to_filter()
    zone = site_zone()
    db = get_db()
    size = int(form.size.data or DEFAULT_PAGE_SIZE)
    totals = report_totals(db, flt, zone)
    pages = max(1, math.ceil(totals.rows / size))
    page = min(_page_number(), pages)
    rows = report_page(db, flt, zone, sort=sort, descending=descending, page=page, size=size)
    return render_template("report.html", form=form, rows=rows, totals=totals, sort=sort,
                           descending=descending, page=page, pages=pages,
                           query=_query(form, sort, descending))


def _query(form: ReportForm, sort: str, descending: bool) -> dict[str, str]:
    """The filter as query-string arguments, for the pager, the sort links and the exports."""
    args = {name: (field.data.isoformat() if hasattr(field.data, "isoformat") else str(field.data or ""))
            for name, field in form._fields.items()}
    args.update(sort=sort, order="desc" if descending else "asc")
    return args


@bp.app_template_global()
def sort_url(query: dict[str, str], column: str) -> str:
    """The report sorted by ``column``; clicking the current sort column again flips the order."""
    same = query.get("sort") == column
    order = ("asc" if query.get("order") == "desc" else "desc") if same else "desc"
    return url_for("report.index", **{**query, "sort": column, "order": order, "page": "1"})


@bp.route("/export.csv")
@login_required
def export_csv() -> ResponseReturnValue:
    return _export("csv", csv_chunks, CSV_MIME)


@bp.route("/export.xlsx")
@login_required
def export_xlsx() -> ResponseReturnValue:
    return _export("xlsx", xlsx_chunks, XLSX_MIME)


def _export(kind: str, writer: Callable[[Iterable[ReportRow], ZoneInfo], Iterator[bytes]],
            mimetype: str) -> ResponseReturnValue:
    form = _form()
    if not form.validate():
        abort(400)
    flt = form.to_filter()
    sort, descending = _sorting()
    zone = site_zone()
    at = now()
    db = get_db()
    audit.record(db, current_user.username, "report.export", "report:calls",
                 after={"format": kind, "filter": flt.describe(), "sort": sort,
                        "order": "desc" if descending else "asc"}, at=at)
    db.commit()
    sessions: sessionmaker[Session] = current_app.extensions["appliance_db"].sessions
    stamp = at.astimezone(zone).strftime("%Y%m%d-%H%M")
    response = Response(_stream(sessions, flt, zone, sort, descending, writer), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="calls-{stamp}.{kind}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _stream(sessions: sessionmaker[Session], flt: ReportFilter, zone: ZoneInfo, sort: str, descending: bool,
            writer: Callable[[Iterable[ReportRow], ZoneInfo], Iterator[bytes]]) -> Iterator[bytes]:
    """The export's body. It runs after the view has returned, so it opens a session of its own (the
    request's is closed by then) and closes it when done or when the browser goes away."""
    session = sessions()
    try:
        yield from writer(iter_report(session, flt, zone, sort=sort, descending=descending), zone)
    finally:
        session.close()
