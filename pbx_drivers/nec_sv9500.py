"""NEC SV9300 / SV9500 / NEAX2400 SMDR ("NEAX" format): STX/ETX records over the request/ACK link.

Sources: ``/work/shared/reference/smdr.md`` §2.5 (first item); zombat/NEC-SMDR-Collector
``parse-nec-smdr.js`` (field offsets and TLV kinds) and its test records, one of which is the real sample
in ``/work/shared/samples/nec.txt`` (test numbers 5551212/8675309). The link protocol is in
``pbx_drivers.neax_link``.

A record (the bytes between STX and ETX) starts with ``0!`` and a two-letter type:

- Normal format, fixed offsets (0-based, without STX): KA outgoing, KE incoming, KB station to station.
  4-7 route, 7-10 trunk, 13-19 station (KA, KB: calling; KE: called), 19-29 start ``MMDDhhmmss``, 29-39
  end, 39-49 account code, 52 condition (transfer), 61-85 dialled digits (KA), 63-69 called station
  (KB), 97-115 caller number (KE), 115-117 / 117-119 start / end year (only with the 4-digit-year option;
  the year is inferred otherwise).
- Flexible format (KK outgoing, KL incoming, KM station to station): from offset 4 a sequence of
  ``kind(2) length(2) data``. Kinds: 01 trunk (fusion point, route, trunk, logical route: 3 digits each),
  02/04 calling/called station (id, tenant, number(6)), 03/05 calling/called telephone number (fusion
  point, user group, number), 06 start and end ``YYYYMMDDhhmmss`` + milliseconds, 07 account code,
  08 condition B, 10 dialled digits, 12 authorisation code, 13 charge, 16 calling number / ANI (id +
  number). The length counts the data characters; the only public records (NEC test data in zombat's
  repository) do not always agree with it (07, 10 and 12 count one or two more than their digits, one 03
  counts 8 for 11 characters), so the items are read as the one sequence of increasing kinds that uses up
  the record, trying the given length first (``tlv``). ``format_record`` writes exact lengths.

Duration = end - start (rounded to the second). Condition B (08) first digit: 1 transferred, 2 billing
continued, 3 both, 4 transferred to the last called party. A record whose billing continues is a leg:
``transfer`` is ``continued`` and ``call_id`` is ``trunk:<route-trunk>`` so the pipeline charges it with
the record that ends the call (``appliance.legs``). The trunk is ``<route>-<trunk>`` as printed
(``010-052``); route 000 is no route, so a trunk written as a bare number uses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Literal

from appliance.drivers import DriverSpec, ParseContext
from appliance.events import CallRecord, Direction, Ignored
from pbx_drivers.common import Encoding, decode, infer_year, localize
from appliance.legs import CONTINUED
from pbx_drivers.neax_link import ETX, STX, NeaxLink

DIRECTIONS: dict[str, Direction] = {"KA": "outgoing", "KE": "incoming", "KB": "internal", "KK": "outgoing",
                                    "KL": "incoming", "KM": "internal"}
# The public test records (zombat's) give some items a length one or two short of their data (07, 10, 12:
# one more than the digits; 03 once counting 8 for 11 characters): the readings tried after the length.
LENGTH_READINGS = (-1, 3, -2, 1)
LAST_KIND, NEWEST_KIND = 18, 29  # kinds 19-29: added by newer software (one is in the test records)
_STAMP = "%Y%m%d%H%M%S"


@dataclass(frozen=True, kw_only=True)
class NecNeaxOptions:
    """``protocol``: neax (request/ACK over TCP, the PBX's LAN SMDR) or frames (bare STX/ETX records: a
    capture file or a serial port). ``device``: the SMDR device number 0-3 set in the PBX (ASYDL)."""

    protocol: Literal["neax", "frames"] = "neax"
    device: int = 0
    poll_interval: float = 5.0
    silence_timeout: float = 60.0
    encoding: Encoding = "ascii"
    max_length: int = 8192

    def __post_init__(self) -> None:
        if not 0 <= self.device <= 3:
            raise ValueError("device must be 0, 1, 2 or 3")
        if not 1.0 <= self.poll_interval <= 300.0 or self.silence_timeout < 2 * self.poll_interval:
            raise ValueError("poll_interval must be 1-300 s and silence_timeout at least twice it")
        if not 256 <= self.max_length <= 65536:
            raise ValueError("max_length must be between 256 and 65536")


def make_link(options: NecNeaxOptions) -> NeaxLink:
    return NeaxLink(device=options.device, poll_interval=options.poll_interval,
                    silence_timeout=options.silence_timeout, max_length=options.max_length,
                    poll=options.protocol == "neax")


def parse_record(raw: bytes, options: NecNeaxOptions, context: ParseContext) -> CallRecord | Ignored:
    """One record (the bytes between STX and ETX) -> a call, or Ignored with the reason. Never raises."""
    text = decode(raw, options.encoding)
    if not text.strip():
        return Ignored(reason="empty record", raw=raw, quarantine=False)
    kind = text[2:4]
    if text[:2] != "0!" or kind not in DIRECTIONS:
        return Ignored(reason=f"not a NEAX SMDR record (type {kind!r}; KA KB KE KK KL KM are read)", raw=raw)
    try:
        if kind in ("KK", "KL", "KM"):
            return _flexible(raw, kind, text[4:], context)
        return _normal(raw, kind, text, context)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)


def tlv(body: str) -> dict[str, str]:
    """The flexible format's ``kind(2) length(2) data`` items (see the module docstring for lengths).

    Kinds come in increasing order and must use up the record exactly; the length as given is tried
    first, then the readings the public test records need. A kind above 18 (newer software) ends the
    list: its length rule is unknown, so the rest of the record is its data.
    """

    @cache
    def walk(position: int, last: int, newer: bool) -> tuple[tuple[str, str], ...] | None:
        if position == len(body):
            return ()
        kind, length = body[position:position + 2], body[position + 2:position + 4]
        if not (kind.isdigit() and length.isdigit()) or int(kind) <= last:
            return None
        if int(kind) > LAST_KIND:
            return ((kind, body[position + 4:]),) if newer and int(kind) <= NEWEST_KIND else None
        given = int(length)
        for size in dict.fromkeys((given, *(given + delta for delta in LENGTH_READINGS))):
            end = position + 4 + size
            if size < 0 or end > len(body):
                continue
            rest = walk(end, int(kind), newer)
            if rest is not None:
                return ((kind, body[position + 4:end]), *rest)
        return None

    # Known kinds only, if they make up the record; a trailing newer kind only when they do not.
    items = walk(0, 0, False) or walk(0, 0, True)
    if items is None:
        raise ValueError("flexible record items do not add up to the record: damaged or not NEAX")
    return dict(items)


def _flexible(raw: bytes, kind: str, body: str, context: ParseContext) -> CallRecord:
    items = tlv(body)
    if "06" not in items or len(items["06"]) != 34:
        raise ValueError("flexible record without its start/end times (item 06)")
    start = _stamp(items["06"][:17], context)
    end = _stamp(items["06"][17:], context)
    trunk = _trunk(items.get("01", "")[3:6], items.get("01", "")[6:9]) if "01" in items else ""
    calling = items.get("02", "")[4:].strip() or items.get("03", "")[6:]
    called = items.get("04", "")[4:].strip() or items.get("05", "")[6:]
    direction = DIRECTIONS[kind]
    dialled, caller, extension = items.get("10", ""), "", calling
    if direction == "incoming":
        extension, caller = called, items.get("16", "")[1:]
    elif direction == "internal":
        dialled = called
    return _record(raw, start, end, direction, extension, trunk, dialled, caller, items.get("07", ""),
                   items.get("08", "0")[:1])


def _normal(raw: bytes, kind: str, text: str, context: ParseContext) -> CallRecord:
    line = text.ljust(119)
    station, trunk = line[13:19].strip(), _trunk(line[4:7], line[7:10])
    years = (line[115:117], line[117:119])
    start = _moment(line[19:29], years[0], context)
    end = _moment(line[29:39], years[1], context)
    if end < start:  # a call over New Year's Eve without the year option: the end is next year's
        end = end.replace(year=end.year + 1)
    direction = DIRECTIONS[kind]
    dialled = line[61:85].strip() if kind == "KA" else line[63:69].strip() if kind == "KB" else ""
    caller = line[97:115].strip() if kind == "KE" else ""
    return _record(raw, start, end, direction, station, "" if kind == "KB" else trunk, dialled, caller,
                   line[39:49].strip(), line[52:53])


def _record(raw: bytes, start: datetime, end: datetime, direction: Direction, extension: str, trunk: str,
            dialled: str, caller: str, account: str, condition: str) -> CallRecord:
    duration = round((end - start).total_seconds())
    if duration < 0:
        raise ValueError(f"call ends ({end:%Y-%m-%d %H:%M:%S}) before it starts ({start:%Y-%m-%d %H:%M:%S})")
    for name, value in (("extension", extension), ("dialled digits", dialled), ("caller", caller)):
        if not re.fullmatch(r"[0-9*#+]*", value):
            raise ValueError(f"{name} {value!r} is not a number")
    continued = condition in ("2", "3")
    transfer = CONTINUED if continued else "transferred" if condition in ("1", "4") else ""
    return CallRecord(
        start=start.replace(microsecond=0), duration=duration, ring=None, extension=extension, trunk=trunk,
        dialled=dialled, caller=caller, direction=direction, answered=duration > 0, account_code=account,
        call_id=f"trunk:{trunk}" if transfer and trunk else "", transfer=transfer, raw=raw,
    )


def _trunk(route: str, member: str) -> str:
    if not (route.isdigit() and member.isdigit()):
        raise ValueError(f"route {route!r} / trunk {member!r} are not numbers")
    if route == "000":
        return member.lstrip("0") or "0"
    return f"{route}-{member}"


def _stamp(text: str, context: ParseContext) -> datetime:
    try:
        naive = datetime.strptime(text[:14], _STAMP) + timedelta(milliseconds=int(text[14:17]))
    except ValueError:
        raise ValueError(f"time {text!r} is not YYYYMMDDhhmmss and milliseconds") from None
    return localize(naive, context.tz)


def _moment(text: str, year: str, context: ParseContext) -> datetime:
    try:
        naive = datetime.strptime(f"2000{text}", "%Y%m%d%H%M%S")
    except ValueError:
        raise ValueError(f"time {text!r} is not MMDDhhmmss") from None
    if year.isdigit():
        return localize(naive.replace(year=2000 + int(year)), context.tz)
    return infer_year(naive.month, naive.day, naive.time(), context)


def format_record(call: CallRecord, options: NecNeaxOptions) -> bytes:
    """A flexible-format record (KK, KL or KM) framed as ``STX record ETX`` (the ``frames`` form; over
    TCP the PBX puts such frames in numbered blocks). Tandem calls raise ValueError."""
    kind = {"outgoing": "KK", "incoming": "KL", "internal": "KM"}.get(call.direction)
    if kind is None:
        raise ValueError("a trunk-to-trunk call has no single NEAX record type")
    route, member = call.trunk.split("-", 1) if "-" in call.trunk else ("000", call.trunk or "0")
    end = call.start + timedelta(seconds=call.duration)
    times = f"{call.start:{_STAMP}}000{end:{_STAMP}}000"
    items = [("01", f"001{route:0>3}{member:0>3}000")] if call.trunk else []
    if call.direction == "incoming":
        items += [("04", f"0001{call.extension:<6}"), ("06", times)]
    else:
        items += [("02", f"0001{call.extension:<6}"), ("06", times)]
        if call.direction == "internal":
            items.append(("04", f"0001{call.dialled:<6}"))
    if call.account_code:
        items.append(("07", call.account_code))
    condition = "2" if call.transfer == CONTINUED else "1" if call.transfer == "transferred" else "0"
    items.append(("08", f"{condition}00"))
    if call.direction == "outgoing":
        items.append(("10", call.dialled))
    if call.caller:
        items.append(("16", "1" + call.caller))
    body = "".join(f"{k}{len(v):02d}{v}" for k, v in sorted(items))  # kinds in increasing order
    if len(call.extension) > 6 or (call.direction == "internal" and len(call.dialled) > 6):
        raise ValueError("a station number is at most 6 digits")
    if len(route) > 3 or len(member) > 3:
        raise ValueError(f"trunk {call.trunk!r} is not <route>-<trunk> with up to 3 digits each")
    record = f"0!{kind}{body}".encode(options.encoding, errors="replace")
    return bytes([STX]) + record + bytes([ETX])


SPEC = DriverSpec(
    name="nec_sv9500",
    kind="pbx",
    options=NecNeaxOptions,
    make_link=make_link,
    transports=frozenset({"tcp-client", "tcp-server", "serial", "file"}),
    parse_record=parse_record,
    format_record=format_record,
    default_port=60010,
    description="NEC SV9300/SV9500/NEAX2400 SMDR (NEAX normal and flexible formats; SYN/STX/ETX request "
                "and ACK over TCP)",
)
