"""What the simulated PMS knows: its guest roster, the postings it received, the faults it must play.

Used by ``pms_drivers.fias.peer.FiasPmsPeer`` (the PMS side of FIAS 2.20.23, fias.md §6 "Consequence")
and by the simulator's control channel. No I/O and no clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pms_drivers.fias.records import FiasRecord, format_date, format_time, record

FaultKind = Literal[
    "answer", "lose-pa", "late-pa", "duplicate-pa", "drop-after-ps", "nak", "lose-ack", "bad-lrc", "busy"
]
FAULT_KINDS = ("answer", "lose-pa", "late-pa", "duplicate-pa", "drop-after-ps", "nak", "lose-ack", "bad-lrc",
               "busy")
# Faults the line plays on the record's frame itself, before the PMS reads it (serial, §1 p.93-96):
# NAK it as if its LRC were bad, or lose the ACK so the sender must ENQ. The others act on the answer.
FRAME_FAULTS = frozenset({"nak", "lose-ack", "busy"})
ANSWER_FAULTS = frozenset(FAULT_KINDS) - FRAME_FAULTS

# AS codes (Spec p.111-112) and the text the simulator sends with them.
ANSWER_TEXT = {
    "OK": "",
    "NG": "INVALID ROOM",
    "NP": "NO POST",
    "CO": "CREDIT LIMIT",
    "RY": "RETRY",
    "UR": "UNPROCESSABLE",
    "NA": "NIGHT AUDIT",
    "DM": "SUBTOTAL MISMATCH",
    "IA": "INVALID ACCOUNT",
    "FX": "NOT ALLOWED",
    "DN": "DENIED",
    "BY": "BUSY",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Guest:
    guest_id: str
    name: str  # GN, last name
    first_name: str = ""  # GF
    share: bool = False  # GS
    arrival: date | None = None  # GA


class Roster:
    """Room -> guests in it. A room seen once stays known, so a resync can send GO+SF for it when vacant."""

    def __init__(self) -> None:
        self._rooms: dict[str, list[Guest]] = {}

    def add_room(self, room: str) -> None:
        self._rooms.setdefault(room, [])

    def guests(self, room: str) -> tuple[Guest, ...]:
        return tuple(self._rooms.get(room, ()))

    def occupied(self, room: str) -> bool:
        return bool(self._rooms.get(room))

    def rooms(self) -> list[tuple[str, tuple[Guest, ...]]]:
        return [(room, tuple(guests)) for room, guests in sorted(self._rooms.items())]

    def check_in(self, room: str, guest: Guest) -> None:
        guests = self._rooms.setdefault(room, [])
        guests[:] = [g for g in guests if g.guest_id != guest.guest_id] + [guest]

    def check_out(self, room: str, guest_id: str = "") -> list[Guest]:
        """Remove one guest (or everybody when ``guest_id`` is empty); returns who left."""
        guests = self._rooms.get(room, [])
        leaving = [g for g in guests if not guest_id or g.guest_id == guest_id]
        guests[:] = [g for g in guests if g not in leaving]
        return leaving

    def move(self, old: str, new: str, guest_id: str) -> Guest:
        leaving = self.check_out(old, guest_id)
        if not leaving:
            raise KeyError(f"guest {guest_id} is not in room {old}")
        guest = leaving[0]
        self.check_in(new, guest)
        return guest

    def find(self, guest_id: str) -> str | None:
        for room, guests in self._rooms.items():
            if any(g.guest_id == guest_id for g in guests):
                return room
        return None


def _yn(flag: bool) -> str:
    return "Y" if flag else "N"


def guest_in_record(room: str, guest: Guest, when: datetime, *, swap: bool = False) -> FiasRecord:
    """GI (Spec p.39-42); with ``swap`` the resync flag SF (p.36)."""
    return record(
        "GI", ("RN", room), ("G#", guest.guest_id), ("GS", _yn(guest.share)), ("GN", guest.name),
        ("GF", guest.first_name or None), ("GA", format_date(guest.arrival) if guest.arrival else None),
        ("SF", "" if swap else None),
        ("DA", format_date(when)), ("TI", format_time(when)),
    )


def guest_out_record(room: str, guest: Guest, *, room_still_occupied: bool, when: datetime) -> FiasRecord:
    """GO (Spec p.43): RN, G#, GS (someone stays in the room), never a name."""
    return record(
        "GO", ("RN", room), ("G#", guest.guest_id), ("GS", _yn(room_still_occupied)),
        ("DA", format_date(when)), ("TI", format_time(when)),
    )


