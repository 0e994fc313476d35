"""What the FIAS vendor link does with each record from the PMS (a mixin of ``FiasLink``).

Source: Oracle Hospitality *HGBU-IFC8-FIAS Interface Specification* 2.20.23, summarised in
``/work/shared/reference/fias.md``: §2 LS/LA/LE (p.25-29, p.35-36), §4 DS/DE resync and GI/GO/GC
(p.36-47), NS/NE night audit, §3 PA (p.85-86). The link's state, timers and transition table live in
``link`` and ``link_states``; these methods only apply one record.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from appliance.events import (
    Event,
    Ignored,
    NightAuditEnded,
    NightAuditStarted,
    PostingAnswered,
    ResyncEnded,
    ResyncStarted,
)
from pms_drivers.fias import inbound
from pms_drivers.fias import options as compose
from pms_drivers.fias.link_states import InFlight, State
from pms_drivers.fias.options import FiasOptions
from pms_drivers.fias.records import FiasRecord


class RecordHandlers:
    """One method per record type; ``HANDLERS`` below maps record ids to them."""

    # Provided by FiasLink.
    options: FiasOptions
    _state: State
    _in_flight: InFlight | None
    _ls_pending_until: float | None
    _handshake_until: float | None
    _resync_until: float | None
    _dr_pending_until: float | None
    _night_audit: bool
    _go: Callable[[State], None]
    _unanswered: Callable[[str], list[Event]]
    _describe: Callable[[float], None]
    _ready: Callable[[str], list[Event]]
    _down: Callable[[str], list[Event]]
    _stop_timers: Callable[[], None]
    _write: Callable[[FiasRecord, float], None]
    _stamp: Callable[[float], datetime]

    def _on_ls(self, rec: FiasRecord, raw: bytes, now: float) -> list[Event]:
        events: list[Event] = []
        if self._state in (State.ALIVE, State.RESYNC, State.ENDED):
            # §2: any LS from IFC8 means it restarted; a posting in flight has an unknown fate.
            events += self._unanswered("the PMS restarted (LS) while the posting awaited its answer")
        self._describe(now)
        return events

    def _on_la(self, rec: FiasRecord, raw: bytes, now: float) -> list[Event]:
        probing, self._ls_pending_until = self._ls_pending_until is not None, None
        if self._state is State.DESCRIBING:
            self._handshake_until = None
            self._go(State.ALIVE)
            return self._ready("link alive")
        if self._state is State.OPENING:
            # §2: IFC8 answers LS with LA when its side of the link is already active.
            self._handshake_until = None
            self._go(State.ALIVE)
            return self._ready("the PMS answered our LS with LA: link already alive")
        if self._state is State.ENDED:
            self._go(State.ALIVE)
            return self._ready("the PMS resumed after LE")
        if probing:
            return []
        reason = f"LA while {self._state.value} with no keep-alive pending"
        return [Ignored(reason=reason, raw=raw, quarantine=False)]

    def _on_le(self, rec: FiasRecord, raw: bytes, now: float) -> list[Event]:
        if self._state is State.ENDED:
            return [Ignored(reason="LE after LE", raw=raw, quarantine=False)]
        self._write(compose.link_end(self._stamp(now)), now)  # §2: the peer answers LE with LE
        events = self._down("PMS sent LE") + self._unanswered(
            "the PMS sent LE while the posting awaited its answer"
        )
        self._stop_timers()
        self._go(State.ENDED)
        return events

    def _on_ds(self, rec: FiasRecord, raw: bytes, now: float) -> list[Event]:
        if self._state is not State.ALIVE:
            return [Ignored(reason=f"DS while the link is {self._state.value}", raw=raw, quarantine=False)]
        self._dr_pending_until = None
        self._resync_until = now + self.options.resync_timeout
        self._go(State.RESYNC)
        return [ResyncStarted(raw=raw)]

    def _on_de(self, rec: FiasRecord, raw: bytes, now: float) -> list[Event]:
        if self._state is not State.RESYNC:
            return [Ignored(reason="DE without DS", raw=raw, quarantine=False)]
        self._resync_until = None
        self._go(State.ALIVE)
        return [ResyncEnded(raw=raw)] + self._ready("resync ended")

    def _on_guest(self, rec: FiasRecord, raw: bytes, now: float) -> list[Event]:
        return [inbound.GUEST_RECORDS[rec.kind](rec, raw)]

    def _on_night_audit(self, rec: FiasRecord, raw: bytes, now: float) -> list[Event]:
        self._night_audit = rec.kind == "NS"
        return [NightAuditStarted(raw=raw) if self._night_audit else NightAuditEnded(raw=raw)]

    def _on_pa(self, rec: FiasRecord, raw: bytes, now: float) -> list[Event]:
        sequence = inbound.answer_sequence(rec)
        if isinstance(sequence, str):
            return [Ignored(reason=sequence, raw=raw)]
        if self._in_flight is not None and self._in_flight.sequence == sequence:
            self._in_flight = None
        # A PA for a P# not in flight (late, after the answer timeout, or a duplicate) is still the PMS's
        # word on that P#, and only on it (p.85, fias.md §8): it never touches the posting in flight; the
        # outbox decides whether the posting it names may still take it (appliance.postings.on_late_answer).
        return [PostingAnswered(sequence=sequence, status=rec.get("AS").strip(), text=rec.get("CT"), raw=raw)]


HANDLERS: dict[str, Callable[[RecordHandlers, FiasRecord, bytes, float], list[Event]]] = {
    "LS": RecordHandlers._on_ls,
    "LA": RecordHandlers._on_la,
    "LE": RecordHandlers._on_le,
    "DS": RecordHandlers._on_ds,
    "DE": RecordHandlers._on_de,
    "GI": RecordHandlers._on_guest,
    "GO": RecordHandlers._on_guest,
    "GC": RecordHandlers._on_guest,
    "NS": RecordHandlers._on_night_audit,
    "NE": RecordHandlers._on_night_audit,
    "PA": RecordHandlers._on_pa,
}
