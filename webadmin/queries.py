"""Read-only queries the screens share. Plain functions of a SQLAlchemy session: no Flask here, so the
reports, the CLI and tests can call them too.

Rows come back as frozen dataclasses holding only what a screen shows (no ORM objects escape), with
``Decimal`` amounts and aware UTC times; the templates convert to the site's zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, select, type_coerce
from sqlalchemy.orm import Session

from appliance.db.models import Alert, Call, LinkStatus, Posting
from appliance.db.types import Money

RECENT_LIMIT = 100

# What a person reads for each posting state or call disposition (domain.md, "Posting states").
STATE_LABELS = {
    "open": "Open",
    "retry": "Retry",
    "ok": "Posted",
    "failed": "Failed",
    "excluded": "Excluded",
    "refunded": "Refunded",
    "internal": "Internal",
    "incoming": "Incoming",
    # A chargeable call whose posting row is not there (yet): the daemon writes both in one transaction,
    # so seeing this for long means something is wrong.
    "charge": "Not posted",
    # Transfer legs: held until the call's last leg arrives, then charged with it (appliance.legs).
    "leg": "Leg (held)",
    "merged": "Leg (merged)",
}


def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state.capitalize())


@dataclass(frozen=True, slots=True)
class CallLine:
    id: int
    start: datetime
    extension: str
    room: str
    direction: str
    number: str  # dialled digits for outgoing calls, the caller ID for incoming ones
    duration: int
    call_class: str
    amount: Decimal
    currency: str
    state: str  # the charge posting's state if there is one, else the call's disposition
    posting_id: int | None

    @property
    def state_label(self) -> str:
        return state_label(self.state)


@dataclass(frozen=True, slots=True)
class PostingLine:
    id: int
    kind: str
    call_id: int | None
    room: str
    amount: Decimal
    currency: str
    state: str
    sequence: int | None
    answer_code: str
    answer_text: str
    attempts: int
    updated_at: datetime

    @property
    def state_label(self) -> str:
        return state_label(self.state)


def recent_calls(session: Session, limit: int = RECENT_LIMIT) -> list[CallLine]:
    """The ``limit`` most recent calls by start time, newest first, each with its charge's state."""
    charge = and_(Posting.call_id == Call.id, Posting.kind == "charge")
    number = case((Call.direction == "incoming", Call.caller), else_=Call.dialled)
    statement = (
        select(
            Call.id, Call.start, Call.extension, Call.room, Call.direction, number.label("number"),
            Call.duration, Call.call_class, Call.amount, Call.currency,
            func.coalesce(Posting.state, Call.disposition).label("state"), Posting.id.label("posting_id"),
        )
        # At most one charge per call (uq_postings_one_charge_per_call), so the join never repeats a call.
        .outerjoin(Posting, charge)
        .order_by(Call.start.desc(), Call.id.desc())
        .limit(limit)
    )
    return [CallLine(**row._asdict()) for row in session.execute(statement)]


def recent_postings(session: Session, limit: int = RECENT_LIMIT) -> list[PostingLine]:
    """The ``limit`` most recently changed postings (charges and refunds), newest first."""
    statement = (
        select(
            Posting.id, Posting.kind, Posting.call_id, Posting.room, Posting.amount, Posting.currency,
            Posting.state, Posting.sequence, Posting.answer_code, Posting.answer_text, Posting.attempts,
            Posting.updated_at,
        )
        .order_by(Posting.updated_at.desc(), Posting.id.desc())
        .limit(limit)
    )
    return [PostingLine(**row._asdict()) for row in session.execute(statement)]


# -- the dashboard -----------------------------------------------------------------------------------

QUEUE_STATES = ("open", "retry", "failed")


@dataclass(frozen=True, slots=True)
class Today:
    """Calls started and postings made in one site-local day."""

    calls: int
    outgoing: int
    incoming: int
    internal: int
    charges: int  # charge postings of today's calls, whatever their state
    charged: Decimal
    posted: Decimal  # of which the PMS confirmed (ok)
    refunds: int  # refund postings made today (written-off ones left out)
    refunded: Decimal


