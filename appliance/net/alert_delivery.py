"""Alert delivery channels: e-mail (SMTP with TLS), webhooks (JSON, HMAC-SHA256 signed), syslog (RFC 5424).

Each sender's ``send(payload)`` returns a Deferred that fires None when the channel took the alert and
fails with the reason otherwise; retries, backoff and the delivery log belong to
``appliance.net.alert_service`` and ``appliance.alerts.deliveries``. Nothing here blocks the reactor:

- e-mail uses ``smtplib`` on a small thread pool of its own (RFC 3207 STARTTLS or implicit TLS, the server
  certificate checked against the system CAs or the channel's ``ca_file``), with the channel's timeout;
- a webhook is one POST through ``twisted.web.client.Agent`` with a connect timeout and an overall
  timeout; any 2xx answer is success. The signature header carries ``sha256=`` and the hex HMAC-SHA256 of
  the exact body bytes under the channel's secret (the scheme GitHub webhooks use), so a receiver
  recomputes it over the raw body before parsing;
- syslog is one UDP datagram per alert, RFC 5424 format (fire and forget, as UDP syslog is).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import smtplib
import socket
import ssl
from collections.abc import Mapping
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.protocol import Protocol as StreamProtocol
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.internet.threads import deferToThreadPool
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.web.client import (
    Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool, RequestTransmissionFailed, ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer, IPolicyForHTTPS
from zope.interface import implementer

from appliance.alerts.config import FACILITIES, AlertsConfig, EmailChannel, SyslogChannel, WebhookChannel

SYSLOG_SEVERITY = {"critical": 2, "warning": 4, "info": 6}  # RFC 5424 table 2: crit, warning, info
SYSLOG_MAX = 2048  # RFC 5424 6.1: receivers SHOULD accept 2048 octets
# RFC 5612 reserves enterprise number 32473 for examples; a registered PEN would replace it.
SD_ID = "alert@32473"


class Sender(Protocol):
    def send(self, payload: dict[str, Any]) -> Deferred[None]: ...


class DeliveryError(Exception):
    """A channel refused or could not take an alert; the message is what the delivery log shows."""


# ------------------------------------------------------------------------------------------ webhook

def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


@implementer(IBodyProducer)
class _Body:
    """The whole body at once: a few kilobytes, so no cooperator (and no global reactor) is needed."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> Deferred[None]:  # noqa: N802 (Twisted API)
        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self) -> None:  # noqa: N802
        pass

    def resumeProducing(self) -> None:  # noqa: N802
        pass

    def stopProducing(self) -> None:  # noqa: N802
        pass


@implementer(IPolicyForHTTPS)
class _PrivateCa:
    """Trust only the channel's CA file (a hotel's own PKI), still checking the host name."""

    def __init__(self, ca_file: str) -> None:
        self._root = Certificate.loadPEM(Path(ca_file).read_bytes())

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:  # noqa: N802 (Twisted API)
        return optionsForClientTLS(hostname.decode("ascii"), trustRoot=self._root)


@implementer(IAgentEndpointFactory)
class _Endpoints:
    """Agent's endpoints, with TLS wrapped on *our* reactor.

    Agent's own TLS wrapping builds a ``TLSMemoryBIOFactory`` without a clock, which then schedules its
    writes on the global reactor; the daemon and its tests pass their reactor everywhere instead.
    """

    def __init__(self, reactor: Any, policy: Any, timeout: float) -> None:
        self._reactor = reactor
        self._policy = policy
        self._timeout = timeout

    def endpointForURI(self, uri: Any) -> Any:  # noqa: N802 (Twisted API)
        endpoint = HostnameEndpoint(self._reactor, uri.host, uri.port, timeout=self._timeout)
        if uri.scheme == b"https":
            return _TlsEndpoint(endpoint, self._policy.creatorForNetloc(uri.host, uri.port), self._reactor)
        return endpoint


@implementer(IStreamClientEndpoint)
class _TlsEndpoint:
    def __init__(self, endpoint: Any, creator: Any, reactor: Any) -> None:
        self._endpoint = endpoint
        self._creator = creator
        self._reactor = reactor

    def connect(self, factory: Any) -> Deferred[Any]:
        tls = TLSMemoryBIOFactory(self._creator, True, factory, clock=self._reactor)
        return self._endpoint.connect(tls).addCallback(lambda protocol: protocol.wrappedProtocol)


