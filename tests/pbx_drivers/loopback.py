"""A fake PBX on a real loopback socket, and a blocking driver for a sans-IO link against it.

The fake PBX runs a test's script (plain blocking socket calls) in a thread for one connection; the
link is driven from the test thread: bytes from the socket go to ``receive_data``, what the link queues
goes back out, its ``deadline`` is honoured with ``handle_timeout``. No Twisted, no global reactor.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Self

from appliance.errors import ProtocolError
from appliance.events import Event

Script = Callable[[socket.socket], None]


class FakePbx:
    """``with FakePbx(script) as pbx: ... pbx.port``; the script's exception, if any, is raised on exit."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.error: Exception | None = None
        self.received = bytearray()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=10)
        self._server.close()
        if self.error is not None and exc[0] is None:
            raise self.error

    def _run(self) -> None:
        self._server.settimeout(10)
        try:
            connection, _ = self._server.accept()
            with connection:
                connection.settimeout(10)
                self._script(connection)
        except Exception as exc:  # noqa: BLE001 - reported to the test thread on exit
            self.error = exc


def read_until(connection: socket.socket, marker: bytes, limit: int = 4096) -> bytes:
    """Read from the collector until ``marker`` has arrived; returns everything read."""
    data = b""
    while marker not in data:
        chunk = connection.recv(1)
        if not chunk:
            raise ConnectionError(f"collector closed before sending {marker!r}; got {data!r}")
        data += chunk
        if len(data) > limit:
            raise AssertionError(f"no {marker!r} in {data!r}")
    return data


def read_exact(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"collector closed after {data!r}")
        data += chunk
    return data


def drive(link: Any, port: int, *, until: Callable[[list[Event]], bool],
          timeout: float = 10.0) -> list[Event]:
    """Connect to the fake PBX and run ``link`` until ``until(events)`` or the PBX closes the socket.

    A ``ProtocolError`` from the link closes the connection, as the Twisted adapter does; it is recorded
    as the last "event" (the exception object) so tests can assert on it.
    """
    return drive_socket(link, socket.create_connection(("127.0.0.1", port), timeout=timeout), until=until,
                        timeout=timeout)


def drive_socket(link: Any, sock: socket.socket, *, until: Callable[[list[Event]], bool],
                 timeout: float = 10.0) -> list[Event]:
    """``drive`` over a socket already connected (e.g. accepted from a PBX that connects to us)."""
    events: list[Any] = []
    end = time.monotonic() + timeout
    try:
        events += link.connection_made(time.monotonic())
        sock.sendall(link.data_to_send())
        sock.settimeout(0.05)
        while time.monotonic() < end and not until(events):
            try:
                data = sock.recv(4096)
            except TimeoutError:
                data = None
            except ConnectionResetError:
                data = b""  # the PBX hung up hard: the same as a close for the link
            now = time.monotonic()
            if data == b"":
                events += link.connection_lost(now)
                return events
            if data:
                events += link.receive_data(data, now)
            deadline = link.deadline()
            if deadline is not None and now >= deadline:
                events += link.handle_timeout(now)
            out = link.data_to_send()
            if out:
                sock.sendall(out)
            if getattr(link, "wants_close", False):
                events += link.connection_lost(time.monotonic())
                return events
        if not until(events):
            raise AssertionError(f"timed out; events so far: {events}")
        return events
    except ProtocolError as exc:
        events += [exc, *link.connection_lost(time.monotonic())]
        return events
    finally:
        sock.close()
