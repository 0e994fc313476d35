"""What people do to postings: refunds and the failed-posting actions (domain.md, "Posting states").

Plain functions of a SQLAlchemy ``Session``, the actor's username and ``now``; no Flask, so the web admin,
the command line and tests share one set of money rules:

- ``refund_call``: the whole charge of a call. The charge goes ``ok -> refunded`` and a refund posting of
  the same amount to the same room is queued; the daemon sends it to the PMS as a negative charge.
- ``refund_part``: part of a call's charge, as a refund posting (destination ``REF0`` by default). When the
  refunds reach the whole charge, the charge becomes ``refunded`` too.
- ``refund_room``: a custom refund of an amount to a room, without a call.
- ``repost`` (``failed -> open``, sent again with a fresh P#), ``mark_posted`` (``failed -> ok``, the
  PMS has it after all, booked by hand), ``write_off`` (``failed -> excluded``); ``resolve_failed`` does one
  of them to many postings.

A call the tariff could not price is held by the pipeline as ``charge`` with a ``failed`` posting of 0
("not rated: ...", issue 3; ``appliance.rerate.held_unrated``). Re-posting it first re-rates the call with
the tariff in force at the call's time (``appliance.rerate``, so it needs the configuration: ``config=``):
if it now rates chargeable, the call takes the rating, the posting its amount, and the one history line of
``failed -> open`` says so; if it still cannot be rated (or is not chargeable) the re-post is refused with
the reason and nothing changes. It was never sent, so it cannot be marked as posted; a write-off works as
for any failed posting.

Every change goes through ``appliance.outbox.change_state`` (so the history explains every state) and is
written to the audit log in the same transaction. Nothing here commits: the caller commits the change and
its audit entry together, or rolls both back. A request the rules refuse raises ``ActionError`` (a
``ValueError``) with a message for the person who asked, before anything was changed.

The rules against paying a guest back twice: only a posted (``ok``) charge can be refunded; a whole refund
needs a charge without refunds; refunds of a call never add up to more than its charge (a written-off
refund does not count, it never reached the folio). The posting row is locked before these checks, so two
clicks or two people cannot both pass them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select, union, update
from sqlalchemy.orm import Session

from appliance.config import ApplianceConfig
from appliance.db.models import Call, Extension, Posting, Stay
from appliance.occupancy import stay_at
from appliance.outbox import change_state
from appliance.pipeline import add_posting
from appliance.postings import IllegalTransition
from appliance.rerate import Rerater, held_unrated, rating_words, reopen_held
from appliance import audit

REFUND_DESTINATION = "REF0"
MAX_TEXT = 300  # a reason or note ends up in PostingEvent.cause, which holds 300 characters
MAX_DECIMALS = 2  # FIAS TA carries minor units; a third decimal would be rounded away silently
ROOM = re.compile(r"[A-Za-z0-9._-]{1,16}")

# The failed-posting actions: name -> (new state, audit action, words for the history).
FAILED_ACTIONS: dict[str, tuple[str, str, str]] = {
    "repost": ("open", "posting.repost", "re-posted"),
    "mark_posted": ("ok", "posting.mark_posted", "marked as posted by hand"),
    "write_off": ("excluded", "posting.write_off", "written off"),
}

log = logging.getLogger(__name__)


class ActionError(ValueError):
    """A request the money rules refuse; ``str(error)`` tells the person why."""


@dataclass(frozen=True, slots=True)
class RefundState:
    """How much of a charge has been refunded so far, and how much may still be."""

    charge: Decimal
    refunded: Decimal

    @property
    def remaining(self) -> Decimal:
        return self.charge - self.refunded


@dataclass
class BulkResult:
    done: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)


def money(value: Decimal) -> str:
    """An amount for people and the audit log: two decimals, or up to four when they are used."""
    cents = value.quantize(Decimal("0.01"))
    return str(cents) if cents == value else format(value.normalize(), "f")


# -- checks ------------------------------------------------------------------------------------------

def check_text(text: str | None, what: str) -> str:
    """A required reason or note: not blank, at most ``MAX_TEXT`` characters."""
    text = " ".join((text or "").split())
    if not text:
        raise ActionError(f"Please give a {what}.")
    if len(text) > MAX_TEXT:
        raise ActionError(f"The {what} is too long ({len(text)} characters, at most {MAX_TEXT}).")
    return text


def check_amount(amount: Decimal | str | None, limit: Decimal | None = None) -> Decimal:
    """A refund amount: a number above zero with at most two decimals, and not above ``limit``."""
    try:
        value = Decimal(str(amount).strip()) if amount is not None else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise ActionError("The amount must be a number such as 12.50.")
    if value <= 0:
        raise ActionError("The amount must be more than zero.")
    if value != value.quantize(Decimal(1).scaleb(-MAX_DECIMALS)):
        raise ActionError(f"The amount can have at most {MAX_DECIMALS} decimals.")
    if limit is not None and value > limit:
        raise ActionError(f"The amount {money(value)} is more than the {money(limit)} that can still be "
                          "refunded.")
    return value


def refund_state(session: Session, charge: Posting) -> RefundState:
    """The charge and the sum of its refunds that may have reached the folio (all but written-off ones)."""
    refunded = session.scalar(
        select(func.coalesce(func.sum(Posting.amount), 0)).where(
            Posting.refund_of_id == charge.id, Posting.kind == "refund", Posting.state != "excluded"))
    # SUM keeps the column's Money type, so the result arrives as a Decimal.
    return RefundState(charge=charge.amount, refunded=Decimal(refunded or 0))


def refunds_of(session: Session, charge_id: int) -> list[Posting]:
    return list(session.scalars(
        select(Posting).where(Posting.refund_of_id == charge_id, Posting.kind == "refund")
        .order_by(Posting.id)))


def known_rooms(session: Session) -> set[str]:
    """Rooms the appliance knows: from the extension table and from the PMS's stays."""
    rooms = union(select(Extension.room).where(Extension.room != ""), select(Stay.room))
    return set(session.scalars(select(rooms.subquery().c.room)))


