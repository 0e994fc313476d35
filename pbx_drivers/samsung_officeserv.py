"""Samsung OfficeServ 7100 / 7200 / 7400 and iDCS SMDR: NUL-terminated records with page headers.

Sources: ``/work/shared/reference/smdr.md`` §1 and §2.14: the record slices of brofield/pbxlog
(OfficeServ 7200, records of 122 or 154 characters), the TCP 5100 collection of sysop13/smdr-syslog, and
the type flags of the Samsung DCS SMDR description. No real capture is public: the test capture is built
from these and says so.

Transport: the collector connects to the PBX's TCP port 5100 (also the serial SMDR port). Every record
ends with NUL (0x00), often after CR LF. When page headers are on, a header block starts with a form feed
(0x0C) and ends with a rule of ``=``; the link ignores everything in it (``SamsungLink``).

Record, 0-based slices::

    [2:8] call sequence   [9:15] extension   [16:25] authorisation code   [26:28] month MM
    [28:40] ``/DD hh:mm:ss`` (day and START time; no year)   [41:49] duration hh:mm:ss
    [50:52] type   [53:71] dialled digits   [72:89] account code   [90:100] cost
    [101:117] caller number   [118:136] caller name   [137:143] group   [143:151] ring time (154 variant)

Types: O outgoing, I incoming, A abandoned (incoming, not answered), T transferred, IT / OT incoming /
outgoing transfer, TT re-transfer, FO / FI forwarded out / in, DI / DO DISA in / out, DE DISA to an
extension. T and TT do not say which way the call went: a dialled number longer than
``internal_max_digits`` makes them outgoing. When the PBX prints IN GROUP / OUT GROUP / DND changes or
wake-up calls in the digits column the record is not a call and is ignored without quarantine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.drivers import DriverSpec, FramedLink, ParseContext
from appliance.events import CallRecord, Direction, Event, Ignored, LinkDown, RecordReceived
from appliance.framing import LineFramer
from pbx_drivers.common import (
    Encoding,
    decode,
    digits_of,
    format_hms,
    infer_year,
    parse_clock,
    parse_duration,
    unprintable,
)

SLICES = {"sequence": (2, 8), "extension": (9, 15), "auth": (16, 25), "month": (26, 28), "day_time": (28, 40),
          "duration": (41, 49), "type": (50, 52), "dialled": (53, 71), "account": (72, 89), "cost": (90, 100),
          "caller": (101, 117), "name": (118, 136), "group": (137, 143), "ring": (143, 151)}
TYPES: dict[str, tuple[Direction | None, str]] = {
    "O": ("outgoing", ""), "I": ("incoming", ""), "A": ("incoming", ""), "T": (None, "T"),
    "IT": ("incoming", "IT"), "OT": ("outgoing", "OT"), "TT": (None, "TT"), "FO": ("outgoing", "forwarded"),
    "FI": ("incoming", "forwarded"), "DI": ("incoming", "DISA"), "DO": ("outgoing", "DISA"),
    "DE": ("internal", "DISA"),
}
EVENTS = ("IN GROUP", "OUT GROUP", "DND", "WAKE UP", "WAKE-UP")
FF, RULE = 0x0C, re.compile(rb"\s*={4,}\s*")


@dataclass(frozen=True, kw_only=True)
class SamsungOptions:
    """``internal_max_digits``: the longest extension number (T/TT records). ``with_ring``: the
    154-character records with the ring time, as ``format_record`` writes them."""

    internal_max_digits: int = 4
    with_ring: bool = True
    encoding: Encoding = "ascii"
    max_length: int = 512

    def __post_init__(self) -> None:
        if not 160 <= self.max_length <= 4096:
            raise ValueError("max_length must be between 160 and 4096")


class SamsungLink(FramedLink):
    """Records end at NUL (CR and LF around them are noise); a form feed opens a page header that a
    ``====`` rule closes, and what is inside is ignored without quarantine."""

    def __init__(self, options: SamsungOptions) -> None:
        super().__init__(LineFramer(delimiters=b"\x00\r\n", max_length=options.max_length))
        self._in_header = False

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        events: list[Event] = []
        *before, after = data.split(bytes([FF]))
        for piece in before:  # each form feed ends the record before it and opens a header
            events += self._mark(self._framer.feed(piece) + self._framer.flush())
            self._in_header = True
        return events + self._mark(self._framer.feed(after))

    def connection_lost(self, now: float) -> list[Event]:
        return [*self._mark(self._framer.flush()), LinkDown(reason="connection closed")]

    def _mark(self, items: list) -> list[Event]:
        events: list[Event] = []
        for item in items:
            if isinstance(item, bytes) and self._in_header:
                events.append(Ignored(reason="page header", raw=item, quarantine=False))
                if RULE.fullmatch(item):
                    self._in_header = False
            elif isinstance(item, bytes):
                events.append(RecordReceived(raw=item))
            elif isinstance(item, Ignored):
                events.append(item)
        return events


def parse_record(raw: bytes, options: SamsungOptions, context: ParseContext) -> CallRecord | Ignored:
    """One record (without its NUL) -> a call, or Ignored with the reason. Never raises."""
    if not raw.strip():
        return Ignored(reason="blank line", raw=raw, quarantine=False)
    if RULE.fullmatch(raw):
        return Ignored(reason="page header rule", raw=raw, quarantine=False)
    problem = unprintable(raw)
    if problem:
        return Ignored(reason=problem, raw=raw)
    line = decode(raw, options.encoding).ljust(151)
    value = {name: line[a:b].strip() for name, (a, b) in SLICES.items()}
    event = next((name for name in EVENTS if value["dialled"].upper().startswith(name)), None)
    if event:
        return Ignored(reason=f"{event} event, not a call", raw=raw, quarantine=False)
    try:
        return _build(raw, value, options, context)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)


def _build(raw: bytes, value: dict[str, str], options: SamsungOptions, context: ParseContext) -> CallRecord:
    if value["type"] not in TYPES:
        known = ", ".join(TYPES)
        raise ValueError(f"type {value['type']!r} is not one of {known}: not a Samsung SMDR record")
    match = re.fullmatch(r"/(\d\d) (\d\d:\d\d:\d\d)", value["day_time"])
    if not value["month"].isdigit() or not match:
        raise ValueError(f"start {value['month']}{value['day_time']!r} is not MM/DD hh:mm:ss")
    start = infer_year(int(value["month"]), int(match.group(1)), parse_clock(match.group(2)), context)
    duration = parse_duration(value["duration"]) if value["duration"] else 0
    direction, transfer = TYPES[value["type"]]
    dialled = digits_of(value["dialled"])
    if value["dialled"] and not re.fullmatch(r"[0-9*#\- ]+", value["dialled"]):
        raise ValueError(f"dialled digits {value['dialled']!r} are not a number")
    if direction is None:
        direction = "outgoing" if len(dialled) > options.internal_max_digits else "internal"
    caller = value["caller"]
    if direction == "incoming":
        caller, dialled = caller or dialled, ""
    return CallRecord(
        start=start,
        duration=duration,
        ring=parse_duration(value["ring"]) if value["ring"] else None,
        extension=value["extension"],
        trunk="",
        dialled=dialled,
        caller=caller if direction == "incoming" else "",
        direction=direction,
        answered=value["type"] != "A" and duration > 0,
        account_code=value["account"],
        transfer=transfer,
        raw=raw,
    )


def format_record(call: CallRecord, options: SamsungOptions) -> bytes:
    """One record and its NUL. Unanswered incoming calls are type A; internal calls give b"" (SMDR
    reports trunk calls); tandem calls raise ValueError."""
    if call.direction == "internal":
        return b""
    if call.direction == "tandem":
        raise ValueError("the OfficeServ prints a trunk-to-trunk call as two records")
    kind = {"outgoing": "O", "incoming": "I" if call.answered else "A"}[call.direction]
    if call.transfer in TYPES and TYPES[call.transfer][0] in (None, call.direction):
        kind = call.transfer
    value = {"sequence": "000001", "extension": call.extension, "month": f"{call.start:%m}",
             "day_time": f"{call.start:/%d %H:%M:%S}", "duration": format_hms(call.duration), "type": kind,
             "dialled": "" if call.direction == "incoming" else call.dialled, "account": call.account_code,
             "caller": call.caller}
    if options.with_ring and call.ring is not None:
        value["ring"] = format_hms(call.ring)
    line = [" "] * (151 if options.with_ring else 137)
    for name, text in value.items():
        a, b = SLICES[name]
        if len(text) > b - a:
            raise ValueError(f"{name} {text!r} is wider than its {b - a} columns")
        line[a:b] = text.ljust(b - a)
    return ("".join(line) + "\r\n").encode(options.encoding, errors="replace") + b"\x00"


SPEC = DriverSpec(
    name="samsung_officeserv",
    kind="pbx",
    options=SamsungOptions,
    make_link=SamsungLink,
    transports=frozenset({"tcp-client", "tcp-server", "serial", "file"}),
    parse_record=parse_record,
    format_record=format_record,
    default_port=5100,
    description="Samsung OfficeServ 7000 series / iDCS SMDR (NUL-terminated records, TCP 5100)",
)
