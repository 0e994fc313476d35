"""``appliance.firstboot``: the setup state files, ``python -m appliance.firstboot prepare`` (the web
unit's ExecStartPre) and what ``appliance status`` shows of the first-boot setup (issue 9, "First boot")."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from appliance.commands import status as status_command
from appliance.errors import ConfigError
from appliance.firstboot import CODE_ALPHABET, SetupState, atomic_write, format_code, normalise_code


def test_prepare_makes_one_code_and_keeps_it_across_restarts(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "appliance.firstboot", "prepare", "--state-dir", str(tmp_path)]
    first = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    second = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    match = re.search(r"setup code ([A-Z0-9]{4}-[A-Z0-9]{4})", first)
    assert match and first == second
    code = json.loads((tmp_path / "setup-code").read_text())["code"]
    assert format_code(code) == match.group(1) and set(code) <= set(CODE_ALPHABET)
    # Group-readable (the boot banner reads it as group appliance), never world-readable.
    assert (tmp_path / "setup-code").stat().st_mode & 0o777 == 0o640

    SetupState(tmp_path).mark_completed("admin", datetime(2026, 1, 1, tzinfo=timezone.utc))
    after = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert "complete" in after and not (tmp_path / "setup-code").exists()


def test_code_is_typed_forgivingly() -> None:
    assert normalise_code(" abcd-2345 ") == "ABCD2345"
    assert format_code("ABCD2345") == "ABCD-2345"


def test_write_config_validates_before_writing(tmp_path: Path) -> None:
    state = SetupState(tmp_path)
    with pytest.raises(ConfigError) as problem:
        state.write_config({"site": {"name": "X", "timezone": "Nowhere/Land"}})
    assert "timezone" in str(problem.value.render())
    assert not state.config_path.exists()
    state.write_config({"site": {"name": "Grand"}, "web": {"host": "0.0.0.0", "port": 80}})
    assert yaml.safe_load(state.config_path.read_text())["site"] == {"name": "Grand"}


def test_atomic_write_replaces_through_a_link_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    real = tmp_path / "state" / "appliance.yaml"
    real.parent.mkdir()
    real.write_text("old\n")
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "appliance.yaml").symlink_to(real)
    atomic_write(etc / "appliance.yaml", "new\n")
    # The link stays a link (the image's /etc/appliance/appliance.yaml); the file behind it is new.
    assert (etc / "appliance.yaml").is_symlink() and real.read_text() == "new\n"
    assert sorted(os.listdir(real.parent)) == ["appliance.yaml"]


def status(config: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    parser = argparse.ArgumentParser(prog="appliance")
    status_command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["status", "--config", str(config), "--state-dir", str(state_dir),
                              "--backups", str(state_dir / "backups")])
    args.func(args)
    return capsys.readouterr().out


def test_status_shows_the_setup_code_while_setup_is_open(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(f"site: {{name: New}}\ndatabase: {{url: 'sqlite:///{tmp_path}/none.db'}}\n")
    state = SetupState(tmp_path)
    code = state.ensure_code()
    assert code is not None
    out = status(config, tmp_path, capsys)
    assert f"first boot     SETUP OPEN: browse to the web admin and type the setup code {format_code(code)}" in out

    state.mark_completed("boss", datetime(2026, 11, 22, 3, 0, tzinfo=timezone.utc))
    out = status(config, tmp_path, capsys)
    assert "first boot     setup complete 2026-11-22T03:00:00+00:00 (admin boss)" in out
    assert format_code(code) not in out
