"""Refunds (blueprint ``refunds``; front desk and admins).

- ``POST /refunds/call/<id>``: refund a call's whole charge, with a reason (the form is on the call's page);
- ``POST /refunds/call/<id>/part``: refund part of it, as a refund record shown as ``REF0`` by default;
- ``GET/POST /refunds/``: a custom refund of an amount to a room, and the latest refund records with the
  state of each (a refund is posted to the PMS as a negative charge and tracked like any posting).

The money rules are ``appliance.actions``'; a refused request shows its reason next to the form (400).
Every refund is in the audit log (written by the action, in the same transaction).
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select

from appliance import actions
from appliance.db.models import Posting
from webadmin import detail, get_db, now
from webadmin.auth import role_required
from webadmin.forms import PartRefundForm, RoomRefundForm, WholeRefundForm

bp = Blueprint("refunds", __name__, url_prefix="/refunds")
RECENT_REFUNDS = 100


@bp.route("/call/<int:call_id>", methods=["POST"])
@role_required("frontdesk")
def whole(call_id: int) -> ResponseReturnValue:
    form = WholeRefundForm(prefix="whole")
    if form.validate_on_submit():
        db = get_db()
        try:
            refund = actions.refund_call(db, call_id, reason=form.reason.data, actor=current_user.username,
                                         now=now())
        except actions.ActionError as exc:
            db.rollback()
            # Flashed, not a field error: the page no longer shows the form once the charge is refunded.
            flash(str(exc), "error")
        else:
            db.commit()
            flash(f"Call {call_id} refunded: {refund.amount:.2f} {refund.currency} back to room "
                  f"{refund.room} (refund posting {refund.id}, on its way to the PMS).", "info")
            return redirect(url_for("detail.show", call_id=call_id))
    return detail.render(call_id, whole=form, status=400)


@bp.route("/call/<int:call_id>/part", methods=["POST"])
@role_required("frontdesk")
def part(call_id: int) -> ResponseReturnValue:
    form = PartRefundForm(prefix="part")
    if form.validate_on_submit():
        db = get_db()
        try:
            refund = actions.refund_part(db, call_id, form.amount.data, reason=form.reason.data,
                                         destination=form.destination.data or actions.REFUND_DESTINATION,
                                         actor=current_user.username, now=now())
        except actions.ActionError as exc:
            db.rollback()
            flash(str(exc), "error")
        else:
            db.commit()
            flash(f"{refund.amount:.2f} {refund.currency} of call {call_id} refunded to room {refund.room} "
                  f"(refund posting {refund.id}).", "info")
            return redirect(url_for("detail.show", call_id=call_id))
    return detail.render(call_id, part=form, status=400)


@bp.route("/", methods=["GET", "POST"])
@role_required("frontdesk")
def index() -> ResponseReturnValue:
    form = RoomRefundForm()
    db = get_db()
    status = 200
    if form.validate_on_submit():
        config = current_app.config
        try:
            refund = actions.refund_room(
                db, form.room.data, form.amount.data, reason=form.reason.data,
                destination=form.destination.data or actions.REFUND_DESTINATION, actor=current_user.username,
                now=now(), link=config["PMS_LINK"], currency=config["CURRENCY"],
                allow_vacant=bool(config["POST_TO_VACANT_ROOMS"]))
        except actions.ActionError as exc:
            db.rollback()
            form.amount.errors.append(str(exc))
        else:
            db.commit()
            flash(f"{refund.amount:.2f} {refund.currency} refunded to room {refund.room} "
                  f"(refund posting {refund.id}, on its way to the PMS).", "info")
            return redirect(url_for("refunds.index"))
    if form.is_submitted():
        status = 400
    recent = db.scalars(select(Posting).where(Posting.kind == "refund")
                        .order_by(Posting.id.desc()).limit(RECENT_REFUNDS)).all()
    return render_template("refunds.html", form=form, refunds=recent), status
