"""The delivery channels against real servers on loopback: an aiosmtpd SMTP server with STARTTLS (and
implicit TLS) and AUTH, an HTTP receiver that checks the HMAC signature, dead and silent receivers, and a
UDP socket for syslog. The senders run on a private reactor in a thread."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from twisted.internet.error import ConnectionRefusedError
from twisted.python.threadpool import ThreadPool

from appliance.alerts.config import EmailChannel, SyslogChannel, WebhookChannel
from appliance.net.alert_delivery import DeliveryError, EmailSender, SyslogSender, WebhookSender
from tests.integration.harness import free_port

SECRET = "receiver-shared-secret-0123"
PAYLOAD = {"id": 7, "site": "Test Hotel", "rule": "burst",
           "rule_text": "One extension makes 10 or more calls.",
           "severity": "critical", "subject": "150",
           "message": "extension 150 made 10 outgoing calls within 5 minutes",
           "call_id": 42, "created_at": "2026-03-16T15:01:00+00:00",
           "details": {"call": {"extension": "150", "number": "011442071234567"}},
           "text": "[Test Hotel] critical burst: extension 150 made 10 outgoing calls within 5 minutes"}


# ------------------------------------------------------------------------------------------ SMTP

class Mailbox:
    """An aiosmtpd handler that keeps what it was given, and whether TLS and AUTH were in place."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        self.messages.append({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                              "content": envelope.content,
                              # STARTTLS fills session.ssl; implicit TLS shows on the transport only
                              "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object")
                              is not None, "login": session.auth_data})
        return "250 OK"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"alerts", b"s3cret")
    return AuthResult(success=ok, auth_data=data.login.decode() if ok else None)


@pytest.fixture
def mail_pool() -> Iterator[ThreadPool]:
    pool = ThreadPool(minthreads=0, maxthreads=2, name="test-mail")
    pool.start()
    yield pool
    pool.stop()


def smtp_server(tls_files: Any, security: str) -> tuple[Controller, Mailbox]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files.cert, tls_files.key)
    box = Mailbox()
    options: dict[str, Any] = {"authenticator": authenticator, "auth_require_tls": True}
    if security == "starttls":
        options.update(tls_context=context, require_starttls=True)
    elif security == "ssl":
        # aiosmtpd does not count implicit TLS as TLS for AUTH; the connection is encrypted all the same.
        options.update(ssl_context=context, server_hostname="localhost", auth_require_tls=False)
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    return controller, box


def email_channel(port: int, **overrides: Any) -> EmailChannel:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": port, "security": "starttls", "username": "alerts",
                              "password": "s3cret", "sender": "appliance@hotel.example",
                              "to": ("nm@hotel.example", "it@hotel.example"), "timeout_seconds": 10.0}
    return EmailChannel(**{**values, **overrides})


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_email_over_tls_with_login(reactor_thread, tls_files, mail_pool, security: str) -> None:
    controller, box = smtp_server(tls_files, security)
    try:
        channel = email_channel(controller.port, security=security, ca_file=str(tls_files.cert))
        reactor_thread.call(EmailSender(channel, reactor_thread.reactor, mail_pool).send, PAYLOAD)
    finally:
        controller.stop()
    (got,) = box.messages
    assert got["tls"] and got["login"] == "alerts"
    assert (got["from"], got["to"]) == ("appliance@hotel.example", ["nm@hotel.example", "it@hotel.example"])
    mail = message_from_bytes(got["content"])
    assert mail["Subject"] == "[Test Hotel] CRITICAL burst: 150"
    body = mail.get_payload(decode=True).decode().replace("\r\n", "\n")  # SMTP lines end in CRLF
    assert body.startswith("extension 150 made 10 outgoing calls within 5 minutes\n")
    assert "Rule: One extension makes 10 or more calls." in body and "  number: 011442071234567" in body


def test_email_refuses_a_certificate_it_cannot_verify(reactor_thread, tls_files, mail_pool) -> None:
    controller, box = smtp_server(tls_files, "starttls")
    try:
        channel = email_channel(controller.port)  # the system CAs do not know the self-signed certificate
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            reactor_thread.call(EmailSender(channel, reactor_thread.reactor, mail_pool).send, PAYLOAD)
    finally:
        controller.stop()
    assert box.messages == []


def test_email_never_falls_back_to_clear_text(reactor_thread, tls_files, mail_pool) -> None:
    controller, box = smtp_server(tls_files, "none")  # a server that offers no STARTTLS
    try:
        channel = email_channel(controller.port, username="", ca_file=str(tls_files.cert))
        with pytest.raises(DeliveryError, match="STARTTLS extension not supported"):
            reactor_thread.call(EmailSender(channel, reactor_thread.reactor, mail_pool).send, PAYLOAD)
    finally:
        controller.stop()
    assert box.messages == []


