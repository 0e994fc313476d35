"""The simulated PMS (FiasPmsPeer) on its own, fed records the way a vendor would send them.

References are to fias.md (and the Spec 2.20.23 pages it cites); §6 "Consequence" lists what the
simulator must do.
"""

from __future__ import annotations

import pytest

from appliance.errors import ProtocolError
from appliance.events import Ignored
from appliance.framing import StxEtxFramer, frame
from pms_drivers.fias.peer import FiasPmsPeer, PeerNote, PeerState, PostingReceived
from pms_drivers.fias.peer_model import Fault, FaultScript, Guest, Roster, parse_fault
from tests.pms_drivers.fias_helpers import T0, UTC

VENDOR_HELLO = (
    "LD|DA250314|TI101500|V#1.0|IFPB|",
    "LR|RIPS|FLRNPTTADUDDP#DATI|",
    "LR|RIPA|FLRNASCTP#DATI|",
    "LA|DA250314|TI101500|",
)


def send(peer: FiasPmsPeer, *records: str, now: float = T0):
    return peer.receive_data(b"".join(frame(r.encode("cp850")) for r in records), now)


def sent(peer: FiasPmsPeer) -> list[str]:
    return [
        item.decode("cp850") for item in StxEtxFramer().feed(peer.data_to_send()) if isinstance(item, bytes)
    ]


def alive_peer(**kwargs) -> FiasPmsPeer:
    peer = FiasPmsPeer(tz=UTC, **kwargs)
    peer.roster.check_in("0412", Guest(guest_id="35869", name="Smith", first_name="Al"))
    peer.roster.add_room("0413")
    peer.connection_made(T0)
    send(peer, *VENDOR_HELLO)
    assert peer.alive
    sent(peer)
    return peer


def test_opens_with_ls_and_needs_ld_lr_la():
    """§2: IFC8 sends LS first; it requires LD, at least one LR, then LA, and answers LA. Before that it
    processes nothing."""
    peer = FiasPmsPeer(tz=UTC)
    peer.connection_made(T0)
    assert sent(peer) == ["LS|DA250314|TI101500|"]
    [ignored] = send(peer, "PS|RN1|PTC|TA1|P#1|")
    assert isinstance(ignored, Ignored) and sent(peer) == []
    send(peer, "LD|V#1|IFPB|", "LA|")
    assert peer.state is PeerState.AWAIT_LR and sent(peer) == []  # no LR: no LA (Protel, §2)
    events = send(peer, "LR|RIGI|FLRNG#|", "LA|DA250314|TI101501|", now=T0 + 1)
    assert peer.alive and sent(peer) == ["LA|DA250314|TI101501|"]
    assert any(isinstance(e, PeerNote) and "link alive" in e.text for e in events)
    assert peer.vendor_fields == {"GI": ("RN", "G#")}


def test_ls_answers():
    """§2: LS before the link started is answered LS; while alive it is answered LA (the keep-alive)."""
    peer = FiasPmsPeer(tz=UTC, open_with_ls=False)
    peer.connection_made(T0)
    assert sent(peer) == []
    send(peer, "LS|")
    assert sent(peer) == ["LS|DA250314|TI101500|"]
    send(peer, *VENDOR_HELLO)
    sent(peer)
    send(peer, "LS|", now=T0 + 300)
    assert sent(peer) == ["LA|DA250314|TI102000|"]


def test_resync():
    """§4 (Spec p.36-38): DR -> DS, GI+SF for every guest, GO+SF for known vacant rooms, DE."""
    peer = alive_peer()
    peer.roster.check_in("0412", Guest(guest_id="35870", name="Jones", share=True))
    send(peer, "DR|DA250314|TI101500|")
    assert sent(peer) == [
        "DS|DA250314|TI101500|",
        "GI|RN0412|G#35869|GSN|GNSmith|GFAl|SF|DA250314|TI101500|",
        "GI|RN0412|G#35870|GSY|GNJones|SF|DA250314|TI101500|",
        "GO|RN0413|SF|",
        "DE|DA250314|TI101500|",
    ]


