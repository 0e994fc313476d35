"""FIAS over RS-232 between real processes: the daemon (``appliance run``, its PMS link on ``transport:
serial``) and the PMS simulator (``appliance simulate pms --serial``), joined by two pseudo-terminals and a
null-modem relay in the test that also counts every PS on the wire.

FIAS 2.20.23 §1 (p.91-97): LRC + ACK/NAK + ENQ are on by default on serial. Scripted line faults — the PMS
NAKs a PS once, loses its ACK (the daemon must ENQ, not resend), sends a PA with a bad LRC (the daemon
NAKs it and the PMS repeats it) — and a lost PA all leave each charge booked at most once.
"""

from __future__ import annotations

import os
import select
import threading
import tty
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from appliance.db.session import make_engine, make_sessionmaker
from appliance.pipeline import add_posting
from tests.integration.harness import Site, wait_for

pytestmark = pytest.mark.slow


class NullModem:
    """Two raw pseudo-terminals whose masters the test joins, like a crossed serial cable."""

    def __init__(self) -> None:
        self.ends = []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(master)
            tty.setraw(slave)
            self.ends.append((master, slave, os.ttyname(slave)))
        self.wire: dict[int, bytearray] = {0: bytearray(), 1: bytearray()}  # bytes from end 0 / end 1
        self._stop = False
        self._thread = threading.Thread(target=self._relay, daemon=True)
        self._thread.start()

    def device(self, end: int) -> str:
        return self.ends[end][2]

    def _relay(self) -> None:
        masters = [self.ends[0][0], self.ends[1][0]]
        while not self._stop:
            ready, _, _ = select.select(masters, [], [], 0.1)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                side = masters.index(fd)
                self.wire[side] += data
                os.write(masters[1 - side], data)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        for master, slave, _ in self.ends:
            os.close(master)
            os.close(slave)


@dataclass
class SerialSite(Site):
    pms_link: dict = field(default_factory=dict)

    def write_config(self) -> None:
        super().write_config()
        config = yaml.safe_load(self.config_path.read_text())
        config["pms"] = self.pms_link
        self.config_path.write_text(yaml.safe_dump(config))

    def log_has(self, name: str, text: str) -> bool:
        path = self.root / f"{name}.log"
        return path.exists() and text in path.read_text(errors="replace")

    def post(self, room: str, amount: str = "2.50") -> None:
        engine = make_engine(self.db_url)
        try:
            with make_sessionmaker(engine).begin() as session:
                add_posting(session, call=None, link="pms", room=room, stay_id=None, amount=Decimal(amount),
                            currency="USD", now=datetime.now(timezone.utc), cause="test", destination="44207")
        finally:
            engine.dispose()


def start_serial_pms(site: SerialSite, device: str, *extra: str) -> None:
    site.start("pms", "simulate", "pms", "--serial", device, "--rooms", "101-120", "--record",
               str(site.pms_record), "--control", f"127.0.0.1:{site.control_port}", *extra)
    wait_for(lambda: site.log_has("pms", "control listening"), 20, "the simulator", site)


def test_fias_over_serial_with_line_faults(tmp_path: Path) -> None:
    modem = NullModem()
    site = SerialSite(tmp_path, f"sqlite:///{tmp_path / 'appliance.db'}", answer_timeout=4.0)
    site.pms_link = {"name": "pms", "driver": "fias", "transport": "serial", "device": modem.device(0),
                     "baudrate": 19200, "parity": "E", "options": {"answer_timeout": 4.0}}
    site.write_config()
    try:
        start_serial_pms(site, modem.device(1), "--baudrate", "19200", "--parity", "E")
        site.start_daemon()
        wait_for(lambda: site.log_has("daemon", "PMS link pms up"), 30, "the serial FIAS link alive", site)
        states = lambda: site.db()["states"]  # noqa: E731
        for number, fault in enumerate(("nak", "lose-ack", "bad-lrc", "lose-pa", ""), start=1):
            if fault:
                assert site.control(f"fault {fault}").startswith("OK"), fault
            site.post("101")
            wait_for(lambda: sum(states().get(s, 0) for s in ("ok", "failed")) == number, 40,
                     f"posting {number} ({fault or 'no fault'}) settled", site)
        db, received = site.db(), site.pms_received()
        assert sorted(p.state for p in db["postings"]) == ["failed", "ok", "ok", "ok", "ok"]
        sequences = [r["sequence"] for r in received]
        assert sorted(sequences) == [1, 2, 3, 4, 5]  # each charge booked once
        from_daemon = bytes(modem.wire[0])
        assert from_daemon.count(b"\x02PS|") == 6  # the NAKed PS went twice, nothing else repeated
        assert b"\x05" in from_daemon  # the lost ACK was asked for, not answered with a resend
        assert bytes(modem.wire[1]).count(b"|P#3|") >= 2  # the PA with the bad LRC was repeated
        failed = [p for p in db["postings"] if p.state == "failed"]
        assert failed[0].reason.startswith("no answer: check the folio")
    finally:
        site.stop_all()
        modem.close()
