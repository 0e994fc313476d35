"""Avaya IP Office SMDR: one comma-separated record per CR LF line, 30 fields up to release 9.x, 35-37 later.

Sources: the IP Office SMDR field list in ``/work/shared/reference/smdr.md`` §2.2 (ipofficekb / R12 docs,
aarondyck/smdr-sleuth) and the real IP Office 9.1 lines in ``/work/shared/samples/avaya_ipoffice.txt``.
No header, no quoting. IP Office listens on its SMDR port when its address is 0.0.0.0, else it connects out.

Fields used (1-based): 1 call start ``YYYY/MM/DD HH:MM:SS`` | 2 connected time ``HH:MM:SS`` |
3 ring time (s) | 4 caller | 5 direction I/O | 6 called number | 7 dialled number | 8 account |
9 is internal 0/1 | 10 call id | 11 continuation (1 = more records follow for this call id) |
12 party 1 device | 14 party 2 device. Devices: ``E``nnn extension, ``T``nnnn trunk line, ``V``nnnn
voicemail, conference or other.

Mapping to a CallRecord:

- direction: is-internal 1 => internal; both parties trunks => tandem; otherwise ``I`` => incoming and ``O``
  => outgoing when a trunk takes part, internal when none does (the real samples have ``O`` calls to
  voicemail with is-internal 0 and no trunk).
- extension: the ``E`` device without its ``E``; for outgoing and internal calls without one, the caller
  field. trunk: the ``T`` device as IP Office names it (``T9002``).
- dialled: field 7, else field 6 (incoming records leave 7 empty and put the DDI or target in 6).
  caller: field 4 for incoming and tandem calls; empty for outgoing and internal ones, where it only
  repeats the extension.
- answered: connected time above zero, in every direction. IP Office writes 00:00:00 for a call that never
  connected ("lost"). An analogue trunk without answer supervision counts connected time from dialling, so
  an unanswered outgoing call there can show seconds: the tariff's grace time is what catches those.
- duration is the connected time; hold and park time (fields 16-17) are not talk time and are left out.

A call that was transferred or forwarded produces several records with the same call id and a start time
shared by all of them; every record but the last has continuation 1. Here each line is parsed on its own:
``call_id`` keeps field 10 and ``transfer`` is ``"continued"`` when field 11 is 1, so the segments can be
joined later by call id without going back to the raw line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from appliance.drivers import DriverSpec, FramedLink, ParseContext
from appliance.events import CallRecord, Direction, Ignored
from appliance.framing import LineFramer
from pbx_drivers.common import Encoding, decode, direction_from_trunks, format_hms, localize, parse_duration

MIN_FIELDS, MAX_FIELDS = 30, 37
START_FORMAT = "%Y/%m/%d %H:%M:%S"
CONTINUED = "continued"
(START, CONNECTED, RING, CALLER, DIRECTION, CALLED, DIALLED, ACCOUNT, IS_INTERNAL, CALL_ID, CONTINUATION,
 PARTY1, PARTY1_NAME, PARTY2, PARTY2_NAME, HOLD, PARK) = range(17)


@dataclass(frozen=True, kw_only=True)
class IpOfficeOptions:
    """``fields``: how many fields ``format_record`` writes (30 for 9.x, up to 37 for 11 and later)."""

    encoding: Encoding = "ascii"
    max_length: int = 1024
    fields: int = 30

    def __post_init__(self) -> None:
        if not MIN_FIELDS <= self.fields <= MAX_FIELDS:
            raise ValueError(f"fields must be between {MIN_FIELDS} and {MAX_FIELDS}")
        if not 128 <= self.max_length <= 8192:
            raise ValueError("max_length must be between 128 and 8192")


def parse_record(raw: bytes, options: IpOfficeOptions, context: ParseContext) -> CallRecord | Ignored:
    """One SMDR line (without its line ending) -> a call, or Ignored with the reason. Never raises."""
    text = decode(raw, options.encoding)
    if not text.strip():
        return Ignored(reason="blank line", raw=raw, quarantine=False)
    if text.lower().startswith("call start,"):  # a header some collectors write when they save a file
        return Ignored(reason="column titles", raw=raw, quarantine=False)
    if any(ord(char) < 0x20 for char in text):
        return Ignored(reason="control character in the record: line noise?", raw=raw)
    try:
        return _parse(raw, text.split(","), context)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)


def _parse(raw: bytes, field: list[str], context: ParseContext) -> CallRecord:
    if not MIN_FIELDS <= len(field) <= MAX_FIELDS:
        raise ValueError(f"{len(field)} fields; IP Office SMDR has {MIN_FIELDS} to {MAX_FIELDS}")
    try:
        start = datetime.strptime(field[START], START_FORMAT)
    except ValueError:
        raise ValueError(f"call start {field[START]!r} is not YYYY/MM/DD HH:MM:SS") from None
    connected = parse_duration(field[CONNECTED]) if field[CONNECTED] else 0
    ring_text = field[RING].strip()
    if ring_text and not ring_text.isdigit():
        raise ValueError(f"ring time {ring_text!r} is not whole seconds")
    if field[DIRECTION] not in ("I", "O"):
        raise ValueError(f"direction {field[DIRECTION]!r} is neither I nor O")
    for index in (IS_INTERNAL, CONTINUATION):
        if field[index] not in ("0", "1", ""):
            raise ValueError(f"field {index + 1} is {field[index]!r}, expected 0 or 1")
    party1, party2 = field[PARTY1].strip(), field[PARTY2].strip()
    direction = _direction(field[DIRECTION], field[IS_INTERNAL] == "1", party1, party2)
    extensions = [device[1:] for device in (party1, party2) if device.startswith("E")]
    trunks = [device for device in (party2, party1) if device.startswith("T")]  # outgoing: party 2 first
    extension = extensions[0] if extensions else ""
    if not extension and direction in ("outgoing", "internal"):
        extension = field[CALLER]
    return CallRecord(
        start=localize(start, context.tz),
        duration=connected,
        ring=int(ring_text) if ring_text else None,
        extension=extension,
        trunk=trunks[0] if trunks else "",
        dialled=field[DIALLED] or field[CALLED],
        caller=field[CALLER] if direction in ("incoming", "tandem") else "",
        direction=direction,
        answered=connected > 0,
        account_code=field[ACCOUNT],
        call_id=field[CALL_ID],
        transfer=CONTINUED if field[CONTINUATION] == "1" else "",
        raw=raw,
    )


def _direction(flag: str, is_internal: bool, party1: str, party2: str) -> Direction:
    if is_internal:
        return "internal"
    by_trunks = direction_from_trunks(party1.startswith("T"), party2.startswith("T"))
    if by_trunks == "tandem":
        return "tandem"
    if by_trunks is None:
        return "internal"  # an O (or I) call that never touched a trunk: voicemail, conference, short code
    return "incoming" if flag == "I" else "outgoing"


def format_record(call: CallRecord, options: IpOfficeOptions) -> bytes:
    """One record as IP Office writes it (``options.fields`` fields), start in ``call.start``'s wall time.

    A trunk given as a bare number is written as ``T<number>``, as IP Office names trunk lines. Unanswered
    calls are written with connected time 00:00:00, so an unanswered call's duration is lost; a comma
    inside a value raises ValueError (the format has no quoting), as does a trunk call without a trunk.
    """
    field = [""] * options.fields
    field[START] = call.start.strftime(START_FORMAT)
    field[CONNECTED] = format_hms(call.duration if call.answered else 0)
    field[RING] = "" if call.ring is None else str(call.ring)
    field[ACCOUNT] = call.account_code
    field[IS_INTERNAL] = "1" if call.direction == "internal" else "0"
    field[CALL_ID] = call.call_id
    field[CONTINUATION] = "1" if call.transfer == CONTINUED else "0"
    field[HOLD] = field[PARK] = "0"
    extension = f"E{call.extension}" if call.extension else ""
    trunk = f"T{call.trunk}" if call.trunk.isdigit() else call.trunk
    if call.direction in ("incoming", "outgoing") and not trunk.startswith("T"):
        raise ValueError(f"trunk {call.trunk!r}: IP Office names trunk lines T<number>")
    if call.direction == "incoming":
        field[CALLER], field[DIRECTION], field[CALLED] = call.caller, "I", call.dialled
        field[PARTY1], field[PARTY2] = (extension, trunk) if extension else (trunk, "")
    elif call.direction == "tandem":
        raise ValueError("a tandem call cannot be written without its incoming trunk")
    else:
        field[CALLER], field[DIRECTION] = call.extension, "O"
        field[CALLED] = field[DIALLED] = call.dialled
        far_end = trunk if call.direction == "outgoing" else ""
        if call.direction == "internal" and call.dialled.isdigit():
            far_end = f"E{call.dialled}"
        field[PARTY1], field[PARTY2] = extension, far_end
    if any("," in value or "\r" in value or "\n" in value for value in field):
        raise ValueError("a value holds a comma or a line break, which IP Office SMDR cannot carry")
    return (",".join(field) + "\r\n").encode(options.encoding, errors="replace")


SPEC = DriverSpec(
    name="avaya_ipoffice",
    kind="pbx",
    options=IpOfficeOptions,
    make_link=lambda options: FramedLink(LineFramer(max_length=options.max_length)),
    transports=frozenset({"serial", "tcp-client", "tcp-server", "file"}),
    parse_record=parse_record,
    format_record=format_record,
    default_port=None,  # IP Office has no factory SMDR port: the installer sets one on both sides
    description="Avaya IP Office SMDR (CSV, 30-37 fields)",
)
