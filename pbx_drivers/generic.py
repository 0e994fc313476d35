"""The ``generic`` PBX driver: a call-record format the installer describes in YAML.

For the many PBXs without a driver of their own (``/work/shared/reference/smdr.md`` §0 and §4: customised
Avaya CM layouts, Siemens, Alcatel, LG, ESI...): either fixed-width columns (1-based, inclusive start and
end) or CSV fields (1-based indexes, any delimiter and quote character), one record per line.

Example, a fixed-width format with a calling/called pair and no year::

    driver: generic
    options:
      format: fixed
      columns: {date: [1, 5], time: [7, 11], duration: [13, 20], extension: [22, 28], dialled: [30, 55]}
      date_format: "%m/%d"          # no %Y: the year is inferred from when the record arrived
      time_format: "%H:%M"
      duration_format: hms          # hh:mm:ss, hhhh:mm:ss, mm'ss; or seconds, or minutes (decimal)
      time_is: start                # or end: the PBX prints when the call ended
      skip: ["^ *DATE", "^-+$"]     # header and rule lines, ignored without quarantine
      trunk_pattern: "T\\d+"        # a trunk in the extension column: the call is incoming from it

Fields: date, time, datetime, duration, ring, extension, trunk, dialled, caller, account_code, call_id,
transfer, direction, answered. A start needs ``datetime`` or ``time`` (with ``date``, or alone: the date
is then inferred too); ``duration`` and ``extension`` are required.

Direction, first rule that applies: the ``direction`` field through ``direction_values``; the extension
column matching ``trunk_pattern`` (incoming: the trunk is that value, the extension is the ``dialled``
column); ``dialled`` no longer than ``internal_max_digits`` (internal); ``default_direction``.
``incoming_number_is_caller``: the number column holds the caller ID on incoming calls (Siemens, NEC SL
"DIALLED No./CLI", Panasonic ``<I>``), so it fills ``caller`` instead of ``dialled`` for them.
Answered (``answered_rule``): ``field`` through ``answered_values``, ``duration`` above zero, ``always``;
``auto`` is ``field`` when an answered field is mapped, else ``duration``.

The defaults describe a complete CSV (the appliance's own simple format, which ``format_record`` writes
for ``appliance simulate pbx``): datetime, duration, ring, extension, trunk, dialled, caller, direction
(O/I/L/T), answered (Y/N), account_code, call_id, transfer.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from appliance.drivers import DriverSpec, FramedLink, ParseContext
from appliance.events import CallRecord, Direction, Ignored
from appliance.framing import LineFramer
from pbx_drivers.common import (
    Encoding,
    decode,
    format_hms,
    infer_date,
    infer_year,
    localize,
    parse_duration,
)

FIELD_NAMES = (
    "date", "time", "datetime", "duration", "ring", "extension", "trunk", "dialled", "caller", "account_code",
    "call_id", "transfer", "direction", "answered",
)
TEXT_FIELDS = ("extension", "trunk", "dialled", "caller", "account_code", "call_id", "transfer")
DEFAULT_FIELDS = {
    "datetime": 1, "duration": 2, "ring": 3, "extension": 4, "trunk": 5, "dialled": 6, "caller": 7,
    "direction": 8, "answered": 9, "account_code": 10, "call_id": 11, "transfer": 12,
}
DEFAULT_DIRECTIONS: dict[str, Direction] = {"O": "outgoing", "I": "incoming", "L": "internal", "T": "tandem"}
Amount = Literal["hms", "seconds", "minutes"]
_SAMPLE = datetime(2000, 2, 29, 23, 58, 59)  # a leap day and a PM hour, to prove a format round-trips


@dataclass(frozen=True, kw_only=True)
class GenericOptions:
    """The installer's description of the format (see the module docstring); the defaults read and write
    the appliance's own CSV. ``fields`` is used when ``format`` is csv, ``columns`` when it is fixed."""

    format: Literal["csv", "fixed"] = "csv"
    fields: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_FIELDS))
    columns: dict[str, tuple[int, ...]] = field(default_factory=dict)
    delimiter: str = ","
    quotechar: str = '"'
    date_format: str = "%Y-%m-%d"
    time_format: str = "%H:%M:%S"
    datetime_format: str = "%Y-%m-%d %H:%M:%S"
    duration_format: Amount = "seconds"
    ring_format: Amount = "seconds"
    time_is: Literal["start", "end"] = "start"
    skip: tuple[str, ...] = ()
    min_length: int = 0
    direction_values: dict[str, Direction] = field(default_factory=lambda: dict(DEFAULT_DIRECTIONS))
    trunk_pattern: str = ""
    internal_max_digits: int = 0
    incoming_number_is_caller: bool = False
    default_direction: Direction = "outgoing"
    answered_values: dict[str, bool] = field(default_factory=lambda: {"Y": True, "N": False})
    answered_rule: Literal["auto", "field", "duration", "always"] = "auto"
    encoding: Encoding = "ascii"
    max_length: int = 1024

    def __post_init__(self) -> None:
        names = self.fields if self.format == "csv" else self.columns
        key = "fields" if self.format == "csv" else "columns"
        for name in names:
            if name not in FIELD_NAMES:
                raise ValueError(f"{key}: {name!r} is not a field; use {', '.join(FIELD_NAMES)}")
        if self.format == "csv":
            if any(index < 1 for index in self.fields.values()):
                raise ValueError("fields: indexes count from 1")
            if len(self.delimiter) != 1 or len(self.quotechar) != 1:
                raise ValueError("delimiter and quotechar must be one character each")
        for name, span in self.columns.items():
            if len(span) != 2 or not 1 <= span[0] <= span[1]:
                raise ValueError(f"columns: {name} needs [start, end], 1 <= start <= end, got {list(span)}")
        if "datetime" not in names and "time" not in names:
            raise ValueError(f"{key}: map datetime, or time (and date), so calls have a start")
        for required in ("duration", "extension"):
            if required not in names:
                raise ValueError(f"{key}: map {required}")
        if self.answered_rule == "field" and "answered" not in names:
            raise ValueError("answered_rule field needs an answered field mapped")
        for pattern in (*self.skip, self.trunk_pattern):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"regular expression {pattern!r}: {exc}") from None
        formats = {"date": self.date_format, "time": self.time_format, "datetime": self.datetime_format}
        for name, fmt in formats.items():
            if name in names:
                try:
                    _strptime(_SAMPLE.strftime(fmt), fmt)
                except ValueError:
                    raise ValueError(f"{name}_format {fmt!r} does not read back what it writes") from None
        if self.min_length < 0 or not 16 <= self.max_length <= 65536:
            raise ValueError("min_length must be >= 0 and max_length between 16 and 65536")

    def layout(self) -> dict[str, int] | dict[str, tuple[int, ...]]:
        return self.fields if self.format == "csv" else self.columns


