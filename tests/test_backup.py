"""``appliance backup`` / ``restore``: consistent while another connection writes, on SQLite and PostgreSQL.

Acceptance (issue 9): a backup taken during a stream of calls restores into a database that passes an
integrity check and contains every call committed before the backup started.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import shutil
import sqlite3
import tarfile
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from appliance.backup import BackupError, Manifest, create_backup, list_backups, prune, unpack
from appliance.commands import backup as backup_command
from appliance.commands import restore as restore_command
from appliance.daemonlock import DaemonLock
from appliance.db.models import Call, JournalEntry
from appliance.db.session import make_engine, make_sessionmaker, upgrade
from appliance.restore import restore_backup
from tests.conftest import PG_ADMIN_URL

CONFIG = "site:\n  name: Backup Hotel\ndatabase:\n  url: {url}\n"


def insert_call(sessions, n: int) -> int:
    """One journaled call in its own transaction, as the pipeline commits them; returns the call id."""
    now = datetime(2024, 5, 1, tzinfo=timezone.utc) + timedelta(seconds=n)
    with sessions.begin() as session:
        entry = JournalEntry(link="pbx", received_at=now, raw=f"record {n}".encode(), processed=True)
        session.add(entry)
        session.flush()
        call = Call(journal_id=entry.id, link="pbx", dedup_key=f"key-{n}-{uuid.uuid4().hex[:8]}",
                    received_at=now, start=now, duration=60, ring=None, extension="101", trunk="1",
                    dialled="2125550100", caller="", direction="outgoing", answered=True, account_code="",
                    pbx_call_id="", transfer="", raw=entry.raw, category="guest", room="101", stay_id=None,
                    call_class="local", destination="New York", amount=Decimal("0.35"), currency="USD",
                    rating={"why": "test"}, disposition="charge", reason="")
        session.add(call)
        session.flush()
        return call.id


class Writer(threading.Thread):
    """Commits calls one by one until stopped; ``committed`` lists the ids whose commit has returned."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.engine = make_engine(url)
        self.sessions = make_sessionmaker(self.engine)
        self.committed: list[int] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            n = 0
            while not self.stop.is_set():
                self.committed.append(insert_call(self.sessions, n))
                n += 1
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc
        finally:
            self.engine.dispose()

    def wait_for(self, count: int) -> None:
        deadline = datetime.now() + timedelta(seconds=30)
        while len(self.committed) < count and datetime.now() < deadline and self.error is None:
            self.stop.wait(0.01)
        assert self.error is None and len(self.committed) >= count