def move_record(
    guest: Guest, new: str, new_shared: bool, old: str, old_occupied: bool, when: datetime
) -> FiasRecord:
    """GC room move (Spec p.44-47): RN = new room and RO = old room, each followed by its own GS."""
    return record(
        "GC", ("G#", guest.guest_id), ("GN", guest.name), ("GF", guest.first_name or None),
        ("RN", new), ("GS", _yn(new_shared)), ("RO", old), ("GS", _yn(old_occupied)),
        ("DA", format_date(when)), ("TI", format_time(when)),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Fault:
    """One scripted misbehaviour for the next posting: answer with ``code``, lose / delay / double the
    answer, drop the connection right after the posting; on a serial line also NAK the record's first
    copy (``nak``), lose its ACK (``lose-ack``: the sender must ENQ), send the answer with a bad LRC
    (``bad-lrc``), or refuse the ENQ as busy (``busy``, STX protocols)."""

    kind: FaultKind
    code: str = ""
    delay: float = 0.0

    def __str__(self) -> str:
        if self.kind == "answer":
            return self.code
        if self.kind == "late-pa":
            return f"late-pa={self.delay:g}"
        return self.kind


def parse_fault(text: str) -> Fault:
    """``RY`` (any 2-letter AS code), ``lose-pa``, ``late-pa=SECONDS``, ``duplicate-pa``,
    ``drop-after-ps``, ``nak``, ``lose-ack``, ``bad-lrc`` or ``busy``."""
    text = text.strip()
    name, _, argument = text.partition("=")
    if name == "late-pa":
        try:
            delay = float(argument)
        except ValueError:
            raise ValueError(f"late-pa needs seconds, as in late-pa=45, got {text!r}") from None
        if delay < 0:
            raise ValueError("late-pa needs a delay of 0 seconds or more")
        return Fault(kind="late-pa", delay=delay)
    if name in ("lose-pa", "duplicate-pa", "drop-after-ps", "nak", "lose-ack", "bad-lrc", "busy") and not argument:
        return Fault(kind=name)  # type: ignore[arg-type]
    if len(text) == 2 and text.isascii() and text.isalpha():
        return Fault(kind="answer", code=text.upper())
    raise ValueError(
        f"unknown fault {text!r}: use an AS code (RY, NA, UR, NP ...), lose-pa, "
        f"late-pa=SECONDS, duplicate-pa, drop-after-ps, nak, lose-ack, bad-lrc or busy"
    )


class FaultScript:
    """One-shot faults in order, plus repeating ones (every Nth posting)."""

    def __init__(self) -> None:
        self._next: deque[Fault] = deque()
        self._every: list[tuple[int, Fault]] = []

    def queue(self, fault: Fault) -> None:
        self._next.append(fault)

    def every(self, n: int, fault: Fault) -> None:
        if n < 1:
            raise ValueError("a repeating fault needs N of 1 or more")
        self._every.append((n, fault))

    def clear(self) -> None:
        self._next.clear()
        self._every.clear()

    def pending(self) -> list[str]:
        return [str(f) for f in self._next] + [f"every {n}: {f}" for n, f in self._every]

    def take(self, count: int, kinds: frozenset[str] | None = None) -> Fault | None:
        """The fault for posting number ``count`` (1-based), if any; a one-shot fault wins. With
        ``kinds``, only a fault of those kinds is taken (a one-shot one only from the head of the queue,
        so faults still play in the order they were queued)."""
        if self._next and (kinds is None or self._next[0].kind in kinds):
            return self._next.popleft()
        for n, fault in self._every:
            if count % n == 0 and (kinds is None or fault.kind in kinds):
                return fault
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class PostingRecord:
    """One PS as the simulated PMS received it, and what it did about it."""

    sequence: int | None
    room: str
    posting_type: str
    amount: str
    pulses: str
    dialled: str
    duration: str
    date: str
    time: str
    fields: tuple[tuple[str, str], ...]
    raw: bytes
    received_at: float
    answer: str | None  # the AS code sent (or to be sent, late); None when no PA goes out
    fault: str = ""

    @classmethod
    def from_record(
        cls, rec: FiasRecord, raw: bytes, now: float, answer: str | None, fault: str
    ) -> PostingRecord:
        text = rec.get("P#").strip()
        return cls(
            sequence=int(text) if text.isascii() and text.isdigit() else None,
            room=rec.get("RN"),
            posting_type=rec.get("PT"),
            amount=rec.get("TA"),
            pulses=rec.get("MP"),
            dialled=rec.get("DD"),
            duration=rec.get("DU"),
            date=rec.get("DA"),
            time=rec.get("TI"),
            fields=rec.fields,
            raw=raw,
            received_at=now,
            answer=answer,
            fault=fault,
        )

    def as_json(self, encoding: str = "cp850") -> dict[str, Any]:
        """A JSON-ready mapping (the simulator's record file writes one per line)."""
        return {
            "sequence": self.sequence,
            "room": self.room,
            "posting_type": self.posting_type,
            "amount": self.amount,
            "pulses": self.pulses,
            "dialled": self.dialled,
            "duration": self.duration,
            "date": self.date,
            "time": self.time,
            "answer": self.answer,
            "fault": self.fault,
            "fields": [list(pair) for pair in self.fields],
            "raw": self.raw.decode(encoding, errors="replace"),
        }


# Generated guests for --rooms; the accents exercise the code page (fias.md §1, §8 item 6).
SURNAMES = ("Smith", "Müller", "García", "Dubois", "Rossi", "Novák", "Jensen", "O'Brien", "Kowalski",
            "Nakamura", "Öztürk", "Silva", "Andersson", "Papadopoulos", "Håkansson", "Ferreira")
FIRST_NAMES = ("Anna", "José", "Chloé", "Luca", "Jörg", "Mia", "Søren", "Liam", "Zofia", "Kenji")


def seeded_roster(rooms: list[str], arrival: date | None = None) -> Roster:
    """One generated guest per room (G# from 100001), names cycling through a multilingual list, all
    arrived on ``arrival`` (sent as GA, so a vendor learning them in a resync knows since when)."""
    roster = Roster()
    for index, room in enumerate(rooms):
        guest = Guest(guest_id=str(100001 + index), name=SURNAMES[index % len(SURNAMES)],
                      first_name=FIRST_NAMES[index % len(FIRST_NAMES)], arrival=arrival)
        roster.check_in(room, guest)
    return roster
