"""The posting outbox in the database: claim the next posting, record answers (no Twisted, no clock).

Write-ahead: ``claim_next`` commits the P# and ``sent_at`` *before* the PMS service writes a byte, so
after any crash the database knows a posting may have reached the PMS, and ``recover_in_flight`` turns
such postings into ``failed`` (no answer) instead of sending them again (fias.md §8.1).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from appliance import postings as rules
from appliance.db.models import Call, LinkStatus, PmsCounter, Posting, PostingEvent
from appliance.events import PostCharge

MAX_SEQUENCE = 99_999_999  # FIAS P#: 1..99 999 999, never 0 (FIAS 2.20.23 p.81)
CALL_TYPE = {"local": "L", "national": "N", "mobile": "N", "international": "I", "premium": "N",
             "special": "N", "unknown": "N"}


def change_state(session: Session, posting: Posting, new: str, cause: str, now: datetime, *,
                 actor: str = "daemon", raw: str = "") -> None:
    """Every state change goes through here, so the history explains every state."""
    if new != posting.state:
        rules.check_transition(posting.state, new)
    session.add(PostingEvent(posting_id=posting.id, at=now, from_state=posting.state, to_state=new,
                             cause=cause[:300], actor=actor, sequence=posting.sequence, raw=raw))
    posting.state = new
    posting.reason = cause[:300]
    posting.updated_at = now


class Outbox:
    def __init__(self, sessions: sessionmaker[Session], link: str, *, ta_exponent: int = 2) -> None:
        self._sessions = sessions
        self._link = link
        self._ta_exponent = ta_exponent
        self._answer_touched: datetime | None = None

    def recover_in_flight(self, now: datetime) -> int:
        """At start-up: postings sent before a crash and never answered are failed, not resent."""
        with self._sessions.begin() as session:
            stuck = list(session.scalars(select(Posting).where(
                Posting.link == self._link, Posting.state == "open", Posting.sent_at.is_not(None))))
            for posting in stuck:
                change_state(session, posting, "failed",
                             rules.on_no_answer("the appliance restarted while awaiting the answer").reason, now)
            return len(stuck)

    def claim_next(self, now: datetime) -> PostCharge | None:
        """Take the oldest due posting, give it a fresh P#, mark it sent, commit, return the command."""
        with self._sessions.begin() as session:
            return self._claim(session, now)

    def _claim(self, session: Session, now: datetime) -> PostCharge | None:
        # The posting and its call in one statement (the call gives the PS its number, trunk and start).
        row = session.execute(
            select(Posting, Call).outerjoin(Call, Posting.call_id == Call.id).where(
                Posting.link == self._link,
                or_(
                    (Posting.state == "open") & Posting.sent_at.is_(None),
                    (Posting.state == "retry") & (Posting.next_attempt_at <= now),
                ),
            ).order_by(Posting.id).limit(1).with_for_update(of=Posting, skip_locked=True)
        ).first()
        if row is None:
            return None
        posting, call = row
        sequence = self._next_sequence(session)
        if posting.state == "retry":
            change_state(session, posting, "open", f"sent again with P# {sequence}", now)
        else:
            session.add(PostingEvent(posting_id=posting.id, at=now, from_state="open", to_state="open",
                                     cause=f"sent with P# {sequence}", sequence=sequence))
        posting.sequence = sequence
        posting.sent_at = now
        posting.attempts += 1
        posting.next_attempt_at = None
        posting.updated_at = now
        return self._command(posting, call)

    def _next_sequence(self, session: Session) -> int:
        counter = session.get(PmsCounter, self._link, with_for_update=True)
        if counter is None:
            counter = PmsCounter(link=self._link, next_sequence=1, resync_wanted=False)
            session.add(counter)
        sequence = counter.next_sequence
        counter.next_sequence = sequence % MAX_SEQUENCE + 1
        return sequence

    def _command(self, posting: Posting, call: Call | None) -> PostCharge:
        amount = rules.to_minor_units(posting.amount, self._ta_exponent)
        if posting.kind == "refund":
            amount = -abs(amount)
        return PostCharge(
            sequence=posting.sequence,
            room=posting.room,
            amount_minor=amount,
            start=call.start if call else posting.created_at,
            duration=call.duration if call else 0,
            dialled=(call.dialled if call else posting.destination)[:20],
            trunk=call.trunk if call else "",
            call_type=CALL_TYPE.get(call.call_class, "") if call else "",
            text=("Refund " if posting.kind == "refund" else "Call ") + (posting.destination or "")[:13],
        )

    def unclaim(self, sequence: int, now: datetime) -> None:
        """The link went away between the claim and the write: nothing was sent, queue it again."""
        with self._sessions.begin() as session:
            posting = self._in_flight(session, sequence)
            if posting is not None:
                posting.sent_at = None
                posting.attempts -= 1
                session.add(PostingEvent(posting_id=posting.id, at=now, from_state="open", to_state="open",
                                         cause=f"P# {sequence} not sent: the link went down first",
                                         sequence=sequence))

    def record_answer(self, sequence: int, code: str, text: str, raw: str, now: datetime) -> Posting | None:
        with self._sessions.begin() as session:
            return self._record_answer(session, sequence, code, text, raw, now)

    def answer_and_claim(self, sequence: int, code: str, text: str, raw: str,
                         now: datetime) -> tuple[Posting | None, PostCharge | None]:
        """The answer and the next claim in one commit: a restored link drains its queue at one fsync per
        posting. The claim is still committed before its PS is written."""
        with self._sessions.begin() as session:
            posting = self._record_answer(session, sequence, code, text, raw, now)
            return posting, self._claim(session, now)

    def _record_answer(self, session: Session, sequence: int, code: str, text: str, raw: str,
                       now: datetime) -> Posting | None:
        posting = self._in_flight(session, sequence)
        if posting is None:
            return None
        decision = rules.on_answer(code, text, posting.attempts, now)
        posting.answered_at = now
        posting.answer_code = code[:4]
        posting.answer_text = text[:300]
        if decision.state == rules.State.RETRY:
            posting.sent_at = None  # the PMS said it did not book it: safe to send again
            posting.next_attempt_at = decision.next_attempt_at
        change_state(session, posting, decision.state, decision.reason, now, raw=raw)
        self._touch(session, now)
        return posting

    def record_unanswered(self, sequence: int, reason: str, now: datetime) -> Posting | None:
        with self._sessions.begin() as session:
            posting = self._in_flight(session, sequence)
            if posting is None:
                return None
            change_state(session, posting, "failed", rules.on_no_answer(reason).reason, now)
            return posting

    def release_night_audit(self, now: datetime) -> int:
        """NE arrived: postings held by an NA answer are due at once."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(Posting).where(Posting.link == self._link, Posting.state == "retry",
                                      Posting.answer_code == "NA").values(next_attempt_at=now)
            )
            return result.rowcount or 0

    def next_due(self) -> datetime | None:
        """When the earliest retry falls due (the PMS service arms a timer for it)."""
        with self._sessions() as session:
            return session.scalar(
                select(Posting.next_attempt_at).where(Posting.link == self._link, Posting.state == "retry")
                .order_by(Posting.next_attempt_at).limit(1)
            )

    def _in_flight(self, session: Session, sequence: int) -> Posting | None:
        return session.scalars(
            select(Posting).where(Posting.link == self._link, Posting.sequence == sequence,
                                  Posting.state == "open", Posting.sent_at.is_not(None))
            .order_by(Posting.id.desc()).limit(1)
        ).first()

    def _touch(self, session: Session, now: datetime) -> None:
        """The dashboard's "last answer" to the second: not one more write per posting while a queue drains."""
        if self._answer_touched is not None and (now - self._answer_touched).total_seconds() < 1:
            return
        status = session.get(LinkStatus, self._link)
        if status is not None:
            status.last_answer_at = now
            self._answer_touched = now
