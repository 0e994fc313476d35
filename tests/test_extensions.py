"""The extension table as the source of truth: seeding, reloading, CSV import and the command (both databases)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from appliance.cli import main
from appliance.db.models import AuditEntry, Extension
from appliance.db.session import make_engine, make_sessionmaker
from appliance.extensions import (
    RELOAD_SECONDS, ExtensionDirectory, ExtensionRow, replace_all, rows_from_csv, seed_if_empty,
)
from tests.helpers import make_config

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def sessions(migrated_url: str):
    engine = make_engine(migrated_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_an_empty_table_is_seeded_from_the_configuration_and_a_filled_one_is_left_alone(
        sessions, migrated_url: str) -> None:
    config = make_config(migrated_url)
    with sessions.begin() as session:
        assert seed_if_empty(session, config) == 21  # 101-120 guests and lobby 150
    with sessions.begin() as session:
        session.get(Extension, "101").room = "0101A"  # an edit in the web admin
        session.delete(session.get(Extension, "150"))
    with sessions.begin() as session:
        assert seed_if_empty(session, config) == 0
    with sessions() as session:
        assert session.get(Extension, "101").room == "0101A"
        assert session.get(Extension, "150") is None
        assert (session.get(Extension, "120").category, session.get(Extension, "120").room) == ("guest", "120")


def test_the_directory_sees_an_edit_once_its_reload_is_due(sessions) -> None:
    with sessions.begin() as session:
        replace_all(session, [ExtensionRow("101", "guest", "0101")])
    directory = ExtensionDirectory()
    with sessions() as session:
        directory.refresh_if_due(session, T0)
    assert directory.get("101") == ("guest", "0101") and directory.get("999") == ("unknown", "")
    with sessions.begin() as session:
        session.get(Extension, "101").category = "lobby"
        session.add(Extension(number="102", category="admin", room=""))
    with sessions() as session:
        directory.refresh_if_due(session, T0 + timedelta(seconds=RELOAD_SECONDS / 2))
        assert directory.get("101") == ("guest", "0101")  # not due yet: no query per batch
        directory.refresh_if_due(session, T0 + timedelta(seconds=RELOAD_SECONDS))
    assert (directory.get("101"), directory.get("102"), len(directory)) == (("lobby", "0101"), ("admin", ""), 2)


def test_replacing_the_table_reports_what_changed(sessions) -> None:
    with sessions.begin() as session:
        replace_all(session, [ExtensionRow("101", "guest", "0101"), ExtensionRow("102", "guest", "0102")])
    with sessions.begin() as session:
        changes = replace_all(session, [ExtensionRow("101", "guest", "0111"), ExtensionRow("103", "admin")])
    assert changes == {"added": 1, "removed": 1, "changed": 1, "total": 2}


@pytest.mark.parametrize("text, error", [
    ("number,category\n101,guest\n", "missing: extension"),
    ("extension,category,room\n10a,lobby,\n", "line 2: extension '10a' must be digits"),
    ("extension,category,room\n101,vip,0101\n", "line 2: category 'vip' is not one of"),
    ("extension,category,room\n101,guest,\n", "line 2: guest extension 101 needs its room"),
    ("extension,category,room\n101,guest,0101\n101,lobby,\n", "line 3: extension 101 is listed twice"),
])
def test_a_bad_csv_names_its_line(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        rows_from_csv(text)


def _config_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "appliance.yaml"
    path.write_text(yaml.safe_dump({
        "site": {"name": "Test Hotel", "country": "US", "timezone": "America/New_York", "currency": "USD"},
        "database": {"url": url},
        "extensions": [{"numbers": "201-203", "category": "guest", "add_prefix": "0"}],
    }))
    return path


def test_the_command_imports_from_the_file_or_a_csv_and_exports(tmp_path: Path, migrated_url: str, sessions,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = _config_file(tmp_path, migrated_url)
    assert main(["extensions", "import", "--from-config", "--config", str(config)]) == 0
    assert "3 now (3 added, 0 removed, 0 changed)" in capsys.readouterr().out
    good = tmp_path / "rooms.csv"
    good.write_text("extension,category,room,description\n201,guest,0201,\n204,lobby,,lobby phone\n")
    assert main(["extensions", "import", "--csv", str(good), "--config", str(config)]) == 0
    assert "2 now (1 added, 2 removed, 0 changed)" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("extension,category,room\n205,guest,\n")
    assert main(["extensions", "import", "--csv", str(bad), "--config", str(config)]) == 1
    assert "nothing changed: line 2: guest extension 205 needs its room" in capsys.readouterr().err
    assert main(["extensions", "export", "--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "extension,category,room,description", "201,guest,0201,", "204,lobby,,lobby phone"]
    with sessions() as session:
        imports = session.scalars(select(AuditEntry).where(AuditEntry.action == "extension.import")
                                  .order_by(AuditEntry.id)).all()
    assert [(e.username, e.after["source"], e.after["total"]) for e in imports] == [
        ("cli", "configuration", 3), ("cli", str(good), 2)]


def test_while_the_table_is_empty_the_configuration_answers(sessions) -> None:
    directory = ExtensionDirectory(fallback={"101": ("guest", "0101")})
    assert directory.get("101") == ("guest", "0101")  # not read yet
    with sessions() as session:
        directory.load(session, T0)
    assert (directory.get("101"), len(directory)) == (("guest", "0101"), 0)  # read, still empty
    with sessions.begin() as session:
        replace_all(session, [ExtensionRow("102", "lobby")])
    with sessions() as session:
        directory.load(session, T0)
    assert (directory.get("101"), directory.get("102")) == (("unknown", ""), ("lobby", ""))
