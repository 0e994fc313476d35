"""FIAS records: encode and decode one record, and the date, time, duration and amount field formats.

Source: Oracle Hospitality *HGBU-IFC8-FIAS Interface Specification* 2.20.23 (summarised in
``/work/shared/reference/fias.md``; section numbers below are that note's, page numbers the Spec's).

§1 Record layout (p.20-23): a record is a 2-character record id, ``|``, then fields, each a 2-character
field id directly followed by its value and ended by ``|`` (the last one included). Field ids are any two
printable characters (``P#``, ``G#``, ``A0``, ``S1``, ``$2``, ``+0``), fields come in any order, and the
same id may repeat (GC carries ``GS`` twice, p.47), so a record decodes into an ordered tuple of
``(id, value)`` pairs rather than a dict. A field id with no value means "empty" (``SF|``).

§1 Encoding: the code page is a site setting (cp850, cp1252, latin-1, utf-8). Data bytes must avoid
0x00-0x1F and 0x7F, and ``|`` is the separator, so ``encode`` strips those from values; PS clear text
(``CT``) is ANS 20 and is truncated to 20 characters.

§5 Formats: ``DA`` = YYMMDD, ``TI`` and ``DU`` = HHMMSS, ``TA`` = an integer in minor units with no
decimal point and a leading ``-`` for negatives (p.21, FAQ p.110).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from decimal import ROUND_HALF_UP, Decimal

from appliance.errors import ProtocolError

SEPARATOR = "|"
ENCODINGS = ("cp850", "cp1252", "latin-1", "utf-8")
"""The code pages sites use; any ASCII-compatible codec Python knows is accepted."""

# Field length limits applied on encode: (record id, field id) -> characters.
FIELD_LIMITS: dict[tuple[str, str], int] = {
    ("PS", "CT"): 20,  # Spec p.81: CT clear text, ANS 20 for PS
    ("PS", "DD"): 20,  # Spec p.81: DD dialled digits, N max 20
    ("LD", "V#"): 10,  # Spec p.26: V# vendor version, max 10
}

MAX_DURATION = 23 * 3600 + 59 * 60 + 59
"""The longest duration type T (HHMMSS) can express: 23:59:59."""


class MalformedRecordError(ProtocolError, ValueError):
    """A framed payload that is not a FIAS record; ``reason`` says why. The link turns it into ``Ignored``."""

    def __init__(self, reason: str, raw: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


@dataclass(frozen=True, slots=True)
class FiasRecord:
    """One FIAS record: its 2-character ``kind`` (record id) and its fields in wire order."""

    kind: str
    fields: tuple[tuple[str, str], ...] = ()

    def get(self, field_id: str, default: str = "") -> str:
        """The value of the first ``field_id`` field, or ``default`` when the record has none."""
        for key, value in self.fields:
            if key == field_id:
                return value
        return default

    def get_all(self, field_id: str) -> tuple[str, ...]:
        """Every value of a repeating field, in wire order."""
        return tuple(value for key, value in self.fields if key == field_id)

    def has(self, field_id: str) -> bool:
        """True when the field is present, even empty (the swap flag ``SF|`` carries no value)."""
        return any(key == field_id for key, _ in self.fields)

    def __str__(self) -> str:
        return self.kind + SEPARATOR + "".join(f"{key}{value}{SEPARATOR}" for key, value in self.fields)


def record(kind: str, *pairs: tuple[str, str | int | None]) -> FiasRecord:
    """Build a record from ``(id, value)`` pairs; a pair whose value is ``None`` is left out."""
    return FiasRecord(kind, tuple((key, str(value)) for key, value in pairs if value is not None))


def check_encoding(name: str) -> str:
    """Return the codec's canonical name, or raise ValueError if Python lacks it or it is not ASCII-based."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown encoding {name!r}; use one of {', '.join(ENCODINGS)}") from None
    probe = "LS|DA250314|P#1|"
    try:
        if probe.encode(info.name) != probe.encode("ascii"):
            raise ValueError(f"encoding {name!r} is not ASCII-compatible; use one of {', '.join(ENCODINGS)}")
    except UnicodeError:
        raise ValueError(f"encoding {name!r} cannot encode FIAS ids") from None
    return info.name


def _is_id_char(char: str) -> bool:
    # Ids are printable ASCII; the separator can never be part of one.
    return "\x21" <= char <= "\x7e" and char != SEPARATOR


def _check_id(text: str, what: str, raw: bytes) -> None:
    if len(text) != 2 or not all(_is_id_char(char) for char in text):
        raise MalformedRecordError(f"{what} {text!r} is not two printable characters", raw)