# -- refunds -----------------------------------------------------------------------------------------

def refund_call(session: Session, call_id: int, *, reason: str, actor: str, now: datetime) -> Posting:
    """Refund the whole charge of call ``call_id``; returns the new refund posting (``open``)."""
    reason = check_text(reason, "reason for the refund")
    charge = _charge_of(session, call_id)
    _check_refundable(charge)
    state = refund_state(session, charge)
    if state.refunded:
        raise ActionError(f"Call {call_id} already has refunds of {money(state.refunded)} {charge.currency}; "
                          f"refund the remaining {money(state.remaining)} as a partial refund instead.")
    cause = f"refunded by {actor}: {reason}"
    change_state(session, charge, "refunded", cause, now, actor=actor)
    charge.note = reason
    refund = add_posting(session, call=charge.call, link=charge.link, room=charge.room,
                         stay_id=charge.stay_id, amount=charge.amount, currency=charge.currency, now=now,
                         kind="refund", actor=actor, destination=charge.destination, refund_of_id=charge.id,
                         cause=f"refund of the whole call, by {actor}: {reason}")
    refund.note = reason
    audit.record(session, actor, "posting.refund", f"call:{call_id}",
                 before={"posting": charge.id, "state": "ok", "amount": money(charge.amount)},
                 after={"posting": charge.id, "state": "refunded", "refund_posting": refund.id,
                        "room": refund.room, "amount": money(refund.amount)},
                 detail=reason, at=now)
    log.info("call %d refunded in full (posting %d, refund posting %d) by %s",
             call_id, charge.id, refund.id, actor)
    return refund


def refund_part(session: Session, call_id: int, amount: Decimal | str, *, reason: str, actor: str,
                now: datetime, destination: str = REFUND_DESTINATION) -> Posting:
    """Refund ``amount`` of call ``call_id``'s charge; returns the new refund posting (``open``)."""
    reason = check_text(reason, "reason for the refund")
    charge = _charge_of(session, call_id)
    _check_refundable(charge)
    state = refund_state(session, charge)
    if state.remaining <= 0:
        raise ActionError(f"The charge of call {call_id} has been refunded in full already.")
    value = check_amount(amount, limit=state.remaining)
    destination = _check_destination(destination)
    refund = add_posting(session, call=charge.call, link=charge.link, room=charge.room,
                         stay_id=charge.stay_id, amount=value, currency=charge.currency, now=now,
                         kind="refund", actor=actor, destination=destination, refund_of_id=charge.id,
                         cause=f"partial refund of {money(value)} {charge.currency}, by {actor}: {reason}")
    refund.note = reason
    after: dict[str, object] = {"refund_posting": refund.id, "room": refund.room, "amount": money(value),
                                "refunded": money(state.refunded + value)}
    if value == state.remaining:
        # The refunds now cover the whole charge: the call reads as refunded, like a whole refund.
        change_state(session, charge, "refunded", f"refunded in full by partial refunds, last by {actor}: "
                     f"{reason}", now, actor=actor)
        after["state"] = "refunded"
    audit.record(session, actor, "posting.refund_part", f"call:{call_id}",
                 before={"posting": charge.id, "state": "ok", "amount": money(charge.amount),
                         "refunded": money(state.refunded)},
                 after=after, detail=reason, at=now)
    log.info("call %d: %s refunded (refund posting %d) by %s", call_id, money(value), refund.id, actor)
    return refund


