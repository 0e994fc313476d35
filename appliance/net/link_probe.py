"""``Test this link`` for the first-boot setup: a few seconds on a PBX or PMS link, and what was seen.

Blocking sockets (or pyserial), meant to run in a web admin worker thread; the protocol stays in the
drivers, used exactly as the daemon uses them (the sans-IO ``Link`` contract of ``appliance.drivers``):

- PBX link: open the link's transport (connect for ``tcp-client``, listen and wait for the PBX to connect
  for ``tcp-server``, the device for ``serial``, the end of the file for ``file``), feed what arrives to the
  driver's framer and ``parse_record``, and report each record with how it parsed. Links that log in
  (``data_to_send`` after ``connection_made``) do so as in the daemon.
- PMS link: run the driver's link state machine until it reports ``LinkReady``; for FIAS that is the
  LS / LD / LR... / LA handshake of the Oracle FIAS 2.20.23 specification (§2 of
  ``/work/shared/reference/fias.md``). Every frame sent and received is reported, framing bytes named.

Nothing is written to the database and no posting is sent. Every failure becomes a ``ProbeResult`` with
``ok=False`` and a sentence for the installer; nothing raises.
"""

from __future__ import annotations

import os
import select
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from appliance.config import LinkConfig
from appliance.drivers import DriverSpec, ParseContext
from appliance.events import CallRecord, Ignored, LinkDown, LinkReady, LinkUp, RecordReceived

READ_SIZE = 4096
FILE_TAIL_BYTES = 16384
CONTROL_NAMES = {0x02: "<STX>", 0x03: "<ETX>", 0x04: "<EOT>", 0x05: "<ENQ>", 0x06: "<ACK>", 0x15: "<NAK>",
                 0x0D: "<CR>", 0x0A: "<LF>"}


@dataclass(frozen=True)
class ProbeLine:
    """One thing seen: ``direction`` is ``in`` (from the peer), ``out`` (to it) or ``note``."""

    direction: str
    text: str
    detail: str = ""


@dataclass
class ProbeResult:
    ok: bool = False
    summary: str = ""
    lines: list[ProbeLine] = field(default_factory=list)


class Channel(Protocol):
    def recv(self, timeout: float) -> bytes | None: ...  # b"" on close, None on timeout
    def send(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class ProbeFailed(Exception):
    """The transport could not be opened; the message is for the installer."""


def show_bytes(data: bytes) -> str:
    """Bytes as readable text: printable ASCII as is, control bytes by name, anything else as hex."""
    out = []
    for byte in data:
        if byte in CONTROL_NAMES:
            out.append(CONTROL_NAMES[byte])
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"<{byte:02X}>")
    return "".join(out)


# FIAS record types (Spec 2.20.23; fias.md §2-§4), to say what each frame of the handshake is.
FIAS_RECORDS = {
    "LS": "link start", "LD": "link description (date, time, version, interface family)",
    "LR": "link record: a record type and the fields this side uses", "LA": "link alive",
    "LE": "link end", "PS": "posting", "PA": "posting answer", "DR": "database resync request",
    "DS": "database resync start", "DE": "database resync end", "GI": "guest check-in",
    "GO": "guest check-out", "GC": "guest data change", "NS": "night audit start", "NE": "night audit end",
}


def fias_meaning(frame: str) -> str:
    body = frame.removeprefix("<STX>")
    return FIAS_RECORDS.get(body[:2], "") if body != frame else ""


def show_frames(data: bytes) -> list[str]:
    """``show_bytes`` of each frame: a chunk is cut after every ETX (with its LRC byte on serial links,
    which ``show_bytes`` shows after the ETX) and after every lone ACK/NAK, so each record reads alone."""
    frames: list[str] = []
    start = 0
    for index, byte in enumerate(data):
        if byte == 0x03 or (byte in (0x06, 0x15) and index == start):
            end = index + 1
            if byte == 0x03 and end < len(data) and data[end] not in (0x02, 0x06, 0x15):
                end += 1  # the LRC after ETX
            if end > start:
                frames.append(show_bytes(data[start:end]))
            start = end
    if start < len(data):
        frames.append(show_bytes(data[start:]))
    return frames


# -- transports ---------------------------------------------------------------------------------------------

class _SocketChannel:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def recv(self, timeout: float) -> bytes | None:
        ready, _, _ = select.select([self._sock], [], [], max(0.0, timeout))
        if not ready:
            return None
        try:
            return self._sock.recv(READ_SIZE)
        except OSError:
            return b""

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


class _SerialChannel:
    def __init__(self, port: Any) -> None:
        self._port = port

    def recv(self, timeout: float) -> bytes | None:
        self._port.timeout = max(0.05, min(timeout, 0.5))
        data = self._port.read(READ_SIZE)
        return data or None

    def send(self, data: bytes) -> None:
        self._port.write(data)

    def close(self) -> None:
        self._port.close()


