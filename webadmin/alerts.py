"""Alerts (blueprint ``alerts``): the open alerts first, then the latest acknowledged ones, and the rules
in words. Anyone signed in may read them; front desk and admins acknowledge them (audited).

Under each alert that went out to a channel (e-mail, webhook, syslog) is its delivery log from the
``alert_deliveries`` table: one line per attempt with its target, time, outcome, error and the next
attempt, so "did the night manager get the mail?" has an answer on the screen.

The rules run in the daemon (``appliance.alerts``); the page shows each configured rule in the words of
the rule itself (``AlertEngine.describe``), with its configured thresholds, so a night auditor knows why the
appliance raised it. ``RULES`` covers alerts raised outside the engine and a web admin without a config.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy import select

from appliance import audit
from appliance.alerts.deliveries import log_for
from appliance.db.models import Alert
from webadmin import get_db, now
from webadmin.auth import role_required
from webadmin.forms import ConfirmForm

bp = Blueprint("alerts", __name__, url_prefix="/alerts")
RECENT_ACKNOWLEDGED = 100

RULES: dict[str, str] = {
    "lobby_long_distance": "A lobby or public phone dialled a long-distance, international or premium-rate "
                           "number.",
    "after_hours": "An admin (staff) phone made an outside call outside office hours.",
    "long_call": "A call lasted longer than the configured threshold.",
    "expensive_call": "A single call cost more than the configured threshold.",
    "burst": "One extension made many calls within a few minutes (burst dialling).",
    "fraud_prefix": "A number with a known toll-fraud prefix was dialled.",
    "pbx_silence": "No call record arrived from a PBX link for longer than its silence_minutes: the PBX "
                   "link, cable or PBX output may be down.",
    "pms_silence": "The PMS has not answered a posting for longer than expected.",
    "failed_queue": "Failed or unanswered postings are piling up: see Failed postings.",
    "unrated_call": "The tariff could not price a call: it is held as excluded until the tariff is fixed "
                    "and the call re-rated.",
    "rule_error": "An alert rule failed on a call; the call was stored. See the alert for the error.",
}


def rules_in_words() -> dict[str, str]:
    config = current_app.extensions.get("appliance_config")
    if config is None:
        return RULES
    from appliance.alerts.engine import AlertEngine

    return {**RULES, **AlertEngine(config).describe()}


@bp.route("/")
@login_required
def index() -> ResponseReturnValue:
    db = get_db()
    open_alerts = db.scalars(select(Alert).where(Alert.acknowledged_at.is_(None))
                             .order_by(Alert.created_at.desc(), Alert.id.desc())).all()
    done = db.scalars(select(Alert).where(Alert.acknowledged_at.is_not(None))
                      .order_by(Alert.acknowledged_at.desc(), Alert.id.desc())
                      .limit(RECENT_ACKNOWLEDGED)).all()
    deliveries = log_for(db, [alert.id for alert in [*open_alerts, *done]])
    return render_template("alerts.html", open_alerts=open_alerts, done=done, rules=rules_in_words(),
                           form=ConfirmForm(), deliveries=deliveries)


@bp.route("/<int:alert_id>/acknowledge", methods=["POST"])
@role_required("frontdesk")
def acknowledge(alert_id: int) -> ResponseReturnValue:
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    db = get_db()
    alert = db.get(Alert, alert_id)
    if alert is None:
        abort(404)
    if alert.acknowledged_at is not None:
        flash(f"Alert {alert_id} was acknowledged already by {alert.acknowledged_by}.", "info")
        return redirect(url_for("alerts.index"))
    at = now()
    alert.acknowledged_at = at
    alert.acknowledged_by = current_user.username
    audit.record(db, current_user.username, "alert.acknowledge", f"alert:{alert_id}",
                 before={"acknowledged": False}, after={"acknowledged": True, "rule": alert.rule}, at=at)
    db.commit()
    flash(f"Alert {alert_id} acknowledged.", "info")
    return redirect(url_for("alerts.index"))
