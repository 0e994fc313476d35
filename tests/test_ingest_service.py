"""The PBX link service's hand-over to the database thread (``appliance/net/pbx_service.py``): reads that
arrive while a job runs are queued and journaled together by the next job, each with its own arrival time;
too many queued records pause the transport until a job takes them. Real pipeline and database (SQLite
and PostgreSQL); the database thread is replaced by a queue of jobs the test runs one at a time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock, StringTransport

from appliance.db.models import Call, JournalEntry, LinkStatus, Posting
from appliance.db.session import make_engine, make_sessionmaker
from appliance.events import GuestCheckedIn, RecordReceived
from appliance.net.pbx_service import PbxLinkService
from appliance.occupancy import apply_guest_event
from appliance.pipeline import Pipeline
from tests.helpers import CSV_SPEC, make_config

T0 = datetime(2026, 3, 14, 15, 0, tzinfo=timezone.utc)


class JobQueue:
    """Stands in for ``DatabaseThread``: jobs wait until the test runs them, in order."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Any, tuple[Any, ...], Deferred[Any]]] = []

    def run(self, function: Any, *args: Any) -> Deferred[Any]:
        done: Deferred[Any] = Deferred()
        self.jobs.append((function, args, done))
        return done

    def run_next(self) -> Any:
        function, args, done = self.jobs.pop(0)
        try:
            result = function(*args)
        except Exception as exc:  # as the database thread hands a failed job back
            done.errback(exc)
            return exc
        done.callback(result)
        return result


class Peer:
    """What the service needs of a protocol: its transport, to pause and resume."""

    def __init__(self) -> None:
        self.transport = StringTransport()


def record(minute: int) -> bytes:
    start = T0 + timedelta(minutes=minute)
    return f"{start.isoformat()},{60 + minute},101,912125551234,outgoing,1".encode()


@pytest.fixture
def env(migrated_url: str):
    config = make_config(migrated_url)
    engine = make_engine(migrated_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        apply_guest_event(session, GuestCheckedIn(room="101", guest_id="G1"), T0 - timedelta(days=1))
        session.add(LinkStatus(name="pbx", kind="pbx", state="up", since=T0))
    clock = MemoryReactorClock()
    clock.advance(T0.timestamp())
    jobs = JobQueue()

    def service(max_queued: int = 20_000) -> PbxLinkService:
        pipeline = Pipeline(config, sessions, {"pbx": CSV_SPEC})
        return PbxLinkService(config.pbx[0], CSV_SPEC, config.driver_options["pbx"], pipeline, jobs, sessions,
                              clock, max_queued=max_queued)

    yield service, jobs, clock, sessions
    engine.dispose()


def deliver(link: PbxLinkService, peer: Peer, minutes: range) -> None:
    link._handle(peer, [RecordReceived(raw=record(m)) for m in minutes])  # as the link adapter calls it


def test_reads_queued_behind_a_running_job_go_in_one_job_with_their_arrival_times(env) -> None:
    service, jobs, clock, sessions = env
    link, peer = service(), Peer()
    deliver(link, peer, range(0, 3))
    clock.advance(2)
    deliver(link, peer, range(3, 5))
    clock.advance(2)
    deliver(link, peer, range(5, 9))
    assert len(jobs.jobs) == 1  # the first read started a job; the next two wait for it
    assert jobs.run_next().calls == 3
    assert len(jobs.jobs) == 1 and link.queued_records == 0
    second = jobs.run_next()
    assert (second.journaled, second.calls, second.postings) == (6, 6, 6)
    assert not jobs.jobs and link.pending_jobs == 0
    with sessions() as session:
        arrivals = session.scalars(select(JournalEntry.received_at).order_by(JournalEntry.id)).all()
        calls = session.scalars(select(Call.journal_id)).all()
        postings = session.scalars(select(Posting.call_id)).all()
        touched = session.get(LinkStatus, "pbx").last_record_at
    assert arrivals == [T0] * 3 + [T0 + timedelta(seconds=2)] * 2 + [T0 + timedelta(seconds=4)] * 4
    assert len(calls) == len(set(calls)) == 9 and len(postings) == len(set(postings)) == 9
    assert touched == T0 + timedelta(seconds=4)  # the second job came over a second after the first touch


def test_too_many_queued_records_pause_the_transport_until_a_job_takes_them(env) -> None:
    service, jobs, _clock, sessions = env
    link, peer = service(max_queued=5), Peer()
    deliver(link, peer, range(0, 2))  # starts a job at once: nothing stays queued
    deliver(link, peer, range(2, 5))
    assert peer.transport.producerState == "producing"
    deliver(link, peer, range(5, 8))  # 6 queued behind the running job
    assert peer.transport.producerState == "paused"
    jobs.run_next()  # the queued reads go to the next job: reading resumes
    assert peer.transport.producerState == "producing" and link.queued_records == 0
    jobs.run_next()
    with sessions() as session:
        assert len(session.scalars(select(Call.id)).all()) == 8


def test_a_failed_journal_write_keeps_the_records_stops_reading_and_retries(env, monkeypatch) -> None:
    """Disk full: nothing was journaled, so the records stay in memory, first in line; the PBX is not read
    (it buffers) until a retry, 1 s then 2 s later, writes the journal again."""
    from sqlalchemy.exc import OperationalError

    service, jobs, clock, sessions = env
    link, peer = service(), Peer()
    real = link._pipeline.journal_groups
    failures = [OperationalError("INSERT INTO journal", {}, Exception("database or disk is full"))] * 2

    def journal_groups(*args: Any) -> int:
        if failures:
            raise failures.pop()
        return real(*args)

    monkeypatch.setattr(link._pipeline, "journal_groups", journal_groups)
    deliver(link, peer, range(0, 3))
    jobs.run_next()  # fails
    assert peer.transport.producerState == "paused" and link.queued_records == 3
    deliver(link, peer, range(3, 5))  # already in flight when reading paused: queued behind the held ones
    assert not jobs.jobs and link.queued_records == 5
    clock.advance(1)
    assert len(jobs.jobs) == 1
    jobs.run_next()  # fails again: the wait doubles
    assert peer.transport.producerState == "paused" and link.queued_records == 5
    clock.advance(1.5)
    assert not jobs.jobs
    clock.advance(0.5)
    result = jobs.run_next()
    assert (result.journaled, result.calls) == (5, 5)
    assert peer.transport.producerState == "producing" and link.queued_records == 0
    with sessions() as session:
        starts = session.scalars(select(Call.duration).order_by(Call.journal_id)).all()
    assert starts == [60, 61, 62, 63, 64]  # in the order the PBX sent them
