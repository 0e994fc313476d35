"""Backups of the database and the configuration, taken while the daemon runs, and their restore.

An archive is ``appliance-backup-<UTC time>.tar.gz`` holding:

- ``manifest.json``: format, app version, time, schema revision, database kind, row counts of the main
  tables in the snapshot, and the sha256 of every other member;
- ``database.sqlite3`` (SQLite) or ``database.pgdump`` (PostgreSQL, ``pg_dump --format=custom``);
- ``config/appliance.yaml`` when the configuration file could be read.

Consistency while running: SQLite is copied with the online backup API (``sqlite3.Connection.backup``)
in one step, which reads one snapshot while WAL lets the daemon go on writing; a plain file copy of a
live WAL database can miss committed pages or tear them. PostgreSQL is dumped by ``pg_dump`` inside an
exported snapshot, and the row counts are taken in that same snapshot.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from appliance.daemonlock import database_kind, sqlite_path

FORMAT = 1
PREFIX = "appliance-backup-"
SUFFIX = ".tar.gz"
MANIFEST = "manifest.json"
MEMBERS = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
CONFIG_MEMBER = "config/appliance.yaml"
# Row counts recorded in the manifest and checked after a restore.
COUNTED_TABLES = ("journal", "calls", "postings", "posting_events", "stays", "users", "audit_log")


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


@dataclass(frozen=True, kw_only=True)
class Manifest:
    format: int
    app_version: str
    created_at: str
    schema_revision: str | None
    database: str
    counts: dict[str, int]
    sha256: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data)
            return cls(format=int(raw["format"]), app_version=str(raw["app_version"]),
                       created_at=str(raw["created_at"]), schema_revision=raw["schema_revision"],
                       database=str(raw["database"]), counts=dict(raw["counts"]), sha256=dict(raw["sha256"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupError(f"the manifest is not readable: {exc}") from None


def app_version() -> str:
    try:
        return metadata.version("hotel-pms-appliance")
    except metadata.PackageNotFoundError:
        return "unknown"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- taking a backup -----------------------------------------------------------------------------

def create_backup(url: str, config_path: Path | None, dest: Path, *, now: datetime | None = None,
                  keep: int | None = None) -> Path:
    """Write one archive into ``dest`` and return its path; then keep only the newest ``keep``."""
    now = now or datetime.now(timezone.utc)
    kind = database_kind(url)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="appliance-backup-") as work:
        member = Path(work) / MEMBERS[kind]
        if kind == "sqlite":
            revision, counts = _snapshot_sqlite(url, member)
        else:
            revision, counts = _snapshot_postgresql(url, member)
        parts = {MEMBERS[kind]: member}
        if config_path is not None and config_path.is_file():
            parts[CONFIG_MEMBER] = config_path
        manifest = Manifest(format=FORMAT, app_version=app_version(), created_at=now.isoformat(),
                            schema_revision=revision, database=kind, counts=counts,
                            sha256={name: sha256_file(path) for name, path in parts.items()})
        archive = _write_archive(dest, now, manifest, parts)
    if keep is not None:
        prune(dest, keep)
    return archive


def _snapshot_sqlite(url: str, out: Path) -> tuple[str | None, dict[str, int]]:
    path = sqlite_path(url)
    if path is None or not path.is_file():
        raise BackupError(f"no SQLite database at {path}: nothing to back up")
    source = sqlite3.connect(path, timeout=30)
    target = sqlite3.connect(out)
    try:
        # pages=-1: the whole database in one step, i.e. one read transaction and one snapshot. WAL
        # readers do not block the daemon's writes, so posting goes on while this runs.
        source.backup(target, pages=-1)
        # A self-contained file: no -wal/-shm beside it in the archive or after restore.
        target.execute("PRAGMA journal_mode=DELETE")
        check_integrity(target, "the snapshot")
        return revision_and_counts(target)
    finally:
        target.close()
        source.close()


def check_integrity(connection: sqlite3.Connection, what: str) -> None:
    result = [row[0] for row in connection.execute("PRAGMA integrity_check")]
    if result != ["ok"]:
        raise BackupError(f"{what} fails the SQLite integrity check: {'; '.join(result[:5])}")


def revision_and_counts(connection: Any) -> tuple[str | None, dict[str, int]]:
    """Schema revision and row counts through a DB-API connection (SQLite) in its current snapshot."""
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    revision = None
    if "alembic_version" in tables:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    counts = {name: connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
              for name in COUNTED_TABLES if name in tables}
    return revision, counts


def libpq_url(url: str) -> tuple[str, dict[str, str]]:
    """A SQLAlchemy PostgreSQL URL as a libpq one for pg_dump/pg_restore, and the environment that
    carries its password (never on a command line, where ``ps`` shows it)."""
    parsed = make_url(url)
    env = {"PGPASSWORD": parsed.password} if parsed.password else {}
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def pg_tool(name: str) -> str:
    tool = shutil.which(name)
    if tool is None:
        raise BackupError(f"{name} is not installed: PostgreSQL backups need it "
                          f"(Debian: apt-get install postgresql-client)")
    return tool


def run_tool(argv: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise BackupError(f"{what} failed ({argv[0]} exit {result.returncode}): {' '.join(detail[-3:])}")


def _snapshot_postgresql(url: str, out: Path) -> tuple[str | None, dict[str, int]]:
    pg_dump = pg_tool("pg_dump")
    target, env = libpq_url(url)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            # REPEATABLE READ + pg_export_snapshot(): pg_dump --snapshot sees exactly what the counts see.
            connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            snapshot = connection.scalar(text("SELECT pg_export_snapshot()"))
            tables = set(inspect(connection).get_table_names())
            revision = (connection.scalar(text("SELECT version_num FROM alembic_version"))
                        if "alembic_version" in tables else None)
            counts = {name: int(connection.scalar(text(f'SELECT count(*) FROM "{name}"')))
                      for name in COUNTED_TABLES if name in tables}
            run_tool([pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
                       f"--file={out}", f"--dbname={target}"], env, "pg_dump")
            connection.rollback()
    finally:
        engine.dispose()
    return revision, counts


def _write_archive(dest: Path, now: datetime, manifest: Manifest, parts: dict[str, Path]) -> Path:
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    final = dest / f"{PREFIX}{stamp}{SUFFIX}"
    n = 1
    while final.exists():
        final = dest / f"{PREFIX}{stamp}-{n}{SUFFIX}"
        n += 1
    # Written under a temporary name and renamed: a crash never leaves a half archive that looks whole.
    # 0600: it holds guest names and the configuration's secrets.
    partial = dest / f".{final.name}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as stream:
            with tarfile.open(fileobj=stream, mode="w:gz") as tar:
                _add_bytes(tar, MANIFEST, manifest.to_json(), now)
                for name, path in parts.items():
                    info = tar.gettarinfo(str(path), arcname=name)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    with path.open("rb") as member:
                        tar.addfile(info, member)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return final


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, now: datetime) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(now.timestamp())
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def list_backups(dest: Path) -> list[Path]:
    """The archives in ``dest``, oldest first (the UTC time in the name sorts them)."""
    if not dest.is_dir():
        return []
    return sorted(p for p in dest.iterdir() if p.name.startswith(PREFIX) and p.name.endswith(SUFFIX))


def prune(dest: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` archives; returns the deleted ones."""
    if keep < 1:
        raise BackupError("--keep must be at least 1 (the backup just taken)")
    archives = list_backups(dest)
    doomed = archives[:-keep]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


