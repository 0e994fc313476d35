"""Nortel Meridian 1 / Succession / Avaya CS1000 CDR (the CDR TTY, or CDR over IP through an SDI port).

Sources: ``/work/shared/reference/smdr.md`` §1 and §2.13 and the real records in
``/work/shared/samples/nortel_cs1000.txt`` (a site administrator's post on tek-tips, 2003; the forum may
have squeezed runs of spaces, so records are read by field, not by column).

Record: ``type recno customer ORIGID TERID mm/dd hh:mm hh:mm:ss [A] [digits]``. ORIGID and TERID are a
DN (extension) or ``Tnnn mmm`` (trunk route nnn, member mmm). The record letter: N normal, S start of a
transferred call (its first leg), X a further leg, E end (its last leg), L internal, B abandoned (rang,
no answer); A (authorisation code), C (charge), Q/R/F (ACD), I (initialisation), T (time stamp),
D (station activity) and Y (feature) records are not calls and are ignored without quarantine. ``A``
after the duration means the far end gave answer supervision. The time is when the record was written,
the END of the call (``time_is``); there is no year (``infer_year``).

New format (FCDR=NEW) prints continuation lines that start with ``&`` under a record (calling line ID,
DNIS, time to answer): ``pbx_drivers.links.JoiningLink`` joins them to the record, and the first number
of seven or more digits in them is taken as the caller ID.

Trunk calls: a trunk as ORIGID is incoming, as TERID outgoing, both tandem; no trunk internal. The trunk
is ``<route>-<member>`` (``010-016``). A transferred call's legs (S, X, E on the same trunk) are joined
for charging: S and X are ``continued`` legs and E ends the call, all with ``call_id`` ``trunk:<trunk>``
(``appliance.legs``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.drivers import DriverSpec, ParseContext
from appliance.events import CallRecord, Direction, Ignored
from pbx_drivers.common import (
    TimeIs,
    decode,
    direction_from_trunks,
    format_hms,
    infer_year,
    moment_of,
    parse_clock,
    parse_duration,
    start_of,
    unprintable,
)
from appliance.legs import CONTINUED
from pbx_drivers.links import ContinuedLineOptions, JoiningLink, continued_lines_link

CALLS = frozenset("NSXELB")
NOT_CALLS = {"A": "authorisation code", "C": "charge", "Q": "ACD", "R": "ACD", "F": "ACD",
             "I": "initialisation",
             "T": "time stamp", "D": "station activity", "Y": "feature", "P": "pager"}
_PARTY = r"T\d{3}\s+\d{3}|[0-9A-Z*#]+"
_RECORD = re.compile(
    rf"(?P<type>[A-Z])\s+(?P<recno>\d{{3}})\s+(?P<customer>\d{{2}})\s+"
    rf"(?P<orig>{_PARTY})\s+(?P<ter>{_PARTY})\s+"
    r"(?P<date>\d\d/\d\d)\s+(?P<time>\d\d:\d\d)\s+(?P<duration>\d\d:\d\d:\d\d)(?:\s+(?P<answer>A)(?=\s|$))?"
    r"(?:\s+(?P<digits>[0-9*#]+))?\s*"
)
_TRUNK = re.compile(r"T(\d{3})\s+(\d{3})")


@dataclass(frozen=True, kw_only=True)
class NortelOptions(ContinuedLineOptions):
    """``time_is``: what the record's time marks (end by default). ``continuation_hold``: seconds a
    record waits for its ``&`` lines."""

    time_is: TimeIs = "end"


def make_link(options: NortelOptions) -> JoiningLink:
    return continued_lines_link(options, b"&")


def parse_record(raw: bytes, options: NortelOptions, context: ParseContext) -> CallRecord | Ignored:
    """One record with its ``&`` lines -> a call, or Ignored with the reason. Never raises."""
    first, *continuations = raw.split(b"\n")
    text = decode(first, options.encoding).strip()
    if not text:
        return Ignored(reason="blank line", raw=raw, quarantine=False)
    problem = unprintable(raw.replace(b"\n", b" "))
    if problem:
        return Ignored(reason=problem, raw=raw)
    letter = text[:1]
    if letter in NOT_CALLS and not text[1:2].isalnum():
        return Ignored(reason=f"{letter} record ({NOT_CALLS[letter]}), not a call", raw=raw, quarantine=False)
    match = _RECORD.fullmatch(text)
    if letter not in CALLS or match is None:
        return Ignored(reason="not a CDR record: type, record no., customer, ORIGID, TERID, mm/dd hh:mm, "
                              "duration expected", raw=raw)
    try:
        return _build(raw, match, [decode(line, options.encoding) for line in continuations], options,
                      context)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)


def _build(raw: bytes, match: re.Match[str], extra: list[str], options: NortelOptions,
           context: ParseContext) -> CallRecord:
    month, day = (int(part) for part in match["date"].split("/"))
    moment = infer_year(month, day, parse_clock(match["time"]), context)
    duration = parse_duration(match["duration"])
    orig, ter = _TRUNK.fullmatch(match["orig"]), _TRUNK.fullmatch(match["ter"])
    direction: Direction = direction_from_trunks(bool(orig), bool(ter)) or "internal"
    digits = match["digits"] or ""
    clid = next(iter(re.findall(r"\d{7,}", " ".join(extra))), "")
    extension, trunk, dialled, caller = match["orig"], "", digits, ""
    if direction == "incoming":
        extension, trunk, caller = match["ter"], _trunk(orig), clid
    elif direction == "outgoing":
        trunk = _trunk(ter)
    elif direction == "tandem":
        extension, trunk, caller = "", _trunk(ter), clid
    else:
        dialled = digits or match["ter"]
    kind = match["type"]
    leg = kind in "SXE" and bool(trunk)
    return CallRecord(
        start=start_of(moment, duration, options.time_is),
        duration=duration,
        ring=None,
        extension=extension,
        trunk=trunk,
        dialled=dialled,
        caller=caller,
        direction=direction,
        answered=kind != "B" and duration > 0,
        call_id=f"trunk:{trunk}" if leg else "",
        transfer=CONTINUED if leg and kind in "SX" else "transferred" if leg else "",
        raw=raw,
    )


def _trunk(match: re.Match[str] | None) -> str:
    return f"{match.group(1)}-{match.group(2)}" if match else ""


def format_record(call: CallRecord, options: NortelOptions) -> bytes:
    """One record (and an ``&`` line with the caller ID of an incoming call). A trunk given as a bare
    number is route <n> member 001."""
    route, member = call.trunk.split("-", 1) if "-" in call.trunk else (call.trunk or "0", "1")
    trunk = f"T{int(route):03d} {int(member):03d}"
    kind = "N"
    if call.call_id.startswith("trunk:"):
        kind = "S" if call.transfer == CONTINUED else "E"
    if not call.answered and call.direction == "incoming":
        kind = "B"
    orig, ter = call.extension, trunk
    if call.direction == "incoming":
        orig, ter = trunk, call.extension
    elif call.direction == "internal":
        kind, ter = ("L" if kind == "N" else kind), call.dialled
    elif call.direction == "tandem":
        orig = "T000 001"
    moment = moment_of(call.start, call.duration, options.time_is)
    digits = call.dialled if call.direction != "internal" else ""
    answer = " A" if call.answered and call.direction == "outgoing" else ""
    line = (f"{kind} 001 00 {orig:<8} {ter:<8} {moment:%m/%d %H:%M} {format_hms(call.duration)}{answer}"
            f" {digits}").rstrip()
    if call.caller and call.direction in ("incoming", "tandem"):
        line += f"\r\n& 000 {call.caller}"
    return (line + "\r\n").encode(options.encoding, errors="replace")


SPEC = DriverSpec(
    name="nortel_cs1000",
    kind="pbx",
    options=NortelOptions,
    make_link=make_link,
    transports=frozenset({"serial", "tcp-client", "tcp-server", "file"}),
    parse_record=parse_record,
    format_record=format_record,
    default_port=None,
    description="Nortel Meridian 1 / CS1000 CDR (N/S/X/E records, & continuation lines, no year)",
)