class WebhookSender:
    def __init__(self, channel: WebhookChannel, reactor: Any) -> None:
        self.channel = channel
        self._reactor = reactor
        policy = _PrivateCa(channel.ca_file) if channel.ca_file else BrowserLikePolicyForHTTPS()
        # No persistent connections: alerts are rare, and an idle pooled socket would outlive a test.
        endpoints = _Endpoints(reactor, policy, channel.timeout_seconds)
        self._agent = Agent.usingEndpointFactory(reactor, endpoints,
                                                 pool=HTTPConnectionPool(reactor, persistent=False))

    def send(self, payload: dict[str, Any]) -> Deferred[None]:
        body = webhook_body(payload)
        headers = Headers({
            b"Content-Type": [b"application/json"],
            b"User-Agent": [b"hotel-pms-appliance alerts"],
            self.channel.header.encode(): [sign(self.channel.secret, body).encode()],
            b"X-Appliance-Alert": [str(payload.get("id", "")).encode()],
        })
        request = self._agent.request(b"POST", self.channel.url.encode(), headers, _Body(body))
        request.addCallback(self._answered)
        request.addErrback(_unwrapped)
        request.addTimeout(self.channel.timeout_seconds, self._reactor, onTimeoutCancel=_timed_out)
        return request

    @staticmethod
    def _answered(response: Any) -> Deferred[None]:
        reading: Deferred[bytes] = Deferred()
        response.deliverBody(_Collect(reading))  # read it all so the connection closes cleanly

        def judge(body: bytes) -> None:
            if not 200 <= response.code < 300:
                text = body[:120].decode("utf-8", "replace").strip()
                raise DeliveryError(f"HTTP {response.code} {response.phrase.decode('latin-1')}"
                                    + (f": {text}" if text else ""))

        return reading.addCallback(judge)


class _Collect(StreamProtocol):
    """The first few hundred bytes of a response body (enough for an error text); the rest is dropped."""

    LIMIT = 512

    def __init__(self, done: Deferred[bytes]) -> None:
        self._done = done
        self._chunks: list[bytes] = []
        self._size = 0

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted API)
        if self._size < self.LIMIT:
            self._chunks.append(data[:self.LIMIT - self._size])
            self._size += len(self._chunks[-1])

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802 (Twisted API)
        # The end of the body arrives as ResponseDone (or PotentialDataLoss without a length): both are fine.
        self._done.callback(b"".join(self._chunks))


def _unwrapped(failure: Failure) -> Failure:
    """Agent wraps what went wrong (a TLS verification failure, a reset) in a list of failures: name them."""
    if failure.check(ResponseNeverReceived, RequestTransmissionFailed, ResponseFailed):
        reasons = [r for r in failure.value.reasons if not r.check(CancelledError)]
        if reasons:
            text = "; ".join(f"{r.type.__name__}: {r.getErrorMessage()}" for r in reasons)
            return Failure(DeliveryError(text[:300]))
    return failure


def _timed_out(result: Any, timeout: float) -> Any:
    """What the delivery log shows when a receiver took the connection and never answered."""
    if isinstance(result, Failure):
        return Failure(DeliveryError(f"no answer within {timeout:g} s"))
    return result


# ------------------------------------------------------------------------------------------ e-mail

def email_message(channel: EmailChannel, payload: dict[str, Any]) -> EmailMessage:
    message = EmailMessage()
    site = payload.get("site") or "appliance"
    message["Subject"] = f"[{site}] {payload['severity'].upper()} {payload['rule']}: {payload['subject']}"
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message["Date"] = format_datetime(datetime.fromisoformat(payload["created_at"]))
    # The domain is given so make_msgid does not ask DNS for ours from the mail thread.
    message["Message-ID"] = make_msgid("alert", domain=channel.sender.rsplit("@", 1)[1])
    lines = [payload["message"], ""]
    if payload.get("rule_text"):
        lines += [f"Rule: {payload['rule_text']}", ""]
    lines += [f"Severity: {payload['severity']}", f"Raised: {payload['created_at']}",
              f"Alert id: {payload['id']} (acknowledge it in the web admin under Alerts)"]
    call = (payload.get("details") or {}).get("call")
    if call:
        lines += ["", "Call:"] + [f"  {key}: {value}" for key, value in call.items()]
    message.set_content("\n".join(lines) + "\n")
    return message


