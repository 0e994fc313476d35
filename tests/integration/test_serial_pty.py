"""A PBX link over a real pseudo-terminal: the daemon reads SMDR from a serial device."""

from __future__ import annotations

import os
import time

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from appliance.events import CallRecord
from pbx_drivers.mitel_mivb import SPEC as MITEL

from tests.integration.harness import Site, wait_for

pytestmark = pytest.mark.slow

def mitel_line(extension: str, dialled: str, duration: int) -> bytes:
    call = CallRecord(start=datetime(2026, 3, 5, 13, 14, 13, tzinfo=ZoneInfo("America/New_York")),
                      duration=duration, ring=None, extension=extension, trunk="T4", dialled=dialled, caller="",
                      direction="outgoing", answered=True)
    return MITEL.format_record(call, MITEL.options())


def test_calls_arrive_over_a_pseudo_terminal(tmp_path) -> None:
    master, slave = os.openpty()
    device = os.ttyname(slave)
    site = Site(tmp_path, f"sqlite:///{tmp_path / 'appliance.db'}")
    site.pbx = {"name": "pbx", "driver": "mitel_mivb", "transport": "serial", "device": device, "baudrate": 9600}
    site.write_config()
    try:
        site.start_pms()
        site.start_daemon()
        wait_for(lambda: "PBX link pbx up" in (tmp_path / "daemon.log").read_text(), 20, "serial link up", site)
        os.write(master, b"\x00garbage that is no record\r\n")
        lines = [mitel_line("101", "912125551234", 130), mitel_line("102", "9011442071234567", 61)]
        for line in lines:
            for i in range(0, len(line), 17):  # arrives in pieces, as a UART delivers it
                os.write(master, line[i:i + 17])
                time.sleep(0.01)
        wait_for(lambda: site.db()["calls"] == 2, 20, "the calls stored", site)
        db = site.db()
        assert sorted(r.rstrip() for r in db["raws"]) == sorted(line.decode().rstrip() for line in lines)
        assert [raw for _reason, raw in db["quarantined"]] == [b"\x00garbage that is no record"]
    finally:
        site.stop_all()
        os.close(master)
        os.close(slave)
