"""The PMS link in the daemon: one posting in flight, answers recorded, guests tracked.

The outbox (``appliance.outbox``) decides and persists; this service only sequences: when the link is
ready and nothing is in flight it claims the next posting on the database thread (the claim commits the
P# before any byte is written), sends it, and waits for ``PostingAnswered`` or ``PostingUnanswered``.
Guest records update the occupancy history. Due retries are picked up by a periodic wake-up.
"""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from typing import Any

from sqlalchemy import func, select
from twisted.application.service import MultiService
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from appliance import linkstatus, occupancy
from appliance.config import LinkConfig
from appliance.db.models import PmsCounter, Stay
from appliance.drivers import DriverSpec
from appliance.events import (
    Event, GuestChanged, GuestCheckedIn, GuestCheckedOut, Ignored, LinkDown, LinkReady, LinkUp,
    NightAuditEnded, NightAuditStarted, PostCharge, PostingAnswered, PostingUnanswered, RequestResync,
    ResyncEnded, ResyncStarted,
)
from appliance.net.adapter import LinkFactory, LinkProtocol
from appliance.net.dbthread import DatabaseThread
from appliance.net.transports import make_transport_service
from appliance.outbox import Outbox

GUEST_EVENTS = (GuestCheckedIn, GuestCheckedOut, GuestChanged)
WAKE_INTERVAL = 5.0


def _utc(clock: Any) -> datetime:
    return datetime.fromtimestamp(clock.seconds(), tz=timezone.utc)


def link_ready(link: Any) -> bool:
    ready = getattr(link, "ready_for_posting", False)
    return bool(ready() if callable(ready) else ready)