def test_posting_answers_by_roster():
    """§3: PA echoes P# and RN; OK for a checked-in room, NG with CT INVALID ROOM otherwise (§8 item 4).
    Every PS is kept, in order."""
    peer = alive_peer()
    events = send(
        peer,
        "PS|RN0412|PTC|TA1275|DU000312|DD0044|P#1042|DA250314|TI101203|",
        "PS|RN0413|PTC|TA100|P#1043|DA250314|TI101204|",
        now=T0 + 5,
    )
    assert sent(peer) == [
        "PA|RN0412|ASOK|P#1042|DA250314|TI101505|",
        "PA|RN0413|ASNG|CTINVALID ROOM|P#1043|DA250314|TI101505|",
    ]
    assert [type(e) for e in events] == [PostingReceived, PostingReceived]
    first = peer.postings[0]
    assert (
        first.sequence,
        first.room,
        first.amount,
        first.dialled,
        first.duration,
        first.date,
        first.time,
        first.answer,
    ) == (1042, "0412", "1275", "0044", "000312", "250314", "101203", "OK")
    assert first.raw == b"PS|RN0412|PTC|TA1275|DU000312|DD0044|P#1042|DA250314|TI101203|"
    assert peer.postings[1].answer == "NG"
    assert peer.answers == {"OK": 1, "NG": 1}
    assert first.as_json()["sequence"] == 1042


def test_answer_policies_and_validation():
    """§3: PT C needs TA, PT T needs MP or DU+DD (else UR); --answer ok / ng override the roster."""
    peer = alive_peer(answer_policy="ok")
    send(peer, "PS|RN9999|PTC|TA1|P#1|", "PS|RN9999|PTC|P#2|", "PS|RN9999|PTT|DU000100|P#3|")
    assert [r.split("|")[2] for r in sent(peer)] == ["ASOK", "ASUR", "ASUR"]
    peer = alive_peer(answer_policy="ng")
    send(peer, "PS|RN0412|PTC|TA1|P#1|")
    assert sent(peer)[0].startswith("PA|RN0412|ASNG|")


def test_pa_carries_only_the_fields_the_vendor_listed():
    """§2/§3: IFC8 echoes P# only if the vendor's LR for PA lists it (§8 item 7)."""
    peer = FiasPmsPeer(tz=UTC, roster=Roster())
    peer.connection_made(T0)
    send(peer, "LD|", "LR|RIPA|FLRNAS|", "LA|")
    sent(peer)
    send(peer, "PS|RN1|PTC|TA1|P#7|")
    assert sent(peer) == ["PA|RN1|ASNG|"]


def test_scripted_faults():
    """§6: scripted outcomes: an AS code, a lost PA, a duplicate PA, a connection drop after the PS."""
    peer = alive_peer()
    peer.faults.queue(Fault(kind="answer", code="RY"))
    peer.faults.queue(parse_fault("lose-pa"))
    peer.faults.queue(parse_fault("duplicate-pa"))
    peer.faults.queue(parse_fault("drop-after-ps"))
    send(peer, "PS|RN0412|PTC|TA1|P#1|")
    assert sent(peer) == ["PA|RN0412|ASRY|CTRETRY|P#1|DA250314|TI101500|"]
    send(peer, "PS|RN0412|PTC|TA1|P#2|")
    assert sent(peer) == [] and peer.postings[-1].answer is None and peer.postings[-1].fault == "lose-pa"
    send(peer, "PS|RN0412|PTC|TA1|P#3|")
    assert sent(peer) == ["PA|RN0412|ASOK|P#3|DA250314|TI101500|"] * 2
    assert not peer.wants_close
    send(peer, "PS|RN0412|PTC|TA1|P#4|")
    assert sent(peer) == [] and peer.wants_close
    assert [p.sequence for p in peer.postings] == [1, 2, 3, 4]


def test_late_pa_uses_the_deadline():
    """§6: a delayed PA goes out through deadline()/handle_timeout(), not at once."""
    peer = alive_peer()
    peer.faults.queue(parse_fault("late-pa=45"))
    send(peer, "PS|RN0412|PTC|TA1|P#5|")
    assert sent(peer) == [] and peer.deadline() == T0 + 45
    assert peer.handle_timeout(T0 + 44) == [] and sent(peer) == []
    peer.handle_timeout(T0 + 45)
    assert sent(peer) == ["PA|RN0412|ASOK|P#5|DA250314|TI101500|"]
    assert peer.deadline() is None


def test_late_pa_dropped_with_the_connection():
    """§6: a delayed PA dies with its connection; it is not sent on the next one."""
    peer = alive_peer()
    peer.faults.queue(parse_fault("late-pa=45"))
    send(peer, "PS|RN0412|PTC|TA1|P#5|")
    [note] = peer.connection_lost(T0 + 1)
    assert "1 late PA(s) never sent" in note.text and peer.deadline() is None


def test_repeating_faults():
    """--fault-every N:FAULT: the fault hits every Nth posting; a one-shot fault comes first."""
    script = FaultScript()
    script.every(3, parse_fault("lose-pa"))
    assert [script.take(n) for n in (1, 2, 3, 6)] == [
        None,
        None,
        Fault(kind="lose-pa"),
        Fault(kind="lose-pa"),
    ]
    script.queue(parse_fault("NA"))
    assert script.take(3) == Fault(kind="answer", code="NA")
    assert script.pending() == ["every 3: lose-pa"]
    script.clear()
    assert script.pending() == []
    for bad in ("late-pa=x", "nonsense", "lose-pa=3", "late-pa=-1"):
        with pytest.raises(ValueError):
            parse_fault(bad)
    with pytest.raises(ValueError):
        script.every(0, Fault(kind="lose-pa"))


