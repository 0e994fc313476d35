"""A PBX link in the daemon: transport + driver framer + the pipeline on the database thread.

Each chunk the transport delivers is framed by the driver's link. The records are journaled and processed
by one database job (journal commit first, see ``appliance.pipeline``); reads that arrive while a job runs
are queued here and handed to the next job together, so under load a link makes one journal commit and
a few large batches per job instead of a job per TCP read. Jobs run in arrival order on the single
database thread. While more than ``MAX_QUEUED_RECORDS`` records wait, a TCP or serial transport is paused
(and a followed file is not read) so a PBX replaying thousands of records cannot exhaust memory.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from twisted.application.service import MultiService
from twisted.logger import Logger

from appliance import linkstatus
from appliance.config import LinkConfig
from appliance.drivers import DriverSpec
from appliance.events import Event, Ignored, LinkDown, LinkUp, RecordReceived
from appliance.net.adapter import LinkFactory, LinkProtocol
from appliance.net.dbthread import DatabaseThread
from appliance.net.transports import make_transport_service
from appliance.pipeline import IngestResult, Pipeline

# Records waiting for the database thread before the transport is paused; reading resumes below half.
MAX_QUEUED_RECORDS = 20_000
# ``link_status.last_record_at`` (for the dashboard and the silence alerts, which count minutes) is
# written at most this often: one more commit per job cost a tenth of the ingest rate.
TOUCH_INTERVAL = 1.0


def utc_from(clock: Any) -> datetime:
    return datetime.fromtimestamp(clock.seconds(), tz=timezone.utc)


class PbxLinkService(MultiService):
    log = Logger()

    def __init__(self, link: LinkConfig, spec: DriverSpec, options: Any, pipeline: Pipeline,
                 db: DatabaseThread, sessions: Any, reactor: Any,
                 on_ingested: Callable[[IngestResult], None] = lambda result: None,
                 max_queued: int = MAX_QUEUED_RECORDS) -> None:
        super().__init__()
        self.link = link
        self._spec = spec
        self._options = options
        self._pipeline = pipeline
        self._db = db
        self._sessions = sessions
        self._clock = reactor
        self._on_ingested = on_ingested
        self._max_queued = max_queued
        self.pending_jobs = 0
        self.records_received = 0
        self.queued_records = 0
        self._queued: list[tuple[list[bytes], datetime]] = []
        self._touched_at: datetime | None = None
        self._paused: set[LinkProtocol] = set()
        factory = LinkFactory(lambda: spec.make_link(options), reactor, self._handle, link.name)
        make_transport_service(link, factory, reactor,
                               may_read=lambda: self.queued_records < max_queued).setServiceParent(self)

    def _handle(self, protocol: LinkProtocol, events: list[Event]) -> None:
        now = utc_from(self._clock)
        raws = [event.raw for event in events if isinstance(event, RecordReceived)]
        dropped = [event for event in events if isinstance(event, Ignored) and event.quarantine]
        for event in events:
            if isinstance(event, LinkUp):
                self._status("up", event.detail or self.link.describe(), now)
            elif isinstance(event, LinkDown):
                self._status("down", event.reason, now)
        if dropped:
            self._db.run(self._pipeline.quarantine, self.link.name, dropped, now).addErrback(self._db_failed)
        if raws:
            self.records_received += len(raws)
            self._ingest(protocol, raws, now)

    def _ingest(self, protocol: LinkProtocol, raws: list[bytes], now: datetime) -> None:
        self._queued.append((raws, now))
        self.queued_records += len(raws)
        if self.queued_records >= self._max_queued and protocol.transport is not None \
                and hasattr(protocol.transport, "pauseProducing") and protocol not in self._paused:
            protocol.transport.pauseProducing()
            self._paused.add(protocol)
        if not self.pending_jobs:
            self._start_job()

    def _start_job(self) -> None:
        """Hand every queued read to one database job; each keeps its own arrival time in the journal."""
        groups, self._queued, self.queued_records = self._queued, [], 0
        self.pending_jobs += 1
        job = self._db.run(self._ingest_job, groups, groups[-1][1])
        job.addCallback(self._ingested)
        job.addErrback(self._db_failed)
        job.addBoth(self._job_done)
        self._resume()

    def _ingest_job(self, groups: list[tuple[list[bytes], datetime]], now: datetime) -> IngestResult:
        result = self._pipeline.ingest_groups(self.link.name, groups, now)
        # Throttled: the last arrival may be written up to TOUCH_INTERVAL late (the next job writes it).
        if self._touched_at is None or (now - self._touched_at).total_seconds() >= TOUCH_INTERVAL:
            linkstatus.touch_record(self._sessions, self.link.name, now)
            self._touched_at = now
        return result

    def _ingested(self, result: IngestResult) -> None:
        self.log.debug("link {link}: {calls} calls, {duplicates} duplicates, {quarantined} quarantined",
                       link=self.link.name, calls=result.calls, duplicates=result.duplicates,
                       quarantined=result.quarantined)
        if result.quarantined:
            self.log.warn("link {link}: {count} record(s) quarantined (see the quarantine list)",
                          link=self.link.name, count=result.quarantined)
        self._on_ingested(result)

    def _job_done(self, passthrough: Any) -> Any:
        self.pending_jobs -= 1
        if self._queued:
            self._start_job()
        return passthrough

    def _resume(self) -> None:
        if self.queued_records < self._max_queued // 2:
            for protocol in list(self._paused):
                if protocol.transport is not None:
                    protocol.transport.resumeProducing()
            self._paused.clear()

    def _status(self, state: str, detail: str, now: datetime) -> None:
        self.log.info("PBX link {link} {state}: {detail}", link=self.link.name, state=state, detail=detail)
        self._db.run(linkstatus.set_state, self._sessions, self.link.name, "pbx", state, detail, now) \
            .addErrback(self._db_failed)

    def _db_failed(self, failure: Any) -> None:
        # The journal rows are committed before processing, so a failed job loses nothing: the records
        # are processed by the next job or at the next start.
        self.log.failure("link {link}: database job failed", failure, link=self.link.name)
