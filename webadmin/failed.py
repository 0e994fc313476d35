"""The failed postings queue (blueprint ``failed``; admins, i.e. property IT).

Each failed posting with the reason and the PMS's answer. Selected postings (one or many) are re-posted
after a fix (sent again with a new P#), marked as posted by hand (the folio has the charge), or written off;
each action needs a note, which is kept on the posting, in its history and in the audit log
(``appliance.actions.resolve_failed`` does the work). A posting someone else dealt with meanwhile is
reported and left alone.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from appliance import actions
from webadmin import get_db, now
from webadmin.auth import role_required
from webadmin.forms import FailedActionForm
from webadmin.queries import FAILED_LIMIT, failed_postings, queue_counts

bp = Blueprint("failed", __name__, url_prefix="/failed")
MAX_SELECTED = FAILED_LIMIT


@bp.route("/", methods=["GET", "POST"])
@role_required("admin")
def index() -> ResponseReturnValue:
    form = FailedActionForm()
    db = get_db()
    selected = _selected_ids()
    status = 200
    if form.validate_on_submit():
        try:
            # The configuration prices a call that was held unrated, with the tariff this process loaded.
            result = actions.resolve_failed(db, form.action.data, selected, note=form.note.data,
                                            actor=current_user.username, now=now(),
                                            config=current_app.extensions.get("appliance_config"))
        except actions.ActionError as exc:
            db.rollback()
            form.note.errors.append(str(exc))
        else:
            db.commit()
            if result.done:
                flash(f"{len(result.done)} posting(s) {_past(form.action.data)}: "
                      f"{', '.join(map(str, result.done))}.", "info")
            for posting_id, message in result.refused:
                flash(f"Not {_past(form.action.data)}: posting {posting_id}. {message}", "error")
            return redirect(url_for("failed.index"))
    if form.is_submitted():
        status = 400
    return render_template("failed.html", form=form, postings=failed_postings(db), selected=set(selected),
                           total=queue_counts(db)["failed"], limit=FAILED_LIMIT), status


def _selected_ids() -> list[int]:
    values = request.form.getlist("posting")[:MAX_SELECTED]
    return [int(value) for value in values if value.isdigit() and len(value) < 19]


def _past(action: str) -> str:
    return {"repost": "re-posted", "mark_posted": "marked as posted", "write_off": "written off"}[action]
