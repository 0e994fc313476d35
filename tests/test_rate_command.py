"""``appliance rate``: the front desk's "why did this call cost 7.40", in process and through the CLI."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from appliance.cli import COMMANDS
from appliance.commands import rate as rate_command
from appliance.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "appliance" / "example-config.yaml"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["database"]["url"] = f"sqlite:///{tmp_path / 'unused.db'}"  # rate never opens the database
    path = tmp_path / "appliance.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(config_file: Path, *argv: str) -> str:
    parser = argparse.ArgumentParser(prog="appliance")
    rate_command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["rate", "--config", str(config_file), *argv])
    out = io.StringIO()
    assert args.func(args, out=out) == 0
    return out.getvalue()


def test_rate_and_rerate_are_commands() -> None:
    assert {"rate", "rerate"} <= set(COMMANDS)


def test_a_london_call_explained(config_file: Path) -> None:
    # Example tariff, version 2026, Tuesday 10:00: prefix 4420 is not listed, 44 is: connect 0.50,
    # 0.60/min, first 60 s then per 6 s; 125 s -> 126 s = 1.26; carrier 1.76; markup 30 % = 0.528;
    # surcharges 0.75 + international 0.50 = 1.25; total 3.538 -> up to 0.05: 3.55
    text = run(config_file, "--number", "9011442079460123", "--duration", "125", "--extension", "101",
               "--at", "2026-03-10T10:00")
    assert text.splitlines()[0] == "extension 101 (guest, room 101), trunk -"
    assert "rate: destination prefix 44 (the longest match) \"United Kingdom\"" in text
    assert "standard from 2026-03-10T10:00:00-04:00: 126 s at 0.60/min = 1.260000" in text
    assert "carrier cost: connect 0.50 + time 1.260000 = 1.760000" in text
    assert "surcharges: per call 0.75 + per minute 0.00 + international calls 0.50 = 1.25" in text
    assert text.splitlines()[-1] == "amount: USD 3.55 (charged)"


def test_an_evening_call_split_at_the_band_edge(config_file: Path) -> None:
    # Local, Monday 18:59:30 + 125 s billed 180 s: standard 30 s at 0.10 = 0.05, evening 150 s at 0.05 =
    # 0.125; 0.175 + 30 % 0.0525 + 0.75 = 0.9775 -> 1.00
    text = run(config_file, "--number", "92125550123", "--duration", "125", "--at", "2026-03-16T18:59:30")
    assert "standard from 2026-03-16T18:59:30-04:00: 30 s at 0.10/min = 0.050000" in text
    assert "evening from 2026-03-16T19:00:00-04:00: 150 s at 0.05/min = 0.125000" in text
    assert text.splitlines()[-1] == "amount: USD 1.00 (charged)"


def test_a_later_version_and_a_plan_by_category(config_file: Path) -> None:
    text = run(config_file, "--number", "92125550123", "--duration", "60", "--at", "2027-03-16T10:00")
    assert "version 2027 (in force from 2027-01-01T00:00:00)" in text
    # 0.12 + 0.036 + 0.75 = 0.906 -> 0.95
    assert text.splitlines()[-1] == "amount: USD 0.95 (charged)"
    staff = run(config_file, "--number", "92125550123", "--duration", "60", "--extension", "600")
    assert "tariff: plan staff (select[0]" in staff
    assert staff.splitlines()[-1] == "amount: USD 0.00 (not charged)"


def test_free_calls_say_why_and_json_has_the_breakdown(config_file: Path) -> None:
    text = run(config_file, "--number", "911", "--duration", "300", "--json")
    assert "amount: USD 0.00 (emergency calls are not charged)" in text
    breakdown = json.loads(text[text.index("{"):])
    assert breakdown["rule"] == "never charged" and breakdown["class"] == "emergency"


def test_a_bad_time_is_a_clear_error(config_file: Path) -> None:
    with pytest.raises(ConfigError, match="--at: 'yesterday' is not an ISO 8601 time"):
        run(config_file, "--number", "92125550123", "--duration", "60", "--at", "yesterday")


def test_through_the_cli(config_file: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "appliance", "rate", "--config", str(config_file),
                             "--number", "919005550123", "--duration", "10",
                             "--at", "2026-03-10T10:00-05:00"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "premium call to +19005550123 (US), 10 s" in result.stdout
    assert result.stdout.splitlines()[-1] == "amount: USD 0.00 (not charged)"  # within the 15 s grace


def test_the_extension_table_decides_the_category_when_the_database_has_one(config_file: Path,
                                                                            migrated_url: str) -> None:
    """The daemon routes with the table (appliance.extensions); so does the explanation. Extension 101 is a
    guest phone in the example configuration; the table says it is now the lobby's."""
    from appliance.db.models import Extension
    from appliance.db.session import make_engine, make_sessionmaker

    data = yaml.safe_load(config_file.read_text())
    data["database"]["url"] = migrated_url
    config_file.write_text(yaml.safe_dump(data))
    assert run(config_file, "--number", "92125550123", "--duration", "60", "--extension", "101") \
        .splitlines()[0].startswith("extension 101 (guest, room")  # an empty table: the file's ranges
    engine = make_engine(migrated_url)
    with make_sessionmaker(engine).begin() as session:
        session.add(Extension(number="101", category="lobby", room="", description="moved to the lobby"))
    engine.dispose()
    assert run(config_file, "--number", "92125550123", "--duration", "60", "--extension", "101",
               ).splitlines()[0] == "extension 101 (lobby), trunk -"
    assert run(config_file, "--number", "92125550123", "--duration", "60", "--extension", "102",
               ).splitlines()[0] == "extension 102 (unknown), trunk -"
