"""The PMS side of a HOBIC-style call record output (``pms_drivers.hobic``), sans-IO, for the simulator.

Source: fias.md §7 (TEL Electronics PMS/HB: a record framed LF … CR LF, answered ACK/NAK or y/n). The
peer cuts records at the line ends, reads them with the link's layout, keeps them, and answers each with
ACK (or ``y``) unless a scripted fault says otherwise (see ``serial_peer``). A printer-style link
(``acknowledgement: none``) gets no answer at all.
"""

from __future__ import annotations

from appliance.events import Ignored
from appliance.framing import LineFramer
from pms_drivers.fias.peer_model import FaultScript
from pms_drivers.hobic import ANSWER_BYTES, HobicOptions
from pms_drivers.serial_peer import LinePeer, PeerEvent


class HobicPmsPeer(LinePeer):
    protocol = "HOBIC"

    def __init__(self, options: HobicOptions | None = None, *, faults: FaultScript | None = None) -> None:
        options = options or HobicOptions()
        ack, nak = ANSWER_BYTES.get(options.acknowledgement, (b"", b""))
        super().__init__(fields=options.fields, separator=options.separator, encoding=options.encoding,
                         ack=ack, nak=nak, faults=faults)
        self.options = options
        self._delimiters = bytes(sorted(set((options.start + options.end).encode(options.encoding)))) or b"\r\n"
        self._reset_line()

    def _reset_line(self) -> None:
        self._framer = LineFramer(delimiters=self._delimiters, max_length=1024)

    def receive_data(self, data: bytes, now: float) -> list[PeerEvent]:
        events: list[PeerEvent] = []
        for item in self._framer.feed(data):
            if isinstance(item, bytes):
                events += self._record(item, item, now)  # ack and nak are b"" on a printer-style link
            elif isinstance(item, Ignored):
                events.append(item)
        return events
