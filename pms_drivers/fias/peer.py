"""The PMS side of a FIAS link, sans-IO: what IFC8 does, enough to test the vendor link against it.

Source: Oracle Hospitality *HGBU-IFC8-FIAS Interface Specification* 2.20.23, summarised in
``/work/shared/reference/fias.md``; modelled on the behaviour listed in its §6 "Consequence" (and on
Radiator's ``fideliosim.pl``):

- on connect send ``LS`` (§2, p.25); require ``LD``, then at least one ``LR``, then ``LA``, and answer
  ``LA``: the link is alive. Records before that are ignored (IFC8 processes nothing before LA). An
  ``LS`` from the vendor before that is answered ``LS`` (link never started), while alive ``LA``.
- ``DR`` -> ``DS``, ``GI``+``SF`` for every guest, ``GO``+``SF`` for every known vacant room, ``DE``
  (§4, p.36-38).
- each ``PS`` -> ``PA`` echoing ``P#`` and ``RN`` (§3, p.85): ``OK`` when the room is checked in,
  ``NG`` with ``CT INVALID ROOM`` otherwise, ``NA`` during night audit, unless a scripted fault says
  otherwise (an AS code, a lost / late / duplicate PA, a connection drop right after the PS). The PA
  carries only the fields the vendor's ``LR|RIPA`` listed, so a vendor that forgets ``P#`` there gets
  PAs without it, as from IFC8.
- roster changes (check-in, check-out, room move with sharers), ``NS``/``NE`` and ``LE`` on command.

Every PS received is kept in ``postings`` and reported as a ``PostingReceived`` event in the same call
that queues its PA, so an adapter that handles the events before writing ``data_to_send()`` has stored
the posting before the PA leaves. ``wants_close`` asks the adapter to drop the connection.
"""

from __future__ import annotations

import heapq
from collections import Counter
from datetime import datetime, tzinfo
from enum import Enum
from typing import Literal

from appliance.errors import ProtocolError
from appliance.events import Ignored
from pms_drivers.fias.channel import DeliveryFailed, FrameChannel
from pms_drivers.fias.peer_commands import PeerCommands
from pms_drivers.fias.peer_model import (
    ANSWER_FAULTS,
    ANSWER_TEXT,
    FRAME_FAULTS,
    FaultScript,
    PostingRecord,
    Roster,
    guest_in_record,
)
from pms_drivers.fias.records import (
    FiasRecord,
    MalformedRecordError,
    check_encoding,
    decode,
    encode,
    format_date,
    format_time,
    record,
    stamp,
)
from pms_drivers.peer_events import PeerNote, PostingReceived


class PeerState(Enum):
    CLOSED = "closed"
    AWAIT_LD = "awaiting LD"
    AWAIT_LR = "awaiting LR"
    AWAIT_LA = "awaiting LA"
    ALIVE = "alive"
    ENDING = "ending"  # LE sent or received; the connection is about to close


_S = PeerState
PEER_TRANSITIONS: dict[PeerState, frozenset[PeerState]] = {
    _S.CLOSED: frozenset({_S.AWAIT_LD}),
    _S.AWAIT_LD: frozenset({_S.AWAIT_LD, _S.AWAIT_LR, _S.ENDING, _S.CLOSED}),
    _S.AWAIT_LR: frozenset({_S.AWAIT_LD, _S.AWAIT_LR, _S.AWAIT_LA, _S.ENDING, _S.CLOSED}),
    _S.AWAIT_LA: frozenset({_S.AWAIT_LD, _S.AWAIT_LR, _S.AWAIT_LA, _S.ALIVE, _S.ENDING, _S.CLOSED}),
    _S.ALIVE: frozenset({_S.AWAIT_LD, _S.AWAIT_LR, _S.ENDING, _S.CLOSED}),
    _S.ENDING: frozenset({_S.AWAIT_LD, _S.CLOSED}),
}

AnswerPolicy = Literal["roster", "ok", "ng"]
LE_WAIT = 2.0  # §2: the side shutting down waits about 2 s for the peer's LE


PeerEvent = PostingReceived | PeerNote | Ignored


