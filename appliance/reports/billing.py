"""The front desk's daily billing summary: what reached each room's folio during one business day.

A posting counts on the day the PMS accepted it (``answered_at``, in the site's zone), because that is
the day it appears on the folio and in the night audit. Charges that reached the folio are those in
state ``ok`` and those later ``refunded`` (they were posted; the refund is a posting of its own). Refunds
count when their own refund posting is ``ok``. Net = charges - refunds. Open, retrying, failed and
excluded postings never reached a folio and are left out.

``day_starts`` moves the business day's start for hotels whose night audit closes the day at, say, 04:00.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from appliance.db.models import Posting
from appliance.reports.model import Chart, Column, Report
from appliance.reports.period import Period

ZERO = Decimal("0.0000")
POSTED_CHARGE_STATES = ("ok", "refunded")


def business_day(day: date, tz: ZoneInfo, day_starts: time = time(0)) -> Period:
    start = datetime.combine(day, day_starts, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), day_starts, tzinfo=tz)
    return Period(start=start, end=end, tz=tz, label=day.isoformat())


def frontdesk_daily(session: Session, day: date, tz: ZoneInfo, *, day_starts: time = time(0)) -> Report:
    """Per room: charges posted, their amount, refunds posted, their amount, and the net."""
    period = business_day(day, tz, day_starts)
    is_charge = and_(Posting.kind == "charge", Posting.state.in_(POSTED_CHARGE_STATES))
    is_refund = and_(Posting.kind == "refund", Posting.state == "ok")
    zero = literal(0, Posting.amount.type)
    charge_amount = func.sum(case((is_charge, Posting.amount), else_=zero))
    refund_amount = func.sum(case((is_refund, Posting.amount), else_=zero))
    # ``type_coerce`` is implicit: the CASE takes the Money type of its branches, so sums come back Decimal.
    # Grouping on an expression, not the bare column: otherwise SQLite walks the whole room index to
    # avoid a sort of a few hundred rows, instead of using the updated_at index below.
    room = (Posting.room + "").label("room")
    query = (select(room,
                    func.sum(case((is_charge, 1), else_=0)), charge_amount,
                    func.sum(case((is_refund, 1), else_=0)), refund_amount)
             .where(Posting.answered_at >= period.utc_start, Posting.answered_at < period.utc_end,
                    # answered_at has no index; updated_at has one and is never before answered_at, so
                    # this bound loses no row and spares a scan of all postings for a recent day.
                    Posting.updated_at >= period.utc_start,
                    or_(is_charge, is_refund))
             .group_by(room).order_by(room))
    rows = []
    for room, charges, charged, refunds, refunded in session.execute(query):
        charged, refunded = _money(charged), _money(refunded)
        rows.append((room, int(charges), charged, int(refunds), refunded, charged - refunded))
    totals = ("Total", sum(r[1] for r in rows), sum((r[2] for r in rows), ZERO), sum(r[3] for r in rows),
              sum((r[4] for r in rows), ZERO), sum((r[5] for r in rows), ZERO))
    return Report(key="frontdesk_daily", title="Front desk daily billing summary", period=period,
                  columns=(Column(label="Room"), Column(label="Charges", kind="int"),
                           Column(label="Charged", kind="money"), Column(label="Refunds", kind="int"),
                           Column(label="Refunded", kind="money"), Column(label="Net", kind="money")),
                  rows=tuple(rows), totals=totals, chart=Chart(label_column=0, value_column=5, title="Net by room"))


def _money(value: object) -> Decimal:
    # SUM of a CASE over Money comes back through Money's result processing as a Decimal; on an engine
    # that loses the type it is the raw integer of 1/10000ths.
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        return value
    return (Decimal(int(value)) / 10000).quantize(Decimal("0.0001"))  # type: ignore[call-overload]
