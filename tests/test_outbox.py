"""appliance.outbox on SQLite and PostgreSQL: windowed claims, batched outcomes, recovery after a kill
(fias.md §8.1 write-ahead: a posting that may have reached the PMS is never sent again; one that cannot
have is queued again), and late answers matched by P# alone (FIAS 2.20.23 p.85: P# is the only key)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from appliance import actions
from appliance.db.models import PmsCounter, Posting, PostingEvent
from appliance.db.session import make_engine, make_sessionmaker
from appliance.outbox import MAX_SEQUENCE, PIPELINE_DEPTH, Answer, Outbox, Unanswered
from appliance.pipeline import add_posting

T0 = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)


@pytest.fixture
def sessions(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _queue(sessions: sessionmaker[Session], count: int) -> list[int]:
    with sessions.begin() as session:
        ids = []
        for index in range(count):
            posting = add_posting(session, call=None, link="pms", room=str(101 + index), stay_id=None,
                                  amount=Decimal("1.25"), currency="USD", now=T0, cause="test",
                                  destination="44207")
            session.flush()
            ids.append(posting.id)
        return ids


def _postings(sessions: sessionmaker[Session]) -> list[Posting]:
    with sessions() as session:
        return list(session.scalars(select(Posting).order_by(Posting.id)))


def _history(sessions: sessionmaker[Session], posting_id: int) -> list[tuple[str, str, str]]:
    with sessions() as session:
        return [(e.from_state, e.to_state, e.cause) for e in session.scalars(
            select(PostingEvent).where(PostingEvent.posting_id == posting_id).order_by(PostingEvent.id))]


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# ---------------------------------------------------------------- windows and batches

def test_a_window_is_claimed_in_one_commit_with_consecutive_p_numbers(sessions) -> None:
    _queue(sessions, 5)
    outbox = Outbox(sessions, "pms")
    commands = outbox.settle(T0, claim=3).commands
    assert [c.sequence for c in commands] == [1, 2, 3]
    assert [c.room for c in commands] == ["101", "102", "103"]
    assert all(c.amount_minor == 125 and c.text == "Call 44207" for c in commands)
    claimed = [(p.sequence, p.sent_at is not None, p.attempts) for p in _postings(sessions)]
    assert claimed == [(1, True, 1), (2, True, 1), (3, True, 1), (None, False, 0), (None, False, 0)]
    assert [c.sequence for c in outbox.settle(T0, claim=10).commands] == [4, 5]  # never the same twice
    assert outbox.settle(T0, claim=10).commands == []


def test_answers_and_timeouts_settle_in_one_batch_and_keep_the_real_send_time(sessions) -> None:
    _queue(sessions, 3)
    outbox = Outbox(sessions, "pms")
    outbox.settle(T0, claim=3)
    settled = outbox.settle(_at(40), items=[
        Answer(1, "OK", "", "PA|ASOK|P#1|", _at(0.002), sent_at=_at(0.001)),
        Answer(2, "RY", "busy", "PA|ASRY|P#2|", _at(0.004), sent_at=_at(0.003)),
        Unanswered(3, "no answer within 30 s", _at(30.005)),
    ])
    assert [(o.sequence, o.state, o.changed) for o in settled.outcomes] == [
        (1, "ok", True), (2, "retry", True), (3, "failed", True)]
    first, second, third = _postings(sessions)
    assert (first.state, first.sent_at, first.answered_at, first.answer_code) == (
        "ok", _at(0.001), _at(0.002), "OK")
    assert (second.state, second.sent_at, second.next_attempt_at) == ("retry", None, _at(30.004))
    assert third.state == "failed" and third.reason.startswith("no answer: check the folio before re-posting")
    assert _history(sessions, first.id)[-1] == ("open", "ok", "OK: posted")
    # The retry goes again later with a fresh P#; the failed one never does.
    again = outbox.settle(_at(31), claim=10).commands
    assert [(c.sequence, c.room) for c in again] == [(4, "102")]
    assert _history(sessions, second.id)[-1] == ("retry", "open", "sent again with P# 4")


def test_given_back_postings_are_queued_again_with_a_new_p_number(sessions) -> None:
    _queue(sessions, 3)
    outbox = Outbox(sessions, "pms")
    outbox.settle(T0, claim=3)
    assert outbox.settle(_at(1), release=[2, 3], release_reason="the link went down first").released == 2
    states = [(p.sequence, p.sent_at is not None, p.attempts) for p in _postings(sessions)]
    assert states == [(1, True, 1), (2, False, 0), (3, False, 0)]
    assert _history(sessions, _postings(sessions)[1].id)[-1] == (
        "open", "open", "P# 2 not sent: the link went down first")
    assert [c.sequence for c in outbox.settle(_at(2), claim=5).commands] == [4, 5]


def test_recovery_fails_only_what_may_have_been_sent(sessions) -> None:
    """Killed with a claimed window: P# 1-2 answered, 3 on the wire, 4-5 maybe (their answers not yet
    committed), the rest of the window surely unsent. The first PIPELINE_DEPTH without an outcome are
    failed; the others go back to the queue and later leave with new P#s."""
    _queue(sessions, 12)
    outbox = Outbox(sessions, "pms")
    outbox.settle(T0, claim=12)
    outbox.settle(_at(1), items=[Answer(1, "OK", at=_at(0.5)), Answer(2, "OK", at=_at(0.6))])
    after_kill = Outbox(sessions, "pms")
    assert after_kill.recover_in_flight(_at(60)) == PIPELINE_DEPTH
    postings = _postings(sessions)
    assert [p.state for p in postings[:2 + PIPELINE_DEPTH]] == ["ok", "ok"] + ["failed"] * PIPELINE_DEPTH
    rest = postings[2 + PIPELINE_DEPTH:]
    assert all(p.state == "open" and p.sent_at is None for p in rest)
    assert _history(sessions, rest[0].id)[-1][2] == (
        f"P# {rest[0].sequence} was claimed but never sent (the appliance stopped first): queued again")
    again = after_kill.settle(_at(61), claim=20).commands
    assert [c.room for c in again] == [p.room for p in rest]
    assert min(c.sequence for c in again) == 13