def decode(raw: bytes, encoding: str = "cp850") -> FiasRecord:
    """Decode one framed payload (without STX/ETX) into a record, or raise ``MalformedRecordError``.

    Undecodable bytes become U+FFFD rather than losing the record: a garbled guest name is better than
    a missed check-in. A missing final ``|`` and empty segments (``||``) are tolerated.
    """
    text = raw.decode(encoding, errors="replace")
    if len(text) < 2:
        raise MalformedRecordError("record shorter than its 2-character record id", raw)
    kind = text[:2]
    _check_id(kind, "record id", raw)
    rest = text[2:]
    if not rest:
        return FiasRecord(kind)
    if rest[0] != SEPARATOR:
        raise MalformedRecordError(f"record id {kind!r} is not followed by '|'", raw)
    fields = []
    for part in rest[1:].split(SEPARATOR):
        if not part:
            continue
        if len(part) < 2:
            raise MalformedRecordError(f"field {part!r} is shorter than its 2-character field id", raw)
        _check_id(part[:2], "field id", raw)
        fields.append((part[:2], part[2:]))
    return FiasRecord(kind, tuple(fields))


def clean_value(value: str) -> str:
    """Drop what may not appear inside a value: control characters 0x00-0x1F, 0x7F and the separator."""
    return "".join(char for char in value if char >= " " and char != "\x7f" and char != SEPARATOR)


def encode(rec: FiasRecord, encoding: str = "cp850") -> bytes:
    """Encode a record for the wire (without STX/ETX). Values are cleaned and length-limited;
    characters the code page lacks become ``?``. Bad record or field ids raise ValueError (a caller bug)."""
    if len(rec.kind) != 2 or not all(_is_id_char(char) for char in rec.kind):
        raise ValueError(f"record id {rec.kind!r} is not two printable characters")
    parts = [rec.kind, SEPARATOR]
    for key, value in rec.fields:
        if len(key) != 2 or not all(_is_id_char(char) for char in key):
            raise ValueError(f"field id {key!r} in {rec.kind} is not two printable characters")
        value = clean_value(value)
        limit = FIELD_LIMITS.get((rec.kind, key))
        if limit is not None:
            value = value[:limit]
        parts += [key, value, SEPARATOR]
    return "".join(parts).encode(encoding, errors="replace")


# ---------------------------------------------------------------- §5 date, time, duration, amount


def stamp(now: float, tz: tzinfo | None = None) -> datetime:
    """The wall-clock time for DA/TI of link records: ``now`` is seconds since the epoch (as
    ``reactor.seconds()`` gives), shown in ``tz`` or the system's local time. Never reads the clock."""
    try:
        return datetime.fromtimestamp(now, tz)
    except (OverflowError, OSError, ValueError):
        return datetime.fromtimestamp(0, tz)


def format_date(value: date | datetime) -> str:
    """``DA``: YYMMDD, two-digit year (Spec p.21, type D)."""
    return value.strftime("%y%m%d")


def format_time(value: time | datetime) -> str:
    """``TI``: HHMMSS (Spec p.21, type T)."""
    return value.strftime("%H%M%S")


def format_duration(seconds: int) -> str:
    """``DU``: a duration in type T, HHMMSS.

    Type T cannot express 24 hours or more (fias.md §5), so a longer call is clamped to 235959 rather
    than wrapping to a small number; the call record keeps the true duration.
    """
    if seconds < 0:
        raise ValueError(f"duration {seconds} s is negative")
    seconds = min(seconds, MAX_DURATION)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}{minutes:02d}{secs:02d}"


def parse_date(text: str) -> date:
    try:
        return datetime.strptime(text, "%y%m%d").date()
    except ValueError:
        raise ValueError(f"date {text!r} is not YYMMDD") from None


def parse_time(text: str) -> time:
    try:
        return datetime.strptime(text, "%H%M%S").time()
    except ValueError:
        raise ValueError(f"time {text!r} is not HHMMSS") from None


def parse_duration(text: str) -> int:
    if (
        len(text) != 6
        or not (text.isascii() and text.isdigit())
        or int(text[2:4]) > 59
        or int(text[4:6]) > 59
    ):
        raise ValueError(f"duration {text!r} is not HHMMSS")
    return int(text[:2]) * 3600 + int(text[2:4]) * 60 + int(text[4:6])


def format_amount(amount_minor: int, *, currency_exponent: int = 2, ta_exponent: int = 2) -> str:
    """``TA``: an integer with ``ta_exponent`` implied decimals, no decimal point, ``-`` when negative.

    ``amount_minor`` is in the currency's minor units (``currency_exponent`` decimals). FIAS wants two
    implied decimals by default, even for zero-decimal currencies, and three-decimal currencies sent
    as-is (FAQ p.110), so the site sets ``ta_exponent``. If TA carries fewer decimals than the currency,
    the amount is rounded half away from zero.
    """
    shift = ta_exponent - currency_exponent
    if shift >= 0:
        return str(amount_minor * 10**shift)
    scaled = (Decimal(amount_minor) / (Decimal(10) ** -shift)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return str(int(scaled))


def parse_amount(text: str, *, currency_exponent: int = 2, ta_exponent: int = 2) -> int:
    """The inverse of ``format_amount``: ``TA`` text to minor units (rounded half away from zero)."""
    body = text.removeprefix("-")
    if not (body.isascii() and body.isdigit()):
        raise ValueError(f"amount {text!r} is not an integer")
    value = int(text)
    shift = currency_exponent - ta_exponent
    if shift >= 0:
        return value * 10**shift
    scaled = (Decimal(value) / (Decimal(10) ** -shift)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(scaled)
