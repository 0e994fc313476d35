"""The site's local calling table: which national-number prefixes are a local call from the hotel.

Sources: the NANP rate-centre model (a call is local or toll by the NPA-NXX of both ends; carriers and
sites such as localcallingguide.com publish, per exchange, the NPA-NXX codes that are local from it) and
peers.md S54/S60/S64 (call accounting that bills new local exchanges as long distance causes guest disputes,
so the table must be editable on site). libphonenumber cannot tell local from long distance.

The file is CSV with a header row, one prefix per line, in one of two shapes::

    npa,nxx,class          prefix,class
    212,555,local          20,local
    212,976,national       1134,national

``class`` is optional (``local`` when missing or empty) and may be ``local`` or ``national``, so a whole
area code can be local except a few exchanges. Prefixes are national numbers without the trunk prefix
(``20`` for London, not ``020``); a leading trunk prefix is dropped when the plan is built. Lines starting
with ``#`` are comments.
"""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path

CLASSES = ("local", "national")


class TableError(ValueError):
    """The table cannot be used; the message names the file and the line."""


def load_table(path: str | Path) -> dict[str, str]:
    """``prefix -> class`` from a CSV file; raises ``TableError`` naming the line of the first problem."""
    path = Path(path)
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise TableError(f"local calling table {path}: {exc.strerror}") from None
    # Cached by name, size and modification time: the configuration check and the daemon both load it.
    return dict(_load(str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _load(path: str, _mtime: int, _size: int) -> tuple[tuple[str, str], ...]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return tuple(parse_rows(csv.reader(handle), path))
    except OSError as exc:
        raise TableError(f"local calling table {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TableError(f"local calling table {path}: not UTF-8 text") from None


def parse_rows(rows, source: str = "table") -> list[tuple[str, str]]:
    """Check the rows (the first is the header) and return ``(prefix, class)`` pairs."""
    header: list[str] | None = None
    out: dict[str, str] = {}
    for line, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        cells = [cell.strip() for cell in row]
        if header is None:
            header = [cell.lower() for cell in cells]
            if not ({"npa", "nxx"} <= set(header) or "prefix" in header):
                raise TableError(f"{source} line {line}: the header must name 'npa' and 'nxx', or 'prefix'")
            continue
        record = dict(zip(header, cells))
        prefix = record.get("prefix") or (record.get("npa", "") + record.get("nxx", ""))
        if not prefix.isdigit():
            raise TableError(f"{source} line {line}: {prefix!r} is not a number prefix")
        call_class = (record.get("class") or "local").lower()
        if call_class not in CLASSES:
            raise TableError(f"{source} line {line}: class {call_class!r} must be local or national")
        if prefix in out and out[prefix] != call_class:
            raise TableError(f"{source} line {line}: prefix {prefix} is listed as both local and national")
        out[prefix] = call_class
    if header is None:
        raise TableError(f"{source}: the file is empty (it needs a header row)")
    return list(out.items())
