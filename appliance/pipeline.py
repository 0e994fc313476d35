"""The call pipeline: journal -> parse -> dedup -> classify -> rate -> route -> posting outbox (domain.md).

No Twisted and no clock: the daemon calls ``journal`` and ``process_pending`` from its database thread and
passes the time in. The journal commit comes first and alone, so raw bytes are durable before any parser
sees them; ``process_pending`` is restartable (a crash between the two leaves journal rows unprocessed,
and the next start processes them), and the dedup key makes a replayed or re-imported record a no-op.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from appliance.config import ApplianceConfig
from appliance.db.models import Alert, Call, JournalEntry, Posting, PostingEvent, QuarantinedLine, Stay
from appliance.drivers import DriverSpec, ParseContext
from appliance.events import CallRecord, Ignored
from appliance.numbering import Classification, Classifier, plan_for_site
from appliance.occupancy import stay_at
from appliance.rating import Rating, RatingInput, TariffBook, rate, unrated
from appliance import legs

BATCH = 500


class CallObserver(Protocol):
    """Told about every call as it is stored (alert rules); must not commit or raise for ordinary calls."""

    def on_call_stored(self, session: Session, call: Call, now: datetime) -> None: ...


@dataclass
class IngestResult:
    journaled: int = 0
    calls: int = 0
    duplicates: int = 0
    quarantined: int = 0
    ignored: int = 0
    postings: int = 0
    call_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True, slots=True)
class Route:
    disposition: str
    reason: str
    room: str = ""
    stay_id: int | None = None


def dedup_key(link: str, call: CallRecord) -> str:
    """The same call seen twice (replay, re-import, restart) has the same key (domain.md step 3)."""
    parts = (link, call.start.isoformat(), call.extension, call.dialled or call.caller, str(call.duration),
             call.call_id, call.direction)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class Pipeline:
    """Everything between a framed record and a posting row; one instance per daemon."""

    def __init__(self, config: ApplianceConfig, sessions: sessionmaker[Session],
                 drivers: dict[str, DriverSpec], observers: Sequence[CallObserver] = ()) -> None:
        self._config = config
        self._observers = tuple(observers)
        self._sessions = sessions
        self._drivers = drivers  # link name -> driver spec
        self._options = config.driver_options
        self._extensions = config.extension_map()
        self._plan = plan_for_site(config.site, free_numbers=config.tariff.free_numbers)
        self._classify = Classifier(self._plan)
        self._book = TariffBook(config.tariff, config.site.tz)
        self._pms_link = config.pms.name if config.pms else ""

    # ------------------------------------------------------------ step 1: capture

    def journal(self, link: str, raws: Iterable[bytes], received_at: datetime) -> int:
        rows = [{"link": link, "received_at": received_at, "raw": raw, "processed": False} for raw in raws]
        if not rows:
            return 0
        with self._sessions.begin() as session:
            session.execute(insert(JournalEntry), rows)
        return len(rows)

    def quarantine(self, link: str, items: Iterable[Ignored], received_at: datetime) -> int:
        rows = [{"link": link, "received_at": received_at, "raw": item.raw, "reason": item.reason[:300]}
                for item in items]
        if rows:
            with self._sessions.begin() as session:
                session.execute(insert(QuarantinedLine), rows)
        return len(rows)

    def ingest(self, link: str, raws: list[bytes], received_at: datetime,
               now: datetime | None = None) -> IngestResult:
        """Journal (committed), then process everything pending, oldest first."""
        journaled = self.journal(link, raws, received_at)
        result = self.process_pending(now or received_at)
        result.journaled = journaled
        return result

    # ------------------------------------------------------------ steps 2-7

    def process_pending(self, now: datetime, limit: int | None = None) -> IngestResult:
        result = IngestResult()
        while limit is None or result.calls + result.duplicates + result.quarantined + result.ignored < limit:
            with self._sessions.begin() as session:
                entries = list(session.scalars(
                    select(JournalEntry).where(JournalEntry.processed.is_(False))
                    .order_by(JournalEntry.id).limit(BATCH)
                ))
                if not entries:
                    break
                self._process_batch(session, entries, now, result)
                session.execute(
                    update(JournalEntry).where(JournalEntry.id.in_([e.id for e in entries]))
                    .values(processed=True)
                )
        return result

    def _process_batch(self, session: Session, entries: list[JournalEntry], now: datetime,
                       result: IngestResult) -> None:
        """Parse, dedup, rate and route a batch with a handful of statements, not a few per record: a PBX
        replaying its buffer or a year of log files must go fast (domain.md, "Volumes")."""
        parsed: list[tuple[JournalEntry, CallRecord, str]] = []
        for entry in entries:
            item = self.parse(entry.link, entry.raw, entry.received_at)
            if isinstance(item, Ignored):
                if item.quarantine:
                    session.add(QuarantinedLine(journal_id=entry.id, link=entry.link,
                                                received_at=entry.received_at, raw=entry.raw,
                                                reason=item.reason[:300]))
                    result.quarantined += 1
                else:
                    result.ignored += 1
                continue
            parsed.append((entry, item, dedup_key(entry.link, item)))
        if not parsed:
            return
        seen = set(session.scalars(select(Call.dedup_key).where(Call.dedup_key.in_({k for _, _, k in parsed}))))
        fresh = []
        for entry, record, key in parsed:
            if key in seen:
                result.duplicates += 1
                continue
            seen.add(key)
            fresh.append((entry, record, key))
        fresh = self._join_legs(session, fresh, result)
        if not fresh:
            return
        stays = StayLookup.load(session, {self._extensions.get(r.extension, ("", ""))[1] for _, r, _ in fresh},
                                min(r.start for _, r, _ in fresh), max(r.start for _, r, _ in fresh))
        built = [self._build_call(session, entry, record, key, stays.find) for entry, record, key in fresh]
        session.add_all(call for call, _ in built)
        session.flush()
        charges = [(call, rating) for call, rating in built if call.disposition == "charge"]
        postings = [new_posting(call=call, link=self._pms_link, room=call.room, stay_id=call.stay_id,
                                amount=rating.amount, currency=call.currency, now=now,
                                destination=call.destination) for call, rating in charges]
        session.add_all(postings)
        session.flush()
        session.add_all(opening_event(posting, now, "call rated and routed") for posting in postings)
        for call, rating in built:
            if rating.problem:
                # A call the tariff cannot price is held, never silently free: someone must fix the tariff.
                session.add(Alert(rule="unrated_call", severity="warning", subject=call.extension,
                                  message=f"call {call.id} from {call.extension} could not be rated: "
                                          f"{rating.problem}"[:500], call_id=call.id, created_at=now))
            for observer in self._observers:
                # In the call's own transaction: an alert about a call is stored with the call or not at all.
                observer.on_call_stored(session, call, now)
            result.call_ids.append(call.id)
        result.calls += len(built)
        result.postings += len(postings)

    def _join_legs(self, session: Session, fresh: list[tuple[JournalEntry, CallRecord, str]],
                   result: IngestResult) -> list[tuple[JournalEntry, CallRecord, str]]:
        """Transfer legs (``appliance.legs``): a record that is not the last leg of its call is stored as
        a ``leg`` row and not rated; the record that ends the call is merged with the held legs of the same
        link and key (within ``legs.MAX_CALL_SPAN``) and then rated, routed and charged once. One query
        per batch, and only when the batch has records with a leg key."""
        keyed = {(entry.link, record.call_id) for entry, record, _ in fresh if legs.leg_key(record)}
        if not keyed:
            return fresh
        held: dict[tuple[str, str], list[Call]] = {}
        rows = session.scalars(select(Call).where(Call.disposition == "leg",
                                                  Call.pbx_call_id.in_({call_id for _, call_id in keyed})))
        for row in rows:
            if (row.link, row.pbx_call_id) in keyed:
                held.setdefault((row.link, row.pbx_call_id), []).append(row)
        kept = []
        for entry, record, key in fresh:
            group = (entry.link, record.call_id)
            if legs.leg_key(record) is None:
                kept.append((entry, record, key))
            elif legs.is_continued(record):
                row = self._leg_row(entry, record, key)
                session.add(row)
                held.setdefault(group, []).append(row)
                result.calls += 1
            else:
                earlier = [row for row in held.pop(group, []) if legs.belongs(self._leg_record(row), record)]
                for row in earlier:
                    row.disposition, row.reason = "merged", "charged with the last leg of its call"
                if earlier:
                    record = legs.merge_legs([*(self._leg_record(row) for row in earlier), record])
                kept.append((entry, record, key))
        return kept

    def _leg_row(self, entry: JournalEntry, record: CallRecord, key: str) -> Call:
        """A held leg: stored so nothing is lost and a replay is a duplicate, but not rated or charged."""
        return Call(
            journal_id=entry.id, link=entry.link, dedup_key=key, received_at=entry.received_at,
            start=record.start, duration=record.duration, ring=record.ring, extension=record.extension,
            trunk=record.trunk, dialled=record.dialled, caller=record.caller, direction=record.direction,
            answered=record.answered, account_code=record.account_code, pbx_call_id=record.call_id,
            transfer=record.transfer, raw=record.raw or entry.raw,
            category=self._extensions.get(record.extension, ("unknown", ""))[0], room="", call_class="leg",
            destination="", amount=Decimal("0"), currency=self._config.site.currency, rating={"rule": "leg"},
            disposition="leg", reason="a leg of a transferred call: charged with the call's last leg",
        )

    def _leg_record(self, row: Call) -> CallRecord:
        """A held leg back as the driver gave it (start in the site's zone, for tariff bands)."""
        return CallRecord(
            start=row.start.astimezone(self._config.site.tz), duration=row.duration, ring=row.ring,
            extension=row.extension, trunk=row.trunk, dialled=row.dialled, caller=row.caller,
            direction=row.direction, answered=row.answered, account_code=row.account_code,
            call_id=row.pbx_call_id, transfer=row.transfer, raw=row.raw,
        )

    def parse(self, link: str, raw: bytes, received_at: datetime) -> CallRecord | Ignored:
        spec = self._drivers.get(link)
        if spec is None or spec.parse_record is None:
            return Ignored(reason=f"link {link!r} is not configured for a PBX driver", raw=raw)
        context = ParseContext(tz=self._config.site.tz, received_at=received_at)
        try:
            return spec.parse_record(raw, self._options.get(link), context)
        except Exception as exc:  # a driver bug must quarantine one record, not stop the stream
            return Ignored(reason=f"driver {spec.name} failed: {type(exc).__name__}: {exc}", raw=raw)

    def _build_call(self, session: Session, entry: JournalEntry, record: CallRecord, key: str,
                    find_stay: StayFinder) -> tuple[Call, Rating]:
        category, ext_room = self._extensions.get(record.extension, ("unknown", ""))
        classification, rating = self.classify_and_rate(record)
        route = self.route(session, record, category, ext_room, classification, rating, find_stay)
        call = Call(
            journal_id=entry.id, link=entry.link, dedup_key=key, received_at=entry.received_at,
            start=record.start, duration=record.duration, ring=record.ring, extension=record.extension,
            trunk=record.trunk, dialled=record.dialled, caller=record.caller, direction=record.direction,
            answered=record.answered, account_code=record.account_code, pbx_call_id=record.call_id,
            transfer=record.transfer, raw=record.raw or entry.raw, category=category, room=route.room,
            stay_id=route.stay_id, call_class=classification.call_class,
            destination=classification.country or classification.e164, amount=rating.amount,
            currency=self._config.site.currency, rating=rating.breakdown, disposition=route.disposition,
            reason=route.reason[:200],
        )
        return call, rating

    def classify_and_rate(self, record: CallRecord) -> tuple[Classification, Rating]:
        if record.direction != "outgoing":
            classification = Classification(call_class="internal" if record.direction == "internal" else "unknown",
                                            number=record.dialled or record.caller, reason=record.direction)
            return classification, Rating(amount=Decimal("0"), chargeable=False,
                                          reason=f"{record.direction} call", breakdown={"rule": record.direction})
        classification = self._classify(record.dialled)
        category = self._extensions.get(record.extension, ("unknown", ""))[0]
        try:
            rating = rate(RatingInput(classification=classification, duration=record.duration,
                                      start=record.start, trunk=record.trunk, category=category), self._book)
        except Exception as exc:  # a tariff bug must hold one call with its reason, never stop the stream
            rating = unrated(classification, record.duration, exc)
        return classification, rating

    def route(self, session: Session, record: CallRecord, category: str, room: str,
              classification: Classification, rating: Rating, find_stay: StayFinder | None = None) -> Route:
        if record.direction == "internal":
            return Route(disposition="internal", reason="internal call")
        if record.direction == "incoming":
            return Route(disposition="incoming", reason="incoming call")
        if record.direction == "tandem":
            return Route(disposition="excluded", reason="tandem (trunk to trunk) call")
        if not record.answered:
            return Route(disposition="excluded", reason="not answered", room=room)
        if category != "guest":
            return Route(disposition="excluded", reason=f"extension category {category} is not charged", room=room)
        if not rating.chargeable:
            return Route(disposition="excluded", reason=rating.reason, room=room)
        if not room:
            return Route(disposition="excluded", reason=f"extension {record.extension} has no room")
        if not self._pms_link:
            return Route(disposition="excluded", reason="no PMS link is configured", room=room)
        stay = find_stay(room, record.start) if find_stay else stay_at(session, room, record.start)
        if stay is None and not self._config.site.post_to_vacant_rooms:
            return Route(disposition="excluded", reason=f"room {room} was vacant at the time of the call", room=room)
        return Route(disposition="charge", reason="", room=room, stay_id=stay.id if stay else None)


def new_posting(*, call: Call | None, link: str, room: str, stay_id: int | None, amount: Decimal, currency: str,
                now: datetime, kind: str = "charge", actor: str = "daemon", destination: str = "",
                refund_of_id: int | None = None) -> Posting:
    return Posting(
        call=call, kind=kind, link=link, room=room, stay_id=stay_id, amount=amount, currency=currency,
        destination=destination, state="open", reason="queued", attempts=0, created_at=now, created_by=actor,
        updated_at=now, refund_of_id=refund_of_id,
    )


def opening_event(posting: Posting, now: datetime, cause: str) -> PostingEvent:
    """The first line of a posting's history."""
    return PostingEvent(posting_id=posting.id, at=now, from_state="", to_state="open", cause=cause,
                        actor=posting.created_by)


def add_posting(session: Session, *, call: Call | None, link: str, room: str, stay_id: int | None,
                amount: Decimal, currency: str, now: datetime, cause: str, kind: str = "charge",
                actor: str = "daemon", destination: str = "", refund_of_id: int | None = None) -> Posting:
    """A new posting in ``open`` with the first line of its history."""
    posting = new_posting(call=call, link=link, room=room, stay_id=stay_id, amount=amount, currency=currency,
                          now=now, kind=kind, actor=actor, destination=destination, refund_of_id=refund_of_id)
    session.add(posting)
    session.flush()
    session.add(opening_event(posting, now, cause))
    return posting


StayFinder = Callable[[str, datetime], "Stay | None"]


class StayLookup:
    """The stays of a batch's rooms, loaded once; ``find`` answers as ``occupancy.stay_at`` does (the stay
    that held the room at the time; with sharers, the earliest check-in)."""

    def __init__(self, stays: list[Stay]) -> None:
        self._by_room: dict[str, list[Stay]] = {}
        for stay in sorted(stays, key=lambda s: (s.checked_in_at, s.id)):
            self._by_room.setdefault(stay.room, []).append(stay)

    @classmethod
    def load(cls, session: Session, rooms: set[str], earliest: datetime, latest: datetime) -> StayLookup:
        rooms.discard("")
        if not rooms:
            return cls([])
        return cls(list(session.scalars(
            select(Stay).where(Stay.room.in_(rooms), Stay.checked_in_at <= latest)
            .where(Stay.checked_out_at.is_(None) | (Stay.checked_out_at > earliest))
        )))

    def find(self, room: str, at: datetime) -> Stay | None:
        for stay in self._by_room.get(room, ()):
            if stay.checked_in_at <= at and (stay.checked_out_at is None or stay.checked_out_at > at):
                return stay
        return None
