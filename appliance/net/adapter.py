"""The one Twisted adapter for every sans-IO link (ARCHITECTURE.md, "The sans-IO contract").

Bytes from the transport go to ``link.receive_data(data, now)``; whatever the link queued is written at
once; one ``callLater`` is armed for ``link.deadline()``. Events go to ``on_events``. A ``ProtocolError``
or a link that sets ``wants_close`` drops the connection; the owning service reconnects with backoff.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from appliance.drivers import Link
from appliance.errors import ProtocolError
from appliance.events import Command, Event

EventHandler = Callable[["LinkProtocol", list[Event]], None]


class LinkProtocol(Protocol):
    log = Logger()

    def __init__(self, link: Link, clock: Any, on_events: EventHandler, name: str) -> None:
        self.link = link
        self.clock = clock
        self.name = name
        self._on_events = on_events
        self._timer: IDelayedCall | None = None
        self.connected_since: float | None = None

    # Twisted callbacks
    def connectionMade(self) -> None:  # noqa: N802
        self.connected_since = self.clock.seconds()
        self._step(lambda now: self.link.connection_made(now))

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self._step(lambda now: self.link.receive_data(data, now))

    def connectionLost(self, reason: Failure | None = None) -> None:  # noqa: N802
        self.connected = False
        self._cancel_timer()
        try:
            events = self.link.connection_lost(self.clock.seconds())
        except ProtocolError as exc:
            self.log.warn("link {link}: error while closing: {error}", link=self.name, error=str(exc))
            events = []
        if events:
            self._on_events(self, events)

    # commands from the owning service
    def send(self, command: Command) -> None:
        self._step(lambda now: (self.link.send(command, now), [])[1])

    def _step(self, action: Callable[[float], list[Event]]) -> None:
        now = self.clock.seconds()
        try:
            events = action(now)
        except ProtocolError as exc:
            self.log.warn("link {link}: protocol error, dropping the connection: {error}",
                          link=self.name, error=str(exc))
            self._flush()
            self.transport.loseConnection()
            return
        self._flush()
        self._arm()
        if events:
            self._on_events(self, events)
        if getattr(self.link, "wants_close", False) and self.transport is not None:
            self.transport.loseConnection()

    def _flush(self) -> None:
        data = self.link.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def _arm(self) -> None:
        deadline = self.link.deadline()
        if self._timer is not None and self._timer.active():
            if deadline is not None and abs(self._timer.getTime() - deadline) < 1e-6:
                return
            self._timer.cancel()
        self._timer = None
        if deadline is not None:
            delay = max(0.0, deadline - self.clock.seconds())
            self._timer = self.clock.callLater(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._step(lambda now: self.link.handle_timeout(now))

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class LinkFactory(Factory):
    """Builds a fresh link and protocol per connection."""

    def __init__(self, make_link: Callable[[], Link], clock: Any, on_events: EventHandler, name: str,
                 on_connect: Callable[[LinkProtocol], None] | None = None) -> None:
        self._make_link = make_link
        self._clock = clock
        self._on_events = on_events
        self._name = name
        self._on_connect = on_connect

    def buildProtocol(self, addr: Any) -> LinkProtocol:  # noqa: N802
        protocol = LinkProtocol(self._make_link(), self._clock, self._on_events, self._name)
        protocol.factory = self
        if self._on_connect is not None:
            self._on_connect(protocol)
        return protocol
