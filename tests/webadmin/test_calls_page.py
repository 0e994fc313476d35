"""The "Recent calls" page and the queries behind it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.webadmin.conftest import START, AuthActions, make_call, make_posting, make_user, table_rows
from webadmin import format_money
from webadmin.queries import recent_calls, recent_postings, state_label


def _seed(db: Session) -> None:
    """Six calls, one per way a call can end up, a minute apart (the last one is the newest)."""
    minute = timedelta(minutes=1)
    posted = make_call(db, start=START, room="0412", amount=Decimal("3.40"))
    charge = make_posting(db, posted, state="ok", sequence=17, answer_code="OK", answer_text="posted",
                 updated_at=START + 10 * minute)
    failed = make_call(db, start=START + minute, extension="2101", room="0101", dialled="5551234",
                       call_class="local", amount=Decimal("0.5"))
    make_posting(db, failed, state="failed", sequence=18, answer_code="UR", answer_text="unknown room",
                 updated_at=START + 11 * minute)
    make_call(db, start=START + 2 * minute, dialled="2101", call_class="internal", amount=Decimal("0"),
              disposition="internal")
    make_call(db, start=START + 3 * minute, direction="incoming", dialled="", caller="+15557654321",
              call_class="unknown", amount=Decimal("0"), disposition="incoming", duration=3725)
    make_call(db, start=START + 4 * minute, dialled="18005550100", call_class="free", amount=Decimal("0"),
              disposition="excluded")
    waiting = make_call(db, start=START + 5 * minute, amount=Decimal("12.3456"))
    make_posting(db, waiting, state="retry", updated_at=START + 12 * minute)
    make_posting(db, None, kind="refund", refund_of_id=charge.id, room="0412", amount=Decimal("-3.40"),
                 state="open", updated_at=START + 13 * minute)
    db.commit()


def test_recent_calls_page_shows_states_and_amounts(app: Flask, client: FlaskClient, auth: AuthActions,
                                                    db: Session) -> None:
    make_user(app, "alice", role="viewer")
    _seed(db)
    auth.login()
    response = client.get("/calls/")
    assert response.status_code == 200
    calls = table_rows(response.text, "calls")
    # Start (Europe/Berlin, UTC+2 in May), extension, room, number, duration, class, amount, state.
    assert calls == [
        ["2024-05-01 12:05:00", "2412", "0412", "0044207946000", "2:05", "international", "12.3456 USD",
         "Retry"],
        ["2024-05-01 12:04:00", "2412", "0412", "18005550100", "2:05", "free", "0.00 USD", "Excluded"],
        ["2024-05-01 12:03:00", "2412", "0412", "from +15557654321", "1:02:05", "unknown", "0.00 USD",
         "Incoming"],
        ["2024-05-01 12:02:00", "2412", "0412", "2101", "2:05", "internal", "0.00 USD", "Internal"],
        ["2024-05-01 12:01:00", "2101", "0101", "5551234", "2:05", "local", "0.50 USD", "Failed"],
        ["2024-05-01 12:00:00", "2412", "0412", "0044207946000", "2:05", "international", "3.40 USD",
         "Posted"],
    ]
    postings = table_rows(response.text, "postings")
    # Posting, room, amount, state, P#, PMS answer, updated; the most recently changed first.
    assert [row[1:] for row in postings] == [
        ["0412", "-3.40 USD", "Open", "", "", "2024-05-01 12:13:00"],
        ["0412", "12.3456 USD", "Retry", "", "", "2024-05-01 12:12:00"],
        ["0101", "0.50 USD", "Failed", "18", "UR unknown room", "2024-05-01 12:11:00"],
        ["0412", "3.40 USD", "Posted", "17", "OK posted", "2024-05-01 12:10:00"],
    ]
    assert postings[0][0].endswith("refund")


def test_empty_tables_say_so(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    make_user(app, "alice")
    auth.login()
    page = client.get("/calls/").text
    assert "No calls yet." in page and "No postings yet." in page


def test_calls_page_needs_sign_in(client: FlaskClient) -> None:
    for path in ("/", "/calls/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/auth/login")


def test_recent_calls_query_limits_and_orders(db: Session) -> None:
    for minute in range(5):
        make_call(db, start=START + timedelta(minutes=minute), extension=f"20{minute}")
    db.commit()
    lines = recent_calls(db, limit=3)
    assert [line.extension for line in lines] == ["204", "203", "202"]
    assert all(line.state == "charge" and line.posting_id is None for line in lines)
    assert lines[0].state_label == "Not posted"
    assert lines[0].amount == Decimal("3.40") and lines[0].start == START + timedelta(minutes=4)


def test_recent_calls_use_the_charge_state_not_a_refund(db: Session) -> None:
    call = make_call(db)
    charge = make_posting(db, call, state="refunded")
    make_posting(db, call, kind="refund", refund_of_id=charge.id, amount=Decimal("-3.40"), state="ok")
    db.commit()
    [line] = recent_calls(db)
    assert line.state == "refunded" and line.posting_id == charge.id
    assert [p.kind for p in recent_postings(db)] == ["refund", "charge"]


def test_labels_and_money_format() -> None:
    assert state_label("ok") == "Posted"
    assert state_label("something-new") == "Something-new"
    assert format_money(Decimal("3.4000")) == "3.40"
    assert format_money(Decimal("1234.5")) == "1,234.50"
    assert format_money(Decimal("0.1250")) == "0.125"
    assert format_money(Decimal("-3.40")) == "-3.40"
