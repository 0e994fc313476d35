"""systemd readiness and watchdog notifications (``sd_notify(3)``), without libsystemd.

The protocol is one datagram per notification on the AF_UNIX socket named by ``$NOTIFY_SOCKET``: newline
separated ``KEY=VALUE`` lines such as ``READY=1``, ``WATCHDOG=1``, ``STATUS=...`` and ``STOPPING=1``. A
name starting with ``@`` is a Linux abstract socket (the ``@`` stands for a leading NUL byte).

``$WATCHDOG_USEC`` carries the unit's ``WatchdogSec=`` in microseconds. systemd.service(5): "The watchdog
is activated when the start-up is completed", i.e. after ``READY=1``; until then only
``TimeoutStartSec=`` applies. sd_watchdog_enabled(3) recommends pinging every half of the timeout.

``WatchdogService`` sends ``READY=1`` the first time its health check passes (the daemon's services are
running) and then ``WATCHDOG=1`` on every tick *only while* the check passes. A reactor that hangs, or a
daemon whose links have stopped, therefore stops the pings and systemd restarts the unit.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.logger import Logger

# Before READY=1 the health check is polled this often, so readiness is reported promptly.
STARTUP_POLL = 0.5
# Without a watchdog (WatchdogSec= unset, or not run by systemd) STATUS= is refreshed this often.
DEFAULT_INTERVAL = 10.0


class Notifier:
    """A minimal sd_notify client. Without ``$NOTIFY_SOCKET`` every call is a no-op returning False.

    Sending never raises: a notification that cannot be delivered must not take the daemon down. It
    is logged once, and the missing pings then let systemd act, which is the safe outcome.
    """

    log = Logger()

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._socket: socket.socket | None = None
        self._failed = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        environ = os.environ if environ is None else environ
        return cls(environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` (``"READY=1"``, ``"STATUS=..."``) as one datagram. True when it was sent."""
        if self.address is None:
            return False
        # Abstract namespace: '@name' on the command line is '\0name' on the wire.
        address = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        message = "\n".join(line.replace("\n", " ") for line in lines).encode("utf-8")
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(message, address)
        except OSError as exc:
            if not self._failed:
                self.log.warn("cannot notify systemd at {address}: {error}", address=self.address, error=exc)
                self._failed = True
            return False
        self._failed = False
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between pings (half of ``$WATCHDOG_USEC``), or None when no watchdog is armed for us.

    ``$WATCHDOG_PID``, when set, names the process the watchdog is meant for; a child that inherited the
    environment must not ping on its parent's behalf (sd_watchdog_enabled(3)).
    """
    environ = os.environ if environ is None else environ
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner and owner.isdigit() and int(owner) != (os.getpid() if pid is None else pid):
        return None
    return usec / 1_000_000 / 2


class WatchdogService(Service):
    """Reports readiness, then pings the systemd watchdog while ``healthy()`` returns True.

    ``clock`` is the reactor (``callLater``), or ``task.Clock`` in tests. ``status()`` gives the text of
    the ``STATUS=`` line ``systemctl status`` shows; it is sent when it changes.
    """

    log = Logger()

    def __init__(self, notifier: Notifier, healthy: Callable[[], bool], clock: Any,
                 interval: float | None, status: Callable[[], str] = lambda: "") -> None:
        self.notifier = notifier
        self._healthy = healthy
        self._clock = clock
        self.watchdog = interval is not None
        self.interval = interval if interval is not None else DEFAULT_INTERVAL
        self._status = status
        self.ready = False
        self.pings = 0
        self._last_status: str | None = None
        self._was_healthy = True
        self._call: Any = None

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self._tick()

    def stopService(self) -> Any:  # noqa: N802
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self.notifier.notify("STOPPING=1", "STATUS=stopping")
        self.notifier.close()
        return super().stopService()

    def _tick(self) -> None:
        self._call = None
        healthy = self._check()
        lines: list[str] = []
        status = self._status() if healthy else f"not healthy: {self._status()}"
        if status and status != self._last_status:
            lines.append(f"STATUS={status}")
            self._last_status = status
        if healthy and not self.ready:
            lines.insert(0, "READY=1")
            self.ready = True
            self.log.info("ready; watchdog {state}",
                          state=f"ping every {self.interval:g} s" if self.watchdog else "not armed")
        if healthy and self.watchdog:
            lines.append("WATCHDOG=1")
            self.pings += 1
        if not healthy and self._was_healthy and self.ready:
            self.log.warn("health check failed: watchdog pings stop, systemd will restart the daemon")
        self._was_healthy = healthy
        if lines:
            self.notifier.notify(*lines)
        if self.running:
            delay = self.interval if self.ready else min(STARTUP_POLL, self.interval)
            self._call = self._clock.callLater(delay, self._tick)

    def _check(self) -> bool:
        try:
            return bool(self._healthy())
        except Exception:  # a broken check means "not healthy", never a dead timer
            self.log.failure("watchdog health check raised")
            return False
