"""Mitel MiVoice Business / 3300 ICP / SX-2000 SMDR: fixed-width text records, one call per line.

Sources: the Mitel "SMDR Summary of Fields" tables as summarised in ``/work/shared/reference/smdr.md`` §2.3
(the manual is isontheline/smdr-parser ``doc/SMDR.pdf``), Mitel's "SMDR Extended Reporting" help page, and the
real 207-character records in ``/work/shared/samples/mitel_mivb.txt``. Records come over TCP port 1752 (the
collector connects) or the SMDR serial port, one per CR LF line; trailing spaces are significant.

Columns, 1-based and inclusive (``-`` = not in that layout)::

    field                       standard  extended  reporting L1  reporting L2  (L2 = the real sample)
    long call flag  - % +          1         1          1             1
    date mm/dd (no year)          2-6       2-6        2-6           2-6
    start hh:mm[:ss] + p (PM)    8-13      8-13       8-13          8-16
    duration                     15-22     15-24      15-24         18-27     hh:mm:ss / hhhh:mm:ss
    calling party                24-27     26-32      26-32         29-35     ext, ATTn, Tnnn, Xnnn
    attendant * + answer time    29-32     34-37      34-37         37-40     `***`/`****` = unanswered
    digits dialled on trunk      34-59     39-64      39-64         42-67     last 5 = meter pulses if on
    completion status             60        65         65            68       A B E T I P O D ...
    speed call S / forward F      61        66         66            69
    called party                 62-65     67-73      67-73         70-76
    LDN called                     -         -        74-81         77-84
    transfer/conference flag      66        74         82            85       T X C U I R
    third party                  68-71     76-82      84-90         87-93
    account code                 73-84     84-95      92-103        95-106
    system id                    86-88     97-99      105-107       108-110
    ANI (caller)                 92-101   103-112     111-130       114-133   with ANI/DNIS reporting
    DNIS                        103-112   114-120     132-141       135-144
    suite identifier               -         -        143-149       146-152
    call id pssscccc (OLI)      114-121   122-129     151-158       154-161   with network OLI
    call sequence A-Z             122       130        160           163
    associated call id          124-131   132-139     162-169       165-172

Standard and extended (``Extended Digit Length``) positions are the manual's; the Extended Reporting ones
follow its rules (ANI widened to 20, DNIS to 10, LDN Called added right of the called party, Level 2 adds
seconds to the start time and shifts everything after it by 3) and are checked against every real sample
line: duration at 18, 4-digit answer time at 37-40, meter pulses ``00000`` at 63-67, completion at 68,
called party at 70, system id ``001`` at 108, ANI at 114, DNIS at 135, call id at 154, sequence at 163.
The samples print the 4-digit (Extended Time to Answer) field over the attendant and answer columns with
nothing shifted, so that is how those four columns are read in every layout.

The layout is found per line from what it shows (seconds in the start time, a 4-digit-hour duration, the
record length) unless the ``layout`` option forces it; force it when a transport strips trailing spaces.

Direction: a trunk (``Tnnn``/``Xnnn``) as calling party is incoming, as called party outgoing, both tandem;
completion ``I`` is internal. The real samples name no trunk at all, so then the record's shape decides:
an answer time (reported for incoming trunk calls only) means incoming, digits dialled on a trunk mean
outgoing, anything else is internal. Answered: not when the answer time is all ``*``, the duration is
blank, or the completion status is B (busy), E (caller error), O (occupied) or D (do not disturb). The long
call flag is informational only: the samples show ``+`` and ``%`` on calls of 21 and 48 seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal

from appliance.drivers import DriverSpec, FramedLink, ParseContext
from appliance.events import CallRecord, Direction, Ignored
from appliance.framing import LineFramer
from pbx_drivers.common import (
    Encoding,
    decode,
    direction_from_trunks,
    format_hms,
    infer_year,
    parse_duration,
    twelve_hour,
    unprintable,
)

Span = tuple[int, int]

STANDARD: dict[str, Span] = {
    "long_call": (1, 1), "date": (2, 6), "time": (8, 13), "duration": (15, 22), "calling": (24, 27),
    "answer": (29, 32), "digits": (34, 59), "completion": (60, 60), "called": (62, 65), "transfer": (66, 66),
    "third": (68, 71), "account": (73, 84), "system": (86, 88), "ani": (92, 101), "dnis": (103, 112),
    "call_id": (114, 121), "sequence": (122, 122), "associated": (124, 131),
}
EXTENDED: dict[str, Span] = {
    "long_call": (1, 1), "date": (2, 6), "time": (8, 13), "duration": (15, 24), "calling": (26, 32),
    "answer": (34, 37), "digits": (39, 64), "completion": (65, 65), "called": (67, 73), "transfer": (74, 74),
    "third": (76, 82), "account": (84, 95), "system": (97, 99), "ani": (103, 112), "dnis": (114, 120),
    "call_id": (122, 129), "sequence": (130, 130), "associated": (132, 139),
}
REPORTING: dict[str, Span] = {
    "long_call": (1, 1), "date": (2, 6), "time": (8, 13), "duration": (15, 24), "calling": (26, 32),
    "answer": (34, 37), "digits": (39, 64), "completion": (65, 65), "called": (67, 73), "ldn": (74, 81),
    "transfer": (82, 82), "third": (84, 90), "account": (92, 103), "system": (105, 107), "ani": (111, 130),
    "dnis": (132, 141), "suite": (143, 149), "call_id": (151, 158), "sequence": (160, 160),
    "associated": (162, 169),
}
# Level 2 widens the start time to hh:mm:ssp (columns 8-16): every later field moves right by three.
REPORTING_SECONDS: dict[str, Span] = {
    name: (8, 16) if name == "time" else (a + 3, b + 3) if a > 13 else (a, b)
    for name, (a, b) in REPORTING.items()
}
# Record lengths and the SMDR options that produce them (layout, ANI/DNIS, network OLI; Extended Reporting
# level). The manual gives 90/101 (+ANI/DNIS 112/120, +OLI 131/139) and 162 (L1) / 195 (L2); the real
# samples are 207: L2 with the call identifiers, whose last 12 columns are blank in every one of them.
WIDTHS = {("standard", False, False): 90, ("standard", True, False): 112, ("standard", False, True): 131,
          ("standard", True, True): 131, ("extended", False, False): 101, ("extended", True, False): 120,
          ("extended", False, True): 139, ("extended", True, True): 139}
REPORTING_WIDTHS = {(1, False): 162, (1, True): 169, (2, False): 195, (2, True): 207}
LONGEST_EXTENDED = 139

_DATE = re.compile(r"(\d\d)/(\d\d)")
_TIME = re.compile(r"(\d\d):(\d\d)(?::(\d\d))?([ Pp]?)")
_EXTENDED_DURATION = re.compile(r"\d{4}:\d\d:\d\d")
_STANDARD_DURATION = re.compile(r"\d\d:\d\d:\d\d ")
# "If the call duration exceeds 100 hours, a call duration of 99 hours, 99 minutes, 99 seconds will be
# recorded." The hours still count, so read those and cap the rest.
_OVERFLOW = re.compile(r"(\d+):99:99")
_PARTY = re.compile(r"[A-Za-z0-9*#]*")
_TRUNK = re.compile(r"[TX]\d+")
_DIALLED = re.compile(r"[0-9A-Za-z*#+]*")
UNANSWERED = frozenset("BEOD")


@dataclass(frozen=True, kw_only=True)
class MitelOptions:
    """``layout``: auto (per line), standard (90-131 chars), extended (Extended Digit Length, 101-139),
    reporting (Extended Reporting L1/L2, 162-207). ``meter_pulses``: whether the last five digit columns
    hold meter pulses (auto: when they are five digits after a gap). ``twelve_hour_clock``: the PBX prints
    a 12-hour clock, so a time without ``P`` is AM (``12:05`` is 00:05); a ``P`` always means PM.
    ``ani_dnis``, ``network_oli``, ``reporting_level``: the SMDR options ``format_record`` writes for (the
    record width follows them, ``WIDTHS``); parsing finds them from the line."""

    layout: Literal["auto", "standard", "extended", "reporting"] = "auto"
    meter_pulses: Literal["auto", "on", "off"] = "auto"
    twelve_hour_clock: bool = False
    ani_dnis: bool = True
    network_oli: bool = True
    reporting_level: Literal[1, 2] = 2
    encoding: Encoding = "ascii"
    max_length: int = 512

    def __post_init__(self) -> None:
        if not 90 <= self.max_length <= 4096:
            raise ValueError("max_length must be between 90 and 4096 (the longest Mitel record is 207)")


def parse_record(raw: bytes, options: MitelOptions, context: ParseContext) -> CallRecord | Ignored:
    """One SMDR line (without its line ending) -> a call, or Ignored with the reason. Never raises."""
    if not raw.strip():
        return Ignored(reason="blank line", raw=raw, quarantine=False)
    problem = unprintable(raw)
    if problem:
        return Ignored(reason=problem, raw=raw)
    try:
        return _parse(raw, decode(raw, options.encoding), options, context)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)


def _parse(raw: bytes, text: str, options: MitelOptions, context: ParseContext) -> CallRecord:
    table = _table(text, options)
    line = text.ljust(max(end for _, end in table.values()))
    field = {name: line[a - 1:b] for name, (a, b) in table.items()}
    value = {name: column.strip() for name, column in field.items()}

    date_match = _DATE.fullmatch(field["date"])
    time_match = _TIME.fullmatch(field["time"])
    if not date_match or not time_match:
        raise ValueError(f"start {field['date']} {field['time']!r} is not mm/dd hh:mm")
    hour, minute = int(time_match.group(1)), int(time_match.group(2))
    pm = time_match.group(4).upper() == "P"
    if pm or options.twelve_hour_clock:
        hour = twelve_hour(hour, pm)
    if hour > 23 or minute > 59 or int(time_match.group(3) or 0) > 59:
        raise ValueError(f"start time {field['time'].strip()!r} is not a time of day")
    clock = time(hour, minute, int(time_match.group(3) or 0))
    start = infer_year(int(date_match.group(1)), int(date_match.group(2)), clock, context)

    duration = _duration(value["duration"])
    ring, unanswered_mark = _answer_time(value["answer"])
    dialled = _digits(field["digits"], options)
    for name in ("calling", "called", "third"):
        if not _PARTY.fullmatch(value[name]):
            raise ValueError(f"{name} party {value[name]!r} is not an extension, attendant or trunk")
    for name in ("completion", "transfer"):
        if value[name] and not value[name].isalpha():
            raise ValueError(f"{name} flag {value[name]!r} is not a letter: columns out of place?")
    calling, called, completion = value["calling"], value["called"], value["completion"].upper()

    direction = direction_from_trunks(bool(_TRUNK.fullmatch(calling)), bool(_TRUNK.fullmatch(called)))
    if direction is None:
        direction = _direction_from_shape(completion, value["answer"], dialled, called)
    extension, trunk = _parties(direction, calling, called)
    if direction == "internal" and not dialled:
        dialled = called
    elif direction == "incoming" and not dialled:
        dialled = value["dnis"]
    transfer = value["transfer"] + (f":{value['third']}" if value["third"] else "")
    return CallRecord(
        start=start,
        duration=duration or 0,
        ring=ring,
        extension=extension,
        trunk=trunk,
        dialled=dialled,
        caller=value["ani"],
        direction=direction,
        answered=not (unanswered_mark or duration is None or completion in UNANSWERED),
        account_code=value["account"],
        call_id=value["call_id"],
        transfer=transfer,
        raw=raw,
    )


def _table(text: str, options: MitelOptions) -> dict[str, Span]:
    """The column table for this line: forced by the option, else read from the line's shape."""
    if not _DATE.fullmatch(text[1:6]):
        raise ValueError(f"not a Mitel SMDR record: columns 2-6 {text[1:6]!r} are not a mm/dd date")
    seconds = bool(re.fullmatch(r"\d\d:\d\d:\d\d", text[7:15]))
    layout = options.layout
    if layout == "auto":
        if seconds:
            layout = "reporting"
        elif _EXTENDED_DURATION.fullmatch(text[14:24]):
            layout = "reporting" if len(text) > LONGEST_EXTENDED else "extended"
        elif _STANDARD_DURATION.fullmatch(text[14:23].ljust(9)):
            layout = "standard"
        elif len(text) > LONGEST_EXTENDED:  # blank duration: the length is all there is to go on
            layout = "reporting"
        elif len(text) in (101, 120, 139) and text[23:24] == " ":
            layout = "extended"
        else:
            layout = "standard"
    if seconds and layout != "reporting":
        raise ValueError(f"a start time with seconds is only in the Extended Reporting layout, not {layout}")
    if layout == "reporting":
        return REPORTING_SECONDS if seconds else REPORTING
    return STANDARD if layout == "standard" else EXTENDED


