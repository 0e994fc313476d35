"""The conformance dialogues again over real transports: loopback TCP (FIAS §7 p.97-98) and a real
pseudo-terminal with LRC + ACK/NAK/ENQ (FIAS §1 p.91-97), against the PMS simulator as its own process.

Each scenario is one posting with a scripted fault, checked two ways: what the vendor link reported, and
what the simulator recorded as received (its record file, written before its answer is sent).
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime

import pytest

from appliance.events import LinkReady, PostCharge, PostingAnswered, PostingUnanswered
from pms_drivers.fias.link import FiasLink, FiasOptions
from tests.integration.harness import free_port
from tests.pms_drivers.conformance.realwire import Wire, control, raw_pty, start_simulator, wait_for_log

pytestmark = pytest.mark.slow

# (fault, the outcome the vendor sees, the number of PS the PMS recorded for it)
COMMON = [
    ("", "OK", 1),
    ("NG", "NG", 1),
    ("lose-pa", "unanswered", 1),
    ("duplicate-pa", "OK", 1),
    ("late-pa 4", "unanswered", 1),
]
SERIAL_ONLY = [("nak", "OK", 1), ("lose-ack", "OK", 1), ("bad-lrc", "OK", 1)]


def _charge(sequence: int, room: str = "0412") -> PostCharge:
    return PostCharge(sequence=sequence, room=room, amount_minor=1050, start=datetime(2025, 3, 14, 10, 12, 3),
                      duration=225, dialled="0044207", text="Call")


def _outcome(events, sequence: int) -> str:
    """What became of P# ``sequence`` (a late PA for an earlier P# may come meanwhile: it is not this)."""
    for event in events:
        if isinstance(event, PostingAnswered) and event.sequence == sequence:
            return event.status
        if isinstance(event, PostingUnanswered) and event.sequence == sequence:
            return "unanswered"
    return ""


def _dialogues(wire: Wire, control_port: int, scenarios, record) -> None:
    wire.run(lambda events: any(isinstance(e, LinkReady) for e in events), 20)
    for sequence, (fault, expected, count) in enumerate(scenarios, start=1):
        if fault:
            assert control(control_port, f"fault {fault}").startswith("OK"), fault
        wire.run(lambda events: wire.link.ready_for_posting(), 20)
        room = "0999" if fault == "NG" else "0412"
        wire.send(_charge(sequence, room))
        events = wire.run(lambda events: _outcome(events, sequence) != "", 20)
        assert _outcome(events, sequence) == expected, (fault, events)
        received = [json.loads(line) for line in record.read_text().splitlines()]
        assert [r["sequence"] for r in received].count(sequence) == count, (fault, received)
    wire.run(lambda events: wire.link.ready_for_posting(), 10)  # a late answer never holds the link up


def test_dialogues_over_loopback_tcp(tmp_path):
    port, control_port = free_port(), free_port()
    record, log = tmp_path / "received.jsonl", tmp_path / "sim.log"
    process = start_simulator(["--listen", f"127.0.0.1:{port}", "--rooms", "0410-0415", "--record", str(record),
                               "--control", f"127.0.0.1:{control_port}"], log)
    try:
        wait_for_log(log, "PMS simulator control listening")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            wire = Wire(FiasLink(FiasOptions(answer_timeout=2.0)), sock=sock)
            _dialogues(wire, control_port, COMMON, record)
            # The last scenario's PA comes 4 s after its PS, 2 s after the timeout: reported for its P#.
            late = len(COMMON)
            wire.run(lambda events: any(isinstance(e, PostingAnswered) and e.sequence == late
                                        for e in wire.events), 10)
            answers = [e for e in wire.events if isinstance(e, PostingAnswered) and e.sequence == late]
            assert [e.status for e in answers] == ["OK"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_dialogues_over_a_pseudo_terminal(tmp_path):
    master, slave, device = raw_pty()
    control_port = free_port()
    record, log = tmp_path / "received.jsonl", tmp_path / "sim.log"
    process = start_simulator(["--serial", device, "--rooms", "0410-0415", "--record", str(record),
                               "--control", f"127.0.0.1:{control_port}"], log)
    try:
        wait_for_log(log, "PMS simulator on serial")
        wait_for_log(log, "PMS simulator control listening")
        options = FiasOptions(answer_timeout=2.0).for_transport("serial")
        wire = Wire(FiasLink(options), fd=master)
        _dialogues(wire, control_port, COMMON + SERIAL_ONLY, record)
        assert wire.sent.count(b"\x02PS|") == len(COMMON + SERIAL_ONLY) + 1  # only the NAKed PS twice
        assert b"\x05" in wire.sent  # the lost ACK was asked for with ENQ
    finally:
        process.terminate()
        process.wait(timeout=10)
        os.close(master)
        os.close(slave)
