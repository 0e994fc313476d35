"""The JSON file report schedules were kept in before schema 0005 (``reports.schedule_file``).

The schedules now live in the ``report_schedules`` table (appliance/reports/schedule_db.py). This module
remains for two things: ``ScheduleDefinition`` and ``check``, the validated shape of a schedule that the
table, the scheduler and the web admin's form share; and ``load``, which ``schedule_db.import_file`` uses
to import an older installation's file once. ``save``, ``save_schedules`` and ``record_run`` write the
file format (atomically: temporary file + ``os.replace``) for tests and for a site that wants to hand an
installation a prepared file before its first start.

``last_runs`` holds, per schedule, the due time (UTC) of the last run that was delivered; the import
carries it into ``report_schedules.last_run_due`` so the missed-run catch-up continues.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

DEFAULT_PATH = "/var/lib/appliance/report-schedules.json"  # as ReportsConfig.schedule_file
KINDS = ("daily", "weekly", "monthly")
FORMATS = ("csv", "xlsx", "pdf")
EMAIL = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+")


@dataclass(frozen=True, kw_only=True)
class ScheduleDefinition:
    """One scheduled report. Times are local to the site; ``day_of_week`` is 0 = Monday (weekly only),
    ``day_of_month`` 1-28 (monthly only; 28 so every month has it). A schedule without recipients or not
    ``enabled`` does not run."""

    name: str
    kind: Literal["daily", "weekly", "monthly"]
    recipients: tuple[str, ...] = ()
    hour: int = 6
    minute: int = 0
    day_of_week: int = 0
    day_of_month: int = 1
    formats: tuple[str, ...] = FORMATS
    enabled: bool = True

    def __post_init__(self) -> None:
        problems = check(self)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.recipients)


def check(definition: ScheduleDefinition) -> list[str]:
    """Every problem with a definition, worded for the web admin form."""
    problems = []
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", definition.name):
        problems.append(f"name {definition.name!r}: use 1-32 letters, digits, '_', '.' or '-'")
    if definition.kind not in KINDS:
        problems.append(f"kind {definition.kind!r}: choose one of {', '.join(KINDS)}")
    if not 0 <= definition.hour <= 23 or not 0 <= definition.minute <= 59:
        problems.append(f"time {definition.hour}:{definition.minute:02d} is not a time of day")
    if not 0 <= definition.day_of_week <= 6:
        problems.append("day_of_week: 0 (Monday) to 6 (Sunday)")
    if not 1 <= definition.day_of_month <= 28:
        problems.append("day_of_month: 1 to 28, so that every month has the day")
    problems += [f"recipient {r!r} is not an email address" for r in definition.recipients if not EMAIL.fullmatch(r)]
    problems += [f"format {f!r}: choose from {', '.join(FORMATS)}" for f in definition.formats if f not in FORMATS]
    return problems


DEFAULT_SCHEDULES = (
    ScheduleDefinition(name="daily-summary", kind="daily", hour=6, minute=0),
    ScheduleDefinition(name="weekly-costs", kind="weekly", hour=6, minute=30, day_of_week=0),
    ScheduleDefinition(name="monthly-overview", kind="monthly", hour=7, minute=0, day_of_month=1),
)


@dataclass(frozen=True, kw_only=True)
class Store:
    schedules: tuple[ScheduleDefinition, ...] = DEFAULT_SCHEDULES
    last_runs: dict[str, datetime] = field(default_factory=dict)

    def get(self, name: str) -> ScheduleDefinition | None:
        return next((s for s in self.schedules if s.name == name), None)


def _definition(data: dict[str, Any]) -> ScheduleDefinition:
    known = {f for f in ScheduleDefinition.__dataclass_fields__}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown schedule keys: {', '.join(sorted(unknown))}")
    values = dict(data)
    for key in ("recipients", "formats"):
        if key in values:
            values[key] = tuple(values[key])
    return ScheduleDefinition(**values)


def load(path: str | os.PathLike[str]) -> Store:
    """The store at ``path``; the default schedules (no recipients, so nothing is sent) when there is no
    file yet. A file that does not parse raises ``ValueError`` naming the file."""
    file = Path(path)
    if not file.exists():
        return Store()
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        schedules = tuple(_definition(item) for item in data.get("schedules", []))
        last_runs = {name: datetime.fromisoformat(value) for name, value in data.get("last_runs", {}).items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{file}: {exc}") from None
    names = [s.name for s in schedules]
    if len(names) != len(set(names)):
        raise ValueError(f"{file}: two schedules have the same name")
    return Store(schedules=schedules, last_runs=last_runs)


def save(path: str | os.PathLike[str], store: Store) -> None:
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    data = {"schedules": [{**asdict(s), "recipients": list(s.recipients), "formats": list(s.formats)}
                          for s in store.schedules],
            "last_runs": {name: moment.isoformat() for name, moment in sorted(store.last_runs.items())}}
    handle, temporary = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_schedules(path: str | os.PathLike[str], schedules: list[ScheduleDefinition] | tuple[ScheduleDefinition, ...]) -> None:
    """Replace the schedules, keeping the last runs of the ones that remain (the web admin's save)."""
    current = load(path)
    names = {s.name for s in schedules}
    if len(names) != len(schedules):
        raise ValueError("two schedules have the same name")
    save(path, replace(current, schedules=tuple(schedules),
                       last_runs={k: v for k, v in current.last_runs.items() if k in names}))


def record_run(path: str | os.PathLike[str], name: str, due: datetime) -> None:
    """Remember that the run of ``name`` due at ``due`` (aware) was delivered."""
    if due.tzinfo is None:
        raise ValueError("due must be an aware datetime")
    current = load(path)
    save(path, replace(current, last_runs={**current.last_runs, name: due}))
