"""Scheduled delivery with explicit times: due runs fire once, a run missed while the appliance was off
runs once on start (coalesced), a failed send is tried again, and the APScheduler jobs are set up right.
The schedules live in the ``report_schedules`` table (schedule_db); the JSON file is imported once."""

from __future__ import annotations

import io
from datetime import timedelta, timezone

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from openpyxl import load_workbook
from twisted.internet.defer import maybeDeferred
from sqlalchemy import select
from twisted.internet.testing import MemoryReactorClock

from appliance.net.report_scheduler import ReportSchedulerService
from appliance.db.models import AuditEntry, ReportSchedule
from appliance.reports import schedule_db, schedule_store
from appliance.reports.bundles import ReportOptions, period_for
from appliance.reports.schedule_db import ScheduleTable
from appliance.reports.schedule_store import ScheduleDefinition, Store
from appliance.reports.scheduler import MISFIRE_GRACE, ReportRunner, last_due
from tests.reports.conftest import TZ, local

DAILY = ScheduleDefinition(name="daily-summary", kind="daily", recipients=("gm@hotel.example",), hour=6)
WEEKLY = ScheduleDefinition(name="weekly-costs", kind="weekly", recipients=("fin@hotel.example",), hour=6,
                            minute=30, day_of_week=0)
MONTHLY = ScheduleDefinition(name="monthly-overview", kind="monthly", recipients=("fin@hotel.example",),
                             hour=7, day_of_month=1)


class Outbox:
    """A ``send`` that keeps what it was given (and can be told to fail)."""

    def __init__(self) -> None:
        self.sent: list[tuple[list[str], str, str, list]] = []
        self.fail = False

    def __call__(self, recipients, subject, body, attachments) -> None:
        if self.fail:
            raise ConnectionRefusedError("smtp down")
        self.sent.append((list(recipients), subject, body, attachments))


EDITED = local("2024-02-01 12:00:00")


def set_schedules(sessions, *definitions: ScheduleDefinition) -> None:
    """What the web admin's editor does: the table holds exactly these schedules (audited)."""
    with sessions.begin() as session:
        current = {row.name: row for row in schedule_db.rows(session)}
        for item in definitions:
            if item.name in current:
                schedule_db.update(session, current.pop(item.name), item, user="ada", now=EDITED)
            else:
                schedule_db.create(session, item, user="ada", now=EDITED)
        for row in current.values():
            schedule_db.remove(session, row, user="ada", now=EDITED)


@pytest.fixture
def runner(seeded, sessions):
    set_schedules(sessions, DAILY, WEEKLY, MONTHLY)
    outbox = Outbox()
    runner = ReportRunner(store=ScheduleTable(sessions), sessions=sessions, send=outbox,
                          options=ReportOptions(tz=TZ, site_name="Test Hotel", trunk_count=4))
    runner.outbox = outbox  # type: ignore[attr-defined]
    return runner


def test_last_due() -> None:
    assert last_due(DAILY, TZ, local("2024-03-06 05:59:59")) == local("2024-03-05 06:00:00")
    assert last_due(DAILY, TZ, local("2024-03-06 06:00:00")) == local("2024-03-06 06:00:00")
    # 2024-03-04 was a Monday.
    assert last_due(WEEKLY, TZ, local("2024-03-10 12:00:00")) == local("2024-03-04 06:30:00")
    assert last_due(MONTHLY, TZ, local("2024-03-31 23:00:00")) == local("2024-03-01 07:00:00")
    # Across the change to summer time (2024-03-10), 06:00 stays 06:00 local.
    assert last_due(DAILY, TZ, local("2024-03-11 07:00:00")).utcoffset() == timedelta(hours=-4)


def test_periods_reported() -> None:
    assert period_for("daily", local("2024-03-06 06:00:00"), TZ).label == "2024-03-05"
    assert period_for("weekly", local("2024-03-11 06:30:00"), TZ).label == "2024-W10"   # 4-10 March
    assert period_for("monthly", local("2024-04-01 07:00:00"), TZ).label == "2024-03"
    assert period_for("monthly", local("2024-01-01 07:00:00"), TZ).label == "2023-12"


