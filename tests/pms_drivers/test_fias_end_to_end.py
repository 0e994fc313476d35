"""FiasLink (vendor) against FiasPmsPeer (simulated IFC8): both sans-IO objects wired through each other's
bytes in memory, with a shared explicit clock; plus one run over real loopback TCP against the simulator
in a subprocess. References are to fias.md and the Spec 2.20.23 pages it cites.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest

from appliance.events import (
    Event,
    GuestChanged,
    GuestCheckedIn,
    GuestCheckedOut,
    LinkDown,
    LinkReady,
    LinkUp,
    NightAuditEnded,
    NightAuditStarted,
    PostCharge,
    PostingAnswered,
    PostingUnanswered,
    RequestResync,
    ResyncEnded,
    ResyncStarted,
)
from pms_drivers.fias.link import FiasLink, FiasOptions
from pms_drivers.fias.peer import FiasPmsPeer
from pms_drivers.fias.peer_model import Guest, parse_fault
from tests.pms_drivers.fias_helpers import T0, UTC

REPO = Path(__file__).resolve().parents[2]


class Pair:
    """A vendor link and a simulated PMS on one in-memory connection, with an explicit clock. Like the
    Twisted adapters, it writes pending bytes after every call and closes when either side wants it."""

    def __init__(self, options: FiasOptions | None = None, **peer_args) -> None:
        options = options or FiasOptions()
        self.link = FiasLink(options, tz=UTC)
        self.peer = FiasPmsPeer(
            tz=UTC, encoding=options.encoding, lrc=options.lrc, ack_nak=options.ack_nak, **peer_args
        )
        self.now = T0
        self.events: list[Event] = []  # the link's, in order
        self.connected = False

    def connect(self) -> list[Event]:
        self.connected = True
        start = len(self.events)
        self.events += self.link.connection_made(self.now)
        self.peer.connection_made(self.now)
        self.pump()
        return self.events[start:]

    def pump(self) -> list[Event]:
        start = len(self.events)
        for _ in range(1000):
            if not self.connected:
                break
            to_peer, to_link = self.link.data_to_send(), self.peer.data_to_send()
            if not to_peer and not to_link:
                break
            if to_peer:
                self.peer.receive_data(to_peer, self.now)
            if to_link:
                self.events += self.link.receive_data(to_link, self.now)
            if self.link.wants_close or self.peer.wants_close:
                self.drop()
        return self.events[start:]

    def drop(self) -> list[Event]:
        start = len(self.events)
        if self.connected:
            self.connected = False
            self.events += self.link.connection_lost(self.now)
            self.peer.connection_lost(self.now)
        return self.events[start:]

    def advance(self, seconds: float) -> list[Event]:
        """Let time pass, firing both sides' timers in order."""
        start, end = len(self.events), self.now + seconds
        while self.connected:
            deadlines = [d for d in (self.link.deadline(), self.peer.deadline()) if d is not None]
            if not deadlines or min(deadlines) > end:
                break
            self.now = max(self.now, min(deadlines))
            self.events += self.link.handle_timeout(self.now)
            self.peer.handle_timeout(self.now)
            self.pump()
        self.now = end
        return self.events[start:]

    def post(self, sequence: int, room: str = "0412", **overrides) -> list[Event]:
        charge = PostCharge(
            sequence=sequence,
            room=room,
            amount_minor=1275,
            start=datetime(2025, 3, 14, 10, 12, 3),
            duration=192,
            dialled="00442071234567",
            trunk="3",
            call_type="international",
            text="Intl call",
        )
        self.link.send(replace(charge, **overrides), self.now)
        return self.pump()


def hotel(options: FiasOptions | None = None, **peer_args) -> Pair:
    pair = Pair(options, **peer_args)
    pair.peer.roster.check_in("0412", Guest(guest_id="35869", name="Smith", first_name="Al"))
    pair.peer.roster.add_room("0413")
    assert pair.connect()[-1] == LinkReady(detail="link alive")
    return pair


def test_handshake_posting_and_answers():
    """§2 handshake then §3: OK for an occupied room, NG INVALID ROOM for a vacant one; the PMS kept both
    PS records with their P#."""
    pair = Pair()
    assert pair.connect() == [
        LinkUp(detail="connected; waiting for the PMS's LS"),
        LinkReady(detail="link alive"),
    ]
    pair.peer.check_in("0412", "35869", "Smith", now=pair.now)
    assert pair.pump() == [
        GuestCheckedIn(
            room="0412",
            guest_id="35869",
            name="Smith",
            arrival=date(2025, 3, 14),
            raw=b"GI|RN0412|G#35869|GSN|GNSmith|GA250314|DA250314|TI101500|",
        )
    ]
    [ok] = pair.post(1)
    assert (ok.sequence, ok.status) == (1, "OK")
    [ng] = pair.post(2, room="0999")
    assert (ng.sequence, ng.status, ng.text) == (2, "NG", "INVALID ROOM")
    assert [(p.sequence, p.room, p.amount, p.answer) for p in pair.peer.postings] == [
        (1, "0412", "1275", "OK"),
        (2, "0999", "1275", "NG"),
    ]


