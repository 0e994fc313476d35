"""Sans-IO framers: they cut a byte stream into records. All are bounded (ARCHITECTURE.md rule 6).

- ``LineFramer``: SMDR text lines ended by CR, LF, CR LF or form feed (most PBX printer ports), or any
  other delimiter set such as NUL (Samsung OfficeServ).
- ``StxEtxFramer``: ``<STX>record<ETX>`` with an optional LRC byte after ETX, as FIAS (Oracle FIAS 2.20.23
  §1, p.22 and p.91-97) and many serial PMS protocols frame them. Control bytes between frames (ACK, NAK,
  ENQ) are passed through as ``int`` so a protocol can act on them.
- ``LengthPrefixedFramer``: a little-endian length then the record (Mitel 5000 / Inter-Tel socket SMDR).

A framer's ``feed`` returns records as ``bytes``, and anything it had to throw away as ``Ignored`` with
the bytes and the reason, so garbage is quarantined and the stream carries on after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.events import Ignored

STX, ETX, EOT, ENQ, ACK, NAK = 0x02, 0x03, 0x04, 0x05, 0x06, 0x15
CONTROL_BYTES = frozenset({ACK, NAK, ENQ, EOT})


@dataclass(frozen=True, kw_only=True, slots=True)
class ChecksumMismatch:
    """A complete STX/ETX frame whose LRC byte is wrong: a serial protocol answers it with NAK."""

    raw: bytes
    expected: int
    received: int


FrameItem = bytes | Ignored | int | ChecksumMismatch


class Framer:
    """Interface: ``feed`` bytes, get records; ``flush`` at end of stream returns what is left."""

    def feed(self, data: bytes) -> list[FrameItem]:
        raise NotImplementedError

    def flush(self) -> list[FrameItem]:
        return []


def lrc(data: bytes) -> int:
    """XOR of every byte, seed 0 (FIAS 2.20.23 p.93: over the bytes after STX up to and including ETX)."""
    value = 0
    for byte in data:
        value ^= byte
    return value


class LineFramer(Framer):
    """Records separated by any byte in ``delimiters``; empty records between delimiters are skipped."""

    def __init__(self, *, delimiters: bytes = b"\r\n\x0c", max_length: int = 1024) -> None:
        if not delimiters:
            raise ValueError("LineFramer needs at least one delimiter byte")
        self._split = re.compile(b"[" + re.escape(delimiters) + b"]").split
        self._max_length = max_length
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[FrameItem]:
        out: list[FrameItem] = []
        *complete, rest = self._split(data)
        for piece in complete:
            self._take(piece, out)
            self._end_record(out)
        self._take(rest, out)
        return out

    def _take(self, chunk: bytes, out: list[FrameItem]) -> None:
        if not chunk or self._discarding:
            return
        room = self._max_length - len(self._buffer)
        if len(chunk) <= room:
            self._buffer += chunk
            return
        self._buffer += chunk[:room]
        out.append(
            Ignored(reason=f"record longer than {self._max_length} bytes, skipped to the next delimiter",
                    raw=bytes(self._buffer))
        )
        self._buffer.clear()
        self._discarding = True

    def _end_record(self, out: list[FrameItem]) -> None:
        if self._buffer and not self._discarding:
            out.append(bytes(self._buffer))
        self._buffer.clear()
        self._discarding = False

    def flush(self) -> list[FrameItem]:
        out: list[FrameItem] = []
        self._end_record(out)
        return out


class StxEtxFramer(Framer):
    """``<STX>payload<ETX>[LRC]``; yields payloads (without STX/ETX), control ints, and Ignored garbage."""

    def __init__(self, *, with_lrc: bool = False, max_length: int = 4096) -> None:
        self._with_lrc = with_lrc
        self._max_length = max_length
        self._buffer = bytearray()
        self._garbage = bytearray()
        self._state = "outside"  # outside | inside | lrc

    def feed(self, data: bytes) -> list[FrameItem]:
        out: list[FrameItem] = []
        for byte in data:
            if self._state == "outside":
                if byte == STX:
                    self._drop_garbage(out)
                    self._state = "inside"
                elif byte in CONTROL_BYTES:
                    self._drop_garbage(out)
                    out.append(byte)
                elif byte not in (0x0D, 0x0A):  # CR/LF between frames is harmless line noise
                    self._garbage.append(byte)
                    if len(self._garbage) >= self._max_length:
                        self._drop_garbage(out)
            elif self._state == "inside":
                if byte == ETX:
                    if self._with_lrc:
                        self._state = "lrc"
                    else:
                        out.append(bytes(self._buffer))
                        self._reset()
                elif byte == STX:
                    out.append(Ignored(reason="frame restarted by STX before ETX", raw=b"\x02" + self._buffer))
                    self._buffer.clear()
                elif len(self._buffer) >= self._max_length:
                    out.append(Ignored(reason=f"frame longer than {self._max_length} bytes",
                                       raw=b"\x02" + self._buffer))
                    self._reset()
                    self._garbage.append(byte)
                else:
                    self._buffer.append(byte)
            else:  # the LRC byte: any value, found by position
                expected = lrc(bytes(self._buffer) + bytes([ETX]))
                payload = bytes(self._buffer)
                if byte == expected:
                    out.append(payload)
                else:
                    out.append(ChecksumMismatch(raw=payload, expected=expected, received=byte))
                self._reset()
        return out

    def _drop_garbage(self, out: list[FrameItem]) -> None:
        if self._garbage:
            out.append(Ignored(reason="bytes outside an STX/ETX frame", raw=bytes(self._garbage)))
            self._garbage.clear()

    def _reset(self) -> None:
        self._buffer.clear()
        self._state = "outside"

    def flush(self) -> list[FrameItem]:
        out: list[FrameItem] = []
        self._drop_garbage(out)
        if self._state != "outside":
            out.append(Ignored(reason="stream ended inside a frame", raw=b"\x02" + self._buffer))
        self._reset()
        return out


def frame(payload: bytes, *, with_lrc: bool = False) -> bytes:
    """The inverse of ``StxEtxFramer``: wrap one payload for the wire."""
    body = payload + bytes([ETX])
    return bytes([STX]) + body + (bytes([lrc(body)]) if with_lrc else b"")


class LengthPrefixedFramer(Framer):
    """A ``size``-byte little-endian length, then that many bytes of record."""

    def __init__(self, *, size: int = 4, max_length: int = 4096) -> None:
        self._size = size
        self._max_length = max_length
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[FrameItem]:
        self._buffer += data
        out: list[FrameItem] = []
        skipped = bytearray()  # bytes dropped while out of sync: one quarantine row per run, not per byte
        while len(self._buffer) >= self._size:
            length = int.from_bytes(self._buffer[: self._size], "little")
            if length > self._max_length:
                # A length we cannot trust means we lost sync; drop one byte and look again.
                skipped.append(self._buffer[0])
                del self._buffer[:1]
                if len(skipped) >= self._max_length:
                    out.append(self._out_of_sync(skipped))
                    skipped = bytearray()
                continue
            if len(self._buffer) < self._size + length:
                break
            if skipped:
                out.append(self._out_of_sync(skipped))
                skipped = bytearray()
            out.append(bytes(self._buffer[self._size: self._size + length]))
            del self._buffer[: self._size + length]
        if skipped:
            out.append(self._out_of_sync(skipped))
        return out

    def _out_of_sync(self, skipped: bytearray) -> Ignored:
        return Ignored(reason=f"{len(skipped)} bytes without a length prefix of at most {self._max_length}",
                       raw=bytes(skipped))

    def flush(self) -> list[FrameItem]:
        out: list[FrameItem] = []
        if self._buffer:
            out.append(Ignored(reason="stream ended inside a length-prefixed record", raw=bytes(self._buffer)))
            self._buffer.clear()
        return out
