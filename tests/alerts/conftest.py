"""Fixtures for the alert tests: a pipeline with the alert engine over a real database (SQLite and
PostgreSQL), a private reactor running in a thread for the tests that need real sockets, and a
self-signed certificate for the TLS servers."""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import blockingCallFromThread

from appliance.alerts import AlertEngine
from appliance.db.session import make_engine, make_sessionmaker
from appliance.pipeline import Pipeline
from tests.helpers import CSV_SPEC, make_config

EXTENSIONS = [{"numbers": "101-120", "category": "guest"}, {"numbers": "150", "category": "lobby"},
              {"numbers": "160", "category": "public"}, {"numbers": "300-301", "category": "admin"}]


@dataclass
class Env:
    config: Any
    sessions: Any
    engine: AlertEngine
    pipeline: Pipeline


def make_env(url: str, alerts: dict | None = None, **overrides: Any) -> tuple[Env, Any]:
    config = make_config(url, extensions=EXTENSIONS, alerts=alerts or {}, **overrides)
    db_engine = make_engine(url)
    sessions = make_sessionmaker(db_engine)
    engine = AlertEngine(config)
    pipeline = Pipeline(config, sessions, {"pbx": CSV_SPEC}, observers=[engine])
    return Env(config, sessions, engine, pipeline), db_engine


@pytest.fixture
def env_factory(migrated_url: str) -> Iterator[Callable[..., Env]]:
    """``env_factory(alerts={...}, pbx=[...])`` builds the pipeline and engine for one configuration."""
    engines = []

    def build(alerts: dict | None = None, **overrides: Any) -> Env:
        env, db_engine = make_env(migrated_url, alerts, **overrides)
        engines.append(db_engine)
        return env

    yield build
    for db_engine in engines:
        db_engine.dispose()


class SyncDb:
    """The database thread's ``run`` without a thread: for services driven by ``task.Clock``."""

    def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        return maybeDeferred(function, *args, **kwargs)


class ReactorThread:
    """A private reactor (never the global one) running in a thread, stopped and joined at the end."""

    def __init__(self) -> None:
        from twisted.internet.selectreactor import SelectReactor

        self.reactor = SelectReactor()
        self.thread = threading.Thread(target=self.reactor.run, kwargs={"installSignalHandlers": False},
                                       name="test-reactor", daemon=True)
        self.thread.start()

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``function`` in the reactor thread and wait for its (Deferred) result."""
        return blockingCallFromThread(self.reactor, function, *args, **kwargs)

    def stop(self) -> None:
        self.reactor.callFromThread(self.reactor.stop)
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the test reactor did not stop"


@pytest.fixture
def reactor_thread() -> Iterator[ReactorThread]:
    running = ReactorThread()
    try:
        yield running
    finally:
        running.stop()


@dataclass
class TlsFiles:
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A self-signed certificate for localhost and 127.0.0.1 (it is its own CA for the client)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    files = TlsFiles(cert=folder / "cert.pem", key=folder / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return files
