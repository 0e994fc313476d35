"""What a simulated PMS (any protocol) reports to the simulator that runs it.

The FIAS peer (``pms_drivers.fias.peer``), the HOBIC peer (``pms_drivers.hobic_peer``) and the STX
posting peer (``pms_drivers.stx_peer``) all report a received posting as ``PostingReceived`` in the same
call that queues its answer, so the simulator stores it (its record file) before the answer leaves.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Protocol


class ReceivedPosting(Protocol):
    sequence: int | None
    room: str
    amount: str
    answer: str | None
    received_at: float

    def as_json(self, encoding: str = "cp850") -> dict[str, Any]: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class PostingReceived:
    posting: Any  # a ReceivedPosting: FIAS PostingRecord or LinePosting


@dataclass(frozen=True, kw_only=True, slots=True)
class PeerNote:
    """Something worth a log line in the simulator."""

    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class LinePosting:
    """One posting record of a serial posting protocol as the simulated PMS received it."""

    sequence: int | None
    room: str
    amount: str
    date: str
    time: str
    dialled: str
    duration: str
    fields: dict[str, str]
    raw: bytes
    received_at: float
    answer: str | None  # "ACK" / "NAK"; None when the answer was lost
    fault: str = ""

    @classmethod
    def from_fields(cls, fields: dict[str, str], raw: bytes, now: float, answer: str | None,
                    fault: str) -> LinePosting:
        text = fields.get("sequence", "").strip()
        return cls(
            sequence=int(text) if text.isascii() and text.isdigit() else None,
            room=fields.get("room", ""), amount=fields.get("amount", ""), date=fields.get("date", ""),
            time=fields.get("time", ""), dialled=fields.get("dialled", ""),
            duration=fields.get("duration", ""), fields=dict(fields), raw=raw, received_at=now,
            answer=answer, fault=fault,
        )

    def as_json(self, encoding: str = "ascii") -> dict[str, Any]:
        return {
            "sequence": self.sequence, "room": self.room, "amount": self.amount, "date": self.date,
            "time": self.time, "dialled": self.dialled, "duration": self.duration, "answer": self.answer,
            "fault": self.fault, "fields": self.fields, "raw": self.raw.decode(encoding, errors="replace"),
        }


def split_command(line: str) -> tuple[str, list[str]] | str:
    """A control line as ``(command, arguments)`` (shell-style quoting, so names may hold spaces), or the
    ``ERR ...`` answer for a line that is not a command."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        return f"ERR {exc}"
    if not words:
        return "ERR empty command; try help"
    return words[0].lower(), words[1:]
