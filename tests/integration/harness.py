"""Real processes on loopback: the daemon, the PBX simulator and the PMS simulator, as a hotel runs them.

Used by the end-to-end tests: each process is ``python -m appliance ...`` with its output in a log file
that is printed when a test fails, so a failure shows what each party saw.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sqlalchemy import func, select

from appliance.db.models import Call, Posting, QuarantinedLine
from appliance.db.session import make_engine, make_sessionmaker, upgrade


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Site:
    root: Path
    db_url: str
    pbx_port: int = field(default_factory=free_port)
    pms_port: int = field(default_factory=free_port)
    control_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    answer_timeout: float = 5.0
    pbx: dict | None = None
    # Where the PBX simulator connects; None: straight to the daemon's link (a LinkCutter sits between).
    pbx_connect_port: int | None = None
    # Extra keyword arguments for Popen per process name (e.g. ``preexec_fn`` for a resource limit).
    popen_extra: dict[str, dict] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.root / "appliance.yaml"

    @property
    def pms_record(self) -> Path:
        return self.root / "pms-received.jsonl"

    @property
    def pbx_record(self) -> Path:
        return self.root / "pbx-sent.jsonl"

    def write_config(self) -> None:
        pbx = self.pbx or {"name": "pbx", "driver": "mitel_mivb", "transport": "tcp-server", "host": "127.0.0.1",
                           "port": self.pbx_port}
        config = {
            "site": {"name": "Test Hotel", "country": "US", "timezone": "America/New_York", "currency": "USD",
                     "access_code": "9", "local_exchange": "212"},
            "database": {"url": self.db_url},
            "pbx": [pbx],
            "pms": {"name": "pms", "driver": "fias", "transport": "tcp-client", "host": "127.0.0.1",
                    "port": self.pms_port, "options": {"answer_timeout": self.answer_timeout}},
            "extensions": [{"numbers": "101-130", "category": "guest"}, {"numbers": "150", "category": "lobby"}],
            "tariff": {"markup_percent": 20, "surcharge_per_call": "0.25", "grace_seconds": 5, "rounding": "0.01",
                       "default": {"per_minute": "0.30"}},
            "log_level": "info",
        }
        self.config_path.write_text(yaml.safe_dump(config))
        upgrade(self.db_url)

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "a", encoding="utf-8")
        log.write(f"\n=== start {' '.join(args)}\n")
        log.flush()
        process = subprocess.Popen([sys.executable, "-m", "appliance", *args], stdout=log,
                                   stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                   **self.popen_extra.get(name, {}))
        self.processes[name] = process
        return process

    def start_daemon(self) -> subprocess.Popen:
        return self.start("daemon", "run", "--config", str(self.config_path))

    def start_pms(self, *extra: str) -> subprocess.Popen:
        return self.start("pms", "simulate", "pms", "--listen", f"127.0.0.1:{self.pms_port}", "--rooms", "101-120",
                          "--record", str(self.pms_record), "--control", f"127.0.0.1:{self.control_port}",
                          *extra)

    def start_pbx(self, count: int, rate: float, *extra: str) -> subprocess.Popen:
        return self.start("pbx", "simulate", "pbx", "--driver", "mitel_mivb", "--connect",
                          f"127.0.0.1:{self.pbx_connect_port or self.pbx_port}", "--count", str(count),
                          "--rate", str(rate),
                          "--extensions", "101-130,150", "--timezone", "America/New_York",
                          "--record", str(self.pbx_record), *extra)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.get(name)
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            process.wait(timeout=20)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.kill(name, signal.SIGTERM)

    def logs(self) -> str:
        return "\n".join(f"----- {p.name}\n{p.read_text()[-6000:]}" for p in sorted(self.root.glob("*.log")))

    def control(self, command: str) -> str:
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=5) as sock:
            sock.sendall(command.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.decode().strip()

    # what the parties saw
    def pbx_sent(self) -> list[dict]:
        return _jsonl(self.pbx_record)

    def pms_received(self) -> list[dict]:
        return _jsonl(self.pms_record)

    def db(self) -> dict:
        engine = make_engine(self.db_url)
        try:
            with make_sessionmaker(engine)() as session:
                calls = session.scalar(select(func.count()).select_from(Call))
                raws = [r.decode("latin-1").rstrip() for r in session.scalars(select(Call.raw))]
                states = dict(session.execute(select(Posting.state, func.count()).group_by(Posting.state)).all())
                postings = session.execute(select(Posting.id, Posting.call_id, Posting.state, Posting.sequence,
                                                  Posting.reason)).all()
                chargeable = session.scalar(select(func.count()).select_from(Call)
                                            .where(Call.disposition == "charge"))
                quarantined = [(q.reason, q.raw) for q in session.scalars(select(QuarantinedLine))]
        finally:
            engine.dispose()
        return {"calls": calls, "raws": raws, "states": states, "postings": postings, "chargeable": chargeable,
                "quarantined": quarantined}


class LinkCutter:
    """A TCP relay between the PBX simulator and the daemon's ``tcp-server`` link that can drop the link.

    ``cut()`` closes every relayed connection at once, as a serial-to-IP converter that reboots or a
    pulled cable does; bytes in flight are lost and the PBX must reconnect (and replay). A new client
    is held, unread, until the daemon accepts the relay's own connection, so a daemon that is down
    delays the PBX's bytes instead of losing them; when the daemon's side closes, the PBX side is closed
    too, so the PBX sees what it would see without the relay.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket | None]] = []
        self._closed = False
        self.cuts = 0
        self.connections = 0
        threading.Thread(target=self._accept, name="link-cutter", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        entry: list = [client, None]
        with self._lock:
            self._pairs.append(entry)  # type: ignore[arg-type]
        upstream = None
        try:
            while upstream is None and not self._closed and entry in self._pairs:
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=1)
                except OSError:
                    time.sleep(0.2)
            if upstream is None:
                return
            entry[1] = upstream
            self.connections += 1
            self._pump(client, upstream)
        finally:
            with self._lock:
                if entry in self._pairs:
                    self._pairs.remove(entry)
            for sock in (client, upstream):
                if sock is not None:
                    _close(sock)

    @staticmethod
    def _pump(client: socket.socket, upstream: socket.socket) -> None:
        peer = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ)
            selector.register(upstream, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select(timeout=0.5):
                    try:
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        if not data:
                            return
                        peer[key.fileobj].sendall(data)  # type: ignore[index]
                    except OSError:
                        return

    def cut(self) -> int:
        """Drop every relayed connection now; returns how many were dropped."""
        with self._lock:
            pairs, self._pairs = list(self._pairs), []
        for client, upstream in pairs:
            for sock in (client, upstream):
                if sock is not None:
                    # shutdown only: the relay thread sees EOF and closes its sockets itself, so no
                    # descriptor is closed under a select() running in another thread.
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        self.cuts += 1
        return len(pairs)

    def close(self) -> None:
        self._closed = True
        _close(self._server)
        self.cut()


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(condition: Callable[[], bool], timeout: float, what: str, site: Site | None = None,
             interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n" + (site.logs() if site else ""))
