"""Helpers for the FIAS tests: feed a link whole, byte by byte, or with trailing bytes; read what it sent."""

from __future__ import annotations

from datetime import UTC, datetime

from appliance.events import Event, Ignored, LinkReady, LinkUp
from appliance.framing import StxEtxFramer, frame
from pms_drivers.fias.link import FiasLink, FiasOptions

T0 = datetime(2025, 3, 14, 10, 15, 0, tzinfo=UTC).timestamp()  # DA250314 TI101500
MODES = ("whole", "bytewise", "trailing")
_TAIL_OPEN = b"\x02ZZ|"  # the start of a frame the next delivery completes


def framed(*records: str, encoding: str = "cp850", lrc: bool = False) -> bytes:
    return b"".join(frame(text.encode(encoding), with_lrc=lrc) for text in records)


class Wire:
    """Delivers the PMS's bytes to a link in one of three ways, which must all give the same events:

    - ``whole``: each delivery in one ``receive_data`` call;
    - ``bytewise``: one byte per call;
    - ``trailing``: each delivery is followed by the start of another frame (trailing bytes), which the
      next delivery completes first; that filler record is dropped from the events.
    """

    def __init__(self, link: FiasLink, mode: str = "whole", *, encoding: str = "cp850") -> None:
        self.link = link
        self.mode = mode
        self.encoding = encoding
        self._open = False

    def raw(self, data: bytes, now: float) -> list[Event]:
        if self.mode == "bytewise":
            events: list[Event] = []
            for index in range(len(data)):
                events += self.link.receive_data(data[index : index + 1], now)
            return events
        if self.mode == "trailing":
            head = b""
            if self._open:  # complete the filler frame (with its LRC when the link expects one)
                head = frame(b"ZZ|", with_lrc=self.link.options.lrc)[len(_TAIL_OPEN) :]
            self._open = True
            events = self.link.receive_data(head + data + _TAIL_OPEN, now)
            return [e for e in events if not (isinstance(e, Ignored) and e.raw == b"ZZ|")]
        return self.link.receive_data(data, now)

    def pms(self, *records: str, now: float) -> list[Event]:
        """The PMS sends these records (text, encoded with the wire's code page)."""
        return self.raw(framed(*records, encoding=self.encoding, lrc=self.link.options.lrc), now)

    def sent(self) -> list[str]:
        """The records the link sent since the last call, as text."""
        framer = StxEtxFramer(with_lrc=self.link.options.lrc)
        items = framer.feed(self.link.data_to_send())
        return [item.decode(self.encoding) for item in items if isinstance(item, bytes)]


def alive_link(
    mode: str = "whole", options: FiasOptions | None = None, now: float = T0
) -> tuple[FiasLink, Wire]:
    """A link through the handshake of fias.md §2: LS from the PMS, our LD/LR/LA, the PMS's LA."""
    link = FiasLink(options or FiasOptions(), tz=UTC)
    wire = Wire(link, mode, encoding=link.options.encoding)
    assert link.connection_made(now) == [LinkUp(detail="connected; waiting for the PMS's LS")]
    assert wire.pms("LS|DA250314|TI101500|", now=now) == []
    if link.options.ack_nak:  # acknowledge LD, each LR and LA, one at a time (fias.md §1)
        while link.data_to_send().count(b"\x02"):
            link.receive_data(b"\x06", now)
    wire.sent()
    assert wire.pms("LA|DA250314|TI101500|", now=now) == [LinkReady(detail="link alive")]
    assert link.ready_for_posting()
    return link, wire
