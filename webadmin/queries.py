"""Read-only queries the screens share. Plain functions of a SQLAlchemy session: no Flask here, so the
reports, the CLI and tests can call them too.

Rows come back as frozen dataclasses holding only what a screen shows (no ORM objects escape), with
``Decimal`` amounts and aware UTC times; the templates convert to the site's zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from appliance.db.models import Call, Posting

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
