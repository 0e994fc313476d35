"""appliance.net.web_server and ``appliance web``: the web admin served by Twisted's WSGI resource."""

from __future__ import annotations

import socket
import time
import urllib.request
from http.client import HTTPResponse
from pathlib import Path

import pytest
from flask import Flask
from twisted.internet.testing import MemoryReactor
from twisted.web.server import Site

from appliance.commands.web import database_problem, serve
from appliance.config import ApplianceConfig, DatabaseConfig, SiteConfig
from appliance.net.web_server import make_web_service
from tests.webadmin.conftest import LiveServer


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def _get(url: str) -> HTTPResponse:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        return opener.open(url, timeout=10)
    except urllib.error.HTTPError as exc:  # 3xx and 4xx arrive as errors once redirects are off
        return exc  # type: ignore[return-value]


def test_service_listens_where_configured_and_runs_the_pool() -> None:
    reactor = MemoryReactor()
    service = make_web_service(Flask("x"), "127.0.0.1", 8080, reactor)
    service.startService()
    [(port, factory, backlog, interface)] = reactor.tcpServers
    assert (port, interface) == (8080, "127.0.0.1")
    assert isinstance(factory, Site)
    assert service.threadpool.started
    service.stopService()
    assert not service.threadpool.started


def test_live_server_serves_pages_and_static_files(live_server: LiveServer) -> None:
    response = _get(live_server.url + "/")
    assert response.status == 302
    assert response.headers["Location"].endswith("/auth/login?next=%2F")
    login = _get(live_server.url + "/auth/login")
    assert login.status == 200
    assert "Content-Security-Policy" in login.headers
    assert b"Sign in" in login.read()
    css = _get(live_server.url + "/static/style.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")


def test_web_command_refuses_a_database_below_head(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert "appliance db upgrade" in (database_problem(url) or "")
    config = ApplianceConfig(site=SiteConfig(name="Test"), database=DatabaseConfig(url=url))
    reactor = MemoryReactor()
    assert serve(config, reactor) == 1
    assert "run `appliance db upgrade` first" in capsys.readouterr().err
    assert reactor.tcpServers == []


def test_database_at_head_has_no_problem(migrated_url: str) -> None:
    assert database_problem(migrated_url) is None


# -- backpressure for streamed responses ---------------------------------------------------------------

CHUNK = b"x" * 65536
CHUNKS = 400  # 25 MiB


def _streaming_app(produced: list[int]):  # type: ignore[no-untyped-def]
    def app(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def body():  # type: ignore[no-untyped-def]
            for i in range(CHUNKS):
                produced.append(i)
                yield CHUNK

        return body()

    return app


def _slow_reader(port: int) -> tuple[socket.socket, bytes]:
    """A client that asks for the stream, reads its first bytes, and then reads nothing."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    client.connect(("127.0.0.1", port))
    client.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    head = client.recv(4096)
    assert head.startswith(b"HTTP/1.1 200")
    return client, head


def _drain(client: socket.socket) -> bytes:
    data = bytearray()
    client.settimeout(30)
    while not data.endswith(b"0\r\n\r\n"):
        chunk = client.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    return bytes(data)


def test_a_streamed_response_waits_for_a_slow_client() -> None:
    produced: list[int] = []
    server = LiveServer(_streaming_app(produced))  # type: ignore[arg-type]
    try:
        client, head = _slow_reader(server.service.port.getHost().port)
        time.sleep(1.0)
        # Without backpressure the whole 25 MiB would sit in the server's buffer by now; with it, only
        # what the socket buffers hold was produced.
        assert len(produced) < CHUNKS // 2
        body = head + _drain(client)
        client.close()
        assert len(produced) == CHUNKS
        assert body.count(b"x") == CHUNKS * len(CHUNK) and body.endswith(b"0\r\n\r\n")
    finally:
        server.stop()


def test_a_stalled_client_is_dropped_and_frees_the_thread() -> None:
    produced: list[int] = []
    server = LiveServer(_streaming_app(produced))  # type: ignore[arg-type]
    server.service.factory.resource.stalled_after = 0.5
    try:
        client, _ = _slow_reader(server.service.port.getHost().port)
        time.sleep(1.5)
        stalled_at = len(produced)
        body = _drain(client)
        client.close()
        assert stalled_at < CHUNKS // 2 and len(produced) < CHUNKS
        assert not body.endswith(b"0\r\n\r\n")  # cut off, not completed
        # The pool thread is free again: a normal request is answered.
        assert _get(server.url + "/x").status == 200
    finally:
        server.stop()


def test_stopping_the_service_ends_a_stalled_response_at_once() -> None:
    produced: list[int] = []
    server = LiveServer(_streaming_app(produced))  # type: ignore[arg-type]
    client, _ = _slow_reader(server.service.port.getHost().port)
    time.sleep(0.5)
    started = time.monotonic()
    server.stop()  # would wait STALLED_CLIENT (300 s) for the pool thread without stop_all
    assert time.monotonic() - started < 10
    client.close()