class _BytesChannel:
    """The tail of a file for a ``file`` link: what the PBX last wrote."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def recv(self, timeout: float) -> bytes | None:
        data, self._data = self._data, b""
        return data

    def send(self, data: bytes) -> None:  # a file has no one to answer
        pass

    def close(self) -> None:
        pass


def open_channel(link: LinkConfig, deadline: float, lines: list[ProbeLine]) -> Channel:
    """Open ``link``'s transport, waiting until ``deadline`` at most (time.monotonic())."""
    remaining = max(0.5, deadline - time.monotonic())
    if link.transport == "tcp-client":
        try:
            sock = socket.create_connection((link.host, link.port), timeout=min(remaining, 10.0))
        except OSError as exc:
            raise ProbeFailed(f"cannot connect to {link.host}:{link.port}: {exc.strerror or exc}") from None
        sock.setblocking(True)
        lines.append(ProbeLine("note", f"connected to {link.host}:{link.port}"))
        return _SocketChannel(sock)
    if link.transport == "tcp-server":
        host = link.host or "0.0.0.0"
        server = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind((host, link.port))
            server.listen(1)
        except OSError as exc:
            server.close()
            raise ProbeFailed(f"cannot listen on {host}:{link.port}: {exc.strerror or exc} "
                              "(is the daemon already serving this port?)") from None
        lines.append(ProbeLine("note", f"listening on {host}:{link.port}, waiting for the PBX to connect"))
        try:
            ready, _, _ = select.select([server], [], [], remaining)
            if not ready:
                raise ProbeFailed(f"the PBX did not connect to port {link.port} within {remaining:.0f} s: "
                                  "check the PBX's SMDR/CDR output address and port")
            sock, peer = server.accept()
        finally:
            server.close()
        lines.append(ProbeLine("note", f"the PBX connected from {peer[0]}"))
        return _SocketChannel(sock)
    if link.transport == "serial":
        import serial  # pyserial

        try:
            port = serial.Serial(link.device, baudrate=link.baudrate, bytesize=link.bytesize,
                                 parity=link.parity, stopbits=link.stopbits, timeout=0.5)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ProbeFailed(f"cannot open {link.device}: {exc}") from None
        lines.append(ProbeLine("note", f"opened {link.describe()}"))
        return _SerialChannel(port)
    if link.transport == "file":
        try:
            size = os.path.getsize(link.path)
            with open(link.path, "rb") as handle:
                handle.seek(max(0, size - FILE_TAIL_BYTES))
                data = handle.read()
        except OSError as exc:
            raise ProbeFailed(f"cannot read {link.path}: {exc.strerror or exc}") from None
        lines.append(ProbeLine("note", f"read the last {len(data)} bytes of {link.path}"))
        return _BytesChannel(data)
    raise ProbeFailed(f"transport {link.transport!r} cannot be tested")


# -- the probes -------------------------------------------------------------------------------------------------

def describe_call(call: CallRecord, tz: ZoneInfo) -> str:
    start = call.start.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    minutes, seconds = divmod(call.duration, 60)
    number = call.dialled or call.caller or "-"
    return (f"{call.direction} call, extension {call.extension or '-'}, number {number}, {start}, "
            f"{minutes}:{seconds:02d}{', trunk ' + call.trunk if call.trunk else ''}"
            f"{'' if call.answered else ', not answered'}")