def _duration(text: str) -> int | None:
    """Seconds, or None when the PBX left the field blank (the call never connected)."""
    if not text:
        return None
    overflow = _OVERFLOW.fullmatch(text)
    if overflow:
        return int(overflow.group(1)) * 3600 + 59 * 60 + 59
    return parse_duration(text)


def _answer_time(text: str) -> tuple[int | None, bool]:
    """(ring seconds, unanswered) from the attendant flag and the 3- or 4-digit time to answer."""
    if not text:
        return None, False
    if set(text) == {"*"}:
        return None, True
    digits = text.lstrip("*")  # a leading * alone is the attendant flag
    if not digits.isdigit():
        raise ValueError(f"time to answer {text!r} is not digits or ***")
    return int(digits), False


def _digits(area: str, options: MitelOptions) -> str:
    meter = area[-5:]
    has_meter = options.meter_pulses == "on" or (
        options.meter_pulses == "auto" and meter.isdigit() and area[-6] == " "
    )
    dialled = (area[:-5] if has_meter else area).strip()
    if not _DIALLED.fullmatch(dialled):
        raise ValueError(f"digits dialled {dialled!r} hold a gap or a stray character")
    return dialled


def _direction_from_shape(completion: str, answer: str, dialled: str, called: str) -> Direction:
    if completion == "I":
        return "internal"
    if answer:
        return "incoming"  # the time to answer is reported for incoming trunk calls only
    if dialled and not called:
        return "outgoing"  # digits went out on a trunk the record does not name
    return "internal"


