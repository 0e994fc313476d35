"""A PBX link over a real pseudo-terminal: the daemon reads SMDR from a serial device."""

from __future__ import annotations

import os
import time

import pytest

from tests.integration.harness import Site, wait_for

pytestmark = pytest.mark.slow

LINES = [
    b" 03/05 13:14:13  0000:02:10 101          912125551234          00000A                                       "
    b"001   99029                                   C0099410 A                                            \r\n",
]


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
        for line in LINES:
            for i in range(0, len(line), 17):  # arrives in pieces, as a UART delivers it
                os.write(master, line[i:i + 17])
                time.sleep(0.01)
        wait_for(lambda: site.db()["calls"] == 1, 20, "the call stored", site)
        db = site.db()
        assert db["raws"][0].startswith(" 03/05 13:14:13  0000:02:10 101")
    finally:
        site.stop_all()
        os.close(master)
        os.close(slave)
