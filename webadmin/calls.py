"""The "Recent calls" screen (blueprint ``calls``), the home page for now: the latest calls with the
state of their charge, and the latest postings with the PMS's answer. Read-only; any signed-in role.
"""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue
from flask_login import login_required

from webadmin import get_db
from webadmin.queries import RECENT_LIMIT, recent_calls, recent_postings

bp = Blueprint("calls", __name__, url_prefix="/calls")


@bp.route("/")
@login_required
def index() -> ResponseReturnValue:
    db = get_db()
    return render_template(
        "calls.html",
        calls=recent_calls(db, RECENT_LIMIT),
        postings=recent_postings(db, RECENT_LIMIT),
        limit=RECENT_LIMIT,
    )
