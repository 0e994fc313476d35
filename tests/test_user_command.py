"""``appliance user``: add, passwd, list, unlock, against a temporary SQLite database."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from appliance.commands import user as user_command
from appliance.db.models import AuditEntry, User
from appliance.db.session import make_engine, make_sessionmaker, upgrade
from appliance.errors import ConfigError

PASSWORD = "a long enough password"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'appliance.db'}"
    upgrade(url)
    return url


@pytest.fixture
def db(url: str) -> Iterator[Session]:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        yield session
    engine.dispose()


@pytest.fixture
def appliance_user(url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run ``appliance user ARGS`` against ``url`` with ``stdin`` as standard input."""

    def run(*argv: str, stdin: str = "", database: str | None = url) -> Result:
        parser = argparse.ArgumentParser(prog="appliance")
        user_command.add_parser(parser.add_subparsers(dest="command", required=True))
        extra = ["--database-url", database] if database else []
        args = parser.parse_args(["user", *argv, *extra])
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = args.func(args)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def _user(db: Session, username: str) -> User | None:
    db.expire_all()
    return db.scalars(select(User).where(User.username == username)).one_or_none()


def _audit(db: Session) -> list[tuple[str, str, str]]:
    db.expire_all()
    return [(e.username, e.action, e.target) for e in db.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def test_add_reads_the_password_from_stdin_and_requires_a_change(appliance_user, db: Session) -> None:
    result = appliance_user("add", "alice", "--role", "frontdesk", "--password-stdin", stdin=PASSWORD + "\n")
    assert result.code == 0, result.err
    assert "added alice (frontdesk)" in result.out
    assert PASSWORD not in result.out + result.err
    user = _user(db, "alice")
    assert user is not None
    assert user.role == "frontdesk" and user.must_change_password and user.active
    assert check_password_hash(user.password_hash, PASSWORD)
    assert user.password_hash.startswith("scrypt:")
    assert _audit(db) == [("cli", "user.add", "user:alice")]
    entry = db.scalars(select(AuditEntry)).one()
    assert entry.after == {"role": "frontdesk", "must_change_password": True}


def test_add_without_change_required(appliance_user, db: Session) -> None:
    result = appliance_user("add", "bob", "--role", "admin", "--password-stdin", "--no-change-required",
                            stdin=PASSWORD)
    assert result.code == 0
    user = _user(db, "bob")
    assert user is not None and not user.must_change_password


def test_add_prompts_twice_with_getpass(appliance_user, db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([PASSWORD, PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert appliance_user("add", "carol", "--role", "viewer").code == 0
    assert _user(db, "carol") is not None

    answers = iter([PASSWORD, PASSWORD + "x"])
    result = appliance_user("add", "dave", "--role", "viewer")
    assert result.code == 1
    assert "the two passwords differ" in result.err
    assert _user(db, "dave") is None


@pytest.mark.parametrize("username, password, message", [
    ("alice", "short", "at least 10 characters"),
    ("longusername", "LongUserName", "must not be the username"),
    ("bad name", PASSWORD, "a username is"),
])
def test_add_refuses_bad_input(appliance_user, db: Session, username: str, password: str,
                               message: str) -> None:
    result = appliance_user("add", username, "--role", "viewer", "--password-stdin", stdin=password)
    assert result.code == 1
    assert message in result.err
    assert _user(db, username) is None
    assert _audit(db) == []


def test_add_refuses_a_duplicate_and_an_unknown_role(appliance_user) -> None:
    assert appliance_user("add", "alice", "--role", "viewer", "--password-stdin", stdin=PASSWORD).code == 0
    result = appliance_user("add", "alice", "--role", "admin", "--password-stdin", stdin=PASSWORD)
    assert result.code == 1 and "already exists" in result.err
    with pytest.raises(SystemExit) as exc:
        appliance_user("add", "eve", "--role", "root", "--password-stdin", stdin=PASSWORD)
    assert exc.value.code == 2


def test_passwd_sets_the_password_and_lifts_a_lock(appliance_user, db: Session) -> None:
    appliance_user("add", "alice", "--role", "viewer", "--password-stdin", "--no-change-required",
                   stdin=PASSWORD)
    user = _user(db, "alice")
    assert user is not None
    user.failed_logins = 5
    user.locked_until = datetime.now(timezone.utc) + timedelta(minutes=10)
    db.commit()

    result = appliance_user("passwd", "alice", "--password-stdin", stdin="another long password\r\n")
    assert result.code == 0, result.err
    user = _user(db, "alice")
    assert user is not None
    assert check_password_hash(user.password_hash, "another long password")
    assert user.must_change_password
    assert user.failed_logins == 0 and user.locked_until is None
    assert _audit(db)[-1] == ("cli", "password.reset", "user:alice")

    assert appliance_user("passwd", "nobody", "--password-stdin", stdin=PASSWORD).code == 1


def test_list_and_unlock(appliance_user, db: Session) -> None:
    appliance_user("add", "alice", "--role", "admin", "--password-stdin", stdin=PASSWORD)
    appliance_user("add", "bob", "--role", "viewer", "--password-stdin", "--no-change-required",
                   stdin=PASSWORD)
    bob = _user(db, "bob")
    assert bob is not None
    bob.failed_logins = 5
    bob.locked_until = datetime(2099, 1, 1, tzinfo=timezone.utc)
    db.commit()

    lines = appliance_user("list").out.splitlines()
    assert lines[0].split()[:2] == ["USERNAME", "ROLE"]
    assert lines[1].split() == ["alice", "admin", "yes", "yes", "-", "never"]
    assert lines[2].split()[:5] == ["bob", "viewer", "yes", "no", "2099-01-01"]

    result = appliance_user("unlock", "bob")
    assert result.code == 0 and "unlocked bob" in result.out
    bob = _user(db, "bob")
    assert bob is not None and bob.locked_until is None and bob.failed_logins == 0
    assert _audit(db)[-1] == ("cli", "account.unlock", "user:bob")
    assert "-" in appliance_user("list").out.splitlines()[2].split()
    assert appliance_user("unlock", "nobody").code == 1


def test_refuses_a_database_that_is_not_migrated(appliance_user, tmp_path: Path) -> None:
    result = appliance_user("list", database=f"sqlite:///{tmp_path / 'empty.db'}")
    assert result.code == 1
    assert "appliance db upgrade" in result.err


def test_a_missing_config_file_is_a_config_error(appliance_user, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        appliance_user("list", "--config", str(tmp_path / "missing.yaml"), database=None)


def test_roles_match_the_web_admin() -> None:
    from webadmin.auth import ROLES

    assert user_command.ROLES == ROLES


def test_a_user_added_here_signs_in_and_must_change_the_password(appliance_user, url: str) -> None:
    from tests.webadmin.conftest import AuthActions
    from webadmin import create_app

    appliance_user("add", "alice", "--role", "viewer", "--password-stdin", stdin=PASSWORD)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "test"})
    response = AuthActions(app.test_client()).login("alice", PASSWORD)
    assert response.headers["Location"] == "/auth/password"
    app.extensions["appliance_db"].engine.dispose()


def test_the_database_comes_from_the_config_file(appliance_user, url: str, tmp_path: Path,
                                                 db: Session) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(f"site:\n  name: Test Hotel\ndatabase:\n  url: {url}\n", encoding="utf-8")
    result = appliance_user("add", "alice", "--role", "viewer", "--password-stdin", "--config", str(config),
                            stdin=PASSWORD, database=None)
    assert result.code == 0, result.err
    assert _user(db, "alice") is not None
