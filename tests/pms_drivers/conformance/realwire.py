"""Drive a sans-IO vendor link over a real byte stream (a loopback socket or a pseudo-terminal) against the
PMS simulator running as its own process (``appliance simulate pms``), with wall-clock time.

Used by the conformance suite to run the same scripted dialogues as the in-memory tests over real
transports. No reactor in the test process: a ``select`` loop feeds the link and fires its deadline.
"""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import time
import tty
from pathlib import Path
from typing import Any

from appliance.events import Event

REPO = Path(__file__).resolve().parents[3]


def start_simulator(args: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "appliance", "simulate", "pms", *args],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, cwd=REPO)


def wait_for_log(log: Path, pattern: str, timeout: float = 20) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, log.read_text(errors="replace"))
        if match:
            return match
        time.sleep(0.1)
    raise AssertionError(f"the simulator never logged {pattern!r}:\n{log.read_text(errors='replace')}")


def control(port: int, command: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode().strip()


class Wire:
    """A link on one end of a real stream: ``fd`` (pty master) or ``sock``."""

    def __init__(self, link: Any, *, sock: socket.socket | None = None, fd: int | None = None) -> None:
        self.link = link
        self.sock = sock
        self.fd = fd if fd is not None else sock.fileno()  # type: ignore[union-attr]
        self.events: list[Event] = []
        self.sent = bytearray()
        self.events += link.connection_made(time.time())

    def _write(self) -> None:
        out = self.link.data_to_send()
        if out:
            self.sent += out
            if self.sock is not None:
                self.sock.sendall(out)
            else:
                os.write(self.fd, out)

    def run(self, until: Any, timeout: float) -> list[Event]:
        """Pump until ``until(events)`` is true; returns the events of this run."""
        start, deadline = len(self.events), time.monotonic() + timeout
        self._write()
        while time.monotonic() < deadline:
            if until(self.events[start:]):
                return self.events[start:]
            wake = self.link.deadline()
            wait = 0.05 if wake is None else max(0.0, min(0.05, wake - time.time()))
            ready, _, _ = select.select([self.fd], [], [], wait)
            if ready:
                data = self.sock.recv(4096) if self.sock is not None else os.read(self.fd, 4096)
                if not data:
                    raise AssertionError("the simulator closed the stream")
                self.events += self.link.receive_data(data, time.time())
            self.events += self.link.handle_timeout(time.time())
            self._write()
        raise AssertionError(f"timed out; events: {self.events[start:]}")

    def send(self, command: Any) -> None:
        self.link.send(command, time.time())
        self._write()


def raw_pty() -> tuple[int, int, str]:
    """A pseudo-terminal in raw mode: (master fd, slave fd, slave path). Keep the slave fd open."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)
