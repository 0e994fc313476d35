"""The sd_notify client and the watchdog service, against a real AF_UNIX datagram socket and task.Clock."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from appliance.net.watchdog import Notifier, WatchdogService, watchdog_interval


class FakeSystemd:
    """The receiving end of $NOTIFY_SOCKET: collects the datagrams the service sends."""

    def __init__(self, address: str, bind_to: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)
        self.sock.setblocking(False)

    def messages(self) -> list[dict[str, str]]:
        out = []
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return out
            out.append(dict(line.split("=", 1) for line in data.decode().split("\n")))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    path = str(tmp_path / "notify")
    fake = FakeSystemd(path, path)
    yield fake
    fake.close()


def test_notifier_sends_one_datagram_per_call(systemd: FakeSystemd) -> None:
    notifier = Notifier(systemd.address)
    assert notifier.notify("READY=1", "STATUS=up and\nrunning")
    assert systemd.messages() == [{"READY": "1", "STATUS": "up and running"}]
    notifier.close()


def test_abstract_socket_names_start_with_at() -> None:
    name = f"appliance-test-{uuid.uuid4().hex}"
    fake = FakeSystemd(f"@{name}", f"\0{name}")
    try:
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": f"@{name}"})
        assert notifier.notify("WATCHDOG=1")
        assert fake.messages() == [{"WATCHDOG": "1"}]
        notifier.close()
    finally:
        fake.close()


def test_without_notify_socket_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier.from_environment({})
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False


def test_a_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    assert notifier.notify("WATCHDOG=1") is False
    assert notifier.notify("WATCHDOG=1") is False


def test_interval_is_half_of_watchdog_usec_and_only_for_our_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}, pid=4242) is None
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "nonsense"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_ready_then_pings_while_healthy_and_no_pings_once_unhealthy(systemd: FakeSystemd) -> None:
    clock = Clock()
    state = {"healthy": False}
    service = WatchdogService(Notifier(systemd.address), lambda: state["healthy"], clock,
                              interval=watchdog_interval({"WATCHDOG_USEC": "20000000"}),
                              status=lambda: "2 PBX link(s)")
    service.startService()
    # Starting up (links not yet running): neither READY nor WATCHDOG, only the status.
    clock.advance(0.5)
    clock.advance(0.5)
    first = systemd.messages()
    assert all("READY" not in m and "WATCHDOG" not in m for m in first)
    assert first[0]["STATUS"] == "not healthy: 2 PBX link(s)"

    state["healthy"] = True
    clock.advance(0.5)
    ready = systemd.messages()
    assert ready == [{"READY": "1", "STATUS": "2 PBX link(s)", "WATCHDOG": "1"}]

    for _ in range(3):
        clock.advance(10.0)  # WatchdogSec=20 s -> a ping every 10 s
    assert systemd.messages() == [{"WATCHDOG": "1"}] * 3

    state["healthy"] = False
    for _ in range(4):
        clock.advance(10.0)
    stopped = systemd.messages()
    assert all("WATCHDOG" not in m for m in stopped)
    assert stopped == [{"STATUS": "not healthy: 2 PBX link(s)"}]  # said once, not on every tick

    state["healthy"] = True
    clock.advance(10.0)
    assert systemd.messages() == [{"STATUS": "2 PBX link(s)", "WATCHDOG": "1"}]  # READY only once

    service.stopService()
    assert systemd.messages() == [{"STOPPING": "1", "STATUS": "stopping"}]
    assert clock.getDelayedCalls() == []


def test_a_health_check_that_raises_counts_as_unhealthy(systemd: FakeSystemd) -> None:
    clock = Clock()

    def broken() -> bool:
        raise RuntimeError("boom")

    service = WatchdogService(Notifier(systemd.address), broken, clock, interval=5.0)
    service.startService()
    clock.advance(5.0)
    assert all("WATCHDOG" not in m and "READY" not in m for m in systemd.messages())
    assert service.running  # the timer goes on
    service.stopService()


def test_without_watchdog_ready_is_still_sent(systemd: FakeSystemd) -> None:
    clock = Clock()
    service = WatchdogService(Notifier(systemd.address), lambda: True, clock, interval=None)
    service.startService()
    assert systemd.messages() == [{"READY": "1"}]
    clock.advance(60)
    assert systemd.messages() == []  # no WatchdogSec=: no pings, and no status text to refresh
    service.stopService()


def test_daemon_health_follows_its_services() -> None:
    from types import SimpleNamespace

    from appliance.commands.run import describe, healthy

    link = SimpleNamespace(running=1, records_received=3, link=SimpleNamespace(name="opera"))
    daemon = SimpleNamespace(service=SimpleNamespace(running=1), pbx=[link], pms=link)
    assert healthy(daemon)
    assert describe(daemon) == "1 PBX link(s), PMS link opera; 3 record(s) received since start"
    link.running = 0
    assert not healthy(daemon)
    link.running = 1
    daemon.service.running = 0
    assert not healthy(daemon)


def test_the_real_daemon_notifies_systemd(tmp_path: Path, systemd: FakeSystemd) -> None:
    """``appliance run`` as systemd starts it: READY=1 once its links run, then WATCHDOG=1; a second
    daemon on the same database is refused; SIGTERM gives STOPPING=1."""
    import signal
    import subprocess
    import sys
    import time

    from tests.integration.harness import Site

    site = Site(root=tmp_path, db_url=f"sqlite:///{tmp_path / 'appliance.db'}")
    site.write_config()
    env = {**os.environ, "NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "1000000",
           "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "appliance", "run", "--config", str(site.config_path)]
    with open(tmp_path / "daemon.log", "w") as log:
        daemon = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        seen: list[dict[str, str]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum("WATCHDOG" in m for m in seen) < 3:
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()
            seen += systemd.messages()
            time.sleep(0.1)
        assert any(m.get("READY") == "1" for m in seen), (tmp_path / "daemon.log").read_text()
        assert sum("WATCHDOG" in m for m in seen) >= 3
        assert "PBX link" in next(m["STATUS"] for m in seen if "READY" in m)

        second = subprocess.run(argv, env={**os.environ}, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "already holds this database" in second.stderr

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        assert {"STOPPING": "1", "STATUS": "stopping"} in systemd.messages()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
