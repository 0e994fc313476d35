"""Fill a database with many calls and postings, fast, for the web benchmarks (not for tests).

Core ``executemany`` inserts in batches through the models' column types (Money, UtcDateTime), so the
rows are exactly what the daemon would write. Calls spread over ``days`` days before ``end``; about 70 %
are charged (a charge posting, mostly ok), the rest internal, incoming or excluded; one call in 500 has a
refund.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import func, insert, select

from appliance.db.models import Call, Posting
from appliance.db.session import make_engine, upgrade

BATCH = 20_000
END = datetime(2026, 1, 31, 23, 0, tzinfo=timezone.utc)
ROOMS = [f"{floor}{room:02d}" for floor in range(1, 21) for room in range(1, 51)]  # 1000 rooms


def seed(url: str, calls: int, *, days: int = 730, end: datetime = END, quiet: bool = False) -> int:
    """Add calls until the database holds ``calls`` of them; returns how many were added."""
    upgrade(url)
    engine = make_engine(url)
    rng = random.Random(6)
    started = time.perf_counter()
    with engine.begin() as connection:
        have = connection.scalar(select(func.count()).select_from(Call)) or 0
        next_posting = (connection.scalar(select(func.max(Posting.id))) or 0) + 1
        next_call = (connection.scalar(select(func.max(Call.id))) or 0) + 1
    added = 0
    span = days * 86400
    while have + added < calls:
        size = min(BATCH, calls - have - added)
        call_rows, posting_rows = [], []
        for _ in range(size):
            call_id = next_call
            next_call += 1
            start = end - timedelta(seconds=rng.randrange(span))
            room = rng.choice(ROOMS)
            kind = rng.random()
            direction, disposition = "outgoing", "charge"
            if kind > 0.9:
                direction, disposition = "incoming", "incoming"
            elif kind > 0.8:
                direction, disposition = "internal", "internal"
            elif kind > 0.7:
                disposition = "excluded"
            amount = Decimal(rng.randrange(10, 2000)) / 100 if disposition == "charge" else Decimal(0)
            number = f"00{rng.choice(['44', '33', '49', '1'])}{rng.randrange(10**8, 10**9)}"
            call_rows.append(dict(
                id=call_id, journal_id=None, link="pbx", dedup_key=f"bench-{call_id}", received_at=start,
                start=start, duration=rng.randrange(5, 1800), ring=None, extension=f"2{room}", trunk="T1",
                dialled=number if direction != "incoming" else "",
                caller=number if direction == "incoming" else "",
                direction=direction, answered=True, account_code=rng.choice(["", "", "", "ACME", "SALES"]),
                pbx_call_id=str(call_id), transfer="",
                raw=f"{start:%m/%d %H:%M} 2{room} {number}\r\n".encode(),
                category="guest", room=room, stay_id=None, call_class="international",
                destination="United Kingdom",
                amount=amount, currency="USD", rating={"rule": "rated", "amount": str(amount)},
                disposition=disposition, reason=""))
            if disposition == "charge":
                state = rng.choices(["ok", "failed", "retry", "open", "refunded"], [96, 1, 1, 1, 1])[0]
                posting_rows.append(dict(
                    id=next_posting, call_id=call_id, kind="charge", refund_of_id=None, link="pms", room=room,
                    stay_id=None, amount=amount, currency="USD", destination="United Kingdom", state=state,
                    reason="", sequence=next_posting % 99_999_999 + 1, attempts=1, next_attempt_at=None,
                    sent_at=start, answered_at=start, answer_code="OK" if state == "ok" else "",
                    answer_text="", created_at=start, created_by="daemon", updated_at=start, note=""))
                next_posting += 1
                if state == "refunded":
                    posting_rows.append(dict(
                        id=next_posting, call_id=call_id, kind="refund", refund_of_id=next_posting - 1,
                        link="pms", room=room, stay_id=None, amount=amount, currency="USD",
                        destination="REF0",
                        state="ok", reason="", sequence=None, attempts=1, next_attempt_at=None, sent_at=start,
                        answered_at=start, answer_code="OK", answer_text="",
                        created_at=start + timedelta(hours=1),
                        created_by="frontdesk", updated_at=start + timedelta(hours=1), note="bench refund"))
                    next_posting += 1
        with engine.begin() as connection:
            connection.execute(insert(Call), call_rows)
            if posting_rows:
                connection.execute(insert(Posting), posting_rows)
        added += size
        if not quiet:
            print(f"  seeded {have + added:,} calls ({time.perf_counter() - started:.0f} s)", flush=True)
    engine.dispose()
    return added
