"""Sans-IO PBX links shared by several drivers (the contract is ``appliance.drivers.Link``).

- ``JoiningLink``: records that span several physical lines. Nortel CS1000 "new format" CDR (FCDR=NEW)
  prints continuation lines that start with ``&`` under the record they belong to; NEC SV8100/SL printers
  print a ``NEXT`` line with the caller's name under the record before it; Vodavi/LG-built systems print the
  caller ID of an incoming call on a second line (``/work/shared/reference/smdr.md`` §2.5, §2.13, §2.15).
  The link holds the last record until the next line shows whether it continues, and releases it after
  ``hold`` seconds of silence (``deadline``/``handle_timeout``) so a quiet PBX does not keep the last call
  back. The joined record is the lines joined by LF, so the journal keeps every byte the PBX printed.
- ``LoginState``: the small state table the links with a login share (Panasonic, Mitel 5000).

Nothing here reads a clock or touches a socket: ``now`` comes in, ``deadline`` goes out.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from appliance.drivers import FramedLink, framed_events
from appliance.errors import ProtocolError
from appliance.events import Event, Ignored, LinkDown, RecordReceived
from appliance.framing import Framer, LineFramer
from pbx_drivers.common import Encoding

JOIN = b"\n"


@dataclass(frozen=True, kw_only=True)
class ContinuedLineOptions:
    """Options of every format whose records go on over following lines (Nortel ``&``, iPECS ``<``)."""

    continuation_hold: float = 2.0
    encoding: Encoding = "ascii"
    max_length: int = 256

    def __post_init__(self) -> None:
        if not 0.0 <= self.continuation_hold <= 30.0 or not 80 <= self.max_length <= 4096:
            raise ValueError("continuation_hold must be 0-30 s and max_length 80-4096")


def continued_lines_link(options: ContinuedLineOptions, marker: bytes) -> JoiningLink:
    """Lines starting (after blanks) with ``marker`` belong to the record before them."""
    return JoiningLink(LineFramer(max_length=options.max_length), lambda line: line.lstrip().startswith(marker),
                       hold=options.continuation_hold)


class JoiningLink(FramedLink):
    """Lines from ``framer``; a line for which ``is_continuation`` is true is appended to the record
    before it. At most ``max_parts`` lines make one record (a PBX gone wrong cannot grow it forever)."""

    def __init__(self, framer: Framer, is_continuation: Callable[[bytes], bool], *, hold: float = 2.0,
                 max_parts: int = 8) -> None:
        super().__init__(framer)
        self._is_continuation = is_continuation
        self._hold = hold
        self._max_parts = max_parts
        self._held: list[bytes] = []
        self._held_at = 0.0

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        return self._take(self._framer.feed(data), now)

    def connection_lost(self, now: float) -> list[Event]:
        events = self._take(self._framer.flush(), now)
        return [*events, *self._release(), LinkDown(reason="connection closed")]

    def deadline(self) -> float | None:
        return self._held_at + self._hold if self._held else None

    def handle_timeout(self, now: float) -> list[Event]:
        if self._held and now >= self._held_at + self._hold:
            return self._release()
        return []

    def _take(self, items: list, now: float) -> list[Event]:
        events: list[Event] = []
        for item in items:
            if not isinstance(item, bytes):
                events += framed_events([item])
            elif self._is_continuation(item):
                if not self._held:
                    events.append(Ignored(reason="continuation line with no record before it", raw=item))
                elif len(self._held) >= self._max_parts:
                    events.append(Ignored(reason=f"more than {self._max_parts - 1} continuation lines",
                                          raw=item))
                else:
                    self._held.append(item)
                    self._held_at = now
            else:
                events += self._release()
                self._held = [item]
                self._held_at = now
        return events

    def _release(self) -> list[Event]:
        if not self._held:
            return []
        record = JOIN.join(self._held)
        self._held = []
        return [RecordReceived(raw=record)]


class LoginState(enum.Enum):
    """Where a link with a login is: waiting for the PBX's prompt, waiting for its verdict, or receiving
    records. REFUSED is final: the adapter drops the connection and the service retries with backoff."""

    PROMPT = "waiting for the login prompt"
    VERDICT = "password sent"
    STREAMING = "receiving records"
    REFUSED = "login refused"


# The legal moves; anything else is a bug in the link, not the PBX's fault, and raises.
LOGIN_TRANSITIONS: dict[LoginState, frozenset[LoginState]] = {
    LoginState.PROMPT: frozenset({LoginState.VERDICT, LoginState.STREAMING, LoginState.REFUSED}),
    LoginState.VERDICT: frozenset({LoginState.STREAMING, LoginState.REFUSED}),
    LoginState.STREAMING: frozenset(),
    LoginState.REFUSED: frozenset(),
}


def move(current: LoginState, new: LoginState) -> LoginState:
    if new not in LOGIN_TRANSITIONS[current]:
        raise ProtocolError(f"login state {current.name} cannot become {new.name}")
    return new


IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240


class TelnetFilter:
    """Removes telnet negotiation (RFC 854) from a byte stream and refuses every option asked for.

    PBX "SMDR over LAN" ports are often telnet servers (Panasonic KX-TDA/NS port 2300): they open with
    ``IAC DO``/``IAC WILL`` option requests, which must not reach the record framer. Works on any split of
    the stream: an IAC sequence cut between two reads is finished on the next one.
    """

    def __init__(self) -> None:
        self._state = "data"  # data | iac | option | sb | sb_iac
        self._command = 0
        self.replies = bytearray()

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            if self._state == "data":
                if byte == IAC:
                    self._state = "iac"
                else:
                    out.append(byte)
            elif self._state == "iac":
                if byte == IAC:  # an escaped 0xFF data byte
                    out.append(byte)
                    self._state = "data"
                elif byte in (DO, DONT, WILL, WONT):
                    self._command, self._state = byte, "option"
                elif byte == SB:
                    self._state = "sb"
                else:  # NOP, GA and the other two-byte commands carry nothing for us
                    self._state = "data"
            elif self._state == "option":
                # "I will not" / "do not": a collector wants the plain byte stream, nothing else.
                if self._command == DO:
                    self.replies += bytes([IAC, WONT, byte])
                elif self._command == WILL:
                    self.replies += bytes([IAC, DONT, byte])
                self._state = "data"
            elif self._state == "sb":
                if byte == IAC:
                    self._state = "sb_iac"
            else:  # sb_iac
                self._state = "data" if byte == SE else "sb"
        return bytes(out)
