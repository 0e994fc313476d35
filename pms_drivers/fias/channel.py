"""The FIAS low-level channel: STX/ETX framing, the optional LRC, and the optional ACK/NAK/ENQ handshake.

Source: Oracle Hospitality *HGBU-IFC8-FIAS Interface Specification* 2.20.23, summarised in
``/work/shared/reference/fias.md`` §1.

- Every record travels as ``<STX>record<ETX>``, over TCP as well (Spec §7 p.97-98), so several records in
  one ``recv()`` can be split. ``StxEtxFramer`` (bounded) does the cutting.
- LRC (``lrc=True``): one byte after ETX, the XOR of every byte after STX up to and including ETX (p.93).
- ACK/NAK (``ack_nak=True``), p.93-96, full duplex:
  - the receiver answers every frame with ACK (good) or NAK (bad LRC);
  - the sender keeps one frame outstanding; a NAK makes it resend (3 retries, 4 attempts in all);
  - with no answer within ``ack_timeout`` (3 s) the sender sends ENQ, and the receiver repeats its last
    ACK/NAK without the record being resent; any character other than ENQ resets that stored "last
    response" to NAK, which is what prevents double postings;
  - an ENQ at start-up is answered NAK (FAQ p.110), which the "last response" default gives.
  When the attempts run out the channel reports ``DeliveryFailed``; the Spec drops the record and goes
  on, the link instead treats it as a broken link (a charge must never be silently dropped).
  ``DeliveryFailed.rejected`` says the peer answered the last copy NAK (every copy was refused, so
  the record was not taken); otherwise the peer fell silent and delivery is unknown.
- Both switches are off on a plain Oracle TCP link; stray ACK/NAK/ENQ bytes between frames are then
  tolerated and ignored (fias.md §1, "Caveat").

Sans-IO like the links that use it: ``receive`` takes bytes and ``now``; ``data_to_send`` drains output.

The simulated PMS plays line faults through three hooks: ``reject`` (NAK a good frame, as if its LRC were
bad), ``drop_ack`` (the ACK of a good frame is lost on the line, so the sender must ENQ) and
``send(..., corrupt_lrc=True)`` (the first copy of a frame goes out with a wrong LRC).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from appliance.errors import ProtocolError
from appliance.events import Ignored
from appliance.framing import ACK, ENQ, ETX, NAK, STX, ChecksumMismatch, FrameItem, StxEtxFramer, frame

_SPLIT_ENQ = re.compile(b"(\x05)").split
_HANDSHAKE_BYTES = frozenset({ACK, NAK, ENQ})


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryFailed:
    """A frame we sent was NAKed or unanswered on every attempt (ack_nak mode only)."""

    payload: bytes
    reason: str
    rejected: bool = False


ChannelItem = bytes | Ignored | DeliveryFailed


class FrameChannel:
    """One side of a FIAS byte stream. ``receive`` yields record payloads (bytes without STX/ETX),
    ``Ignored`` for garbage and bad-LRC frames, and ``DeliveryFailed`` when an outgoing frame gave up."""

    def __init__(
        self,
        *,
        lrc: bool = False,
        ack_nak: bool = False,
        ack_timeout: float = 3.0,
        attempts: int = 4,
        max_length: int = 4096,
        max_queue: int = 1024,
        reject: Callable[[bytes], bool] | None = None,
        drop_ack: Callable[[bytes], bool] | None = None,
    ) -> None:
        self._reject = reject
        self._drop_ack = drop_ack
        self._lrc = lrc
        self._ack_nak = ack_nak
        self._ack_timeout = ack_timeout
        self._attempts = attempts
        self._max_length = max_length
        self._max_queue = max_queue
        self.reset()

    def reset(self) -> None:
        """Forget everything: a new connection starts from a clean stream."""
        self._framer = StxEtxFramer(with_lrc=self._lrc, max_length=self._max_length)
        self._out = bytearray()
        self._queue: deque[tuple[bytes, bool]] = deque()  # (payload, first copy with a corrupt LRC)
        self._current: bytes | None = None  # payload awaiting ACK
        self._tries = 0  # writes plus ENQs spent on the current frame
        self._ack_deadline: float | None = None
        self._last_response = NAK
        self._inside = False  # ack_nak mode: the framer is inside a frame
        self._after_etx = False  # ack_nak mode with LRC: the next byte is the LRC

    # ------------------------------------------------------------ outgoing

    def send(self, payload: bytes, now: float, *, corrupt_lrc: bool = False) -> None:
        if not self._ack_nak:
            self._out += self._frame(payload, corrupt_lrc)
            return
        if len(self._queue) >= self._max_queue:
            raise ProtocolError(f"more than {self._max_queue} frames waiting for the peer's ACK")
        self._queue.append((payload, corrupt_lrc))
        if self._current is None:
            self._next(now)

    def _frame(self, payload: bytes, corrupt_lrc: bool = False) -> bytes:
        data = frame(payload, with_lrc=self._lrc)
        if corrupt_lrc and self._lrc:
            data = data[:-1] + bytes([data[-1] ^ 0x5A])  # a fault the simulated PMS plays
        return data

    def clear_queue(self) -> None:
        """Drop frames not written yet (the one awaiting its ACK stays): used when a handshake restarts."""
        self._queue.clear()

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def deadline(self) -> float | None:
        return self._ack_deadline

    @property
    def idle(self) -> bool:
        """Nothing awaiting an ACK and nothing queued."""
        return self._current is None and not self._queue

    def handle_timeout(self, now: float) -> list[ChannelItem]:
        if self._ack_deadline is None or now < self._ack_deadline or self._current is None:
            return []
        if self._tries >= self._attempts:
            return self._give_up(now, f"no ACK after {self._attempts} attempts")
        # Spec p.95: no answer in time -> ENQ; the receiver repeats its last ACK/NAK, we do not resend.
        self._out.append(ENQ)
        self._tries += 1
        self._ack_deadline = now + self._ack_timeout
        return []

    def _next(self, now: float) -> None:
        self._current = None
        self._ack_deadline = None
        if self._queue:
            self._current, corrupt = self._queue.popleft()
            self._tries = 1
            self._out += self._frame(self._current, corrupt)
            self._ack_deadline = now + self._ack_timeout

    def _give_up(self, now: float, reason: str, *, rejected: bool = False) -> list[ChannelItem]:
        failed = DeliveryFailed(payload=self._current or b"", reason=reason, rejected=rejected)
        self._next(now)
        return [failed]

    # ------------------------------------------------------------ incoming

    def receive(self, data: bytes, now: float) -> list[ChannelItem]:
        out: list[ChannelItem] = []
        if not self._ack_nak:
            for item in self._framer.feed(data):
                if isinstance(item, bytes):
                    out.append(item)
                elif isinstance(item, ChecksumMismatch):
                    out.append(self._bad_lrc(item))
                elif isinstance(item, Ignored):
                    out.append(item)
                # a stray ACK/NAK/ENQ/EOT between frames is tolerated (fias.md §1)
            return out
        for segment in _SPLIT_ENQ(data):
            if not segment:
                continue
            if segment == b"\x05" and self._inside:
                # ENQ is never data (bytes below 0x20 are not allowed in records): the sender gave up on
                # a frame we only got part of. Drop the part and answer the ENQ (NAK, per the reset rule).
                items: list[FrameItem] = [
                    Ignored(reason="frame abandoned by the sender's ENQ", raw=item.raw)
                    for item in self._framer.flush()
                    if isinstance(item, Ignored)
                ]
                items.append(ENQ)
                self._inside = False
            else:
                if any(byte not in _HANDSHAKE_BYTES for byte in segment):
                    # Spec p.95: any character other than ENQ resets the stored last response to NAK.
                    self._last_response = NAK
                self._track(segment)
                items = list(self._framer.feed(segment))
            for item in items:
                out += self._acknowledged(item, now)
        return out

    def _track(self, segment: bytes) -> None:
        """Follow whether the framer is inside a frame (so an ENQ there can end it)."""
        for byte in segment:
            if self._after_etx:
                self._after_etx = False
            elif not self._inside:
                self._inside = byte == STX
            elif byte == ETX:
                self._inside = False
                self._after_etx = self._lrc  # the LRC byte follows, whatever its value

    def _acknowledged(self, item: FrameItem, now: float) -> list[ChannelItem]:
        if isinstance(item, bytes):
            if self._reject is not None and self._reject(item):
                self._out.append(NAK)
                self._last_response = NAK
                return [Ignored(reason="frame refused with NAK (simulated line fault)", raw=item,
                                quarantine=False)]
            self._last_response = ACK
            if self._drop_ack is None or not self._drop_ack(item):
                self._out.append(ACK)  # else: the ACK is lost on the line (simulated); an ENQ repeats it
            return [item]
        if isinstance(item, ChecksumMismatch):
            self._out.append(NAK)
            self._last_response = NAK
            return [self._bad_lrc(item)]
        if isinstance(item, Ignored):
            return [item]
        if item == ENQ:
            self._out.append(self._last_response)
        elif item == ACK and self._current is not None:
            self._next(now)
        elif item == NAK and self._current is not None:
            if self._tries >= self._attempts:
                return self._give_up(now, f"NAK on all {self._attempts} attempts", rejected=True)
            self._tries += 1
            self._out += frame(self._current, with_lrc=self._lrc)
            self._ack_deadline = now + self._ack_timeout
        return []

    @staticmethod
    def _bad_lrc(item: ChecksumMismatch) -> Ignored:
        return Ignored(
            reason=f"bad LRC: expected 0x{item.expected:02x}, received 0x{item.received:02x}", raw=item.raw
        )
