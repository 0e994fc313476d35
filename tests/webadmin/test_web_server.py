"""appliance.net.web_server and ``appliance web``: the web admin served by Twisted's WSGI resource."""

from __future__ import annotations

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
