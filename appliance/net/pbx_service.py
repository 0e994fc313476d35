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
# A journal write that fails (disk full, a read-only or damaged database) keeps its records in memory,
# stops reading the link (the PBX buffers them) and is retried, waiting this long, doubling, at most the cap.
RETRY_FIRST_SECONDS = 1.0
RETRY_CAP_SECONDS = 60.0
# ``link_status.last_record_at`` (for the dashboard and the silence alerts, which count minutes) is
# written at most this often: one more commit per job cost a tenth of the ingest rate.
TOUCH_INTERVAL = 1.0


class JournalWriteFailed(Exception):
    """The journal commit failed: the records of the job are not stored anywhere yet."""


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
        self._readers: set[LinkProtocol] = set()
        self._retry_delay = 0.0  # above 0 while the journal cannot be written: reading is held
        self._retry_call: Any = None
        factory = LinkFactory(lambda: spec.make_link(options), reactor, self._handle, link.name)
        make_transport_service(
            link, factory, reactor,
            may_read=lambda: self.queued_records < max_queued and not self._retry_delay).setServiceParent(self)

    def _handle(self, protocol: LinkProtocol, events: list[Event]) -> None:
        now = utc_from(self._clock)
        if protocol.transport is not None:
            self._readers.add(protocol)
        raws = [event.raw for event in events if isinstance(event, RecordReceived)]
        dropped = [event for event in events if isinstance(event, Ignored) and event.quarantine]
        for event in events:
            if isinstance(event, LinkUp):
                self._status("up", event.detail or self.link.describe(), now)
            elif isinstance(event, LinkDown):
                self._status("down", event.reason, now)
                self._readers.discard(protocol)
                self._paused.discard(protocol)
        if dropped:
            self._db.run(self._pipeline.quarantine, self.link.name, dropped, now).addErrback(self._db_failed)
        if raws:
            self.records_received += len(raws)
            self._ingest(protocol, raws, now)

    def _ingest(self, protocol: LinkProtocol, raws: list[bytes], now: datetime) -> None:
        self._queued.append((raws, now))
        self.queued_records += len(raws)
        if self.queued_records >= self._max_queued or self._retry_delay:
            self._pause(protocol)
        if not self.pending_jobs and not self._retry_delay:
            self._start_job()

    def _pause(self, protocol: LinkProtocol) -> None:
        if protocol.transport is not None and hasattr(protocol.transport, "pauseProducing") \
                and protocol not in self._paused:
            protocol.transport.pauseProducing()
            self._paused.add(protocol)

    def _start_job(self) -> None:
        """Hand every queued read to one database job; each keeps its own arrival time in the journal."""
        groups, self._queued, self.queued_records = self._queued, [], 0
        self.pending_jobs += 1
        job = self._db.run(self._ingest_job, groups, groups[-1][1])
        job.addCallback(self._ingested)
        job.addErrback(self._journal_failed, groups)
        job.addErrback(self._db_failed)
        job.addBoth(self._job_done)
        self._resume()

    def _ingest_job(self, groups: list[tuple[list[bytes], datetime]], now: datetime) -> IngestResult:
        try:
            journaled = self._pipeline.journal_groups(self.link.name, groups)
        except Exception as exc:
            raise JournalWriteFailed(exc) from exc
        # From here on the records are safe: a failed processing step is retried by the next job.
        result = self._pipeline.process_pending(now)
        result.journaled = journaled
        # Throttled: the last arrival may be written up to TOUCH_INTERVAL late (the next job writes it).
        if self._touched_at is None or (now - self._touched_at).total_seconds() >= TOUCH_INTERVAL:
            linkstatus.touch_record(self._sessions, self.link.name, now)
            self._touched_at = now
        return result

    def _ingested(self, result: IngestResult) -> None:
        if self._retry_delay:
            self.log.info("link {link}: the journal is written again; reading from the PBX resumes",
                          link=self.link.name)
            self._retry_delay = 0.0
            self._resume()
        self.log.debug("link {link}: {calls} calls, {duplicates} duplicates, {quarantined} quarantined",
                       link=self.link.name, calls=result.calls, duplicates=result.duplicates,
                       quarantined=result.quarantined)
        if result.quarantined:
            self.log.warn("link {link}: {count} record(s) quarantined (see the quarantine list)",
                          link=self.link.name, count=result.quarantined)
        self._on_ingested(result)

    def _journal_failed(self, failure: Any, groups: list[tuple[list[bytes], datetime]]) -> None:
        """Nothing was journaled: keep the records (first in line), stop reading, try again later."""
        failure.trap(JournalWriteFailed)
        self._queued[:0] = groups
        self.queued_records += sum(len(raws) for raws, _ in groups)
        self._retry_delay = min(max(self._retry_delay * 2, RETRY_FIRST_SECONDS), RETRY_CAP_SECONDS)
        for protocol in list(self._readers):
            self._pause(protocol)
        self.log.error("link {link}: the journal cannot be written ({error}); {count} record(s) held in memory, "
                       "reading from the PBX paused (it buffers), next try in {delay:.0f} s",
                       link=self.link.name, error=str(failure.value.__cause__ or failure.value)[:300],
                       count=self.queued_records, delay=self._retry_delay)
        self._retry_call = self._clock.callLater(self._retry_delay, self._retry)

    def _retry(self) -> None:
        self._retry_call = None
        if not self.pending_jobs and self._queued:
            self._start_job()

    def _job_done(self, passthrough: Any) -> Any:
        self.pending_jobs -= 1
        if self._queued and not self._retry_call:
            self._start_job()
        return passthrough

    def stopService(self) -> Any:  # noqa: N802
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        return super().stopService()

    def _resume(self) -> None:
        if self._retry_delay or self._retry_call is not None:
            return
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
