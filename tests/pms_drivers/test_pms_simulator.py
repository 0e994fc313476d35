"""The Twisted side of the FIAS PMS simulator (appliance.net.pms_simulator) with a fake clock and fake
transports (no sockets, no global reactor), and the ``simulate pms`` command's argument parsing."""

from __future__ import annotations

import argparse
import io
import json

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport

from appliance.commands.simulate_pms import configure, parse_repeating_fault, parse_rooms
from appliance.framing import StxEtxFramer, frame
from appliance.net.pms_simulator import (
    PmsSimulator,
    control_factory,
    make_pms_simulator_service,
    parse_host_port,
    vendor_factory,
)
from pms_drivers.fias.peer_model import Fault, seeded_roster

HELLO = b"".join(frame(r) for r in (b"LD|V#1|IFPB|", b"LR|RIPA|FLRNASCTP#DATI|", b"LA|"))


def records(transport: StringTransport) -> list[str]:
    data = transport.value()
    transport.clear()
    return [item.decode("cp850") for item in StxEtxFramer().feed(data) if isinstance(item, bytes)]


class CheckedFile(io.StringIO):
    """A record file that checks, at each flush, that the PA has not been written to the vendor yet."""

    def __init__(self, transport_ref: list) -> None:
        super().__init__()
        self.transport_ref = transport_ref
        self.pa_written_before_line = False

    def flush(self) -> None:
        if b"PA|" in self.transport_ref[0].value():
            self.pa_written_before_line = True
        super().flush()


@pytest.fixture
def setup():
    clock = MemoryReactorClock()
    transport_ref: list = []
    record_file = CheckedFile(transport_ref)
    simulator = PmsSimulator(clock=clock, roster=seeded_roster(["0412"]), record_file=record_file)
    factory = vendor_factory(simulator)

    def connect():
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        transport_ref[:] = [transport]
        protocol.makeConnection(transport)
        return protocol, transport

    return clock, simulator, record_file, connect


def test_vendor_dialogue_and_record_file(setup):
    """fias.md §2 and §3: LS on connect, LA after LD/LR/LA, PA after PS; the PS line is on file before
    the PA is written."""
    _clock, _simulator, record_file, connect = setup
    protocol, transport = connect()
    assert records(transport)[0].startswith("LS|")
    protocol.dataReceived(HELLO)
    assert records(transport)[0].startswith("LA|")
    protocol.dataReceived(frame(b"PS|RN0412|PTC|TA150|P#9|DA250314|TI101203|"))
    assert records(transport)[0].startswith("PA|RN0412|ASOK|P#9|")
    assert not record_file.pa_written_before_line
    line = json.loads(record_file.getvalue())
    assert (line["sequence"], line["room"], line["amount"], line["answer"]) == (9, "0412", "150", "OK")
    assert line["received_at"].startswith("1970-01-01T00:00:00")


def test_late_pa_fires_on_the_clock(setup):
    """fias.md §6: a delayed PA is sent by the injected clock, not by sleeping."""
    clock, simulator, _, connect = setup
    protocol, transport = connect()
    protocol.dataReceived(HELLO)
    records(transport)
    simulator.execute("fault late-pa 40")
    protocol.dataReceived(frame(b"PS|RN0412|PTC|TA1|P#1|"))
    assert records(transport) == []
    clock.advance(39)
    assert records(transport) == []
    clock.advance(1)
    assert records(transport)[0].startswith("PA|RN0412|ASOK|P#1|")


def test_drop_after_ps_and_displacement(setup):
    """fias.md §1: a new connection displaces the old one; drop-after-ps closes right after the PS."""
    _clock, simulator, _, connect = setup
    first, first_transport = connect()
    second, second_transport = connect()
    assert first_transport.disconnected or first_transport.disconnecting
    first.connectionLost(None)  # the displaced connection goes away without touching the new one
    assert simulator.vendor is second
    second.dataReceived(HELLO)
    simulator.execute("fault drop-after-ps")
    second.dataReceived(frame(b"PS|RN0412|PTC|TA1|P#1|"))
    assert second_transport.disconnecting
    assert "PA|" not in second_transport.value().decode()


