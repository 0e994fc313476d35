"""The pipeline and the outbox over a real database (SQLite and PostgreSQL): journal first, dedup,
routing by occupancy at call time, postings with their history, answers, and crash recovery."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from appliance.db.models import (
    Alert, Call, Extension, JournalEntry, Posting, PostingEvent, QuarantinedLine, Stay,
)
from appliance.db.session import make_engine, make_sessionmaker
from appliance.events import GuestChanged, GuestCheckedIn, GuestCheckedOut
from appliance.extensions import RELOAD_SECONDS
from appliance.occupancy import apply_guest_event, stay_at
from appliance.outbox import Outbox
from appliance.pipeline import Pipeline
from tests.helpers import CSV_SPEC, make_config

T0 = datetime(2026, 3, 14, 15, 0, tzinfo=timezone.utc)


@pytest.fixture
def env(migrated_url: str):
    config = make_config(migrated_url)
    engine = make_engine(migrated_url)
    sessions = make_sessionmaker(engine)
    pipeline = Pipeline(config, sessions, {"pbx": CSV_SPEC})
    yield config, sessions, pipeline
    engine.dispose()


def check_in(sessions, room: str, guest: str, at: datetime, share: bool = False) -> None:
    with sessions.begin() as session:
        apply_guest_event(session, GuestCheckedIn(room=room, guest_id=guest, name="Guest", share=share), at)


def line(start: datetime, duration: int, extension: str, number: str, direction: str = "outgoing",
         answered: int = 1) -> bytes:
    return f"{start.isoformat()},{duration},{extension},{number},{direction},{answered}".encode()


def count(sessions, model) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_charged_call_becomes_an_open_posting_with_explained_amount(env) -> None:
    config, sessions, pipeline = env
    check_in(sessions, "101", "G1", T0 - timedelta(days=1))
    result = pipeline.ingest("pbx", [line(T0, 125, "101", "912125551234")], T0 + timedelta(minutes=3))
    assert (result.journaled, result.calls, result.postings) == (1, 1, 1)
    with sessions() as session:
        call = session.scalars(select(Call)).one()
        posting = session.scalars(select(Posting)).one()
        history = session.scalars(select(PostingEvent)).all()
    # local: 125 s billed as 3 started minutes at 0.10 = 0.30; +10 % = 0.33; +0.50 = 0.83
    assert call.call_class == "local" and call.disposition == "charge"
    assert call.amount == Decimal("0.83") and call.rating["billed_seconds"] == 180
    assert (posting.room, posting.amount, posting.state, posting.call_id) == ("101", Decimal("0.83"), "open", call.id)
    assert [(h.from_state, h.to_state) for h in history] == [("", "open")]


def test_same_record_twice_is_stored_once(env) -> None:
    _, sessions, pipeline = env
    check_in(sessions, "101", "G1", T0 - timedelta(days=1))
    record = line(T0, 60, "101", "9011442071234567")
    first = pipeline.ingest("pbx", [record, record], T0)
    again = pipeline.ingest("pbx", [record], T0 + timedelta(hours=1))
    assert (first.calls, first.duplicates, again.calls, again.duplicates) == (1, 1, 0, 1)
    assert count(sessions, Call) == 1 and count(sessions, Posting) == 1
    assert count(sessions, JournalEntry) == 3  # every arrival is journaled, even a duplicate


@pytest.mark.parametrize(
    ("record", "disposition", "reason"),
    [
        (line(T0, 60, "101", "102", "internal"), "internal", "internal call"),
        (line(T0, 60, "101", "2125551234", "incoming"), "incoming", "incoming call"),
        (line(T0, 60, "101", "912125551234", answered=0), "excluded", "not answered"),
        (line(T0, 5, "101", "912125551234"), "excluded", "5 s is within the grace time of 10 s"),
        (line(T0, 60, "150", "912125551234"), "excluded", "extension category lobby is not charged"),
        (line(T0, 60, "102", "912125551234"), "excluded", "room 102 was vacant at the time of the call"),
        (line(T0, 60, "101", "918005551234"), "excluded", "free calls are not charged"),
        (line(T0, 60, "101", "911"), "excluded", "emergency calls are not charged"),
    ],
)
def test_calls_that_are_never_posted_say_why(env, record: bytes, disposition: str, reason: str) -> None:
    _, sessions, pipeline = env
    check_in(sessions, "101", "G1", T0 - timedelta(days=1))
    pipeline.ingest("pbx", [record], T0)
    with sessions() as session:
        call = session.scalars(select(Call)).one()
    assert (call.disposition, call.reason) == (disposition, reason)
    assert count(sessions, Posting) == 0


def test_the_extensions_table_routes_calls_and_an_edit_routes_the_next_batch(env) -> None:
    _, sessions, pipeline = env
    check_in(sessions, "101", "G1", T0 - timedelta(days=1))
    check_in(sessions, "102", "G2", T0 - timedelta(days=1))
    with sessions.begin() as session:  # the table, not the file's 101-120 range: 102 is not listed
        session.add(Extension(number="101", category="guest", room="101"))
    pipeline.ingest("pbx", [line(T0, 60, "101", "912125551234"), line(T0, 60, "102", "912125551234")], T0)
    with sessions.begin() as session:  # the web admin makes 101 a lobby phone
        session.get(Extension, "101").category = "lobby"
    soon, later = T0 + timedelta(seconds=1), T0 + timedelta(seconds=RELOAD_SECONDS)
    pipeline.ingest("pbx", [line(soon, 61, "101", "912125551234")], soon)
    pipeline.ingest("pbx", [line(later, 62, "101", "912125551234")], later)
    with sessions() as session:
        routed = [(c.extension, c.disposition, c.reason) for c in session.scalars(select(Call).order_by(Call.id))]
    assert routed == [
        ("101", "charge", ""),
        ("102", "excluded", "extension category unknown is not charged"),
        ("101", "charge", ""),  # read again at most every RELOAD_SECONDS
        ("101", "excluded", "extension category lobby is not charged"),
    ]


def test_garbage_is_quarantined_and_the_stream_continues(env) -> None:
    _, sessions, pipeline = env
    check_in(sessions, "101", "G1", T0 - timedelta(days=1))
    result = pipeline.ingest("pbx", [b"\x00\xffnoise", line(T0, 60, "101", "912125551234")], T0)
    assert (result.quarantined, result.calls) == (1, 1)
    with sessions() as session:
        quarantined = session.scalars(select(QuarantinedLine)).one()
    assert quarantined.raw == b"\x00\xffnoise" and quarantined.reason.startswith("not a test CSV record")


def test_journaled_but_unprocessed_records_are_processed_later(env) -> None:
    _, sessions, pipeline = env
    check_in(sessions, "101", "G1", T0 - timedelta(days=1))
    pipeline.journal("pbx", [line(T0, 60, "101", "912125551234")], T0)  # a crash right after the commit
    assert count(sessions, Call) == 0
    result = pipeline.process_pending(T0 + timedelta(minutes=1))
    assert result.calls == 1 and count(sessions, Posting) == 1


def test_call_is_charged_to_the_stay_that_held_the_room_at_call_time(env) -> None:
    _, sessions, _pipeline = env
    check_in(sessions, "101", "G1", T0 - timedelta(days=2))
    with sessions.begin() as session:
        apply_guest_event(session, GuestChanged(room="105", guest_id="G1", old_room="101"), T0 - timedelta(days=1))
    check_in(sessions, "101", "G2", T0 - timedelta(hours=1))
    with sessions() as session:
        assert stay_at(session, "101", T0 - timedelta(days=1, hours=2)).guest_id == "G1"
        assert stay_at(session, "101", T0).guest_id == "G2"
        assert stay_at(session, "105", T0).guest_id == "G1"


def test_guest_events_are_idempotent_and_sharers_kept(env) -> None:
    _, sessions, _ = env
    for _ in range(3):
        check_in(sessions, "101", "G1", T0)
    check_in(sessions, "101", "G2", T0 + timedelta(minutes=5), share=True)
    with sessions() as session:
        assert [s.guest_id for s in session.scalars(select(Stay).where(Stay.checked_out_at.is_(None)))] == ["G1", "G2"]
    with sessions.begin() as session:
        apply_guest_event(session, GuestCheckedOut(room="101", guest_id="G2"), T0 + timedelta(hours=1))
    with sessions() as session:
        assert [s.guest_id for s in session.scalars(select(Stay).where(Stay.checked_out_at.is_(None)))] == ["G1"]


# A tariff with an international rate only: a local call finds no rate and no default (issue 3).
BROKEN_TARIFF = {"classes": {"international": {"per_minute": "1.20"}}}
NO_RATE = "no rate for local calls and plan main version base has no default rate"


@pytest.fixture
def broken(migrated_url: str):
    engine = make_engine(migrated_url)
    sessions = make_sessionmaker(engine)
    yield sessions, Pipeline(make_config(migrated_url, tariff=BROKEN_TARIFF), sessions, {"pbx": CSV_SPEC})
    engine.dispose()


def test_unrated_chargeable_call_is_held_as_a_failed_posting_of_zero(broken) -> None:
    sessions, pipeline = broken
    check_in(sessions, "101", "G1", T0 - timedelta(days=1))
    result = pipeline.ingest("pbx", [line(T0, 125, "101", "912125551234"),
                                     line(T0, 60, "101", "9011442071234567")], T0)
    assert (result.calls, result.postings) == (2, 2)
    with sessions() as session:
        unrated, rated = session.scalars(select(Call).order_by(Call.id)).all()
        held = session.scalars(select(Posting).where(Posting.call_id == unrated.id)).one()
        history = session.scalars(select(PostingEvent).where(PostingEvent.posting_id == held.id)).all()
        alert = session.scalars(select(Alert)).one()
        open_state = session.scalar(select(Posting.state).where(Posting.call_id == rated.id))
    assert (unrated.disposition, unrated.amount, unrated.reason) == ("charge", Decimal("0"), f"not rated: {NO_RATE}")
    assert unrated.rating["rule"] == "not rated" and unrated.room == "101" and unrated.stay_id is not None
    assert (held.state, held.amount, held.reason, held.room) == ("failed", Decimal("0"), f"not rated: {NO_RATE}",
                                                                  "101")
    assert [(h.from_state, h.to_state, h.cause) for h in history] == [("", "failed", f"not rated: {NO_RATE}")]
    assert (alert.rule, alert.call_id, alert.subject) == ("unrated_call", unrated.id, "101")
    # The international call in the same batch is rated and queued as usual.
    assert (rated.disposition, open_state) == ("charge", "open")


def test_held_unrated_posting_is_never_sent(broken) -> None:
    sessions, pipeline = broken
    check_in(sessions, "101", "G1", T0 - timedelta(days=1))
    pipeline.ingest("pbx", [line(T0, 125, "101", "912125551234")], T0)
    outbox = Outbox(sessions, "pms")
    assert outbox.claim_next(T0 + timedelta(hours=1)) is None
    with sessions() as session:
        assert session.scalar(select(Posting.sequence)) is None and session.scalar(select(Posting.sent_at)) is None


def test_unrated_call_that_would_not_be_charged_anyway_is_excluded_with_the_alert(broken) -> None:
    sessions, pipeline = broken
    pipeline.ingest("pbx", [line(T0, 125, "102", "912125551234"), line(T0, 61, "150", "912125551234")], T0)
    with sessions() as session:
        calls = session.scalars(select(Call).order_by(Call.id)).all()
        alerts = session.scalars(select(Alert.call_id).order_by(Alert.id)).all()
    assert [(c.disposition, c.reason) for c in calls] == [
        ("excluded", "room 102 was vacant at the time of the call"),
        ("excluded", "extension category lobby is not charged"),
    ]
    assert count(sessions, Posting) == 0
    # Neither is charged, but the tariff still has a hole: each raises its alert.
    assert alerts == [calls[0].id, calls[1].id]


def _one_posting(env) -> tuple[Outbox, object]:
    _, sessions, pipeline = env
    check_in(sessions, "101", "G1", T0 - timedelta(days=1))
    pipeline.ingest("pbx", [line(T0, 60, "101", "912125551234")], T0)
    return Outbox(sessions, "pms"), sessions


def test_claim_assigns_persistent_sequence_and_ok_answer_closes(env) -> None:
    outbox, sessions = _one_posting(env)
    command = outbox.claim_next(T0)
    assert command.sequence == 1 and command.room == "101" and command.amount_minor == 61
    assert outbox.claim_next(T0) is None  # one sent posting is not claimed twice
    posting = outbox.record_answer(1, "OK", "", "PA|RN101|ASOK|P#1|", T0 + timedelta(seconds=1))
    assert posting.state == "ok"
    with sessions() as session:
        events = [(e.from_state, e.to_state, e.cause) for e in session.scalars(select(PostingEvent))]
    assert events == [("", "open", "call rated and routed"), ("open", "open", "sent with P# 1"),
                      ("open", "ok", "OK: posted")]


def test_unanswered_posting_fails_and_is_never_resent(env) -> None:
    outbox, _ = _one_posting(env)
    command = outbox.claim_next(T0)
    posting = outbox.record_unanswered(command.sequence, "no answer within 30 s", T0 + timedelta(seconds=30))
    assert posting.state == "failed" and posting.reason.startswith("no answer: check the folio before re-posting")
    assert outbox.claim_next(T0 + timedelta(hours=1)) is None


def test_retry_answer_waits_then_goes_with_a_new_sequence(env) -> None:
    outbox, _ = _one_posting(env)
    first = outbox.claim_next(T0)
    posting = outbox.record_answer(first.sequence, "RY", "busy", "", T0)
    assert posting.state == "retry" and posting.next_attempt_at == T0 + timedelta(seconds=30)
    assert outbox.claim_next(T0 + timedelta(seconds=29)) is None
    second = outbox.claim_next(T0 + timedelta(seconds=30))
    assert second.sequence == first.sequence + 1
    assert outbox.record_answer(first.sequence, "OK", "", "", T0) is None  # a late answer to the old P#


def test_refused_posting_keeps_the_pms_text(env) -> None:
    outbox, _ = _one_posting(env)
    command = outbox.claim_next(T0)
    posting = outbox.record_answer(command.sequence, "NG", "INVALID ROOM", "", T0)
    assert posting.state == "failed"
    assert posting.reason == "PMS refused it, NG: guest not found (INVALID ROOM)"


def test_restart_with_a_posting_in_flight_fails_it(env) -> None:
    outbox, _ = _one_posting(env)
    outbox.claim_next(T0)
    assert outbox.recover_in_flight(T0 + timedelta(minutes=1)) == 1
    assert outbox.claim_next(T0 + timedelta(minutes=2)) is None


def test_sequence_survives_a_new_outbox_and_wraps(env) -> None:
    from appliance.db.models import PmsCounter

    outbox, sessions = _one_posting(env)
    with sessions.begin() as session:
        session.add(PmsCounter(link="pms", next_sequence=99_999_999, resync_wanted=False))
    command = Outbox(sessions, "pms").claim_next(T0)
    assert command.sequence == 99_999_999
    with sessions() as session:
        assert session.get(PmsCounter, "pms").next_sequence == 1


def test_answer_and_next_claim_commit_together(env) -> None:
    _, sessions, pipeline = env
    check_in(sessions, "101", "G1", T0 - timedelta(days=1))
    pipeline.ingest("pbx", [line(T0, 60, "101", "912125551234"), line(T0, 61, "101", "912125551235")], T0)
    outbox = Outbox(sessions, "pms")
    first = outbox.claim_next(T0)
    posting, second = outbox.answer_and_claim(first.sequence, "OK", "", "", T0 + timedelta(seconds=1))
    assert posting.state == "ok" and second.sequence == first.sequence + 1
    with sessions() as session:
        sent = session.scalars(select(Posting).where(Posting.sent_at.is_not(None), Posting.state == "open")).all()
    assert [p.sequence for p in sent] == [second.sequence]
