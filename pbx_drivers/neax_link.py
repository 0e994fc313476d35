"""The NEC NEAX SMDR link (SV9300 / SV9500 / NEAX2400 over TCP, port 60010): request, blocks, ACK.

Sources: ``/work/shared/reference/smdr.md`` §1 and §2.5 and zombat/NEC-SMDR-Collector (``nec-pbx.js``,
``SMDR_Collector-Server.js``), the only public implementation; its byte tables are reproduced here.

Every message, either way, is ``SYN(0x16) kind length data parity``: ``kind`` one ASCII digit, ``length``
five ASCII digits counting the data bytes, ``parity`` the XOR of every byte after SYN up to the end of the
data (this rule gives every ACK and status-monitor parity byte in zombat's tables). Kinds:

    1  collector -> PBX  SMDR request, data ``0`` + device (0-3): "send me billing data"
    2  PBX -> collector  SMDR data, data ``0`` + device + sequence digit + STX record ETX [STX ... ETX]
    3  PBX -> collector  status; data position 2 ``1`` = buffer empty, ``2`` = normal
    4  collector -> PBX  ACK of block ``sequence``: data ``0`` + device + sequence + ACK(0x06)
    5  collector -> PBX  status monitor (keep-alive): data ``0`` + device + ``00`` + ACK(0x06); this link
                         keeps the line busy with its requests instead, ``status_monitor`` is for peers

The request is sent byte for byte as zombat's collector sends it (it ends in 0x06 where the XOR rule
would give 0x03 for device 0): the only public collector sends it so, and a PBX that checked the
request's parity by the XOR rule would never have answered it.

The link connects, sends a request, and sends it again every ``poll_interval`` seconds; each data block
is acknowledged with its sequence digit. A block with the sequence just acknowledged is the PBX sending it
again because our ACK was lost: it is acknowledged again and its records are not passed on twice. A block
whose parity is wrong is quarantined and not acknowledged, so the PBX repeats it. ``silence_timeout``
seconds without a message from the PBX raise ``ProtocolError``: the adapter drops the connection and the
service reconnects with backoff. Bare ``STX record ETX`` frames outside a SYN message (a capture file, a
serial printer port, the PBX simulator) are passed on as records, unacknowledged.
"""

from __future__ import annotations

from appliance.errors import ProtocolError
from appliance.events import Event, Ignored, LinkDown, LinkUp, RecordReceived

SYN, STX, ETX, ACK = 0x16, 0x02, 0x03, 0x06
KIND_REQUEST, KIND_DATA, KIND_STATUS, KIND_ACK, KIND_MONITOR = b"1", b"2", b"3", b"4", b"5"


def parity(body: bytes) -> int:
    value = 0
    for byte in body:
        value ^= byte
    return value


def message(kind: bytes, data: bytes) -> bytes:
    body = kind + f"{len(data):05d}".encode() + data
    return bytes([SYN]) + body + bytes([parity(body)])


def request(device: int) -> bytes:
    return bytes([SYN]) + KIND_REQUEST + b"00002" + b"0" + str(device).encode() + bytes([ACK])


def ack(device: int, sequence: bytes) -> bytes:
    return message(KIND_ACK, b"0" + str(device).encode() + sequence + bytes([ACK]))


def status_monitor(device: int) -> bytes:
    return message(KIND_MONITOR, b"0" + str(device).encode() + b"00" + bytes([ACK]))


def data_block(device: int, sequence: int, records: list[bytes]) -> bytes:
    """What the PBX sends: used by the tests' fake PBX and by anyone rehearsing a site."""
    frames = b"".join(bytes([STX]) + record + bytes([ETX]) for record in records)
    return message(KIND_DATA, b"0" + str(device).encode() + str(sequence % 10).encode() + frames)


