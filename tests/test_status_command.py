"""``appliance status``: what a technician at the console sees, on SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from appliance.backup import create_backup
from appliance.commands import status as status_command
from appliance.daemonlock import DaemonLock
from appliance.db.models import JournalEntry, LinkStatus, Posting
from appliance.db.session import make_engine, make_sessionmaker, upgrade

CONFIG = """site:
  name: Status Hotel
database:
  url: {url}
pbx:
  - name: main
    driver: mitel_mivb
    transport: tcp-server
    port: 1752
"""


def status(config: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="appliance")
    status_command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["status", "--config", str(config), *extra])
    code = args.func(args)
    return code, capsys.readouterr().out


def fill(url: str) -> None:
    # Relative to the moment the test runs: "(60 s ago)" must not become "(3 min ago)" under xdist.
    NOW = datetime.now(timezone.utc).replace(microsecond=0)  # noqa: N806
    engine = make_engine(url)
    with make_sessionmaker(engine).begin() as session:
        session.add_all([
            LinkStatus(name="main", kind="pbx", state="up", since=NOW - timedelta(hours=3),
                       detail="listening on 0.0.0.0:1752", last_record_at=NOW - timedelta(minutes=5)),
            LinkStatus(name="opera", kind="pms", state="down", since=NOW - timedelta(minutes=30),
                       detail="connection refused"),
            JournalEntry(link="main", received_at=NOW - timedelta(minutes=5), raw=b"x", processed=True),
            JournalEntry(link="main", received_at=NOW - timedelta(minutes=1), raw=b"y", processed=False),
        ])
        for state, count in (("ok", 3), ("open", 2), ("retry", 1), ("failed", 1)):
            for _ in range(count):
                session.add(Posting(kind="charge", link="opera", room="101", amount=Decimal("1.20"),
                                    currency="USD", state=state, created_at=NOW, updated_at=NOW))
    engine.dispose()


def test_status_shows_links_postings_queue_and_disk(migrated_url: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(CONFIG.format(url=migrated_url))
    fill(migrated_url)
    backups = tmp_path / "backups"
    if migrated_url.startswith("sqlite"):
        create_backup(migrated_url, config, backups)

    code, out = status(config, "--backups", str(backups), capsys=capsys)
    assert code == 0, out
    assert "configuration  OK" in out and "site 'Status Hotel', PBX links: main" in out
    assert "database       OK" in out
    assert "daemon         NOT running" in out
    assert "pbx  main             up         since" in out and "listening on 0.0.0.0:1752" in out
    assert "pms  opera            down" in out and "connection refused" in out
    assert re.search(r"last record    \S+ \S+ UTC \(\d+ s ago\)", out)  # the newest journal entry
    assert "postings       failed 1, ok 3, open 2, retry 1" in out
    assert "queue          3 posting(s) waiting to be sent; 1 record(s) not yet processed" in out
    assert "disk free      " in out and " GiB of " in out
    if migrated_url.startswith("sqlite"):
        assert "last backup    appliance-backup-" in out and "1 kept in" in out
    else:
        assert "last backup    none in" in out

    code, out = status(config, "--json", "--backups", str(backups), capsys=capsys)
    facts = json.loads(out)
    assert code == 0 and facts["ok"] is True
    assert facts["database"]["queue"] == 3 and facts["database"]["postings"]["failed"] == 1
    assert [link["name"] for link in facts["database"]["links"]] == ["main", "opera"]
    assert facts["disk"]["free"] > 0


def test_status_shows_a_running_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'appliance.db'}"
    upgrade(url)
    config = tmp_path / "appliance.yaml"
    config.write_text(CONFIG.format(url=url))
    with DaemonLock(url, create=True) as lock:
        assert lock.acquire()
        code, out = status(config, capsys=capsys)
    assert code == 0 and "daemon         running" in out
    assert "(none reported yet)" in out and "last record    never" in out


def test_a_broken_configuration_is_shown_with_its_problems(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'appliance.db'}"
    upgrade(url)
    config = tmp_path / "appliance.yaml"
    config.write_text(CONFIG.format(url=url).replace("port: 1752", "port: lots"))
    code, out = status(config, capsys=capsys)
    assert code == 1
    assert "configuration  PROBLEM" in out and "pbx[0].port" in out
    assert "database       OK" in out  # the database is still looked at: it is named in the file


def test_an_old_schema_or_a_missing_database_is_a_problem(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(CONFIG.format(url=f"sqlite:///{tmp_path / 'none.db'}"))
    code, out = status(config, capsys=capsys)
    assert code == 1 and "no database file at" in out

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0001")
    config.write_text(CONFIG.format(url=url))
    code, out = status(config, capsys=capsys)
    assert code == 1 and "run `appliance db upgrade`" in out
