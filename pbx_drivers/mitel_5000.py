"""Mitel 5000 CP / MiVoice Office 250 / Inter-Tel Axxess SMDR: 80-column records, one call each.

Sources: ``/work/shared/reference/smdr.md`` §1 and §2.4; the socket login and the record framing as
documented in ripvannwinkler/smdr-logger-5000 ``smdr5000.py`` (Mitel's "5000 CP SMDR socket" notes quoted
there); the real Inter-Tel Axxess lines in ``/work/shared/samples/mitel5000_intertel.txt``
(fmahnke/axxess_8520_smdr_client).

Transport. Over TCP (port 4000 by default) the collector connects and logs in first with
``<length, 4 bytes little-endian><0x84><password, up to 15 ASCII characters><0x00>`` where the length
counts the bytes after it (password 12345678 -> ``0A 00 00 00 84 31 ... 38 00``). Every record then comes
as a 4-byte little-endian length (the bytes after it) followed by the 80-column text and CR LF. A PBX that
does not like the password says nothing and closes the socket, so a connection closed before any record
is reported as a probable password problem. On the serial port the same text comes as plain CR LF lines
(``framing: lines``, ``login: false``).

Columns, 1-based (the header line ``TYP EXT#  TRUNK DIALED DIGITS ... START ELAPSED COST ACCOUNT CODE``)::

    1-3 TYP   5-9 EXT   11-15 TRUNK   17-44 DIALED DIGITS   46-50 START hh:mm (24 h, no date)
    52-59 ELAPSED hh:mm:ss, or S=nnnnn in seconds mode   61-66 COST $dd.dd ($$$$$$ overflow)
    68-79 ACCOUNT CODE   80 ``*`` when the far end (trunk) hung up first

TYP: LOC local, TLC toll local, TLD toll long distance, O/I operator or international, 000 free, CNF
conference: outgoing. IN incoming, DID, DSA (DISA): incoming. NET network: tandem. A blank TYP with
``RG`` or ``RING......`` in the digits is a ring record: the call rang for ELAPSED and nobody answered
(EXT ``*****`` when it rang a group). On incoming records the digits area holds the caller ID on the left
and the DNIS right-aligned in columns 41-44; a lone short number is the DNIS. Dialled digits lose their
dashes (``952-474-1742`` -> ``9524741742``); a ``>`` after them means they were cut at 28.

The record has no date: the START is dated by when the record arrived (``ParseContext.received_at``),
which is right for a live link (records come when calls end). The page header's date is not carried to
the records; a buffer replayed days later is dated by its arrival. Station-to-station calls are not
reported by the PBX, so ``format_record`` writes nothing for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from appliance.drivers import DriverSpec, FramedLink, ParseContext
from appliance.events import CallRecord, Direction, Event, Ignored, LinkDown, LinkUp, RecordReceived
from appliance.framing import LengthPrefixedFramer, LineFramer
from pbx_drivers.common import (
    Encoding,
    decode,
    digits_of,
    format_hms,
    infer_date,
    parse_clock,
    parse_duration,
    unprintable,
)

LOGIN_KIND = 0x84  # "socket type: SMDR"
TYPES: dict[str, Direction] = {
    "LOC": "outgoing", "TLC": "outgoing", "TLD": "outgoing", "O/I": "outgoing", "000": "outgoing",
    "CNF": "outgoing", "IN": "incoming", "DID": "incoming", "DSA": "incoming", "NET": "tandem",
}
HEADER_STARTS = ("Station Message Detail", "TYP EXT#")
# 28 digit columns, 29 tolerated: a record documented with one more space before START still reads.
_RECORD = re.compile(
    r"(?P<typ>.{3}) (?P<ext>.{5}) (?P<trunk>.{5}) (?P<digits>.{28,29}) (?P<start>\d\d:\d\d)"
    r" +(?P<elapsed>S= *\d+|\d+:\d\d:\d\d)(?: +(?P<cost>\$[\d.]+|\$+))?(?P<rest>.*)"
)
_RING = re.compile(r"(RG +|RING\.*)")


@dataclass(frozen=True, kw_only=True)
class Mitel5000Options:
    """``framing``: length-prefixed (TCP socket) or lines (serial). ``login``: send the SMDR login on
    connect (TCP, where the collector connects to the PBX). ``seconds_mode``: ``format_record`` writes
    ELAPSED as ``S=n`` (the PBX option); parsing reads both."""

    framing: Literal["length-prefixed", "lines"] = "length-prefixed"
    login: bool = True
    password: str = ""
    seconds_mode: bool = True
    encoding: Encoding = "ascii"
    max_length: int = 512

    def __post_init__(self) -> None:
        if len(self.password) > 15 or not self.password.isascii() or "\x00" in self.password:
            raise ValueError("password: up to 15 ASCII characters, as the 5000 CP takes them")
        if not 82 <= self.max_length <= 4096:
            raise ValueError("max_length must be between 82 and 4096 (a record is 80 columns and CR LF)")


def login_bytes(password: str) -> bytes:
    body = bytes([LOGIN_KIND]) + password.encode("ascii") + b"\x00"
    return len(body).to_bytes(4, "little") + body


class Mitel5000Link(FramedLink):
    """Sends the login on connect; splits each length-prefixed record into its text lines."""

    def __init__(self, options: Mitel5000Options) -> None:
        if options.framing == "lines":
            super().__init__(LineFramer(max_length=options.max_length))
        else:
            super().__init__(LengthPrefixedFramer(size=4, max_length=options.max_length))
        self._options = options
        self._records = 0

    def connection_made(self, now: float) -> list[Event]:
        if self._options.login and self._options.framing == "length-prefixed":
            self._outgoing += login_bytes(self._options.password)
            return [LinkUp(detail="SMDR login sent")]
        return [LinkUp()]

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        return self._split(self._framer.feed(data))

    def connection_lost(self, now: float) -> list[Event]:
        events = self._split(self._framer.flush())
        reason = "connection closed"
        if self._options.login and self._options.framing == "length-prefixed" and not self._records:
            reason = "the PBX closed the connection before sending a record: check the SMDR password"
        return [*events, LinkDown(reason=reason)]

    def _split(self, items: list) -> list[Event]:
        events: list[Event] = []
        for item in items:
            if isinstance(item, bytes):
                for line in re.split(rb"[\r\n]+", item):
                    if line.strip():
                        self._records += 1
                        events.append(RecordReceived(raw=line))
            elif isinstance(item, Ignored):
                events.append(item)
        return events


def parse_record(raw: bytes, options: Mitel5000Options, context: ParseContext) -> CallRecord | Ignored:
    """One 80-column record (without CR LF) -> a call, or Ignored with the reason. Never raises."""
    if not raw.strip():
        return Ignored(reason="blank line", raw=raw, quarantine=False)
    problem = unprintable(raw)
    if problem:
        return Ignored(reason=problem, raw=raw)
    text = decode(raw, options.encoding)
    if text.startswith(HEADER_STARTS):
        return Ignored(reason="page header", raw=raw, quarantine=False)
    try:
        return _parse(raw, text, context)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)


def _parse(raw: bytes, text: str, context: ParseContext) -> CallRecord:
    match = _RECORD.fullmatch(text.rstrip())
    if not match:
        raise ValueError("not a Mitel 5000 record: no START hh:mm and ELAPSED after the digits")
    typ, digits = match["typ"].strip(), match["digits"]
    ring_mark = _RING.match(digits)
    if ring_mark and not typ:
        direction: Direction = "incoming"
        digits = " " * ring_mark.end() + digits[ring_mark.end():]  # keep the DNIS in its columns
    elif typ in TYPES:
        direction = TYPES[typ]
    else:
        raise ValueError(f"call type {typ!r} is not one of {', '.join(TYPES)} or a ring record")
    elapsed_text = match["elapsed"].replace(" ", "")
    elapsed = int(elapsed_text[2:]) if elapsed_text.startswith("S=") else parse_duration(elapsed_text)
    extension, trunk = match["ext"].strip(), match["trunk"].strip()
    for name, value in (("extension", extension), ("trunk", trunk)):
        if not re.fullmatch(r"[0-9*]*", value):
            raise ValueError(f"{name} {value!r} is not a number")
    start = infer_date(parse_clock(match["start"]), context)
    rest = match["rest"] or ""
    account = rest.rstrip().rstrip("*").strip()
    caller, dialled = "", ""
    if direction == "incoming":
        caller, dialled = _incoming_digits(digits)
    else:
        dialled = digits_of(digits.strip().rstrip(">"))
        if digits.strip().rstrip(">") and not re.fullmatch(r"[0-9\-*#]+", digits.strip().rstrip(">")):
            raise ValueError(f"dialled digits {digits.strip()!r} hold a character a PBX does not dial")
    ring_record = bool(ring_mark) and not typ
    return CallRecord(
        start=start,
        duration=0 if ring_record else elapsed,
        ring=elapsed if ring_record else None,
        extension="" if set(extension) == {"*"} else extension,
        trunk=trunk,
        dialled=dialled,
        caller=caller,
        direction=direction,
        answered=not ring_record and elapsed > 0,
        account_code=account,
        raw=raw,
    )


def _incoming_digits(area: str) -> tuple[str, str]:
    """(caller, dnis) from an incoming record's digits: caller ID left, DNIS right-aligned at 41-44."""
    area = area[:28].ljust(28)
    dnis = ""
    if area[24:].strip() and area[23] == " ":
        dnis, area = area[24:].strip(), area[:24]
    tokens = area.split()
    if len(tokens) > 1:
        raise ValueError(f"incoming digits {area.strip()!r} are neither caller ID nor DNIS")
    number = digits_of(tokens[0]) if tokens else ""
    if not dnis and len(number) <= 5:
        return "", number
    return number, dnis


