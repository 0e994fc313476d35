"""The daemon's claim on its database, so ``appliance restore`` can tell whether the daemon is running.

``appliance run`` takes the lock at start and holds it until it exits (the kernel or the server drops
it when the process dies, even on SIGKILL). ``appliance restore`` refuses to overwrite a database whose
lock is held, and ``appliance status`` reports it. A second daemon on the same database is refused too:
two daemons would both post every call.

- SQLite: ``flock(2)`` on ``<database file>.daemon-lock`` beside the database (in the state directory,
  which only the service user and root can write).
- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) held on a connection of its own,
  so it covers daemons on other hosts as well.

Only the daemon creates the SQLite lock file; the other commands open it read-only and never create it,
so a command run as root cannot leave behind a root-owned lock file the service user cannot open.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

# 'applianc' as a big-endian 64-bit integer: an arbitrary, fixed advisory lock key.
ADVISORY_KEY = int.from_bytes(b"applianc", "big")


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URL, or None for an in-memory database."""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def database_kind(url: str) -> str:
    """``"sqlite"`` or ``"postgresql"`` (the two kinds the configuration accepts)."""
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database URL scheme {scheme!r}")
    return scheme


def lock_file(url: str) -> Path | None:
    path = sqlite_path(url)
    return path.with_name(path.name + ".daemon-lock") if path is not None else None


class DaemonLock:
    """An exclusive, non-blocking lock on one database. ``acquire()`` says whether it was taken."""

    def __init__(self, url: str, *, create: bool = False) -> None:
        self.url = url
        self.kind = database_kind(url)
        self._create = create
        self._fd: int | None = None
        self._engine: Any = None
        self._connection: Any = None

    @property
    def held(self) -> bool:
        return self._fd is not None or self._connection is not None

    def acquire(self) -> bool:
        """True when the lock is now ours (or there is nothing to lock); False when someone holds it."""
        if self.kind == "sqlite":
            return self._acquire_file()
        return self._acquire_advisory()

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
        if self._connection is not None:
            self._connection.close()  # the session ends, and its advisory lock with it
            self._connection = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> DaemonLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _acquire_file(self) -> bool:
        path = lock_file(self.url)
        if path is None:
            return True
        if self._create:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        else:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return True  # no daemon has ever run on this database
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _acquire_advisory(self) -> bool:
        self._engine = create_engine(self.url, poolclass=NullPool)
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}):
            self._connection = connection
            return True
        connection.close()
        self._engine.dispose()
        self._engine = None
        return False


def daemon_running(url: str) -> bool:
    """Whether a daemon holds the database at ``url`` right now (takes and drops the lock at once)."""
    lock = DaemonLock(url)
    try:
        return not lock.acquire()
    finally:
        lock.release()