# --- reading and restoring -----------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Unpacked:
    manifest: Manifest
    database: Path
    config: Path | None


def unpack(archive: Path, into: Path) -> Unpacked:
    """Read ``archive`` into the folder ``into``, checking every member against the manifest."""
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            return _unpack(tar, archive, into)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise BackupError(f"{archive}: no such file") from None
        raise BackupError(f"{archive} is damaged or not an appliance backup (.tar.gz): {exc}") from None


def _unpack(tar: tarfile.TarFile, archive: Path, into: Path) -> Unpacked:
    found: dict[str, Path] = {}
    manifest: Manifest | None = None
    allowed = {MANIFEST, CONFIG_MEMBER, *MEMBERS.values()}
    for info in tar:
        # Only the known names, only regular files: never extractall() a file someone handed over.
        if info.name not in allowed or not info.isfile():
            raise BackupError(f"{archive}: unexpected member {info.name!r}; not an appliance backup")
        stream = tar.extractfile(info)
        assert stream is not None  # a regular file always has a stream
        if info.name == MANIFEST:
            manifest = Manifest.from_json(stream.read(1 << 20))
            continue
        path = into / info.name.replace("/", "_")
        with path.open("wb") as out:
            shutil.copyfileobj(stream, out)
        found[info.name] = path
    if manifest is None:
        raise BackupError(f"{archive} has no {MANIFEST}: not an appliance backup")
    if manifest.format != FORMAT:
        raise BackupError(f"{archive} is backup format {manifest.format}; this version reads format {FORMAT}")
    for name, expected in manifest.sha256.items():
        if name not in found:
            raise BackupError(f"{archive} is incomplete: {name} is listed in the manifest but missing")
        actual = sha256_file(found[name])
        if actual != expected:
            raise BackupError(f"{archive} is damaged: {name} has sha256 {actual[:16]}..., "
                              f"the manifest says {expected[:16]}...")
    database = found.get(MEMBERS.get(manifest.database, ""))
    if database is None or MEMBERS[manifest.database] not in manifest.sha256:
        raise BackupError(f"{archive} holds no database")
    return Unpacked(manifest=manifest, database=database,
                    config=found.get(CONFIG_MEMBER) if CONFIG_MEMBER in manifest.sha256 else None)


def configured_database_url(config_path: Path) -> str:
    """The database URL of the configuration at ``config_path``, even when the file has other problems.

    A backup or restore must work on a box whose configuration is broken (that may be why it is being
    restored), so only ``database.url`` is read here, with the same default as ``appliance.config``.
    """
    import yaml

    from appliance.config import DatabaseConfig

    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        data = None
    database = data.get("database") if isinstance(data, dict) else None
    url = database.get("url") if isinstance(database, dict) else None
    return url if isinstance(url, str) and url else DatabaseConfig().url
