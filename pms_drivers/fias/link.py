"""The FIAS PMS link, vendor side: we are the TCP client (or the serial end), IFC8 / the PMS is the server.

Source: Oracle Hospitality *HGBU-IFC8-FIAS Interface Specification* 2.20.23, summarised in
``/work/shared/reference/fias.md`` (section numbers are that note's, page numbers the Spec's):
§1 framing (see ``channel``), §2 link handshake and keep-alive (p.25-29, p.35-36, p.99-110),
§3 postings (PS/PA p.78-86), §4 guest records and resync (p.36-47), NS/NE night audit.

The dialogue, as this module implements it:

- connect -> ``LinkUp``; listen ``listen_before_open`` (3 s) for the PMS's ``LS``; if nothing comes,
  open with ``LS`` ourselves (§2). The PMS answers ``LS`` (link never started) or ``LA`` (already alive).
- ``LS`` from the PMS -> ``LD`` (DA/TI/V#/IF), one ``LR`` per record type (GI, GO, GC, PS, PA with P#,
  NS, NE), ``LA``. The PMS's ``LA`` makes the link alive -> ``LinkReady``. Any later ``LS`` means IFC8
  restarted: full LD/LR/LA again, and a posting in flight is reported ``PostingUnanswered``.
- keep-alive: after ``keepalive_interval`` without hearing from the PMS, send ``LS``; IFC8 answers
  ``LA`` while alive. No ``LA`` within ``answer_timeout`` -> the link has failed (below).
- one PS in flight (p.85): ``send(PostCharge)`` needs ``ready_for_posting()``; the PA is matched by
  ``P#`` only, never by room. After ``answer_timeout`` the posting is ``PostingUnanswered`` (delivery
  unknown) and the next may go. A PA whose P# is not in flight (late, duplicate) is still reported as
  ``PostingAnswered`` for *its own* P#, leaving the one in flight awaiting its answer: a late OK means the
  PMS booked that posting, and the outbox records it (``appliance.postings.on_late_answer``).
- ``DS`` ... ``DE`` (resync): no postings in between (p.38); DE -> ``ResyncEnded`` + ``LinkReady``.
  GI/GO/GC are accepted with or without that envelope. ``DR`` goes out on ``RequestResync``; postings
  wait for the DS (or ``answer_timeout``, as newer PMSs ignore redundant requests).
- ``NS``/``NE`` -> night-audit events only; holding postings on an ``NA`` answer is the caller's policy.
- ``LE`` from the PMS -> we answer ``LE``, ``LinkDown("PMS sent LE")``, no postings; any later record
  from the PMS resumes the link (§2: "resume on the next contact, even if no LS arrives").

How the link tells the adapter to close the connection: the ``wants_close`` property. It becomes True
when the link gives up (no LA to a keep-alive LS, no answer to the opening, no DE after a DS, or an
ACK/NAK delivery failure); the events of that call carry ``LinkDown(reason)`` and, if a posting was in
flight, ``PostingUnanswered``. After every call into the link the adapter must: write ``data_to_send()``,
then ``transport.loseConnection()`` if ``wants_close``, then re-arm its one timer for ``deadline()``. A
``ProtocolError`` raised by a method (a call in the wrong state, an illegal transition) means the same:
drop the connection. Peer garbage never raises: it becomes ``Ignored``.

The states and their transition table are in ``link_states`` (ARCHITECTURE.md rule 8).

``now`` is seconds since the epoch, as ``reactor.seconds()`` gives; it also stamps DA/TI of link records
(in ``tz``, or the system's local time). ``LinkDown`` is reported once per loss of readiness: a
``connection_lost`` after the link already reported itself down adds no second one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, tzinfo

from appliance.drivers import DriverSpec
from appliance.errors import ProtocolError
from appliance.events import (
    Command,
    Event,
    Ignored,
    LinkDown,
    LinkReady,
    LinkUp,
    PostCharge,
    PostingAnswered,
    PostingUnanswered,
    RequestResync,
)
from pms_drivers.fias import options as compose
from pms_drivers.fias.channel import DeliveryFailed, FrameChannel
from pms_drivers.fias.link_records import HANDLERS, RecordHandlers
from pms_drivers.fias.link_states import TRANSITIONS, InFlight, State
from pms_drivers.fias.options import FiasOptions
from pms_drivers.fias.records import FiasRecord, MalformedRecordError, decode, encode, stamp


class FiasLink(RecordHandlers):
    """Sans-IO FIAS vendor link; implements ``appliance.drivers.Link``."""

    supports_resync = True
    """The PMS service may send ``RequestResync`` (DR) on this link."""

    def __init__(self, options: FiasOptions | None = None, *, tz: tzinfo | None = None) -> None:
        options = options or FiasOptions()
        if options.lrc is None or options.ack_nak is None:
            options = options.for_transport("tcp-client")  # the service resolves them for its transport
        self.options = options
        self._tz = tz
        self._channel = FrameChannel(
            lrc=bool(options.lrc), ack_nak=bool(options.ack_nak), ack_timeout=options.ack_timeout
        )
        self._state = State.CLOSED
        self._clear()

    def _clear(self) -> None:
        self._in_flight: InFlight | None = None
        self._listen_until: float | None = None
        self._handshake_until: float | None = None
        self._last_heard = 0.0
        self._ls_pending_until: float | None = None  # our keep-alive LS awaits its LA
        self._resync_until: float | None = None
        self._dr_pending_until: float | None = None  # our DR awaits its DS
        self._night_audit = False
        self._wants_close = False
        self._down_reported = False

    # ------------------------------------------------------------ what the caller may ask

    @property
    def state(self) -> State:
        return self._state

    @property
    def wants_close(self) -> bool:
        """True once the link has given up: the adapter must drop the connection (see module doc)."""
        return self._wants_close

    @property
    def night_audit(self) -> bool:
        """Between NS and NE. Postings stay allowed; the PMS may answer them NA."""
        return self._night_audit

    @property
    def in_flight(self) -> int | None:
        """The P# awaiting its PA, if any."""
        return self._in_flight.sequence if self._in_flight else None

    def ready_for_posting(self) -> bool:
        return self._not_ready_because() == ""

    def _not_ready_because(self) -> str:
        if self._state is not State.ALIVE:
            return f"the link is {self._state.value}"
        if self._in_flight is not None:
            return f"posting P# {self._in_flight.sequence} is awaiting its answer"
        if self._dr_pending_until is not None:
            return "a resync was requested and the PMS has not started it"
        if not self._channel.idle:
            # §1 p.95: the last record still awaits its ACK (maybe via ENQ); a PS queued behind it would
            # start its answer timeout before it even left.
            return "a record awaits the PMS's ACK"
        return ""

    def deadline(self) -> float | None:
        if self._state in (State.CLOSED, State.FAILED):
            return None
        keepalive = None
        if self._state in _KEEPALIVE_STATES:
            keepalive = self._ls_pending_until
            if keepalive is None:
                keepalive = self._last_heard + self.options.keepalive_interval
        timers = [
            self._channel.deadline(),
            self._listen_until,
            self._handshake_until,
            self._in_flight.deadline if self._in_flight else None,
            self._resync_until,
            self._dr_pending_until,
            keepalive,
        ]
        return min((timer for timer in timers if timer is not None), default=None)

    # ------------------------------------------------------------ Link protocol

    def connection_made(self, now: float) -> list[Event]:
        self._go(State.LISTENING)
        self._clear()
        self._channel.reset()
        self._last_heard = now
        self._listen_until = now + self.options.listen_before_open
        return [LinkUp(detail="connected; waiting for the PMS's LS")]

    def connection_lost(self, now: float) -> list[Event]:
        if self._state is State.CLOSED:
            return []
        events: list[Event] = []
        if not self._down_reported:
            events.append(LinkDown(reason="connection lost"))
        if self._in_flight is not None:
            events.append(
                PostingUnanswered(
                    sequence=self._in_flight.sequence, reason="link dropped while awaiting the answer"
                )
            )
        self._go(State.CLOSED)
        self._clear()
        self._channel.reset()
        return events

    def data_to_send(self) -> bytes:
        return self._channel.data_to_send()

    def send(self, command: Command, now: float) -> None:
        if isinstance(command, PostCharge):
            why = self._not_ready_because()
            if why:
                raise ProtocolError(f"cannot send posting P# {command.sequence}: {why}")
            if command.start.tzinfo is not None and self._tz is not None:
                # §3/§8 item 8: DA/TI are the call start in hotel time; the outbox hands UTC.
                command = replace(command, start=command.start.astimezone(self._tz))
            self._write(compose.posting_simple(self.options, command), now)
            self._in_flight = InFlight(command.sequence, now + self.options.answer_timeout)
        elif isinstance(command, RequestResync):
            if self._state is not State.ALIVE:
                raise ProtocolError(f"cannot request a resync: the link is {self._state.value}")
            if self._in_flight is not None:
                # §3 p.38: a PA could come back behind the resync records; the caller waits for it.
                raise ProtocolError(f"cannot request a resync: P# {self._in_flight.sequence} awaits its answer")
            self._write(compose.resync_request(self._stamp(now)), now)
            self._dr_pending_until = now + self.options.answer_timeout
        else:
            raise TypeError(f"the FIAS link takes PostCharge or RequestResync, got {type(command).__name__}")

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        if self._state is State.CLOSED:
            raise ProtocolError("data received before connection_made")
        events: list[Event] = []
        for item in self._channel.receive(data, now):
            if self._state is State.FAILED:
                break  # the adapter is closing the connection; the rest is moot
            if isinstance(item, DeliveryFailed):
                events += self._delivery_failed(item, now)
            elif isinstance(item, Ignored):
                events.append(item)
            else:
                try:
                    rec = decode(item, self.options.encoding)
                except MalformedRecordError as exc:
                    events.append(Ignored(reason=f"malformed FIAS record: {exc.reason}", raw=item))
                    continue
                events += self._on_record(rec, item, now)
        return events

    def handle_timeout(self, now: float) -> list[Event]:
        events: list[Event] = []
        for failure in self._channel.handle_timeout(now):
            if self._state is not State.FAILED and isinstance(failure, DeliveryFailed):
                events += self._delivery_failed(failure, now)
        if self._state in (State.CLOSED, State.FAILED):
            return events
        limit = f"{self.options.answer_timeout:g} s"
        if self._listen_until is not None and now >= self._listen_until:
            # §2: nothing arrived while we listened, so the vendor may open with LS.
            self._listen_until = None
            self._write(compose.link_start(self._stamp(now)), now)
            self._handshake_until = now + self.options.answer_timeout
            self._go(State.OPENING)
        if self._handshake_until is not None and now >= self._handshake_until:
            what = "LS" if self._state is State.OPENING else "LD/LR/LA"
            return events + self._fail(now, f"the PMS did not answer our {what} within {limit}")
        if self._in_flight is not None and now >= self._in_flight.deadline:
            events.append(
                PostingUnanswered(sequence=self._in_flight.sequence, reason=f"no answer within {limit}")
            )
            self._in_flight = None
        if self._resync_until is not None and now >= self._resync_until:
            return events + self._fail(now, f"no DE within {self.options.resync_timeout:g} s of DS")
        if self._dr_pending_until is not None and now >= self._dr_pending_until:
            self._dr_pending_until = None
            events.append(
                LinkReady(detail=f"no DS within {limit} of our DR: the PMS ignored the resync request")
            )
        if self._state in _KEEPALIVE_STATES:
            if self._ls_pending_until is not None:
                if now >= self._ls_pending_until:
                    return events + self._fail(now, f"no LA within {limit} of our keep-alive LS")
            elif now >= self._last_heard + self.options.keepalive_interval:
                self._write(compose.link_start(self._stamp(now)), now)
                self._ls_pending_until = now + self.options.answer_timeout
        return events

    # ------------------------------------------------------------ internals

    def _go(self, new: State) -> None:
        if new not in TRANSITIONS[self._state]:
            raise ProtocolError(f"illegal FIAS link transition {self._state.value} -> {new.value}")
        self._state = new

    def _stamp(self, now: float) -> datetime:
        return stamp(now, self._tz)

    def _stop_timers(self) -> None:
        self._listen_until = self._handshake_until = self._resync_until = None
        self._ls_pending_until = self._dr_pending_until = None

    def _write(self, rec: FiasRecord, now: float) -> None:
        self._channel.send(encode(rec, self.options.encoding), now)

    def _unanswered(self, reason: str) -> list[Event]:
        if self._in_flight is None:
            return []
        event = PostingUnanswered(sequence=self._in_flight.sequence, reason=reason)
        self._in_flight = None
        return [event]

    def _down(self, reason: str) -> list[Event]:
        if self._down_reported:
            return []
        self._down_reported = True
        return [LinkDown(reason=reason)]

    def _fail(self, now: float, reason: str) -> list[Event]:
        events = self._down(reason) + self._unanswered(f"link failed while awaiting the answer: {reason}")
        self._go(State.FAILED)
        self._stop_timers()
        self._wants_close = True
        return events

    def _delivery_failed(self, failed: DeliveryFailed, now: float) -> list[Event]:
        """The channel gave up on a frame (§1, p.95: 4 attempts). If the PMS answered NAK to the last copy
        of the PS in flight, it refused every copy and booked none: a failure, never resent. If it fell
        silent, delivery is unknown: ``_fail`` reports the posting unanswered."""
        events: list[Event] = []
        flight = self._in_flight
        if failed.rejected and flight is not None and _sequence_of(failed.payload) == flight.sequence:
            self._in_flight = None
            events.append(PostingAnswered(
                sequence=flight.sequence, status="UR",
                text=f"the PMS answered NAK to every copy ({failed.reason}); not booked [appliance]"))
        return events + self._fail(now, f"record not acknowledged: {failed.reason}")

    def _ready(self, detail: str) -> list[Event]:
        self._down_reported = False
        return [LinkReady(detail=detail)]

    def _describe(self, now: float) -> None:
        """Answer the PMS's LS with LD, the LR set and LA (§2, p.25-29)."""
        self._channel.clear_queue()
        for rec in compose.link_description(self.options, self._stamp(now)):
            self._write(rec, now)
        self._stop_timers()
        self._handshake_until = now + self.options.answer_timeout
        self._go(State.DESCRIBING)

    def _on_record(self, rec: FiasRecord, raw: bytes, now: float) -> list[Event]:
        self._last_heard = now
        events: list[Event] = []
        if self._state is State.ENDED and rec.kind not in ("LS", "LA", "LE"):
            # §2: after an LE from the PMS, resume on the next contact even if no LS arrives.
            self._go(State.ALIVE)
            events += self._ready("the PMS resumed after LE")
        handler = HANDLERS.get(rec.kind)
        if handler is None:
            return events + [
                Ignored(reason=f"record type {rec.kind} is not handled", raw=raw, quarantine=False)
            ]
        return events + handler(self, rec, raw, now)

_KEEPALIVE_STATES = (State.ALIVE, State.ENDED)  # §4 p.38: nothing is sent during a resync (DS ... DE)


def _sequence_of(payload: bytes) -> int | None:
    """The P# of an encoded PS, or None."""
    if not payload.startswith(b"PS|"):
        return None
    for part in payload.split(b"|"):
        if part.startswith(b"P#") and part[2:].isdigit():
            return int(part[2:])
    return None


SPEC = DriverSpec(
    name="fias",
    kind="pms",
    options=FiasOptions,
    make_link=FiasLink,
    transports=frozenset({"tcp-client", "serial"}),
    description="Oracle FIAS 2.20.23 (IFC8 / OPERA / Suite8 / Protel): LS/LD/LR/LA handshake, "
    "one PS in flight matched to its PA by P#, GI/GO/GC guest records, DR/DS/DE resync, NS/NE",
)

__all__ = ["SPEC", "TRANSITIONS", "FiasLink", "FiasOptions", "InFlight", "State"]