def today_summary(session: Session, low: datetime, high: datetime) -> Today:
    """Totals for calls that started in [low, high) and refunds made then."""
    def count_if(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    calls = session.execute(
        select(func.count(), count_if(Call.direction == "outgoing"), count_if(Call.direction == "incoming"),
               count_if(Call.direction == "internal"))
        .where(Call.start >= low, Call.start < high)).one()
    charges = session.execute(
        select(func.count(), func.coalesce(func.sum(Posting.amount), 0),
               type_coerce(func.coalesce(func.sum(case((Posting.state == "ok", Posting.amount), else_=0)), 0),
                           Money))
        .join(Call, Call.id == Posting.call_id)
        .where(Posting.kind == "charge", Call.start >= low, Call.start < high)).one()
    refunds = session.execute(
        select(func.count(), func.coalesce(func.sum(Posting.amount), 0))
        .where(Posting.kind == "refund", Posting.state != "excluded", Posting.created_at >= low,
               Posting.created_at < high, Posting.updated_at >= low)).one()
    return Today(calls=calls[0], outgoing=calls[1], incoming=calls[2], internal=calls[3], charges=charges[0],
                 charged=Decimal(charges[1]), posted=Decimal(charges[2]), refunds=refunds[0],
                 refunded=Decimal(refunds[1]))


def postings_by_state(session: Session, low: datetime, high: datetime) -> dict[str, int]:
    """How many postings made in [low, high) are in each state."""
    rows = session.execute(
        select(Posting.state, func.count())
        # updated_at >= created_at always: the redundant bound lets the updated_at index do the work.
        .where(Posting.created_at >= low, Posting.created_at < high, Posting.updated_at >= low)
        .group_by(Posting.state))
    return {state: count for state, count in rows}


def queue_counts(session: Session) -> dict[str, int]:
    """Postings waiting for the daemon (open, retry) or for a person (failed), however old."""
    rows = session.execute(select(Posting.state, func.count()).where(Posting.state.in_(QUEUE_STATES))
                           .group_by(Posting.state))
    counts = dict.fromkeys(QUEUE_STATES, 0)
    counts.update({state: count for state, count in rows})
    return counts


def open_alert_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Alert).where(Alert.acknowledged_at.is_(None))) or 0


def link_statuses(session: Session) -> list[LinkStatus]:
    return list(session.scalars(select(LinkStatus).order_by(LinkStatus.kind, LinkStatus.name)))


# -- the failed postings queue -----------------------------------------------------------------------

FAILED_LIMIT = 500


@dataclass(frozen=True, slots=True)
class FailedLine:
    id: int
    kind: str
    call_id: int | None
    start: datetime  # the call's start, or when a refund was made
    extension: str
    dialled: str
    room: str
    amount: Decimal
    currency: str
    reason: str
    answer_code: str
    answer_text: str
    attempts: int
    sequence: int | None
    updated_at: datetime
    note: str


def failed_postings(session: Session, limit: int = FAILED_LIMIT) -> list[FailedLine]:
    """Failed postings, oldest first (the order they were made), at most ``limit``."""
    statement = (
        select(Posting.id, Posting.kind, Posting.call_id, func.coalesce(Call.start, Posting.created_at),
               func.coalesce(Call.extension, ""), func.coalesce(Call.dialled, ""), Posting.room,
               Posting.amount, Posting.currency, Posting.reason, Posting.answer_code, Posting.answer_text,
               Posting.attempts, Posting.sequence, Posting.updated_at, Posting.note)
        .outerjoin(Call, Call.id == Posting.call_id)
        .where(Posting.state == "failed")
        .order_by(Posting.id)
        .limit(limit)
    )
    return [FailedLine(*row) for row in session.execute(statement)]


def escape_raw(raw: bytes) -> str:
    """A raw record as readable text: printable ASCII as is, everything else escaped (``\\r``, ``\\x02``).

    The PBX's encoding is the driver's business; showing bytes this way never guesses wrong and never
    lets a control character reach the page.
    """
    named = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x5C: "\\\\"}
    return "".join(named.get(byte) or (chr(byte) if 0x20 <= byte < 0x7F else f"\\x{byte:02x}")
                   for byte in raw)
