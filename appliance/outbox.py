"""The posting outbox in the database: claim postings, record answers (no Twisted, no clock).

Write-ahead (fias.md §8.1): a posting is *claimed* (P#, ``sent_at``, committed) before the PMS service
writes a byte of its PS, so after any crash the database knows which postings may have reached the PMS.
FIAS allows one PS in flight (Spec 2.20.23 p.85); the service still needs no database trip between a PA
and the next PS, because postings are claimed a small window ahead and outcomes (answers, timeouts,
give-backs, the next window) are committed in batches, one commit each (``settle``). What keeps "nothing
posted twice" provable after a kill:

- the service writes a claimed posting's PS only when every posting sent ``PIPELINE_DEPTH`` or more PS
  before it has its outcome committed (``appliance.net.pms_service``);
- so at start-up (``recover_in_flight``) the claimed postings without an outcome, in claim (= send)
  order, hold at most ``PIPELINE_DEPTH`` that may have been sent: those become ``failed`` ("no answer:
  check the folio"), never re-sent; every later one cannot have been sent, and goes back to the queue.

A claimed posting that is given back unsent (link down, night audit, resync) is queued again by
``settle(release=...)``. An answer that comes after its timeout still counts, by its P# alone
(``appliance.postings.on_late_answer``).

The hot path (claims and answers) uses Core statements: a restored link drains its queue at hundreds of
postings a second, and building ORM objects per posting cost more than the commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from appliance import postings as rules
from appliance.db.models import Call, LinkStatus, PmsCounter, Posting, PostingEvent
from appliance.events import PostCharge

MAX_SEQUENCE = 99_999_999  # FIAS P#: 1..99 999 999, never 0 (FIAS 2.20.23 p.81)
PIPELINE_DEPTH = 4
"""At most this many sent postings may lack a committed outcome (see the module doc). Recovery relies on
it: never lower it between two runs while postings are claimed."""
LATE_SEARCH_EVENTS = 100_000
"""How far back (history rows) a late answer's P# is looked for on postings re-posted since."""
CALL_TYPE = {"local": "L", "national": "N", "mobile": "N", "international": "I", "premium": "N",
             "special": "N", "unknown": "N"}

_P = Posting.__table__
_E = PostingEvent.__table__


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


