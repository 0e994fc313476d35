"""The PMS link in the daemon: one posting in flight, answers recorded, guests tracked.

The outbox (``appliance.outbox``) decides and persists; this service only sequences, one PS in flight
(FIAS 2.20.23 p.85). It claims postings a small window ahead on the database thread (each claim commits
the P# before any byte is written), writes the next PS as soon as the last one is answered, and commits
answers and timeouts in batches, never letting more than ``PIPELINE_DEPTH`` sent postings wait for their
outcome's commit (the bound ``Outbox.recover_in_flight`` relies on). Claimed postings not written when the
link goes down, a night audit or a resync starts, or the daemon stops are given back to the queue.
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

from collections import deque
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
from appliance.outbox import PIPELINE_DEPTH, Answer, Outbox, Outcome, Settled, Unanswered

GUEST_EVENTS = (GuestCheckedIn, GuestCheckedOut, GuestChanged)
WAKE_INTERVAL = 5.0
WINDOW = 16  # postings claimed ahead in one commit while a queue drains (more costs memory, not safety)


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
            # ``appliance check-config`` reports this first (the options' ``transport_problems``); the
            # daemon refuses it all the same.
            raise ConfigError([("pms.options.tls", f"TLS needs transport tcp-client, not {link.transport}")])
        # A PMS link stamps DA/TI in the site's zone, so it is built with it.
        factory = LinkFactory(lambda: spec.make_link(options, tz=tz), reactor, self._handle, link.name,
                              on_connect=self._connected)
        make_transport_service(link, factory, reactor, tls=tls).setServiceParent(self)
        self.sent = 0
        self.answered = 0
        self._window: deque[PostCharge] = deque()  # claimed (committed), not yet written, in P# order
        self._unsettled: deque[int] = deque()  # written, outcome not yet committed, in send order
        self._done: set[int] = set()  # committed outcomes not yet at the front of _unsettled
        self._sent_at: dict[int, datetime] = {}
        self._pending: list[Answer | Unanswered] = []  # outcomes for the next commit, in arrival order
        self._release: list[int] = []  # claimed postings to give back unsent
        self._release_reason = ""
        self._flushing = False
        self._maybe_due = True
        self._stopping = False

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
        self._stopping = False
        super().startService()
        self._wake_loop.start(WAKE_INTERVAL, now=False)

    def stopService(self) -> Any:  # noqa: N802
        if self._wake_loop.running:
            self._wake_loop.stop()
        # Postings claimed but not written go back to the queue (the database thread stops after us and
        # runs what was queued before it stops); otherwise the next start would have to fail some of them.
        self._stopping = True
        self._give_back_window("the appliance stopped first")
        self._flush()
        return super().stopService()

    def _connected(self, protocol: LinkProtocol) -> None:
        self.protocol = protocol

    # ------------------------------------------------------------ posting flow
    #
    # Postings are claimed a window ahead (``_window``, committed before any is written) and outcomes are
    # committed in batches (``_pending`` -> ``Outbox.settle``), so a PA is followed by the next PS without
    # a trip to the database. The write-ahead bound that makes recovery exact (appliance.outbox): a PS is
    # written only while fewer than ``PIPELINE_DEPTH`` sent postings lack a committed outcome
    # (``_unsettled``, in send order).

    def wake(self) -> None:
        """Something may be due (a new posting, a retry, a tick): claim and send if the link can take it."""
        self._maybe_due = True
        self._pump()

    def _pump(self) -> None:
        protocol = self.protocol
        if protocol is not None and not self._resync_checking and self._resync_seen is None:
            if self._resync_pending or self._night_audit:
                self._give_back_window("night audit" if self._night_audit else "a resync was requested")
                if self._resync_pending and self.in_flight is None and link_ready(protocol.link):
                    self._send_resync(protocol)
            elif (self._window and self.in_flight is None and len(self._unsettled) < PIPELINE_DEPTH
                    and link_ready(protocol.link) and protocol.connected):
                self._send(protocol, self._window.popleft())
        self._flush()

    def _send(self, protocol: LinkProtocol, command: PostCharge) -> None:
        now = _utc(self._clock)
        self.in_flight = command.sequence
        self._unsettled.append(command.sequence)
        self._sent_at[command.sequence] = now
        self.sent += 1
        self.log.info("PMS link {link}: posting P#{sequence} to room {room}, {amount} minor units",
                      link=self.link.name, sequence=command.sequence, room=command.room,
                      amount=command.amount_minor)
        protocol.send(command)

    def _can_take_postings(self) -> bool:
        """The link is up (or busy with a posting): worth claiming a window for it."""
        protocol = self.protocol
        return (protocol is not None and bool(protocol.connected) and not self._night_audit
                and not self._stopping and not self._resync_pending and not self._resync_checking and self._resync_seen is None
                and (self.in_flight is not None or link_ready(protocol.link)))

    def _give_back_window(self, why: str) -> None:
        if self._window:
            self._release += [command.sequence for command in self._window]
            self._release_reason = why
            self._window.clear()

    def _flush(self) -> None:
        """Commit what is pending (answers, timeouts, give-backs) and top up the window, in one commit."""
        if self._flushing:
            return
        claim = 0
        if self._maybe_due and len(self._window) <= WINDOW // 2 and self._can_take_postings():
            claim = WINDOW - len(self._window)
        if not (self._pending or self._release or claim):
            return
        items, self._pending = self._pending, []
        release, self._release = self._release, []
        self._flushing = True
        job = self._db.run(self._outbox.settle, _utc(self._clock), items=items, release=release,
                           release_reason=self._release_reason, claim=claim)
        job.addCallbacks(self._settled, self._settle_failed, callbackArgs=(claim,),
                         errbackArgs=(items, release))
        job.addBoth(self._flushed)

    def _settled(self, result: Settled, claimed: int) -> None:
        if claimed and len(result.commands) < claimed:
            self._maybe_due = False  # the queue is empty until the next wake
        if result.released:
            self._maybe_due = True  # given back: due again
        for outcome in result.outcomes:
            self._settle(outcome)
        if result.commands:
            protocol = self.protocol
            if (protocol is not None and protocol.connected and not self._night_audit and not self._stopping
                    and not self._resync_pending and self._resync_seen is None):
                self._window.extend(result.commands)
            else:  # the link went away while claiming: nothing was written, queue them again
                self._release += [command.sequence for command in result.commands]
                self._release_reason = "the link went down first"

    def _settle(self, outcome: Outcome) -> None:
        if outcome.sequence in self._unsettled:  # (a late or repeated answer settles nothing we sent)
            self._done.add(outcome.sequence)
        while self._unsettled and self._unsettled[0] in self._done:
            self._done.discard(self._unsettled.popleft())
        self._sent_at.pop(outcome.sequence, None)
        if outcome.posting_id is None:
            if outcome.late:
                self.log.warn("PMS link {link}: answer for P#{sequence} matches no posting sent with it",
                              link=self.link.name, sequence=outcome.sequence)
            return
        if outcome.late:
            self.log.warn("PMS link {link}: P#{sequence}: {reason}", link=self.link.name,
                          sequence=outcome.sequence, reason=outcome.reason)
        if outcome.changed:
            self.answered += 1
            self.log.info("PMS link {link}: P#{sequence} is {state} ({reason})", link=self.link.name,
                          sequence=outcome.sequence, state=outcome.state, reason=outcome.reason)

    def _settle_failed(self, failure: Any, items: list[Any], release: list[int]) -> None:
        """The commit failed: keep what it carried for the next try (the tick retries it)."""
        self._db_failed(failure)
        self._pending[:0] = items
        self._release[:0] = release

    def _flushed(self, passthrough: Any) -> None:
        self._flushing = False
        if self._pending or self._release or self._window or self._maybe_due:
            self._pump()

    # ------------------------------------------------------------ events from the link

    def _handle(self, protocol: LinkProtocol, events: list[Event]) -> None:
        if protocol is not self.protocol:
            return  # a displaced connection's last words
        for event in events:
            self._dispatch(protocol, event, _utc(self._clock))

    def _dispatch(self, protocol: LinkProtocol, event: Event, now: datetime) -> None:
        run = self._db.run
        if isinstance(event, PostingAnswered):
            # Its outcome is committed with the next batch; the next PS goes at once if the bound allows.
            if self.in_flight == event.sequence:
                self.in_flight = None
            self._pending.append(Answer(event.sequence, event.status, event.text, event.raw.decode("latin-1"),
                                        now, self._sent_at.get(event.sequence)))
            self._pump()
        elif isinstance(event, PostingUnanswered):
            self.log.warn("PMS link {link}: P#{sequence} unanswered: {reason}", link=self.link.name,
                          sequence=event.sequence, reason=event.reason)
            if self.in_flight == event.sequence:
                self.in_flight = None
            self._pending.append(Unanswered(event.sequence, event.reason, now))
            self._pump()
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
            self._give_back_window("the link went down first")
            if not protocol.connected:
                self.protocol = None
                if self.in_flight is not None:  # the link should have said so; make sure the DB does
                    self._pending.append(
                        Unanswered(self.in_flight, "link dropped while awaiting the answer", now))
                    self.in_flight = None
            self._flush()
        elif isinstance(event, NightAuditStarted):
            self._night_audit = True
            self.log.info("PMS link {link}: night audit started, postings held", link=self.link.name)
            self._pump()  # gives the claimed window back
        elif isinstance(event, NightAuditEnded):
            self._night_audit = False
            run(self._outbox.release_night_audit, now).addCallback(lambda _: self.wake()).addErrback(
                self._db_failed)
        elif isinstance(event, ResyncStarted):
            self._resync_seen = set()
            self._give_back_window("the PMS started a resync")
            self._flush()
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
