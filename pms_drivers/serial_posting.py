"""The acknowledged-record sender shared by the serial posting protocols (HOBIC, STX/ETX/BCC).

Sources: fias.md §7 — TEL Electronics PMS/HB (a HOBIC line framed LF … CR LF, optional ACK/NAK or y/n),
PMS/HX Holidex (the call-accounting system sends ENQ, the PMS ACKs, then STX record ETX + BCC), Avaya
DEFINITY PMS (ACK/NAK/ENQ, resend up to a limit); and fias.md §8 item 1 on double postings.

One posting in flight, states as a table (``TRANSITIONS``):

- IDLE -> ENQUIRY: with the ENQ handshake, ``send`` writes ENQ and waits for the PMS's ACK (ready);
  a NAK (busy) or silence repeats the ENQ up to ``enq_attempts``. Nothing of the record has left, so
  giving up is safe: the posting is answered ``BY`` (busy; the outbox retries it with backoff).
- IDLE / ENQUIRY -> AWAIT_ACK: the record is written; ACK -> ``PostingAnswered(OK)``. NAK -> the PMS
  refused that copy, so it is written again, up to ``attempts``; when every copy was refused the posting
  is answered ``UR`` (not booked, never resent automatically).
- AWAIT_ACK -> QUIET: no ACK within ``ack_timeout``. The PMS may have booked the record and only the
  ACK was lost, and these protocols have no way to ask (no ENQ re-ask as in FIAS), so the posting is
  ``PostingUnanswered`` (delivery unknown: never resent). The link then stays quiet for
  ``ack_timeout``: a late ACK or NAK is dropped there, never matched to the next posting, and the link
  reports itself down until the PMS shows a sign of life or ``resume_after`` passes.
- without acknowledgement (``ack=False``, a printer-style output) a written record is answered ``OK``
  at once: the line gives no more certainty than that, which the option's documentation states.

Answers the appliance makes up (BY, UR, OK without ACK) say so in their text ("[appliance]").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

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
)

ENQ, ACK, NAK, EOT = b"\x05", b"\x06", b"\x15", b"\x04"


class Phase(Enum):
    CLOSED = "closed"
    IDLE = "idle"
    ENQUIRY = "enquiry"  # ENQ sent, waiting for the PMS's ACK
    AWAIT_ACK = "awaiting ACK"  # record sent
    QUIET = "quiet"  # the last record's fate is unknown; late answers are dropped
    DOWN = "down"  # the PMS has not answered; waiting for a sign of life


TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.CLOSED: frozenset({Phase.IDLE}),
    Phase.IDLE: frozenset({Phase.ENQUIRY, Phase.AWAIT_ACK, Phase.IDLE, Phase.CLOSED}),
    Phase.ENQUIRY: frozenset({Phase.ENQUIRY, Phase.AWAIT_ACK, Phase.DOWN, Phase.CLOSED}),
    Phase.AWAIT_ACK: frozenset({Phase.AWAIT_ACK, Phase.IDLE, Phase.QUIET, Phase.CLOSED}),
    Phase.QUIET: frozenset({Phase.IDLE, Phase.DOWN, Phase.CLOSED}),
    Phase.DOWN: frozenset({Phase.IDLE, Phase.CLOSED}),
}


@dataclass(frozen=True, kw_only=True)
class Handshake:
    """How one protocol acknowledges: which bytes mean ACK / NAK, the timings and attempt limits."""

    ack: bool = True
    ack_bytes: bytes = ACK
    nak_bytes: bytes = NAK
    enq: bool = False
    ack_timeout: float = 5.0
    enq_timeout: float = 3.0
    attempts: int = 3
    enq_attempts: int = 3
    resume_after: float = 120.0
    release: bytes = b""  # written after an ACKed record (STX protocols: EOT ends the exchange)


class AckedPostingLink:
    """Sans-IO; implements ``appliance.drivers.Link``. ``encode`` makes the framed record of a charge."""

    supports_resync = False  # these protocols carry postings only: no guest records, no resync

    def __init__(self, encode: Callable[[PostCharge], bytes], handshake: Handshake, name: str) -> None:
        self._encode = encode
        self._hs = handshake
        self._name = name
        self._phase = Phase.CLOSED
        self._out = bytearray()
        self._reset()

    def _reset(self) -> None:
        self._sequence: int | None = None
        self._record = b""
        self._tries = 0
        self._deadline: float | None = None
        self._answer_now: list[Event] = []  # events due at the next handle_timeout (no-ACK mode)
        self._heard = False  # QUIET: the PMS answered something since the unanswered record

    # ------------------------------------------------------------ what the caller may ask

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def wants_close(self) -> bool:
        return False  # a serial line is never closed for protocol reasons; bad input is Ignored

    @property
    def in_flight(self) -> int | None:
        return self._sequence

    def ready_for_posting(self) -> bool:
        return self._phase is Phase.IDLE and self._sequence is None

    def deadline(self) -> float | None:
        return self._deadline

    # ------------------------------------------------------------ Link protocol

    def connection_made(self, now: float) -> list[Event]:
        if self._phase is not Phase.CLOSED:
            self.connection_lost(now)
        self._go(Phase.IDLE)
        self._reset()
        return [LinkUp(detail=f"{self._name} line open"), LinkReady(detail=f"{self._name}: ready")]

    def connection_lost(self, now: float) -> list[Event]:
        if self._phase is Phase.CLOSED:
            return []
        events: list[Event] = [*self._answer_now, LinkDown(reason="connection lost")]
        if self._answer_now:
            pass  # written on a link without acknowledgement: already as good as it gets
        elif self._sequence is not None and self._phase is Phase.ENQUIRY:
            events.append(self._made_up("BY", "the line closed before the record was sent"))
        elif self._sequence is not None:
            events.append(PostingUnanswered(sequence=self._sequence,
                                            reason="line closed while awaiting the ACK"))
        self._go(Phase.CLOSED)
        self._reset()
        return events

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def send(self, command: Command, now: float) -> None:
        if not isinstance(command, PostCharge):
            raise TypeError(f"the {self._name} link takes PostCharge only, got {type(command).__name__}")
        if not self.ready_for_posting():
            raise ProtocolError(f"cannot send posting {command.sequence}: the link is {self._phase.value}")
        self._sequence = command.sequence
        self._record = self._encode(command)
        if not self._hs.ack:
            self._out += self._record
            self._answer_now = [self._made_up("OK", "written; this link has no acknowledgement")]
            self._deadline = now  # answered at the next timer, as send() returns no events
            return
        if self._hs.enq:
            self._enquire(now, first=True)
        else:
            self._write_record(now, first=True)

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        if self._phase is Phase.CLOSED:
            raise ProtocolError("data received before connection_made")
        events: list[Event] = []
        noise = bytearray()
        for value in data:
            byte = bytes([value])
            if byte in (self._hs.ack_bytes, self._hs.nak_bytes):
                events += self._on_answer(byte == self._hs.ack_bytes, now)
            else:
                noise.append(value)
        if self._phase is Phase.DOWN and data:
            self._go(Phase.IDLE)  # a sign of life
            self._deadline = None
            events.append(LinkReady(detail=f"{self._name}: the PMS is sending again"))
        if noise.strip(b"\r\n\x00"):
            events.append(Ignored(reason=f"unexpected bytes from the PMS on a {self._name} link",
                                  raw=bytes(noise), quarantine=False))
        return events

    def handle_timeout(self, now: float) -> list[Event]:
        if self._deadline is None or now < self._deadline:
            return []
        if self._answer_now:
            events, self._answer_now = self._answer_now, []
            self._done()
            return events
        if self._phase is Phase.ENQUIRY:
            if self._tries < self._hs.enq_attempts:
                self._enquire(now)
                return []
            event = self._made_up("BY", f"no answer to {self._tries} ENQ(s): the record was not sent")
            return [event, *self._down(now, "the PMS does not answer ENQ")]
        if self._phase is Phase.AWAIT_ACK:
            event = PostingUnanswered(sequence=self._sequence or 0,
                                      reason=f"no ACK within {self._hs.ack_timeout:g} s: delivery unknown")
            self._go(Phase.QUIET)
            self._sequence, self._deadline = None, now + self._hs.ack_timeout
            return [event]
        if self._phase is Phase.QUIET:
            if self._heard:  # a late answer came: the PMS is alive, only that ACK was late or lost
                self._done()
                return []
            return self._down(now, "the PMS did not acknowledge the last record")
        if self._phase is Phase.DOWN:
            self._go(Phase.IDLE)
            self._deadline = None
            return [LinkReady(detail=f"{self._name}: trying again after {self._hs.resume_after:g} s")]
        return []

    # ------------------------------------------------------------ internals

    def _go(self, new: Phase) -> None:
        if new not in TRANSITIONS[self._phase]:
            raise ProtocolError(f"illegal {self._name} transition {self._phase.value} -> {new.value}")
        self._phase = new

    def _enquire(self, now: float, *, first: bool = False) -> None:
        self._go(Phase.ENQUIRY)
        self._tries = 1 if first else self._tries + 1
        self._out += ENQ
        self._deadline = now + self._hs.enq_timeout

    def _write_record(self, now: float, *, first: bool = False) -> None:
        self._go(Phase.AWAIT_ACK)
        self._tries = 1 if first else self._tries + 1
        self._out += self._record
        self._deadline = now + self._hs.ack_timeout

    def _on_answer(self, ack: bool, now: float) -> list[Event]:
        what = "ACK" if ack else "NAK"
        if self._phase is Phase.ENQUIRY:
            if ack:
                self._write_record(now, first=True)
            elif self._tries < self._hs.enq_attempts:
                self._enquire(now)  # busy: ask again
            else:
                event = self._made_up("BY", f"NAK to {self._tries} ENQ(s): the PMS is busy; not sent")
                return [event, *self._down(now, "the PMS answers ENQ with NAK (busy)")]
            return []
        if self._phase is Phase.AWAIT_ACK and self._sequence is not None:
            if ack:
                event = PostingAnswered(sequence=self._sequence, status="OK", raw=self._hs.ack_bytes)
                self._out += self._hs.release
                self._done()
                return [event]
            if self._tries < self._hs.attempts:
                self._write_record(now)  # the PMS refused this copy: it is safe to send it again
                return []
            event = self._made_up("UR", f"NAK on all {self._tries} attempts: not booked")
            self._done()
            return [event]
        if self._phase is Phase.QUIET:
            self._heard = True
            self._deadline = now + self._hs.ack_timeout  # keep draining late answers
        return [Ignored(reason=f"{what} with no record awaiting one (late or stray): dropped",
                        raw=self._hs.ack_bytes if ack else self._hs.nak_bytes, quarantine=False)]

    def _done(self) -> None:
        if self._phase is not Phase.IDLE:
            self._go(Phase.IDLE)
        self._reset()

    def _down(self, now: float, reason: str) -> list[Event]:
        self._go(Phase.DOWN)
        self._reset()
        self._deadline = now + self._hs.resume_after
        return [LinkDown(reason=reason)]

    def _made_up(self, status: str, text: str) -> PostingAnswered:
        return PostingAnswered(sequence=self._sequence or 0, status=status, text=f"{text} [appliance]")
