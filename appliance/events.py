"""The shared vocabulary of the appliance: events (facts) and commands (imperatives).

Drivers return events; the pipeline and the PMS service send commands. All are frozen, keyword-only
dataclasses so they can be compared in tests and never change after they are made. Bytes stay at the
edges: every event that came from a peer keeps the ``raw`` bytes it was decoded from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Union

Direction = Literal["outgoing", "incoming", "internal", "tandem"]
DIRECTIONS: tuple[str, ...] = ("outgoing", "incoming", "internal", "tandem")


# ---------------------------------------------------------------- PBX side


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordReceived:
    """One framed record from a PBX link, not parsed yet. The pipeline journals it before parsing."""

    raw: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class CallRecord:
    """One call as the PBX reported it, normalised. ``start`` is timezone-aware; ``duration`` is talk time."""

    start: datetime
    duration: int
    ring: int | None
    extension: str
    trunk: str
    dialled: str
    caller: str
    direction: Direction
    answered: bool
    account_code: str = ""
    call_id: str = ""
    transfer: str = ""
    raw: bytes = b""


@dataclass(frozen=True, kw_only=True, slots=True)
class Ignored:
    """Input that is not a call: a header, a blank line, or garbage. ``quarantine`` marks the bad kind."""

    reason: str
    raw: bytes
    quarantine: bool = True


# ---------------------------------------------------------------- link health


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkUp:
    detail: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkDown:
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkReady:
    """The PMS link finished its handshake (or a resync / night audit ended) and may take postings."""

    detail: str = ""


# ---------------------------------------------------------------- PMS side: guests


@dataclass(frozen=True, kw_only=True, slots=True)
class GuestCheckedIn:
    """``arrival`` is the PMS's arrival date (FIAS GA), when it sends one."""

    room: str
    guest_id: str
    name: str = ""
    share: bool = False
    resync: bool = False
    arrival: date | None = None
    raw: bytes = b""


@dataclass(frozen=True, kw_only=True, slots=True)
class GuestCheckedOut:
    room: str
    guest_id: str = ""
    share: bool = False
    resync: bool = False
    raw: bytes = b""


@dataclass(frozen=True, kw_only=True, slots=True)
class GuestChanged:
    """A data change (name, share flag) or, when ``old_room`` is set, a room move."""

    room: str
    guest_id: str
    name: str = ""
    share: bool = False
    old_room: str = ""
    old_room_share: bool = False
    raw: bytes = b""


@dataclass(frozen=True, kw_only=True, slots=True)
class ResyncStarted:
    raw: bytes = b""


@dataclass(frozen=True, kw_only=True, slots=True)
class ResyncEnded:
    raw: bytes = b""


@dataclass(frozen=True, kw_only=True, slots=True)
class NightAuditStarted:
    raw: bytes = b""


@dataclass(frozen=True, kw_only=True, slots=True)
class NightAuditEnded:
    raw: bytes = b""


# ---------------------------------------------------------------- PMS side: postings


@dataclass(frozen=True, kw_only=True, slots=True)
class PostingAnswered:
    """The PMS answered posting ``sequence`` (FIAS P#) with ``status`` (FIAS AS code) and its text."""

    sequence: int
    status: str
    text: str = ""
    raw: bytes = b""


@dataclass(frozen=True, kw_only=True, slots=True)
class PostingUnanswered:
    """A sent posting got no answer in time, or the link dropped while it was in flight: delivery unknown."""

    sequence: int
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class PostCharge:
    """Command: post one charge (negative for a refund) to a room folio.

    ``amount_minor`` is an integer with the PMS link's implied decimals (the FIAS ``TA`` exponent, by
    default 2: cents), scaled by the outbox; ``start`` is the call start (aware; links stamp it in site time).
    """

    sequence: int
    room: str
    amount_minor: int
    start: datetime
    duration: int = 0
    dialled: str = ""
    trunk: str = ""
    call_type: str = ""
    text: str = ""
    pulses: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestResync:
    """Command: ask the PMS for its guest database (only after data loss or on an admin's request)."""


Event = Union[
    RecordReceived,
    CallRecord,
    Ignored,
    LinkUp,
    LinkDown,
    LinkReady,
    GuestCheckedIn,
    GuestCheckedOut,
    GuestChanged,
    ResyncStarted,
    ResyncEnded,
    NightAuditStarted,
    NightAuditEnded,
    PostingAnswered,
    PostingUnanswered,
]
Command = Union[PostCharge, RequestResync]
