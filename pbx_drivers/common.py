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

import csv
import io
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


# ---------------------------------------------------------------- shared by the drivers added for issue 4
#
# smdr.md §0 finding 3: day/month order is a per-site setting (Panasonic, IP Office CDR, Avaya CM
# "day/month"), two-digit years are common, 12-hour clocks print "10:03AM", "10:03 PM" or "10:03P", and
# the printed time may be the START or the END of the call (Panasonic KX-TDA, Siemens, Avaya CM: the end).

DateOrder = Literal["mdy", "dmy", "ymd"]
TimeIs = Literal["start", "end"]

_DATE_PARTS = re.compile(r"(\d{1,4})[/.\-](\d{1,2})(?:[/.\-](\d{2,4}))?")
_CLOCK = re.compile(r"(\d{1,2}):(\d\d)(?::(\d\d))?\s*([AaPp][Mm]?)?")
# Two-digit years: 70-99 are 1970-1999 (the Panasonic manual's own example is dated 06/24/97), the rest 20xx.
_PIVOT = 70


def full_year(year: int) -> int:
    """A four-digit year from a two- or four-digit one (``97`` -> 1997, ``24`` -> 2024)."""
    if year >= 100:
        return year
    return 1900 + year if year >= _PIVOT else 2000 + year


def parse_date(text: str, order: DateOrder = "mdy") -> tuple[int | None, int, int]:
    """(year or None, month, day) from ``mm/dd[/yy]``, ``dd.mm.yy``, ``yyyy-mm-dd`` in the given order.

    The year is None when the record prints none (``03/05``); ``infer_year`` then finds it. Raises
    ValueError naming the text for anything that is not a calendar date in that order.
    """
    match = _DATE_PARTS.fullmatch(text.strip())
    if not match:
        raise ValueError(f"date {text.strip()!r} is not {_ORDER_NAMES[order]}")
    first, second, third = match.group(1), match.group(2), match.group(3)
    if order == "ymd":
        if third is None:
            raise ValueError(f"date {text.strip()!r} is not {_ORDER_NAMES[order]}")
        year, month, day = int(first), int(second), int(third)
    else:
        if len(first) > 2:
            raise ValueError(f"date {text.strip()!r} is not {_ORDER_NAMES[order]}")
        month, day = (int(first), int(second)) if order == "mdy" else (int(second), int(first))
        year = int(third) if third is not None else None
    year = full_year(year) if year is not None else None
    try:
        date(year or 2000, month, day)  # 2000 is a leap year: 02/29 without a year is still a date
    except ValueError:
        raise ValueError(f"date {text.strip()!r} is not a calendar date ({_ORDER_NAMES[order]})") from None
    return year, month, day


_ORDER_NAMES = {"mdy": "month/day[/year]", "dmy": "day/month[/year]", "ymd": "year-month-day"}


def parse_clock(text: str, *, twelve_hour_clock: bool = False) -> time:
    """A time of day from ``hh:mm``, ``hh:mm:ss``, ``10:03AM``, ``10:03 PM`` or ``10:03P``.

    An AM/PM mark always means a 12-hour clock; ``twelve_hour_clock`` says a reading without one is AM
    (Mitel prints ``P`` for PM and nothing for AM). Raises ValueError naming the text.
    """
    match = _CLOCK.fullmatch(text.strip())
    if not match:
        raise ValueError(f"time {text.strip()!r} is not hh:mm[:ss] with an optional AM/PM")
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    mark = (match.group(4) or "").upper()
    if mark or twelve_hour_clock:
        hour = twelve_hour(hour, mark.startswith("P"))
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"time {text.strip()!r} is not a time of day")
    return time(hour, minute, second)


def resolve_start(year: int | None, month: int, day: int, clock: time, context: ParseContext) -> datetime:
    """The site-zone moment of a printed date and time, inferring the year when the record has none."""
    if year is None:
        return infer_year(month, day, clock, context)
    return localize(datetime.combine(date(year, month, day), clock), context.tz)


def start_of(moment: datetime, duration: int, time_is: TimeIs) -> datetime:
    """The call start from the printed moment: PBXs that print the END (Panasonic, Siemens, Avaya CM)
    need the duration taken off. Wall-clock arithmetic, as the PBX did it."""
    if time_is == "end" and isinstance(moment.tzinfo, ZoneInfo):
        return localize(moment.replace(tzinfo=None) - timedelta(seconds=duration), moment.tzinfo)
    if time_is == "end":  # a fixed-offset time: no wall clock to keep
        return moment - timedelta(seconds=duration)
    return moment


def moment_of(start: datetime, duration: int, time_is: TimeIs) -> datetime:
    """The inverse of ``start_of`` for formatters: the moment a PBX would print."""
    if time_is == "end":
        return start.replace(tzinfo=None) + timedelta(seconds=duration)
    return start.replace(tzinfo=None)


def from_epoch(seconds: int, tz: ZoneInfo) -> datetime:
    """A UTC epoch second (CUCM ``dateTimeOrigination``) as a site-zone time."""
    return datetime.fromtimestamp(seconds, tz=ZoneInfo("UTC")).astimezone(tz)


def from_utc_text(naive: datetime, tz: ZoneInfo) -> datetime:
    """A naive time the PBX printed in UTC (3CX, Asterisk ``usegmtime``) as a site-zone time."""
    return naive.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz)


def digits_of(text: str, keep: str = "*#") -> str:
    """The dialled characters of a number as printed: digits and ``keep``; separators, pauses and
    spaces go (``1-631-220-3707`` -> ``16312203707``, ``10222P1`` -> ``102221``)."""
    return "".join(char for char in text if char.isdigit() or char in keep)


def header_like(text: str, words: tuple[str, ...]) -> bool:
    """True when ``text`` holds at least two of the column titles ``words`` (a page or column header)."""
    upper = text.upper()
    return sum(word in upper for word in words) >= 2


def named_row(text: str, names: tuple[str, ...], *, optional: int = 0,
              delimiter: str = ",") -> dict[str, str]:
    """A CSV record as ``{field name: value}`` for a template of ``names`` (Asterisk, FreeSWITCH, 3CX
    write configurable field lists). The last ``optional`` names may be missing; extra trailing empty
    fields (3CX ends rows with a comma) are dropped. Raises ValueError for anything else."""
    try:
        row = next(csv.reader([text], delimiter=delimiter))
    except (csv.Error, StopIteration) as exc:
        raise ValueError(f"not valid CSV: {exc}") from None
    while len(row) > len(names) and row[-1] == "":
        row.pop()
    if not len(names) - optional <= len(row) <= len(names):
        expected = f"{len(names) - optional}-{len(names)}" if optional else str(len(names))
        raise ValueError(f"{len(row)} fields, expected {expected}")
    return {name: value.strip() for name, value in zip(names, row)}


def csv_line(values: list[str], *, quote_all: bool = False, delimiter: str = ",") -> str:
    """One CSV record (CR LF ended) as PBXs write them: minimal quoting, or every field quoted."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n",
               quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL).writerow(values)
    return out.getvalue()
