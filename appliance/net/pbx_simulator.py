"""A PBX that prints SMDR: realistic calls in any driver's format, over TCP (either side) or serial.

Part of the product: installers rehearse a site with it, tests and the demo drive the daemon with it. It
behaves like a PBX with a record buffer: calls are generated at the given rate whether or not a collector
is connected, kept while nobody listens (up to ``buffer`` records, the oldest dropped first, as PBXs do),
and sent when a collector connects; after a reconnect the last ``replay`` records already sent are sent
again, as PBXs that cannot know what the collector stored do. Every generated call is appended to the
``record`` file (one JSON line) before it is sent, so a test can compare what the PBX produced with what
the appliance stored.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence, TextIO
from zoneinfo import ZoneInfo

from twisted.application.internet import ClientService, StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from appliance.drivers import DriverSpec
from appliance.net.transports import RETRY_POLICY, SerialEndpoint


class _Collector(Protocol):
    def __init__(self, simulator: PbxSimulator) -> None:
        self.simulator = simulator

    def connectionMade(self) -> None:  # noqa: N802
        self.simulator.attach(self)

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        self.simulator.detach(self)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        pass  # a login or ACK from the collector; the formats simulated here need none


class PbxSimulator(MultiService):
    log = Logger()

    def __init__(self, spec: DriverSpec, options: Any, *, reactor: Any, rate: float, count: int,
                 extensions: Sequence[str], trunks: Sequence[str] = ("1", "2", "3", "4"), seed: int = 1,
                 tz: ZoneInfo = ZoneInfo("UTC"), record: TextIO | None = None, buffer: int = 3000,
                 replay: int = 0, linger: float = 2.0, on_done: Callable[[], None] | None = None) -> None:
        super().__init__()
        from pbx_drivers.callgen import generate_call

        if spec.format_record is None:
            raise ValueError(f"driver {spec.name} has no formatter to simulate with")
        self._generate = generate_call
        self._spec = spec
        self._options = options
        self._clock = reactor
        self._rate = rate
        self._count = count
        self._extensions = list(extensions)
        self._trunks = list(trunks)
        self._rng = random.Random(seed)
        self._tz = tz
        self._record = record
        self._pending: deque[bytes] = deque(maxlen=buffer)
        self._recent: deque[bytes] = deque(maxlen=max(replay, 0))
        self._collector: _Collector | None = None
        self._on_done = on_done
        self._linger = linger
        self._attached_at = 0.0
        self.generated = 0
        self.sent = 0
        self.dropped = 0
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor
        self._done_called = False

    def factory(self) -> Factory:
        return Factory.forProtocol(lambda: _Collector(self))

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self._loop.start(max(1.0 / self._rate, 0.001) if self._rate > 0 else 1.0, now=False)

    def stopService(self) -> Any:  # noqa: N802
        if self._loop.running:
            self._loop.stop()
        return super().stopService()

    # collectors
    def attach(self, collector: _Collector) -> None:
        if self._collector is not None:
            self._collector.transport.loseConnection()
        self._collector = collector
        self._attached_at = self._clock.seconds()
        self.log.info("collector connected; replaying {replay}, sending {pending} buffered",
                      replay=len(self._recent), pending=len(self._pending))
        for line in list(self._recent):
            collector.transport.write(line)
        self._flush()

    def detach(self, collector: _Collector) -> None:
        if self._collector is collector:
            self._collector = None
            self.log.info("collector disconnected; buffering")

    # generation
    def _tick(self) -> None:
        per_tick = max(1, int(self._rate * self._loop.interval + 0.5)) if self._rate > 0 else 1
        for _ in range(per_tick):
            if self._count and self.generated >= self._count:
                break
            self._emit_one()
        self._flush()
        if self._finished() and not self._done_called:
            self._done_called = True
            if self._on_done is not None:
                self._on_done()

    def _finished(self) -> bool:
        """All calls generated and delivered to a collector that has kept the connection for ``linger``
        seconds: a collector that drops right after our last write may have lost the tail, and a PBX
        would replay it on the next connection, so we stay until the delivery looks settled."""
        return (bool(self._count) and self.generated >= self._count and not self._pending
                and self._collector is not None
                and self._clock.seconds() - self._attached_at >= self._linger)

    def _emit_one(self) -> None:
        now = datetime.fromtimestamp(self._clock.seconds(), tz=timezone.utc).astimezone(self._tz)
        call = self._generate(self._rng, now, self._extensions, self._trunks)
        # A PBX prints the record when the call ends, so the start lies a duration in the past.
        call = _shift_start(call, now - timedelta(seconds=call.duration + (call.ring or 0)))
        line = self._spec.format_record(call, self._options)
        self.generated += 1
        if self._record is not None:
            self._record.write(json.dumps({
                "seq": self.generated, "raw": line.decode("latin-1").rstrip("\r\n"),
                "start": call.start.isoformat(), "extension": call.extension, "dialled": call.dialled,
                "caller": call.caller, "duration": call.duration, "direction": call.direction,
                "answered": call.answered,
            }) + "\n")
            self._record.flush()
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
            self.log.warn("PBX buffer full: oldest record dropped (dropped so far: {dropped})",
                          dropped=self.dropped)
        self._pending.append(line)

    def _flush(self) -> None:
        collector = self._collector
        while collector is not None and self._pending:
            line = self._pending.popleft()
            collector.transport.write(line)
            self._recent.append(line)
            self.sent += 1


def _shift_start(call: Any, start: datetime) -> Any:
    return dataclasses.replace(call, start=start.replace(microsecond=0))


def make_pbx_simulator(simulator: PbxSimulator, reactor: Any, *, connect: str = "", listen: str = "",
                       serial: str = "", baudrate: int = 9600) -> PbxSimulator:
    """Attach the transport: connect to a collector, listen for one, or write to a serial device."""
    factory = simulator.factory()
    if connect:
        host, port = connect.rsplit(":", 1)
        ClientService(TCP4ClientEndpoint(reactor, host, int(port)), factory, retryPolicy=RETRY_POLICY,
                      clock=reactor).setServiceParent(simulator)
    elif listen:
        host, _, port = listen.rpartition(":")
        StreamServerEndpointService(TCP4ServerEndpoint(reactor, int(port), interface=host or "0.0.0.0"),
                                    factory).setServiceParent(simulator)
    elif serial:
        ClientService(SerialEndpoint(reactor, serial, baudrate=baudrate), factory, retryPolicy=RETRY_POLICY,
                      clock=reactor).setServiceParent(simulator)
    else:
        raise ValueError("give one of --connect, --listen or --serial")
    return simulator
