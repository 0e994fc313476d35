"""The sans-IO driver contract (ARCHITECTURE.md, "The sans-IO contract").

Bytes and time go in; events and bytes come out. A link never reads a clock or touches a socket: it says
when it next needs waking (``deadline``), and the Twisted adapter in ``appliance.net`` arms one timer.

A PBX driver is a framer (its ``make_link(options)``) plus ``parse_record``; a PMS driver is a stateful
link that takes commands (``send``) and answers with events, built with ``make_link(options, tz=site_zone)``
because the PMS expects dates and times in the hotel's zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Literal, Protocol
from zoneinfo import ZoneInfo

from appliance.events import CallRecord, Command, Event, Ignored, LinkDown, LinkUp, RecordReceived
from appliance.framing import ChecksumMismatch, FrameItem, Framer

TRANSPORTS = frozenset({"serial", "tcp-client", "tcp-server", "file"})


class Link(Protocol):
    def connection_made(self, now: float) -> list[Event]: ...
    def receive_data(self, data: bytes, now: float) -> list[Event]: ...
    def connection_lost(self, now: float) -> list[Event]: ...
    def send(self, command: Command, now: float) -> None: ...
    def data_to_send(self) -> bytes: ...
    def deadline(self) -> float | None: ...
    def handle_timeout(self, now: float) -> list[Event]: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class ParseContext:
    """What a PBX parser may know besides the bytes: the site's zone and when the record arrived.

    ``received_at`` is needed by formats without a year or without a date at all (year inference).
    """

    tz: ZoneInfo
    received_at: datetime


ParseResult = CallRecord | Ignored


@dataclass(frozen=True, kw_only=True)
class DriverSpec:
    name: str
    kind: Literal["pbx", "pms"]
    options: type
    make_link: Callable[[Any], Link]
    transports: frozenset[str]
    description: str = ""
    # PBX drivers only
    parse_record: Callable[[bytes, Any, ParseContext], ParseResult] | None = None
    format_record: Callable[[CallRecord, Any], bytes] | None = None
    default_port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class FramedLink:
    """A PBX link that only frames bytes into records: the common case for SMDR streams.

    Subclasses that need a login (some PBXs want a password after connect) override
    ``connection_made`` and queue bytes in ``_outgoing``.
    """

    def __init__(self, framer: Framer) -> None:
        self._framer = framer
        self._outgoing = bytearray()

    def connection_made(self, now: float) -> list[Event]:
        return [LinkUp()]

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        return framed_events(self._framer.feed(data))

    def connection_lost(self, now: float) -> list[Event]:
        return [*framed_events(self._framer.flush()), LinkDown(reason="connection closed")]

    def send(self, command: Command, now: float) -> None:
        raise TypeError(f"a PBX link takes no commands, got {type(command).__name__}")

    def data_to_send(self) -> bytes:
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    def deadline(self) -> float | None:
        return None

    def handle_timeout(self, now: float) -> list[Event]:
        return []


def framed_events(items: list[FrameItem]) -> list[Event]:
    """Framer output as PBX link events; stray control bytes mean nothing on an SMDR stream."""
    events: list[Event] = []
    for item in items:
        if isinstance(item, bytes):
            events.append(RecordReceived(raw=item))
        elif isinstance(item, Ignored):
            events.append(item)
        elif isinstance(item, ChecksumMismatch):
            events.append(Ignored(reason=f"bad checksum {item.received:#04x}, expected {item.expected:#04x}",
                                  raw=item.raw))
    return events
