"""The call pipeline: journal -> parse -> dedup -> classify -> rate -> route -> posting outbox (domain.md).

No Twisted and no clock: the daemon calls ``journal`` and ``process_pending`` from its database thread and
passes the time in. The journal commit comes first and alone, so raw bytes are durable before any parser
sees them; ``process_pending`` is restartable (a crash between the two leaves journal rows unprocessed,
and the next start processes them), and the dedup key makes a replayed or re-imported record a no-op.

The hot path writes with SQLAlchemy Core (one multi-row ``INSERT ... RETURNING`` each for calls, postings
and their opening history lines, per batch): building ORM objects for them cost two thirds of the time
(docs/performance.md). Observers (the alert rules) get a ``StoredCall``, a plain object with the stored
row's columns, in the same transaction, after the rows are inserted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from appliance.config import ApplianceConfig
from appliance.db.models import Alert, Call, JournalEntry, Posting, PostingEvent, QuarantinedLine, Stay
from appliance.drivers import DriverSpec, ParseContext
from appliance.events import CallRecord, Ignored
from appliance.extensions import ExtensionDirectory
from appliance.numbering import Classification, Classifier, plan_for_site
from appliance.occupancy import stay_at
from appliance.rating import Rating, RatingInput, TariffBook, rate, unrated
from appliance import legs

# Journal rows processed per transaction. Larger batches mean fewer commits (one fsync each) and fewer
# statements per record; 2,000 records of the longest format stay well under a megabyte in memory.
BATCH = 2000

CALLS = Call.__table__
POSTINGS = Posting.__table__
EVENTS = PostingEvent.__table__
JOURNAL = JournalEntry.__table__
QUARANTINE = QuarantinedLine.__table__
MERGED_REASON = "charged with the last leg of its call"


class CallObserver(Protocol):
    """Told about every call as it is stored (alert rules); must not commit or raise for ordinary calls.

    ``call`` has the attributes of ``appliance.db.models.Call`` (a ``StoredCall`` from the pipeline). An
    observer may also offer ``on_calls_stored(session, calls, now)``; the pipeline then calls that once
    per batch instead, so rules can look at a batch with one query rather than one per call. It is
    called after every row of the batch is inserted, in the batch's transaction (the alert engine's day
    totals rely on both: they count the batch's calls once, and only after that transaction commits).
    """

    def on_call_stored(self, session: Session, call: Any, now: datetime) -> None: ...


@dataclass(slots=True, kw_only=True)
class StoredCall:
    """A ``calls`` row as the pipeline inserted it: the column values of ``Call`` without an ORM object
    (building one per call was most of the ingest time). Observers read it like a ``Call``."""

    id: int
    journal_id: int | None
    link: str
    dedup_key: str
    received_at: datetime
    start: datetime
    duration: int
    ring: int | None
    extension: str
    trunk: str
    dialled: str
    caller: str
    direction: str
    answered: bool
    account_code: str
    pbx_call_id: str
    transfer: str
    raw: bytes
    category: str
    room: str
    stay_id: int | None
    call_class: str
    destination: str
    amount: Decimal
    currency: str
    rating: dict[str, Any]
    disposition: str
    reason: str


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


@dataclass(slots=True)
class _Held:
    """A leg kept back: already stored (``id``) or inserted with this batch (``values``)."""

    record: CallRecord
    id: int | None = None
    values: dict[str, Any] | None = None


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
        # The extensions table routes calls (docs/design.md, "Extensions"), re-read at most every few
        # seconds so a web admin edit routes the next call; while it is empty, the file's ranges do.
        self._extensions = ExtensionDirectory(fallback=config.extension_map())
        self._plan = plan_for_site(config.site, free_numbers=config.tariff.free_numbers)
        self._classify = Classifier(self._plan)
        self._book = TariffBook(config.tariff, config.site.tz)
        self._pms_link = config.pms.name if config.pms else ""
        self._currency = config.site.currency
        self._tz = config.site.tz
        # A ParseContext per arrival time: a batch of one TCP read shares one (a frozen dataclass per
        # record was a measurable share of parsing).
        self._contexts: dict[datetime, ParseContext] = {}

    # ------------------------------------------------------------ step 1: capture

    def journal(self, link: str, raws: Iterable[bytes], received_at: datetime) -> int:
        return self.journal_groups(link, [(raws, received_at)])

    def journal_groups(self, link: str, groups: Iterable[tuple[Iterable[bytes], datetime]]) -> int:
        """Journal several reads of one link (each with its own arrival time) in one commit."""
        rows = [{"link": link, "received_at": received_at, "raw": raw, "processed": False}
                for raws, received_at in groups for raw in raws]
        if not rows:
            return 0
        with self._sessions.begin() as session:
            session.execute(insert(JOURNAL), rows)
        return len(rows)

    def quarantine(self, link: str, items: Iterable[Ignored], received_at: datetime) -> int:
        rows = [{"link": link, "received_at": received_at, "raw": item.raw, "reason": item.reason[:300],
                 "journal_id": None} for item in items]
        if rows:
            with self._sessions.begin() as session:
                session.execute(insert(QUARANTINE), rows)
        return len(rows)

    def ingest(self, link: str, raws: list[bytes], received_at: datetime,
               now: datetime | None = None) -> IngestResult:
        """Journal (committed), then process everything pending, oldest first."""
        return self.ingest_groups(link, [(raws, received_at)], now or received_at)

    def ingest_groups(self, link: str, groups: list[tuple[list[bytes], datetime]],
                      now: datetime) -> IngestResult:
        """As ``ingest`` for several reads that queued up while the database thread was busy: one journal
        commit for all of them, then processing in large batches."""
        journaled = self.journal_groups(link, groups)
        result = self.process_pending(now)
        result.journaled = journaled
        return result

    # ------------------------------------------------------------ steps 2-7

    def process_pending(self, now: datetime, limit: int | None = None) -> IngestResult:
        result = IngestResult()
        while limit is None or result.calls + result.duplicates + result.quarantined + result.ignored < limit:
            with self._sessions.begin() as session:
                entries = session.execute(
                    select(JOURNAL.c.id, JOURNAL.c.link, JOURNAL.c.received_at, JOURNAL.c.raw)
                    .where(JOURNAL.c.processed.is_(False)).order_by(JOURNAL.c.id).limit(BATCH)
                ).all()
                if not entries:
                    break
                self._process_batch(session, entries, now, result)
                session.execute(update(JOURNAL).where(JOURNAL.c.id.in_([e.id for e in entries]))
                                .values(processed=True))
            if len(entries) < BATCH:
                break
        return result

    def _process_batch(self, session: Session, entries: Sequence[Any], now: datetime,
                       result: IngestResult) -> None:
        """Parse, dedup, rate and route a batch with a handful of statements, not a few per record: a PBX
        replaying its buffer or a year of log files must go fast (domain.md, "Volumes")."""
        parsed: list[tuple[Any, CallRecord, str]] = []
        quarantined = []
        for entry in entries:
            item = self.parse(entry.link, entry.raw, entry.received_at)
            if isinstance(item, Ignored):
                if item.quarantine:
                    quarantined.append({"journal_id": entry.id, "link": entry.link,
                                        "received_at": entry.received_at, "raw": entry.raw,
                                        "reason": item.reason[:300]})
                    result.quarantined += 1
                else:
                    result.ignored += 1
                continue
            parsed.append((entry, item, dedup_key(entry.link, item)))
        if quarantined:
            session.execute(insert(QUARANTINE), quarantined)
        if not parsed:
            return
        self._extensions.refresh_if_due(session, now)
        seen = set(session.scalars(select(CALLS.c.dedup_key)
                                   .where(CALLS.c.dedup_key.in_({k for _, _, k in parsed}))))
        fresh = []
        for entry, record, key in parsed:
            if key in seen:
                result.duplicates += 1
                continue
            seen.add(key)
            fresh.append((entry, record, key))
        leg_rows: list[dict[str, Any]] = []
        fresh = self._join_legs(session, fresh, result, leg_rows)
        if leg_rows and not fresh:
            session.execute(insert(CALLS), leg_rows)
        if not fresh:
            return
        rooms = {self._extensions.get(r.extension, ("", ""))[1] for _, r, _ in fresh}
        stays = StayLookup.load(session, rooms,
                                min(r.start for _, r, _ in fresh), max(r.start for _, r, _ in fresh))
        built = [self._build_call(session, entry, record, key, stays.find) for entry, record, key in fresh]
        rows = [values for values, _ in built]
        # Held legs in the same statement as the calls. RETURNING gives each row its id without a flush per
        # object; rows are matched by their unique journal_id, because asking for RETURNING in parameter
        # order makes SQLAlchemy send one INSERT per row on SQLite.
        returned = dict(session.execute(insert(CALLS).returning(CALLS.c.journal_id, CALLS.c.id),
                                        [*leg_rows, *rows]).all())
        calls = [StoredCall(id=returned[values["journal_id"]], **values) for values in rows]
        ids = [call.id for call in calls]
        self._add_postings(session, [(call, rating) for call, (_, rating) in zip(calls, built)
                                     if call.disposition == "charge"], now, result)
        unrated = [Alert(rule="unrated_call", severity="warning", subject=call.extension,
                         message=f"call {call.id} from {call.extension} could not be rated: "
                                 f"{rating.problem}"[:500], call_id=call.id, created_at=now)
                   for call, (_, rating) in zip(calls, built) if rating.problem]
        # A call the tariff cannot price is held, never silently free: someone must fix the tariff.
        session.add_all(unrated)
        for observer in self._observers:
            # In the calls' own transaction: an alert about a call is stored with the call or not at all.
            batch = getattr(observer, "on_calls_stored", None)
            if batch is not None:
                batch(session, calls, now)
            else:
                for call in calls:
                    observer.on_call_stored(session, call, now)
        result.call_ids.extend(ids)
        result.calls += len(calls)

    def _add_postings(self, session: Session, charges: list[tuple[StoredCall, Rating]], now: datetime,
                      result: IngestResult) -> None:
        """One posting per chargeable call with its opening history line. A call that could not be rated
        gets its posting directly in ``failed`` (amount 0, the reason), so it waits for a person in the
        failed-posting review instead of being silently free or sent to the PMS (the outbox claims only
        ``open`` and ``retry``)."""
        if not charges:
            return
        rows, causes = [], []
        for call, rating in charges:
            state, reason = ("failed", rating.reason[:300]) if rating.problem else ("open", "queued")
            causes.append((state, reason if rating.problem else "call rated and routed"))
            rows.append({"call_id": call.id, "kind": "charge", "refund_of_id": None, "link": self._pms_link,
                         "room": call.room, "stay_id": call.stay_id, "amount": rating.amount,
                         "currency": call.currency, "destination": call.destination, "state": state,
                         "reason": reason, "sequence": None, "attempts": 0, "next_attempt_at": None,
                         "sent_at": None, "answered_at": None, "answer_code": "", "answer_text": "",
                         "created_at": now, "created_by": "daemon", "updated_at": now, "note": ""})
        # Matched by call id (one charge posting per call), for the reason given for calls above.
        returned = dict(session.execute(insert(POSTINGS).returning(POSTINGS.c.call_id, POSTINGS.c.id),
                                        rows).all())
        ids = [returned[call.id] for call, _ in charges]
        session.execute(insert(EVENTS), [
            {"posting_id": posting_id, "at": now, "from_state": "", "to_state": state, "cause": cause[:300],
             "actor": "daemon", "sequence": None, "raw": ""}
            for posting_id, (state, cause) in zip(ids, causes)])
        result.postings += len(ids)

    def _join_legs(self, session: Session, fresh: list[tuple[Any, CallRecord, str]], result: IngestResult,
                   leg_rows: list[dict[str, Any]]) -> list[tuple[Any, CallRecord, str]]:
        """Transfer legs (``appliance.legs``): a record that is not the last leg of its call is stored as
        a ``leg`` row (appended to ``leg_rows``) and not rated; the record that ends the call is merged with
        the held legs of the same link and key (within ``legs.MAX_CALL_SPAN``) and then rated, routed and
        charged once. One query per batch, and only when the batch has records with a leg key."""
        keyed = {(entry.link, record.call_id) for entry, record, _ in fresh if legs.leg_key(record)}
        if not keyed:
            return fresh
        held: dict[tuple[str, str], list[_Held]] = {}
        stored = session.execute(select(*[CALLS.c[name] for name in LEG_COLUMNS], CALLS.c.id, CALLS.c.link)
                                 .where(CALLS.c.disposition == "leg",
                                        CALLS.c.pbx_call_id.in_({call_id for _, call_id in keyed})))
        for row in stored:
            if (row.link, row.pbx_call_id) in keyed:
                held.setdefault((row.link, row.pbx_call_id), []).append(
                    _Held(self._leg_record(row), id=row.id))
        kept = []
        merged: list[int] = []
        for entry, record, key in fresh:
            group = (entry.link, record.call_id)
            if legs.leg_key(record) is None:
                kept.append((entry, record, key))
            elif legs.is_continued(record):
                values = self._leg_values(entry, record, key)
                leg_rows.append(values)
                held.setdefault(group, []).append(
                    _Held(self._leg_record_of(record, entry.raw), values=values))
                result.calls += 1
            else:
                earlier = [leg for leg in held.pop(group, []) if legs.belongs(leg.record, record)]
                for leg in earlier:
                    if leg.values is not None:
                        leg.values.update(disposition="merged", reason=MERGED_REASON)
                    else:
                        merged.append(leg.id)  # type: ignore[arg-type]
                if earlier:
                    record = legs.merge_legs([*(leg.record for leg in earlier), record])
                kept.append((entry, record, key))
        if merged:
            session.execute(update(CALLS).where(CALLS.c.id.in_(merged))
                            .values(disposition="merged", reason=MERGED_REASON))
        return kept

    def _leg_values(self, entry: Any, record: CallRecord, key: str) -> dict[str, Any]:
        """A held leg: stored so nothing is lost and a replay is a duplicate, but not rated or charged."""
        return {
            "journal_id": entry.id, "link": entry.link, "dedup_key": key, "received_at": entry.received_at,
            "start": record.start, "duration": record.duration, "ring": record.ring,
            "extension": record.extension, "trunk": record.trunk, "dialled": record.dialled,
            "caller": record.caller, "direction": record.direction, "answered": record.answered,
            "account_code": record.account_code, "pbx_call_id": record.call_id, "transfer": record.transfer,
            "raw": record.raw or entry.raw,
            "category": self._extensions.get(record.extension, ("unknown", ""))[0], "room": "",
            "stay_id": None, "call_class": "leg", "destination": "", "amount": Decimal("0"),
            "currency": self._currency, "rating": {"rule": "leg"}, "disposition": "leg",
            "reason": "a leg of a transferred call: charged with the call's last leg",
        }

    def _leg_record(self, row: Any) -> CallRecord:
        """A held leg back as the driver gave it (start in the site's zone, for tariff bands)."""
        return CallRecord(
            start=row.start.astimezone(self._tz), duration=row.duration, ring=row.ring,
            extension=row.extension, trunk=row.trunk, dialled=row.dialled, caller=row.caller,
            direction=row.direction, answered=row.answered, account_code=row.account_code,
            call_id=row.pbx_call_id, transfer=row.transfer, raw=row.raw,
        )

    def _leg_record_of(self, record: CallRecord, raw: bytes) -> CallRecord:
        """A leg of this batch as it will read back from its row (same start in the site's zone, raw)."""
        return replace(record, start=record.start.astimezone(self._tz), raw=record.raw or raw)

    def parse(self, link: str, raw: bytes, received_at: datetime) -> CallRecord | Ignored:
        spec = self._drivers.get(link)
        if spec is None or spec.parse_record is None:
            return Ignored(reason=f"link {link!r} is not configured for a PBX driver", raw=raw)
        context = self._contexts.get(received_at)
        if context is None:
            if len(self._contexts) > 64:
                self._contexts.clear()
            context = self._contexts[received_at] = ParseContext(tz=self._tz, received_at=received_at)
        try:
            return spec.parse_record(raw, self._options.get(link), context)
        except Exception as exc:  # a driver bug must quarantine one record, not stop the stream
            return Ignored(reason=f"driver {spec.name} failed: {type(exc).__name__}: {exc}", raw=raw)

    def _build_call(self, session: Session, entry: Any, record: CallRecord, key: str,
                    find_stay: StayFinder) -> tuple[dict[str, Any], Rating]:
        """The ``calls`` row of a fresh record (column values) and its rating."""
        category, ext_room = self._extensions.get(record.extension, ("unknown", ""))
        classification, rating = self.classify_and_rate(record)
        route = self.route(session, record, category, ext_room, classification, rating, find_stay,
                           hold_unrated=True)
        values = {
            "journal_id": entry.id, "link": entry.link, "dedup_key": key, "received_at": entry.received_at,
            "start": record.start, "duration": record.duration, "ring": record.ring,
            "extension": record.extension, "trunk": record.trunk, "dialled": record.dialled,
            "caller": record.caller, "direction": record.direction, "answered": record.answered,
            "account_code": record.account_code, "pbx_call_id": record.call_id, "transfer": record.transfer,
            "raw": record.raw or entry.raw, "category": category, "room": route.room, "stay_id": route.stay_id,
            "call_class": classification.call_class,
            "destination": classification.country or classification.e164, "amount": rating.amount,
            "currency": self._currency, "rating": rating.breakdown, "disposition": route.disposition,
            "reason": route.reason[:200],
        }
        return values, rating

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
              classification: Classification, rating: Rating, find_stay: StayFinder | None = None,
              *, hold_unrated: bool = False) -> Route:
        """Where a rated call goes. With ``hold_unrated`` (the ingest path), a call that would be charged
        but could not be rated (``rating.problem``) is routed to ``charge`` with the reason "not rated: ...",
        and gets a ``failed`` posting of 0 (issue 3: held as failed, never silently free); without it such
        a call is excluded with that reason."""
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
        held = hold_unrated and bool(rating.problem)
        if not rating.chargeable and not held:
            return Route(disposition="excluded", reason=rating.reason, room=room)
        if not room:
            return Route(disposition="excluded", reason=f"extension {record.extension} has no room")
        if not self._pms_link:
            return Route(disposition="excluded", reason="no PMS link is configured", room=room)
        stay = find_stay(room, record.start) if find_stay else stay_at(session, room, record.start)
        if stay is None and not self._config.site.post_to_vacant_rooms:
            return Route(disposition="excluded", reason=f"room {room} was vacant at the time of the call", room=room)
        return Route(disposition="charge", reason=rating.reason if held else "", room=room,
                     stay_id=stay.id if stay else None)


