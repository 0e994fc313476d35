"""The scheduled-report service: APScheduler's TwistedScheduler waking ``ReportRunner`` at due times.

Reports and SMTP block, so every run happens in a worker thread (the reactor's thread pool, which is
where TwistedScheduler's executor runs jobs); the reactor only keeps time. The runner opens its own
database sessions: a long report must not hold the daemon's single database thread that postings use.

On start the service runs ``run_due(now)`` once, which sends each run missed while the appliance was off
(once per schedule, see appliance/reports/scheduler.py), then lets APScheduler wake it at each due time.
The schedules live in the ``report_schedules`` table the web admin writes; every ``RELOAD_SECONDS`` the
service asks the store for its stamp (row count and latest edit, a worker-thread query like every
APScheduler job here) and re-registers the jobs when it changed, so an edit takes effect without a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from appliance.reports.scheduler import ReportRunner, RunResult

log = Logger()
RELOAD_SECONDS = 60


class ReportSchedulerService(Service):
    """``ReportSchedulerService(runner, reactor)``; ``scheduler`` and ``run_in_thread`` are for tests
    (an APScheduler instance, and ``f, *args -> Deferred``)."""

    name = "report-scheduler"

    def __init__(self, runner: ReportRunner, reactor: Any, *, scheduler: Any = None,
                 run_in_thread: Callable[..., Deferred[Any]] | None = None) -> None:
        self._runner = runner
        self._reactor = reactor
        self._scheduler = scheduler
        self._run_in_thread = run_in_thread or (
            lambda f, *a: deferToThreadPool(reactor, reactor.getThreadPool(), f, *a))
        self._store_stamp: Any = None
        self.catch_up: Deferred[Any] | None = None

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._reactor.seconds(), tz=timezone.utc)

    def startService(self) -> None:  # noqa: N802 (Twisted API)
        super().startService()
        if self._scheduler is None:
            # Imported here: the module imports the global reactor, which tests never install.
            from apscheduler.schedulers.twisted import TwistedScheduler

            self._scheduler = TwistedScheduler(reactor=self._reactor, timezone=self._runner.options.tz)
        self._scheduler.add_job(self._reload, "interval", seconds=RELOAD_SECONDS, id="report-store-reload",
                                replace_existing=True, coalesce=True, max_instances=1)
        self._scheduler.start()
        # Reading the schedules is a database query: it happens in the worker thread with the catch-up.
        self.catch_up = self._run_in_thread(self._start, self.now())
        self.catch_up.addCallbacks(self._log_results,
                                   lambda failure: log.failure("report catch-up failed", failure))

    def stopService(self) -> None:  # noqa: N802 (Twisted API)
        super().stopService()
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def wake(self, name: str) -> list[RunResult]:
        """An APScheduler job: runs in a worker thread, so it calls the runner directly."""
        results = self._runner.run_due(self.now(), name)
        self._log_results(results)
        return results

    def _start(self, now: datetime) -> list[RunResult]:
        self._register()
        return self._runner.run_due(now)

    def _register(self) -> None:
        self._store_stamp = self._stamp()
        self._runner.add_jobs(self._scheduler, self.wake)

    def _reload(self) -> None:
        """An APScheduler job (worker thread). After a change, ``run_due`` records the baseline of a new
        schedule at once, so its first due time sends (rather than becoming its baseline)."""
        if self._stamp() != self._store_stamp:
            log.info("report schedules changed; reloading")
            self._register()
            self._log_results(self._runner.run_due(self.now()))

    def _stamp(self) -> Any:
        return self._runner.store.stamp()

    @staticmethod
    def _log_results(results: list[RunResult]) -> list[RunResult]:
        for result in results:
            if result.sent:
                log.info("report {name} due {due} sent", name=result.name, due=result.due.isoformat())
            else:
                log.warn("report {name} due {due} failed: {error}", name=result.name,
                         due=result.due.isoformat(), error=result.error)
        return results
