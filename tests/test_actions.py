"""appliance.actions: refunds and the failed-posting actions, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from appliance import actions
from appliance.db.models import AuditEntry, Extension, Posting, PostingEvent, Stay
from appliance.db.session import make_engine, make_sessionmaker
from appliance.outbox import Outbox
from tests.webadmin.conftest import START, make_call, make_posting

NOW = START + timedelta(hours=2)


@pytest.fixture
def sessions(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def db(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session:
        yield session


def _posted_call(db: Session, amount: str = "3.40", room: str = "0412", **fields: object) -> tuple[int, int]:
    call = make_call(db, amount=Decimal(amount), room=room)
    charge = make_posting(db, call, state="ok", sequence=7, answer_code="OK", stay_id=None,
                          destination="United Kingdom", **fields)
    db.commit()
    return call.id, charge.id


def _history(db: Session, posting_id: int) -> list[tuple[str, str, str, str]]:
    events = db.scalars(select(PostingEvent).where(PostingEvent.posting_id == posting_id)
                        .order_by(PostingEvent.id))
    return [(e.from_state, e.to_state, e.actor, e.cause) for e in events]


def _audit(db: Session) -> list[AuditEntry]:
    return list(db.scalars(select(AuditEntry).order_by(AuditEntry.id)))


# -- whole refunds -----------------------------------------------------------------------------------

def test_refund_call_refunds_the_charge_and_queues_a_negative_posting(
        db: Session, sessions: sessionmaker[Session]) -> None:
    call_id, charge_id = _posted_call(db)
    refund = actions.refund_call(db, call_id, reason="guest disputes the call", actor="frida", now=NOW)
    db.commit()
    db.expire_all()

    charge = db.get(Posting, charge_id)
    assert (charge.state, charge.updated_at, charge.note) == ("refunded", NOW, "guest disputes the call")
    assert _history(db, charge_id) == [("ok", "refunded", "frida",
                                        "refunded by frida: guest disputes the call")]
    assert (refund.kind, refund.refund_of_id, refund.call_id, refund.room, refund.link) == (
        "refund", charge_id, call_id, "0412", "pms")
    assert (refund.amount, refund.state, refund.sent_at, refund.created_by) == (Decimal("3.40"), "open", None,
                                                                                "frida")
    assert _history(db, refund.id) == [("", "open", "frida",
                                        "refund of the whole call, by frida: guest disputes the call")]
    [entry] = _audit(db)
    assert (entry.username, entry.action, entry.target, entry.detail) == (
        "frida", "posting.refund", f"call:{call_id}", "guest disputes the call")
    assert entry.before == {"posting": charge_id, "state": "ok", "amount": "3.40"}
    assert entry.after == {"posting": charge_id, "state": "refunded", "refund_posting": refund.id,
                           "room": "0412", "amount": "3.40"}

    # The daemon takes it like any posting, and sends it as a negative charge.
    command = Outbox(sessions, "pms").claim_next(NOW)
    assert command is not None
    assert (command.room, command.amount_minor, command.text) == ("0412", -340, "Refund United Kingdo")


def test_a_call_is_never_refunded_twice(db: Session) -> None:
    call_id, _ = _posted_call(db)
    actions.refund_call(db, call_id, reason="dispute", actor="frida", now=NOW)
    db.commit()
    with pytest.raises(actions.ActionError, match="refunded already"):
        actions.refund_call(db, call_id, reason="again", actor="frida", now=NOW)
    with pytest.raises(actions.ActionError, match="refunded already"):
        actions.refund_part(db, call_id, "1.00", reason="again", actor="frida", now=NOW)
    db.rollback()
    assert db.scalar(select(Posting.id).where(Posting.kind == "refund", Posting.id > 2)) is None


@pytest.mark.parametrize("state", ["open", "retry", "failed", "excluded"])
def test_only_a_posted_charge_can_be_refunded(db: Session, state: str) -> None:
    call = make_call(db)
    make_posting(db, call, state=state)
    db.commit()
    with pytest.raises(actions.ActionError,
                       match=f"Only a posted charge can be refunded; this one is {state}"):
        actions.refund_call(db, call.id, reason="dispute", actor="frida", now=NOW)


def test_refund_requests_that_make_no_sense(db: Session) -> None:
    free = make_call(db, amount=Decimal("0"), disposition="excluded")
    call_id, _ = _posted_call(db)
    with pytest.raises(actions.ActionError, match="never charged"):
        actions.refund_call(db, free.id, reason="x", actor="frida", now=NOW)
    with pytest.raises(actions.ActionError, match="There is no call 999999"):
        actions.refund_call(db, 999999, reason="x", actor="frida", now=NOW)
    for reason in ("", "   ", None):
        with pytest.raises(actions.ActionError, match="Please give a reason"):
            actions.refund_call(db, call_id, reason=reason, actor="frida", now=NOW)  # type: ignore[arg-type]
    with pytest.raises(actions.ActionError, match="too long"):
        actions.refund_call(db, call_id, reason="x" * 301, actor="frida", now=NOW)
    assert _audit(db) == []


# -- partial refunds ---------------------------------------------------------------------------------

def test_partial_refunds_add_up_to_the_charge_at_most(db: Session) -> None:
    call_id, charge_id = _posted_call(db, amount="10.00")
    first = actions.refund_part(db, call_id, Decimal("2.50"), reason="too long on hold", actor="frida",
                                now=NOW)
    db.commit()
    assert (first.amount, first.destination, first.refund_of_id, first.state) == (Decimal("2.50"), "REF0",
                                                                                   charge_id, "open")
    assert db.get(Posting, charge_id).state == "ok"  # part refunded: still posted
    with pytest.raises(actions.ActionError, match="more than the 7.50 that can still be refunded"):
        actions.refund_part(db, call_id, "7.51", reason="x", actor="frida", now=NOW)
    with pytest.raises(actions.ActionError, match="already has refunds of 2.50"):
        actions.refund_call(db, call_id, reason="x", actor="frida", now=NOW)
    assert actions.refund_state(db, db.get(Posting, charge_id)) == actions.RefundState(
        charge=Decimal("10"), refunded=Decimal("2.5"))

    last = actions.refund_part(db, call_id, "7.50", reason="manager's gesture", actor="max", now=NOW,
                               destination="GOODWILL")
    db.commit()
    db.expire_all()
    assert last.destination == "GOODWILL"
    assert db.get(Posting, charge_id).state == "refunded"
    assert _history(db, charge_id)[-1][:3] == ("ok", "refunded", "max")
    assert [e.action for e in _audit(db)] == ["posting.refund_part", "posting.refund_part"]
    assert _audit(db)[-1].after["state"] == "refunded"
    with pytest.raises(actions.ActionError, match="refunded already"):
        actions.refund_part(db, call_id, "0.01", reason="x", actor="frida", now=NOW)


def test_a_written_off_refund_does_not_count(db: Session) -> None:
    call_id, _ = _posted_call(db, amount="5.00")
    refund = actions.refund_part(db, call_id, "5.00", reason="first try", actor="frida", now=NOW)
    db.commit()
    db.expire_all()
    # Say the PMS refused it and IT wrote it off; the charge was not refunded on the folio after all.
    refund = db.get(Posting, refund.id)
    refund.state = "failed"
    db.commit()
    actions.write_off(db, refund.id, note="room moved, refund by hand at the PMS", actor="it", now=NOW)
    db.commit()
    charge = db.scalars(select(Posting).where(Posting.kind == "charge")).one()
    assert actions.refund_state(db, charge).refunded == 0


@pytest.mark.parametrize("amount, message", [
    ("0", "more than zero"), ("-1", "more than zero"), ("abc", "a number"), ("1.234", "at most 2 decimals"),
    ("NaN", "a number"), ("Infinity", "a number"), (None, "a number"),
])
def test_refund_amounts_are_checked(db: Session, amount: str | None, message: str) -> None:
    call_id, _ = _posted_call(db)
    with pytest.raises(actions.ActionError, match=message):
        actions.refund_part(db, call_id, amount, reason="x", actor="frida", now=NOW)  # type: ignore[arg-type]


# -- custom refunds to a room ------------------------------------------------------------------------

def _room(db: Session, room: str = "0412", occupied: bool = True) -> None:
    db.add(Extension(number="2412", category="guest", room=room, description=""))
    if occupied:
        db.add(Stay(room=room, guest_id="G1", name="Ms Example", checked_in_at=START - timedelta(days=1)))
    db.commit()


def test_refund_room_queues_a_refund_record_for_the_current_stay(db: Session) -> None:
    _room(db)
    refund = actions.refund_room(db, "0412", "12.00", reason="minibar complaint", actor="frida", now=NOW,
                                 link="pms", currency="EUR")
    db.commit()
    stay = db.scalars(select(Stay)).one()
    assert (refund.kind, refund.call_id, refund.refund_of_id, refund.room, refund.stay_id) == (
        "refund", None, None, "0412", stay.id)
    assert (refund.amount, refund.currency, refund.destination, refund.link, refund.state) == (
        Decimal("12.00"), "EUR", "REF0", "pms", "open")
    [entry] = _audit(db)
    assert (entry.action, entry.target, entry.after["amount"]) == ("posting.refund_room", "room:0412",
                                                                   "12.00")
    assert "Ms Example" not in str(entry.after) + entry.detail


def test_refund_room_refuses_unknown_vacant_or_malformed_rooms(db: Session) -> None:
    _room(db, occupied=False)
    kwargs = dict(reason="x", actor="frida", now=NOW, link="pms", currency="USD")
    with pytest.raises(actions.ActionError, match="Room 412 is not a room the appliance knows"):
        actions.refund_room(db, "412", "1.00", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(actions.ActionError, match="No guest is checked in to room 0412"):
        actions.refund_room(db, "0412", "1.00", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(actions.ActionError, match="as the PMS spells it"):
        actions.refund_room(db, "04'12 OR 1=1", "1.00", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(actions.ActionError, match="No PMS link"):
        actions.refund_room(db, "0412", "1.00", **{**kwargs, "link": ""})  # type: ignore[arg-type]
    refund = actions.refund_room(db, "0412", "1.00", allow_vacant=True, **kwargs)  # type: ignore[arg-type]
    assert refund.stay_id is None


# -- failed postings ---------------------------------------------------------------------------------

def _failed(db: Session, **fields: object) -> int:
    call = make_call(db)
    posting = make_posting(db, call, state="failed", attempts=3, sequence=41, sent_at=START,
                           answer_code="NG", answer_text="guest not found", reason="PMS refused it, NG",
                           **fields)
    db.commit()
    return posting.id


def test_repost_queues_the_posting_again_with_its_attempts(db: Session,
                                                           sessions: sessionmaker[Session]) -> None:
    posting_id = _failed(db, next_attempt_at=START)
    actions.repost(db, posting_id, note="guest checked in again, room fixed", actor="it", now=NOW)
    db.commit()
    db.expire_all()
    posting = db.get(Posting, posting_id)
    assert (posting.state, posting.sent_at, posting.next_attempt_at, posting.attempts) == ("open", None,
                                                                                           None, 3)
    assert posting.note == "guest checked in again, room fixed"
    assert _history(db, posting_id) == [("failed", "open", "it", "re-posted by it: guest checked in again, "
                                                                 "room fixed")]
    [entry] = _audit(db)
    assert (entry.action, entry.target, entry.detail) == ("posting.repost", f"posting:{posting_id}",
                                                          "guest checked in again, room fixed")
    assert entry.before["state"] == "failed" and entry.after["state"] == "open"

    command = Outbox(sessions, "pms").claim_next(NOW)
    assert command is not None and command.amount_minor == 340
    db.expire_all()
    assert db.get(Posting, posting_id).attempts == 4


@pytest.mark.parametrize("action, state, words", [
    (actions.mark_posted, "ok", "marked as posted by hand"),
    (actions.write_off, "excluded", "written off"),
])
def test_mark_posted_and_write_off(db: Session, action, state: str, words: str) -> None:  # type: ignore[no-untyped-def]
    posting_id = _failed(db)
    action(db, posting_id, note="checked the folio", actor="it", now=NOW)
    db.commit()
    db.expire_all()
    posting = db.get(Posting, posting_id)
    assert (posting.state, posting.note, posting.sent_at) == (state, "checked the folio", START)
    assert _history(db, posting_id) == [("failed", state, "it", f"{words} by it: checked the folio")]
    with pytest.raises(actions.ActionError, match=f"is {state}, not failed"):
        action(db, posting_id, note="again", actor="it", now=NOW)


def test_failed_actions_need_a_note_and_a_failed_posting(db: Session) -> None:
    posting_id = _failed(db)
    with pytest.raises(actions.ActionError, match="Please give a note"):
        actions.repost(db, posting_id, note=" ", actor="it", now=NOW)
    with pytest.raises(actions.ActionError, match="There is no posting 999999"):
        actions.repost(db, 999999, note="x", actor="it", now=NOW)
    assert db.get(Posting, posting_id).state == "failed"


def test_resolve_failed_in_bulk_reports_what_it_could_not_do(db: Session) -> None:
    first, second = _failed(db), _failed(db)
    call_id, charge_id = _posted_call(db)
    result = actions.resolve_failed(db, "write_off", [first, charge_id, second, first, 999999],
                                    note="test calls from the installer", actor="it", now=NOW)
    db.commit()
    assert result.done == [first, second]
    assert result.refused == [(charge_id, f"Posting {charge_id} is ok, not failed: someone dealt with it "
                                          "already."),
                              (999999, "There is no posting 999999.")]
    db.expire_all()
    assert [db.get(Posting, i).state for i in (first, second, charge_id)] == ["excluded", "excluded", "ok"]
    assert [e.target for e in _audit(db)] == [f"posting:{first}", f"posting:{second}"]
    with pytest.raises(actions.ActionError, match="Unknown action"):
        actions.resolve_failed(db, "delete", [first], note="x", actor="it", now=NOW)
    with pytest.raises(actions.ActionError, match="Select at least one"):
        actions.resolve_failed(db, "repost", [], note="x", actor="it", now=NOW)


# -- two people at once ------------------------------------------------------------------------------

def test_a_stale_page_cannot_refund_again(sessions: sessionmaker[Session]) -> None:
    with sessions() as seed:
        call_id, charge_id = _posted_call(seed)
    with sessions() as stale, sessions() as other:
        assert stale.get(Posting, charge_id).state == "ok"  # loaded before the other refund
        actions.refund_call(other, call_id, reason="first", actor="frida", now=NOW)
        other.commit()
        with pytest.raises(actions.ActionError, match="refunded already"):
            actions.refund_call(stale, call_id, reason="second", actor="max", now=NOW)


def test_two_simultaneous_refunds_of_one_call_make_one_refund(sessions: sessionmaker[Session]) -> None:
    with sessions() as seed:
        call_id, _ = _posted_call(seed)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def refund(actor: str) -> None:
        with sessions() as session:
            barrier.wait()
            try:
                actions.refund_call(session, call_id, reason="double click", actor=actor, now=NOW)
                session.commit()
                outcomes.append("refunded")
            except actions.ActionError:
                session.rollback()
                outcomes.append("refused")

    threads = [threading.Thread(target=refund, args=(name,)) for name in ("frida", "max")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["refunded", "refused"]
    with sessions() as check:
        assert len(check.scalars(select(Posting).where(Posting.kind == "refund")).all()) == 1
