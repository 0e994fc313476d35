"""NEC SL1000 / SL1100 / SL2100 / SV8100 / SV9100 / Aspire SMDR: the 80-column printer report.

Sources: ``/work/shared/reference/smdr.md`` §2.5 (second item) and the NEC SL1100 "Features and
Specifications Manual" issue 2.0, Station Message Detail Recording, tables 1-67 and 1-68 (the same tables
are in the Aspire Software Manual and the Electra Elite IPK II manual). No real capture is public; the
test capture is built from these tables and says so.

The report comes over the serial port or the LAN SMDR port (the collector connects; no login), CR LF per
line. Every page starts with header line 1 (60 spaces, ``MM/DD/YYYY``, ``PAGE nnn``), header line 2 (the
column titles) and an empty line; a daily "OUTGOING CALL/COST SUMMARY" block can appear too. All of that
is ignored without quarantine.

Record, 1-based columns; PRG 35-02-14 = 1 adds the date and moves LINE right::

    PRG 35-02-14 = 0:  1-4 class  6-10 time HH:MM  12-21 LINE            23-30 duration HH:MM:SS
    PRG 35-02-14 = 1:  1-4 class  6-10 time HH:MM  12-16 date MM/DD  18-21 LINE  23-30 duration
    both:              32-41 station (number or name)  43-62 number dialled / caller ID (20 max)
                       64-79 account code, or ``NO ANSWER``

Classes: POT, POTA, POTP, POTW, IVOT, IVOTP, IDOT, SAD, WAD outgoing; PIN, IVIN, IDIN incoming; ICM and
SDTA extension calls; PTRS and ITRS transferred calls (one record per owner; the report does not say
which way the call went, so ``transferred_as`` decides); ALB (all lines busy) and BRD (blocked by toll
restriction) are not calls; BFL (SMDR buffer full) is quarantined so someone sees that records were lost.
``NEXT`` lines carry the calling party's name for the record above them: the link joins them to it
(``pbx_drivers.links.JoiningLink``) so the journal keeps the name with its call.

The time is the call's start. Without the date column the date is the day the record arrived
(``ParseContext.received_at``); with it the year is inferred (``infer_year``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from appliance.drivers import DriverSpec, ParseContext
from appliance.events import CallRecord, Direction, Ignored
from appliance.framing import LineFramer
from pbx_drivers.common import (
    Encoding,
    decode,
    digits_of,
    format_hms,
    infer_date,
    parse_clock,
    parse_date,
    parse_duration,
    resolve_start,
    unprintable,
)
from pbx_drivers.links import JoiningLink

CLASSES: dict[str, Direction] = {
    **dict.fromkeys(("POT", "POTA", "POTP", "POTW", "IVOT", "IVOTP", "IDOT", "SAD", "WAD"), "outgoing"),
    **dict.fromkeys(("PIN", "IVIN", "IDIN"), "incoming"),
    **dict.fromkeys(("ICM", "SDTA"), "internal"),
}
TRANSFERRED = ("PTRS", "ITRS")
NOT_CALLS = {"ALB": "all lines busy", "BRD": "call blocked by toll restriction"}
SUMMARY = ("OUTGOING CALL/COST SUMMARY", "FOR DAY OF", "TOTAL NO. OF", "NO. OF OUTGOING")
NO_ANSWER = "NO ANSWER"
WITHOUT_DATE = {"time": (6, 10), "line": (12, 21), "duration": (23, 30), "station": (32, 41),
                "number": (43, 62), "account": (64, 79)}
WITH_DATE = {**WITHOUT_DATE, "date": (12, 16), "line": (18, 21)}
_PAGE_HEADER = re.compile(r" {20,}\d\d/\d\d/\d{4} +PAGE +\d+ *")


@dataclass(frozen=True, kw_only=True)
class NecSv8100Options:
    """``date_column``: ``format_record`` prints the date (PRG 35-02-14 = 1); parsing finds it by shape.
    ``transferred_as``: the direction given to PTRS/ITRS records. ``next_hold``: seconds a record is
    kept back waiting for its NEXT line."""

    date_column: bool = False
    transferred_as: Literal["incoming", "outgoing"] = "incoming"
    next_hold: float = 2.0
    encoding: Encoding = "ascii"
    max_length: int = 256

    def __post_init__(self) -> None:
        if not 0.0 <= self.next_hold <= 30.0 or not 80 <= self.max_length <= 4096:
            raise ValueError("next_hold must be 0-30 s and max_length 80-4096")


def make_link(options: NecSv8100Options) -> JoiningLink:
    return JoiningLink(LineFramer(max_length=options.max_length), lambda line: line.startswith(b"NEXT"),
                       hold=options.next_hold)


def parse_record(raw: bytes, options: NecSv8100Options, context: ParseContext) -> CallRecord | Ignored:
    """One record (and any NEXT lines joined to it by the link) -> a call, or Ignored. Never raises."""
    first = raw.split(b"\n", 1)[0]
    text = decode(first, options.encoding).rstrip()
    if not text.strip():
        return Ignored(reason="blank line", raw=raw, quarantine=False)
    problem = unprintable(raw.replace(b"\n", b" "))
    if problem:
        return Ignored(reason=problem, raw=raw)
    if _PAGE_HEADER.fullmatch(text) or text.startswith("CLASS") or text.lstrip().startswith(SUMMARY):
        return Ignored(reason="page header or daily summary", raw=raw, quarantine=False)
    kind = text[:5].strip()  # columns 1-4, and 5 for the one five-letter class (IVOTP)
    if kind in NOT_CALLS:
        return Ignored(reason=f"{kind}: {NOT_CALLS[kind]}, not a call", raw=raw, quarantine=False)
    if kind == "BFL":
        return Ignored(reason="BFL: the PBX's SMDR buffer was full, records may be missing", raw=raw)
    if kind == "NEXT":
        return Ignored(reason="NEXT line with no record before it", raw=raw)
    try:
        return _parse(raw, text, kind, options, context)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)


def _parse(raw: bytes, text: str, kind: str, options: NecSv8100Options, context: ParseContext) -> CallRecord:
    if kind in CLASSES:
        direction = CLASSES[kind]
    elif kind in TRANSFERRED:
        direction = options.transferred_as
    else:
        raise ValueError(f"class {kind!r} is not an SMDR call class")
    line = text.ljust(79)
    table = WITH_DATE if re.fullmatch(r"\d\d/\d\d", line[11:16]) else WITHOUT_DATE
    field = {name: line[a - 1:b].strip() for name, (a, b) in table.items()}
    clock = parse_clock(field["time"])
    if "date" in field:
        _, month, day = parse_date(field["date"], "mdy")
        start = resolve_start(None, month, day, clock, context)
    else:
        start = infer_date(clock, context)
    duration = parse_duration(field["duration"])
    answered = field["account"] != NO_ANSWER
    account = "" if not answered else field["account"]
    number, caller, dialled = field["number"], "", ""
    if not re.fullmatch(r"[0-9*#+\-PF ]*", number):
        raise ValueError(f"number {number!r} is not a telephone number")
    if direction == "incoming":
        caller = digits_of(number, keep="+")
    else:
        dialled = digits_of(number)
    return CallRecord(
        start=start,
        duration=duration,
        ring=None,
        extension=field["station"],
        trunk="" if direction == "internal" else field["line"],
        dialled=dialled,
        caller=caller,
        direction=direction,
        answered=answered,
        account_code=account,
        transfer=kind if kind in TRANSFERRED else "",
        raw=raw,
    )


def format_record(call: CallRecord, options: NecSv8100Options) -> bytes:
    """One record as the SV8100 prints it (with the date column when ``date_column``). Unanswered calls
    print ``NO ANSWER`` instead of an account code; tandem calls raise ValueError."""
    kind = {"outgoing": "POT", "incoming": "PIN", "internal": "ICM"}.get(call.direction)
    if kind is None:
        raise ValueError("the SV8100 report has no class for a trunk-to-trunk call")
    if call.transfer in TRANSFERRED:
        kind = call.transfer
    number = call.caller if call.direction == "incoming" else call.dialled
    account = call.account_code if call.answered else NO_ANSWER
    trunk = "" if call.direction == "internal" else call.trunk
    table = WITH_DATE if options.date_column else WITHOUT_DATE
    values = {"time": f"{call.start:%H:%M}", "line": trunk, "duration": format_hms(call.duration),
              "station": call.extension, "number": number, "account": account}
    if options.date_column:
        values["date"] = f"{call.start:%m/%d}"
    line = [" "] * 79
    line[0:len(kind)] = kind
    for name, (a, b) in table.items():
        if len(values[name]) > b - a + 1:
            raise ValueError(f"{name} {values[name]!r} is wider than columns {a}-{b}")
        line[a - 1:b] = values[name].ljust(b - a + 1)
    return ("".join(line).rstrip() + "\r\n").encode(options.encoding, errors="replace")


SPEC = DriverSpec(
    name="nec_sv8100",
    kind="pbx",
    options=NecSv8100Options,
    make_link=make_link,
    transports=frozenset({"serial", "tcp-client", "tcp-server", "file"}),
    parse_record=parse_record,
    format_record=format_record,
    default_port=None,  # the SMDR LAN port is set in PRG 10-20 and differs per site
    description="NEC SL1000/SL1100/SL2100/SV8100/SV9100 SMDR printer report (page headers, NEXT lines)",
)