def test_listen_before_open_against_a_silent_pms():
    """§2: a PMS that waits for the vendor: we open with LS after 3 s and it answers LS."""
    pair = Pair(open_with_ls=False)
    pair.connect()
    assert pair.advance(3) == [LinkReady(detail="link alive")]


def test_keepalive_round_trip():
    """§2: LS after 300 s idle, IFC8 answers LA, the link stays ready."""
    pair = hotel()
    assert pair.advance(1000) == []
    assert pair.link.ready_for_posting() and pair.connected


def test_resync_round_trip():
    """§4: DR -> DS, GI+SF, GO+SF, DE; postings wait until DE."""
    pair = hotel()
    pair.link.send(RequestResync(), pair.now)
    events = pair.pump()
    assert [type(e) for e in events] == [
        ResyncStarted,
        GuestCheckedIn,
        GuestCheckedOut,
        ResyncEnded,
        LinkReady,
    ]
    assert events[1].resync and events[2].room == "0413"
    assert pair.link.ready_for_posting()


def test_lost_pa_then_next_posting():
    """§3/§8 item 1: no PA within 30 s -> unanswered (never resent); the next posting goes through."""
    pair = hotel()
    pair.peer.faults.queue(parse_fault("lose-pa"))
    assert pair.post(1) == []
    assert pair.advance(30) == [PostingUnanswered(sequence=1, reason="no answer within 30 s")]
    assert pair.post(2)[0].status == "OK"


def test_late_pa_never_matches_the_next_posting():
    """§3 (P# is the only correlation key): the late PA for P# 1 arrives while P# 2 is in flight."""
    pair = hotel()
    pair.peer.faults.queue(parse_fault("late-pa=45"))
    pair.peer.faults.queue(parse_fault("late-pa=25"))
    pair.post(1)
    assert pair.advance(30) == [PostingUnanswered(sequence=1, reason="no answer within 30 s")]
    pair.post(2)  # answered 25 s from now
    events = pair.advance(20)
    assert [(type(e), e.sequence, e.status) for e in events] == [(PostingAnswered, 1, "OK")]
    assert pair.link.in_flight == 2
    assert [(type(e), getattr(e, "sequence", None)) for e in pair.advance(10)] == [(PostingAnswered, 2)]


def test_duplicate_pa():
    """§8 item 3 / §3 p.85: a PA sent twice answers its own P# twice (the outbox applies the first and
    notes the copy); nothing else is answered."""
    pair = hotel()
    pair.peer.faults.queue(parse_fault("duplicate-pa"))
    assert [(type(e), e.sequence) for e in pair.post(1)] == [(PostingAnswered, 1), (PostingAnswered, 1)]
    assert pair.link.in_flight is None


def test_drop_after_ps():
    """§8 item 1/2: the PMS drops the connection right after the PS: delivery unknown."""
    pair = hotel()
    pair.peer.faults.queue(parse_fault("drop-after-ps"))
    assert pair.post(1) == [
        LinkDown(reason="connection lost"),
        PostingUnanswered(sequence=1, reason="link dropped while awaiting the answer"),
    ]
    assert pair.peer.postings[0].sequence == 1  # the PMS did receive it
    assert pair.connect()[-1] == LinkReady(detail="link alive")


def test_pms_restart_mid_posting():
    """§2: IFC8 restarts (LS) while a posting is in flight; the vendor re-describes itself."""
    pair = hotel()
    pair.peer.faults.queue(parse_fault("lose-pa"))
    pair.post(1)
    pair.peer.restart(pair.now)
    assert pair.pump() == [
        PostingUnanswered(sequence=1, reason="the PMS restarted (LS) while the posting awaited its answer"),
        LinkReady(detail="link alive"),
    ]


def test_answer_codes_and_night_audit():
    """§3 AS codes (p.111-112) and NS/NE: RY, UR from the script; NA while the night audit runs."""
    pair = hotel()
    pair.peer.faults.queue(parse_fault("RY"))
    pair.peer.faults.queue(parse_fault("UR"))
    assert pair.post(1)[0].status == "RY"
    assert pair.post(2)[0].status == "UR"
    pair.peer.start_night_audit(pair.now)
    assert [type(e) for e in pair.pump()] == [NightAuditStarted]
    assert pair.post(3)[0].status == "NA"
    pair.peer.end_night_audit(pair.now)
    assert [type(e) for e in pair.pump()] == [NightAuditEnded]
    assert pair.post(4)[0].status == "OK"