def refund_room(session: Session, room: str, amount: Decimal | str, *, reason: str, actor: str,
                now: datetime, link: str, currency: str, destination: str = REFUND_DESTINATION,
                allow_vacant: bool = False) -> Posting:
    """A custom refund of ``amount`` to ``room`` (not tied to a call); returns the refund posting."""
    reason = check_text(reason, "reason for the refund")
    room = (room or "").strip()
    if not ROOM.fullmatch(room):
        raise ActionError("Give the room number as the PMS spells it (letters, digits, '.', '_', '-').")
    if not link:
        raise ActionError("No PMS link is configured, so there is nowhere to send a refund.")
    value = check_amount(amount)
    destination = _check_destination(destination)
    if room not in known_rooms(session):
        raise ActionError(f"Room {room} is not a room the appliance knows. Rooms are spelled as the PMS "
                          "spells them (0412 is not 412).")
    stay = stay_at(session, room, now)
    if stay is None and not allow_vacant:
        raise ActionError(f"No guest is checked in to room {room}; the PMS would refuse the refund.")
    refund = add_posting(session, call=None, link=link, room=room, stay_id=stay.id if stay else None,
                         amount=value, currency=currency, now=now, kind="refund", actor=actor,
                         destination=destination, cause=f"refund to room {room}, by {actor}: {reason}")
    refund.note = reason
    audit.record(session, actor, "posting.refund_room", f"room:{room}",
                 after={"refund_posting": refund.id, "room": room, "amount": money(value),
                        "destination": destination},
                 detail=reason, at=now)
    log.info("refund posting %d of %s to room %s by %s", refund.id, money(value), room, actor)
    return refund


def _charge_of(session: Session, call_id: int) -> Posting:
    charge_id = session.scalar(select(Posting.id).where(Posting.call_id == call_id, Posting.kind == "charge"))
    if charge_id is None:
        if session.get(Call, call_id) is None:
            raise ActionError(f"There is no call {call_id}.")
        raise ActionError(f"Call {call_id} was never charged, so there is nothing to refund.")
    return _lock(session, charge_id)


def _check_refundable(charge: Posting) -> None:
    if charge.state == "refunded":
        raise ActionError(f"Call {charge.call_id} has been refunded already.")
    if charge.state != "ok":
        raise ActionError(f"Only a posted charge can be refunded; this one is {charge.state}. "
                          "A charge the PMS has not booked is dealt with in the failed postings queue.")


def _check_destination(destination: str) -> str:
    destination = (destination or "").strip() or REFUND_DESTINATION
    if len(destination) > 20 or not destination.isprintable():
        raise ActionError("The destination is at most 20 printable characters (REF0 by default).")
    return destination


# -- failed postings ---------------------------------------------------------------------------------

def repost(session: Session, posting_id: int, *, note: str, actor: str, now: datetime,
           config: ApplianceConfig | None = None) -> Posting:
    """Queue a failed posting again; the daemon sends it with a new P#. Attempts are kept. A posting held
    because its call was not rated is re-rated first, with ``config``'s tariff (module docstring)."""
    return _resolve(session, "repost", posting_id, note, actor, now, _Tariff(config))


def mark_posted(session: Session, posting_id: int, *, note: str, actor: str, now: datetime) -> Posting:
    """The posting is on the folio after all (checked, or booked by hand at the PMS): ``ok``."""
    return _resolve(session, "mark_posted", posting_id, note, actor, now)


def write_off(session: Session, posting_id: int, *, note: str, actor: str, now: datetime) -> Posting:
    """Give up on a failed posting: it is never charged (``excluded``)."""
    return _resolve(session, "write_off", posting_id, note, actor, now)


def resolve_failed(session: Session, action: str, posting_ids: list[int], *, note: str, actor: str,
                   now: datetime, config: ApplianceConfig | None = None) -> BulkResult:
    """Do ``action`` (a key of ``FAILED_ACTIONS``) to each posting; ones the rules refuse are reported and
    left alone, the others are changed (the caller commits them). ``config`` prices held unrated calls
    on re-post."""
    if action not in FAILED_ACTIONS:
        raise ActionError(f"Unknown action {action!r}.")
    note = check_text(note, "note")
    if not posting_ids:
        raise ActionError("Select at least one posting.")
    result = BulkResult()
    tariff = _Tariff(config)  # built once for the batch, and only if a held posting needs it
    for posting_id in dict.fromkeys(posting_ids):  # once each, in the order given
        try:
            _resolve(session, action, posting_id, note, actor, now, tariff)
        except ActionError as exc:
            result.refused.append((posting_id, str(exc)))
        else:
            result.done.append(posting_id)
    return result


