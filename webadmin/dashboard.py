"""The dashboard (blueprint ``dashboard``), the start page: today's calls and charges in the site's time
zone, postings by state, the health of the PBX and PMS links, and how many alerts wait. Read-only; any
signed-in role.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, current_app, render_template
from flask.typing import ResponseReturnValue
from flask_login import login_required

from appliance.db.models import POSTING_STATES
from webadmin import get_db, now, today_bounds
from webadmin.queries import (
    link_statuses,
    open_alert_count,
    postings_by_state,
    queue_counts,
    state_label,
    today_summary,
)

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")


@bp.route("/")
@login_required
def index() -> ResponseReturnValue:
    db = get_db()
    low, high = today_bounds()
    config = current_app.extensions.get("appliance_config")
    statuses = {status.name: status for status in link_statuses(db)}
    # Links the configuration names but the daemon never reported: show them as "never seen".
    configured = []
    if config is not None:
        configured = [("pbx", link.name) for link in config.pbx]
        configured += [("pms", config.pms.name)] if config.pms is not None else []
    missing = [(kind, name) for kind, name in configured if name not in statuses]
    by_state = postings_by_state(db, low, high)
    return render_template(
        "dashboard.html",
        day=low.date(),
        today=today_summary(db, low, high),
        states=[(state, state_label(state), by_state.get(state, 0)) for state in POSTING_STATES],
        queue=queue_counts(db),
        links=list(statuses.values()),
        missing=missing,
        alerts=open_alert_count(db),
    )


def ago(moment: datetime | None, at: datetime) -> str:
    """'3 min ago', '2 h ago', '4 days ago': how stale a link's last record or answer is."""
    if moment is None:
        return "never"
    seconds = int((at - moment).total_seconds())
    if seconds < 60:
        return "just now" if seconds < 5 else f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


@bp.app_template_filter("ago")
def ago_filter(moment: datetime | None) -> str:
    return ago(moment, now())