def _parties(direction: Direction, calling: str, called: str) -> tuple[str, str]:
    """(extension, trunk) for the direction; a party that is not a trunk is never reported as one."""
    if direction == "incoming":
        return called, calling if _TRUNK.fullmatch(calling) else ""
    if direction == "outgoing":
        return calling, called if _TRUNK.fullmatch(called) else ""
    if direction == "tandem":
        return "", called
    return calling, ""


def format_record(call: CallRecord, options: MitelOptions) -> bytes:
    """One record in the layout the options name (auto: Extended Reporting L2, like the real samples).

    The start is written as ``call.start``'s own wall-clock time; a trunk given as a bare number is
    written as ``T<number>``, the way Mitel names CO trunks. The format cannot carry an unanswered outgoing
    or internal call's duration nor an unanswered incoming call's ring time; tandem calls need both trunks
    and raise ValueError, as does any value wider than its columns.
    """
    layout = "reporting" if options.layout == "auto" else options.layout
    seconds = layout == "reporting" and options.reporting_level == 2
    table = (REPORTING_SECONDS if seconds else REPORTING) if layout == "reporting" else \
        STANDARD if layout == "standard" else EXTENDED
    width = record_width(layout, options)
    line = [" "] * width

    def put(name: str, text: str, right: bool = False) -> None:
        a, b = table[name]
        off = (name in ("ani", "dnis") and layout != "reporting" and not options.ani_dnis) or \
            (name in ("call_id", "sequence") and not options.network_oli)
        if b > width or off:
            return  # the options that print this field are off: the PBX leaves it out
        if len(text) > b - a + 1:
            raise ValueError(f"{name} {text!r} is wider than columns {a}-{b}")
        line[a - 1:b] = text.rjust(b - a + 1) if right else text.ljust(b - a + 1)

    start = call.start
    put("long_call", _long_call_flag(call.duration))
    put("date", f"{start.month:02d}/{start.day:02d}")
    put("time", _clock_text(start, seconds=seconds, twelve=options.twelve_hour_clock))
    if call.answered or (call.direction == "incoming" and call.duration):
        put("duration", format_hms(call.duration, 2 if layout == "standard" else 4))
    tta_width = 4 if layout == "reporting" else 3
    if call.direction == "incoming" and not call.answered:
        put("answer", "*" * tta_width, right=True)
    elif call.ring is not None and call.direction != "outgoing":  # an outgoing one would read as incoming
        put("answer", f"{min(call.ring, 10 ** tta_width - 1):0{tta_width}d}", right=True)
    trunk = f"T{call.trunk}" if call.trunk.isdigit() else call.trunk
    if call.direction == "outgoing":
        put("calling", call.extension)
        put("called", trunk)
        put("digits", call.dialled)
        put("completion", "A" if call.answered else " ")
    elif call.direction == "incoming":
        put("calling", trunk)
        put("called", call.extension)
        put("digits", call.dialled)
        if len(call.dialled) <= table["dnis"][1] - table["dnis"][0] + 1:
            put("dnis", call.dialled)  # the real samples repeat the received digits as DNIS
    elif call.direction == "internal":
        put("calling", call.extension)
        put("called", call.dialled)
        put("completion", "I")
    else:
        raise ValueError("a tandem call cannot be written as one Mitel record without both trunks")
    flag, _, third = call.transfer.partition(":")
    put("transfer", flag)
    put("third", third)
    put("account", call.account_code)
    put("system", "001")
    put("ani", call.caller)
    if call.call_id:
        put("call_id", call.call_id)
        put("sequence", "A")
    return ("".join(line) + "\r\n").encode(options.encoding, errors="replace")


