"""Siemens / Unify HiPath 3000 / 5000, Hicom 150, OpenScape Business: the "compressed" V.24 call record.

Sources: ``/work/shared/reference/smdr.md`` §1 and §2.11 (the HiPath GetAccount / compressed layout). No
real capture is public: the test capture is built from the layout and says so.

Transport: the V.24 port (serial) or a LAN relay of it; one record per CR LF line. The "long" printer
format (header and form feed every 62 lines) is not this layout; use the ``generic`` driver for it.

Record, 1-based columns::

    1-8 date of the call's END DD.MM.YY   9-16 end time hh:mm:ss   17-19 trunk   20-22 node
    23-28 extension   29-33 duration in seconds   34-41 duration hh:mm:ss
    42-66 external number (caller ID on incoming calls, digits dialled on outgoing ones; the last digits
          may be masked with ``?``)   67-77 charge units or amount   78 call type
    79-89 account (project) code   90-100 MSN   101-105 trunk access code   106-109 LCR route

Call type: 1 incoming, 2 outgoing, 3 incoming data, 4 outgoing data, 5 incoming forwarded, 6 outgoing
forwarded, 7 transit (trunk to trunk), 8 conference, 9 forwarded to an external number; 0 is the
"call information" record sent at ring time, before the call has a duration: it is ignored, not
quarantined. The time is the END of the call: the start is that minus the duration. A call with no
duration was not answered. Column titles (``DATE TIME TRK ...``) are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from appliance.drivers import DriverSpec, FramedLink, ParseContext
from appliance.events import CallRecord, Direction, Ignored
from appliance.framing import LineFramer
from pbx_drivers.common import Encoding, decode, format_hms, localize, parse_duration, start_of, unprintable

COLUMNS = {"date": (1, 8), "time": (9, 16), "trunk": (17, 19), "node": (20, 22), "extension": (23, 28),
           "seconds": (29, 33), "duration": (34, 41), "number": (42, 66), "units": (67, 77), "type": (78, 78),
           "account": (79, 89), "msn": (90, 100), "access": (101, 105), "route": (106, 109)}
TYPES: dict[str, tuple[Direction, str]] = {
    "1": ("incoming", ""), "2": ("outgoing", ""), "3": ("incoming", ""), "4": ("outgoing", ""),
    "5": ("incoming", "forwarded"), "6": ("outgoing", "forwarded"), "7": ("tandem", ""),
    "8": ("outgoing", "conference"), "9": ("outgoing", "forwarded"),
}
_NUMBER = re.compile(r"[0-9*#?]*")


@dataclass(frozen=True, kw_only=True)
class HiPathOptions:
    """``encoding``: the V.24 port's character set. No other setting changes the compressed layout."""

    encoding: Encoding = "cp850"
    max_length: int = 256

    def __post_init__(self) -> None:
        if not 80 <= self.max_length <= 4096:
            raise ValueError("max_length must be between 80 and 4096")


def parse_record(raw: bytes, options: HiPathOptions, context: ParseContext) -> CallRecord | Ignored:
    """One compressed record -> a call, or Ignored with the reason. Never raises."""
    text = decode(raw, options.encoding).rstrip()
    if not text.strip():
        return Ignored(reason="blank line", raw=raw, quarantine=False)
    if text.startswith("DATE"):
        return Ignored(reason="column titles", raw=raw, quarantine=False)
    problem = unprintable(raw.rstrip())
    if problem:
        return Ignored(reason=problem, raw=raw)
    line = text.ljust(109)
    value = {name: line[a - 1:b].strip() for name, (a, b) in COLUMNS.items()}
    if value["type"] == "0":
        return Ignored(reason="call information at ring time (type 0), not a finished call", raw=raw,
                       quarantine=False)
    try:
        return _build(raw, value, context)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)


def _build(raw: bytes, value: dict[str, str], context: ParseContext) -> CallRecord:
    if value["type"] not in TYPES:
        raise ValueError(f"call type {value['type']!r} is not 0-9")
    direction, transfer = TYPES[value["type"]]
    try:
        end = datetime.strptime(f"{value['date']} {value['time']}", "%d.%m.%y %H:%M:%S")
    except ValueError:
        raise ValueError(f"end {value['date']} {value['time']!r} is not DD.MM.YY hh:mm:ss") from None
    if value["duration"]:
        duration = parse_duration(value["duration"])
    elif value["seconds"].isdigit():
        duration = int(value["seconds"])
    else:
        raise ValueError("no duration in columns 29-41")
    number, extension = value["number"], value["extension"]
    if not _NUMBER.fullmatch(number) or not extension.isdigit():
        raise ValueError(f"extension {extension!r} / number {number!r}: not numbers, columns out of place?")
    caller = number if direction == "incoming" else ""
    dialled = "" if direction == "incoming" else number
    return CallRecord(
        start=start_of(localize(end, context.tz), duration, "end"),
        duration=duration,
        ring=None,
        extension="" if direction == "tandem" else extension,
        trunk=value["trunk"],
        dialled=dialled,
        caller=caller,
        direction=direction,
        answered=duration > 0,
        account_code=value["account"],
        transfer=transfer,
        raw=raw,
    )


def format_record(call: CallRecord, options: HiPathOptions) -> bytes:
    """One compressed record. Internal calls give b"" (the PBX records trunk calls only). Raises
    ValueError for values wider than their columns."""
    if call.direction == "internal":
        return b""
    end = call.start.replace(tzinfo=None) + timedelta(seconds=call.duration)
    code = {"incoming": "1", "outgoing": "2", "tandem": "7"}[call.direction]
    if call.transfer == "forwarded":
        code = "5" if call.direction == "incoming" else "6"
    value = {"date": f"{end:%d.%m.%y}", "time": f"{end:%H:%M:%S}", "trunk": call.trunk, "node": "001",
             "extension": call.extension, "seconds": str(call.duration),
             "duration": format_hms(call.duration),
             "number": call.caller if call.direction == "incoming" else call.dialled, "units": "0",
             "type": code, "account": call.account_code}
    line = [" "] * 89
    for name, text in value.items():
        a, b = COLUMNS[name]
        if len(text) > b - a + 1:
            raise ValueError(f"{name} {text!r} is wider than columns {a}-{b}")
        right = name in ("seconds", "units")
        line[a - 1:b] = text.rjust(b - a + 1) if right else text.ljust(b - a + 1)
    return ("".join(line).rstrip() + "\r\n").encode(options.encoding, errors="replace")


SPEC = DriverSpec(
    name="hipath",
    kind="pbx",
    options=HiPathOptions,
    make_link=lambda options: FramedLink(LineFramer(max_length=options.max_length)),
    transports=frozenset({"serial", "tcp-client", "tcp-server", "file"}),
    parse_record=parse_record,
    format_record=format_record,
    default_port=None,
    description="Siemens/Unify HiPath 3000/5000, Hicom 150, OpenScape Business compressed call records",
)