def probe_pbx(link: LinkConfig, spec: DriverSpec, options: Any, *, tz: ZoneInfo, seconds: float = 10.0,
              max_records: int = 10, channel: Channel | None = None) -> ProbeResult:
    """Listen to a PBX link for ``seconds`` (or until ``max_records``) and parse what arrives."""
    result = ProbeResult()
    deadline = time.monotonic() + seconds
    calls = ignored = 0
    try:
        if channel is None:
            channel = open_channel(link, deadline, result.lines)
    except ProbeFailed as exc:
        result.summary = str(exc)
        return result
    assert spec.parse_record is not None
    driver_link = spec.make_link(options)

    def handle(events: list[Any]) -> bool:
        nonlocal calls, ignored
        out = driver_link.data_to_send()
        if out:
            result.lines.append(ProbeLine("out", show_bytes(out)))
            channel.send(out)
        for event in events:
            if isinstance(event, RecordReceived):
                parsed = spec.parse_record(event.raw, options, ParseContext(tz=tz, received_at=datetime.now(timezone.utc)))
                if isinstance(parsed, CallRecord):
                    calls += 1
                    result.lines.append(ProbeLine("in", show_bytes(event.raw), describe_call(parsed, tz)))
                else:
                    ignored += 1
                    result.lines.append(ProbeLine("in", show_bytes(event.raw), f"not a call: {parsed.reason}"))
            elif isinstance(event, Ignored):
                ignored += 1
                result.lines.append(ProbeLine("in", show_bytes(event.raw), f"not a call: {event.reason}"))
            elif isinstance(event, LinkDown):
                result.lines.append(ProbeLine("note", f"link down: {event.reason}"))
        return calls + ignored >= max_records

    closed = False
    try:
        done = handle(driver_link.connection_made(time.time()))
        while not done and time.monotonic() < deadline:
            timer = driver_link.deadline()
            wait = deadline - time.monotonic()
            if timer is not None:
                wait = min(wait, max(0.0, timer - time.time()))
            data = channel.recv(wait)
            if data is None:
                if timer is not None and time.time() >= timer:
                    done = handle(driver_link.handle_timeout(time.time()))
                continue
            if data == b"":
                closed = True
                break
            done = handle(driver_link.receive_data(data, time.time()))
        handle(driver_link.connection_lost(time.time()) if closed or link.transport == "file" else [])
    except OSError as exc:
        result.lines.append(ProbeLine("note", f"connection error: {exc.strerror or exc}"))
    finally:
        channel.close()
    if calls:
        result.ok = True
        result.summary = f"{calls} call record(s) received and understood" + (
            f", {ignored} other line(s)" if ignored else "")
    elif ignored:
        result.summary = (f"{ignored} line(s) received but none is a call in the {spec.name} format: "
                          "check the driver and the PBX's output settings")
    else:
        ending = "the PBX closed the connection" if closed else f"nothing arrived in {seconds:.0f} s"
        result.summary = f"connected, but {ending}: make a call from a room phone, then test again"
    return result


def probe_pms(link: LinkConfig, spec: DriverSpec, options: Any, *, tz: ZoneInfo, seconds: float = 20.0,
              channel: Channel | None = None) -> ProbeResult:
    """Run a PMS link's handshake (FIAS: LS, LD, LR..., LA) and report every frame exchanged."""
    result = ProbeResult()
    deadline = time.monotonic() + seconds
    if hasattr(options, "for_transport"):
        options = options.for_transport(link.transport)
    try:
        if channel is None:
            channel = open_channel(link, deadline, result.lines)
    except ProbeFailed as exc:
        result.summary = str(exc)
        return result
    driver_link = spec.make_link(options, tz=tz)
    meaning = fias_meaning if spec.name == "fias" else (lambda frame: "")
    ready = False
    down = ""

    def handle(events: list[Any]) -> None:
        nonlocal ready, down
        out = driver_link.data_to_send()
        if out:
            result.lines += [ProbeLine("out", frame, meaning(frame)) for frame in show_frames(out)]
            channel.send(out)
        for event in events:
            if isinstance(event, LinkReady):
                ready = True
                result.lines.append(ProbeLine("note", "link ready" + (f": {event.detail}" if event.detail else "")))
            elif isinstance(event, LinkDown):
                down = event.reason
                result.lines.append(ProbeLine("note", f"link down: {event.reason}"))
            elif isinstance(event, LinkUp):
                continue
            elif isinstance(event, Ignored):
                result.lines.append(ProbeLine("note", f"ignored: {event.reason}"))

    closed = False
    try:
        handle(driver_link.connection_made(time.time()))
        while not ready and not down and time.monotonic() < deadline:
            if getattr(driver_link, "wants_close", False):
                break
            timer = driver_link.deadline()
            wait = deadline - time.monotonic()
            if timer is not None:
                wait = min(wait, max(0.0, timer - time.time()))
            data = channel.recv(wait)
            if data is None:
                if timer is not None and time.time() >= timer:
                    handle(driver_link.handle_timeout(time.time()))
                continue
            if data == b"":
                closed = True
                break
            result.lines += [ProbeLine("in", frame, meaning(frame)) for frame in show_frames(data)]
            handle(driver_link.receive_data(data, time.time()))
    except OSError as exc:
        down = down or f"connection error: {exc.strerror or exc}"
    except Exception as exc:  # a ProtocolError from the link: the daemon would drop the connection too
        down = down or f"protocol error: {exc}"
    finally:
        channel.close()
    if ready:
        result.ok = True
        result.summary = f"the PMS answered: {spec.name} link handshake complete, ready for postings"
    elif down:
        result.summary = f"the handshake failed: {down}"
    elif closed:
        result.summary = "the PMS closed the connection before the handshake ended"
    else:
        result.summary = (f"no complete handshake within {seconds:.0f} s: check that the PMS interface "
                          "(e.g. IFC8) is running and expects this appliance")
    return result
