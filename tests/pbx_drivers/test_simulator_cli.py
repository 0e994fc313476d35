"""``appliance simulate pbx --driver X`` (a real process) into the daemon-free parse path over loopback:
simulator -> TCP socket -> the driver's own link (login, framing, ACKs) -> parse_record, compared with the
calls the simulator says it generated. Both ways: the simulator listens (we connect, as to a PBX) and the
simulator connects (we listen, as a tcp-server link)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from appliance.drivers import ParseContext
from appliance.events import CallRecord, LinkDown, RecordReceived
from appliance.registry import default_registry
from tests.pbx_drivers.loopback import drive, drive_socket

COUNT = 12


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def simulator(driver: str, where: list[str], record: Path, options: list[str] = ()) -> subprocess.Popen:
    args = [sys.executable, "-m", "appliance", "simulate", "pbx", "--driver", driver, *where,
            "--count", str(COUNT), "--rate", "40", "--linger", "0.5", "--extensions", "101-110",
            "--record", str(record), "--seed", "3"]
    for option in options:
        args += ["--option", option]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def compare(driver: str, options, events: list, record: Path) -> None:
    spec = default_registry().get("pbx", driver)
    context = ParseContext(tz=ZoneInfo("UTC"), received_at=datetime.now(UTC))
    raws = [event.raw for event in events if isinstance(event, RecordReceived)]
    parsed = [spec.parse_record(raw, options, context) for raw in raws]
    calls = [call for call in parsed if isinstance(call, CallRecord)]
    sent = [json.loads(line) for line in record.read_text().splitlines()]
    printed = [item for item in sent if item["raw"]]  # nothing is sent for a call the PBX does not report
    assert len(sent) == COUNT and len(calls) == len(printed) > 0
    for call, item in zip(calls, printed, strict=True):
        assert (call.direction, call.extension, call.answered) == (item["direction"], item["extension"],
                                                                   item["answered"])
        assert call.dialled == item["dialled"] or call.caller == item["caller"]
        assert abs(call.duration - item["duration"]) <= 6  # h mm t formats count in tenths of a minute


@pytest.mark.slow
@pytest.mark.parametrize("driver, sim_options", [
    ("panasonic", []), ("mitel_5000", []), ("nec_sv9500", []), ("samsung_officeserv", []), ("cisco_cucm", []),
    ("nortel_cs1000", []), ("avaya_cm", []), ("threecx", []), ("lg_ipecs", ["caller_on_second_line=true"]),
])
def test_simulator_listens_and_the_link_reads_it(tmp_path, driver, sim_options):
    port, record = free_port(), tmp_path / "sent.jsonl"
    process = simulator(driver, ["--listen", f"127.0.0.1:{port}"], record, sim_options)
    try:
        spec = default_registry().get("pbx", driver)
        options = default_registry().options("pbx", driver, {k: yaml.safe_load(v) for k, v in
                                                             (o.split("=", 1) for o in sim_options)})
        for _ in range(200):  # until the simulator listens (a probe connection would take records)
            try:
                events = drive(spec.make_link(options), port, timeout=30,
                               until=lambda ev: any(isinstance(e, LinkDown) for e in ev))
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        process.wait(timeout=30)
    finally:
        process.kill()
    compare(driver, options, events, record)


@pytest.mark.slow
@pytest.mark.parametrize("driver", ["mitel_mivb", "asterisk", "hipath", "freeswitch", "nec_sv8100",
                                    "avaya_ipoffice", "generic"])
def test_simulator_connects_to_a_listening_link(tmp_path, driver):
    record = tmp_path / "sent.jsonl"
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(30)
        process = simulator(driver, ["--connect", f"127.0.0.1:{server.getsockname()[1]}"], record)
        try:
            connection, _ = server.accept()
            spec = default_registry().get("pbx", driver)
            options = spec.options()
            events = drive_socket(spec.make_link(options), connection, timeout=30,
                                  until=lambda ev: any(isinstance(e, LinkDown) for e in ev))
            process.wait(timeout=30)
        finally:
            process.kill()
    compare(driver, options, events, record)