def test_recovery_follows_claim_order_across_the_p_number_wrap(sessions) -> None:
    _queue(sessions, PIPELINE_DEPTH + 3)
    with sessions.begin() as session:
        session.add(PmsCounter(link="pms", next_sequence=MAX_SEQUENCE - 1, resync_wanted=False))
    outbox = Outbox(sessions, "pms")
    sequences = [c.sequence for c in outbox.settle(T0, claim=PIPELINE_DEPTH + 3).commands]
    assert sequences[:3] == [MAX_SEQUENCE - 1, MAX_SEQUENCE, 1]
    outbox.recover_in_flight(_at(60))
    failed = [p.sequence for p in _postings(sessions) if p.state == "failed"]
    assert failed == sequences[:PIPELINE_DEPTH]  # the oldest claims, not the smallest numbers


# ---------------------------------------------------------------- late answers

def _unanswered(sessions, count: int = 1) -> Outbox:
    """``count`` postings sent (P# 1..count) and failed for want of an answer at T0 + 30 s."""
    _queue(sessions, count)
    outbox = Outbox(sessions, "pms")
    outbox.settle(T0, claim=count)
    outbox.settle(_at(30), items=[Unanswered(n, "no answer within 30 s", _at(30))
                                  for n in range(1, count + 1)])
    return outbox


def test_a_late_ok_posts_the_failed_posting(sessions) -> None:
    outbox = _unanswered(sessions)
    posting = outbox.record_answer(1, "OK", "", "PA|ASOK|P#1|", _at(45))
    assert posting is not None and posting.state == "ok" and posting.answer_code == "OK"
    assert posting.reason == "late answer from the PMS: OK (after 45 s)"
    assert _history(sessions, posting.id)[-1] == ("failed", "ok", "late answer from the PMS: OK (after 45 s)")


@pytest.mark.parametrize(("code", "text", "reason"), [
    ("NG", "INVALID ROOM", "late answer from the PMS: PMS refused it, NG: guest not found (INVALID ROOM) "
                           "(after 47 s)"),
    ("RY", "", "late answer from the PMS: RY: PMS asked to retry (after 47 s); the PMS did not book it: "
               "safe to re-post"),
])
def test_a_late_refusal_keeps_it_failed_with_the_pms_reason(sessions, code, text, reason) -> None:
    outbox = _unanswered(sessions)
    posting = outbox.record_answer(1, code, text, "", _at(47))
    assert posting is not None and (posting.state, posting.reason) == ("failed", reason)
    assert _history(sessions, posting.id)[-1] == ("failed", "failed", reason)
    # Only "no answer" may be changed: a second late answer now only leaves a note.
    assert outbox.record_answer(1, "OK", "", "", _at(50)) is None
    assert _postings(sessions)[0].state == "failed"


