"""``appliance.net.link_probe``: the setup's "Test this link" against a fake PBX and the PMS simulator.

PBX side: records in the Mitel MiVoice Business SMDR format (made with the driver's own
``format_record``) arrive over each transport (tcp-server: the fake PBX connects to the probe;
tcp-client: the probe connects to the fake PBX; serial: a pseudo-terminal; file). PMS side: the FIAS
LS/LD/LR/LA handshake against ``appliance simulate pms`` on loopback, and the failures an installer meets
(nothing listening, a peer that never answers).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from appliance.config import parse_config
from appliance.events import CallRecord
from appliance.net.link_probe import ProbeResult, probe_pbx, probe_pms, show_bytes
from appliance.registry import default_registry

UTC = ZoneInfo("UTC")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def link_config(kind: str, **link: Any) -> tuple[Any, Any, Any]:
    """(LinkConfig, DriverSpec, options) as the setup builds them from its form, through the loader."""
    data: dict[str, Any] = {"site": {"name": "Probe"}}
    if kind == "pbx":
        data["pbx"] = [{"name": "pbx", **link}]
    else:
        data["pms"] = {"name": "pms", **link}
    config = parse_config(data)
    chosen = config.pbx[0] if kind == "pbx" else config.pms
    return chosen, default_registry().get(kind, chosen.driver), config.driver_options[chosen.name]


def mitel_records(count: int) -> bytes:
    spec = default_registry().get("pbx", "mitel_mivb")
    options = spec.options()
    out = b""
    for i in range(count):
        call = CallRecord(start=datetime(2024, 5, 1, 9, 30 + i, tzinfo=timezone.utc), duration=65 + i, ring=None,
                          extension=f"10{i + 1}", trunk="T001", dialled=f"9555012{i:02d}", caller="",
                          direction="outgoing", answered=True)
        assert spec.format_record is not None
        out += spec.format_record(call, options)
    return out


def send_later(port: int, payload: bytes, delay: float = 0.3) -> threading.Thread:
    """A fake PBX that connects to the probe's tcp-server port and prints ``payload``."""
    def run() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                    sock.sendall(payload)
                    time.sleep(0.5)
                    return
            except OSError:
                time.sleep(delay)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def serve_once(payload: bytes, *, close: bool = True) -> tuple[int, threading.Thread]:
    """A fake peer listening on loopback: sends ``payload`` to the first connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def run() -> None:
        with server:
            server.settimeout(10)
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                if payload:
                    conn.sendall(payload)
                time.sleep(0.3 if close else 3.0)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return port, thread


def calls_in(result: ProbeResult) -> list[str]:
    return [line.detail for line in result.lines if line.direction == "in" and line.detail.startswith("outgoing")]


# -- PBX ----------------------------------------------------------------------------------------------------

def test_pbx_tcp_server_shows_each_record_and_how_it_parsed() -> None:
    port = free_port()
    link, spec, options = link_config("pbx", driver="mitel_mivb", transport="tcp-server", host="127.0.0.1",
                                      port=port)
    send_later(port, mitel_records(3))
    result = probe_pbx(link, spec, options, tz=UTC, seconds=5, max_records=3)
    assert result.ok, result
    assert result.summary.startswith("3 call record(s) received")
    details = calls_in(result)
    assert len(details) == 3
    assert "extension 101" in details[0] and "number 955501200" in details[0] and "1:05" in details[0]
    assert any(line.text.startswith("the PBX connected from 127.0.0.1") for line in result.lines)


def test_pbx_tcp_client_connects_to_the_pbx() -> None:
    port, thread = serve_once(mitel_records(2))
    link, spec, options = link_config("pbx", driver="mitel_mivb", transport="tcp-client", host="127.0.0.1",
                                      port=port)
    result = probe_pbx(link, spec, options, tz=UTC, seconds=5)
    thread.join(5)
    assert result.ok and len(calls_in(result)) == 2


def test_pbx_in_another_format_is_received_but_not_understood() -> None:
    port, _ = serve_once(b"this is not SMDR\r\nneither is this\r\n")
    link, spec, options = link_config("pbx", driver="mitel_mivb", transport="tcp-client", host="127.0.0.1",
                                      port=port)
    result = probe_pbx(link, spec, options, tz=UTC, seconds=3)
    assert not result.ok
    assert "none is a call in the mitel_mivb format" in result.summary
    assert [line.detail.startswith("not a call") for line in result.lines if line.direction == "in"] == [True, True]


def test_pbx_silence_and_no_connection_are_explained() -> None:
    port, thread = serve_once(b"", close=False)
    link, spec, options = link_config("pbx", driver="mitel_mivb", transport="tcp-client", host="127.0.0.1",
                                      port=port)
    started = time.monotonic()
    result = probe_pbx(link, spec, options, tz=UTC, seconds=1.0)
    assert time.monotonic() - started < 5
    assert not result.ok and "nothing arrived in 1 s" in result.summary

    link, spec, options = link_config("pbx", driver="mitel_mivb", transport="tcp-server", host="127.0.0.1",
                                      port=free_port())
    result = probe_pbx(link, spec, options, tz=UTC, seconds=1.0)
    assert not result.ok and "the PBX did not connect to port" in result.summary


def test_pbx_port_in_use_and_refused_connection_are_errors_not_exceptions() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        link, spec, options = link_config("pbx", driver="mitel_mivb", transport="tcp-server", host="127.0.0.1",
                                          port=port)
        result = probe_pbx(link, spec, options, tz=UTC, seconds=1.0)
    assert not result.ok and result.summary.startswith(f"cannot listen on 127.0.0.1:{port}")
    link, spec, options = link_config("pbx", driver="mitel_mivb", transport="tcp-client", host="127.0.0.1",
                                      port=free_port())
    result = probe_pbx(link, spec, options, tz=UTC, seconds=1.0)
    assert not result.ok and result.summary.startswith("cannot connect to 127.0.0.1:")


def test_pbx_serial_line_through_a_pseudo_terminal() -> None:
    master, slave = os.openpty()
    try:
        link, spec, options = link_config("pbx", driver="mitel_mivb", transport="serial",
                                          device=os.ttyname(slave), baudrate=9600)
        threading.Timer(0.5, os.write, (master, mitel_records(2))).start()
        result = probe_pbx(link, spec, options, tz=UTC, seconds=3, max_records=2)
    finally:
        os.close(master)
        os.close(slave)
    assert result.ok and len(calls_in(result)) == 2
    link, spec, options = link_config("pbx", driver="mitel_mivb", transport="serial", device="/dev/no-such-tty")
    result = probe_pbx(link, spec, options, tz=UTC, seconds=1)
    assert not result.ok and result.summary.startswith("cannot open /dev/no-such-tty")


def test_pbx_file_link_reads_the_end_of_the_file(tmp_path: Path) -> None:
    capture = tmp_path / "smdr.log"
    capture.write_bytes(mitel_records(4))
    link, spec, options = link_config("pbx", driver="mitel_mivb", transport="file", path=str(capture))
    result = probe_pbx(link, spec, options, tz=UTC, seconds=1)
    assert result.ok and len(calls_in(result)) == 4


# -- PMS ----------------------------------------------------------------------------------------------------

@pytest.fixture
def pms_simulator() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "appliance", "simulate", "pms", "--listen",
                                f"127.0.0.1:{port}", "--rooms", "101-110"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the PMS simulator did not start")
        time.sleep(0.3)  # the check connection above must be gone before the probe's
        yield port
    finally:
        process.terminate()
        process.wait(10)


def test_fias_handshake_against_the_pms_simulator(pms_simulator: int) -> None:
    link, spec, options = link_config("pms", driver="fias", transport="tcp-client", host="127.0.0.1",
                                      port=pms_simulator)
    result = probe_pms(link, spec, options, tz=UTC, seconds=15)
    assert result.ok, result
    assert "handshake complete" in result.summary
    sent = " ".join(line.text for line in result.lines if line.direction == "out")
    received = " ".join(line.text for line in result.lines if line.direction == "in")
    assert "<STX>LD|" in sent and "<STX>LR|RIPS|" in sent and "<STX>LA|" in sent
    assert "<STX>LA|" in received  # the PMS's LA makes the link alive (FIAS §2)
    assert ("out", "link alive") in [(line.direction, line.detail) for line in result.lines
                                      if line.text.startswith("<STX>LA|")]


def test_fias_peer_that_never_answers_times_out() -> None:
    port, _ = serve_once(b"", close=False)
    link, spec, options = link_config("pms", driver="fias", transport="tcp-client", host="127.0.0.1", port=port,
                                      options={"listen_before_open": 0.2, "answer_timeout": 30})
    started = time.monotonic()
    result = probe_pms(link, spec, options, tz=UTC, seconds=2)
    assert time.monotonic() - started < 6
    assert not result.ok and "no complete handshake within 2 s" in result.summary
    # We opened with LS ourselves after listening (FIAS §2).
    assert any(line.direction == "out" and line.text.startswith("<STX>LS|") for line in result.lines)


def test_fias_nothing_listening() -> None:
    link, spec, options = link_config("pms", driver="fias", transport="tcp-client", host="127.0.0.1",
                                      port=free_port())
    result = probe_pms(link, spec, options, tz=UTC, seconds=2)
    assert not result.ok and result.summary.startswith("cannot connect to 127.0.0.1:")


def test_show_bytes_names_control_characters() -> None:
    assert show_bytes(b"\x02LS|\x03\x06\xff ok\r\n") == "<STX>LS|<ETX><ACK><FF> ok<CR><LF>"


def test_show_frames_cuts_after_each_record_keeping_the_lrc() -> None:
    from appliance.net.link_probe import show_frames

    assert show_frames(b"\x02LS|\x03\x02LA|\x03") == ["<STX>LS|<ETX>", "<STX>LA|<ETX>"]
    # Serial FIAS: an LRC byte follows each ETX, then the peer's ACK.
    assert show_frames(b"\x02LS|\x03\x41\x06\x02LA|\x03\x42") == ["<STX>LS|<ETX>A", "<ACK>", "<STX>LA|<ETX>B"]
    assert show_frames(b"partial") == ["partial"]


def test_fias_frames_are_named() -> None:
    from appliance.net.link_probe import fias_meaning

    assert fias_meaning("<STX>LA|DA261122|<ETX>") == "link alive"
    assert fias_meaning("<STX>LR|RIPS|FLRN|<ETX>").startswith("link record")
    assert fias_meaning("<ACK>") == "" and fias_meaning("LS without STX") == ""
