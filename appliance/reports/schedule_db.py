"""The report schedules in the database (table ``report_schedules``, schema 0005).

The web admin edits the schedules (admin only, every change audited with the values before and after);
the daemon's report scheduler reads them and writes, per schedule, the due time of the last delivered run
(``last_run_due``), when it was sent (``last_run_at``) and the last failure (``last_error``). The two
processes share only the database, so the daemon notices an edit by ``ScheduleTable.stamp()`` (number of
rows and the latest ``updated_at``) on a periodic tick; recording a run does not change ``updated_at``.

Schedules used to live in a JSON file (``reports.schedule_file``, appliance/reports/schedule_store.py).
``import_file`` copies that file into the table once per database, whichever process gets there first:
its schedules replace the untouched defaults that schema 0005 created, keep their last runs (so the
missed-run catch-up carries on), and the import is written to the audit log, which is also what marks it
done. The file itself is left in place and no longer read.

Nothing here reads the clock or imports Twisted: callers pass ``now``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from appliance import audit
from appliance.db.models import AuditEntry, ReportSchedule
from appliance.reports import schedule_store
from appliance.reports.schedule_store import ScheduleDefinition

SEED_USER = "schema 0005"
IMPORT_ACTION = "report_schedule.import"
DAEMON = "daemon"


def definition(row: ReportSchedule) -> ScheduleDefinition:
    return ScheduleDefinition(name=row.name, kind=row.kind,  # type: ignore[arg-type]
                              recipients=tuple(row.recipients or ()), hour=row.hour, minute=row.minute,
                              day_of_week=row.day_of_week, day_of_month=row.day_of_month,
                              formats=tuple(row.formats or ()), enabled=row.enabled)


def as_dict(value: ScheduleDefinition | ReportSchedule) -> dict[str, Any]:
    """The editable fields, for the audit log's before and after."""
    item = definition(value) if isinstance(value, ReportSchedule) else value
    return {"name": item.name, "kind": item.kind, "hour": item.hour, "minute": item.minute,
            "day_of_week": item.day_of_week, "day_of_month": item.day_of_month, "formats": list(item.formats),
            "recipients": list(item.recipients), "enabled": item.enabled}


def rows(session: Session) -> list[ReportSchedule]:
    return list(session.scalars(select(ReportSchedule).order_by(ReportSchedule.name)))


def _apply(row: ReportSchedule, item: ScheduleDefinition) -> None:
    row.name, row.kind, row.hour, row.minute = item.name, item.kind, item.hour, item.minute
    row.day_of_week, row.day_of_month = item.day_of_week, item.day_of_month
    row.formats, row.recipients, row.enabled = list(item.formats), list(item.recipients), item.enabled


def create(session: Session, item: ScheduleDefinition, *, user: str, now: datetime) -> ReportSchedule:
    row = ReportSchedule(created_at=now, created_by=user, updated_at=now, updated_by=user, last_error="")
    _apply(row, item)
    session.add(row)
    session.flush()
    audit.record(session, user, "report_schedule.create", f"report_schedule:{row.id}", after=as_dict(item),
                 at=now)
    return row


def update(session: Session, row: ReportSchedule, item: ScheduleDefinition, *, user: str,
           now: datetime) -> bool:
    """Change a schedule; False (and no audit entry) when nothing changed. Its last run is kept, so an
    edited schedule neither repeats today's report nor catches up on the past."""
    before = as_dict(row)
    after = as_dict(item)
    if before == after:
        return False
    _apply(row, item)
    row.updated_at, row.updated_by = now, user
    audit.record(session, user, "report_schedule.update", f"report_schedule:{row.id}", before=before,
                 after=after, at=now)
    return True


def remove(session: Session, row: ReportSchedule, *, user: str, now: datetime) -> None:
    audit.record(session, user, "report_schedule.delete", f"report_schedule:{row.id}", before=as_dict(row),
                 at=now)
    session.delete(row)


def import_file(session: Session, path: str | os.PathLike[str], *, now: datetime) -> int | None:
    """Copy the JSON schedule file into the table, once per database (module docstring). Returns the
    number of schedules imported, or None when there is nothing to do (no file, or imported already).
    The caller commits; a concurrent import by the other process fails on the unique name and is rolled
    back by the caller (``import_once``)."""
    if not Path(path).exists():
        return None
    if session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == IMPORT_ACTION)):
        return None
    store = schedule_store.load(path)  # raises ValueError naming the file when it does not parse
    untouched = select(ReportSchedule.name).where(ReportSchedule.created_by == SEED_USER,
                                                  ReportSchedule.updated_by == SEED_USER)
    seeded = set(session.scalars(untouched))
    session.execute(delete(ReportSchedule).where(ReportSchedule.name.in_(seeded)))
    existing = set(session.scalars(select(ReportSchedule.name)))
    imported = []
    for item in store.schedules:
        if item.name in existing:  # edited in the web admin already: the table wins
            continue
        row = ReportSchedule(created_at=now, created_by="import", updated_at=now, updated_by="import",
                             last_error="", last_run_due=store.last_runs.get(item.name))
        _apply(row, item)
        session.add(row)
        imported.append(as_dict(item))
    audit.record(session, DAEMON, IMPORT_ACTION, f"file:{str(path)[:100]}",
                 before={"defaults_replaced": sorted(seeded)}, after={"schedules": imported}, at=now)
    session.flush()
    return len(imported)


def import_once(sessions: Callable[[], Any], path: str | os.PathLike[str], now: datetime) -> int | None:
    """``import_file`` in its own transaction; losing the race to the other process is not an error."""
    try:
        with sessions.begin() as session:  # type: ignore[attr-defined]
            return import_file(session, path, now=now)
    except IntegrityError:
        return None


class ScheduleTable:
    """The schedule store the report runner uses: reads definitions and last runs, writes run results.
    Each call is one short transaction on a session from ``sessions`` (the runner's own connections)."""

    def __init__(self, sessions: Any) -> None:
        self._sessions = sessions

    def schedules(self) -> tuple[ScheduleDefinition, ...]:
        with self._sessions() as session:
            return tuple(definition(row) for row in rows(session))

    def last_runs(self) -> dict[str, datetime]:
        with self._sessions() as session:
            found = session.execute(select(ReportSchedule.name, ReportSchedule.last_run_due)
                                    .where(ReportSchedule.last_run_due.is_not(None)))
            return {name: due for name, due in found}

    def record_run(self, name: str, due: datetime, now: datetime | None = None) -> None:
        """``name``'s run due at ``due`` was delivered (``now``: when; None for a baseline)."""
        if due.tzinfo is None:
            raise ValueError("due must be an aware datetime")
        with self._sessions.begin() as session:
            row = session.scalar(select(ReportSchedule).where(ReportSchedule.name == name))
            if row is None:
                return
            row.last_run_due = due
            if now is not None:
                row.last_run_at = row.last_attempt_at = now
                row.last_error = ""

    def record_failure(self, name: str, error: str, now: datetime) -> None:
        with self._sessions.begin() as session:
            row = session.scalar(select(ReportSchedule).where(ReportSchedule.name == name))
            if row is not None:
                row.last_attempt_at, row.last_error = now, error[:300]

    def stamp(self) -> tuple[int, datetime | None]:
        """Changes when a schedule is added, edited or removed (not when a run is recorded)."""
        with self._sessions() as session:
            count, latest = session.execute(select(func.count(ReportSchedule.id),
                                                   func.max(ReportSchedule.updated_at))).one()
            return int(count), latest
