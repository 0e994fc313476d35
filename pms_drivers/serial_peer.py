"""The PMS side of the serial posting protocols, sans-IO: what the simulator plays for HOBIC and STX.

Sources: fias.md §7 (TEL PMS/HB and PMS/HX, Avaya DEFINITY PMS: ACK/NAK/ENQ) and §6's list of what a
PMS simulator must play (lost, late and duplicate answers, a connection drop after a posting). The
protocol modules ``hobic_peer`` and ``stx_peer`` subclass ``LinePeer`` with their framing; this module
keeps what they share: the received postings (reported as ``PostingReceived`` before the answer
leaves), scripted faults, late answers on the clock, and a small control language::

    fault nak | lose-pa | late-pa SECONDS | duplicate-pa | drop-after-ps | busy | every N FAULT | clear
    stats | help
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable

from appliance.events import Ignored
from pms_drivers.fias.peer_model import FaultScript, parse_fault
from pms_drivers.layout import FieldSpec, parse
from pms_drivers.peer_events import LinePosting, PeerNote, PostingReceived, split_command

PeerEvent = PostingReceived | PeerNote | Ignored
RECORD_FAULTS = frozenset({"nak", "lose-pa", "lose-ack", "late-pa", "duplicate-pa", "drop-after-ps", "answer"})


class LinePeer:
    """Shared by the HOBIC and STX peers. Subclasses feed complete records to ``_record``."""

    protocol = "serial posting"

    def __init__(self, *, fields: tuple[FieldSpec, ...], separator: str, encoding: str, ack: bytes,
                 nak: bytes, faults: FaultScript | None = None) -> None:
        self.fields = fields
        self.separator = separator
        self.encoding = encoding
        self.ack, self.nak = ack, nak
        self.faults = faults if faults is not None else FaultScript()
        self.postings: list[LinePosting] = []
        self.answers: Counter[str] = Counter()
        self.connections = 0
        self.connected = False
        self._out = bytearray()
        self._late: list[tuple[float, int, bytes]] = []
        self._wants_close = False
        self._nak_done: int | None = None

    @property
    def wants_close(self) -> bool:
        return self._wants_close

    def connection_made(self, now: float) -> list[PeerEvent]:
        self.connections += 1
        self.connected = True
        self._wants_close = False
        self._reset_line()
        return [PeerNote(text=f"{self.protocol} line open")]

    def connection_lost(self, now: float) -> list[PeerEvent]:
        self.connected = False
        self._late.clear()
        return [PeerNote(text=f"{self.protocol} line closed")]

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def deadline(self) -> float | None:
        return self._late[0][0] if self._late else None

    def handle_timeout(self, now: float) -> list[PeerEvent]:
        events: list[PeerEvent] = []
        while self._late and self._late[0][0] <= now:
            _, _, answer = heapq.heappop(self._late)
            self._out += answer
            events.append(PeerNote(text=f"late answer sent: {answer!r}"))
        return events

    def _reset_line(self) -> None:
        """Forget a half-received record (a new connection, or the sender gave up)."""

    def _record(self, payload: bytes, raw: bytes, now: float) -> list[PeerEvent]:
        """One complete record with a good check: answer it, or play the scripted fault."""
        count = len(self.postings) + 1
        fault = self.faults.take(count, RECORD_FAULTS)
        kind = fault.kind if fault else ""
        if kind == "nak" and self._nak_done != count:
            self._nak_done = count
            self._out += self.nak
            self.answers["NAK"] += 1
            return [PeerNote(text=f"fault: record {count} answered NAK (not booked)")]
        if kind == "answer":  # an answer code means "refuse" on a line that only has ACK and NAK
            self._out += self.nak
            self.answers["NAK"] += 1
            return [PeerNote(text=f"fault: record {count} refused with NAK")]
        try:
            fields = parse(self.fields, payload.decode(self.encoding, errors="replace"),
                           separator=self.separator)
        except ValueError as exc:
            self._out += self.nak
            return [Ignored(reason=f"record does not fit the layout: {exc}", raw=raw)]
        silent = kind in ("lose-pa", "lose-ack", "drop-after-ps")
        posting = LinePosting.from_fields(fields, raw, now, None if silent else "ACK", str(fault or ""))
        self.postings.append(posting)
        events: list[PeerEvent] = [PostingReceived(posting=posting)]
        if kind == "drop-after-ps":
            self._wants_close = True
            return events + [PeerNote(text=f"fault: dropping the line after record {count}")]
        if silent:
            return events + [PeerNote(text=f"fault: ACK for record {count} lost")]
        self.answers["ACK"] += 1
        if fault is not None and kind == "late-pa":
            heapq.heappush(self._late, (now + fault.delay, count, self.ack))
            return events + [PeerNote(text=f"fault: ACK for record {count} delayed by {fault.delay:g} s")]
        self._out += self.ack * (2 if kind == "duplicate-pa" else 1)
        return events


class LinePeerControl:
    """Control commands for a ``LinePeer``: faults and statistics, one answer line each."""

    def __init__(self, peer: LinePeer, *, connected: Callable[[], bool] = lambda: False) -> None:
        self.peer = peer
        self._connected = connected

    def execute(self, line: str, now: float) -> str:
        parsed = split_command(line)
        if isinstance(parsed, str):
            return parsed
        name, args = parsed
        try:
            if name == "fault":
                return "OK " + self._fault(args)
            if name == "stats":
                peer = self.peer
                answers = ",".join(f"{k}:{v}" for k, v in sorted(peer.answers.items())) or "-"
                return (f"OK connected={'yes' if self._connected() else 'no'} connections={peer.connections} "
                        f"postings={len(peer.postings)} answers={answers} "
                        f"faults={';'.join(peer.faults.pending()) or '-'}")
            if name == "help":
                return ("OK fault nak|lose-pa|late-pa SECONDS|duplicate-pa|drop-after-ps|busy | "
                        "fault every N FAULT | fault clear | stats | help")
        except ValueError as exc:
            return f"ERR {exc}"
        return f"ERR unknown command {name!r} for a {self.peer.protocol} PMS; try help"

    def _fault(self, args: list[str]) -> str:
        faults = self.peer.faults
        if args == ["clear"]:
            faults.clear()
            return "faults cleared"
        if len(args) >= 3 and args[0] == "every":
            every, fault = int(args[1]), parse_fault(_joined(args[2:]))
            faults.every(every, fault)
            return f"every {every}th posting: {fault}"
        if not args:
            raise ValueError("usage: fault nak|lose-pa|late-pa SECONDS|duplicate-pa|drop-after-ps|busy")
        fault = parse_fault(_joined(args))
        faults.queue(fault)
        return f"next posting: {fault}"


def _joined(args: list[str]) -> str:
    if args[0] == "late-pa" and len(args) == 2:
        return f"late-pa={args[1]}"
    return " ".join(args)