def parse_record(raw: bytes, options: GenericOptions, context: ParseContext) -> CallRecord | Ignored:
    """One record line -> a call, or Ignored with the reason. Never raises."""
    text = decode(raw, options.encoding)
    if not text.strip():
        return Ignored(reason="blank line", raw=raw, quarantine=False)
    for pattern in options.skip:
        if re.search(pattern, text):
            return Ignored(reason=f"matches skip pattern {pattern!r}", raw=raw, quarantine=False)
    if len(text) < options.min_length:
        return Ignored(reason=f"shorter than min_length {options.min_length}", raw=raw, quarantine=False)
    try:
        return _build(_values(text, options), raw, options, context)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)


def _values(text: str, options: GenericOptions) -> dict[str, str]:
    if options.format == "fixed":
        line = text.ljust(max(end for _, end in options.columns.values()))
        return {name: line[start - 1:end].strip() for name, (start, end) in options.columns.items()}
    try:
        row = next(csv.reader([text], delimiter=options.delimiter, quotechar=options.quotechar))
    except csv.Error as exc:
        raise ValueError(f"not valid CSV: {exc}") from None
    values = {}
    for name, index in options.fields.items():
        if index > len(row):
            raise ValueError(f"{len(row)} fields, but {name} is field {index}")
        values[name] = row[index - 1].strip()
    return values


def _build(values: dict[str, str], raw: bytes, options: GenericOptions, context: ParseContext) -> CallRecord:
    duration = _amount(values["duration"], options.duration_format, "duration") or 0
    moment = _moment(values, options, context)
    start = moment - timedelta(seconds=duration) if options.time_is == "end" else moment
    text = {name: values.get(name, "") for name in TEXT_FIELDS}
    direction: Direction | None = None
    if "direction" in values:
        if values["direction"] not in options.direction_values:
            known = ", ".join(repr(key) for key in options.direction_values)
            raise ValueError(f"direction {values['direction']!r} is not one of {known}")
        direction = options.direction_values[values["direction"]]
    if direction is None and options.trunk_pattern and re.fullmatch(options.trunk_pattern, text["extension"]):
        direction = "incoming"
        text["trunk"] = text["trunk"] or text["extension"]
        text["extension"], text["dialled"] = text["dialled"], ""
    if direction is None and 0 < len(text["dialled"]) <= options.internal_max_digits:
        direction = "internal"
    direction = direction or options.default_direction
    if direction == "incoming" and options.incoming_number_is_caller:
        text["caller"], text["dialled"] = text["dialled"], ""
    return CallRecord(
        start=start,
        duration=duration,
        ring=_amount(values.get("ring", ""), options.ring_format, "ring"),
        direction=direction,
        answered=_answered(values, duration, options),
        raw=raw,
        **text,
    )


