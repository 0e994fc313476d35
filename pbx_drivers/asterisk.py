"""Asterisk ``cdr_csv`` (``/var/log/asterisk/cdr-csv/Master.csv``): one CSV row per CDR leg.

Sources: ``/work/shared/reference/smdr.md`` §2.8 (field order from Asterisk's ``cdr_csv.c``) and the real
rows in ``/work/shared/samples/asterisk.txt`` (a TR-104 call-log reader quoting a device's Master.csv).

Transport: the ``file`` transport follows Master.csv as Asterisk appends to it (and re-reads it from the
start after a rotation; the pipeline drops what it has already stored). A ``tail -F | nc`` relay and the
PBX simulator can bring the same rows over TCP.

Fields (no header): accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata, start,
answer, end, duration, billsec, disposition, amaflags, then uniqueid (``loguniqueid=yes``) and userfield
(``loguserfield=yes``) when enabled. Strings are quoted with ``""`` escaping, duration and billsec usually
not; ``answer`` is EMPTY for an unanswered call; times are local unless ``usegmtime=yes`` (``utc``).
Disposition ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION: only ANSWERED was answered.

Mapping: a channel matching one of ``trunk_channels`` is a trunk (the channel name without its
``-xxxxxxxx`` suffix names it: ``SIP/sip0-00000013`` -> ``SIP/sip0``). Calling channel a trunk: incoming
(the extension is the number in the called channel's name, ``SIP/101-...``, else ``dst``; ``src`` is the
caller ID); called channel a trunk: outgoing (``src`` dialled ``dst``); both: tandem; neither: internal.
Duration is ``billsec`` (talk time), ring is ``duration - billsec``. ``uniqueid`` is the call id. Each
leg of a transferred call is its own row: Asterisk gives no flag to join them, so each is rated alone.
"""

from __future__ import annotations

import re
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
    from_utc_text,
    localize,
    named_row,
)

FIELDS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
          "start", "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield")
UTC = ZoneInfo("UTC")
OPTIONAL = 2  # uniqueid and userfield are only there when enabled in cdr.conf
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DISPOSITIONS = ("ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION")
_SUFFIX = re.compile(r"-[0-9a-fA-F]+(;\d)?$")
_CHANNEL_EXTENSION = re.compile(r"^[A-Za-z0-9]+/(\d+)-")


@dataclass(frozen=True, kw_only=True)
class AsteriskOptions:
    """``trunk_channels``: regular expressions for channel names that are trunks. ``utc``: the file
    was written with ``usegmtime=yes``."""

    trunk_channels: tuple[str, ...] = field(
        default_factory=lambda: (r"^DAHDI/", r"^Zap/", r"(?i)^(SIP|PJSIP|IAX2)/[^-]*trunk"))
    utc: bool = False
    encoding: Encoding = "utf-8"
    max_length: int = 4096

    def __post_init__(self) -> None:
        for pattern in self.trunk_channels:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"trunk_channels: {pattern!r}: {exc}") from None
        if not 256 <= self.max_length <= 65536:
            raise ValueError("max_length must be between 256 and 65536")


def parse_record(raw: bytes, options: AsteriskOptions, context: ParseContext) -> CallRecord | Ignored:
    """One Master.csv row -> a call, or Ignored with the reason. Never raises."""
    text = decode(raw, options.encoding)
    if not text.strip():
        return Ignored(reason="blank line", raw=raw, quarantine=False)
    if text.startswith(("accountcode,", '"accountcode"')):
        return Ignored(reason="column names", raw=raw, quarantine=False)
    try:
        return _build(raw, named_row(text, FIELDS, optional=OPTIONAL), options, context)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)


