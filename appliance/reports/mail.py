"""The default report sender: SMTP with STARTTLS (or implicit TLS), through smtplib.

smtplib blocks, so the sender is called off the reactor thread: the report scheduler service runs every
delivery in a worker thread. Settings come in as a dataclass (the ``email:`` block of the configuration,
once it has one), so nothing here reads files or the environment.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

from appliance.reports.bundles import Attachment


@dataclass(frozen=True, kw_only=True)
class SmtpSettings:
    """``security``: ``starttls`` (port 587, the default), ``tls`` (implicit TLS, port 465) or ``none``
    (a relay on the local network only). ``ca_file`` replaces the system's trusted CAs (a site's own CA).
    ``helo_name`` is the name given in EHLO; set it, or smtplib looks up the host's FQDN in DNS first."""

    host: str
    sender: str
    port: int = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    password: str = ""
    ca_file: str = ""
    timeout: float = 30.0
    helo_name: str | None = None


def build_message(settings: SmtpSettings, recipients: Sequence[str], subject: str, body: str,
                  attachments: list[Attachment]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message.set_content(body)
    for filename, data, mimetype in attachments:
        maintype, _, subtype = mimetype.partition(";")[0].strip().partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message


class SmtpSender:
    """``send(recipients, subject, body, attachments)`` over SMTP; raises on any failure (the runner
    keeps the run unrecorded and tries again)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_file or None)

    def __call__(self, recipients: Sequence[str], subject: str, body: str,
                 attachments: list[Attachment]) -> None:
        if not recipients:
            raise ValueError("no recipients")
        settings = self.settings
        message = build_message(settings, recipients, subject, body, attachments)
        client: smtplib.SMTP
        if settings.security == "tls":
            client = smtplib.SMTP_SSL(settings.host, settings.port, local_hostname=settings.helo_name,
                                      timeout=settings.timeout, context=self._context())
        else:
            client = smtplib.SMTP(settings.host, settings.port, local_hostname=settings.helo_name,
                                  timeout=settings.timeout)
        with client:
            if settings.security == "starttls":
                client.ehlo()
                # Never fall back to plain text: a server without STARTTLS is an error, not a downgrade.
                client.starttls(context=self._context())
                client.ehlo()
            if settings.username:
                client.login(settings.username, settings.password)
            client.send_message(message, to_addrs=list(recipients))
