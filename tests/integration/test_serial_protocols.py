"""The serial posting protocols end to end between real processes (fias.md §7): the daemon posting over a
pseudo-terminal with ``driver: hobic`` (a call record line per charge, LF … CR LF, ACK/NAK) or
``driver: stx_posting`` (ENQ/ACK, STX record ETX BCC, ACK/NAK, EOT), and the simulator playing the PMS.

A NAKed record is sent again and booked once; a lost ACK leaves the posting failed for review and the
record is never sent again; the layout the YAML describes is what the PMS reads.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.harness import wait_for
from tests.integration.test_fias_serial import NullModem, SerialSite, start_serial_pms

pytestmark = pytest.mark.slow

LAYOUTS = {
    "hobic": {"acknowledgement": "ack-nak", "ack_timeout": 2.0, "resume_after": 3.0},
    "stx_posting": {"bcc": "xor", "ack_timeout": 2.0, "resume_after": 3.0,
                    "fields": [{"name": "literal", "value": "CHG"},
                               {"name": "sequence", "width": 5, "align": "right", "pad": "0"},
                               {"name": "room", "width": 5, "align": "right"},
                               {"name": "amount", "width": 7, "align": "right", "pad": "0", "format": "implied"},
                               {"name": "date", "format": "%d%m%y"}]},
}


@pytest.mark.parametrize("protocol", ["hobic", "stx_posting"])
def test_serial_posting_protocol_end_to_end(tmp_path: Path, protocol: str) -> None:
    modem = NullModem()
    options = LAYOUTS[protocol]
    (tmp_path / "options.yaml").write_text(yaml.safe_dump(options))
    site = SerialSite(tmp_path, f"sqlite:///{tmp_path / 'appliance.db'}")
    site.pms_link = {"name": "pms", "driver": protocol, "transport": "serial", "device": modem.device(0),
                     "baudrate": 4800, "options": options}
    site.write_config()
    try:
        start_serial_pms(site, modem.device(1), "--protocol", protocol, "--options-file",
                         str(tmp_path / "options.yaml"), "--baudrate", "4800")
        site.start_daemon()
        wait_for(lambda: site.log_has("daemon", "PMS link pms up"), 30, "the serial link open", site)
        for number, (fault, amount) in enumerate((("nak", "3.47"), ("lose-pa", "1.00"), ("", "12.50")), start=1):
            if fault:
                assert site.control(f"fault {fault}").startswith("OK"), site.control("help")
            site.post("412", amount)
            wait_for(lambda: sum(site.db()["states"].get(s, 0) for s in ("ok", "failed")) == number, 40,
                     f"posting {number} settled", site)
        db, received = site.db(), site.pms_received()
        assert sorted(p.state for p in db["postings"]) == ["failed", "ok", "ok"]
        assert [r["sequence"] for r in received] == [1, 2, 3]  # booked once each
        amounts = [r["amount"] for r in received]
        assert amounts == (["003.47", "001.00", "012.50"] if protocol == "hobic" else ["0000347", "0000100", "0001250"])
        wire = bytes(modem.wire[0])
        record_start = b"\r\n" if protocol == "hobic" else b"\x02CHG"
        assert wire.count(record_start) == 4  # the NAKed record twice, the unacknowledged one once
        if protocol == "stx_posting":
            assert wire.count(b"\x04") == 2 and b"\x05" in wire  # ENQ first, EOT after each ACK
    finally:
        site.stop_all()
        modem.close()
