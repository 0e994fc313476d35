"""Call detail (blueprint ``detail``): the raw record as received (non-printable bytes escaped), the
classification and the rating breakdown that explains the amount, and every posting of the call (its
charge and refunds) with the full state history and the PMS's answers. Front desk and admins also see
the guest of the stay and the refund forms. Any signed-in role may look.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort, render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from appliance.actions import refund_state
from appliance.db.models import Call, Posting, Stay
from appliance.rating import Rating, explain
from webadmin import get_db
from webadmin.forms import PartRefundForm, WholeRefundForm
from webadmin.queries import escape_raw

bp = Blueprint("detail", __name__, url_prefix="/calls")

# The rating breakdown's keys (appliance.rating), in reading order, with what a person calls them. Keys
# not listed here (a newer or older breakdown) are shown after these, under their own name.
RATING_LABELS = {
    "rule": "Outcome", "class": "Call class", "number": "Number", "e164": "International form",
    "country": "Country", "classified_as": "Classified because", "duration": "Talk time (s)",
    "start": "Start (site time)", "trunk": "Trunk", "category": "Extension category", "plan": "Tariff plan",
    "plan_rule": "Plan chosen by", "version": "Tariff version", "version_from": "Version in force from",
    "version_note": "Version note", "rate": "Rate used", "matched_prefix": "Matched prefix",
    "rate_name": "Rate name", "connect": "Connect fee", "billing": "Billing", "billed_seconds": "Billed (s)",
    "time_cost": "Time cost", "minimum": "Minimum", "maximum": "Maximum", "carrier_cost": "Carrier cost",
    "carrier_note": "Carrier cost note", "markup_percent": "Markup (%)", "markup": "Markup",
    "surcharge_per_call": "Surcharge per call", "surcharge_per_minute": "Surcharge per minute",
    "class_surcharge": "Class surcharge", "surcharge": "Surcharges", "unrounded": "Before rounding",
    "rounding": "Rounding step", "rounding_mode": "Rounding", "rounding_adjustment": "Rounding adjustment",
    "amount": "Amount", "problem": "Problem",
}


@bp.route("/<int:call_id>")
@login_required
def show(call_id: int) -> ResponseReturnValue:
    return render(call_id)


def render(call_id: int, *, whole: WholeRefundForm | None = None, part: PartRefundForm | None = None,
           status: int = 200) -> ResponseReturnValue:
    """The detail page; the refund views call it again with their forms' errors."""
    db = get_db()
    call = db.get(Call, call_id)
    if call is None:
        abort(404)
    charge = next((p for p in call.postings if p.kind == "charge"), None)
    refunds = [p for p in call.postings if p.kind == "refund"]
    can_refund = current_user.has_role("frontdesk")
    guest = ""
    if can_refund and call.stay_id is not None:
        stay = db.get(Stay, call.stay_id)
        guest = stay.name if stay is not None else ""
    return render_template(
        "call_detail.html",
        call=call, charge=charge, refunds=refunds, postings=call.postings,
        refunded=refund_state(db, charge) if charge is not None else None,
        refunded_by=_refunded_by(charge),
        raw=escape_raw(call.raw), breakdown=_breakdown(call.rating), pieces=(call.rating or {}).get("pieces"),
        explanation=_explain(call),
        guest=guest, can_refund=can_refund and charge is not None and charge.state == "ok",
        whole=whole or WholeRefundForm(prefix="whole"), part=part or PartRefundForm(prefix="part"),
    ), status


def _refunded_by(charge: Posting | None) -> Any:
    """The history line that refunded the charge (who, when, why), if it was refunded."""
    if charge is None or charge.state != "refunded":
        return None
    return next((event for event in reversed(charge.history) if event.to_state == "refunded"), None)


def _breakdown(rating: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The breakdown's plain values as (label, text); empty ones are left out, the pieces go apart."""
    rating = {key: value for key, value in (rating or {}).items()
              if key != "pieces" and value not in ("", None)}
    known = [(label, str(rating[key])) for key, label in RATING_LABELS.items() if key in rating]
    others = [(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
              for key, value in rating.items() if key not in RATING_LABELS]
    return known + others


def _explain(call: Call) -> str:
    """The rating in words, when the breakdown has what ``appliance.rating.explain`` needs."""
    rating = Rating(amount=call.amount, chargeable=call.amount > 0, reason=call.reason,
                    breakdown=call.rating or {})
    try:
        return explain(rating, call.currency)
    except (KeyError, TypeError):  # an older or partial breakdown: the table says it all
        return ""
