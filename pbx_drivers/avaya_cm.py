"""Avaya Communication Manager (Aura / Definity / S8xxx) CDR: unformatted, printer and customized formats.

Sources: ``/work/shared/reference/smdr.md`` §1 and §2.1: the Definity 8.2 printer-format positions, the
unformatted positions as jgnom/avaya_cdr_collector reads CM 8 records, the customized example of
OlegPowerC/avayacdrparce, and the condition codes of the CM "Call Detail Recording" reference. No real CM
record is public (smdr.md §6): the test capture is built from these layouts and says so.

Transport: the CDR link of ``change system-parameters cdr`` / ``ip-services`` (CDR1/CDR2): CM connects to
the collector's port (``tcp-server`` here) or, with a local port set, listens (``tcp-client``); legacy
sites print to a serial port. Records end in CR LF, some formats in CR LF NUL NUL (NUL is a record end
too). Set "Reliable Protocol" to n: the Reliable Session Protocol is not spoken here.

Layouts (0-based ``[start:end]``):

- ``unformatted`` (100 characters): [0:4] time hhmm, [4:8] duration ``h mm t``, [8] condition code,
  [9:13] access code dialled, [13:17] access code used, [17:32] dialled number, [32:42] calling number,
  [42:57] account code, [57:64] authorisation code, [66] FRL, [67:70] incoming circuit, [70:73]
  outgoing circuit, [73] feature flag, [74:77] attendant console, [77:81] incoming trunk access code,
  [82:84] node, [84:89] INS, [89:92] IXC, [92] BCC, [93] MA-UUI, [94] resource flag, [95:99] packet
  count, [99] TSC flag.
- ``printer`` (Definity 8.2, 1-based in the manual): 1-4 time, 6-9 duration, 11 condition code, 13-15
  access code dialled, 17-19 access code used, 21-35 dialled number, 37-41 calling number, 43-57
  account code, 59-65 authorisation code, 70 FRL, 72 IXC, 74-76 incoming circuit.
- ``customized``: the site's own list of ``[field, width]`` pairs in the order CM prints them, as entered on
  page 2 of ``system-parameters cdr`` (``columns`` option); ``space`` and ``null`` are filler.
  Field names are CM's: date, time, sec-dur, duration, cond-code, code-dial, code-used, dialed-num,
  calling-num, acct-code, auth-code, in-trk-code, in-crt-id, out-crt-id, frl, ... (``FIELDS``).

Duration ``h mm t`` is hours, minutes and TENTHS of a minute (6 s each); ``sec-dur`` is seconds. The
time is a time of day, the END of the call unless ``time_is: start``; formats without a date are dated by
when the record arrived (``ParseContext.received_at``; 23:59 read at 00:01 is yesterday's). Dates are
``mmddyy`` or ``ddmmyy`` per the CM "CDR Date Format" (``date_order``).

Condition codes: 0 intraswitch (internal); 7 AAR/ARS, 8 ringback queuing, A outgoing by trunk access code,
B adjunct-placed: outgoing; 9 incoming (tandem when it also left on a trunk); G ring interval, H abandoned,
I busy: not answered; 4 and D: interim record of a call over 10 hours (``transfer`` = ``interim``);
others (1 attendant, C conference, E, K, L, M, N, T...) take the direction from the trunks used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from appliance.drivers import DriverSpec, FramedLink, ParseContext
from appliance.events import CallRecord, Direction, Ignored
from appliance.framing import LineFramer
from pbx_drivers.common import (
    Encoding,
    TimeIs,
    decode,
    infer_date,
    moment_of,
    parse_clock,
    resolve_start,
    start_of,
    unprintable,
)

Span = tuple[int, int]
UNFORMATTED: dict[str, Span] = {
    "time": (0, 4), "duration": (4, 8), "cond-code": (8, 9), "code-dial": (9, 13), "code-used": (13, 17),
    "dialed-num": (17, 32), "calling-num": (32, 42), "acct-code": (42, 57), "auth-code": (57, 64),
    "frl": (66, 67), "in-crt-id": (67, 70), "out-crt-id": (70, 73), "feat-flag": (73, 74),
    "attd-console": (74, 77), "in-trk-code": (77, 81), "node-num": (82, 84), "ins": (84, 89),
    "ixc-code": (89, 92), "bcc": (92, 93), "ma-uui": (93, 94), "res-flag": (94, 95),
    "packet-count": (95, 99), "tsc-flag": (99, 100),
}
PRINTER: dict[str, Span] = {
    "time": (0, 4), "duration": (5, 9), "cond-code": (10, 11), "code-dial": (12, 15), "code-used": (16, 19),
    "dialed-num": (20, 35), "calling-num": (36, 41), "acct-code": (42, 57), "auth-code": (58, 65),
    "frl": (69, 70), "ixc-code": (71, 72), "in-crt-id": (73, 76),
}
FIELDS = frozenset({
    *UNFORMATTED, "date", "sec-dur", "space", "null", "vdn", "ppm", "isdn-cc", "tsc-ct", "ucid",
    "location-from", "location-to", "calling-type", "dialed-num2", "in-trk-code",
})
FILLER = ("space", "null")
DEFAULT_COLUMNS: tuple[tuple[str, int], ...] = (
    ("date", 6), ("space", 1), ("time", 4), ("space", 1), ("sec-dur", 5), ("space", 1), ("calling-num", 15),
    ("space", 1), ("dialed-num", 23), ("space", 1), ("auth-code", 13), ("space", 1), ("in-trk-code", 4),
    ("in-crt-id", 3), ("space", 1), ("code-dial", 4), ("space", 1), ("code-used", 4), ("out-crt-id", 3),
    ("space", 1), ("cond-code", 1), ("space", 1),
)
CONDITION_CODES = frozenset("0146789ABCDEGHIKLMNT")
OUTGOING_CODES = frozenset("78AB")
UNANSWERED_CODES = frozenset("GHI")
INTERIM_CODES = frozenset("4D")
_NUMBER = re.compile(r"[0-9*#]*")


@dataclass(frozen=True, kw_only=True)
class AvayaCmOptions:
    """``layout``: unformatted, printer or customized (then ``columns``: ``[[field, width], ...]``).
    ``date_order``: CM's CDR Date Format (mdy = month/day, dmy = day/month). ``time_is``: what the time
    of day marks."""

    layout: Literal["unformatted", "printer", "customized"] = "unformatted"
    columns: tuple[tuple[str, int], ...] = field(default_factory=lambda: DEFAULT_COLUMNS)
    date_order: Literal["mdy", "dmy"] = "mdy"
    time_is: TimeIs = "end"
    encoding: Encoding = "ascii"
    max_length: int = 512

    def __post_init__(self) -> None:
        columns = []
        for item in self.columns:
            if len(item) != 2 or not str(item[1]).isdigit() or int(item[1]) < 1:
                raise ValueError(f"columns: {list(item)} is not [field, width]")
            name, width = str(item[0]), int(item[1])
            if name not in FIELDS:
                raise ValueError(f"columns: {name!r} is not a CM CDR field; use {', '.join(sorted(FIELDS))}")
            columns.append((name, width))
        object.__setattr__(self, "columns", tuple(columns))  # YAML gives widths as text or int alike
        names = [name for name, _ in columns if name not in FILLER]
        if len(names) != len(set(names)):
            raise ValueError("columns: a field is listed twice")
        if self.layout == "customized":
            if "time" not in names or ("duration" not in names and "sec-dur" not in names):
                raise ValueError("columns: a customized layout needs time and duration or sec-dur")
            widths = {"date": 6, "time": 4, "duration": 4}
            for name, width in columns:
                if name in widths and width != widths[name]:
                    raise ValueError(f"columns: {name} is {widths[name]} characters wide in CM, not {width}")
        if not 80 <= self.max_length <= 4096:
            raise ValueError("max_length must be between 80 and 4096")

    def table(self) -> dict[str, Span]:
        if self.layout == "unformatted":
            return UNFORMATTED
        if self.layout == "printer":
            return PRINTER
        spans, position = {}, 0
        for name, width in self.columns:
            if name not in FILLER:
                spans[name] = (position, position + width)
            position += width
        return spans


def make_link(options: AvayaCmOptions) -> FramedLink:
    # Some CM formats end a record with CR LF NUL NUL: every one of those bytes ends a record.
    return FramedLink(LineFramer(delimiters=b"\r\n\x00\x0c", max_length=options.max_length))


def parse_record(raw: bytes, options: AvayaCmOptions, context: ParseContext) -> CallRecord | Ignored:
    """One CDR record -> a call, or Ignored with the reason. Never raises."""
    if not raw.strip():
        return Ignored(reason="blank line", raw=raw, quarantine=False)
    problem = unprintable(raw)
    if problem:
        return Ignored(reason=problem, raw=raw)
    table = options.table()
    text = decode(raw, options.encoding)
    width = max(end for _, end in table.values())
    if len(text.rstrip()) > width:
        return Ignored(reason=f"{len(text.rstrip())} characters: longer than the {options.layout} layout "
                              f"({width})", raw=raw)
    line = text.ljust(width)
    value = {name: line[a:b].strip() for name, (a, b) in table.items()}
    try:
        return _build(raw, value, options, context)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)


def _build(raw: bytes, value: dict[str, str], options: AvayaCmOptions, context: ParseContext) -> CallRecord:
    duration = _duration(value)
    clock_text = value["time"]
    if not re.fullmatch(r"\d{4}", clock_text):
        raise ValueError(f"time {clock_text!r} is not hhmm")
    clock = parse_clock(f"{clock_text[:2]}:{clock_text[2:]}")
    if value.get("date"):
        date_text = value["date"]
        if not re.fullmatch(r"\d{6}", date_text):
            raise ValueError(f"date {date_text!r} is not six digits")
        first, second, year = int(date_text[:2]), int(date_text[2:4]), 2000 + int(date_text[4:])
        month, day = (first, second) if options.date_order == "mdy" else (second, first)
        moment = resolve_start(year, month, day, clock, context)
    else:
        moment = infer_date(clock, context)
    code = value.get("cond-code", "").upper()
    if code and code not in CONDITION_CODES:
        raise ValueError(f"condition code {code!r} is not a CM condition code: wrong layout?")
    if "cond-code" in value and not code:
        raise ValueError("no condition code: a cut-off record?")
    for name in ("dialed-num", "calling-num", "code-dial", "code-used"):
        if not _NUMBER.fullmatch(value.get(name, "")):
            raise ValueError(f"{name} {value[name]!r} is not a number: wrong layout?")
    came_in = bool(value.get("in-crt-id") or value.get("in-trk-code"))
    went_out = bool(value.get("out-crt-id") or value.get("code-used"))
    direction = _direction(code, came_in, went_out)
    calling, dialled_number = value.get("calling-num", ""), value.get("dialed-num", "")
    in_trunk = value.get("in-trk-code") or value.get("in-crt-id", "")
    out_trunk = value.get("code-used") or value.get("out-crt-id", "")
    if direction == "incoming":
        extension, trunk, dialled, caller = dialled_number, in_trunk, "", calling
    elif direction == "tandem":
        extension, trunk, dialled, caller = "", out_trunk, dialled_number, calling
    else:
        extension, trunk, dialled, caller = calling, out_trunk if direction == "outgoing" else "", \
            dialled_number, ""
    return CallRecord(
        start=start_of(moment, duration, options.time_is),
        duration=duration,
        ring=None,
        extension=extension,
        trunk=trunk,
        dialled=dialled,
        caller=caller,
        direction=direction,
        answered=code not in UNANSWERED_CODES and duration > 0,
        account_code=value.get("acct-code", ""),
        transfer="interim" if code in INTERIM_CODES else "",
        raw=raw,
    )


def _duration(value: dict[str, str]) -> int:
    if "sec-dur" in value:
        if not value["sec-dur"].isdigit():
            raise ValueError(f"sec-dur {value['sec-dur']!r} is not seconds")
        return int(value["sec-dur"])
    text = value.get("duration", "")
    if not re.fullmatch(r"\d{4}", text):
        raise ValueError(f"duration {text!r} is not h mm t (hours, minutes, tenths of a minute)")
    return int(text[0]) * 3600 + int(text[1:3]) * 60 + int(text[3]) * 6


def _direction(code: str, came_in: bool, went_out: bool) -> Direction:
    if code == "0":
        return "internal"
    if code in OUTGOING_CODES:
        return "outgoing"
    if code == "9":
        return "tandem" if went_out else "incoming"
    if came_in and went_out:
        return "tandem"
    return "incoming" if came_in else "outgoing" if went_out else "internal"


def format_record(call: CallRecord, options: AvayaCmOptions) -> bytes:
    """One record in the configured layout. The time of day is the end (``time_is``) to the minute;
    ``h mm t`` durations are rounded up to the next tenth of a minute (6 s) and capped at 9:59.9;
    numbers longer than their column are cut, as CM cuts them. Raises ValueError for other values wider
    than their columns."""
    table = options.table()
    duration = call.duration
    tenths = min(-(-duration // 6), 9 * 600 + 599)
    if "sec-dur" not in table:
        duration = tenths * 6
    moment = moment_of(call.start, duration, options.time_is)
    code = {"outgoing": "7", "incoming": "9", "internal": "0", "tandem": "9"}[call.direction]
    if not call.answered:
        code = "H" if call.direction == "incoming" else "I" if call.direction == "internal" else code
    value = {"time": f"{moment:%H%M}", "duration": f"{tenths // 600}{tenths % 600 // 10:02d}{tenths % 10}",
             "sec-dur": f"{call.duration:05d}", "cond-code": code, "acct-code": call.account_code,
             "date": moment.strftime("%m%d%y" if options.date_order == "mdy" else "%d%m%y")}
    if call.direction == "incoming":
        value.update({"dialed-num": call.extension, "calling-num": call.caller, "in-trk-code": call.trunk,
                      "in-crt-id": "001"})
    else:
        value.update({"calling-num": call.extension, "dialed-num": call.dialled})
        if call.direction in ("outgoing", "tandem"):
            value.update({"code-dial": "9", "code-used": call.trunk, "out-crt-id": "001"})
    if options.layout == "printer" and call.direction == "incoming":
        value["in-crt-id"] = call.trunk  # the printer layout has no incoming access code column
    width = max(end for _, end in table.values())
    line = [" "] * width
    for name, (a, b) in table.items():
        text = value.get(name, "")
        if name in ("dialed-num", "calling-num"):
            text = text[:b - a]  # CM prints as many digits as the column holds
        if len(text) > b - a:
            raise ValueError(f"{name} {text!r} is wider than its {b - a} columns")
        line[a:b] = text.ljust(b - a)
    return ("".join(line) + "\r\n").encode(options.encoding, errors="replace")


SPEC = DriverSpec(
    name="avaya_cm",
    kind="pbx",
    options=AvayaCmOptions,
    make_link=make_link,
    transports=frozenset({"serial", "tcp-client", "tcp-server", "file"}),
    parse_record=parse_record,
    format_record=format_record,
    default_port=None,  # the CDR link's port is chosen on the CM's ip-services form
    description="Avaya Communication Manager CDR (unformatted, printer and customized layouts)",
)
