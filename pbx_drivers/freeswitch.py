"""FreeSWITCH ``mod_cdr_csv`` (``log/cdr-csv/Master.csv``): one CSV row per call leg, fields per template.

Sources: ``/work/shared/reference/smdr.md`` §2.9 and the real rows in ``/work/shared/samples/freeswitch.txt``
(raspberry-pi-maker/VoIP-related-codes, ``cdr_basic.md``, the shipped "example" template).

Transport: the ``file`` transport follows Master.csv (``rotate-on-hup`` renames it; point ``path`` at the
folder to read the rotated files too, the pipeline drops what it already stored). TCP for relays and the
simulator.

The field list is the template in ``cdr_csv.conf.xml``; ``fields`` names its channel variables in order
(default: the "example" template: caller_id_name, caller_id_number, destination_number, context,
start_stamp, answer_stamp, end_stamp, duration, billsec, hangup_cause, uuid, bleg_uuid, accountcode,
read_codec, write_codec). Every value is quoted. Also understood when the template has them:
``direction`` (FreeSWITCH's channel direction: ``inbound`` on the A leg, ``outbound`` on the B leg),
``sip_gateway_name`` (the trunk an outgoing call used) and ``last_sent_callee_id_number``.

Legs: with ``legs="a"`` (the default) every row is an A leg, i.e. a call. With ``legs="ab"`` FreeSWITCH
also writes the B leg of every bridged call, which describes the same call again; the template must then
carry ``direction`` so the B rows can be told apart: they are ignored (not quarantined), as the call is
charged on its A leg.

Mapping: an A leg whose ``context`` is one of ``incoming_contexts`` (the dialplan for calls from the
outside, ``public`` by default) is incoming; the extension is the digits of ``destination_number``, which
on the A leg is the dialled string (``*1001``), and the caller is ``caller_id_number``. Otherwise a
destination longer than ``internal_max_digits`` is outgoing, a shorter one internal. Duration is
``billsec``; ring is ``duration - billsec``; answered when ``answer_stamp`` is set; ``uuid`` is the call id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from appliance.drivers import DriverSpec, FramedLink, ParseContext
from appliance.events import CallRecord, Direction, Ignored
from appliance.framing import LineFramer
from pbx_drivers.common import Encoding, csv_line, decode, digits_of, localize, named_row

EXAMPLE_TEMPLATE = ("caller_id_name", "caller_id_number", "destination_number", "context", "start_stamp",
                    "answer_stamp", "end_stamp", "duration", "billsec", "hangup_cause", "uuid", "bleg_uuid",
                    "accountcode", "read_codec", "write_codec")
REQUIRED = ("caller_id_number", "destination_number", "context", "start_stamp", "answer_stamp", "duration",
            "billsec")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, kw_only=True)
class FreeswitchOptions:
    """``fields``: the template's variables in order. ``legs``: what mod_cdr_csv logs (a or ab).
    ``incoming_contexts``: dialplan contexts of calls from outside. ``internal_max_digits``: the
    longest extension number."""

    fields: tuple[str, ...] = field(default_factory=lambda: EXAMPLE_TEMPLATE)
    legs: Literal["a", "ab"] = "a"
    incoming_contexts: tuple[str, ...] = ("public",)
    internal_max_digits: int = 5
    encoding: Encoding = "utf-8"
    max_length: int = 8192

    def __post_init__(self) -> None:
        missing = [name for name in REQUIRED if name not in self.fields]
        if missing:
            raise ValueError(f"fields: the template needs {', '.join(missing)}")
        if len(set(self.fields)) != len(self.fields):
            raise ValueError("fields: a variable is listed twice")
        if self.legs == "ab" and "direction" not in self.fields:
            raise ValueError("legs ab: add ${direction} to the template so B legs can be told from A legs")
        if not 256 <= self.max_length <= 65536:
            raise ValueError("max_length must be between 256 and 65536")


def parse_record(raw: bytes, options: FreeswitchOptions, context: ParseContext) -> CallRecord | Ignored:
    """One Master.csv row -> a call, or Ignored with the reason. Never raises."""
    text = decode(raw, options.encoding)
    if not text.strip():
        return Ignored(reason="blank line", raw=raw, quarantine=False)
    try:
        row = named_row(text, options.fields)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)
    if options.legs == "ab" and row.get("direction") == "outbound":
        return Ignored(reason=f"B leg of call {row.get('bleg_uuid') or row.get('uuid', '')}: the call is "
                              f"charged on its A leg", raw=raw, quarantine=False)
    try:
        return _build(raw, row, options, context)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)


def _build(raw: bytes, row: dict[str, str], options: FreeswitchOptions, context: ParseContext) -> CallRecord:
    for name in ("duration", "billsec"):
        if not row[name].isdigit():
            raise ValueError(f"{name} {row[name]!r} is not whole seconds")
    duration, billsec = int(row["duration"]), int(row["billsec"])
    try:
        start = localize(datetime.strptime(row["start_stamp"], TIME_FORMAT), context.tz)
    except ValueError:
        raise ValueError(f"start_stamp {row['start_stamp']!r} is not {TIME_FORMAT}") from None
    answered = bool(row["answer_stamp"])
    destination, number = row["destination_number"], row["caller_id_number"]
    direction: Direction
    if row["context"] in options.incoming_contexts:
        direction = "incoming"
        extension, dialled, caller = digits_of(destination, keep=""), destination, number
        if dialled == extension:
            dialled = ""
    else:
        direction = "outgoing" if len(digits_of(destination)) > options.internal_max_digits else "internal"
        extension, dialled, caller = number, destination, ""
    return CallRecord(
        start=start,
        duration=billsec if answered else 0,
        ring=max(0, duration - billsec),
        extension=extension,
        trunk=row.get("sip_gateway_name", "") if direction != "internal" else "",
        dialled=dialled,
        caller=caller,
        direction=direction,
        answered=answered,
        account_code=row.get("accountcode", ""),
        call_id=row.get("uuid", ""),
        raw=raw,
    )


def format_record(call: CallRecord, options: FreeswitchOptions) -> bytes:
    """One A-leg row in the configured template, every value quoted as mod_cdr_csv writes it. Incoming
    calls arrive in the first of ``incoming_contexts``; variables the writer does not know stay empty.
    Raises ValueError for a tandem call (no A leg describes one)."""
    if call.direction == "tandem":
        raise ValueError("a trunk-to-trunk call has no single A leg")
    start = call.start.replace(tzinfo=None)
    ring = call.ring or 0
    answer = start + timedelta(seconds=ring)
    end = answer + timedelta(seconds=call.duration if call.answered else 0)
    incoming = call.direction == "incoming"
    values = {
        "caller_id_name": call.caller if incoming else call.extension,
        "caller_id_number": call.caller if incoming else call.extension,
        "destination_number": (call.dialled or call.extension) if incoming else call.dialled,
        "context": options.incoming_contexts[0] if incoming else "default",
        "start_stamp": f"{start:{TIME_FORMAT}}",
        "answer_stamp": f"{answer:{TIME_FORMAT}}" if call.answered else "",
        "end_stamp": f"{end:{TIME_FORMAT}}",
        "duration": str(ring + (call.duration if call.answered else 0)),
        "billsec": str(call.duration if call.answered else 0),
        "hangup_cause": "NORMAL_CLEARING" if call.answered else "NO_ANSWER",
        "uuid": call.call_id, "accountcode": call.account_code, "direction": "inbound",
        "sip_gateway_name": call.trunk, "read_codec": "PCMU", "write_codec": "PCMU",
    }
    line = csv_line([values.get(name, "") for name in options.fields], quote_all=True)
    return line.encode(options.encoding, errors="replace")


SPEC = DriverSpec(
    name="freeswitch",
    kind="pbx",
    options=FreeswitchOptions,
    make_link=lambda options: FramedLink(LineFramer(max_length=options.max_length)),
    transports=frozenset({"file", "tcp-client", "tcp-server", "serial"}),
    parse_record=parse_record,
    format_record=format_record,
    default_port=None,
    description="FreeSWITCH mod_cdr_csv Master.csv (template fields, A/B legs; a followed file)",
)