def _moment(values: dict[str, str], options: GenericOptions, context: ParseContext) -> datetime:
    """The printed date and time (start or end) in the site zone, inferring what the format leaves out."""
    if "datetime" in values:
        naive, has_year = _strptime(values["datetime"], options.datetime_format)
    else:
        clock = _strptime(values["time"], options.time_format)[0].time()
        if "date" not in values:
            return infer_date(clock, context)
        day, has_year = _strptime(values["date"], options.date_format)
        naive = datetime.combine(day.date(), clock)
    if has_year:
        return localize(naive, context.tz)
    return infer_year(naive.month, naive.day, naive.time(), context)


def _strptime(text: str, fmt: str) -> tuple[datetime, bool]:
    """``strptime`` that also reads a bare A/P for ``%p`` (``10:03P``) and ``02/29`` without a year."""
    if "%p" in fmt and text[-1:] in ("A", "P", "a", "p"):
        text += "M"
    has_year = "%Y" in fmt or "%y" in fmt
    try:
        if has_year:
            return datetime.strptime(text, fmt), True
        # Parse in a leap year so 29 February is accepted; the caller infers the real year.
        return datetime.strptime(f"{text}|2000", f"{fmt}|%Y"), False
    except ValueError:
        raise ValueError(f"{text!r} does not match the format {fmt!r}") from None


def _amount(text: str, kind: Amount, name: str) -> int | None:
    if not text:
        return None
    if kind == "hms":
        return parse_duration(text)
    try:
        return round(float(text) * 60) if kind == "minutes" else int(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number of {kind}") from None


def _answered(values: dict[str, str], duration: int, options: GenericOptions) -> bool:
    rule = options.answered_rule
    if rule == "auto":
        rule = "field" if "answered" in values else "duration"
    if rule == "always":
        return True
    if rule == "duration":
        return duration > 0
    if values["answered"] not in options.answered_values:
        known = ", ".join(repr(key) for key in options.answered_values)
        raise ValueError(f"answered {values['answered']!r} is not one of {known}")
    return options.answered_values[values["answered"]]


def format_record(call: CallRecord, options: GenericOptions) -> bytes:
    """One line in the configured format (the inverse of ``parse_record``), start in its own wall time.

    Raises ValueError for what the format cannot say: a direction or answered value with no code in the
    options, or a value wider than its columns.
    """
    layout = options.layout()
    moment = call.start + timedelta(seconds=call.duration) if options.time_is == "end" else call.start
    values = {name: getattr(call, name) for name in TEXT_FIELDS}
    values["datetime"] = moment.strftime(options.datetime_format)
    values["date"] = moment.strftime(options.date_format)
    values["time"] = moment.strftime(options.time_format)
    values["duration"] = _format_amount(call.duration, options.duration_format)
    values["ring"] = "" if call.ring is None else _format_amount(call.ring, options.ring_format)
    if "direction" in layout:
        values["direction"] = _code(options.direction_values, call.direction, "direction")
    elif options.trunk_pattern and call.direction == "incoming":
        values["extension"], values["dialled"] = call.trunk, call.extension
    if options.incoming_number_is_caller and call.direction == "incoming":
        values["dialled"] = call.caller
    if "answered" in layout:
        values["answered"] = _code(options.answered_values, call.answered, "answered")
    if options.format == "csv":
        row = [""] * max(options.fields.values())
        for name, index in options.fields.items():
            row[index - 1] = values[name]
        out = io.StringIO()
        csv.writer(out, delimiter=options.delimiter, quotechar=options.quotechar,
                   lineterminator="\r\n").writerow(row)
        return out.getvalue().encode(options.encoding, errors="replace")
    line = [" "] * max(end for _, end in options.columns.values())
    for name, (start, end) in options.columns.items():
        if len(values[name]) > end - start + 1:
            raise ValueError(f"{name} {values[name]!r} is wider than columns {start}-{end}")
        line[start - 1:end] = values[name].ljust(end - start + 1)
    return ("".join(line) + "\r\n").encode(options.encoding, errors="replace")


def _format_amount(seconds: int, kind: Amount) -> str:
    if kind == "hms":
        return format_hms(seconds)
    return f"{seconds / 60:.1f}" if kind == "minutes" else str(seconds)


def _code(mapping: dict[str, object], value: object, name: str) -> str:
    for code, meaning in mapping.items():
        if meaning == value:
            return code
    raise ValueError(f"{name} {value!r} has no code in {name}_values")


SPEC = DriverSpec(
    name="generic",
    kind="pbx",
    options=GenericOptions,
    make_link=lambda options: FramedLink(LineFramer(max_length=options.max_length)),
    transports=frozenset({"serial", "tcp-client", "tcp-server", "file"}),
    parse_record=parse_record,
    format_record=format_record,
    default_port=None,  # the installer's PBX decides
    description="Any one-line-per-call SMDR/CDR format described in YAML (fixed-width columns or CSV fields)",
)
