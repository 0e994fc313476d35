"""The extension directory: which extension is a guest phone in which room, a lobby or an admin phone.

The ``extensions`` table is the source of truth (docs/design.md, "Extensions"). The configuration file's
``extensions:`` ranges *seed* it: when the table is empty (a new install, a new database) the daemon fills it
from the file at start, and ``appliance extensions import`` replaces it from the file or a CSV on purpose.
After that, the web admin edits single rows (a phone moved, a room renumbered) and the daemon routes the
next call with the edit: ``ExtensionDirectory`` re-reads the table at most every ``RELOAD_SECONDS``.

Why not the file: the front desk and property IT change extensions without shell access, and a file the
daemon rewrote the table from at every start silently undid their audited edits.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from appliance.config import CATEGORIES, ApplianceConfig
from appliance.db.models import Extension

RELOAD_SECONDS = 5.0
UNKNOWN = ("unknown", "")
CSV_COLUMNS = ("extension", "category", "room", "description")


@dataclass(frozen=True, slots=True)
class ExtensionRow:
    number: str
    category: str
    room: str = ""
    description: str = ""


class ExtensionDirectory:
    """``extension -> (category, room)`` from the table, refreshed when due; ``get`` never touches the database.

    While the table is empty (or not read yet) the ``fallback`` answers: the configuration's ranges, which
    the daemon's start seeds into an empty table anyway (``seed_if_empty``)."""

    def __init__(self, fallback: dict[str, tuple[str, str]] | None = None) -> None:
        self._fallback: dict[str, tuple[str, str]] = dict(fallback or {})
        self._table: dict[str, tuple[str, str]] = {}
        self._map = self._fallback
        self._loaded_at: datetime | None = None

    def get(self, number: str, default: tuple[str, str] = UNKNOWN) -> tuple[str, str]:
        return self._map.get(number, default)

    def __len__(self) -> int:
        """Extensions in the table as last read (the fallback does not count)."""
        return len(self._table)

    def load(self, session: Session, now: datetime) -> None:
        self._table = {number: (category, room) for number, category, room in
                       session.execute(select(Extension.number, Extension.category, Extension.room))}
        self._map = self._table or self._fallback
        self._loaded_at = now

    def refresh_if_due(self, session: Session, now: datetime) -> None:
        if self._loaded_at is None or (now - self._loaded_at).total_seconds() >= RELOAD_SECONDS \
                or now < self._loaded_at:
            self.load(session, now)


def rows_from_config(config: ApplianceConfig) -> list[ExtensionRow]:
    return [ExtensionRow(number, category, room) for number, (category, room) in config.extension_map().items()]


def rows_from_csv(text: str) -> list[ExtensionRow]:
    """``extension,category,room,description`` with a header line; raises ValueError naming the bad line."""
    reader = csv.DictReader(io.StringIO(text))
    missing = {"extension", "category"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"the CSV needs a header with {', '.join(CSV_COLUMNS)} (missing: {', '.join(sorted(missing))})")
    rows: list[ExtensionRow] = []
    seen: set[str] = set()
    for line, record in enumerate(reader, start=2):
        rows.append(check_row(ExtensionRow(
            number=(record.get("extension") or "").strip(), category=(record.get("category") or "").strip(),
            room=(record.get("room") or "").strip(), description=(record.get("description") or "").strip()),
            f"line {line}"))
        if rows[-1].number in seen:
            raise ValueError(f"line {line}: extension {rows[-1].number} is listed twice")
        seen.add(rows[-1].number)
    return rows


def check_row(row: ExtensionRow, where: str) -> ExtensionRow:
    if not row.number.isdigit() or len(row.number) > 32:
        raise ValueError(f"{where}: extension {row.number!r} must be digits (at most 32)")
    if row.category not in CATEGORIES:
        raise ValueError(f"{where}: category {row.category!r} is not one of {', '.join(CATEGORIES)}")
    if row.category == "guest" and not row.room:
        raise ValueError(f"{where}: guest extension {row.number} needs its room")
    if len(row.room) > 16 or len(row.description) > 100:
        raise ValueError(f"{where}: room is at most 16 characters, description at most 100")
    return row


def rows_to_csv(rows: Iterable[Extension]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow((row.number, row.category, row.room, row.description))
    return out.getvalue()


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Extension)) or 0


def replace_all(session: Session, rows: list[ExtensionRow]) -> dict[str, Any]:
    """The table becomes ``rows``; returns what changed, for the audit log."""
    before = {e.number: (e.category, e.room, e.description) for e in session.scalars(select(Extension))}
    after = {r.number: (r.category, r.room, r.description) for r in rows}
    session.execute(delete(Extension))
    session.add_all(Extension(number=r.number, category=r.category, room=r.room, description=r.description)
                    for r in rows)
    return {"added": len(after.keys() - before.keys()), "removed": len(before.keys() - after.keys()),
            "changed": sum(1 for n in after.keys() & before.keys() if after[n] != before[n]), "total": len(after)}


def seed_if_empty(session: Session, config: ApplianceConfig) -> int:
    """At daemon start: a new database gets the file's ranges; a table someone has edited is left alone."""
    if count(session):
        return 0
    rows = rows_from_config(config)
    replace_all(session, rows)
    return len(rows)
