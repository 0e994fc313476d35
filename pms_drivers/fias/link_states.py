"""The states of the FIAS vendor link (``pms_drivers.fias.link.FiasLink``) and its transition table.

Source: Oracle Hospitality *HGBU-IFC8-FIAS Interface Specification* 2.20.23, summarised in
``/work/shared/reference/fias.md`` §2 (link start, alive, end; p.25-29, p.35-38, p.99-110).

- CLOSED -> LISTENING: connection made; we listen ``listen_before_open`` for the PMS's LS.
- LISTENING -> DESCRIBING: the PMS's LS; we send LD, the LR set and LA.
- LISTENING -> OPENING: nothing came; we open with LS.
- OPENING -> DESCRIBING: the PMS answers LS. OPENING -> ALIVE: it answers LA (its link is active).
- DESCRIBING -> ALIVE: the PMS's LA. DESCRIBING -> DESCRIBING: the PMS repeats LS.
- ALIVE -> RESYNC: DS. RESYNC -> ALIVE: DE.
- ALIVE, RESYNC, ENDED -> DESCRIBING: an LS (IFC8 restarted).
- any connected state -> ENDED: the PMS's LE. ENDED -> ALIVE: an LA or any other record.
- any connected state -> FAILED: we give up (no LA, no DE, no ACK); the adapter closes.
- any state -> CLOSED: connection lost.

A move not in ``TRANSITIONS`` is a bug or a broken peer and raises ``ProtocolError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class State(Enum):
    CLOSED = "closed"  # no connection
    LISTENING = "listening"  # connected, waiting for the PMS's LS
    OPENING = "opening"  # nothing came, we sent LS; waiting for the PMS's LS or LA
    DESCRIBING = "describing"  # we sent LD/LR/LA; waiting for the PMS's LA
    ALIVE = "alive"  # postings allowed
    RESYNC = "resync"  # between DS and DE: no postings
    ENDED = "ended"  # the PMS sent LE: connected, no postings
    FAILED = "failed"  # we gave up; wants_close until the connection is gone


TRANSITIONS: dict[State, frozenset[State]] = {
    State.CLOSED: frozenset({State.LISTENING}),
    State.LISTENING: frozenset({State.OPENING, State.DESCRIBING, State.ENDED, State.FAILED, State.CLOSED}),
    State.OPENING: frozenset({State.DESCRIBING, State.ALIVE, State.ENDED, State.FAILED, State.CLOSED}),
    State.DESCRIBING: frozenset({State.DESCRIBING, State.ALIVE, State.ENDED, State.FAILED, State.CLOSED}),
    State.ALIVE: frozenset({State.DESCRIBING, State.RESYNC, State.ENDED, State.FAILED, State.CLOSED}),
    State.RESYNC: frozenset({State.ALIVE, State.DESCRIBING, State.ENDED, State.FAILED, State.CLOSED}),
    State.ENDED: frozenset({State.DESCRIBING, State.ALIVE, State.FAILED, State.CLOSED}),
    State.FAILED: frozenset({State.CLOSED}),
}


@dataclass(frozen=True, slots=True)
class InFlight:
    """The one posting awaiting its PA."""

    sequence: int
    deadline: float
