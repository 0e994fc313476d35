"""The PMS simulator, Twisted side: plays IFC8 (``FiasPmsPeer``) or a serial posting PMS (HOBIC, STX).

Protocols: Oracle Hospitality *HGBU-IFC8-FIAS Interface Specification* 2.20.23 (see
``/work/shared/reference/fias.md``; the PMS behaviour is in ``pms_drivers.fias.peer``), and the serial
posting protocols of fias.md §7 (``pms_drivers.hobic_peer``, ``pms_drivers.stx_peer``). The peer listens
on TCP (optionally TLS, as FIAS 2.20.24's SSL stream) or opens a serial device (``--serial``: a real
port or one end of a pseudo-terminal). This module only moves bytes and time:

- ``PmsSimulator`` owns one ``FiasPmsPeer`` (roster, faults and received postings live across
  connections). After every call into the peer it writes ``data_to_send()``, closes the transport when
  the peer ``wants_close``, and arms one ``callLater`` for ``deadline()``. The clock is injected.
- One vendor connection at a time: a new connection displaces the old one, as IFC8 usually does (§1).
  A serial line is never closed: when the peer gives up on the vendor it starts over on the same line.
- Every PS received becomes one JSON line (the posting's fields plus ``received_at``) in the optional
  record file, written and flushed *before* its PA is sent, so a test that kills the appliance can
  compare the file with the appliance's database.
- A line-based control port (optional) takes commands and answers one line each (``OK ...`` or
  ``ERR ...``); the language is ``pms_drivers.fias.peer_control`` (``help`` lists the commands).
- ``make_pms_simulator_service`` builds the services for the CLI (``appliance simulate pms``) and for
  the in-process demo; ``PmsSimulator.execute(line)`` runs a control command in-process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

from twisted.application.service import MultiService, Service
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTCP, IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from appliance.errors import ProtocolError
from appliance.events import Ignored
from pms_drivers.fias.peer import AnswerPolicy, FiasPmsPeer, PeerEvent, PeerNote, PostingReceived
from pms_drivers.fias.peer_control import PmsControl
from pms_drivers.fias.peer_model import Roster
from pms_drivers.serial_peer import LinePeerControl

log = Logger(namespace="appliance.pms_simulator")


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` (all interfaces); raises ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class PmsSimulator:
    """The simulated PMS that all connections share."""

    def __init__(
        self,
        *,
        clock: IReactorTime,
        encoding: str = "cp850",
        lrc: bool = False,
        ack_nak: bool = False,
        answer_policy: AnswerPolicy = "roster",
        open_with_ls: bool = True,
        roster: Roster | None = None,
        record_file: IO[str] | None = None,
        peer: Any = None,
        serial: bool = False,
    ) -> None:
        self.clock = clock
        self.serial = serial
        self.record_file = record_file
        self.vendor: PmsProtocol | None = None
        self.control: Any
        if peer is None:
            self.peer: Any = FiasPmsPeer(
                encoding=encoding,
                lrc=lrc,
                ack_nak=ack_nak,
                roster=roster,
                answer_policy=answer_policy,
                open_with_ls=open_with_ls,
            )
            self.control = PmsControl(self.peer, connected=lambda: self.vendor is not None)
        else:
            self.peer = peer
            self.control = LinePeerControl(peer, connected=lambda: self.vendor is not None)
        self._timer: IDelayedCall | None = None

    # ------------------------------------------------------------ driving the peer

    def attach(self, protocol: PmsProtocol) -> None:
        old, self.vendor = self.vendor, protocol
        if old is not None and old.transport is not None:
            log.info("new vendor connection displaces the old one")
            old.transport.abortConnection()
        self._run(lambda now: self.peer.connection_made(now))

    def detach(self, protocol: PmsProtocol) -> None:
        if protocol is not self.vendor:
            return  # a displaced connection going away
        self.vendor = None
        self._run(lambda now: self.peer.connection_lost(now))

    def feed(self, protocol: PmsProtocol, data: bytes) -> None:
        if protocol is not self.vendor:
            return
        log.debug("from vendor: {data!r}", data=data)
        try:
            self._run(lambda now: self.peer.receive_data(data, now))
        except ProtocolError as exc:
            log.warn("vendor broke the protocol: {error}; closing", error=str(exc))  # noqa: G010
            if protocol.transport is not None:
                protocol.transport.loseConnection()

    def _run(self, call: Callable[[float], list[PeerEvent]]) -> None:
        events = call(self.clock.seconds())
        self._report(events)  # the record file first: the PA must not leave before its line is stored
        vendor = self.vendor
        if vendor is not None and vendor.transport is not None:
            data = self.peer.data_to_send()
            if data:
                log.debug("to vendor: {data!r}", data=data)
                vendor.transport.write(data)
            if self.peer.wants_close:
                if self.serial:  # a serial line stays open: start over on it
                    self._report(self.peer.connection_lost(self.clock.seconds()))
                    self._report(self.peer.connection_made(self.clock.seconds()))
                    data = self.peer.data_to_send()
                    if data:
                        vendor.transport.write(data)
                else:
                    vendor.transport.loseConnection()
        else:
            self.peer.data_to_send()  # nobody to send it to
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        deadline = self.peer.deadline()
        if deadline is not None:
            delay = max(0.0, deadline - self.clock.seconds())
            self._timer = self.clock.callLater(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._run(lambda now: self.peer.handle_timeout(now))

    def _report(self, events: list[PeerEvent]) -> None:
        for event in events:
            if isinstance(event, PostingReceived):
                posting = event.posting
                log.info(
                    "PS P#{sequence} room {room} TA {amount}: answer {answer}",
                    sequence=posting.sequence,
                    room=posting.room,
                    amount=posting.amount,
                    answer=posting.answer or "none",
                )
                if self.record_file is not None:
                    line = posting.as_json(self.peer.encoding)
                    line["received_at"] = datetime.fromtimestamp(posting.received_at, UTC).isoformat()
                    self.record_file.write(json.dumps(line, ensure_ascii=False) + "\n")
                    self.record_file.flush()
            elif isinstance(event, PeerNote):
                log.info("{text}", text=event.text)
            elif isinstance(event, Ignored):
                log.info("ignored: {reason}: {raw!r}", reason=event.reason, raw=event.raw)

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self.vendor is not None and self.vendor.transport is not None:
            self.vendor.transport.loseConnection()

    # ------------------------------------------------------------ the control channel

    def execute(self, line: str) -> str:
        """Run one control command (``pms_drivers.fias.peer_control``); answers one OK or ERR line."""
        answer = self.control.execute(line, self.clock.seconds())
        self._run(lambda now: [])  # send what the command queued for the vendor
        return answer


class PmsProtocol(Protocol):
    """One vendor connection; everything is done by the shared ``PmsSimulator``."""

    def __init__(self, simulator: PmsSimulator) -> None:
        self.simulator = simulator

    def connectionMade(self) -> None:
        peer = "serial line" if self.simulator.serial else self.transport.getPeer()
        log.info("vendor connected from {peer}", peer=peer)
        self.simulator.attach(self)

    def dataReceived(self, data: bytes) -> None:
        self.simulator.feed(self, data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.simulator.detach(self)


class ControlProtocol(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 1024

    def __init__(self, simulator: PmsSimulator) -> None:
        self.simulator = simulator

    def lineReceived(self, line: bytes) -> None:
        command = line.decode("utf-8", errors="replace").strip()
        if command:
            answer = self.simulator.execute(command)
            log.info("control: {command} -> {answer}", command=command, answer=answer)
            self.sendLine(answer.encode("utf-8"))

    def lineLengthExceeded(self, line: bytes) -> None:
        self.sendLine(b"ERR line too long")
        if self.transport is not None:
            self.transport.loseConnection()


class _SimulatorFactory(Factory):
    noisy = False

    def __init__(self, simulator: PmsSimulator, protocol: type[Protocol]) -> None:
        self.simulator = simulator
        self.protocol_class = protocol

    def buildProtocol(self, addr: Any) -> Protocol:
        proto = self.protocol_class(self.simulator)  # type: ignore[call-arg]
        proto.factory = self
        return proto


def vendor_factory(simulator: PmsSimulator) -> Factory:
    return _SimulatorFactory(simulator, PmsProtocol)


def control_factory(simulator: PmsSimulator) -> Factory:
    return _SimulatorFactory(simulator, ControlProtocol)


class ListenService(Service):
    """Listen on ``host:port`` while running; ``port`` is the listening port (its real number after :0)."""

    def __init__(
        self,
        reactor: IReactorTCP,
        host: str,
        port: int,
        factory: Factory,
        *,
        label: str,
        on_error: Callable[[Failure], None] | None = None,
        tls: Any = None,
    ) -> None:
        if tls is not None:
            self.endpoint: Any = SSL4ServerEndpoint(reactor, port, tls, interface=host)
        else:
            endpoint_class = TCP6ServerEndpoint if ":" in host else TCP4ServerEndpoint
            self.endpoint = endpoint_class(reactor, port, interface=host)
        self.factory = factory
        self.label = label
        self.port: IListeningPort | None = None
        self._on_error = on_error

    def startService(self) -> None:
        super().startService()
        self.endpoint.listen(self.factory).addCallbacks(self._listening, self._failed)

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        address = port.getHost()
        log.info("{label} listening on {host}:{port}", label=self.label, host=address.host, port=address.port)

    def _failed(self, failure: Failure) -> None:
        log.error("{label} cannot listen: {error}", label=self.label, error=failure.getErrorMessage())
        if self._on_error is not None:
            self._on_error(failure)

    def stopService(self) -> Any:
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None


class SerialLineService(Service):
    """Open a serial device (or one end of a pseudo-terminal) for the simulator while running."""

    def __init__(self, reactor: Any, simulator: PmsSimulator, device: str, *, baudrate: int = 9600,
                 bytesize: int = 8, parity: str = "N", stopbits: int = 1,
                 on_error: Callable[[Failure], None] | None = None) -> None:
        self.reactor = reactor
        self.simulator = simulator
        self.device = device
        self.settings = {"baudrate": baudrate, "bytesize": bytesize, "parity": parity, "stopbits": stopbits}
        self.port: Any = None
        self._on_error = on_error

    def startService(self) -> None:
        super().startService()
        from serial import SerialException
        from twisted.internet.serialport import SerialPort

        try:
            self.port = SerialPort(PmsProtocol(self.simulator), self.device, self.reactor, **self.settings)
        except (SerialException, OSError) as exc:
            log.error("cannot open {device}: {error}", device=self.device, error=str(exc))
            if self._on_error is not None:
                self._on_error(Failure(exc))
            return
        log.info("PMS simulator on serial {device} {baud} {bits}{parity}{stop}", device=self.device,
                 baud=self.settings["baudrate"], bits=self.settings["bytesize"], parity=self.settings["parity"],
                 stop=self.settings["stopbits"])

    def stopService(self) -> Any:
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            port.loseConnection()
        return None


def server_tls(cert: str, key: str, ca: str = "") -> Any:
    """A TLS context for the simulator's vendor port; with ``ca`` the vendor must show a certificate
    signed by it (the mutual check of FIAS 2.20.24)."""
    from twisted.internet import ssl

    with open(cert, encoding="ascii") as cert_file, open(key, encoding="ascii") as key_file:
        own = ssl.PrivateCertificate.loadPEM(cert_file.read() + "\n" + key_file.read())
    if not ca:
        return own.options()
    with open(ca, encoding="ascii") as ca_file:
        return own.options(ssl.Certificate.loadPEM(ca_file.read()))


class SimulatorService(MultiService):
    """The vendor port, the optional control port, and the simulator's clean-up on stop."""

    def __init__(self, simulator: PmsSimulator) -> None:
        super().__init__()
        self.simulator = simulator

    def stopService(self) -> Any:
        self.simulator.stop()
        return super().stopService()


def make_pms_simulator_service(
    simulator: PmsSimulator,
    *,
    reactor: IReactorTCP,
    listen: str = "",
    control: str | None = None,
    on_error: Callable[[Failure], None] | None = None,
    serial: dict[str, Any] | None = None,
    tls: Any = None,
) -> SimulatorService:
    """Services for a simulator: the vendor port (``listen``, ``HOST:PORT``, optionally TLS) or a serial
    line (``serial``: device and line settings), and the control port."""
    service = SimulatorService(simulator)
    vendor: Service
    if serial is not None:
        vendor = SerialLineService(reactor, simulator, on_error=on_error, **serial)
    else:
        host, port = parse_host_port(listen)
        vendor = ListenService(reactor, host, port, vendor_factory(simulator), on_error=on_error, tls=tls,
                               label=f"{getattr(simulator.peer, 'protocol', 'FIAS')} PMS simulator")
    vendor.setName("fias")
    vendor.setServiceParent(service)
    if control:
        host, port = parse_host_port(control)
        control_service = ListenService(
            reactor, host, port, control_factory(simulator), label="PMS simulator control", on_error=on_error
        )
        control_service.setName("control")
        control_service.setServiceParent(service)
    return service
