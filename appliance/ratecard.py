"""Rate cards: destination prefixes and their rates from a CSV or XLSX file (a carrier's rate deck).

Sources: the shape of carrier rate decks and of CGRateS ``Rates.csv`` / ``Destinations.csv`` (peers.md S2,
S3), CDRTool's destination table (S15); CGRateS #22/#35/#41 (rate decks of 12k-170k prefixes loading in
seconds to an hour) set the goal: 20,000 prefixes load in well under 2 s (``bench/rating.py``).

The first row names the columns (any order, case-insensitive); only ``prefix`` is required::

    prefix,name,connect,per_minute,first_block,increment,minimum,maximum,per_minute:offpeak
    44,United Kingdom,0.00,0.60,60,6,,,0.40
    447,United Kingdom mobile,0.00,0.90,60,6,,,

``prefix`` is E.164 digits (a leading ``+`` is dropped); empty cells take the defaults of a ``Rate``;
``per_minute:BAND`` and ``pulse_seconds:BAND`` columns give band prices; ``pulse_seconds`` / ``pulse_value``
make a pulse-based row. XLSX: the first worksheet, same layout (openpyxl, read-only). Excel stores numbers
as binary floats, so numeric cells are read through their shortest text and rounded to 6 places; text
cells are exact. A prefix listed twice is an error, never "the last one wins".
"""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Iterable, Iterator
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from appliance.tariffs import RATE_PLACES, Rate, check_prefix

MONEY = ("connect", "per_minute", "pulse_value", "minimum", "maximum")
SECONDS = ("first_block", "increment", "pulse_seconds")
KNOWN = frozenset(("prefix", "name", "destination", *MONEY, *SECONDS))
_QUANTUM = Decimal(1).scaleb(-RATE_PLACES)


class RateCardError(ValueError):
    """The card cannot be used; the message names the file, the line and the column."""


def load_rate_card(path: str | Path) -> dict[str, Rate]:
    """``prefix -> Rate`` from a ``.csv`` or ``.xlsx`` file; raises ``RateCardError``."""
    path = Path(path)
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise RateCardError(f"{path}: {exc.strerror}") from None
    # Cached by name, size and time: checking the configuration and starting the daemon read it once.
    return dict(_load(str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _load(path: str, _mtime: int, _size: int) -> tuple[tuple[str, Rate], ...]:
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as handle:
                return tuple(parse_rows(csv.reader(handle), path).items())
        if suffix == ".xlsx":
            return tuple(parse_rows(_xlsx_rows(path), path).items())
    except OSError as exc:
        raise RateCardError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RateCardError(f"{path}: not UTF-8 text (save the CSV as UTF-8)") from None
    raise RateCardError(f"{path}: a rate card is a .csv or .xlsx file")


def _xlsx_rows(path: str) -> Iterator[list[Any]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several kinds for a file that is not a workbook
        raise RateCardError(f"{path}: not a readable XLSX workbook ({type(exc).__name__})") from None
    try:
        for row in book.worksheets[0].iter_rows(values_only=True):
            yield ["" if cell is None else cell for cell in row]
    finally:
        book.close()


def parse_rows(rows: Iterable[list[Any]], source: str = "rate card") -> dict[str, Rate]:
    """Check every row (the first non-empty one is the header) and build the rates."""
    header: list[str] | None = None
    first_line: dict[str, int] = {}
    out: dict[str, Rate] = {}
    for line, row in enumerate(rows, start=1):
        if not any(str(cell).strip() for cell in row):
            continue
        if header is None:
            header = [str(cell).strip().lower() for cell in row]
            _check_header(header, source)
            continue
        record = {key: cell for key, cell in zip(header, row) if key and str(cell).strip() != ""}
        where = f"{source} line {line}"
        prefix = str(record.get("prefix", "")).strip().lstrip("+")
        if isinstance(record.get("prefix"), float):
            raise RateCardError(f"{where}: prefix {record['prefix']!r} must be whole digits "
                                "(format the column as text)")
        try:
            check_prefix(prefix)
        except ValueError as exc:
            raise RateCardError(f"{where}: {exc}") from None
        if prefix in first_line:
            raise RateCardError(f"{where}: prefix {prefix} is already on line {first_line[prefix]}")
        first_line[prefix] = line
        out[prefix] = _rate(record, where)
    if header is None:
        raise RateCardError(f"{source}: the file is empty (it needs a header row naming the columns)")
    return out


def _check_header(header: list[str], source: str) -> None:
    if "prefix" not in header:
        raise RateCardError(f"{source}: the first row must name the columns, including 'prefix'")
    for name in header:
        base, _, band = name.partition(":")
        if name and name not in KNOWN and not (band and base in ("per_minute", "pulse_seconds")):
            raise RateCardError(f"{source}: unknown column {name!r}; known: {', '.join(sorted(KNOWN))}, "
                                "per_minute:BAND, pulse_seconds:BAND")


def _rate(record: dict[str, Any], where: str) -> Rate:
    values: dict[str, Any] = {"name": str(record.get("name") or record.get("destination") or "")}
    band_prices: dict[str, Decimal] = {}
    band_pulses: dict[str, int] = {}
    for key, cell in record.items():
        base, _, band = key.partition(":")
        if base in MONEY:
            target, name = (band_prices, band) if band else (values, base)
            target[name] = _amount(cell, f"{where}, column {key}")
        elif base in SECONDS:
            target_s, name = (band_pulses, band) if band else (values, base)
            target_s[name] = _seconds(cell, f"{where}, column {key}")
    try:
        return Rate(**values, band_per_minute=band_prices, band_pulse_seconds=band_pulses)
    except ValueError as exc:
        raise RateCardError(f"{where}: {exc}") from None


def _amount(cell: Any, where: str) -> Decimal:
    if isinstance(cell, bool):
        raise RateCardError(f"{where}: {cell!r} is not an amount")
    try:
        if isinstance(cell, float):
            # A binary float from a spreadsheet: 0.1 is stored as 0.1000000000000000055...; its shortest
            # text is "0.1", and sums computed in Excel (0.30000000000000004) round to what was meant.
            amount = Decimal(repr(cell)).quantize(_QUANTUM, rounding=ROUND_HALF_UP)
            return amount.quantize(Decimal(1)) if amount == amount.to_integral() else amount.normalize()
        return Decimal(str(cell).strip())
    except InvalidOperation:
        raise RateCardError(f"{where}: {cell!r} is not an amount") from None


def _seconds(cell: Any, where: str) -> int:
    if isinstance(cell, float) and cell.is_integer():
        return int(cell)
    if isinstance(cell, int) and not isinstance(cell, bool):
        return cell
    text = str(cell).strip()
    if text.isdigit():
        return int(text)
    raise RateCardError(f"{where}: {cell!r} is not a whole number of seconds")
