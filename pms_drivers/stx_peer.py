"""The PMS side of the STX/ETX/BCC posting protocol (``pms_drivers.stx_posting``), sans-IO.

Source: fias.md §7 (TEL PMS/HX: ENQ -> ACK, then STX record ETX BCC -> ACK/NAK; Avaya DEFINITY: BCC over
everything after STX including ETX, NAK makes the sender repeat). The peer answers ENQ with ACK (NAK
when the ``busy`` fault is queued), checks each record's BCC (a bad one is answered NAK and not kept),
reads good ones with the link's layout, keeps them and answers ACK, unless a scripted fault says
otherwise (see ``serial_peer``). EOT ends an exchange and needs no answer.
"""

from __future__ import annotations

from appliance.events import Ignored
from pms_drivers.fias.peer_model import FaultScript
from pms_drivers.peer_events import PeerNote
from pms_drivers.serial_peer import LinePeer, PeerEvent
from pms_drivers.stx_posting import StxPostingOptions, bcc

STX, ETX, ENQ, EOT, ACK, NAK = 0x02, 0x03, 0x05, 0x04, b"\x06", b"\x15"


class StxPmsPeer(LinePeer):
    protocol = "STX"

    def __init__(self, options: StxPostingOptions | None = None, *, faults: FaultScript | None = None) -> None:
        options = options or StxPostingOptions()
        super().__init__(fields=options.fields, separator=options.separator, encoding=options.encoding,
                         ack=ACK, nak=NAK, faults=faults)
        self.options = options
        self._check_size = len(bcc(b"", options.bcc))
        self._reset_line()

    def _reset_line(self) -> None:
        self._body: bytearray | None = None  # inside a frame: the bytes after STX
        self._check = bytearray()  # the BCC bytes after ETX
        self._after_etx = False

    def receive_data(self, data: bytes, now: float) -> list[PeerEvent]:
        events: list[PeerEvent] = []
        for value in data:
            if self._after_etx:
                self._check.append(value)
                if len(self._check) >= self._check_size:
                    events += self._frame_done(now)
                continue
            if self._body is not None:
                if value == ETX:
                    self._body.append(value)
                    self._after_etx = True
                    if self._check_size == 0:
                        events += self._frame_done(now)
                elif value == ENQ:  # the sender gave up on this frame
                    events.append(Ignored(reason="frame abandoned by ENQ", raw=bytes(self._body)))
                    self._reset_line()
                    events += self._enquiry()
                elif len(self._body) > 1024:
                    events.append(Ignored(reason="frame longer than 1024 bytes", raw=bytes(self._body)))
                    self._reset_line()
                else:
                    self._body.append(value)
            elif value == STX:
                self._body = bytearray()
            elif value == ENQ:
                events += self._enquiry()
            elif value != EOT:
                events.append(Ignored(reason="byte outside a frame", raw=bytes([value]), quarantine=False))
        return events

    def _enquiry(self) -> list[PeerEvent]:
        if self.faults.take(len(self.postings) + 1, frozenset({"busy"})) is not None:
            self._out += NAK
            return [PeerNote(text="fault: ENQ answered NAK (busy)")]
        self._out += ACK
        return []

    def _frame_done(self, now: float) -> list[PeerEvent]:
        body, check = bytes(self._body or b""), bytes(self._check)
        self._reset_line()
        if bcc(body, self.options.bcc) != check:
            self._out += NAK
            self.answers["NAK"] += 1
            return [Ignored(reason=f"bad BCC {check!r}", raw=body)]
        payload = body[:-1]  # without ETX
        return self._record(payload, b"\x02" + body + check, now)