def test_guest_moves_and_sharers():
    """§4 (p.39-47): sharers, a room move with both GS flags, a check-out."""
    pair = hotel()
    pair.peer.check_in("0412", "35870", "Jones", now=pair.now)
    pair.peer.move("0412", "0413", "35869", now=pair.now)
    pair.peer.check_out("0412", now=pair.now)
    events = pair.pump()
    assert [type(e) for e in events] == [GuestCheckedIn, GuestChanged, GuestCheckedOut]
    assert events[0].share
    move = events[1]
    assert (move.room, move.old_room, move.share, move.old_room_share) == ("0413", "0412", False, True)
    assert (events[2].room, events[2].guest_id, events[2].share) == ("0412", "35870", False)


def test_link_end_from_the_pms():
    """§2: the PMS sends LE, we answer LE, it closes; postings wait for the next connection."""
    pair = hotel()
    pair.peer.link_end(pair.now)
    assert pair.pump() == [LinkDown(reason="PMS sent LE")]
    assert not pair.connected  # the PMS closed after our LE


@pytest.mark.parametrize(
    "options",
    [
        FiasOptions(lrc=True, ack_nak=True),
        FiasOptions(encoding="utf-8"),
        FiasOptions(posting_mode="T", t_method="pulses"),
    ],
)
def test_variants(options):
    """§1 serial framing (LRC + ACK/NAK) and encodings; §3 posting types."""
    pair = hotel(options)
    pair.peer.check_in("0413", "1", "Müller", now=pair.now)
    assert pair.pump()[0].name == "Müller"
    assert pair.post(1, pulses=4)[0].status == "OK"
    assert pair.peer.postings[0].posting_type == options.posting_mode


# ---------------------------------------------------------------- real loopback TCP


def _read_port(process: subprocess.Popen, deadline: float) -> int:
    """Read the simulator's log (raw fd reads: no buffered lines hidden from select) until it says where
    it listens."""
    assert process.stdout is not None
    fd, seen = process.stdout.fileno(), b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            seen += chunk
            match = re.search(rb"FIAS PMS simulator listening on [\d.]+:(\d+)", seen)
            if match:
                return int(match.group(1))
    raise AssertionError(f"the simulator did not start: {seen.decode(errors='replace')}")


@pytest.mark.slow
def test_real_socket_against_the_simulator_process(tmp_path):
    """§7 TCP (p.97-98): the vendor is the TCP client of the simulator process; the simulator records
    the PS (one JSON line, written before its PA) and the PA comes back OK."""
    record = tmp_path / "postings.jsonl"
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "appliance.commands.simulate_pms",
            "--listen",
            "127.0.0.1:0",
            "--rooms",
            "0410-0415",
            "--record",
            str(record),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 20
        port = _read_port(process, deadline)
        link = FiasLink(FiasOptions(listen_before_open=3.0))
        events: list[Event] = []
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            events += link.connection_made(time.time())
            posted = False
            while time.monotonic() < deadline and not any(isinstance(e, PostingAnswered) for e in events):
                ready, _, _ = select.select([sock], [], [], 0.1)
                if ready:
                    data = sock.recv(4096)
                    assert data, "the simulator closed the connection"
                    events += link.receive_data(data, time.time())
                events += link.handle_timeout(time.time())
                if not posted and link.ready_for_posting():
                    link.send(
                        PostCharge(
                            sequence=77,
                            room="0412",
                            amount_minor=1050,
                            start=datetime(2025, 3, 14, 10, 12, 3),
                            duration=225,
                            dialled="0044207",
                            text="Call",
                        ),
                        time.time(),
                    )
                    posted = True
                out = link.data_to_send()
                if out:
                    sock.sendall(out)
        answers = [e for e in events if isinstance(e, PostingAnswered)]
        assert answers and (answers[0].sequence, answers[0].status) == (77, "OK")
        lines = record.read_text(encoding="utf-8").splitlines()
        assert len(lines) == 1
        line = json.loads(lines[0])
        assert (line["sequence"], line["room"], line["amount"], line["duration"], line["answer"]) == (
            77,
            "0412",
            "1050",
            "000345",
            "OK",
        )
        assert line["date"] == "250314" and line["time"] == "101203" and "received_at" in line
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    assert process.returncode == 0
