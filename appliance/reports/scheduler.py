"""When scheduled reports are due, and running them: no Twisted and no clock of its own.

Every decision takes ``now`` from the caller. APScheduler (3.x) only supplies the wake-ups: one
``CronTrigger`` job per schedule, ``coalesce=True`` (several missed fire times become one run) and a
``misfire_grace_time`` (a wake-up delayed by a busy or suspended process still runs). A wake-up does not
send blindly: it calls ``run_due(now, name)``, which sends only when the last due time is after the last
delivered run recorded in the store. That record is what makes a run missed while the appliance was off
run once when it comes back: at start, ``run_due(now)`` looks at every schedule, finds its last due time
(the latest fire time of its trigger at or before ``now``) and, if no run at or after it was delivered,
runs it once, for that latest due time only (coalesced).

A schedule seen for the first time (no last run) does not catch up on the past: its last due time is
recorded as its baseline, so adding a schedule at 10:00 does not send this morning's 06:00 report.
A failed send is not recorded as a run (its error is, for the web admin) and is tried again at the next
wake-up or start.

The schedules and their last runs come from a store: ``schedule_db.ScheduleTable`` (the
``report_schedules`` table the web admin edits).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.orm import Session

from appliance.reports.bundles import Attachment, ReportOptions, build_bundle, period_for
from appliance.reports.schedule_store import ScheduleDefinition

MISFIRE_GRACE = 3600  # seconds; later than this, the start-up catch-up (run_due) takes over
LOOKBACK = {"daily": timedelta(days=2), "weekly": timedelta(days=8), "monthly": timedelta(days=32)}


class Store(Protocol):
    def schedules(self) -> tuple[ScheduleDefinition, ...]: ...
    def last_runs(self) -> dict[str, datetime]: ...
    def record_run(self, name: str, due: datetime, now: datetime | None = None) -> None: ...
    def record_failure(self, name: str, error: str, now: datetime) -> None: ...


class Sender(Protocol):
    def __call__(self, recipients: Sequence[str], subject: str, body: str,
                 attachments: list[Attachment]) -> None: ...


def trigger_for(definition: ScheduleDefinition, tz: ZoneInfo) -> CronTrigger:
    if definition.kind == "daily":
        return CronTrigger(hour=definition.hour, minute=definition.minute, timezone=tz)
    if definition.kind == "weekly":
        return CronTrigger(day_of_week=definition.day_of_week, hour=definition.hour, minute=definition.minute,
                           timezone=tz)
    return CronTrigger(day=definition.day_of_month, hour=definition.hour, minute=definition.minute, timezone=tz)


def last_due(definition: ScheduleDefinition, tz: ZoneInfo, now: datetime) -> datetime | None:
    """The latest fire time of the schedule at or before ``now`` (aware)."""
    trigger = trigger_for(definition, tz)
    moment = trigger.get_next_fire_time(None, now - LOOKBACK[definition.kind])
    latest = None
    while moment is not None and moment <= now:
        latest = moment
        moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
    return latest


@dataclass(frozen=True, kw_only=True)
class RunResult:
    name: str
    due: datetime
    sent: bool
    error: str = ""


class ReportRunner:
    """Decides and runs scheduled deliveries. ``store`` holds the schedules and their last runs;
    ``sessions`` opens a read session (reports run on their own connection, not the daemon's database
    thread, so a long monthly report never delays a posting); ``send`` delivers
    (``appliance.reports.mail.SmtpSender`` or a test double)."""

    def __init__(self, *, store: Store, sessions: Callable[[], Session], send: Sender,
                 options: ReportOptions) -> None:
        self.store = store
        self._sessions = sessions
        self._send = send
        self.options = options

    def schedules(self) -> tuple[ScheduleDefinition, ...]:
        return self.store.schedules()

    def due_runs(self, now: datetime, name: str | None = None) -> list[tuple[ScheduleDefinition, datetime]]:
        """The runs to make at ``now``: at most one per schedule (coalesced), for its last due time.
        Records a baseline for schedules that never ran (module docstring)."""
        last_runs = self.store.last_runs()
        runs = []
        for definition in self.store.schedules():
            if (name is not None and definition.name != name) or not definition.active:
                continue
            due = last_due(definition, self.options.tz, now)
            if due is None:
                continue
            previous = last_runs.get(definition.name)
            if previous is None:
                self.store.record_run(definition.name, due)
            elif previous < due and not self._same_period(definition, previous, due):
                runs.append((definition, due))
        return runs

    def _same_period(self, definition: ScheduleDefinition, previous: datetime, due: datetime) -> bool:
        """A schedule moved later in the day (or week, or month) after its run: the new due time reports
        on the period that was sent already, so it is not sent twice."""
        tz = self.options.tz
        return period_for(definition.kind, previous, tz).label == period_for(definition.kind, due, tz).label

    def run_due(self, now: datetime, name: str | None = None) -> list[RunResult]:
        """Run what is due (all schedules, or the one named); each run is recorded once it is sent."""
        results = []
        for definition, due in self.due_runs(now, name):
            results.append(self.run(definition, due, now))
        return results

    def run(self, definition: ScheduleDefinition, due: datetime, now: datetime) -> RunResult:
        try:
            with self._sessions() as session:
                subject, body, attachments = build_bundle(session, definition.kind, due, self.options,
                                                          definition.formats)
            self._send(list(definition.recipients), subject, body, attachments)
        except Exception as exc:  # noqa: BLE001 (any failure of one report or mail must not stop the others)
            error = f"{type(exc).__name__}: {exc}"
            self.store.record_failure(definition.name, error, now)
            return RunResult(name=definition.name, due=due, sent=False, error=error)
        self.store.record_run(definition.name, due, now)
        return RunResult(name=definition.name, due=due, sent=True)

    def add_jobs(self, scheduler: Any, wake: Callable[[str], Any]) -> None:
        """(Re)register one APScheduler job per active schedule; ``wake(name)`` is what a job calls (the
        service passes a function that runs ``run_due(now, name)`` off the reactor thread)."""
        wanted = {d.name: d for d in self.schedules() if d.active}
        for job in scheduler.get_jobs():
            if job.id.startswith("report:") and job.id[7:] not in wanted:
                job.remove()
        for name, definition in wanted.items():
            scheduler.add_job(wake, trigger_for(definition, self.options.tz), args=[name], id=f"report:{name}",
                              name=f"report {name}", replace_existing=True, coalesce=True,
                              misfire_grace_time=MISFIRE_GRACE, max_instances=1)
