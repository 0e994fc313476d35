"""Cisco Unified Communications Manager CDR flat files: CSV mapped by header name, epoch times.

Sources: ``/work/shared/reference/smdr.md`` §1 and §2.7 and the real CUCM 10.5 file in
``/work/shared/samples/cisco_cucm.txt`` (cjbaccus/PyCDR-Advanced ``CDR.txt``).

Transport: the CDR Repository Manager pushes one file about every minute (``cdr_<cluster>_<node>_
<YYYYMMDDhhmm>_<seq>``, with ``cmr_...`` files beside them) by SFTP to a "billing server": here a folder
watched by the ``file`` transport (``path`` = the folder). Put a ``processed`` folder inside it and every
file is moved there once it has been read and has stopped growing (``FileFollowService``).

A file starts with the column names, then (in native files) a row of SQL types, then one row per call
leg. Columns differ between releases (123 in 10.5; ``destLegIdentifier`` / ``destLegCallIdentifier``),
so fields are found by their header NAME, never by position: the link remembers the header of each file
and hands every row on as ``header LF row``, so the journal keeps what each value meant. A row with no
header before it is quarantined. Rows of type 2 (CMR, call quality) and 0 (start records) are not calls.

Columns used: cdrRecordType, globalCallID_callManagerId, globalCallID_callId (the call id, shared by the
legs of a transferred call), dateTimeOrigination / dateTimeConnect / dateTimeDisconnect (UTC epoch
seconds; connect 0 = never answered), callingPartyNumber, originalCalledPartyNumber,
finalCalledPartyNumber, outpulsedCalledPartyNumber (digits sent to the trunk, when set), duration
(seconds connected), origDeviceName / destDeviceName, clientMatterCode (account code),
origCallTerminationOnBehalfOf / destCallTerminationOnBehalfOf (10 = transfer).

Direction: a device that is not a phone (gateway ``S0/SU2/DS1-0@...``, SIP trunk, MGCP endpoint) on the
calling side makes the call incoming, on the called side outgoing, on both tandem; phones on both sides,
or no device on the called side and a short number, internal. Phones are the device names matching
``phone_devices`` (SEP..., CSF..., and the other soft-client prefixes).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from appliance.drivers import DriverSpec, FramedLink, ParseContext
from appliance.events import CallRecord, Direction, Event, Ignored, RecordReceived
from appliance.framing import LineFramer
from pbx_drivers.common import Encoding, decode, direction_from_trunks, from_epoch

HEADER_MARK = "cdrRecordType"
TRANSFER = "10"  # OnBehalfOf code of the Transfer feature
REQUIRED = ("cdrRecordType", "globalCallID_callId", "dateTimeOrigination", "dateTimeConnect",
            "dateTimeDisconnect", "callingPartyNumber", "finalCalledPartyNumber", "duration",
            "origDeviceName", "destDeviceName")
# The columns ``format_record`` writes, in the order CUCM 10.5 prints them.
WRITTEN = ("cdrRecordType", "globalCallID_callManagerId", "globalCallID_callId", "dateTimeOrigination",
           "callingPartyNumber", "origCause_value", "originalCalledPartyNumber", "finalCalledPartyNumber",
           "destCause_value", "dateTimeConnect", "dateTimeDisconnect", "duration", "origDeviceName",
           "destDeviceName", "origCallTerminationOnBehalfOf", "destCallTerminationOnBehalfOf",
           "clientMatterCode", "outpulsedCalledPartyNumber")
_SQL_TYPE = re.compile(rb"(?i)INTEGER|SMALLINT|BIGINT|UNIQUEIDENTIFIER|(VAR)?CHAR\(\d+\)")
_SCIENTIFIC = re.compile(r"\d(\.\d+)?E\+\d+", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class CucmOptions:
    """``phone_devices``: a regular expression for device names that are phones (anything else that is
    not empty is a gateway or trunk). ``internal_max_digits``: a called number this short with no called
    device is internal (a busy or unanswered extension)."""

    phone_devices: str = r"^(SEP|CSF|BOT|TCT|TAB|ATA|AN|CIPC|UDP)"
    internal_max_digits: int = 6
    encoding: Encoding = "utf-8"
    max_length: int = 16384

    def __post_init__(self) -> None:
        try:
            re.compile(self.phone_devices)
        except re.error as exc:
            raise ValueError(f"phone_devices: {exc}") from None
        if not 1024 <= self.max_length <= 262144:
            raise ValueError("max_length must be between 1024 and 262144")


class CucmLink(FramedLink):
    """Lines; remembers the header row of the file (or stream) and prefixes it to every data row."""

    def __init__(self, options: CucmOptions) -> None:
        super().__init__(LineFramer(max_length=options.max_length))
        self._header: bytes | None = None

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        return [self._with_header(event) for event in super().receive_data(data, now)]

    def connection_lost(self, now: float) -> list[Event]:
        return [self._with_header(event) for event in super().connection_lost(now)]

    def _with_header(self, event: Event) -> Event:
        if not isinstance(event, RecordReceived):
            return event
        fields = [field.strip(b'" ') for field in event.raw.split(b",")]
        if HEADER_MARK.encode() in fields:  # wherever the column is: the order is not fixed
            self._header = event.raw
            return Ignored(reason="column names", raw=event.raw, quarantine=False)
        if _SQL_TYPE.fullmatch(fields[0]):
            return Ignored(reason="column types", raw=event.raw, quarantine=False)
        if self._header is None:
            return event  # parse_record quarantines it, naming the missing header
        return RecordReceived(raw=self._header + b"\n" + event.raw)


def parse_record(raw: bytes, options: CucmOptions, context: ParseContext) -> CallRecord | Ignored:
    """``header LF row`` (from ``CucmLink``) -> a call, or Ignored with the reason. Never raises."""
    text = decode(raw, options.encoding)
    if not text.strip():
        return Ignored(reason="blank line", raw=raw, quarantine=False)
    head, sep, row_text = text.partition("\n")
    if not sep:
        if HEADER_MARK in [name.strip('" ') for name in head.split(",")]:
            return Ignored(reason="column names", raw=raw, quarantine=False)
        return Ignored(reason="a CDR row with no header row before it: fields are mapped by name", raw=raw)
    try:
        names = next(csv.reader([head]))
        row = next(csv.reader([row_text]))
    except (csv.Error, StopIteration) as exc:
        return Ignored(reason=f"not valid CSV: {exc}", raw=raw)
    if len(names) != len(row):
        return Ignored(reason=f"{len(row)} values for {len(names)} column names", raw=raw)
    value = {name.strip(): item.strip() for name, item in zip(names, row)}
    missing = [name for name in REQUIRED if name not in value]
    if missing:
        return Ignored(reason=f"header lacks {', '.join(missing)}", raw=raw)
    if value["cdrRecordType"] != "1":
        return Ignored(reason=f"record type {value['cdrRecordType']} is not a call end record (CMR or start)",
                       raw=raw, quarantine=False)
    try:
        return _build(raw, value, options, context)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)


def _build(raw: bytes, value: dict[str, str], options: CucmOptions, context: ParseContext) -> CallRecord:
    for name, item in value.items():
        if _SCIENTIFIC.fullmatch(item):
            raise ValueError(f"{name} {item!r} is in scientific notation: a spreadsheet saved the file")
    numbers = {}
    for name in ("dateTimeOrigination", "dateTimeConnect", "dateTimeDisconnect", "duration"):
        if not value[name].isdigit():
            raise ValueError(f"{name} {value[name]!r} is not whole seconds")
        numbers[name] = int(value[name])
    origin, connect = numbers["dateTimeOrigination"], numbers["dateTimeConnect"]
    answered = connect > 0
    ring_end = connect if answered else numbers["dateTimeDisconnect"]
    phone = re.compile(options.phone_devices)
    orig_device, dest_device = value["origDeviceName"], value["destDeviceName"]
    orig_trunk = bool(orig_device) and not phone.search(orig_device)
    dest_trunk = bool(dest_device) and not phone.search(dest_device)
    calling = value["callingPartyNumber"]
    called = value.get("outpulsedCalledPartyNumber") or value["finalCalledPartyNumber"]
    direction: Direction | None = direction_from_trunks(orig_trunk, dest_trunk)
    if direction is None:
        direction = "internal" if dest_device or len(called) <= options.internal_max_digits else "outgoing"
    if direction == "incoming":
        extension, trunk, caller = value["finalCalledPartyNumber"], orig_device, calling
        dialled = value.get("originalCalledPartyNumber", "")
        dialled = "" if dialled == extension else dialled  # the DDI, when it was not the extension itself
    elif direction == "tandem":
        extension, trunk, dialled, caller = "", dest_device, called, calling
    else:
        trunk = dest_device if direction == "outgoing" else ""
        extension, dialled, caller = calling, called, ""
    transfer = TRANSFER in (value.get("origCallTerminationOnBehalfOf"),
                            value.get("destCallTerminationOnBehalfOf"))
    return CallRecord(
        start=from_epoch(origin, context.tz),
        duration=numbers["duration"],
        ring=max(0, ring_end - origin) if ring_end else None,
        extension=extension,
        trunk=trunk,
        dialled=dialled,
        caller=caller,
        direction=direction,
        answered=answered,
        account_code=value.get("clientMatterCode", ""),
        call_id=value["globalCallID_callId"],
        transfer="transferred" if transfer else "",
        raw=raw,
    )


def format_record(call: CallRecord, options: CucmOptions) -> bytes:
    """The header and one row, as a CUCM file would hold them (a subset of the columns, in CUCM's
    order: the parser maps by name, so a shorter header reads the same). Phones are named SEP + a made-up
    MAC from the extension; a trunk given as a bare number becomes a gateway ``S0/SU<n>/DS1-0@gw``."""
    origin = int(call.start.timestamp())
    ring = call.ring or 0
    connect = origin + ring if call.answered else 0
    disconnect = (connect or origin + ring) + (call.duration if call.answered else 0)
    trunk = f"S0/SU{call.trunk}/DS1-0@gw" if call.trunk.isdigit() else call.trunk

    def phone(number: str) -> str:
        return "SEP" + number.encode().hex().upper().rjust(12, "0")[-12:] if number else ""

    calling, final, original, orig_device, dest_device = call.extension, call.dialled, call.dialled, \
        phone(call.extension), trunk
    if call.direction == "incoming":
        calling, final, original = call.caller, call.extension, call.dialled
        orig_device, dest_device = trunk, phone(call.extension)
    elif call.direction == "internal":
        dest_device = phone(call.dialled) if call.answered else ""
    elif call.direction == "tandem":
        calling, orig_device = call.caller, "S0/SU0/DS1-0@gw"
    values = {
        "cdrRecordType": "1", "globalCallID_callManagerId": "1", "globalCallID_callId": call.call_id,
        "dateTimeOrigination": str(origin), "callingPartyNumber": calling, "origCause_value": "0",
        "originalCalledPartyNumber": original, "finalCalledPartyNumber": final,
        "destCause_value": "16" if call.answered else "0", "dateTimeConnect": str(connect),
        "dateTimeDisconnect": str(disconnect), "duration": str(call.duration if call.answered else 0),
        "origDeviceName": orig_device, "destDeviceName": dest_device,
        "origCallTerminationOnBehalfOf": TRANSFER if call.transfer == "transferred" else "12",
        "destCallTerminationOnBehalfOf": "0", "clientMatterCode": call.account_code,
        "outpulsedCalledPartyNumber": "",
    }
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(WRITTEN)
    writer.writerow([values[name] for name in WRITTEN])
    return out.getvalue().encode(options.encoding, errors="replace")


SPEC = DriverSpec(
    name="cisco_cucm",
    kind="pbx",
    options=CucmOptions,
    make_link=CucmLink,
    transports=frozenset({"file", "tcp-client", "tcp-server"}),
    parse_record=parse_record,
    format_record=format_record,
    default_port=None,
    description="Cisco Unified CM CDR flat files (CSV mapped by header name; a watched drop folder)",
)