class NeaxLink:
    """The sans-IO NEAX SMDR client (``appliance.drivers.Link``)."""

    def __init__(self, *, device: int = 0, poll_interval: float = 5.0, silence_timeout: float = 60.0,
                 max_length: int = 8192, poll: bool = True) -> None:
        self._device = device
        self._poll_interval = poll_interval
        self._silence_timeout = silence_timeout
        self._max_length = max_length
        self._poll = poll
        self._outgoing = bytearray()
        self._buffer = bytearray()
        self._garbage = bytearray()
        self._state = "outside"  # outside | message | frame
        self._last_sequence: bytes | None = None
        self._heard_at = 0.0
        self._polled_at = 0.0
        self.blocks = 0

    # ------------------------------------------------------------ Link protocol

    def connection_made(self, now: float) -> list[Event]:
        self._heard_at = self._polled_at = now
        if self._poll:
            self._outgoing += request(self._device)
        return [LinkUp(detail=f"SMDR device {self._device}: request sent" if self._poll else "")]

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        self._heard_at = now
        events: list[Event] = []
        for byte in data:
            if self._state == "outside":
                self._outside(byte, events)
            else:
                self._buffer.append(byte)
                if self._state == "frame" and byte == ETX:
                    events.append(RecordReceived(raw=bytes(self._buffer[:-1])))
                    self._reset()
                elif self._state == "message":
                    self._message_byte(events)
                if self._state != "outside" and len(self._buffer) > self._max_length:
                    events.append(Ignored(reason=f"block longer than {self._max_length} bytes",
                                          raw=bytes(self._buffer)))
                    self._reset()
        return events

    def connection_lost(self, now: float) -> list[Event]:
        events: list[Event] = []
        self._drop_garbage(events)
        if self._state != "outside":
            events.append(Ignored(reason="connection lost inside an SMDR block", raw=bytes(self._buffer)))
            self._reset()
        return [*events, LinkDown(reason="connection closed")]

    def send(self, command: object, now: float) -> None:
        raise TypeError(f"a PBX link takes no commands, got {type(command).__name__}")

    def data_to_send(self) -> bytes:
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    def deadline(self) -> float | None:
        if not self._poll:
            return None
        return min(self._polled_at + self._poll_interval, self._heard_at + self._silence_timeout)

    def handle_timeout(self, now: float) -> list[Event]:
        if not self._poll:
            return []
        if now >= self._heard_at + self._silence_timeout:
            raise ProtocolError(f"no message from the PBX for {self._silence_timeout:g} s")
        if now >= self._polled_at + self._poll_interval:
            self._outgoing += request(self._device)
            self._polled_at = now
        return []

    # ------------------------------------------------------------ bytes

    def _outside(self, byte: int, events: list[Event]) -> None:
        if byte in (SYN, STX):
            self._drop_garbage(events)
            self._state = "message" if byte == SYN else "frame"
            self._buffer = bytearray()
        elif byte not in (0x0D, 0x0A, 0x00):
            self._garbage.append(byte)
            if len(self._garbage) >= self._max_length:
                self._drop_garbage(events)

    def _message_byte(self, events: list[Event]) -> None:
        if len(self._buffer) < 6:
            return
        header = bytes(self._buffer[:6])
        if not header[1:].isdigit() or header[:1] not in b"123456789":
            events.append(Ignored(reason=f"not a NEAX message header: {header!r}", raw=b"\x16" + header))
            self._reset()
            return
        length = int(header[1:])
        if length > self._max_length:
            events.append(Ignored(reason=f"NEAX message length {length} over {self._max_length}",
                                  raw=b"\x16" + header))
            self._reset()
            return
        if len(self._buffer) < 6 + length + 1:
            return
        body, check = bytes(self._buffer[:6 + length]), self._buffer[6 + length]
        self._reset()
        if parity(body) != check:
            reason = f"parity {check:#04x}, expected {parity(body):#04x}: not acknowledged"
            events.append(Ignored(reason=reason,
                                  raw=b"\x16" + body + bytes([check])))
            return
        if body[:1] == KIND_DATA:
            self._data(body[6:], events)

    def _data(self, data: bytes, events: list[Event]) -> None:
        if len(data) < 3:
            events.append(Ignored(reason="SMDR data block without device and sequence", raw=data))
            return
        sequence, frames = data[2:3], data[3:]
        self._outgoing += ack(self._device, sequence)
        if sequence == self._last_sequence:
            events.append(Ignored(reason=f"block {sequence.decode('latin-1')} sent again (our ACK was lost)",
                                  raw=data, quarantine=False))
            return
        self._last_sequence = sequence
        self.blocks += 1
        for piece in frames.split(bytes([ETX]))[:-1]:
            start = piece.find(bytes([STX]))
            if start < 0:
                events.append(Ignored(reason="bytes between records in an SMDR block", raw=piece))
            else:
                events.append(RecordReceived(raw=piece[start + 1:]))

    def _drop_garbage(self, events: list[Event]) -> None:
        if self._garbage:
            events.append(Ignored(reason="bytes outside a NEAX message or STX/ETX frame",
                                  raw=bytes(self._garbage)))
            self._garbage.clear()

    def _reset(self) -> None:
        self._buffer = bytearray()
        self._state = "outside"