@dataclass(frozen=True, slots=True)
class Answer:
    """A PA (or ACK) as the service hands it over; ``sent_at`` is when its PS was really written."""

    sequence: int
    code: str
    text: str = ""
    raw: str = ""
    at: datetime | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Unanswered:
    sequence: int
    reason: str
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one answer or timeout did. ``posting_id`` is None when no posting had that P#; ``changed`` is
    False when the posting was only given a history line (a late answer it must not take)."""

    sequence: int
    posting_id: int | None
    state: str = ""
    reason: str = ""
    changed: bool = False
    late: bool = False


@dataclass(slots=True)
class Settled:
    outcomes: list[Outcome] = field(default_factory=list)
    commands: list[PostCharge] = field(default_factory=list)
    released: int = 0


class Outbox:
    def __init__(self, sessions: sessionmaker[Session], link: str, *, ta_exponent: int = 2) -> None:
        self._sessions = sessions
        self._link = link
        self._ta_exponent = ta_exponent
        self._answer_touched: datetime | None = None

    # ------------------------------------------------------------ start-up

    def recover_in_flight(self, now: datetime) -> int:
        """At start-up: claimed postings without an outcome. The first ``PIPELINE_DEPTH`` in claim order may
        have been sent: ``failed`` (no answer), never resent. The rest were never sent: queued again.
        Returns how many were failed."""
        with self._sessions.begin() as session:
            stuck = list(session.scalars(select(Posting).where(
                Posting.link == self._link, Posting.state == "open", Posting.sent_at.is_not(None))))
            if not stuck:
                return 0
            counter = session.get(PmsCounter, self._link)
            following = counter.next_sequence if counter is not None else 1
            # Claim order is P# order, across a wrap too: distance back from the counter's next P#.
            stuck.sort(key=lambda p: ((p.sequence or 0) - following) % MAX_SEQUENCE)
            maybe_sent, never_sent = stuck[:PIPELINE_DEPTH], stuck[PIPELINE_DEPTH:]
            failed = rules.on_no_answer("the appliance restarted while awaiting the answer").reason
            for posting in maybe_sent:
                change_state(session, posting, "failed", failed, now)
            for posting in never_sent:
                self._give_back(session, posting, f"P# {posting.sequence} was claimed but never sent (the "
                                                  "appliance stopped first): queued again", now)
            return len(maybe_sent)

    # ------------------------------------------------------------ the batch the service commits

    def settle(self, now: datetime, *, items: Iterable[Answer | Unanswered] = (), release: Sequence[int] = (),
               release_reason: str = "the link could not take it", claim: int = 0) -> Settled:
        """One commit: answers and timeouts in arrival order, postings given back unsent, then up to
        ``claim`` postings claimed (each with a fresh P#, committed before its PS may be written)."""
        with self._sessions.begin() as session:
            result = Settled()
            result.outcomes = self._record(session, list(items), now)
            result.released = self._release(session, release, release_reason, now)
            if claim > 0:
                result.commands = self._claim(session, now, claim)
            return result

    def _record(self, session: Session, items: list[Answer | Unanswered], now: datetime) -> list[Outcome]:
        if not items:
            return []
        wanted = {item.sequence for item in items}
        flying = {row.sequence: row for row in session.execute(
            select(_P.c.id, _P.c.sequence, _P.c.attempts, _P.c.sent_at).where(
                _P.c.link == self._link, _P.c.sequence.in_(wanted), _P.c.state == "open",
                _P.c.sent_at.is_not(None)))}
        outcomes: list[Outcome | None] = []
        late: list[tuple[int, Answer]] = []
        updates: list[dict] = []
        events: list[dict] = []
        answered = False
        for item in items:
            row = flying.pop(item.sequence, None)
            at = item.at or now
            if row is None:
                if isinstance(item, Answer):
                    # After the batch's updates: a duplicate or late PA must see what came before it.
                    late.append((len(outcomes), item))
                    outcomes.append(None)
                    answered = True
                else:  # already settled (an answer beat the timeout report): nothing to do
                    outcomes.append(Outcome(item.sequence, None))
                continue
            if isinstance(item, Answer):
                decision = rules.on_answer(item.code, item.text, row.attempts, at)
                answered = True
                retry = decision.state == rules.State.RETRY
                # RETRY: the PMS did not book it, so it may go again (sent_at cleared marks it unsent).
                values = dict(answered_at=at, answer_code=item.code[:4], answer_text=item.text[:300],
                              sent_at=None if retry else (item.sent_at or row.sent_at),
                              next_attempt_at=decision.next_attempt_at)
                raw = item.raw
            else:
                decision = rules.on_no_answer(item.reason)
                values = dict(answered_at=None, answer_code="", answer_text="", sent_at=row.sent_at,
                              next_attempt_at=None)
                raw = ""
            rules.check_transition("open", decision.state)
            reason = decision.reason[:300]
            updates.append(dict(pid=row.id, new_state=str(decision.state), new_reason=reason, at=at,
                                **values))
            events.append(dict(posting_id=row.id, at=at, from_state="open", to_state=str(decision.state),
                               cause=reason, actor="daemon", sequence=item.sequence, raw=raw))
            outcomes.append(Outcome(item.sequence, row.id, str(decision.state), reason, changed=True))
        if updates:
            session.execute(
                update(_P).where(_P.c.id == bindparam("pid")).values(
                    state=bindparam("new_state"), reason=bindparam("new_reason"), updated_at=bindparam("at"),
                    answered_at=bindparam("answered_at"), answer_code=bindparam("answer_code"),
                    answer_text=bindparam("answer_text"), sent_at=bindparam("sent_at"),
                    next_attempt_at=bindparam("next_attempt_at")),
                updates, execution_options={"synchronize_session": False})
            session.execute(insert(_E), events)
        for index, item in late:
            outcomes[index] = self._late_answer(session, item, item.at or now)
        if answered:
            self._touch(session, now)
        return [outcome for outcome in outcomes if outcome is not None]

    def _late_answer(self, session: Session, item: Answer, at: datetime) -> Outcome:
        """An answer for a P# no posting awaits: it counts only for a posting that failed for want of an
        answer and still carries that P#; the conditional UPDATE makes that check and the change one step,
        so a re-post, mark-posted or write-off committed meanwhile by the web admin wins."""
        posting = session.scalars(select(Posting).where(
            Posting.link == self._link, Posting.sequence == item.sequence)
            .order_by(Posting.id.desc()).limit(1)).first()
        sent_at = posting.sent_at if posting is not None else None
        if posting is None or posting.state == "open" and posting.sent_at is None:
            # Re-posted since (P# changed or about to): find whose P# it was in the history.
            found = self._by_past_sequence(session, item.sequence)
            if found is None:
                return Outcome(item.sequence, None, late=True)
            posting, sent_at = found
        seconds = (at - sent_at).total_seconds() if sent_at is not None else 0.0
        decision = rules.on_late_answer(posting.state, posting.reason, item.code, item.text, seconds,
                                        item.sequence)
        if decision.state is not None:
            reason = decision.reason[:300]
            done = session.execute(
                update(Posting).where(
                    Posting.id == posting.id, Posting.link == self._link, Posting.state == "failed",
                    Posting.sequence == item.sequence,
                    Posting.reason.startswith(rules.NO_ANSWER_REASON, autoescape=True),
                ).values(state=str(decision.state), reason=reason, answered_at=at, answer_code=item.code[:4],
                         answer_text=item.text[:300], updated_at=at)
                .execution_options(synchronize_session=False))
            if done.rowcount == 1:
                session.execute(insert(_E).values(
                    posting_id=posting.id, at=at, from_state="failed", to_state=str(decision.state),
                    cause=reason, actor="daemon", sequence=item.sequence, raw=item.raw))
                return Outcome(item.sequence, posting.id, str(decision.state), reason, changed=True,
                               late=True)
            # Someone changed it between our read and the update: re-read, and only note the answer.
            session.refresh(posting)
            decision = rules.on_late_answer(posting.state, posting.reason, item.code, item.text, seconds,
                                            item.sequence)
        note = decision.reason[:300]
        session.execute(insert(_E).values(
            posting_id=posting.id, at=at, from_state=posting.state, to_state=posting.state, cause=note,
            actor="daemon", sequence=item.sequence, raw=item.raw))
        return Outcome(item.sequence, posting.id, posting.state, note, changed=False, late=True)

    def _by_past_sequence(self, session: Session, sequence: int) -> tuple[Posting, datetime] | None:
        """The posting that was sent with P# ``sequence`` before it got another one, and when."""
        newest = session.scalar(select(func.max(PostingEvent.id))) or 0
        row = session.execute(
            select(PostingEvent.posting_id, PostingEvent.at)
            .join(Posting, Posting.id == PostingEvent.posting_id)
            .where(PostingEvent.id > newest - LATE_SEARCH_EVENTS, PostingEvent.sequence == sequence,
                   PostingEvent.cause.startswith("sent"), Posting.link == self._link)
            .order_by(PostingEvent.id.desc()).limit(1)).first()
        if row is None:
            return None
        return session.get(Posting, row.posting_id), row.at

    def _release(self, session: Session, sequences: Sequence[int], why: str, now: datetime) -> int:
        if not sequences:
            return 0
        postings = session.scalars(select(Posting).where(
            Posting.link == self._link, Posting.sequence.in_(set(sequences)), Posting.state == "open",
            Posting.sent_at.is_not(None))).all()
        for posting in postings:
            self._give_back(session, posting, f"P# {posting.sequence} not sent: {why}", now)
        return len(postings)

    @staticmethod
    def _give_back(session: Session, posting: Posting, cause: str, now: datetime) -> None:
        posting.sent_at = None
        posting.attempts = max(posting.attempts - 1, 0)
        posting.updated_at = now
        session.add(PostingEvent(posting_id=posting.id, at=now, from_state="open", to_state="open",
                                 cause=cause[:300], sequence=posting.sequence))

    def _claim(self, session: Session, now: datetime, limit: int) -> list[PostCharge]:
        # The postings and their calls in one statement (the call gives the PS its number, trunk and start).
        rows = session.execute(
            select(_P.c.id, _P.c.state, _P.c.kind, _P.c.room, _P.c.amount, _P.c.destination, _P.c.created_at,
                   Call.start, Call.duration, Call.dialled, Call.trunk, Call.call_class)
            .select_from(_P).outerjoin(Call, _P.c.call_id == Call.id).where(
                _P.c.link == self._link,
                or_(
                    (_P.c.state == "open") & _P.c.sent_at.is_(None),
                    (_P.c.state == "retry") & (_P.c.next_attempt_at <= now),
                ),
            ).order_by(_P.c.id).limit(limit).with_for_update(of=_P, skip_locked=True)
        ).all()
        if not rows:
            return []
        first = self._take_sequences(session, len(rows))
        updates: list[dict] = []
        events: list[dict] = []
        commands: list[PostCharge] = []
        for offset, row in enumerate(rows):
            sequence = (first - 1 + offset) % MAX_SEQUENCE + 1
            retry = row.state == "retry"
            cause = f"sent again with P# {sequence}" if retry else f"sent with P# {sequence}"
            updates.append(dict(pid=row.id, new_sequence=sequence, new_state="open",
                                new_reason=cause if retry else None, at=now))
            events.append(dict(posting_id=row.id, at=now, from_state=row.state, to_state="open", cause=cause,
                               actor="daemon", sequence=sequence, raw=""))
            commands.append(self._command(sequence, row))
        plain = [u for u in updates if u["new_reason"] is None]
        again = [u for u in updates if u["new_reason"] is not None]
        common = dict(sequence=bindparam("new_sequence"), state=bindparam("new_state"),
                      sent_at=bindparam("at"), attempts=_P.c.attempts + 1, next_attempt_at=None, updated_at=bindparam("at"))
        if plain:
            session.execute(update(_P).where(_P.c.id == bindparam("pid")).values(**common),
                            [{k: v for k, v in u.items() if k != "new_reason"} for u in plain],
                            execution_options={"synchronize_session": False})
        if again:  # retry -> open: the reason says it went again (as change_state would)
            session.execute(update(_P).where(_P.c.id == bindparam("pid")).values(
                reason=bindparam("new_reason"), **common), again,
                execution_options={"synchronize_session": False})
        session.execute(insert(_E), events)
        return commands

    def _take_sequences(self, session: Session, count: int) -> int:
        """Reserve ``count`` consecutive P#s (wrapping after 99 999 999); returns the first."""
        counter = session.execute(
            select(PmsCounter.next_sequence).where(PmsCounter.link == self._link).with_for_update()).first()
        if counter is None:
            session.add(PmsCounter(link=self._link, next_sequence=1, resync_wanted=False))
            session.flush()
            first = 1
        else:
            first = counter.next_sequence
        following = (first - 1 + count) % MAX_SEQUENCE + 1
        session.execute(update(PmsCounter).where(PmsCounter.link == self._link)
                        .values(next_sequence=following).execution_options(synchronize_session=False))
        return first

    def _command(self, sequence: int, row: object) -> PostCharge:
        amount = rules.to_minor_units(row.amount, self._ta_exponent)  # type: ignore[attr-defined]
        refund = row.kind == "refund"  # type: ignore[attr-defined]
        if refund:
            amount = -abs(amount)
        has_call = row.start is not None  # type: ignore[attr-defined]
        destination = row.destination or ""  # type: ignore[attr-defined]
        return PostCharge(
            sequence=sequence,
            room=row.room,  # type: ignore[attr-defined]
            amount_minor=amount,
            start=row.start if has_call else row.created_at,  # type: ignore[attr-defined]
            duration=row.duration if has_call else 0,  # type: ignore[attr-defined]
            dialled=(row.dialled if has_call else destination)[:20],  # type: ignore[attr-defined]
            trunk=row.trunk if has_call else "",  # type: ignore[attr-defined]
            call_type=CALL_TYPE.get(row.call_class, "") if has_call else "",  # type: ignore[attr-defined]
            text=("Refund " if refund else "Call ") + destination[:13],
        )

    # ------------------------------------------------------------ one at a time (tools and tests)

    def claim_next(self, now: datetime) -> PostCharge | None:
        """Take the oldest due posting, give it a fresh P#, mark it sent, commit, return the command."""
        commands = self.settle(now, claim=1).commands
        return commands[0] if commands else None

    def unclaim(self, sequence: int, now: datetime) -> None:
        """The link went away between the claim and the write: nothing was sent, queue it again."""
        self.settle(now, release=[sequence], release_reason="the link went down first")

    def record_answer(self, sequence: int, code: str, text: str, raw: str, now: datetime) -> Posting | None:
        """The answer for P# ``sequence``; the posting if the answer changed it, else None."""
        return self._changed(self.settle(now, items=[Answer(sequence, code, text, raw, now)]).outcomes[0])

    def answer_and_claim(self, sequence: int, code: str, text: str, raw: str,
                         now: datetime) -> tuple[Posting | None, PostCharge | None]:
        """The answer and the next claim in one commit."""
        settled = self.settle(now, items=[Answer(sequence, code, text, raw, now)], claim=1)
        return self._changed(settled.outcomes[0]), (settled.commands[0] if settled.commands else None)

    def record_unanswered(self, sequence: int, reason: str, now: datetime) -> Posting | None:
        return self._changed(self.settle(now, items=[Unanswered(sequence, reason, now)]).outcomes[0])

    def _changed(self, outcome: Outcome) -> Posting | None:
        if not outcome.changed or outcome.posting_id is None:
            return None
        with self._sessions() as session:
            return session.get(Posting, outcome.posting_id)

    # ------------------------------------------------------------ timers

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

    def _touch(self, session: Session, now: datetime) -> None:
        """The dashboard's "last answer" to the second: no extra write per posting while a queue drains."""
        if self._answer_touched is not None and (now - self._answer_touched).total_seconds() < 1:
            return
        session.execute(update(LinkStatus).where(LinkStatus.name == self._link).values(last_answer_at=now)
                        .execution_options(synchronize_session=False))
        self._answer_touched = now
