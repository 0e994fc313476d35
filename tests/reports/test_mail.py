"""The SMTP sender against a real aiosmtpd server on loopback that insists on STARTTLS."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.reports.mail import SmtpSender, SmtpSettings

ATTACHMENTS = [("daily-2024-03-05.csv", b"\xef\xbb\xbfTotal,32.8856\r\n", "text/csv"),
               ("daily-2024-03-05.xlsx", b"PK\x03\x04 not really a workbook",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
               ("daily-2024-03-05.pdf", b"%PDF-1.4 pretend", "application/pdf")]


class Handler:
    def __init__(self) -> None:
        self.envelopes: list = []
        self.tls_seen: list[bool] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd calls it by this name
        self.tls_seen.append(session.ssl is not None)
        self.envelopes.append(envelope)
        return "250 OK"


def self_signed(tmp_path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server(tmp_path) -> Iterator[tuple[Handler, int, str]]:
    cert_file, key_file = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    handler = Handler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=context,
                            require_starttls=True, server_hostname="localhost")
    controller.start()
    try:
        yield handler, port, cert_file
    finally:
        controller.stop()


def test_three_attachments_arrive_over_starttls(smtp_server) -> None:
    handler, port, cert_file = smtp_server
    send = SmtpSender(SmtpSettings(host="127.0.0.1", port=port, sender="appliance@hotel.example",
                                   ca_file=cert_file, timeout=10, helo_name="appliance.test"))
    send(["gm@hotel.example", "fin@hotel.example"], "Test Hotel: Daily call summary 2024-03-05",
         "Totals attached.\n", ATTACHMENTS)
    [envelope] = handler.envelopes
    assert handler.tls_seen == [True]
    assert envelope.mail_from == "appliance@hotel.example"
    assert envelope.rcpt_tos == ["gm@hotel.example", "fin@hotel.example"]
    message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert message["Subject"] == "Test Hotel: Daily call summary 2024-03-05"
    assert message.get_body(("plain",)).get_content().rstrip() == "Totals attached."  # CRLF on the wire
    parts = [(p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
             for p in message.iter_attachments()]
    assert parts == [(name, mime, data) for name, data, mime in ATTACHMENTS]


def test_an_untrusted_certificate_is_refused(smtp_server) -> None:
    handler, port, _ = smtp_server
    send = SmtpSender(SmtpSettings(host="127.0.0.1", port=port, sender="appliance@hotel.example", timeout=10,
                                   helo_name="appliance.test"))
    with pytest.raises(ssl.SSLCertVerificationError):
        send(["gm@hotel.example"], "s", "b", ATTACHMENTS)
    assert handler.envelopes == []