def _act(sessions, action: str, posting_id: int, now: datetime) -> None:
    with sessions.begin() as session:
        getattr(actions, action)(session, posting_id, note="checked the folio", actor="it", now=now)


@pytest.mark.parametrize(("action", "state", "note"), [
    ("repost", "open", "it was re-posted since: the PMS booked it, check the folio"),
    ("mark_posted", "ok", "it is already posted"),
    ("write_off", "excluded", "it was written off: the PMS booked it, check the folio"),
])
def test_a_late_ok_after_an_admin_dealt_with_the_posting_changes_nothing(sessions, action, state,
                                                                         note) -> None:
    outbox = _unanswered(sessions)
    posting_id = _postings(sessions)[0].id
    _act(sessions, action, posting_id, _at(40))
    assert outbox.record_answer(1, "OK", "", "PA|ASOK|P#1|", _at(45)) is None
    assert _postings(sessions)[0].state == state
    last = _history(sessions, posting_id)[-1]
    assert last == (state, state, f"answer from the PMS for P# 1 after it was no longer awaited: OK: posted "
                                  f"(after 45 s); not applied, {note}")


def test_a_late_ok_for_a_re_posted_and_re_sent_posting_only_warns(sessions) -> None:
    """Re-posted and sent again with P# 2: the late OK for P# 1 must not touch P# 2's fate, but the
    posting's history says the PMS booked the first copy."""
    outbox = _unanswered(sessions)
    posting_id = _postings(sessions)[0].id
    _act(sessions, "repost", posting_id, _at(40))
    assert [c.sequence for c in outbox.settle(_at(41), claim=5).commands] == [2]
    assert outbox.record_answer(1, "OK", "", "", _at(45)) is None
    posting = _postings(sessions)[0]
    assert (posting.state, posting.sequence, posting.sent_at) == ("open", 2, _at(41))
    assert _history(sessions, posting_id)[-1][2].startswith(
        "answer from the PMS for P# 1 after it was no longer awaited: OK: posted (after 45 s); not "
        "applied, it was re-posted since")
    # ... and P# 2's own answer still settles it.
    assert outbox.record_answer(2, "OK", "", "", _at(42)).state == "ok"


def test_an_answer_for_an_unknown_p_number_changes_nothing(sessions) -> None:
    outbox = _unanswered(sessions)
    assert outbox.record_answer(77, "OK", "", "", _at(45)) is None
    assert [p.state for p in _postings(sessions)] == ["failed"]


def test_a_write_off_racing_the_late_ok_wins(sessions, migrated_url) -> None:
    """The web admin writes the posting off between the outbox's read and its update: the conditional
    UPDATE finds nothing to change, and the answer is only noted."""
    outbox = _unanswered(sessions)
    posting_id = _postings(sessions)[0].id
    engine = sessions.kw["bind"]
    raced: list[bool] = []

    def admin_first(conn, cursor, statement, parameters, context, executemany) -> None:
        update = statement.lstrip().upper().startswith("UPDATE POSTINGS")
        if update and "reason LIKE" in statement and not raced:
            raced.append(True)
            other = make_engine(migrated_url)
            try:
                _act(make_sessionmaker(other), "write_off", posting_id, _at(44))
            finally:
                other.dispose()

    event.listen(engine, "before_cursor_execute", admin_first)
    try:
        assert outbox.record_answer(1, "OK", "", "", _at(45)) is None
    finally:
        event.remove(engine, "before_cursor_execute", admin_first)
    assert raced == [True]
    assert _postings(sessions)[0].state == "excluded"
    history = _history(sessions, posting_id)
    assert history[-2][:2] == ("failed", "excluded")
    assert history[-1][:2] == ("excluded", "excluded") and "it was written off" in history[-1][2]


def test_a_duplicate_answer_in_the_same_batch_is_noted_not_applied_twice(sessions) -> None:
    _queue(sessions, 1)
    outbox = Outbox(sessions, "pms")
    outbox.settle(T0, claim=1)
    items = [Answer(1, "OK", at=_at(0.5)), Answer(1, "OK", at=_at(0.6))]
    outcomes = outbox.settle(_at(1), items=items).outcomes
    assert [(o.state, o.changed, o.late) for o in outcomes] == [("ok", True, False), ("ok", False, True)]
    assert [cause for *_, cause in _history(sessions, _postings(sessions)[0].id)][-1].endswith(
        "not applied, it is already posted")
