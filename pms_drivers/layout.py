"""Record layouts described in YAML, for the serial posting protocols that are not FIAS.

Source: fias.md §7 (other PMS / call-accounting protocols): a HOBIC-style call record is one text line of
fields (sequence, hotel id, date MM/DD, extension, time, duration, ``$ddd.cc``, number, type), as in
``0001 HTL 03/01 7110 10:54 0002 $003.47 805-688-1000 L``; STX/ETX/BCC posting protocols (TEL PMS/HX,
NEC NEAX, Avaya DEFINITY) carry fixed-width fields padded with spaces or zeros. Every site's PMS wants
them a little differently, so the layout is data:

```yaml
fields:
  - {name: sequence, width: 4, align: right, pad: "0"}
  - {name: literal, value: HTL}
  - {name: date, format: "%m/%d"}
  - {name: amount, prefix: "$", width: 6, align: right, pad: "0", decimals: 2}
```

``render`` turns a charge into text; ``parse`` (used by the simulated PMS) reads it back, by position
when every field has a width, otherwise by splitting on the separator. No I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Literal

from appliance.events import PostCharge

FieldName = Literal[
    "sequence", "room", "date", "time", "duration", "amount", "dialled", "trunk", "type", "text",
    "pulses", "literal",
]
DURATION_FORMATS = ("seconds", "minutes", "hhmmss", "hh:mm:ss", "mmss")
CALL_TYPES = {"international": "I", "national": "N", "local": "L", "mobile": "M", "premium": "P"}


@dataclass(frozen=True, kw_only=True)
class FieldSpec:
    """One field of a record layout."""

    name: FieldName
    width: int = 0
    """Pad (or cut) the value to this many characters; 0: as long as the value."""
    align: Literal["left", "right"] = "left"
    pad: str = " "
    """One padding character: a space, or "0" for zero-filled numbers."""
    value: str = ""
    """The text of a ``literal`` field (a hotel id, a record type such as ``PS``)."""
    format: str = ""
    """date / time: strftime (default %m/%d and %H:%M); duration: seconds, minutes (started ones,
    the default), hhmmss, hh:mm:ss or mmss; amount: point (default, with a decimal point) or implied."""
    decimals: int = 2
    """amount: decimals shown (or implied); the charge is rounded half away from zero if fewer."""
    prefix: str = ""
    """Text put before the value, inside the width (a currency sign: ``$003.47``)."""

    def __post_init__(self) -> None:
        if self.width < 0 or self.width > 200:
            raise ValueError(f"field {self.name}: width must be 0-200")
        if len(self.pad) != 1:
            raise ValueError(f"field {self.name}: pad must be one character")
        if self.name == "duration" and self.format and self.format not in DURATION_FORMATS:
            raise ValueError(f"field duration: format must be one of {', '.join(DURATION_FORMATS)}")
        if self.name == "amount" and self.format not in ("", "point", "implied"):
            raise ValueError("field amount: format must be point or implied")
        if not 0 <= self.decimals <= 6:
            raise ValueError(f"field {self.name}: decimals must be 0-6")
        if self.name in ("date", "time") and self.format:
            try:
                datetime(2025, 3, 14, 10, 15).strftime(self.format)
            except ValueError as exc:
                raise ValueError(f"field {self.name}: bad format {self.format!r}: {exc}") from None


def fixed_width(spec: FieldSpec) -> int:
    """The characters the field always takes: its width, a literal's length, or the length of a date or
    time format such as %y%m%d; 0 when it varies."""
    if spec.width:
        return spec.width
    if spec.name == "literal":
        return len(spec.prefix + spec.value)
    if spec.name in ("date", "time"):
        default = "%m/%d" if spec.name == "date" else "%H:%M"
        samples = {datetime(2025, m, d, h, 5, 7).strftime(spec.format or default)
                   for m, d, h in ((1, 1, 1), (12, 31, 23), (9, 9, 9))}
        if len(samples_len := {len(sample) for sample in samples}) == 1:
            return len(spec.prefix) + samples_len.pop()
    return 0


def field_text(spec: FieldSpec, charge: PostCharge, *, amount_exponent: int, tz: tzinfo | None) -> str:
    """The unpadded text of one field for ``charge`` (amount_minor has ``amount_exponent`` decimals)."""
    start = charge.start.astimezone(tz) if charge.start.tzinfo is not None and tz is not None else charge.start
    name = spec.name
    if name == "literal":
        return spec.value
    if name == "sequence":
        return str(charge.sequence % 10**spec.width) if spec.width else str(charge.sequence)
    if name == "room":
        return charge.room
    if name == "date":
        return start.strftime(spec.format or "%m/%d")
    if name == "time":
        return start.strftime(spec.format or "%H:%M")
    if name == "duration":
        return format_duration(charge.duration, spec.format or "minutes")
    if name == "amount":
        return format_amount(charge.amount_minor, amount_exponent, spec.decimals, spec.format or "point")
    if name == "dialled":
        return "".join(char for char in charge.dialled if char.isascii() and char.isdigit())
    if name == "trunk":
        return charge.trunk
    if name == "type":
        kind = charge.call_type
        return kind.upper() if len(kind) <= 1 else CALL_TYPES.get(kind.lower(), kind[:1].upper())
    if name == "text":
        return charge.text
    return str(charge.pulses)


def format_duration(seconds: int, style: str) -> str:
    seconds = max(seconds, 0)
    if style == "seconds":
        return str(seconds)
    if style == "minutes":
        return str(math.ceil(seconds / 60))  # started minutes, as call records bill them
    hours, rest = divmod(min(seconds, 99 * 3600 + 3599), 3600)
    minutes, secs = divmod(rest, 60)
    if style == "mmss":
        return f"{hours * 60 + minutes:02d}{secs:02d}"
    if style == "hh:mm:ss":
        return f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{hours:02d}{minutes:02d}{secs:02d}"


def format_amount(amount_minor: int, exponent: int, decimals: int, style: str) -> str:
    """``1275`` cents -> ``12.75`` (point) or ``1275`` (implied); negative amounts keep their ``-``."""
    value = (Decimal(amount_minor) / Decimal(10) ** exponent).quantize(
        Decimal(1) / Decimal(10) ** decimals, rounding="ROUND_HALF_UP"
    )
    sign, digits = ("-" if value < 0 else ""), abs(value)
    if style == "implied":
        return sign + str(int(digits * Decimal(10) ** decimals))
    return sign + f"{digits:.{decimals}f}"


def pad(spec: FieldSpec, text: str) -> str:
    if not spec.width:
        return spec.prefix + text
    if spec.align == "right" and spec.pad == "0":
        # Zero fill goes between the prefix and sign and the digits: $003.47, -0042.
        sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
        head = spec.prefix + sign
        return head + digits.rjust(spec.width - len(head), "0")[-max(spec.width - len(head), 0) :]
    text = spec.prefix + text
    if len(text) > spec.width:
        # Keep the end of numbers (the significant digits) and the start of text.
        return text[-spec.width :] if spec.align == "right" else text[: spec.width]
    return text.rjust(spec.width, spec.pad) if spec.align == "right" else text.ljust(spec.width, spec.pad)


def render(
    fields: tuple[FieldSpec, ...],
    charge: PostCharge,
    *,
    separator: str = "",
    amount_exponent: int = 2,
    tz: tzinfo | None = None,
    forbidden: str = "",
) -> str:
    """The record text for ``charge``. Characters in ``forbidden`` (framing bytes, the separator) and
    control characters are dropped from every value, so a value can never break the framing."""
    drop = set(forbidden) | ({separator} if len(separator) == 1 else set())
    parts = []
    for spec in fields:
        text = field_text(spec, charge, amount_exponent=amount_exponent, tz=tz)
        text = "".join(char for char in text if char >= " " and char != "\x7f" and char not in drop)
        parts.append(pad(spec, text))
    return separator.join(parts)


def parse(fields: tuple[FieldSpec, ...], text: str, *, separator: str = "") -> dict[str, str]:
    """Read a record back into ``{field name: text}`` (literals under ``literal``, stripped of padding
    and prefix). By position when every field has a width; else split on ``separator``."""
    widths = [fixed_width(spec) for spec in fields]
    if all(widths):
        values, position = [], 0
        for width in widths:
            values.append(text[position : position + width])
            position += width + len(separator)
    elif separator:
        values = text.split(separator, len(fields) - 1)
    else:
        raise ValueError("a layout without a separator needs a width on every field")
    out: dict[str, str] = {}
    for spec, value in zip(fields, values):
        value = value.strip(" ")
        if spec.prefix and value.startswith(spec.prefix):
            value = value[len(spec.prefix) :]
        out.setdefault(spec.name, value)
    return out