class FiasPmsPeer(PeerCommands):
    """A simulated IFC8. ``roster`` and ``faults`` may be shared with a control channel."""

    def __init__(
        self,
        *,
        encoding: str = "cp850",
        lrc: bool = False,
        ack_nak: bool = False,
        roster: Roster | None = None,
        faults: FaultScript | None = None,
        answer_policy: AnswerPolicy = "roster",
        open_with_ls: bool = True,
        tz: tzinfo | None = None,
    ) -> None:
        if answer_policy not in ("roster", "ok", "ng"):
            raise ValueError(f"answer_policy must be roster, ok or ng, got {answer_policy!r}")
        self.encoding = check_encoding(encoding)
        self.roster = roster if roster is not None else Roster()
        self.faults = faults if faults is not None else FaultScript()
        self.answer_policy = answer_policy
        self.open_with_ls = open_with_ls
        self.postings: list[PostingRecord] = []
        self.answers: Counter[str] = Counter()
        self.connections = 0
        self.night_audit = False
        self.vendor_fields: dict[str, tuple[str, ...]] = {}
        self._tz = tz
        self.ack_nak = ack_nak
        self._channel = FrameChannel(lrc=lrc, ack_nak=ack_nak, reject=self._frame_nak, drop_ack=self._frame_lose_ack)
        self._frame_fault_done: tuple[int, str] | None = None
        self._state = PeerState.CLOSED
        self._late: list[tuple[float, int, bytes]] = []  # heap of (due, order, PA payload)
        self._close_at: float | None = None
        self._wants_close = False

    @property
    def state(self) -> PeerState:
        return self._state

    @property
    def alive(self) -> bool:
        return self._state is PeerState.ALIVE

    @property
    def wants_close(self) -> bool:
        return self._wants_close

    # ------------------------------------------------------------ sans-IO surface

    def connection_made(self, now: float) -> list[PeerEvent]:
        if self._state is not PeerState.CLOSED:
            self.connection_lost(now)
        self._go(PeerState.AWAIT_LD)
        self._channel.reset()
        self._wants_close = False
        self._close_at = None
        self.vendor_fields = {}
        self.connections += 1
        if self.open_with_ls:
            self._write(self._stamped("LS", now), now)
            return [PeerNote(text="vendor connected; LS sent")]
        return [PeerNote(text="vendor connected; waiting for its LS")]

    def connection_lost(self, now: float) -> list[PeerEvent]:
        if self._state is PeerState.CLOSED:
            return []
        self._go(PeerState.CLOSED)
        dropped = len(self._late)
        self._late.clear()
        self._close_at = None
        note = "vendor disconnected" + (f"; {dropped} late PA(s) never sent" if dropped else "")
        return [PeerNote(text=note)]

    def data_to_send(self) -> bytes:
        return self._channel.data_to_send()

    def deadline(self) -> float | None:
        timers = [self._channel.deadline(), self._close_at, self._late[0][0] if self._late else None]
        return min((timer for timer in timers if timer is not None), default=None)

    def handle_timeout(self, now: float) -> list[PeerEvent]:
        events: list[PeerEvent] = []
        for failure in self._channel.handle_timeout(now):
            if isinstance(failure, DeliveryFailed):
                events.append(PeerNote(text=f"record not acknowledged ({failure.reason}); closing"))
                self._wants_close = True
        if self._close_at is not None and now >= self._close_at:
            self._close_at = None
            self._wants_close = True
        while self._late and self._late[0][0] <= now:
            _, _, payload = heapq.heappop(self._late)
            if self._state is not PeerState.CLOSED:
                self._channel.send(payload, now)
                events.append(PeerNote(text=f"late PA sent: {payload.decode(self.encoding, 'replace')}"))
        return events

    def receive_data(self, data: bytes, now: float) -> list[PeerEvent]:
        if self._state is PeerState.CLOSED:
            raise ProtocolError("data received before connection_made")
        events: list[PeerEvent] = []
        for item in self._channel.receive(data, now):
            if isinstance(item, DeliveryFailed):
                events.append(PeerNote(text=f"record not acknowledged ({item.reason}); closing"))
                self._wants_close = True
            elif isinstance(item, Ignored):
                events.append(item)
            else:
                try:
                    rec = decode(item, self.encoding)
                except MalformedRecordError as exc:
                    events.append(Ignored(reason=f"malformed FIAS record: {exc.reason}", raw=item))
                    continue
                events += self._on_record(rec, item, now)
        return events

    # ------------------------------------------------------------ commands (the control channel's)

    def link_end(self, now: float) -> None:
        """Send LE and close after the vendor's LE or ``LE_WAIT`` seconds (§2)."""
        if self._state is PeerState.CLOSED:
            raise ProtocolError("no vendor connection")
        self._write(self._stamped("LE", now), now)
        self._go(PeerState.ENDING)
        self._close_at = now + LE_WAIT

    def restart(self, now: float) -> None:
        """Play an IFC8 restart: send LS, and require the vendor's LD/LR/LA again."""
        if self._state is PeerState.CLOSED:
            raise ProtocolError("no vendor connection")
        self._write(self._stamped("LS", now), now)
        self._go(PeerState.AWAIT_LD)

    def _frame_fault(self, payload: bytes, kind: str) -> bool:
        """Line faults for the next PS frame (``nak``, ``lose-ack``), decided before the PS is read."""
        if not payload.startswith(b"PS|"):
            return False
        count = len(self.postings) + 1
        if self._frame_fault_done == (count, kind):
            return False  # the resend of a NAKed PS (same posting number) goes through
        head = self.faults.take(count, frozenset({kind}) & FRAME_FAULTS)
        if head is None:
            return False
        self._frame_fault_done = (count, kind)
        return True

    def _frame_nak(self, payload: bytes) -> bool:
        return self._frame_fault(payload, "nak")

    def _frame_lose_ack(self, payload: bytes) -> bool:
        return self._frame_fault(payload, "lose-ack")

    # ------------------------------------------------------------ internals

    def _go(self, new: PeerState) -> None:
        if new not in PEER_TRANSITIONS[self._state]:
            raise ProtocolError(f"illegal FIAS PMS transition {self._state.value} -> {new.value}")
        self._state = new

    def _stamp(self, now: float) -> datetime:
        return stamp(now, self._tz)

    def _stamped(self, kind: str, now: float) -> FiasRecord:
        when = self._stamp(now)
        return record(kind, ("DA", format_date(when)), ("TI", format_time(when)))

    def _write(self, rec: FiasRecord, now: float) -> None:
        self._channel.send(encode(rec, self.encoding), now)

    def _push(self, records: list[FiasRecord], now: float) -> list[FiasRecord]:
        """Send real-time guest / night-audit records, but only while the link is alive."""
        if not self.alive:
            return []
        for rec in records:
            self._write(rec, now)
        return records

    def _on_record(self, rec: FiasRecord, raw: bytes, now: float) -> list[PeerEvent]:
        state, kind = self._state, rec.kind
        if kind == "LS":
            # §2: IFC8 answers LS with LS if the link never started, with LA when it is alive.
            self._write(self._stamped("LA" if state is PeerState.ALIVE else "LS", now), now)
            return []
        if kind == "LE":
            if state is not PeerState.ENDING:
                self._write(self._stamped("LE", now), now)
                self._go(PeerState.ENDING)
            self._wants_close = True  # §2: after the vendor's LE, IFC8 closes the port and reopens
            return [PeerNote(text="vendor sent LE; closing")]
        if kind == "LD" and state is not PeerState.ENDING:
            self.vendor_fields = {}
            self._go(PeerState.AWAIT_LR)
            return [PeerNote(text=f"vendor LD: V#{rec.get('V#')} IF{rec.get('IF')}")]
        if kind == "LR" and state in (PeerState.AWAIT_LR, PeerState.AWAIT_LA, PeerState.ALIVE):
            fields = rec.get("FL")
            self.vendor_fields[rec.get("RI")] = tuple(fields[i : i + 2] for i in range(0, len(fields) - 1, 2))
            if state is PeerState.AWAIT_LR:
                self._go(PeerState.AWAIT_LA)
            return []
        if kind == "LA":
            if state is PeerState.AWAIT_LA:
                self._write(self._stamped("LA", now), now)
                self._go(PeerState.ALIVE)
                return [
                    PeerNote(text=f"link alive; vendor asked for {', '.join(sorted(self.vendor_fields))}")
                ]
            return []
        if state is not PeerState.ALIVE:
            return [Ignored(reason=f"{kind} while the link is {state.value}", raw=raw, quarantine=False)]
        if kind == "DR":
            return self._resync(now)
        if kind == "PS":
            return self._posting(rec, raw, now)
        return [
            Ignored(
                reason=f"record type {kind} is not handled by the simulated PMS", raw=raw, quarantine=False
            )
        ]

    def _resync(self, now: float) -> list[PeerEvent]:
        """DR -> DS, GI+SF per guest, GO+SF per vacant known room, DE (§4, p.36-38)."""
        sent = self._resync_records(now)
        count = sum(1 for rec in sent if rec.kind == "GI")
        return [PeerNote(text=f"resync requested: sent DS, {count} guest(s), DE")]

    def _resync_records(self, now: float) -> list[FiasRecord]:
        records = [self._stamped("DS", now)]
        for room, guests in self.roster.rooms():
            records += [guest_in_record(room, guest, self._stamp(now), swap=True) for guest in guests]
            if not guests:
                records.append(record("GO", ("RN", room), ("SF", "")))
        records.append(self._stamped("DE", now))
        for rec in records:
            self._write(rec, now)
        return records

    def _decide(self, rec: FiasRecord) -> tuple[str, str]:
        room, kind = rec.get("RN"), rec.get("PT")
        if not room:
            return "NG", "INVALID ROOM"
        if kind == "C" and not rec.has("TA"):
            return "UR", "TA MISSING"
        if kind == "T" and not (rec.has("MP") or (rec.has("DU") and rec.has("DD"))):
            return "UR", "MP OR DU+DD MISSING"
        if self.night_audit:
            return "NA", ANSWER_TEXT["NA"]
        if self.answer_policy == "ok" or (self.answer_policy == "roster" and self.roster.occupied(room)):
            return "OK", ""
        return "NG", ANSWER_TEXT["NG"]

    def _posting(self, rec: FiasRecord, raw: bytes, now: float) -> list[PeerEvent]:
        fault = self.faults.take(len(self.postings) + 1, ANSWER_FAULTS)
        kind, number = fault.kind if fault else "", rec.get("P#")
        code, text = self._decide(rec)
        if fault is not None and kind == "answer":
            code, text = fault.code, ANSWER_TEXT.get(fault.code, fault.code)
        silent = kind in ("lose-pa", "drop-after-ps")
        posting = PostingRecord.from_record(rec, raw, now, None if silent else code, str(fault or ""))
        self.postings.append(posting)
        events: list[PeerEvent] = [PostingReceived(posting=posting)]
        if kind == "drop-after-ps":
            self._wants_close = True
            return events + [PeerNote(text=f"fault: dropping the connection after PS P#{number}")]
        if kind == "lose-pa":
            return events + [PeerNote(text=f"fault: PA for P#{number} lost")]
        self.answers[code] += 1
        payload = encode(self._answer(rec, code, text, now), self.encoding)
        if fault is not None and kind == "late-pa":
            heapq.heappush(self._late, (now + fault.delay, len(self.postings), payload))
            return events + [PeerNote(text=f"fault: PA for P#{number} delayed by {fault.delay:g} s")]
        self._channel.send(payload, now, corrupt_lrc=kind == "bad-lrc")
        if kind == "duplicate-pa":
            self._channel.send(payload, now)
        return events

    def _answer(self, rec: FiasRecord, code: str, text: str, now: float) -> FiasRecord:
        when = self._stamp(now)
        sequence = rec.get("P#") if rec.has("P#") else None
        fields = [
            ("RN", rec.get("RN")),
            ("AS", code),
            ("CT", text or None),
            ("P#", sequence),
            ("DA", format_date(when)),
            ("TI", format_time(when)),
        ]
        wanted = self.vendor_fields.get("PA")
        if wanted is not None:  # IFC8 sends only the fields the vendor's LR listed
            fields = [(key, value) for key, value in fields if key in wanted or key == "AS"]
        return record("PA", *fields)