def test_a_new_schedule_records_a_baseline_and_sends_nothing(runner) -> None:
    assert runner.run_due(local("2024-03-06 10:00:00")) == []
    assert runner.outbox.sent == []
    assert runner.store.last_runs()["daily-summary"] == local("2024-03-06 06:00:00")


def test_a_due_run_fires_once(runner) -> None:
    runner.run_due(local("2024-03-05 10:00:00"))            # baseline: 2024-03-05 06:00
    assert runner.run_due(local("2024-03-06 05:59:00")) == []
    results = runner.run_due(local("2024-03-06 06:00:05"), "daily-summary")
    assert [(r.name, r.due, r.sent) for r in results] == [("daily-summary", local("2024-03-06 06:00:00"), True)]
    [(recipients, subject, body, attachments)] = runner.outbox.sent
    assert recipients == ["gm@hotel.example"]
    assert subject == "Test Hotel: Daily call summary 2024-03-05"
    assert [(name, mime.split(";")[0]) for name, _, mime in attachments] == [
        ("daily-2024-03-05.csv", "text/csv"),
        ("daily-2024-03-05.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("daily-2024-03-05.pdf", "application/pdf")]
    # The attachment is the seeded day: cost by extension totals 32.8856.
    assert "total 32.8856" in body
    sheet = load_workbook(io.BytesIO(attachments[1][1]))["Cost by extension"]
    assert [c.value for c in list(sheet.iter_rows())[-1]][-1] == pytest.approx(32.8856)
    assert runner.run_due(local("2024-03-06 06:30:00")) == []   # once only
    assert len(runner.outbox.sent) == 1


def test_missed_runs_run_once_on_start(runner) -> None:
    runner.run_due(local("2024-02-26 07:00:00"))             # baselines; then the appliance is off
    # Back on 2024-03-06 09:00: four daily runs (3rd-6th... and more) and one weekly run (Mon 4th) were
    # missed, and the monthly one of the 1st. Each schedule runs once, for its latest due time.
    results = runner.run_due(local("2024-03-06 09:00:00"))
    assert sorted((r.name, r.due) for r in results) == [
        ("daily-summary", local("2024-03-06 06:00:00")),
        ("monthly-overview", local("2024-03-01 07:00:00")),
        ("weekly-costs", local("2024-03-04 06:30:00")),
    ]
    assert sorted(s[1] for s in runner.outbox.sent) == [
        "Test Hotel: Daily call summary 2024-03-05", "Test Hotel: Monthly overview 2024-02",
        "Test Hotel: Weekly cost report 2024-W09"]
    assert runner.run_due(local("2024-03-06 09:01:00")) == []    # coalesced: not once per missed day


def test_a_failed_send_is_tried_again(runner) -> None:
    runner.run_due(local("2024-03-05 10:00:00"))
    runner.outbox.fail = True
    [result] = runner.run_due(local("2024-03-06 06:00:00"), "daily-summary")
    assert not result.sent and "smtp down" in result.error
    with runner._sessions() as session:  # the failure is kept for the web admin; the run is not recorded
        row = session.query(ReportSchedule).filter_by(name="daily-summary").one()
        assert (row.last_error, row.last_attempt_at, row.last_run_due) == (
            "ConnectionRefusedError: smtp down", local("2024-03-06 06:00:00"), local("2024-03-05 06:00:00"))
    runner.outbox.fail = False
    [result] = runner.run_due(local("2024-03-06 06:05:00"), "daily-summary")
    assert result.sent and result.due == local("2024-03-06 06:00:00")
    with runner._sessions() as session:
        row = session.query(ReportSchedule).filter_by(name="daily-summary").one()
        assert (row.last_error, row.last_run_at, row.last_run_due) == (
            "", local("2024-03-06 06:05:00"), local("2024-03-06 06:00:00"))


def test_a_schedule_moved_later_the_same_day_does_not_send_the_same_report_twice(runner, sessions) -> None:
    runner.run_due(local("2024-03-05 10:00:00"))
    assert [r.sent for r in runner.run_due(local("2024-03-06 06:00:00"), "daily-summary")] == [True]
    set_schedules(sessions, ScheduleDefinition(name="daily-summary", kind="daily",
                                               recipients=("gm@hotel.example",), hour=8), WEEKLY, MONTHLY)
    assert runner.run_due(local("2024-03-06 08:00:00"), "daily-summary") == []   # 2024-03-05 went at 06:00
    assert [r.due for r in runner.run_due(local("2024-03-07 08:00:00"), "daily-summary")] == [
        local("2024-03-07 08:00:00")]


def test_inactive_schedules_do_not_run(runner) -> None:
    set_schedules(runner._sessions,
                  ScheduleDefinition(name="daily-summary", kind="daily", recipients=(), hour=6),
                  ScheduleDefinition(name="weekly-costs", kind="weekly", recipients=("a@b.example",),
                                     enabled=False))
    assert runner.run_due(local("2024-03-06 10:00:00")) == []
    assert runner.store.last_runs() == {}


def test_apscheduler_jobs(runner) -> None:
    scheduler = BackgroundScheduler(timezone=TZ)
    scheduler.start(paused=True)
    try:
        runner.add_jobs(scheduler, lambda name: None)
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {"report:daily-summary", "report:weekly-costs", "report:monthly-overview"}
        job = jobs["report:daily-summary"]
        assert job.coalesce and job.misfire_grace_time == MISFIRE_GRACE and job.args == ("daily-summary",)
        fire = job.trigger.get_next_fire_time(None, local("2024-03-05 07:00:00"))
        assert fire == local("2024-03-06 06:00:00")
        # The web admin removes a schedule: the job goes at the next registration.
        set_schedules(runner._sessions, DAILY)
        runner.add_jobs(scheduler, lambda name: None)
        assert [job.id for job in scheduler.get_jobs()] == ["report:daily-summary"]
    finally:
        scheduler.shutdown(wait=False)


def test_service_catches_up_on_start(runner) -> None:
    runner.run_due(local("2024-03-04 10:00:00"))
    reactor = MemoryReactorClock()
    reactor.advance(local("2024-03-06 08:00:00").timestamp())
    scheduler = BackgroundScheduler(timezone=TZ)
    service = ReportSchedulerService(runner, reactor, scheduler=scheduler,
                                     run_in_thread=lambda f, *a: maybeDeferred(f, *a))
    service.startService()
    try:
        assert service.now() == local("2024-03-06 08:00:00").astimezone(timezone.utc)
        results = []
        service.catch_up.addCallback(results.append)
        assert [(r.name, r.sent) for r in results[0]] == [("daily-summary", True)]
        assert {job.id for job in scheduler.get_jobs()} >= {"report:daily-summary", "report-store-reload"}
        assert service.wake("daily-summary") == []      # the job firing late finds it already sent
    finally:
        service.stopService()


def test_store_round_trip_and_errors(tmp_path) -> None:
    path = tmp_path / "s.json"
    assert schedule_store.load(path).schedules == schedule_store.DEFAULT_SCHEDULES
    schedule_store.save_schedules(path, [DAILY, WEEKLY])
    schedule_store.record_run(path, "daily-summary", local("2024-03-06 06:00:00"))
    store = schedule_store.load(path)
    assert store.schedules == (DAILY, WEEKLY) and store.get("weekly-costs") == WEEKLY
    assert store.last_runs == {"daily-summary": local("2024-03-06 06:00:00")}
    schedule_store.save_schedules(path, [WEEKLY])   # removing a schedule drops its last run
    assert schedule_store.load(path).last_runs == {}
    with pytest.raises(ValueError, match="not an email address"):
        ScheduleDefinition(name="x", kind="daily", recipients=("nobody",))
    with pytest.raises(ValueError, match="day_of_month"):
        ScheduleDefinition(name="x", kind="monthly", day_of_month=31)
    path.write_text('{"schedules": [{"name": "x", "kind": "daily", "colour": "red"}]}')
    with pytest.raises(ValueError, match="unknown schedule keys: colour"):
        schedule_store.load(path)


def test_service_picks_up_an_edit_without_a_restart(runner, sessions) -> None:
    runner.run_due(local("2024-03-04 10:00:00"))
    reactor = MemoryReactorClock()
    reactor.advance(local("2024-03-05 10:00:00").timestamp())
    scheduler = BackgroundScheduler(timezone=TZ)
    service = ReportSchedulerService(runner, reactor, scheduler=scheduler,
                                     run_in_thread=lambda f, *a: maybeDeferred(f, *a))
    service.startService()
    try:
        service._reload()   # nothing changed: the jobs stay
        assert {job.id for job in scheduler.get_jobs()} == {
            "report:daily-summary", "report:weekly-costs", "report:monthly-overview", "report-store-reload"}
        night = ScheduleDefinition(name="night-audit", kind="daily", recipients=("na@hotel.example",), hour=3)
        set_schedules(sessions, DAILY, night)   # an admin adds one and removes two in the web admin
        service._reload()
        assert {job.id for job in scheduler.get_jobs()} == {
            "report:daily-summary", "report:night-audit", "report-store-reload"}
        # The new schedule's baseline is its last due time (today 03:00), so its first due time sends.
        assert runner.store.last_runs()["night-audit"] == local("2024-03-05 03:00:00")
        assert [(r.name, r.sent) for r in runner.run_due(local("2024-03-06 03:00:00"), "night-audit")] == [
            ("night-audit", True)]
    finally:
        service.stopService()


def test_the_json_file_is_imported_once(tmp_path, sessions) -> None:
    path = tmp_path / "report_schedules.json"
    assert schedule_db.import_once(sessions, path, EDITED) is None   # no file: nothing to do
    schedule_store.save(path, Store(schedules=(DAILY, WEEKLY),
                                    last_runs={"daily-summary": local("2024-01-31 06:00:00")}))
    assert schedule_db.import_once(sessions, path, EDITED) == 2
    table = ScheduleTable(sessions)
    # The file's schedules replace the untouched defaults of schema 0005 and keep their last runs.
    assert table.schedules() == (DAILY, WEEKLY)
    assert table.last_runs() == {"daily-summary": local("2024-01-31 06:00:00")}
    schedule_store.save(path, Store(schedules=(MONTHLY,)))
    assert schedule_db.import_once(sessions, path, EDITED) is None   # once: a later file is not read
    assert table.schedules() == (DAILY, WEEKLY)
    with sessions() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "report_schedule.import")).one()
        assert entry.before == {"defaults_replaced": ["daily-summary", "monthly-overview", "weekly-costs"]}
        assert [s["name"] for s in entry.after["schedules"]] == ["daily-summary", "weekly-costs"]


def test_an_admin_s_edits_survive_the_import(tmp_path, sessions) -> None:
    set_schedules(sessions, MONTHLY, DAILY)
    path = tmp_path / "report_schedules.json"
    schedule_store.save(path, Store(schedules=(
        ScheduleDefinition(name="daily-summary", kind="daily", recipients=("old@hotel.example",)), WEEKLY)))
    assert schedule_db.import_once(sessions, path, EDITED) == 1   # daily-summary was edited: the table wins
    assert [s.name for s in ScheduleTable(sessions).schedules()] == ["daily-summary", "monthly-overview",
                                                                     "weekly-costs"]
    assert ScheduleTable(sessions).schedules()[0] == DAILY


def test_every_edit_is_audited_with_before_and_after(sessions) -> None:
    set_schedules(sessions, DAILY)
    with sessions() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        actions = [(e.action, e.username) for e in entries]
        assert actions == [("report_schedule.update", "ada"), ("report_schedule.delete", "ada"),
                           ("report_schedule.delete", "ada")]
        assert entries[0].before["recipients"] == [] and entries[0].after["recipients"] == ["gm@hotel.example"]
        assert entries[1].before["name"] == "monthly-overview" and entries[1].after is None
