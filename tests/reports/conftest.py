"""A hand-built day of calls and postings (2024-03-05 in America/New_York, UTC-5) for the report tests.

The expected figures in the tests are worked out by hand from the table below, not by the code under test.

    #   local start   dur  ext  cat    trunk  dir       class          dest           amount
    a   00:00:00       10  102  guest  T2     outgoing  local          US              0.10   (first second of the day)
    b   09:00:00      120  101  guest  T1     outgoing  local          US              0.70
    c   09:01:00      300  101  guest  T1     outgoing  international  GB              6.50
    d   10:00:00       60  102  guest  T2     internal  internal       -               0
    e   14:30:00     1800  102  guest  T2     outgoing  national       US              3.25   (ends 15:00:00)
    f   14:45:00      600  150  lobby  T1     outgoing  national       US              0      (staff plan)
    g   14:50:00      900  101  guest  T1     incoming  unknown        -               0      (ends 15:05)
    h   15:10:00     3000  200  admin  T2     outgoing  international  DE             12.3456 (ends 16:00)
    i   20:00:00       60  103  guest  T2     outgoing  premium        +881612345678   9.99   (no country)
    -   03-04 23:59:59 30  101  guest  T1     outgoing  local          US              1.00   (day before: out)
    -   03-06 01:00:00 60  101  guest  T1     outgoing  local          US              2.00   (day after: out)

Extensions: 200 is described "Front office"; the others have no description.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from appliance.db.models import Call, Extension, Posting
from appliance.db.session import make_engine, make_sessionmaker

TZ = ZoneInfo("America/New_York")
DAY = date(2024, 3, 5)

CALLS = [
    # (local start, duration, extension, category, trunk, direction, class, destination, amount)
    ("2024-03-05 00:00:00", 10, "102", "guest", "T2", "outgoing", "local", "US", "0.10"),
    ("2024-03-05 09:00:00", 120, "101", "guest", "T1", "outgoing", "local", "US", "0.70"),
    ("2024-03-05 09:01:00", 300, "101", "guest", "T1", "outgoing", "international", "GB", "6.50"),
    ("2024-03-05 10:00:00", 60, "102", "guest", "T2", "internal", "internal", "", "0"),
    ("2024-03-05 14:30:00", 1800, "102", "guest", "T2", "outgoing", "national", "US", "3.25"),
    ("2024-03-05 14:45:00", 600, "150", "lobby", "T1", "outgoing", "national", "US", "0"),
    ("2024-03-05 14:50:00", 900, "101", "guest", "T1", "incoming", "unknown", "", "0"),
    ("2024-03-05 15:10:00", 3000, "200", "admin", "T2", "outgoing", "international", "DE", "12.3456"),
    ("2024-03-05 20:00:00", 60, "103", "guest", "T2", "outgoing", "premium", "+881612345678", "9.99"),
    ("2024-03-04 23:59:59", 30, "101", "guest", "T1", "outgoing", "local", "US", "1.00"),
    ("2024-03-06 01:00:00", 60, "101", "guest", "T1", "outgoing", "local", "US", "2.00"),
]

POSTINGS = [
    # (room, kind, state, amount, local answered_at)
    ("101", "charge", "ok", "6.50", "2024-03-05 10:00:00"),
    ("101", "charge", "refunded", "0.70", "2024-03-05 09:05:00"),
    ("101", "refund", "ok", "0.70", "2024-03-05 11:00:00"),
    ("102", "charge", "ok", "3.25", "2024-03-05 15:00:00"),
    ("102", "charge", "failed", "1.00", "2024-03-05 15:30:00"),
    ("103", "charge", "ok", "9.99", "2024-03-06 00:30:00"),
    ("103", "refund", "open", "2.00", None),
    ("104", "refund", "ok", "1.50", "2024-03-05 23:59:59"),
]


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def add_call(session: Session, n: int, start: datetime, duration: int, extension: str = "101",
             category: str = "guest", trunk: str = "T1", direction: str = "outgoing", call_class: str = "local",
             destination: str = "US", amount: str = "0") -> None:
    session.add(Call(link="pbx", dedup_key=f"k{n}", received_at=start, start=start, duration=duration,
                     extension=extension, trunk=trunk, direction=direction, answered=True, raw=b"",
                     category=category, room=extension if category == "guest" else "", call_class=call_class,
                     destination=destination, amount=Decimal(amount), currency="USD", rating={},
                     disposition="charge" if direction == "outgoing" else direction))


@pytest.fixture
def sessions(migrated_url: str) -> Iterator:
    engine = make_engine(migrated_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def seeded(sessions) -> Iterator[Session]:
    with sessions.begin() as session:
        session.add_all([Extension(number="101", category="guest", room="101"),
                         Extension(number="102", category="guest", room="102"),
                         Extension(number="103", category="guest", room="103"),
                         Extension(number="150", category="lobby"),
                         Extension(number="200", category="admin", description="Front office")])
        for n, (start, duration, ext, cat, trunk, direction, cls, dest, amount) in enumerate(CALLS):
            add_call(session, n, local(start), duration, ext, cat, trunk, direction, cls, dest, amount)
        for room, kind, state, amount, answered in POSTINGS:
            moment = local(answered) if answered else local("2024-03-05 12:00:00")
            session.add(Posting(kind=kind, link="pms", room=room, amount=Decimal(amount), currency="USD",
                                state=state, created_at=moment, updated_at=moment,
                                answered_at=local(answered) if answered else None))
    with sessions() as session:
        yield session