def send_email(channel: EmailChannel, message: EmailMessage) -> None:
    """Blocking: runs on the mail thread pool, never in the reactor thread."""
    context = ssl.create_default_context(cafile=channel.ca_file or None)
    timeout = channel.timeout_seconds
    smtp: smtplib.SMTP
    if channel.security == "ssl":
        smtp = smtplib.SMTP_SSL(channel.host, channel.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(channel.host, channel.port, timeout=timeout)
    with smtp:
        smtp.ehlo()
        if channel.security == "starttls":
            # Refuse to send in clear text when the server does not offer STARTTLS (RFC 3207).
            smtp.starttls(context=context)
            smtp.ehlo()
        if channel.username:
            smtp.login(channel.username, channel.password)
        smtp.send_message(message)


class EmailSender:
    def __init__(self, channel: EmailChannel, reactor: Any, pool: ThreadPool) -> None:
        self.channel = channel
        self._reactor = reactor
        self._pool = pool

    def send(self, payload: dict[str, Any]) -> Deferred[None]:
        try:
            message = email_message(self.channel, payload)
        except (KeyError, ValueError) as exc:
            return fail(DeliveryError(f"cannot write the e-mail: {exc}"))
        return deferToThreadPool(self._reactor, self._pool, self._send, message)

    def _send(self, message: EmailMessage) -> None:
        try:
            send_email(self.channel, message)
        except (smtplib.SMTPException, OSError) as exc:
            # OSError covers refused connections, timeouts and TLS certificate failures (ssl.SSLError).
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None


# ------------------------------------------------------------------------------------------ syslog

def syslog_message(channel: SyslogChannel, payload: dict[str, Any], hostname: str) -> bytes:
    """One RFC 5424 message: ``<PRI>1 TIMESTAMP HOST appliance - RULE [SD] BOM MSG``."""
    pri = FACILITIES[channel.facility] * 8 + SYSLOG_SEVERITY.get(payload["severity"], 4)

    def param(value: Any) -> str:  # RFC 5424 6.3.3: escape '"', '\' and ']'
        return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")

    msgid = "".join(c for c in str(payload["rule"]) if 33 <= ord(c) <= 126)[:32] or "-"
    host = "".join(c for c in hostname if 33 <= ord(c) <= 126)[:255] or "-"
    sd = (f'[{SD_ID} id="{param(payload["id"])}" severity="{param(payload["severity"])}" '
          f'subject="{param(payload["subject"])}" site="{param(payload.get("site", ""))}"]')
    head = f"<{pri}>1 {payload['created_at']} {host} appliance - {msgid} {sd} ".encode()
    body = "\ufeff".encode() + payload["message"].encode("utf-8")
    return (head + body)[:SYSLOG_MAX]


class _Datagrams(DatagramProtocol):
    pass


class SyslogSender:
    def __init__(self, channel: SyslogChannel, reactor: Any, hostname: str | None = None) -> None:
        self.channel = channel
        self._reactor = reactor
        self._hostname = hostname or socket.gethostname()
        self._ports: dict[int, Any] = {}

    def send(self, payload: dict[str, Any]) -> Deferred[None]:
        host, port = self.channel.host_port
        try:
            ipaddress.ip_address(host)
            resolved: Deferred[str] = succeed(host)
        except ValueError:
            resolved = self._reactor.resolve(host)  # the reactor's resolver: no blocking DNS lookup
        return resolved.addCallback(self._write, port, payload)

    def _write(self, address: str, port: int, payload: dict[str, Any]) -> None:
        family = 6 if ":" in address else 4
        if family not in self._ports:
            interface = "::" if family == 6 else ""
            self._ports[family] = self._reactor.listenUDP(0, _Datagrams(), interface=interface)
        self._ports[family].write(syslog_message(self.channel, payload, self._hostname), (address, port))

    def close(self) -> None:
        for port in self._ports.values():
            port.stopListening()
        self._ports.clear()


# ------------------------------------------------------------------------------------------ all of them

def target_of(sender: Any) -> str:
    """What a channel sends to, as the delivery log shows it. A webhook shows only its scheme, host and
    port: chat webhooks carry their secret token in the path, and the log is shown to every role."""
    channel = getattr(sender, "channel", None)
    if isinstance(channel, EmailChannel):
        return ", ".join(channel.to)
    if isinstance(channel, WebhookChannel):
        parts = urlsplit(channel.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/..."
    if isinstance(channel, SyslogChannel):
        host, port = channel.host_port
        return f"syslog {host}:{port}"
    return ""


class Channels:
    """The configured senders by channel name, and the mail thread pool they share."""

    def __init__(self, config: AlertsConfig, reactor: Any) -> None:
        channels = config.channels
        self.pool = ThreadPool(minthreads=0, maxthreads=2, name="appliance-mail")
        self.senders: dict[str, Sender] = {}
        for name, email in channels.email.items():
            self.senders[name] = EmailSender(email, reactor, self.pool)
        for name, hook in channels.webhook.items():
            self.senders[name] = WebhookSender(hook, reactor)
        for name, syslog in channels.syslog.items():
            self.senders[name] = SyslogSender(syslog, reactor)
        self.timeouts: Mapping[str, float] = {
            **{n: c.timeout_seconds for n, c in channels.email.items()},
            **{n: c.timeout_seconds for n, c in channels.webhook.items()},
            **{n: 5.0 for n in channels.syslog},
        }
        self._started = False

    def start(self) -> None:
        if self.senders and not self._started:
            self.pool.start()
            self._started = True

    def stop(self) -> None:
        if self._started:
            self.pool.stop()
            self._started = False
        for sender in self.senders.values():
            if isinstance(sender, SyslogSender):
                sender.close()
