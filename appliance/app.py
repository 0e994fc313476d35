"""The composition root: build the daemon's services from a checked configuration.

``make_service(config, reactor)`` wires the database thread, the pipeline, one service per PBX link and
the PMS link. Nothing here reads files or the clock on its own; the reactor is the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from twisted.application.service import MultiService
from twisted.logger import Logger

from appliance.alerts import AlertEngine
from appliance.config import ApplianceConfig
from appliance.db.session import integrity_problem, is_up_to_date, make_engine, make_sessionmaker
from appliance.errors import ConfigError
from appliance.extensions import seed_if_empty
from appliance.net.alert_service import AlertService
from appliance.net.report_scheduler import ReportSchedulerService
from appliance.net.dbthread import DatabaseThread
from appliance.net.pbx_service import PbxLinkService
from appliance.net.pms_service import PmsLinkService
from appliance.outbox import Outbox
from appliance.pipeline import IngestResult, Pipeline
from appliance.registry import DriverRegistry, default_registry
from appliance.reports.bundles import ReportOptions
from appliance.reports.mail import SmtpSender
from appliance.reports.schedule_db import ScheduleTable, import_once
from appliance.reports.scheduler import ReportRunner

log = Logger()


@dataclass
class Daemon:
    service: MultiService
    pipeline: Pipeline
    pbx: list[PbxLinkService]
    pms: PmsLinkService | None
    sessions: Any
    engine: Any


def make_daemon(config: ApplianceConfig, reactor: Any, registry: DriverRegistry | None = None) -> Daemon:
    registry = registry or default_registry()
    engine = make_engine(config.database.url)
    damaged = integrity_problem(engine)
    if damaged:
        raise ConfigError([("database.url", f"the database file {engine.url.database} is damaged ({damaged}): "
                                            "stop here and restore the last backup (`appliance restore`); the "
                                            "PBX's replay and the PMS's folios cover what came after it")])
    if not is_up_to_date(engine):
        raise ConfigError([("database.url", "the database schema is not current: run `appliance db upgrade`")])
    sessions = make_sessionmaker(engine)
    sync_extensions(sessions, config)

    root = MultiService()
    db = DatabaseThread(reactor)
    db.setServiceParent(root)
    drivers = {link.name: registry.get("pbx", link.driver) for link in config.pbx}
    alert_engine = AlertEngine(config)
    pipeline = Pipeline(config, sessions, drivers, observers=[alert_engine])

    pms: PmsLinkService | None = None
    if config.pms is not None:
        spec = registry.get("pms", config.pms.driver)
        options = config.driver_options[config.pms.name]
        outbox = Outbox(sessions, config.pms.name, ta_exponent=getattr(options, "ta_exponent", 2))
        pms = PmsLinkService(config.pms, spec, options, outbox, db, sessions, reactor, tz=config.site.tz)

    def on_ingested(result: IngestResult) -> None:
        if result.postings and pms is not None:
            pms.wake()

    pbx_services = [
        PbxLinkService(link, drivers[link.name], config.driver_options[link.name], pipeline, db, sessions,
                       reactor, on_ingested=on_ingested)
        for link in config.pbx
    ]

    # Records journaled before a crash but never processed come first, before any link opens.
    def recover() -> None:
        result = pipeline.process_pending(datetime.fromtimestamp(reactor.seconds(), tz=timezone.utc))
        if result.calls or result.quarantined or result.duplicates:
            log.info("processed {calls} call(s) left in the journal by the last run ({duplicates} duplicate)",
                     calls=result.calls, duplicates=result.duplicates)

    startup = _Startup(db, recover, [*pbx_services, *([pms] if pms else [])])
    startup.setServiceParent(root)
    AlertService(alert_engine, db, sessions, reactor).setServiceParent(root)
    _import_schedule_file(sessions, config.reports.schedule_file, reactor)
    if config.reports.smtp is not None:
        runner = ReportRunner(store=ScheduleTable(sessions), sessions=sessions,
                              send=SmtpSender(config.reports.smtp),
                              options=ReportOptions(tz=config.site.tz, site_name=config.site.name,
                                                    trunk_count=config.reports.trunk_count))
        ReportSchedulerService(runner, reactor).setServiceParent(root)
    return Daemon(service=root, pipeline=pipeline, pbx=pbx_services, pms=pms, sessions=sessions, engine=engine)


def _import_schedule_file(sessions: Any, path: str, reactor: Any) -> None:
    """Report schedules kept in the JSON file before schema 0005 move into the table, once."""
    try:
        count = import_once(sessions, path, datetime.fromtimestamp(reactor.seconds(), tz=timezone.utc))
    except ValueError as exc:  # a file that does not parse: the table's schedules stand, the daemon runs
        log.warn("report schedules in {path} not imported: {error}", path=path, error=str(exc))
        return
    if count is not None:
        log.info("imported {count} report schedule(s) from {path}", count=count, path=path)


class _Startup(MultiService):
    """Runs journal recovery on the database thread, then starts the links."""

    def __init__(self, db: DatabaseThread, recover: Any, links: list[Any]) -> None:
        super().__init__()
        self._db = db
        self._recover = recover
        self._links = links

    def startService(self) -> None:  # noqa: N802
        self.running = 1
        self._db.run(self._recover).addErrback(
            lambda failure: log.failure("journal recovery failed", failure)).addBoth(self._start_links)

    def _start_links(self, _: Any) -> None:
        for link in self._links:
            link.setServiceParent(self)


def sync_extensions(sessions: Any, config: ApplianceConfig) -> None:
    """A new database's ``extensions`` table is filled from the configuration (``appliance.extensions``);
    a filled one is the source of truth and is left as the web admin and ``appliance extensions`` made it."""
    with sessions.begin() as session:
        seeded = seed_if_empty(session, config)
    if seeded:
        log.info("extension table filled from the configuration: {count} extensions", count=seeded)