def _build(raw: bytes, row: dict[str, str], options: AsteriskOptions, context: ParseContext) -> CallRecord:
    if row["disposition"] not in DISPOSITIONS:
        raise ValueError(f"disposition {row['disposition']!r} is not one of {', '.join(DISPOSITIONS)}")
    for name in ("duration", "billsec"):
        if not row[name].isdigit():
            raise ValueError(f"{name} {row[name]!r} is not whole seconds")
    duration, billsec = int(row["duration"]), int(row["billsec"])
    start = _time(row["start"], options, context)
    answered = row["disposition"] == "ANSWERED" and bool(row["answer"])
    channel, dstchannel = row["channel"], row["dstchannel"]
    by_trunks = direction_from_trunks(_is_trunk(channel, options), _is_trunk(dstchannel, options))
    direction: Direction = by_trunks or "internal"
    extension, trunk, dialled, caller = row["src"], "", row["dst"], ""
    if direction == "incoming":
        found = _CHANNEL_EXTENSION.match(dstchannel)
        extension = found.group(1) if found else row["dst"]
        dialled = "" if row["dst"] == extension else row["dst"]  # the DID, when it is not the extension
        trunk, caller = _name(channel), row["src"]
    elif direction == "outgoing":
        trunk = _name(dstchannel)
    elif direction == "tandem":
        extension, trunk, caller = "", _name(dstchannel), row["src"]
    return CallRecord(
        start=start,
        duration=billsec if answered else 0,
        ring=max(0, duration - billsec),
        extension=extension,
        trunk=trunk,
        dialled=dialled,
        caller=caller,
        direction=direction,
        answered=answered,
        account_code=row["accountcode"],
        call_id=row.get("uniqueid", ""),
        raw=raw,
    )


def _time(text: str, options: AsteriskOptions, context: ParseContext) -> datetime:
    try:
        naive = datetime.strptime(text, TIME_FORMAT)
    except ValueError:
        raise ValueError(f"start {text!r} is not {TIME_FORMAT}") from None
    return from_utc_text(naive, context.tz) if options.utc else localize(naive, context.tz)


def _is_trunk(channel: str, options: AsteriskOptions) -> bool:
    return bool(channel) and any(re.search(pattern, channel) for pattern in options.trunk_channels)


def _name(channel: str) -> str:
    return _SUFFIX.sub("", channel)


def format_record(call: CallRecord, options: AsteriskOptions) -> bytes:
    """One Master.csv row (18 fields, strings quoted, numbers not). Phones are ``SIP/<ext>-...``; a trunk
    given as a bare number is the analogue line ``DAHDI/<n>``."""
    trunk = call.trunk if "/" in call.trunk else f"DAHDI/{call.trunk}"
    ring = call.ring or 0
    phone = f"SIP/{call.extension}-0000002a"
    src, dst, channel, dstchannel = call.extension, call.dialled, phone, f"{trunk}-0000002b"
    if call.direction == "incoming":
        src, dst = call.caller, call.dialled or call.extension
        channel, dstchannel = f"{trunk}-0000002b", phone
    elif call.direction == "internal":
        dstchannel = f"SIP/{call.dialled}-0000002b"
    elif call.direction == "tandem":
        src, channel = call.caller, "DAHDI/99-1"
    start = (call.start.astimezone(UTC) if options.utc else call.start).replace(tzinfo=None)
    answer = start + timedelta(seconds=ring)
    end = answer + timedelta(seconds=call.duration if call.answered else 0)
    disposition = "ANSWERED" if call.answered else "NO ANSWER"
    strings = [call.account_code, src, dst, "from-internal", f'"{src}" <{src}>', channel, dstchannel, "Dial",
               dstchannel.rsplit("-", 1)[0], f"{start:{TIME_FORMAT}}",
               f"{answer:{TIME_FORMAT}}" if call.answered else "", f"{end:{TIME_FORMAT}}"]
    line = csv_line(strings, quote_all=True).rstrip("\r\n")
    billsec = call.duration if call.answered else 0
    line += f",{ring + billsec},{billsec}," + csv_line([disposition, "DOCUMENTATION", call.call_id, ""],
                                                       quote_all=True)
    return line.encode(options.encoding, errors="replace")


SPEC = DriverSpec(
    name="asterisk",
    kind="pbx",
    options=AsteriskOptions,
    make_link=lambda options: FramedLink(LineFramer(max_length=options.max_length)),
    transports=frozenset({"file", "tcp-client", "tcp-server", "serial"}),
    parse_record=parse_record,
    format_record=format_record,
    default_port=None,
    description="Asterisk cdr_csv Master.csv (one row per leg; a followed file)",
)