def record_width(layout: str, options: MitelOptions) -> int:
    """How long the PBX's records are with these options (see ``WIDTHS``)."""
    if layout == "reporting":
        return REPORTING_WIDTHS[(options.reporting_level, options.network_oli)]
    return WIDTHS[(layout, options.ani_dnis, options.network_oli)]


def _long_call_flag(seconds: int) -> str:
    return " " if seconds < 300 else "-" if seconds < 600 else "%" if seconds < 1800 else "+"


def _clock_text(start: datetime, *, seconds: bool, twelve: bool) -> str:
    hour, suffix = start.hour, " "
    if twelve:
        hour, suffix = (start.hour % 12 or 12), ("P" if start.hour >= 12 else " ")
    return f"{hour:02d}:{start.minute:02d}" + (f":{start.second:02d}" if seconds else "") + suffix


SPEC = DriverSpec(
    name="mitel_mivb",
    kind="pbx",
    options=MitelOptions,
    make_link=lambda options: FramedLink(LineFramer(max_length=options.max_length)),
    transports=frozenset({"serial", "tcp-client", "tcp-server", "file"}),
    parse_record=parse_record,
    format_record=format_record,
    default_port=1752,
    description="Mitel MiVoice Business / 3300 ICP SMDR (fixed width, standard, extended digit length "
                "and extended reporting layouts)",
)
