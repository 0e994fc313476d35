"""Scheduled reports (blueprint ``schedules``, admins only): which report bundle is mailed when, in which
formats, to whom. The schedules live in the ``report_schedules`` table (appliance/reports/schedule_db.py);
the daemon's report scheduler re-reads the table on its reload tick, so a saved change needs no restart.
Every create, change and delete goes to the audit log with the values before and after, in the same
transaction as the change.

The bundles (daily call summary, weekly cost report, monthly overview) and the missed-run catch-up are
described in docs/reports.md. A schedule without recipients, or not enabled, sends nothing.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    BooleanField, IntegerField, SelectField, SelectMultipleField, StringField, TextAreaField, TimeField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange
from wtforms.widgets import CheckboxInput, ListWidget

from appliance.db.models import ReportSchedule
from appliance.reports import schedule_db
from appliance.reports.bundles import TITLES
from appliance.reports.schedule_store import FORMATS, ScheduleDefinition
from webadmin import get_db, now
from webadmin.auth import role_required
from webadmin.forms import ConfirmForm, choices

bp = Blueprint("schedules", __name__, url_prefix="/reports/schedules")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
KINDS = {"daily": f"{TITLES['daily']} (the day before)",
         "weekly": f"{TITLES['weekly']} (the week before, Monday to Sunday)",
         "monthly": f"{TITLES['monthly']} (the month before)"}
FORMAT_LABELS = {"csv": "CSV", "xlsx": "Excel", "pdf": "PDF"}
SPLIT = re.compile(r"[\s,;]+")


class MultiCheckboxField(SelectMultipleField):  # type: ignore[misc]
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ScheduleForm(FlaskForm):  # type: ignore[misc]
    name = StringField("Name", validators=[DataRequired(message="Please name the schedule."), Length(max=32)])
    kind = SelectField("Report", choices=choices(TITLES.items()))
    at = TimeField("Time of day", default=time(6, 0),
                   validators=[InputRequired(message="Please give a time.")])
    day_of_week = SelectField("Day of the week (weekly)",
                              choices=choices((str(n), d) for n, d in enumerate(DAYS)),
                              default="0")
    day_of_month = IntegerField("Day of the month (monthly)", default=1,
                                validators=[InputRequired(), NumberRange(min=1, max=28,
                                            message="1 to 28, so that every month has the day.")])
    formats = MultiCheckboxField("Attachments", choices=choices((f, FORMAT_LABELS[f]) for f in FORMATS),
                                 default=list(FORMATS))
    recipients = TextAreaField("Recipients", validators=[Length(max=4000)])
    enabled = BooleanField("Enabled", default=True)

    def fill(self, row: ReportSchedule) -> None:
        self.name.data, self.kind.data = row.name, row.kind
        self.at.data = time(row.hour, row.minute)
        self.day_of_week.data, self.day_of_month.data = str(row.day_of_week), row.day_of_month
        self.formats.data, self.recipients.data = list(row.formats), "\n".join(row.recipients)
        self.enabled.data = row.enabled

    def definition(self) -> ScheduleDefinition | None:
        """The schedule the form describes, or None with the problems put on the fields."""
        recipients = tuple(r for r in SPLIT.split(self.recipients.data or "") if r)
        item: dict[str, Any] = dict(name=(self.name.data or "").strip(), kind=self.kind.data,
                                    recipients=recipients, hour=self.at.data.hour, minute=self.at.data.minute,
                                    day_of_week=int(self.day_of_week.data or 0),
                                    day_of_month=int(self.day_of_month.data or 1),
                                    formats=tuple(f for f in FORMATS if f in (self.formats.data or ())),
                                    enabled=bool(self.enabled.data))
        if not item["formats"]:
            self.formats.errors = [*self.formats.errors, "Choose at least one attachment format."]
            return None
        try:
            return ScheduleDefinition(**item)
        except ValueError as exc:
            for problem in str(exc).split("; "):
                target = {"name": self.name, "recipient": self.recipients,
                          "day_of_month": self.day_of_month}.get(problem.split(" ", 1)[0].rstrip(":"), self.at)
                target.errors = [*target.errors, problem]
            return None


def describe_when(row: ReportSchedule) -> str:
    at = f"{row.hour:02d}:{row.minute:02d}"
    if row.kind == "weekly":
        return f"Weekly, {DAYS[row.day_of_week]} at {at}"
    if row.kind == "monthly":
        return f"Monthly, day {row.day_of_month} at {at}"
    return f"Daily at {at}"


def _import_file() -> None:
    """The JSON schedules of an older installation move into the table once (schedule_db.import_file)."""
    config = current_app.extensions.get("appliance_config")
    if config is None or current_app.extensions.get("report_schedule_import_done"):
        return
    try:
        count = schedule_db.import_once(current_app.extensions["appliance_db"].sessions,
                                        config.reports.schedule_file, now())
    except ValueError as exc:
        flash(f"The old schedule file could not be imported: {exc}", "error")
        return
    # Done or nothing to do: this process does not look again (the audit log has no index on action).
    current_app.extensions["report_schedule_import_done"] = True
    if count:
        flash(f"{count} schedule(s) imported from {config.reports.schedule_file}.", "info")


def _mail_configured() -> bool | None:
    config = current_app.extensions.get("appliance_config")
    return None if config is None else config.reports.smtp is not None


@bp.route("/")
@role_required("admin")
def index() -> ResponseReturnValue:
    _import_file()
    rows = schedule_db.rows(get_db())
    return render_template("schedules.html", rows=rows, describe_when=describe_when, kinds=KINDS,
                           mail=_mail_configured(), form=ConfirmForm(), screens=_screens())


def _screens() -> Any:
    from webadmin.reports import SCREENS

    return SCREENS.values()


def _name_taken(name: str, own_id: int | None) -> bool:
    found = get_db().scalar(select(ReportSchedule.id).where(ReportSchedule.name == name))
    return found is not None and found != own_id


@bp.route("/new", methods=["GET", "POST"])
@role_required("admin")
def new() -> ResponseReturnValue:
    form = ScheduleForm()
    if form.validate_on_submit():
        item = form.definition()
        if item is not None and _name_taken(item.name, None):
            form.name.errors = [*form.name.errors, f"There is a schedule named {item.name} already."]
            item = None
        if item is not None:
            db = get_db()
            schedule_db.create(db, item, user=current_user.username, now=now())
            db.commit()
            flash(f"Schedule {item.name} created.", "info")
            return redirect(url_for("schedules.index"))
    return render_template("schedule_edit.html", form=form, row=None, screens=_screens(),
                           mail=_mail_configured()), 400 if form.is_submitted() else 200


@bp.route("/<int:schedule_id>", methods=["GET", "POST"])
@role_required("admin")
def edit(schedule_id: int) -> ResponseReturnValue:
    db = get_db()
    row = db.get(ReportSchedule, schedule_id) or abort(404)
    form = ScheduleForm()
    if not form.is_submitted():
        form.fill(row)
    elif form.validate():
        item = form.definition()
        if item is not None and _name_taken(item.name, row.id):
            form.name.errors = [*form.name.errors, f"There is a schedule named {item.name} already."]
            item = None
        if item is not None:
            changed = schedule_db.update(db, row, item, user=current_user.username, now=now())
            db.commit()
            flash(f"Schedule {item.name} saved." if changed else "Nothing changed.", "info")
            return redirect(url_for("schedules.index"))
    return render_template("schedule_edit.html", form=form, row=row, screens=_screens(),
                           mail=_mail_configured()), 400 if form.is_submitted() else 200


@bp.route("/<int:schedule_id>/delete", methods=["POST"])
@role_required("admin")
def delete(schedule_id: int) -> ResponseReturnValue:
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    db = get_db()
    row = db.get(ReportSchedule, schedule_id) or abort(404)
    name = row.name
    schedule_db.remove(db, row, user=current_user.username, now=now())
    db.commit()
    flash(f"Schedule {name} deleted.", "info")
    return redirect(url_for("schedules.index"))