def test_email_to_a_dead_server_fails_with_the_reason(reactor_thread, mail_pool) -> None:
    channel = email_channel(free_port())
    with pytest.raises(DeliveryError, match="ConnectionRefusedError"):
        reactor_thread.call(EmailSender(channel, reactor_thread.reactor, mail_pool).send, PAYLOAD)


# ------------------------------------------------------------------------------------------ webhooks

class Receiver:
    """An HTTP server in a thread that accepts a POST only with a valid HMAC-SHA256 of the raw body."""

    def __init__(self, secret: str, header: str = "X-Appliance-Signature", tls: Any = None) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                valid = hmac.compare_digest(expected, self.headers.get(header, ""))
                received.append({"body": body, "valid": valid, "headers": dict(self.headers)})
                self.send_response(204 if valid else 401)
                if valid:
                    self.end_headers()
                    return
                self.send_header("Content-Length", "13")
                self.end_headers()
                self.wfile.write(b"bad signature")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls.cert, tls.key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://localhost:{self.server.server_address[1]}/hooks/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver(SECRET, header="X-Hotel-Signature")
    yield running
    running.stop()


def hook(url: str, **overrides: Any) -> WebhookChannel:
    return WebhookChannel(**{"url": url, "secret": SECRET, "header": "X-Hotel-Signature",
                             "timeout_seconds": 5.0, **overrides})


def test_webhook_posts_signed_json(reactor_thread, receiver: Receiver) -> None:
    reactor_thread.call(WebhookSender(hook(receiver.url), reactor_thread.reactor).send, PAYLOAD)
    (got,) = receiver.received
    assert got["valid"] and json.loads(got["body"]) == PAYLOAD
    assert got["headers"]["Content-Type"] == "application/json" and got["headers"]["X-Appliance-Alert"] == "7"


def test_webhook_over_https_trusting_the_channel_s_own_ca(reactor_thread, tls_files) -> None:
    receiver = Receiver(SECRET, header="X-Hotel-Signature", tls=tls_files)
    try:
        untrusted = WebhookSender(hook(receiver.url), reactor_thread.reactor)
        with pytest.raises(DeliveryError, match="certificate verify failed"):
            reactor_thread.call(untrusted.send, PAYLOAD)
        trusted = WebhookSender(hook(receiver.url, ca_file=str(tls_files.cert)), reactor_thread.reactor)
        reactor_thread.call(trusted.send, PAYLOAD)
    finally:
        receiver.stop()
    assert [r["valid"] for r in receiver.received] == [True]


def test_webhook_with_the_wrong_secret_is_refused_by_the_receiver(reactor_thread, receiver: Receiver) -> None:
    sender = WebhookSender(hook(receiver.url, secret="not-the-receivers-secret"), reactor_thread.reactor)
    with pytest.raises(DeliveryError, match="HTTP 401 Unauthorized: bad signature"):
        reactor_thread.call(sender.send, PAYLOAD)
    assert [r["valid"] for r in receiver.received] == [False]


def test_webhook_to_a_dead_receiver(reactor_thread) -> None:
    sender = WebhookSender(hook(f"http://127.0.0.1:{free_port()}/"), reactor_thread.reactor)
    with pytest.raises(ConnectionRefusedError):
        reactor_thread.call(sender.send, PAYLOAD)


def test_webhook_to_a_receiver_that_never_answers_times_out(reactor_thread) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        sender = WebhookSender(hook(f"http://127.0.0.1:{silent.getsockname()[1]}/", timeout_seconds=0.5),
                               reactor_thread.reactor)
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="no answer within 0.5 s"):
            reactor_thread.call(sender.send, PAYLOAD)
        assert time.monotonic() - started < 3


# ------------------------------------------------------------------------------------------ syslog

def test_syslog_rfc5424_over_udp(reactor_thread) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        collector.settimeout(5)
        channel = SyslogChannel(address=f"127.0.0.1:{collector.getsockname()[1]}", facility="local4")
        sender = SyslogSender(channel, reactor_thread.reactor, hostname="appliance-1")
        try:
            reactor_thread.call(sender.send, {**PAYLOAD, "subject": 'ext "150"]'})
            datagram = collector.recv(4096)
        finally:
            reactor_thread.call(sender.close)
    # local4 (20) x 8 + critical (2) = 162
    assert datagram == ('<162>1 2026-03-16T15:01:00+00:00 appliance-1 appliance - burst [alert@32473 id="7" '
                        'severity="critical" subject="ext \\"150\\"\\]" site="Test Hotel"] '
                        '\ufeffextension 150 made 10 outgoing calls within 5 minutes').encode()
