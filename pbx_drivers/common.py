"""Helpers every PBX driver shares: dates without a year, durations, 12-hour clocks, zones, directions.

The format facts behind them are in ``/work/shared/reference/smdr.md`` §0 (headline findings 3 and 4):
many fixed-width formats carry no year (Mitel ``mm/dd``, Nortel, NEC SL, Samsung) or no date at all, clocks
may be 12-hour (Panasonic ``10:03AM``, Mitel ``hh:mmP``), and durations come as ``hh:mm:ss``,
``hhhh:mm:ss`` (Mitel extended), ``hh:mm'ss`` / ``m'ss`` (Panasonic) or plain seconds.

How a :class:`~appliance.events.CallRecord` is filled, whatever the PBX:

- ``outgoing``: ``extension`` placed the call on ``trunk``; ``dialled`` holds the digits sent on the trunk
  (no outside-line access code); ``caller`` is the calling number the PBX reported for the call, if any.
- ``incoming``: ``trunk`` brought the call to ``extension``; ``caller`` is the caller ID (empty when
  withheld); ``dialled`` is the DDI/DNIS digits the PBX reported, if any.
- ``internal``: ``extension`` called ``dialled``; ``trunk`` is empty.
- ``tandem``: trunk to trunk; ``trunk`` is the outgoing trunk.

Nothing here reads a clock: "now" is always ``ParseContext.received_at``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from appliance.drivers import ParseContext
from appliance.events import CallRecord, Direction

# The encodings a driver's ``encoding`` option may name (the same list the site configuration knows).
Encoding = Literal["ascii", "cp850", "cp1252", "latin-1", "utf-8"]

# A PBX clock a little ahead of ours, or a record stamped just before midnight on New Year's Eve and read
# a moment later, must not be pushed a whole year (or day) back: allow records this far after receipt.
YEAR_SKEW = timedelta(days=2)
DAY_SKEW = timedelta(hours=1)

_HMS = re.compile(r"(\d+):([0-5]\d):([0-5]\d)")
_MS = re.compile(r"(\d+):([0-5]\d)")
_APOSTROPHE = re.compile(r"(?:(\d+):)?(\d+)'([0-5]\d)")  # Panasonic "00:03'25" and ring "0'05"
_PRINTABLE = re.compile(rb"[^\x20-\x7e]")


def local_now(context: ParseContext) -> datetime:
    """``received_at`` as a naive wall-clock time in the site's zone (a naive value is taken as site time)."""
    received = context.received_at
    if received.tzinfo is not None:
        received = received.astimezone(context.tz)
    return received.replace(tzinfo=None)


def localize(naive: datetime, tz: ZoneInfo) -> datetime:
    """Attach the site zone to a PBX wall-clock time. In the autumn DST overlap the first (summer) reading
    wins: a PBX printing local time cannot tell us which one it meant."""
    return naive.replace(tzinfo=tz, fold=0)


def infer_year(month: int, day: int, clock: time, context: ParseContext) -> datetime:
    """The start of a record that shows ``mm/dd`` only: the latest year that puts it no later than
    ``YEAR_SKEW`` after it was received, so ``12/31`` read on 1 January is last year's. Raises ValueError
    for a date that exists in no year (``02/30``)."""
    now = local_now(context)
    for year in range(now.year + 1, now.year - 9, -1):  # -9: a 29 February needs up to eight years back
        try:
            candidate = datetime.combine(date(year, month, day), clock)
        except ValueError:
            continue
        if candidate <= now + YEAR_SKEW:
            return localize(candidate, context.tz)
    raise ValueError(f"{month:02d}/{day:02d} is not a calendar date")


def infer_date(clock: time, context: ParseContext) -> datetime:
    """The start of a record that shows only a time of day: the latest such moment no later than
    ``DAY_SKEW`` after it was received (``23:59`` read at ``00:01`` is yesterday's)."""
    now = local_now(context)
    for offset in (1, 0, -1):
        candidate = datetime.combine(now.date() + timedelta(days=offset), clock)
        if candidate <= now + DAY_SKEW:
            return localize(candidate, context.tz)
    raise AssertionError("unreachable: yesterday is always in the past")


def parse_duration(text: str) -> int:
    """Seconds from ``hh:mm:ss``, ``hhhh:mm:ss``, ``mm:ss``, ``hh:mm'ss``, ``m'ss`` or plain seconds.

    Raises ValueError with the offending text; blank is not a duration (callers decide what blank means).
    """
    value = text.strip()
    if match := _HMS.fullmatch(value):
        hours, minutes, seconds = (int(part) for part in match.groups())
        return hours * 3600 + minutes * 60 + seconds
    if match := _APOSTROPHE.fullmatch(value):
        hours = int(match.group(1) or 0)
        return hours * 3600 + int(match.group(2)) * 60 + int(match.group(3))
    if match := _MS.fullmatch(value):
        return int(match.group(1)) * 60 + int(match.group(2))
    if value.isdigit():
        return int(value)
    raise ValueError(f"duration {text.strip()!r} is not hh:mm:ss, mm'ss or seconds")


def format_hms(seconds: int, hour_digits: int = 2) -> str:
    """``seconds`` as ``hh:mm:ss`` with at least ``hour_digits`` hour digits (Mitel extended uses four)."""
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours:0{hour_digits}d}:{rest // 60:02d}:{rest % 60:02d}"


def twelve_hour(hour: int, pm: bool) -> int:
    """24-hour value of a 12-hour clock reading: ``12:05 AM`` is 00:05, ``12:05 PM`` is 12:05."""
    if not 1 <= hour <= 12:
        raise ValueError(f"hour {hour} is not on a 12-hour clock")
    return hour % 12 + (12 if pm else 0)


def direction_from_trunks(calling_is_trunk: bool, called_is_trunk: bool) -> Direction | None:
    """The direction when the record says which side is a trunk; None when neither side is."""
    if calling_is_trunk and called_is_trunk:
        return "tandem"
    if calling_is_trunk:
        return "incoming"
    if called_is_trunk:
        return "outgoing"
    return None


def unprintable(raw: bytes) -> str | None:
    """A reason when ``raw`` holds a byte outside printable ASCII (fixed-width columns need one byte per
    column; a control byte there means line noise or the wrong baud rate), else None."""
    match = _PRINTABLE.search(raw)
    if match is None:
        return None
    return f"byte {raw[match.start()]:#04x} at column {match.start() + 1} is not printable ASCII"


def decode(raw: bytes, encoding: str) -> str:
    """Decode a record once, with the link's declared encoding; bad bytes become U+FFFD, never an error."""
    return raw.decode(encoding, errors="replace")


def call_to_json(call: CallRecord, encoding: str = "ascii") -> dict[str, Any]:
    """The call as plain JSON types, with the keys ``appliance parse`` prints (also for reports and tests)."""
    return {
        "start": call.start.isoformat(),
        "duration": call.duration,
        "ring": call.ring,
        "extension": call.extension,
        "trunk": call.trunk,
        "dialled": call.dialled,
        "caller": call.caller,
        "direction": call.direction,
        "answered": call.answered,
        "account_code": call.account_code,
        "call_id": call.call_id,
        "transfer": call.transfer,
        "raw": decode(call.raw, encoding),
    }
