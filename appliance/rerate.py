"""Re-rating: price stored calls again with the tariff in force when they were made, and report changes.

Sources: CGRateS ReprocessCDRs and "rebuild CDRs that failed rating" (peers.md S7: #621, PR #4497),
CDRTool's re-rating (S15), domain.md "Posting states". The rule: a charge that may have reached the PMS is
never changed silently; a correction is a new posting (a refund, or a supplementary charge) with its own
history, and every difference appears in the report.

Pure database functions (the session is passed in, the caller commits); ``now`` is a parameter. Each
outgoing call in the window is re-classified and re-rated with the plan chosen by its stored trunk and
extension category and the version in force at its start. Then, by where the call is:

- ``excluded``: the stored rating is updated; if it was not chargeable and now is, and the routing rules
  of the pipeline (answered, guest room, stay at call time, PMS link) say *charge*, and that stay is still
  in house, the call becomes ``charge`` with a new posting whose history says why (``charged``);
- ``charge`` with its posting not yet sent (``open`` unsent, ``retry``): the posting's amount is updated
  with a history line (``updated``), or, if the call is no longer chargeable, the posting is withdrawn
  (``open`` -> ``failed`` -> ``excluded``, the write-off path of appliance.postings) (``withdrawn``);
- ``charge`` and posted (``ok``): with ``correct_posted`` and the guest still in house, the difference
  is posted as a refund or a supplementary charge (``refund`` / ``extra charge``); otherwise reported
  only (``review``). Postings in flight or failed are reported only: a person decides;
- ``charge`` *held as not rated* (issue 3: the pipeline stores a chargeable call the tariff cannot price
  as ``charge`` with ``rating.rule == "not rated"`` and a ``failed`` posting of 0, reason "not rated: ...";
  ``held_unrated``): every one is listed. Now rated and chargeable: the call takes the rating and its
  posting the amount, ``failed -> open`` with a history line (``re-opened``), unless the guest has checked
  out (amount stored, posting left ``failed`` for a person: ``review``); rated but not chargeable: the
  posting is withdrawn (``failed -> excluded``, ``withdrawn``); still not rated: nothing changes
  (``not rated``, with the problem). ``appliance.actions.repost`` uses ``reopen_held`` the same way.

The tariff version is not a column: it is in the breakdown stored in ``Call.rating`` (``plan``,
``version``, ``version_from``), with a ``rerated`` entry recording the previous amount and version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.config import ApplianceConfig
from appliance.db.models import Call, Posting, Stay
from appliance.events import CallRecord
from appliance.extensions import ExtensionDirectory
from appliance.numbering import Classifier, plan_for_site
from appliance.outbox import change_state
from appliance.pipeline import Pipeline, add_posting
from appliance.rating import Rating, RatingInput, TariffBook, rate, unrated

ZERO = Decimal("0")


@dataclass
class Change:
    call_id: int
    start: datetime
    extension: str
    room: str
    dialled: str
    old_class: str
    new_class: str
    old_amount: Decimal
    new_amount: Decimal
    old_disposition: str
    new_disposition: str
    action: str  # updated | charged | withdrawn | refund | extra charge | review | re-opened | not rated
    note: str = ""
    posting_id: int | None = None
    posting_state: str = ""
    new_posting_id: int | None = None


@dataclass
class RerateReport:
    start: datetime
    end: datetime
    dry_run: bool
    considered: int = 0
    unchanged: int = 0
    changes: list[Change] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for change in self.changes if change.action == action)


class Rerater:
    """Classification, tariff book and routing rules of a configuration, for re-rating stored calls."""

    def __init__(self, config: ApplianceConfig) -> None:
        self.config = config
        self.classify = Classifier(plan_for_site(config.site, free_numbers=config.tariff.free_numbers))
        self.book = TariffBook(config.tariff, config.site.tz)
        # Only Pipeline.route is used: the routing rules must be the daemon's, not a copy of them.
        self.pipeline = Pipeline(config, None, {})  # type: ignore[arg-type]
        self.pms_link = config.pms.name if config.pms else ""
        self.extensions = ExtensionDirectory(fallback=config.extension_map())  # read by rerate()

    def rating_of(self, call: Call) -> Rating:
        classification = self.classify(call.dialled)
        try:
            return rate(RatingInput(classification=classification, duration=call.duration, start=call.start,
                                    trunk=call.trunk, category=call.category), self.book)
        except Exception as exc:  # one broken call must not stop a re-rating run
            return unrated(classification, call.duration, exc)


def rerate(session: Session, config: ApplianceConfig, *, start: datetime, end: datetime, now: datetime,
           dry_run: bool = False, correct_posted: bool = False, actor: str = "rerate",
           rerater: Rerater | None = None) -> RerateReport:
    """Re-rate outgoing calls with ``start <= call.start < end``; with ``dry_run`` nothing is written."""
    rerater = rerater or Rerater(config)
    rerater.extensions.load(session, now)
    report = RerateReport(start=start, end=end, dry_run=dry_run)
    calls = list(session.scalars(  # read first: the loop below flushes new postings into the session
        select(Call).where(Call.start >= start, Call.start < end, Call.direction == "outgoing",
                           Call.disposition.in_(("excluded", "charge")))
        .order_by(Call.start, Call.id)
    ))
    for call in calls:
        report.considered += 1
        rating = rerater.rating_of(call)
        new_class = rerater.classify(call.dialled).call_class
        held = _held_posting(session, call, lock=not dry_run)
        if held is not None:  # listed whatever the outcome: each one waits for the tariff to be fixed
            report.changes.append(_held(session, rerater, call, held, rating, now, dry_run, actor))
            continue
        if rating.amount == call.amount and new_class == call.call_class:
            report.unchanged += 1
            continue
        change = Change(call_id=call.id, start=call.start, extension=call.extension, room=call.room,
                        dialled=call.dialled, old_class=call.call_class, new_class=new_class,
                        old_amount=call.amount, new_amount=rating.amount, old_disposition=call.disposition,
                        new_disposition=call.disposition, action="updated")
        if call.disposition == "excluded":
            _excluded(session, rerater, call, rating, change, now, dry_run, actor)
        else:
            _charged(session, rerater, call, rating, change, now, dry_run, correct_posted, actor)
        report.changes.append(change)
    return report


def _excluded(session: Session, rerater: Rerater, call: Call, rating: Rating, change: Change, now: datetime,
              dry_run: bool, actor: str) -> None:
    record = _record(call)
    classification = rerater.classify(call.dialled)
    route = rerater.pipeline.route(session, record, call.category, call.room or _room(rerater, call),
                                   classification, rating)
    was_chargeable = call.amount > ZERO
    if route.disposition != "charge" or was_chargeable:
        change.note = route.reason if route.disposition == "excluded" else ""
        if not dry_run:
            _store(call, rating, classification, now)
            call.reason = (route.reason or call.reason)[:200]
        return
    stay = session.get(Stay, route.stay_id) if route.stay_id else None
    if stay is not None and stay.checked_out_at is not None and stay.checked_out_at <= now:
        change.note = f"chargeable now, but the guest of room {route.room} has checked out: not posted"
        if not dry_run:
            _store(call, rating, classification, now)
            call.reason = f"re-rated chargeable after check-out ({_words(rating)}); not posted"[:200]
        return
    change.action, change.new_disposition = "charged", "charge"
    change.note = f"was excluded: {call.reason}"
    if dry_run:
        return
    cause = f"re-rated on {now:%Y-%m-%d}: {_words(rating)} makes it chargeable (was excluded: {call.reason})"
    _store(call, rating, classification, now)
    call.disposition, call.reason, call.room, call.stay_id = "charge", "", route.room, route.stay_id
    session.flush()
    withdrawn = _charge_posting(session, call)
    if withdrawn is not None and withdrawn.state == "excluded":  # withdrawn by an earlier re-rating
        withdrawn.amount, withdrawn.sent_at, withdrawn.next_attempt_at = rating.amount, None, None
        change_state(session, withdrawn, "open", cause, now, actor=actor)
        change.new_posting_id = withdrawn.id
        return
    posting = add_posting(session, call=call, link=rerater.pms_link, room=route.room, stay_id=route.stay_id,
                          amount=rating.amount, currency=call.currency, now=now, cause=cause[:300],
                          actor=actor, destination=call.destination)
    change.new_posting_id = posting.id


def _charged(session: Session, rerater: Rerater, call: Call, rating: Rating, change: Change, now: datetime,
             dry_run: bool, correct_posted: bool, actor: str) -> None:
    posting = _charge_posting(session, call, lock=not dry_run)
    if posting is None:
        change.action, change.note = "review", "charged call without a charge posting"
        return
    change.posting_id, change.posting_state = posting.id, posting.state
    classification = rerater.classify(call.dialled)
    words = f"re-rated on {now:%Y-%m-%d}: {_m(call.amount)} -> {_m(rating.amount)} ({_words(rating)})"
    if posting.state in ("open", "retry") and posting.sent_at is None:
        if rating.chargeable:
            if not dry_run:
                posting.amount = rating.amount
                change_state(session, posting, posting.state, words, now, actor=actor)
                _store(call, rating, classification, now)
            return
        change.action, change.new_disposition = "withdrawn", "excluded"
        change.note = rating.reason
        if not dry_run:
            change_state(session, posting, "failed", f"withdrawn before sending: {words}", now, actor=actor)
            change_state(session, posting, "excluded", f"re-rated not chargeable: {rating.reason}", now,
                         actor=actor)
            _store(call, rating, classification, now)
            call.disposition, call.reason = "excluded", f"re-rated: {rating.reason}"[:200]
        return
    change.action = "review"
    if posting.state != "ok":
        change.note = {
            "refunded": "already refunded: nothing to correct",
            "failed": "the posting failed: resolve it first, then correct by hand",
            "excluded": "the posting was written off: correct by hand if needed",
        }.get(posting.state, "the posting is with the PMS awaiting its answer: correct by hand")
        return
    stay = session.get(Stay, posting.stay_id) if posting.stay_id else None
    if stay is None or (stay.checked_out_at is not None and stay.checked_out_at <= now):
        change.note = "posted, and the guest has checked out: correct the folio by hand"
        return
    if not correct_posted:
        change.note = "posted: not changed (run with --post-corrections to post the difference)"
        return
    difference = rating.amount - call.amount
    change.action = "refund" if difference < 0 else "extra charge"
    change.note = f"correction of {'-' if difference < 0 else '+'}{_m(abs(difference))}"
    if dry_run:
        return
    correction = add_posting(
        session, call=call if difference < 0 else None, link=posting.link, room=posting.room,
        stay_id=posting.stay_id, amount=abs(difference), currency=posting.currency, now=now,
        cause=f"correction of posting #{posting.id} (call {call.id}): {words}"[:300],
        kind="refund" if difference < 0 else "charge", actor=actor, destination=posting.destination,
        refund_of_id=posting.id if difference < 0 else None,
    )
    change.new_posting_id = correction.id
    full = difference < 0 and not rating.chargeable
    change_state(session, posting, "refunded" if full else "ok",
                 f"{words}; correction posting #{correction.id}", now, actor=actor)
    _store(call, rating, classification, now)


HELD_RULE = "not rated"  # Call.rating["rule"] of a call the tariff could not price


def held_unrated(call: Call | None, posting: Posting) -> bool:
    """A chargeable call the tariff could not price, held by the pipeline: the call is ``charge`` with the
    rule "not rated", its charge posting ``failed`` (amount 0, reason "not rated: ...")."""
    return (call is not None and posting.kind == "charge" and posting.state == "failed"
            and call.disposition == "charge" and (call.rating or {}).get("rule") == HELD_RULE)


def _held_posting(session: Session, call: Call, lock: bool) -> Posting | None:
    if call.disposition != "charge" or (call.rating or {}).get("rule") != HELD_RULE:
        return None
    posting = _charge_posting(session, call, lock=lock)
    return posting if posting is not None and held_unrated(call, posting) else None


def rating_words(rating: Rating) -> str:
    """"plan main version 2026 (in force from ...), 1.16": which tariff priced a call, for history lines."""
    b = rating.breakdown
    since = f" (in force from {b['version_from']})" if b.get("version_from") else ""
    return f"plan {b.get('plan')} version {b.get('version')}{since}, {_m(rating.amount)}"


def reopen_held(session: Session, rerater: Rerater, call: Call, posting: Posting, rating: Rating,
                now: datetime, cause: str, actor: str) -> None:
    """A held call now rated chargeable: the call takes the rating, the posting its amount, and goes
    ``failed -> open`` (queued as new: the daemon sends it with a fresh P#)."""
    _store(call, rating, rerater.classify(call.dialled), now)
    call.reason = ""
    posting.amount = rating.amount
    posting.sent_at = posting.next_attempt_at = None
    change_state(session, posting, "open", cause, now, actor=actor)


def _held(session: Session, rerater: Rerater, call: Call, posting: Posting, rating: Rating, now: datetime,
          dry_run: bool, actor: str) -> Change:
    new_class = rerater.classify(call.dialled).call_class
    change = Change(call_id=call.id, start=call.start, extension=call.extension, room=call.room,
                    dialled=call.dialled, old_class=call.call_class, new_class=new_class,
                    old_amount=call.amount, new_amount=rating.amount, old_disposition=call.disposition,
                    new_disposition=call.disposition, action="not rated", posting_id=posting.id,
                    posting_state=posting.state)
    if rating.problem:
        change.note = f"still not rated: {rating.problem}"
        return change
    day = f"re-rated on {now:%Y-%m-%d}"
    if not rating.chargeable:
        change.action, change.new_disposition, change.note = "withdrawn", "excluded", rating.reason
        if not dry_run:
            change_state(session, posting, "excluded", f"{day}: not chargeable: {rating.reason}", now,
                         actor=actor)
            _store(call, rating, rerater.classify(call.dialled), now)
            call.disposition, call.reason = "excluded", f"re-rated: {rating.reason}"[:200]
        return change
    stay = session.get(Stay, posting.stay_id) if posting.stay_id else None
    if stay is not None and stay.checked_out_at is not None and stay.checked_out_at <= now:
        change.action = "review"
        change.note = (f"rated, but the guest of room {posting.room} has checked out: posting left failed "
                       "with the amount (re-post it or write it off)")
        if not dry_run:
            _store(call, rating, rerater.classify(call.dialled), now)
            call.reason = "rated after check-out: not re-opened"
            posting.amount = rating.amount
            change_state(session, posting, "failed", f"{day}: {rating_words(rating)}; the guest has checked "
                         "out: not re-opened (re-post it or write it off)", now, actor=actor)
        return change
    change.action, change.note = "re-opened", f"was {posting.reason or 'not rated'}"
    if not dry_run:
        reopen_held(session, rerater, call, posting, rating, now,
                    f"{day}: {rating_words(rating)}; re-opened (was {posting.reason or 'not rated'})", actor)
    return change


def _charge_posting(session: Session, call: Call, lock: bool = False) -> Posting | None:
    query = select(Posting).where(Posting.call_id == call.id, Posting.kind == "charge")
    if lock:  # PostgreSQL: hold the row so the daemon does not send it while we change it
        query = query.with_for_update()
    return session.scalars(query).first()


def _store(call: Call, rating: Rating, classification: Any, now: datetime) -> None:
    previous = call.rating or {}
    call.rating = {**rating.breakdown, "rerated": {
        "at": now.isoformat(), "previous_amount": _m(call.amount), "previous_class": call.call_class,
        "previous_version": f"{previous.get('plan', '?')} {previous.get('version', '?')}"}}
    call.amount = rating.amount
    call.call_class = classification.call_class
    call.destination = classification.country or classification.e164


def _words(rating: Rating) -> str:
    b = rating.breakdown
    if "version" in b:
        return f"plan {b.get('plan')} version {b.get('version')}, {_m(rating.amount)}"
    return rating.reason or _m(rating.amount)


def _m(amount: Decimal) -> str:
    """Money for people: 0.8300 (as the database returns it) reads 0.83; never fewer than two decimals."""
    amount = amount.normalize()
    if amount.as_tuple().exponent > -2:  # type: ignore[operator]
        amount = amount.quantize(Decimal("0.01"))
    return format(amount, "f")


def _record(call: Call) -> CallRecord:
    return CallRecord(start=call.start, duration=call.duration, ring=call.ring, extension=call.extension,
                      trunk=call.trunk, dialled=call.dialled, caller=call.caller,
                      direction=call.direction, answered=call.answered)  # type: ignore[arg-type]


def _room(rerater: Rerater, call: Call) -> str:
    return rerater.extensions.get(call.extension, ("", ""))[1]


def moved(change: Change) -> str:
    return f" -> {change.new_disposition}" if change.new_disposition != change.old_disposition else ""


def format_report(report: RerateReport, currency: str) -> list[str]:
    mode = "dry run, nothing changed" if report.dry_run else "changes written"
    lines = [f"re-rating calls from {report.start.isoformat()} to {report.end.isoformat()} ({mode})"]
    for c in report.changes:
        posting = f" posting #{c.posting_id} {c.posting_state}" if c.posting_id else ""
        new = f" -> new posting #{c.new_posting_id}" if c.new_posting_id else ""
        lines.append(
            f"call {c.call_id} {c.start.isoformat()} ext {c.extension} room {c.room or '-'} {c.dialled}: "
            f"{c.old_class} {currency} {_m(c.old_amount)} -> {c.new_class} {currency} {_m(c.new_amount)}; "
            f"{c.old_disposition}{moved(c)}"
            f"{posting}: {c.action}{new}" + (f" ({c.note})" if c.note else ""))
    actions = ("updated", "charged", "re-opened", "withdrawn", "refund", "extra charge", "review", "not rated")
    summary = ", ".join(f"{report.count(a)} {a}" for a in actions if report.count(a))
    lines.append(f"{report.considered} calls considered, {report.unchanged} unchanged, "
                 f"{len(report.changes)} different" + (f": {summary}" if summary else ""))
    return lines