# The columns a held leg is read back with (``Pipeline._leg_record``).
LEG_COLUMNS = ("start", "duration", "ring", "extension", "trunk", "dialled", "caller", "direction", "answered",
               "account_code", "pbx_call_id", "transfer", "raw")


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

    def __init__(self, stays: Sequence[Any]) -> None:
        # Rows with a stay's id, room, check-in and check-out (not ORM objects: only these are read).
        self._by_room: dict[str, list[Any]] = {}
        for stay in sorted(stays, key=lambda s: (s.checked_in_at, s.id)):
            self._by_room.setdefault(stay.room, []).append(stay)

    @classmethod
    def load(cls, session: Session, rooms: set[str], earliest: datetime, latest: datetime) -> StayLookup:
        rooms.discard("")
        if not rooms:
            return cls([])
        return cls(list(session.execute(
            select(Stay.id, Stay.room, Stay.checked_in_at, Stay.checked_out_at)
            .where(Stay.room.in_(rooms), Stay.checked_in_at <= latest)
            .where(Stay.checked_out_at.is_(None) | (Stay.checked_out_at > earliest))
        )))

    def find(self, room: str, at: datetime) -> Any:
        for stay in self._by_room.get(room, ()):
            if stay.checked_in_at <= at and (stay.checked_out_at is None or stay.checked_out_at > at):
                return stay
        return None