class _Tariff:
    """The re-rating machinery for held postings, built from the configuration at first use."""

    def __init__(self, config: ApplianceConfig | None) -> None:
        self.config = config
        self._rerater: Rerater | None = None

    def rerater(self, posting: Posting, call: Call) -> Rerater:
        if self.config is None:
            raise ActionError(f"Posting {posting.id} was held because call {call.id} could not be rated "
                              f"({posting.reason}); re-posting re-rates it, which needs the tariff, and this "
                              "request did not have the configuration. Run `appliance rerate` for the day "
                              "of the call once the tariff is fixed, or write the posting off.")
        if self._rerater is None:
            self._rerater = Rerater(self.config)
        return self._rerater


def _resolve(session: Session, action: str, posting_id: int, note: str, actor: str, now: datetime,
             tariff: _Tariff | None = None) -> Posting:
    new_state, audit_action, words = FAILED_ACTIONS[action]
    note = check_text(note, "note")
    if session.get(Posting, posting_id) is None:
        raise ActionError(f"There is no posting {posting_id}.")
    posting = _lock(session, posting_id)
    if posting.state != "failed":
        raise ActionError(f"Posting {posting_id} is {posting.state}, not failed: "
                          "someone dealt with it already.")
    before = {"state": posting.state, "attempts": posting.attempts, "answer": posting.answer_code,
              "reason": posting.reason}
    call = session.get(Call, posting.call_id) if posting.call_id is not None else None
    held = held_unrated(call, posting)
    if held and action == "mark_posted":
        raise ActionError(f"Posting {posting_id} was never sent to the PMS: call {posting.call_id} could not "
                          f"be rated ({posting.reason}). Re-post it once the tariff is fixed (it is re-rated "
                          "first), or write it off.")
    if held and action == "repost":
        assert call is not None
        _repost_held(session, (tariff or _Tariff(None)).rerater(posting, call), call, posting, note, actor,
                     now, before)
        return posting
    try:
        change_state(session, posting, new_state, f"{words} by {actor}: {note}", now, actor=actor)
    except IllegalTransition as exc:  # the checks above make this unreachable; keep the promise anyway
        raise ActionError(str(exc)) from exc
    posting.note = note
    if action == "repost":
        # Queued as new: the daemon takes open postings with no sent_at, at once (appliance.outbox).
        posting.sent_at = None
        posting.next_attempt_at = None
    audit.record(session, actor, audit_action, f"posting:{posting_id}", before=before,
                 after={"state": new_state, "room": posting.room, "amount": money(posting.amount)},
                 detail=note, at=now)
    log.info("posting %d %s by %s", posting_id, words, actor)
    return posting


def _repost_held(session: Session, rerater: Rerater, call: Call, posting: Posting, note: str, actor: str,
                 now: datetime, before: dict[str, object]) -> None:
    """Re-rate a held call with the tariff in force at its time; re-open its posting only if it now has
    a chargeable price. Nothing is changed before the checks pass."""
    rating = rerater.rating_of(call)
    if rating.problem:
        raise ActionError(f"Posting {posting.id}: call {call.id} still cannot be rated: {rating.problem}. "
                          "Fix the tariff (`appliance rate` shows how the call is priced), then re-post; "
                          "or write the posting off.")
    if not rating.chargeable:
        raise ActionError(f"Posting {posting.id}: re-rated, call {call.id} is not chargeable "
                          f"({rating.reason}); there is nothing to post. Write the posting off.")
    old_amount = posting.amount
    reopen_held(session, rerater, call, posting, rating, now,
                f"re-rated with the tariff in force at the call: {rating_words(rating)}; "
                f"re-posted by {actor}: {note}", actor)
    posting.note = note
    audit.record(session, actor, "posting.repost", f"posting:{posting.id}",
                 before={**before, "amount": money(old_amount)},
                 after={"state": "open", "room": posting.room, "amount": money(posting.amount),
                        "rated": rating_words(rating)},
                 detail=note, at=now)
    log.info("posting %d of unrated call %d re-rated (%s) and re-posted by %s", posting.id, call.id,
             money(posting.amount), actor)


def _lock(session: Session, posting_id: int) -> Posting:
    """The posting, read fresh after taking its row's write lock.

    The no-op UPDATE takes the lock on both databases (PostgreSQL: the row; SQLite: the database, and
    before this transaction reads, so it sees the latest commit); the SELECT ... FOR UPDATE then reloads
    the row over whatever this session had cached.
    """
    session.execute(update(Posting).where(Posting.id == posting_id).values(note=Posting.note)
                    .execution_options(synchronize_session=False))
    return session.scalars(select(Posting).where(Posting.id == posting_id).with_for_update()
                           .execution_options(populate_existing=True)).one()
