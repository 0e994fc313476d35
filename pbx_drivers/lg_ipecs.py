"""LG-Ericsson / Ericsson-LG iPECS (LIK, eMG, UCP; and the LG-built Vodavi XTS/STS) SMDR.

Sources: ``/work/shared/reference/smdr.md`` §1 and §2.15: the iPECS field list (NO, STA, CO, TIME, START,
NUM I, COST, ACCOUNT CODE, NUM II; PGM 177 attributes) and the Vodavi XTS capture of
IdivideBy0/Vodavi-SMDR-Capture (call type letter glued to the digits, the caller of an incoming call on a
second line). Column widths vary by model and firmware and no real iPECS capture is public, so records are
read field by field in the manual's order; the test capture is constructed and says so.

Transport: RS-232 or a TCP channel (the collector connects), one record per CR LF line.

Record: ``[NO] STA CO TIME START NUM-I [COST] [ACCOUNT] [<NUM-II>]``

- NO: 4-digit record number (optional, PGM 177). STA: the station. CO: the trunk.
- TIME: duration ``hh:mm:ss`` or ``mm:ss`` (ring time on an abandoned call). START: ``MM/DD[/YY] hh:mm[:ss]``
  (``date_order`` dmy for DD/MM), the start of the call; the year is inferred when missing.
- NUM-I: the call type letter and the digits: O outgoing (digits dialled), I incoming (DNIS, if any),
  A abandoned (incoming, not answered), T transferred (outgoing when the digits are longer than
  ``internal_max_digits``), F forwarded to an outside number (outgoing), D DISA (trunk to trunk).
- COST: ``$d.dd`` or ``d.dd``. ACCOUNT: digits. NUM-II: the caller's number in angle brackets, on the
  same line or (Vodavi and some LIK settings) on the next line, which the link joins to its record.

Column title and rule lines are ignored without quarantine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from appliance.drivers import DriverSpec, ParseContext
from appliance.events import CallRecord, Direction, Ignored
from pbx_drivers.common import (
    decode,
    format_hms,
    header_like,
    parse_clock,
    parse_date,
    parse_duration,
    resolve_start,
    unprintable,
)
from pbx_drivers.links import ContinuedLineOptions, JoiningLink, continued_lines_link

_RECORD = re.compile(
    r"\s*(?:(?P<no>\d{4})\s+)?(?P<sta>\d{2,5}|ATD)\s+(?P<co>\d{1,4})\s+(?P<time>\d{1,2}:\d\d(?::\d\d)?)\s+"
    r"(?P<date>\d\d/\d\d(?:/\d\d)?)\s+(?P<clock>\d\d:\d\d(?::\d\d)?)\s+(?P<kind>[OIATFD])(?P<number>[0-9*#]*)"
    r"(?:\s+(?P<cost>\$?\d+\.\d\d))?(?:\s+(?P<account>\d+))?(?:\s+<(?P<caller>[^>]*)>)?\s*"
)
HEADER_WORDS = ("STA", "CO", "TIME", "START", "NUM", "COST", "ACCOUNT")
KINDS: dict[str, Direction] = {"O": "outgoing", "I": "incoming", "A": "incoming", "F": "outgoing",
                               "D": "tandem"}


@dataclass(frozen=True, kw_only=True)
class IpecsOptions(ContinuedLineOptions):
    """``date_order``: MM/DD (mdy) or DD/MM (dmy). ``caller_on_second_line``: ``format_record`` prints
    NUM-II on its own line, as the Vodavi does. ``internal_max_digits``: for T records."""

    date_order: Literal["mdy", "dmy"] = "mdy"
    record_number: bool = True
    caller_on_second_line: bool = False
    internal_max_digits: int = 4


def make_link(options: IpecsOptions) -> JoiningLink:
    return continued_lines_link(options, b"<")


def parse_record(raw: bytes, options: IpecsOptions, context: ParseContext) -> CallRecord | Ignored:
    """One record (with its NUM-II line, if the PBX printed one) -> a call, or Ignored. Never raises."""
    text = decode(raw, options.encoding).replace("\n", " ").rstrip()
    if not text.strip() or set(text.strip()) <= set("-= "):
        return Ignored(reason="blank line or rule", raw=raw, quarantine=False)
    if header_like(text, HEADER_WORDS) and not re.search(r"\d\d:\d\d", text):
        return Ignored(reason="column titles", raw=raw, quarantine=False)
    problem = unprintable(raw.replace(b"\n", b" "))
    if problem:
        return Ignored(reason=problem, raw=raw)
    match = _RECORD.fullmatch(text)
    if match is None:
        return Ignored(reason="not an iPECS SMDR record: STA CO TIME START NUM-I expected", raw=raw)
    try:
        return _build(raw, match, options, context)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)


def _build(raw: bytes, match: re.Match[str], options: IpecsOptions, context: ParseContext) -> CallRecord:
    year, month, day = parse_date(match["date"], options.date_order)
    start = resolve_start(year, month, day, parse_clock(match["clock"]), context)
    elapsed = parse_duration(match["time"])
    kind, number = match["kind"], match["number"]
    direction = KINDS.get(kind) or ("outgoing" if len(number) > options.internal_max_digits else "incoming")
    abandoned = kind == "A"
    dialled, caller = number, ""
    if direction == "incoming":
        caller = match["caller"] or ""
    return CallRecord(
        start=start,
        duration=0 if abandoned else elapsed,
        ring=elapsed if abandoned else None,
        extension="" if direction == "tandem" else match["sta"],
        trunk=match["co"],
        dialled=dialled,
        caller=caller.strip(),
        direction=direction,
        answered=not abandoned and elapsed > 0,
        account_code=match["account"] or "",
        transfer={"T": "T", "F": "forwarded"}.get(kind, ""),
        raw=raw,
    )


def format_record(call: CallRecord, options: IpecsOptions) -> bytes:
    """One record (two lines when ``caller_on_second_line`` and there is a caller). Internal calls give
    b"": iPECS SMDR reports trunk calls."""
    if call.direction == "internal":
        return b""
    kind = {"outgoing": "O", "incoming": "I", "tandem": "D"}[call.direction]
    if call.direction == "incoming" and not call.answered:
        kind = "A"
    elif call.transfer == "forwarded" and call.direction == "outgoing":
        kind = "F"
    elapsed = (call.ring or 0) if kind == "A" else call.duration
    date_text = call.start.strftime("%m/%d" if options.date_order == "mdy" else "%d/%m")
    number = f"{kind}{call.dialled}"
    cost = "$0.00" if call.direction == "outgoing" else ""
    caller = f"<{call.caller}>" if call.caller and call.direction == "incoming" else ""
    prefix = "0001 " if options.record_number else ""
    station = call.extension or "ATD"  # a DISA (trunk to trunk) call has no station: the attendant's
    line = (f"{prefix}{station:<4} {call.trunk:<3} {format_hms(elapsed)} {date_text} {call.start:%H:%M:%S} "
            f"{number:<22} {cost:<7} {call.account_code:<10}").rstrip()
    if caller:
        line += ("\r\n" + " " * 30 if options.caller_on_second_line else " ") + caller
    return (line + "\r\n").encode(options.encoding, errors="replace")


SPEC = DriverSpec(
    name="lg_ipecs",
    kind="pbx",
    options=IpecsOptions,
    make_link=make_link,
    transports=frozenset({"serial", "tcp-client", "tcp-server", "file"}),
    parse_record=parse_record,
    format_record=format_record,
    default_port=None,
    description="LG-Ericsson iPECS (LIK/eMG/UCP) and LG-built Vodavi SMDR (field-ordered, two-line incoming)",
)
