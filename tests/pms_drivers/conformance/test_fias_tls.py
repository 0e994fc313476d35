"""FIAS over TLS with certificates (FIAS 2.20.24 "TCP/IP SSL stream", fias.md §0/§1): the daemon's PMS link
(``options.tls``: ca, cert, key, verify, hostname) against the simulator listening with TLS and requiring
the vendor's certificate (the mutual check). The framing inside TLS is unchanged.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet.testing import MemoryReactorClock

from appliance.config import LinkConfig
from appliance.errors import ConfigError
from appliance.net.pms_service import PmsLinkService
from pms_drivers.common import TlsOptions
from pms_drivers.fias.link import SPEC, FiasOptions
from tests.integration.harness import wait_for
from tests.integration.test_fias_serial import SerialSite

pytestmark = pytest.mark.slow


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_pki(folder: Path) -> dict[str, str]:
    """A throw-away CA, a PMS (server) certificate for localhost / 127.0.0.1 and a vendor (client) one."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Hotel CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    files = {"ca": folder / "ca.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, serial in (("server", 2), ("client", 3)):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.test")]))
                   .issuer_name(ca_name).public_key(key.public_key()).serial_number(serial)
                   .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2)))
        if name == "server":
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        files[name] = folder / f"{name}.pem"
        files[f"{name}_key"] = folder / f"{name}.key"
        files[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{name}_key"].write_bytes(_pem_key(key))
    return {k: str(v) for k, v in files.items()}


def test_tls_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="together"):
        TlsOptions(cert=str(tmp_path / "x"))
    with pytest.raises(ValueError, match="no file"):
        TlsOptions(ca=str(tmp_path / "missing.pem"))


def test_postings_over_mutual_tls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    site = SerialSite(tmp_path, f"sqlite:///{tmp_path / 'appliance.db'}")
    site.pms_link = {"name": "pms", "driver": "fias", "transport": "tcp-client", "host": "127.0.0.1",
                     "port": site.pms_port,
                     "options": {"answer_timeout": 5.0, "tls": {"ca": pki["ca"], "cert": pki["client"],
                                                                "key": pki["client_key"], "hostname": "localhost"}}}
    site.write_config()
    try:
        site.start_pms("--tls-cert", pki["server"], "--tls-key", pki["server_key"], "--tls-ca", pki["ca"])
        site.start_daemon()
        wait_for(lambda: site.log_has("daemon", "PMS link pms up"), 30, "the TLS link alive", site)
        site.post("101")
        site.post("102")
        wait_for(lambda: site.db()["states"].get("ok", 0) == 2, 30, "both postings ok", site)
        assert [r["answer"] for r in site.pms_received()] == ["OK", "OK"]
    finally:
        site.stop_all()


def test_tls_on_a_link_that_is_not_tcp_client_is_refused() -> None:
    """TLS wraps a TCP connection we open (FIAS 2.20.24): the options say so for the config check, and the
    daemon's PMS service refuses it as well."""
    options = FiasOptions(tls=TlsOptions())
    assert options.transport_problems("serial") == [("tls", "TLS needs transport tcp-client, not serial")]
    assert options.transport_problems("tcp-client") == []
    assert FiasOptions().transport_problems("serial") == []
    link = LinkConfig(name="pms", driver="fias", transport="serial", device="/dev/null")
    with pytest.raises(ConfigError, match="TLS needs transport tcp-client, not serial"):
        PmsLinkService(link, SPEC, options, None, None, None, MemoryReactorClock())  # type: ignore[arg-type]