@pytest.fixture
def fresh_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """A second, empty database of the same kind to restore into."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored' / 'appliance.db'}"
        return
    name = f"appliance_restore_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def count_calls(url: str) -> tuple[int, set[int]]:
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            ids = set(session.scalars(select(Call.id)))
            return session.scalar(select(func.count()).select_from(Call)), ids
    finally:
        engine.dispose()


def test_backup_during_a_stream_of_calls_restores_every_committed_call(
        migrated_url: str, fresh_url: str, tmp_path: Path) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(CONFIG.format(url=migrated_url))
    writer = Writer(migrated_url)
    writer.start()
    try:
        writer.wait_for(30)
        before = list(writer.committed)  # committed before the backup started
        archive = create_backup(migrated_url, config, tmp_path / "backups")
        writer.wait_for(len(before) + 10)  # the writer was never blocked for long
    finally:
        writer.stop.set()
        writer.join(30)
    assert writer.error is None

    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = Manifest.from_json(tar.extractfile("manifest.json").read())
    assert names[0] == "manifest.json" and "config/appliance.yaml" in names
    assert manifest.schema_revision is not None and manifest.database in ("sqlite", "postgresql")
    assert manifest.counts["calls"] >= len(before)
    assert set(manifest.sha256) == {n for n in names if n != "manifest.json"}
    assert archive.stat().st_mode & 0o777 == 0o600

    restored_config = tmp_path / "restored.yaml"
    result = restore_backup(archive, fresh_url, restored_config)
    count, ids = count_calls(fresh_url)
    assert set(before) <= ids
    assert count == manifest.counts["calls"] == result.counts["calls"]
    assert result.revision_after == manifest.schema_revision
    assert restored_config.read_text() == config.read_text()
    if fresh_url.startswith("sqlite"):
        path = fresh_url.split(":///", 1)[1]
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert connection.execute("PRAGMA foreign_key_check").fetchall() == []


def test_restore_replaces_the_content_of_an_existing_database(migrated_url: str, tmp_path: Path) -> None:
    sessions = make_sessionmaker(engine := make_engine(migrated_url))
    for n in range(5):
        insert_call(sessions, n)
    archive = create_backup(migrated_url, None, tmp_path / "backups")
    for n in range(5, 12):
        insert_call(sessions, n)
    engine.dispose()
    result = restore_backup(archive, migrated_url, None)
    assert result.config_restored is None
    assert count_calls(migrated_url)[0] == 5


@pytest.fixture
def sqlite_archive(tmp_path: Path) -> tuple[str, Path]:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    upgrade(url)
    engine = make_engine(url)
    insert_call(make_sessionmaker(engine), 1)
    engine.dispose()
    return url, create_backup(url, None, tmp_path / "backups")


def test_a_corrupted_archive_is_refused_with_a_clear_message(sqlite_archive, tmp_path: Path) -> None:
    _, archive = sqlite_archive
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(bytes(data))
    # Either gzip/deflate notices, or the member's sha256 no longer matches the manifest.
    with pytest.raises(BackupError, match=r"damaged\.tar\.gz is damaged"):
        restore_backup(damaged, f"sqlite:///{tmp_path / 'other.db'}", None)

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(BackupError, match="damaged"):
        restore_backup(truncated, f"sqlite:///{tmp_path / 'other.db'}", None)
    assert not (tmp_path / "other.db").exists()  # nothing was written


def rewrite(archive: Path, out: Path, change) -> Path:
    """Copy ``archive`` with its members passed through ``change(name, data) -> data``."""
    with tarfile.open(archive) as tar, tarfile.open(out, "w:gz") as new:
        for info in tar:
            data = change(info.name, tar.extractfile(info).read())
            info.size = len(data)
            new.addfile(info, io.BytesIO(data))
    return out


def test_a_member_that_does_not_match_its_sha256_is_refused(sqlite_archive, tmp_path: Path) -> None:
    _, archive = sqlite_archive

    def tamper(name: str, data: bytes) -> bytes:
        return data[:-1] + bytes([data[-1] ^ 1]) if name == "database.sqlite3" else data

    with pytest.raises(BackupError, match=r"is damaged: database.sqlite3 has sha256"):
        restore_backup(rewrite(archive, tmp_path / "t.tar.gz", tamper), f"sqlite:///{tmp_path / 'x.db'}",
                       None)


def test_a_backup_from_a_newer_schema_is_refused(sqlite_archive, tmp_path: Path) -> None:
    _, archive = sqlite_archive

    def newer(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["schema_revision"] = "9999_from_the_future"
        return json.dumps(manifest).encode()

    with pytest.raises(BackupError, match="9999_from_the_future, which this version .* does not know"):
        restore_backup(rewrite(archive, tmp_path / "n.tar.gz", newer), f"sqlite:///{tmp_path / 'x.db'}", None)


def test_a_file_that_is_not_a_backup_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "notes.tar.gz"
    with tarfile.open(plain, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("../../etc/passwd"), io.BytesIO(b""))
    with pytest.raises(BackupError, match="unexpected member '../../etc/passwd'"):
        unpack(plain, tmp_path)
    (tmp_path / "text.tar.gz").write_bytes(gzip.compress(b"hello"))
    with pytest.raises(BackupError, match="damaged or not an appliance backup"):
        unpack(tmp_path / "text.tar.gz", tmp_path)


def test_a_sqlite_backup_does_not_go_into_postgresql(sqlite_archive) -> None:
    _, archive = sqlite_archive
    with pytest.raises(BackupError, match="holds a sqlite database"):
        restore_backup(archive, "postgresql+psycopg2://nobody@127.0.0.1:1/none", None)


def test_retention_keeps_the_newest(tmp_path: Path) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    for day in range(1, 6):
        (folder / f"appliance-backup-202405{day:02d}T031500Z.tar.gz").write_bytes(b"x")
    (folder / "unrelated.txt").write_text("kept")
    deleted = prune(folder, 2)
    assert [p.name for p in deleted] == [f"appliance-backup-202405{d:02d}T031500Z.tar.gz" for d in (1, 2, 3)]
    assert [p.name for p in list_backups(folder)] == ["appliance-backup-20240504T031500Z.tar.gz",
                                                      "appliance-backup-20240505T031500Z.tar.gz"]
    assert (folder / "unrelated.txt").exists()
    with pytest.raises(BackupError):
        prune(folder, 0)


def command(module, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="appliance")
    module.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_the_commands_back_up_keep_n_and_restore_only_when_the_daemon_is_stopped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'state' / 'appliance.db'}"
    upgrade(url)
    config = tmp_path / "appliance.yaml"
    config.write_text(CONFIG.format(url=url))
    backups = tmp_path / "backups"
    for _ in range(3):
        assert command(backup_command, ["backup", "--config", str(config), "--to", str(backups),
                                        "--keep", "2"]) == 0
    assert len(list_backups(backups)) == 2
    assert "deleted old backup appliance-backup-" in capsys.readouterr().out
    archive = list_backups(backups)[-1]

    with DaemonLock(url, create=True) as daemon:  # as `appliance run` holds it
        assert daemon.acquire()
        assert command(restore_command, ["restore", str(archive), "--config", str(config)]) == 1
        assert "the daemon is running" in capsys.readouterr().err
        assert command(restore_command, ["restore", str(archive), "--config", str(config), "--force",
                                         "--no-config"]) == 0
        assert "restoring anyway" in capsys.readouterr().err
    assert command(restore_command, ["restore", str(archive), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "configuration restored to" in out and (tmp_path / "appliance.yaml.before-restore").exists()

    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b not really")
    assert command(restore_command, ["restore", str(broken), "--config", str(config)]) == 1
    assert "restore refused:" in capsys.readouterr().err


def test_backup_of_a_missing_database_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(CONFIG.format(url=f"sqlite:///{tmp_path / 'none.db'}"))
    assert command(backup_command, ["backup", "--config", str(config), "--to", str(tmp_path / "b")]) == 1
    assert "no SQLite database at" in capsys.readouterr().err


def test_postgresql_backup_without_pg_dump_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(BackupError, match="pg_dump is not installed"):
        create_backup("postgresql+psycopg2://postgres@127.0.0.1:1/none", None, tmp_path)


def test_a_restored_configuration_goes_where_the_link_points(tmp_path: Path) -> None:
    """The image links /etc/appliance/appliance.yaml to the state folder (first-boot setup writes there)."""
    from appliance.restore import _restore_config

    state = tmp_path / "var" / "appliance.yaml"
    state.parent.mkdir()
    state.write_text("site: current\n")
    link = tmp_path / "etc" / "appliance.yaml"
    link.parent.mkdir()
    link.symlink_to(state)
    backed_up = tmp_path / "backup.yaml"
    backed_up.write_text("site: restored\n")
    _restore_config(backed_up, link)
    assert link.is_symlink() and link.read_text() == "site: restored\n"
    assert (state.parent / "appliance.yaml.before-restore").read_text() == "site: current\n"
