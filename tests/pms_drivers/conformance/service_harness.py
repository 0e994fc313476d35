"""The daemon's PMS service (appliance.net.pms_service) against a simulated PMS, with no real reactor.

``Hotel`` wires ``PmsLinkService`` to a real (SQLite) database through a queue that stands in for the
database thread (jobs run in order, one at a time, when ``settle`` drains them), to a
``MemoryReactorClock`` (time and the TCP connection attempt) and, through a ``StringTransport``, to a
sans-IO PMS peer (FIAS, HOBIC or STX). What the peer received is what the PMS received: the
double-posting tests count ``peer.postings``.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from appliance.config import LinkConfig
from appliance.db.models import Alert, Posting, Stay
from appliance.db.session import make_engine, make_sessionmaker, upgrade
from appliance.net.pms_service import PmsLinkService
from appliance.outbox import Outbox
from appliance.pipeline import add_posting
from appliance.registry import DriverRegistry
from pms_drivers.fias.link import SPEC as FIAS
from pms_drivers.fias.peer import FiasPmsPeer
from pms_drivers.hobic import SPEC as HOBIC
from pms_drivers.stx_posting import SPEC as STX

T0 = datetime(2025, 3, 14, 10, 15, tzinfo=UTC).timestamp()
SPECS = {"fias": FIAS, "hobic": HOBIC, "stx_posting": STX}


class QueueDb:
    """Stands in for ``DatabaseThread``: jobs wait in order and run when drained."""

    def __init__(self) -> None:
        self.jobs: deque[tuple[Any, tuple, dict, Deferred]] = deque()
        self.errors: list[Failure] = []

    def run(self, function: Any, *args: Any, **kwargs: Any) -> Deferred:
        deferred: Deferred = Deferred()
        self.jobs.append((function, args, kwargs, deferred))
        return deferred

    def drain(self) -> bool:
        ran = False
        while self.jobs:
            function, args, kwargs, deferred = self.jobs.popleft()
            ran = True
            try:
                result = function(*args, **kwargs)
            except Exception:
                failure = Failure()
                self.errors.append(failure)
                deferred.errback(failure)
            else:
                deferred.callback(result)
        return ran


class Hotel:
    def __init__(self, db_path: Any, *, driver: str = "fias", options: Any = None, peer: Any = None,
                 transport: str = "tcp-client", fresh_db: bool = True) -> None:
        self.url = f"sqlite:///{db_path}"
        if fresh_db:
            upgrade(self.url)
        self.engine = make_engine(self.url)
        self.sessions = make_sessionmaker(self.engine)
        self.reactor = MemoryReactorClock()
        self.reactor.advance(T0)
        self.db = QueueDb()
        spec = SPECS[driver]
        self.options = options if options is not None else spec.options()
        self.registry = DriverRegistry([spec])
        link = LinkConfig(name="pms", driver=driver, transport=transport, host="127.0.0.1", port=5010,
                          device="/dev/null" if transport == "serial" else "")
        self.peer = peer if peer is not None else FiasPmsPeer(tz=UTC)
        self.peer_events: list[Any] = []
        self.service = PmsLinkService(link, spec, self.options,
                                      Outbox(self.sessions, "pms", ta_exponent=getattr(self.options, "ta_exponent", 2)),
                                      self.db, self.sessions, self.reactor, tz=UTC)  # type: ignore[arg-type]
        self.protocol: Any = None
        self.transport: StringTransport | None = None
        self.attempts_seen = 0
        self.accept_connections = True

    @property
    def now(self) -> float:
        return self.reactor.seconds()

    def utc(self, seconds: float = 0.0) -> datetime:
        return datetime.fromtimestamp(self.now + seconds, UTC)

    # ------------------------------------------------------------ running

    def start(self) -> Hotel:
        self.service.startService()
        self.settle()
        return self

    def stop(self) -> None:
        """The daemon stops (or is killed): nothing more is read or written."""
        if self.service.running:
            self.service.stopService()
        self.protocol = self.transport = None
        self.engine.dispose()

    def connect(self) -> None:
        attempts = self.reactor.tcpClients
        factory = attempts[-1][2]
        self.attempts_seen = len(attempts)
        self.protocol = factory.buildProtocol(None)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.peer_events += self.peer.connection_made(self.now)
        self.settle()

    def disconnect(self) -> None:
        if self.protocol is None:
            return
        protocol, self.protocol, self.transport = self.protocol, None, None
        protocol.connectionLost(Failure(ConnectionDone()))
        self.peer_events += self.peer.connection_lost(self.now)
        self.settle()

    def settle(self) -> None:
        for _ in range(10_000):
            busy = self.db.drain()
            self.reactor.advance(0)
            if self.protocol is None and self.accept_connections \
                    and len(self.reactor.tcpClients) > self.attempts_seen and self.service.running:
                self.connect()
                continue
            if self.transport is not None:
                out = self.transport.value()
                self.transport.clear()
                if out:
                    busy = True
                    self.peer_events += self.peer.receive_data(out, self.now)
                back = self.peer.data_to_send()
                if back and self.protocol is not None:
                    busy = True
                    self.protocol.dataReceived(back)
                if self.transport is not None and (self.transport.disconnecting or self.peer.wants_close):
                    self.disconnect()
                    busy = True
            if not busy:
                return
        raise AssertionError("the service and the peer never settled")

    def advance(self, seconds: float, step: float = 1.0) -> None:
        end = self.now + seconds
        while self.now < end:
            deadline = self.peer.deadline()
            target = min(end, self.now + step, deadline if deadline and deadline > self.now else end)
            self.reactor.advance(target - self.now)
            self.peer_events += self.peer.handle_timeout(self.now)
            self.settle()

    def pms_says(self, data: bytes) -> None:
        """Raw bytes from the PMS (to script what the peer does not play)."""
        self.protocol.dataReceived(data)
        self.settle()

    # ------------------------------------------------------------ the database

    def queue(self, *rooms: str, amount: str = "1.25") -> None:
        with self.sessions.begin() as session:
            for room in rooms:
                add_posting(session, call=None, link="pms", room=room, stay_id=None, amount=Decimal(amount),
                            currency="USD", now=self.utc(), cause="test", destination="44207")
        self.service.wake()
        self.settle()

    def postings(self) -> list[Posting]:
        with self.sessions() as session:
            return list(session.scalars(select(Posting).order_by(Posting.id)))

    def states(self) -> list[str]:
        return [p.state for p in self.postings()]

    def alerts(self) -> list[Alert]:
        with self.sessions() as session:
            return list(session.scalars(select(Alert).order_by(Alert.id)))

    def stays(self) -> list[tuple[str, str, bool]]:
        with self.sessions() as session:
            return [(s.room, s.guest_id, s.checked_out_at is None)
                    for s in session.scalars(select(Stay).order_by(Stay.id))]

    def check(self) -> None:
        assert not self.db.errors, [f.getTraceback() for f in self.db.errors]


def received_sequences(peer: Any) -> list[int | None]:
    return [p.sequence for p in peer.postings]


def later(hours: float) -> timedelta:
    return timedelta(hours=hours)