def format_record(call: CallRecord, options: Mitel5000Options) -> bytes:
    """The record the 5000 CP would print for ``call``, framed for the link (length prefix or CR LF).

    Internal calls give b"" (the PBX does not report them). START has no seconds and no date; ELAPSED of
    an unanswered incoming call is its ring time (a ring record). Raises ValueError for values wider
    than their columns.
    """
    if call.direction == "internal":
        return b""
    elapsed = call.duration
    typ, digits = "", call.dialled
    if call.direction == "incoming":
        if len(call.dialled) > 4:
            raise ValueError(f"DNIS {call.dialled!r} is wider than columns 41-44")
        prefix = "" if call.answered else "RG "
        if not call.answered:
            elapsed = call.ring or 0
        typ = "IN" if call.answered else ""
        digits = prefix + call.caller
        if call.dialled:
            digits = digits.ljust(24) + call.dialled.rjust(4)
    elif call.direction == "tandem":
        typ = "NET"
    else:
        typ = "O/I" if digits.startswith("0") else "TLD" if digits.startswith("1") else "LOC"
    elapsed_text = f"S={elapsed}" if options.seconds_mode else format_hms(elapsed)
    cost = "" if typ == "" else "$00.00"
    fields = ((typ, 3), (call.extension, 5), (call.trunk, 5), (digits, 28), (elapsed_text, 8),
              (call.account_code, 12))
    for value, width in fields:
        if len(value) > width:
            raise ValueError(f"{value!r} is wider than its {width} columns")
    line = (f"{typ:<3} {call.extension:<5} {call.trunk:<5} {digits:<28} {call.start:%H:%M} "
            f"{elapsed_text:>8} {cost:<6} {call.account_code:<12} ")
    body = (line + "\r\n").encode(options.encoding, errors="replace")
    if options.framing == "lines":
        return body
    return len(body).to_bytes(4, "little") + body


SPEC = DriverSpec(
    name="mitel_5000",
    kind="pbx",
    options=Mitel5000Options,
    make_link=Mitel5000Link,
    transports=frozenset({"serial", "tcp-client", "tcp-server", "file"}),
    parse_record=parse_record,
    format_record=format_record,
    default_port=4000,
    description="Mitel 5000 CP / MiVoice Office 250 / Inter-Tel Axxess SMDR (80 columns; TCP login and "
                "length-prefixed records, or serial lines)",
)
