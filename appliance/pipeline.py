"""The call pipeline: journal -> parse -> dedup -> classify -> rate -> route -> posting outbox (domain.md).

No Twisted and no clock: the daemon calls ``journal`` and ``process_pending`` from its database thread and
passes the time in. The journal commit comes first and alone, so raw bytes are durable before any parser
sees them; ``process_pending`` is restartable (a crash between the two leaves journal rows unprocessed,
and the next start processes them), and the dedup key makes a replayed or re-imported record a no-op.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from appliance.config import ApplianceConfig
from appliance.db.models import Alert, Call, JournalEntry, Posting, PostingEvent, QuarantinedLine
from appliance.drivers import DriverSpec, ParseContext
from appliance.events import CallRecord, Ignored
from appliance.numbering import Classification, Classifier, plan_for_site
from appliance.occupancy import stay_at
from appliance.rating import Rating, RatingInput, TariffBook, rate, unrated

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
        rows = [JournalEntry(link=link, received_at=received_at, raw=raw, processed=False) for raw in raws]
        if not rows:
            return 0
        with self._sessions.begin() as session:
            session.add_all(rows)
        return len(rows)

    def quarantine(self, link: str, items: Iterable[Ignored], received_at: datetime) -> int:
        rows = [QuarantinedLine(link=link, received_at=received_at, raw=item.raw, reason=item.reason)
                for item in items]
        if rows:
            with self._sessions.begin() as session:
                session.add_all(rows)
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
                seen: set[str] = set()
                for entry in entries:
                    self._process_entry(session, entry, now, seen, result)
                session.execute(
                    update(JournalEntry).where(JournalEntry.id.in_([e.id for e in entries]))
                    .values(processed=True)
                )
        return result

    def _process_entry(self, session: Session, entry: JournalEntry, now: datetime, seen: set[str],
                       result: IngestResult) -> None:
        parsed = self.parse(entry.link, entry.raw, entry.received_at)
        if isinstance(parsed, Ignored):
            if parsed.quarantine:
                session.add(QuarantinedLine(journal_id=entry.id, link=entry.link, received_at=entry.received_at,
                                            raw=entry.raw, reason=parsed.reason[:300]))
                result.quarantined += 1
            else:
                result.ignored += 1
            return
        key = dedup_key(entry.link, parsed)
        if key in seen or session.scalar(select(Call.id).where(Call.dedup_key == key)) is not None:
            result.duplicates += 1
            return
        seen.add(key)
        call = self.store_call(session, entry, parsed, key, now)
        result.calls += 1
        if call.disposition == "charge":
            result.postings += 1
        session.flush()
        result.call_ids.append(call.id)

    def parse(self, link: str, raw: bytes, received_at: datetime) -> CallRecord | Ignored:
        spec = self._drivers.get(link)
        if spec is None or spec.parse_record is None:
            return Ignored(reason=f"link {link!r} is not configured for a PBX driver", raw=raw)
        context = ParseContext(tz=self._config.site.tz, received_at=received_at)
        try:
            return spec.parse_record(raw, self._options.get(link), context)
        except Exception as exc:  # a driver bug must quarantine one record, not stop the stream
            return Ignored(reason=f"driver {spec.name} failed: {type(exc).__name__}: {exc}", raw=raw)

    def store_call(self, session: Session, entry: JournalEntry, record: CallRecord, key: str,
                   now: datetime) -> Call:
        category, ext_room = self._extensions.get(record.extension, ("unknown", ""))
        classification, rating = self.classify_and_rate(record)
        route = self.route(session, record, category, ext_room, classification, rating)
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
        session.add(call)
        if rating.problem:
            # A call the tariff cannot price is held, never silently free: someone must fix the tariff.
            session.flush()
            session.add(Alert(rule="unrated_call", severity="warning", subject=record.extension,
                              message=f"call {call.id} from {record.extension} could not be rated: {rating.problem}"[:500],
                              call_id=call.id, created_at=now))
        if route.disposition == "charge":
            session.flush()
            add_posting(session, call=call, link=self._pms_link, room=route.room, stay_id=route.stay_id,
                        amount=rating.amount, currency=call.currency, now=now, cause="call rated and routed",
                        destination=call.destination)
        if self._observers:
            session.flush()
            for observer in self._observers:
                # In the call's own transaction: an alert about a call is stored with the call or not at all.
                observer.on_call_stored(session, call, now)
        return call

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
              classification: Classification, rating: Rating) -> Route:
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
        stay = stay_at(session, room, record.start)
        if stay is None and not self._config.site.post_to_vacant_rooms:
            return Route(disposition="excluded", reason=f"room {room} was vacant at the time of the call", room=room)
        return Route(disposition="charge", reason="", room=room, stay_id=stay.id if stay else None)


def add_posting(session: Session, *, call: Call | None, link: str, room: str, stay_id: int | None,
                amount: Decimal, currency: str, now: datetime, cause: str, kind: str = "charge",
                actor: str = "daemon", destination: str = "", refund_of_id: int | None = None) -> Posting:
    """A new posting in ``open`` with the first line of its history."""
    posting = Posting(
        call=call, kind=kind, link=link, room=room, stay_id=stay_id, amount=amount, currency=currency,
        destination=destination, state="open", reason="queued", attempts=0, created_at=now, created_by=actor,
        updated_at=now, refund_of_id=refund_of_id,
    )
    session.add(posting)
    session.flush()
    session.add(PostingEvent(posting_id=posting.id, at=now, from_state="", to_state="open", cause=cause,
                             actor=actor))
    return posting

