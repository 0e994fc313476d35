"""Transports for links: the YAML chooses the transport apart from the driver (ARCHITECTURE.md).

- ``tcp-client``: we connect; ``ClientService`` reconnects with backoff on the injected clock. With
  ``tls`` (a PMS driver's ``TlsOptions``: ca, cert, key, verify, hostname) the endpoint is wrapped in TLS
  (``wrapClientTLS``), as FIAS 2.20.24's "TCP/IP SSL stream" with mutual certificates needs.
- ``tcp-server``: the PBX connects in; every connection gets its own link.
- ``serial``: pyserial through ``twisted.internet.serialport`` wrapped as a client endpoint, so a USB
  adapter that vanishes is reconnected exactly like a dropped TCP link.
- ``file``: a log file (or a folder of them) read from the start and followed as it grows; re-reading is
  safe because the pipeline deduplicates. A folder with a ``processed`` folder inside is a drop folder
  (CDR files pushed by SFTP, one a minute from Cisco CUCM): each file is moved into ``processed`` once it
  has been read to the end and left alone for a while, so the folder does not grow without end and a
  restart does not read a day of files again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from twisted.application.internet import ClientService, StreamServerEndpointService, backoffPolicy
from twisted.application.service import IService, Service
from twisted.internet import error
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from appliance.config import LinkConfig

RETRY_POLICY = backoffPolicy(initialDelay=1.0, maxDelay=30.0, factor=2.0)


@implementer(IStreamClientEndpoint)
class SerialEndpoint:
    def __init__(self, reactor: Any, device: str, *, baudrate: int = 9600, bytesize: int = 8,
                 parity: str = "N", stopbits: int = 1) -> None:
        self._reactor = reactor
        self._device = device
        self._settings = {"baudrate": baudrate, "bytesize": bytesize, "parity": parity, "stopbits": stopbits}

    def connect(self, factory: Factory) -> Deferred[Protocol]:
        from serial import SerialException
        from twisted.internet.serialport import SerialPort

        protocol = factory.buildProtocol(None)
        try:
            SerialPort(protocol, self._device, self._reactor, **self._settings)
        except (SerialException, OSError) as exc:
            return fail(error.ConnectError(string=f"cannot open {self._device}: {exc}"))
        return succeed(protocol)


class _FileTransport:
    """What a link protocol needs of a transport when its bytes come from a file: nowhere to write."""

    disconnecting = False

    def write(self, data: bytes) -> None:
        pass

    def loseConnection(self) -> None:  # noqa: N802 (transport API)
        self.disconnecting = True

    def getPeer(self) -> str:  # noqa: N802
        return "file"


class FileFollowService(Service):
    """Read a file (or every file in a folder) from the start, then keep following it as it grows."""

    log = Logger()
    CHUNK = 64 * 1024
    IDLE_POLLS_BEFORE_FLUSH = 3
    # Polls after the flush before a drop-folder file is moved away: the records it gave are journaled by
    # a database job that runs after the flush, and a moved file is not read again after a crash.
    IDLE_POLLS_BEFORE_MOVE = 3
    PROCESSED = "processed"

    def __init__(self, path: str, factory: Factory, clock: Any, *, poll_interval: float = 1.0,
                 may_read: Callable[[], bool] = lambda: True) -> None:
        self._path = Path(path)
        self._factory = factory
        self._clock = clock
        self._poll_interval = poll_interval
        self._may_read = may_read
        self._offsets: dict[Path, int] = {}
        self._protocols: dict[Path, Protocol] = {}
        self._idle: dict[Path, int] = {}
        self._loop = LoopingCall(self._poll)
        self._loop.clock = clock

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self._loop.start(self._poll_interval, now=True)

    def stopService(self) -> None:  # noqa: N802
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        for protocol in self._protocols.values():
            protocol.connectionLost(None)
        self._protocols.clear()

    def files(self) -> list[Path]:
        if self._path.is_dir():
            return sorted(p for p in self._path.iterdir() if p.is_file() and not p.name.startswith("."))
        return [self._path] if self._path.exists() else []

    def _poll(self) -> None:
        for path in self.files():
            while self._may_read() and self._read_some(path):
                pass

    def _read_some(self, path: Path) -> bool:
        offset = self._offsets.get(path, 0)
        try:
            size = os.stat(path).st_size
            if size < offset:  # truncated or rotated in place: start again (dedup makes it safe)
                offset = 0
            if size == offset:
                self._maybe_flush(path)
                return False
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read(self.CHUNK)
        except OSError as exc:
            self.log.warn("cannot read {path}: {error}", path=str(path), error=str(exc))
            return False
        self._offsets[path] = offset + len(data)
        protocol = self._protocols.get(path)
        if protocol is None:
            protocol = self._factory.buildProtocol(None)
            protocol.makeConnection(_FileTransport())
            self._protocols[path] = protocol
        self._idle[path] = 0
        protocol.dataReceived(data)
        return True

    def _maybe_flush(self, path: Path) -> None:
        """A file's last record often has no newline; once the file has been still for a few polls,
        treat what is buffered as complete (a writer still mid-line would have moved on by then)."""
        self._idle[path] = self._idle.get(path, 0) + 1
        protocol = self._protocols.get(path)
        if protocol is not None and self._idle[path] >= self.IDLE_POLLS_BEFORE_FLUSH:
            protocol.connectionLost(None)
            del self._protocols[path]
        if self._idle[path] >= self.IDLE_POLLS_BEFORE_FLUSH + self.IDLE_POLLS_BEFORE_MOVE:
            self._move_processed(path)

    def _move_processed(self, path: Path) -> None:
        """In a drop folder (a folder with ``processed/`` in it) move a file that is done into it."""
        target_dir = path.parent / self.PROCESSED
        if path.parent != self._path or not target_dir.is_dir():
            return
        target = target_dir / path.name
        counter = 1
        while target.exists():  # the same name pushed twice: keep both
            target = target_dir / f"{path.name}.{counter}"
            counter += 1
        try:
            os.replace(path, target)
        except OSError as exc:
            self.log.warn("cannot move {path} to {target}: {error}", path=str(path), target=str(target),
                          error=str(exc))
            return
        self.log.info("processed {path}", path=str(path))
        for state in (self._offsets, self._idle):
            state.pop(path, None)


def client_tls(tls: Any, host: str) -> Any:
    """A TLS connection creator from ``TlsOptions``-like settings (PEM files)."""
    from twisted.internet import ssl

    client = None
    if tls.cert:
        with open(tls.cert, encoding="ascii") as cert, open(tls.key, encoding="ascii") as key:
            client = ssl.PrivateCertificate.loadPEM(cert.read() + "\n" + key.read())
    if not tls.verify:
        if client is None:
            return ssl.CertificateOptions(verify=False)
        return ssl.CertificateOptions(verify=False, privateKey=client.privateKey.original,
                                      certificate=client.original)
    trust = ssl.platformTrust()
    if tls.ca:
        with open(tls.ca, encoding="ascii") as ca:
            trust = ssl.Certificate.loadPEM(ca.read())
    return ssl.optionsForClientTLS(tls.hostname or host, trustRoot=trust, clientCertificate=client)


def make_transport_service(link: LinkConfig, factory: Factory, reactor: Any, *,
                           may_read: Callable[[], bool] = lambda: True, tls: Any = None) -> IService:
    if link.transport == "tcp-client":
        endpoint = TCP4ClientEndpoint(reactor, link.host, link.port, timeout=10)
        if tls is not None:
            from twisted.internet.endpoints import wrapClientTLS

            endpoint = wrapClientTLS(client_tls(tls, link.host), endpoint)
        return ClientService(endpoint, factory, retryPolicy=RETRY_POLICY, clock=reactor)
    if link.transport == "tcp-server":
        endpoint = TCP4ServerEndpoint(reactor, link.port, interface=link.host or "0.0.0.0")
        return StreamServerEndpointService(endpoint, factory)
    if link.transport == "serial":
        endpoint = SerialEndpoint(reactor, link.device, baudrate=link.baudrate, bytesize=link.bytesize,
                                  parity=link.parity, stopbits=link.stopbits)
        return ClientService(endpoint, factory, retryPolicy=RETRY_POLICY, clock=reactor)
    if link.transport == "file":
        return FileFollowService(link.path, factory, reactor, may_read=may_read)
    raise ValueError(f"unknown transport {link.transport!r}")