def test_protocol_error_closes_the_connection(setup):
    """A call the peer refuses (ProtocolError) is logged and the vendor connection dropped."""
    clock, simulator, _, connect = setup
    protocol, transport = connect()
    simulator.peer.connection_lost(clock.seconds())  # the peer no longer expects data
    protocol.dataReceived(frame(b"LD|"))
    assert transport.disconnecting


def test_control_commands(setup):
    """fias.md §6 and §4: the control language scripts guests, faults, night audit, LE and restarts."""
    _clock, simulator, _, connect = setup
    protocol, transport = connect()
    protocol.dataReceived(HELLO)
    records(transport)
    assert simulator.execute('checkin 0413 77 "Smith, Jo" share') == "OK 77 in 0413"
    [check_in] = records(transport)
    assert check_in.startswith("GI|RN0413|G#77|GSY|GNSmith, Jo|GA")
    assert simulator.execute("move 0413 0414 77").startswith("OK 77 moved")
    assert simulator.execute("checkout 0414") == "OK 0414 checked out"
    assert simulator.execute("checkout 0414").startswith("ERR")
    assert simulator.execute("fault answer RY") == "OK next posting: RY"
    assert simulator.execute("fault every 5 lose-pa") == "OK every 5th posting: lose-pa"
    assert simulator.execute("fault bogus").startswith("ERR unknown fault")
    assert simulator.execute("night-audit start") == "OK night audit start"
    assert simulator.execute("night-audit later").startswith("ERR usage")
    assert simulator.execute("roster").startswith("OK rooms=3 occupied=1 0412[")
    stats = simulator.execute("stats")
    assert "connected=yes" in stats and "night_audit=yes" in stats and "every 5: lose-pa" in stats
    assert simulator.execute("fault clear") == "OK faults cleared"
    assert simulator.execute("restart") == "OK LS sent"
    assert simulator.execute("link-end") == "OK LE sent"
    assert simulator.execute('checkin "unbalanced').startswith("ERR")
    assert simulator.execute("frobnicate").startswith("ERR unknown command")
    assert "checkin ROOM" in simulator.execute("help")


def test_control_protocol_lines(setup):
    """One answer line per command line; blank lines are skipped."""
    _clock, simulator, _, _ = setup
    protocol = control_factory(simulator).buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"stats\r\nroster\n\n")
    lines = transport.value().decode().splitlines()
    assert len(lines) == 2 and lines[0].startswith("OK connected=no") and lines[1].startswith("OK rooms=1")


def test_service_listens_on_both_ports():
    """fias.md §7: the simulator is the TCP server; the control port is separate."""
    reactor = MemoryReactorClock()
    simulator = PmsSimulator(clock=reactor)
    service = make_pms_simulator_service(
        simulator, reactor=reactor, listen="127.0.0.1:5010", control="127.0.0.1:5011"
    )
    service.startService()
    assert sorted(port for port, *_ in reactor.tcpServers) == [5010, 5011]
    service.stopService()


def test_host_port_parsing():
    """HOST:PORT, [v6]:PORT and :PORT addresses."""
    assert parse_host_port("127.0.0.1:5010") == ("127.0.0.1", 5010)
    assert parse_host_port("[::1]:0") == ("::1", 0)
    assert parse_host_port(":5010") == ("", 5010)
    with pytest.raises(ValueError):
        parse_host_port("localhost")


def test_cli_arguments():
    """``appliance simulate pms`` flags: room ranges keep leading zeros (fias.md §1, RN0412 != RN412)."""
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(
        [
            "--listen",
            "127.0.0.1:0",
            "--rooms",
            "0101-0103,201",
            "--fault-every",
            "50:lose-pa",
            "--fault-every",
            "10:RY",
            "--lrc",
            "--ack-nak",
        ]
    )
    assert args.rooms == ["0101", "0102", "0103", "201"]
    assert args.fault_every == [(50, Fault(kind="lose-pa")), (10, Fault(kind="answer", code="RY"))]
    assert args.lrc and args.ack_nak and args.answer == "roster" and args.encoding == "cp850"
    with pytest.raises(argparse.ArgumentTypeError):
        parse_rooms("120-101")
    with pytest.raises(SystemExit):
        parser.parse_args(["--listen", "localhost"])
    with pytest.raises(argparse.ArgumentTypeError):
        parse_repeating_fault("0:RY")
    roster = seeded_roster(["101", "102"])
    assert [g.guest_id for _, guests in roster.rooms() for g in guests] == ["100001", "100002"]
