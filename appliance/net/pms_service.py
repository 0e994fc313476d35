"""The PMS link in the daemon: one posting in flight, answers recorded, guests tracked.

The outbox (``appliance.outbox``) decides and persists; this service only sequences: when the link is
ready and nothing is in flight it claims the next posting on the database thread (the claim commits the
P# before any byte is written), sends it, and waits for ``PostingAnswered`` or ``PostingUnanswered``.
Guest records update the occupancy history. Due retries are picked up by a periodic wake-up, which also:

- reads ``PmsCounter.resync_wanted`` (set by ``appliance pms resync``) and, when the link is idle,
  sends ``RequestResync`` (FIAS DR); a resync is otherwise requested only after data loss, at the first
  ``LinkReady`` of a database that has never held a stay (FIAS 2.20.23 §4 p.36-38: never on every start);
- checks link health (``appliance.linkhealth``): one alert when the link has been down, or the PMS has
  answered nothing, longer than the driver options' thresholds.

Night audit (NS ... NE) holds postings; the hold ends with NE, or when the link drops (the next
connection finds out afresh: a posting answered NA waits for its retry). The driver options may say how
the transport changes them (``for_transport``: FIAS LRC and ACK/NAK on serial) and ask for TLS (``tls``).
"""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from typing import Any

from sqlalchemy import func, select
from twisted.application.service import MultiService
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from appliance import linkhealth, linkstatus, occupancy
from appliance.config import LinkConfig
from appliance.db.models import PmsCounter, Stay
from appliance.drivers import DriverSpec
from appliance.errors import ConfigError
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
        self._resync_pending = False  # a resync is wanted; DR goes out when the link is idle
        self._resync_checking = False  # the LinkReady check of resync_wanted is on the DB thread
        self._ticking = False
        self._wake_loop = LoopingCall(self._tick)
        self._wake_loop.clock = reactor
        if hasattr(options, "for_transport"):
            options = options.for_transport(link.transport)
        self.options = options
        self._thresholds = linkhealth.Thresholds.from_options(options)
        tls = getattr(options, "tls", None)
        if tls is not None and link.transport != "tcp-client":
            raise ConfigError([("pms.options.tls", f"TLS needs transport tcp-client, not {link.transport}")])
        # A PMS link stamps DA/TI in the site's zone, so it is built with it.
        factory = LinkFactory(lambda: spec.make_link(options, tz=tz), reactor, self._handle, link.name,
                              on_connect=self._connected)
        make_transport_service(link, factory, reactor, tls=tls).setServiceParent(self)
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
        # Until the link says otherwise it is not up: a status left "up" by the last run must not hide an
        # outage from the health check.
        self._status("down", "not connected yet", _utc(self._clock))
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
        """Send the next due posting if the link can take it (or the resync it waits for)."""
        protocol = self.protocol
        if (protocol is None or self._claiming or self.in_flight is not None or self._resync_checking
                or self._resync_seen is not None or not link_ready(protocol.link)):
            return
        if self._resync_pending:
            self._send_resync(protocol)
            return
        if self._night_audit:
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
        if (protocol is not self.protocol or not link_ready(protocol.link) or not protocol.connected
                or self.in_flight is not None or self._night_audit or self._resync_pending
                or self._resync_seen is not None):
            # Nothing was written: give it back to the queue rather than leave it "sent".
            self._db.run(self._outbox.unclaim, command.sequence, _utc(self._clock)).addErrback(self._db_failed)
            return
        self.in_flight = command.sequence
        self.sent += 1
        self.log.info("PMS link {link}: posting P#{sequence} to room {room}, {amount} minor units",
                      link=self.link.name, sequence=command.sequence, room=command.room,
                      amount=command.amount_minor)
        protocol.send(command)

    def _can_claim_after(self, protocol: LinkProtocol, sequence: int) -> bool:
        return (not self._claiming and self.in_flight == sequence and not self._night_audit
                and not self._resync_pending and not self._resync_checking and self._resync_seen is None
                and link_ready(protocol.link))

    def _answer_and_claim(self, event: PostingAnswered, now: datetime, claim: bool) -> tuple[Any, Any]:
        raw = event.raw.decode("latin-1")
        if claim:
            return self._outbox.answer_and_claim(event.sequence, event.status, event.text, raw, now)
        return self._outbox.record_answer(event.sequence, event.status, event.text, raw, now), None

    def _answered_and_claimed(self, result: tuple[Any, Any], sequence: int, protocol: LinkProtocol,
                              claimed: bool) -> None:
        posting, command = result
        if claimed:
            self._claiming = False
        if self.in_flight == sequence:
            self.in_flight = None
        if command is not None:
            self._send_claimed(command, protocol)
        self._answered(posting, sequence)

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
            # The answer and the next claim share one trip to the database thread (throughput: a
            # restored link drains its queue at hundreds of postings a second); the claim is given
            # back if the link cannot take it when it returns.
            claim = self._can_claim_after(protocol, event.sequence)
            self._claiming = self._claiming or claim
            run(self._answer_and_claim, event, now, claim).addCallback(
                self._answered_and_claimed, event.sequence, protocol, claim).addErrback(self._db_failed)
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
            if getattr(protocol.link, "supports_resync", True) and not self._resync_checking:
                self._resync_checking = True
                run(self._wants_resync).addCallback(self._maybe_resync).addErrback(self._db_failed) \
                    .addBoth(self._resync_checked)
            self.wake()
        elif isinstance(event, LinkDown):
            self._status("down", event.reason, now)
            self._resync_seen = None
            self._night_audit = False  # the next connection finds out afresh
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

    def _maybe_resync(self, wanted: bool) -> None:
        if wanted:
            self._resync_pending = True

    def _resync_checked(self, passthrough: Any) -> None:
        self._resync_checking = False
        self.wake()

    def _send_resync(self, protocol: LinkProtocol) -> None:
        """DR, only with nothing in flight: a PA must not come back behind resync records (p.38)."""
        self._resync_pending = False
        self.log.info("PMS link {link}: requesting a guest database resync (DR)", link=self.link.name)
        protocol.send(RequestResync())

    def _tick(self) -> None:
        """Every few seconds: due retries, an admin's resync request, link health."""
        self.wake()
        if self._ticking:
            return
        self._ticking = True
        protocol = self.protocol
        supports = (protocol is not None and bool(protocol.connected)
                    and getattr(protocol.link, "supports_resync", True))
        self._db.run(self._periodic, _utc(self._clock), supports).addCallback(self._ticked) \
            .addErrback(self._db_failed).addBoth(self._tick_done)

    def _periodic(self, now: datetime, supports_resync: bool) -> tuple[bool, list[str]]:
        with self._sessions.begin() as session:
            wanted = False
            if supports_resync:
                counter = session.get(PmsCounter, self.link.name)
                if counter is not None and counter.resync_wanted:
                    counter.resync_wanted = False
                    wanted = True
            alerts = linkhealth.check(session, self.link.name, self._thresholds, now)
            return wanted, [alert.message for alert in alerts]

    def _ticked(self, result: tuple[bool, list[str]]) -> None:
        wanted, alerts = result
        for message in alerts:
            self.log.warn("PMS link {link}: alert: {message}", link=self.link.name, message=message)
        if wanted:
            self.log.info("PMS link {link}: an administrator asked for a resync", link=self.link.name)
            self._resync_pending = True
            self.wake()

    def _tick_done(self, passthrough: Any) -> None:
        self._ticking = False

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
