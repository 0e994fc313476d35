"""3CX Phone System call records (CDR output "socket" or file): one CSV row per call, fields per settings.

Sources: ``/work/shared/reference/smdr.md`` §1 and §2.10 and the real 3CX v20 row in
``/work/shared/samples/3cx.txt`` (dorel14/3CX-Cdr-Server, its field order in the sample's header).

Transport (3CX Management Console, Settings > CDR): "Active socket" = 3CX connects to us (``tcp-server``
here, on the port entered there); "Passive socket" = 3CX listens and we connect (``tcp-client``);
"Single file" / "multiple files" = the ``file`` transport on the file or folder. The YAML picks one; the
records are the same.

The fields and their order are chosen in 3CX; ``fields`` lists them (default: the order of the sample:
historyid, callid, duration, time_start, time_answered, time_end, reason_terminated, from_no, to_no,
from_dn, to_dn, dial_no, reason_changed, final_number, final_dn, bill_code, bill_rate, bill_cost,
bill_name, chain, from_type, to_type, final_type, from_dispname, to_dispname, final_dispname,
missed_queue_calls). The default template puts a literal ``Call `` before the first field and ends the row
with a comma; both are allowed. Times are UTC ``yyyy/mm/dd hh:mm:ss`` (v20 installations that print
another format set ``time_format``); ``duration`` is ``hh:mm:ss`` of talk time.

Mapping: ``from_type``/``to_type``/``final_type`` say what each party is (Extension, Line, Queue, IVR...).
From a Line: incoming (the extension is ``final_dn``, the caller ``from_no``); to a Line (``final_type``
or ``to_type``): outgoing (``from_dn`` dialled ``to_no``, over line ``to_dn``); both: tandem; neither:
internal. Answered when ``time_answered`` is set. ``callid`` is the call id; ``reason_changed``
(ReplacedDst, QFwdToDNA...) goes to ``transfer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from appliance.drivers import DriverSpec, FramedLink, ParseContext
from appliance.events import CallRecord, Direction, Ignored
from appliance.framing import LineFramer
from pbx_drivers.common import (
    Encoding,
    csv_line,
    decode,
    direction_from_trunks,
    format_hms,
    from_utc_text,
    localize,
    named_row,
    parse_duration,
)

DEFAULT_FIELDS = ("historyid", "callid", "duration", "time_start", "time_answered", "time_end",
                  "reason_terminated", "from_no", "to_no", "from_dn", "to_dn", "dial_no", "reason_changed",
                  "final_number", "final_dn", "bill_code", "bill_rate", "bill_cost", "bill_name", "chain",
                  "from_type", "to_type", "final_type", "from_dispname", "to_dispname", "final_dispname",
                  "missed_queue_calls")
REQUIRED = ("duration", "time_start", "time_answered", "from_no", "to_no", "from_dn", "from_type", "to_type")
PREFIX = "Call "
UTC = ZoneInfo("UTC")
LINE = "Line"


@dataclass(frozen=True, kw_only=True)
class ThreeCxOptions:
    """``fields``: the CDR fields in the order set in 3CX. ``utc``: times are UTC (3CX writes UTC)."""

    fields: tuple[str, ...] = field(default_factory=lambda: DEFAULT_FIELDS)
    time_format: str = "%Y/%m/%d %H:%M:%S"
    utc: bool = True
    encoding: Encoding = "utf-8"
    max_length: int = 8192

    def __post_init__(self) -> None:
        missing = [name for name in REQUIRED if name not in self.fields]
        if missing:
            raise ValueError(f"fields: 3CX must send {', '.join(missing)}")
        sample = datetime(2024, 6, 17, 5, 59, 49)
        try:
            datetime.strptime(sample.strftime(self.time_format), self.time_format)
        except ValueError:
            raise ValueError(f"time_format {self.time_format!r} does not read back what it writes") from None


def parse_record(raw: bytes, options: ThreeCxOptions, context: ParseContext) -> CallRecord | Ignored:
    """One CDR row -> a call, or Ignored with the reason. Never raises."""
    text = decode(raw, options.encoding)
    if not text.strip():
        return Ignored(reason="blank line", raw=raw, quarantine=False)
    text = text.removeprefix(PREFIX)
    if text.startswith(options.fields[0] + ","):
        return Ignored(reason="column names", raw=raw, quarantine=False)
    try:
        return _build(raw, named_row(text, options.fields), options, context)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)


def _build(raw: bytes, row: dict[str, str], options: ThreeCxOptions, context: ParseContext) -> CallRecord:
    start = _time(row["time_start"], options, context)
    answered = bool(row["time_answered"])
    ring = int((_time(row["time_answered"], options, context) - start).total_seconds()) if answered else None
    if ring is None and row.get("time_end"):
        ring = int((_time(row["time_end"], options, context) - start).total_seconds())
    duration = parse_duration(row["duration"]) if row["duration"] else 0
    from_line = row["from_type"] == LINE
    to_line = LINE in (row["to_type"], row.get("final_type", ""))
    direction: Direction = direction_from_trunks(from_line, to_line) or "internal"
    extension, trunk, dialled, caller = row["from_dn"], "", row["to_no"], ""
    if direction == "incoming":
        extension = row.get("final_dn") or row.get("to_dn", "")
        trunk, dialled, caller = row["from_dn"], row.get("dial_no", ""), row["from_no"]
    elif direction == "outgoing":
        trunk = row.get("to_dn", "")
    elif direction == "tandem":
        extension, trunk, caller = "", row.get("to_dn", ""), row["from_no"]
    elif direction == "internal":
        dialled = row.get("to_dn") or row["to_no"]
    return CallRecord(
        start=start,
        duration=duration if answered else 0,
        ring=max(0, ring) if ring is not None else None,
        extension=extension,
        trunk=trunk,
        dialled=dialled,
        caller=caller,
        direction=direction,
        answered=answered,
        account_code=row.get("bill_code", "") if row.get("bill_code") != "default" else "",
        call_id=row.get("callid", ""),
        transfer=row.get("reason_changed", ""),
        raw=raw,
    )


def _time(text: str, options: ThreeCxOptions, context: ParseContext) -> datetime:
    try:
        naive = datetime.strptime(text, options.time_format)
    except ValueError:
        raise ValueError(f"time {text!r} is not {options.time_format}") from None
    return from_utc_text(naive, context.tz) if options.utc else localize(naive, context.tz)


def format_record(call: CallRecord, options: ThreeCxOptions) -> bytes:
    """One row in the configured field order, with the ``Call `` prefix and the trailing comma of 3CX's
    default template. External parties are ``Line``; extensions ``Ext.<dn>``."""
    start = call.start.astimezone(UTC) if options.utc else call.start
    ring = call.ring or 0
    answer = start + timedelta(seconds=ring)
    end = answer + timedelta(seconds=call.duration if call.answered else 0)
    incoming, outgoing = call.direction in ("incoming", "tandem"), call.direction in ("outgoing", "tandem")
    values = {
        "historyid": "1", "callid": call.call_id,
        "duration": format_hms(call.duration if call.answered else 0),
        "time_start": start.strftime(options.time_format),
        "time_answered": answer.strftime(options.time_format) if call.answered else "",
        "time_end": end.strftime(options.time_format), "reason_terminated": "TerminatedBySrc",
        "from_no": call.caller if incoming else f"Ext.{call.extension}",
        "to_no": call.dialled if outgoing else f"Ext.{call.extension if incoming else call.dialled}",
        "from_dn": call.trunk if incoming else call.extension,
        "to_dn": call.trunk if outgoing else call.extension if incoming else call.dialled,
        "dial_no": call.dialled, "reason_changed": call.transfer,
        "final_number": call.dialled, "final_dn": call.extension if incoming else call.trunk,
        "bill_code": call.account_code or "default", "chain": "",
        "from_type": LINE if incoming else "Extension", "to_type": LINE if outgoing else "Extension",
        "final_type": LINE if outgoing else "Extension",
    }
    line = csv_line([values.get(name, "") for name in options.fields]).rstrip("\r\n")
    return (PREFIX + line + ",\r\n").encode(options.encoding, errors="replace")


SPEC = DriverSpec(
    name="threecx",
    kind="pbx",
    options=ThreeCxOptions,
    make_link=lambda options: FramedLink(LineFramer(max_length=options.max_length)),
    transports=frozenset({"tcp-server", "tcp-client", "file"}),
    parse_record=parse_record,
    format_record=format_record,
    default_port=None,  # the port is typed into 3CX's CDR settings
    description="3CX CDR (CSV with configurable fields; active socket, passive socket or file)",
)