class PmsLinkService(MultiService):
    log = Logger()

    def __init__(self, link: LinkConfig, spec: DriverSpec, options: Any, outbox: Outbox, db: DatabaseThread,
                 sessions: Any, reactor: Any, tz: tzinfo = timezone.utc) -> None:
        super().__init__()
        self.link = link
        self._tz = tz
        self._outbox = outbox
        self._db = db
        self._sessions = sessions
        self._clock = reactor
        self.protocol: LinkProtocol | None = None
        self.in_flight: int | None = None
        self._claiming = False
        self._night_audit = False
        self._resync_seen: set[tuple[str, str]] | None = None
        self._wake_loop = LoopingCall(self.wake)
        self._wake_loop.clock = reactor
        # A PMS link stamps DA/TI in the site's zone, so it is built with it.
        factory = LinkFactory(lambda: spec.make_link(options, tz=tz), reactor, self._handle, link.name,
                              on_connect=self._connected)
        make_transport_service(link, factory, reactor).setServiceParent(self)
        self.sent = 0
        self.answered = 0

    def startService(self) -> None:  # noqa: N802
        # Postings sent before a crash have unknown delivery: fail them before anything is sent.
        self._db.run(self._outbox.recover_in_flight, _utc(self._clock)).addCallbacks(
            self._recovered, self._db_failed)

    def _recovered(self, count: int) -> None:
        if count:
            self.log.warn("PMS link {link}: {count} posting(s) were awaiting an answer when the appliance "
                          "stopped; marked failed for review", link=self.link.name, count=count)
        super().startService()
        self._wake_loop.start(WAKE_INTERVAL, now=False)

    def stopService(self) -> Any:  # noqa: N802
        if self._wake_loop.running:
            self._wake_loop.stop()
        return super().stopService()

    def _connected(self, protocol: LinkProtocol) -> None:
        self.protocol = protocol

    # ------------------------------------------------------------ posting flow

    def wake(self) -> None:
        """Send the next due posting if the link can take it."""
        protocol = self.protocol
        if (protocol is None or self._claiming or self.in_flight is not None or self._night_audit
                or self._resync_seen is not None or not link_ready(protocol.link)):
            return
        self._claiming = True
        job = self._db.run(self._outbox.claim_next, _utc(self._clock))
        job.addCallback(self._send_claimed, protocol)
        job.addErrback(self._db_failed)
        job.addBoth(self._claim_done)

    def _claim_done(self, passthrough: Any) -> Any:
        self._claiming = False
        return passthrough

    def _send_claimed(self, command: PostCharge | None, protocol: LinkProtocol) -> None:
        if command is None:
            return
        if protocol is not self.protocol or not link_ready(protocol.link) or not protocol.connected:
            # Nothing was written: give it back to the queue rather than leave it "sent".
            self._db.run(self._outbox.unclaim, command.sequence, _utc(self._clock)).addErrback(self._db_failed)
            return
        self.in_flight = command.sequence
        self.sent += 1
        self.log.info("PMS link {link}: posting P#{sequence} to room {room}, {amount} minor units",
                      link=self.link.name, sequence=command.sequence, room=command.room,
                      amount=command.amount_minor)
        protocol.send(command)

    def _answered(self, posting: Any, sequence: int) -> None:
        if self.in_flight == sequence:
            self.in_flight = None
        if posting is not None:
            self.answered += 1
            self.log.info("PMS link {link}: P#{sequence} is {state} ({reason})", link=self.link.name,
                          sequence=sequence, state=posting.state, reason=posting.reason)
        self.wake()

    # ------------------------------------------------------------ events from the link

    def _handle(self, protocol: LinkProtocol, events: list[Event]) -> None:
        if protocol is not self.protocol:
            return  # a displaced connection's last words
        for event in events:
            self._dispatch(protocol, event, _utc(self._clock))

    def _dispatch(self, protocol: LinkProtocol, event: Event, now: datetime) -> None:
        run = self._db.run
        if isinstance(event, PostingAnswered):
            run(self._outbox.record_answer, event.sequence, event.status, event.text,
                event.raw.decode("latin-1"), now).addCallback(self._answered, event.sequence) \
                .addErrback(self._db_failed)
        elif isinstance(event, PostingUnanswered):
            self.log.warn("PMS link {link}: P#{sequence} unanswered: {reason}", link=self.link.name,
                          sequence=event.sequence, reason=event.reason)
            run(self._outbox.record_unanswered, event.sequence, event.reason, now) \
                .addCallback(self._answered, event.sequence).addErrback(self._db_failed)
        elif isinstance(event, GUEST_EVENTS):
            if self._resync_seen is not None and hasattr(event, "guest_id"):
                self._resync_seen.add((event.room, event.guest_id))
            run(self._apply_guest, event, now).addErrback(self._db_failed)
        elif isinstance(event, LinkUp):
            self._status("connected", event.detail or self.link.describe(), now)
        elif isinstance(event, LinkReady):
            self._status("up", "link alive, postings enabled", now)
            run(self._wants_resync).addCallback(self._maybe_resync, protocol).addErrback(self._db_failed)
            self.wake()
        elif isinstance(event, LinkDown):
            self._status("down", event.reason, now)
            self._resync_seen = None
            if not protocol.connected:
                self.protocol = None
                if self.in_flight is not None:  # the link should have said so; make sure the DB does
                    run(self._outbox.record_unanswered, self.in_flight, "link dropped while awaiting the answer",
                        now).addCallback(self._answered, self.in_flight).addErrback(self._db_failed)
        elif isinstance(event, NightAuditStarted):
            self._night_audit = True
            self.log.info("PMS link {link}: night audit started, postings held", link=self.link.name)
        elif isinstance(event, NightAuditEnded):
            self._night_audit = False
            run(self._outbox.release_night_audit, now).addCallback(lambda _: self.wake()).addErrback(
                self._db_failed)
        elif isinstance(event, ResyncStarted):
            self._resync_seen = set()
        elif isinstance(event, ResyncEnded):
            seen, self._resync_seen = self._resync_seen or set(), None
            run(self._finish_resync, seen, now).addErrback(self._db_failed)
            self.wake()
        elif isinstance(event, Ignored) and event.quarantine:
            self.log.warn("PMS link {link}: ignored a record: {reason}", link=self.link.name, reason=event.reason)

    def _apply_guest(self, event: Event, now: datetime) -> None:
        with self._sessions.begin() as session:
            description = occupancy.apply_guest_event(session, event, now, self._tz)
        self.log.info("PMS link {link}: {what}", link=self.link.name, what=description)

    def _wants_resync(self) -> bool:
        """Resync only after data loss: a database that has never held a stay, or an admin's request."""
        with self._sessions.begin() as session:
            counter = session.get(PmsCounter, self.link.name)
            never_had_guests = not session.scalar(select(func.count()).select_from(Stay))
            wanted = bool(counter and counter.resync_wanted) or (never_had_guests and counter is None)
            if counter is None:
                session.add(PmsCounter(link=self.link.name, next_sequence=1, resync_wanted=False))
            elif counter.resync_wanted:
                counter.resync_wanted = False
            return wanted

    def _maybe_resync(self, wanted: bool, protocol: LinkProtocol) -> None:
        if wanted and protocol is self.protocol and protocol.connected:
            self.log.info("PMS link {link}: requesting a guest database resync (DR)", link=self.link.name)
            protocol.send(RequestResync())

    def _finish_resync(self, seen: set[tuple[str, str]], now: datetime) -> None:
        with self._sessions.begin() as session:
            closed = occupancy.close_stays_not_seen(session, seen, now)
        self.log.info("PMS link {link}: resync finished; {rooms} guests restated, {closed} stays closed",
                      link=self.link.name, rooms=len(seen), closed=closed)

    def _status(self, state: str, detail: str, now: datetime) -> None:
        self.log.info("PMS link {link} {state}: {detail}", link=self.link.name, state=state, detail=detail)
        self._db.run(linkstatus.set_state, self._sessions, self.link.name, "pms", state, detail, now) \
            .addErrback(self._db_failed)

    def _db_failed(self, failure: Any) -> None:
        self.log.failure("PMS link {link}: database job failed", failure, link=self.link.name)
