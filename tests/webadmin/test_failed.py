"""The failed postings queue: reason and PMS answer; re-post, mark posted, write off, one or many."""

from __future__ import annotations

from decimal import Decimal

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.db.models import AuditEntry, Posting, PostingEvent
from tests.helpers import make_config
from tests.webadmin.conftest import START, login_as, make_call, make_posting, post_form, table_rows


def _failed(db: Session, **fields: object) -> int:
    call = make_call(db, extension=str(fields.pop("extension", "2412")), dialled="0044207946000")
    values: dict[str, object] = dict(state="failed", attempts=2, sequence=9, sent_at=START, answer_code="NG",
                                     answer_text="guest not found",
                                     reason="PMS refused it, NG: guest not found",
                                     updated_at=START)
    values.update(fields)
    posting = make_posting(db, call, **values)
    db.commit()
    return posting.id


def _state(db: Session, posting_id: int) -> Posting:
    db.expire_all()
    posting = db.get(Posting, posting_id)
    assert posting is not None
    return posting


def test_the_queue_shows_reason_and_pms_answer(app: Flask, client: FlaskClient, db: Session) -> None:
    first = _failed(db)
    second = _failed(db, answer_code="", answer_text="", attempts=1, extension="2101", room="0101",
                     reason="no answer: check the folio before re-posting (timeout)", amount=Decimal("0.5"))
    make_posting(db, make_call(db), state="ok")
    db.commit()
    login_as(app, client, "admin")
    page = client.get("/failed/")
    assert page.status_code == 200
    assert "2 posting(s) the PMS refused" in page.text
    rows = table_rows(page.text, "failed")
    assert [row[1:] for row in rows] == [
        [str(first), "2024-05-01 12:00:00 ext. 2412 → 0044207946000", "0412", "3.40 USD",
         "PMS refused it, NG: guest not found", "NG guest not found", "2", "2024-05-01 12:00:00", ""],
        [str(second), "2024-05-01 12:00:00 ext. 2101 → 0044207946000", "0101", "0.50 USD",
         "no answer: check the folio before re-posting (timeout)", "none", "1", "2024-05-01 12:00:00", ""],
    ]


def test_repost_one(app: Flask, client: FlaskClient, db: Session) -> None:
    posting_id = _failed(db)
    login_as(app, client, "admin", "ivan")
    response = post_form(client, "/failed/", {"posting": [str(posting_id)], "action": "repost",
                                              "note": "guest checked in again"})
    assert response.status_code == 302
    posting = _state(db, posting_id)
    assert (posting.state, posting.sent_at, posting.next_attempt_at, posting.attempts, posting.note) == (
        "open", None, None, 2, "guest checked in again")
    event = db.scalars(select(PostingEvent).where(PostingEvent.posting_id == posting_id)).one()
    assert (event.from_state, event.to_state, event.actor, event.cause) == (
        "failed", "open", "ivan", "re-posted by ivan: guest checked in again")
    audit = db.scalars(select(AuditEntry).where(AuditEntry.action == "posting.repost")).one()
    assert (audit.username, audit.target, audit.detail) == ("ivan", f"posting:{posting_id}",
                                                            "guest checked in again")
    assert audit.before["answer"] == "NG" and audit.after["state"] == "open"
    page = client.get("/failed/").text
    assert f"1 posting(s) re-posted: {posting_id}." in page
    assert "No failed postings. Nothing to do." in page


def test_bulk_write_off_and_mark_posted(app: Flask, client: FlaskClient, db: Session) -> None:
    ids = [_failed(db) for _ in range(3)]
    login_as(app, client, "admin")
    post_form(client, "/failed/", {"posting": [str(ids[0]), str(ids[1])], "action": "write_off",
                                   "note": "installer's test calls"})
    post_form(client, "/failed/", {"posting": [str(ids[2])], "action": "mark_posted",
                                   "note": "booked by hand at the PMS"})
    assert [_state(db, i).state for i in ids] == ["excluded", "excluded", "ok"]
    assert [_state(db, i).note for i in ids] == ["installer's test calls"] * 2 + ["booked by hand at the PMS"]
    actions = db.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert [a for a in actions if a.startswith("posting.")] == ["posting.write_off", "posting.write_off",
                                                                "posting.mark_posted"]


def test_every_action_needs_a_note_and_a_selection(app: Flask, client: FlaskClient, db: Session) -> None:
    posting_id = _failed(db)
    login_as(app, client, "admin")
    no_note = post_form(client, "/failed/", {"posting": [str(posting_id)], "action": "repost", "note": " "})
    assert no_note.status_code == 400 and "Please write a note" in no_note.text
    nothing = post_form(client, "/failed/", {"action": "repost", "note": "x"})
    assert nothing.status_code == 400 and "Select at least one posting." in nothing.text
    bogus = post_form(client, "/failed/", {"posting": [str(posting_id)], "action": "delete", "note": "x"})
    assert bogus.status_code == 400 and "Not a valid choice" in bogus.text
    assert _state(db, posting_id).state == "failed"
    # What was ticked stays ticked after a refused submit.
    assert f'value="{posting_id}" id="posting-{posting_id}" checked' in no_note.text


def test_a_posting_dealt_with_meanwhile_is_reported(app: Flask, client: FlaskClient, db: Session) -> None:
    first, second = _failed(db), _failed(db)
    login_as(app, client, "admin")
    other = app.test_client()
    login_as(app, other, "admin", "colleague")
    post_form(other, "/failed/", {"posting": [str(first)], "action": "mark_posted", "note": "found on folio"})
    post_form(client, "/failed/", {"posting": [str(first), str(second)], "action": "repost", "note": "retry"})
    page = client.get("/failed/").text
    assert f"1 posting(s) re-posted: {second}." in page
    assert f"Not re-posted: posting {first}. Posting {first} is ok, not failed" in page
    assert _state(db, first).state == "ok" and _state(db, second).state == "open"


def test_only_admins_see_the_queue(app: Flask, client: FlaskClient, db: Session) -> None:
    posting_id = _failed(db)
    login_as(app, client, "frontdesk")
    assert client.get("/failed/").status_code == 403
    response = post_form(client, "/failed/", {"posting": [str(posting_id)], "action": "repost", "note": "x"})
    assert response.status_code == 403
    assert _state(db, posting_id).state == "failed"
    assert "Failed postings" not in client.get("/").text  # not in the navigation either


def test_reposting_a_call_held_unrated_prices_it_with_the_fixed_tariff(migrated_url: str) -> None:
    """The web admin passes its configuration to the re-post (tests/test_rating_held.py works the amount:
    125 s local, 0.10 per started minute after a 60 s first block = 0.30, +10 % = 0.33, +0.50 = 0.83)."""
    from appliance.db.session import make_engine, make_sessionmaker
    from tests.test_rating_held import FIXED, hold
    from webadmin import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "k", "DATABASE_URL": migrated_url,
                      "SITE_TIMEZONE": "America/New_York"}, config=make_config(migrated_url, tariff=FIXED))
    client = app.test_client()
    engine = make_engine(migrated_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        _, posting_id = hold(session, migrated_url)
    login_as(app, client, "admin", "ivan")
    response = post_form(client, "/failed/", {"posting": [str(posting_id)], "action": "repost",
                                              "note": "tariff fixed"})
    assert response.status_code == 302
    with sessions() as session:
        posting = session.get(Posting, posting_id)
        assert (posting.state, posting.amount) == ("open", Decimal("0.83"))
        assert posting.call.amount == Decimal("0.83")
    app.extensions["appliance_db"].engine.dispose()
    engine.dispose()