def test_roster_changes_are_pushed_while_alive():
    """§4 (Spec p.39-47): GI with GS for a sharer; GO with G# and GS; GC room move with RN/GS and RO/GS."""
    peer = alive_peer()
    assert sent(peer) == []
    peer.check_in("0412", "35870", "Jones", now=T0)  # a second guest: a sharer
    peer.move("0412", "0501", "35869", now=T0)
    peer.check_out("0501", now=T0)
    assert sent(peer) == [
        "GI|RN0412|G#35870|GSY|GNJones|GA250314|DA250314|TI101500|",
        "GC|G#35869|GNSmith|GFAl|RN0501|GSN|RO0412|GSY|DA250314|TI101500|",
        "GO|RN0501|G#35869|GSN|DA250314|TI101500|",
    ]
    assert peer.roster.find("35870") == "0412" and not peer.roster.occupied("0501")
    with pytest.raises(KeyError):
        peer.check_out("0501", now=T0)
    with pytest.raises(KeyError):
        peer.move("0501", "0502", "1", now=T0)


def test_roster_changes_are_not_sent_before_the_link_is_alive():
    """§2: IFC8 sends guest records only once the link is alive (after its LA)."""
    peer = FiasPmsPeer(tz=UTC)
    peer.connection_made(T0)
    sent(peer)
    assert peer.check_in("1", "2", "X", now=T0) == []
    assert sent(peer) == [] and peer.roster.occupied("1")


def test_night_audit():
    """NS/NE on command; PS answered NA while the night audit runs (§8 item 4)."""
    peer = alive_peer()
    peer.start_night_audit(T0)
    send(peer, "PS|RN0412|PTC|TA1|P#1|")
    peer.end_night_audit(T0)
    send(peer, "PS|RN0412|PTC|TA1|P#2|")
    assert [r[:7] for r in sent(peer)] == ["NS|DA25", "PA|RN04", "NE|DA25", "PA|RN04"]
    assert [p.answer for p in peer.postings] == ["NA", "OK"]


def test_link_end_both_ways():
    """§2 LE: after the vendor's LE, IFC8 answers LE and closes; our own LE closes after ~2 s."""
    peer = alive_peer()
    send(peer, "LE|")
    assert sent(peer) == ["LE|DA250314|TI101500|"] and peer.wants_close
    peer = alive_peer()
    peer.link_end(T0)
    assert sent(peer) == ["LE|DA250314|TI101500|"] and not peer.wants_close
    assert peer.deadline() == T0 + 2
    peer.handle_timeout(T0 + 2)
    assert peer.wants_close


def test_restart_requires_a_new_handshake():
    """§2: an IFC8 restart sends LS; the vendor must describe itself again before postings are answered."""
    peer = alive_peer()
    peer.restart(T0)
    assert sent(peer) == ["LS|DA250314|TI101500|"] and not peer.alive
    assert isinstance(send(peer, "PS|RN0412|PTC|TA1|P#1|")[0], Ignored)
    send(peer, *VENDOR_HELLO)
    assert peer.alive


def test_new_connection_resets_the_link_but_keeps_the_roster():
    """§7 (Spec p.97-98): a new client connection displaces the old one; the hotel data stays."""
    peer = alive_peer()
    send(peer, "PS|RN0412|PTC|TA1|P#1|")
    peer.connection_made(T0 + 10)  # a new vendor connection displaces the old one
    assert peer.state is PeerState.AWAIT_LD and peer.connections == 2
    assert peer.roster.occupied("0412") and len(peer.postings) == 1
    peer.connection_lost(T0 + 11)
    with pytest.raises(ProtocolError):
        peer.receive_data(b"\x02LS|\x03", T0)
    with pytest.raises(ProtocolError):
        peer.restart(T0)


def test_serial_peer_acknowledges():
    """§1: with ACK/NAK the simulated PMS ACKs each good frame and NAKs a bad LRC."""
    peer = FiasPmsPeer(tz=UTC, lrc=True, ack_nak=True)
    peer.connection_made(T0)
    peer.data_to_send()
    peer.receive_data(b"\x06" + frame(b"LD|", with_lrc=True) + b"\x02LR|RIPA|FLAS|\x03\x00", T0)
    assert peer.data_to_send() == b"\x06\x15"
