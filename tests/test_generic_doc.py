"""docs/generic-driver.md works as written: its capture, run through the documented ``appliance parse``
command line (a real ``python -m appliance`` process), prints the documented calls; its options, the
command's ``--option`` flags and the go-live configuration say the same thing; the CSV example reads."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from appliance.commands.parse import parse_options
from appliance.config import LinkConfig
from appliance.registry import default_registry

DOC = Path(__file__).resolve().parent.parent / "docs" / "generic-driver.md"


def block(name: str) -> str:
    """The fenced block right after ``<!-- example: NAME -->``."""
    match = re.search(rf"<!-- example: {re.escape(name)} -->\n```[a-z]*\n(.*?)```", DOC.read_text(),
                      re.DOTALL)
    assert match, f"docs/generic-driver.md has no example {name!r}"
    return match.group(1)


def run_parse(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


def documented_command() -> list[str]:
    words = shlex.split(block("command").replace("\\\n", " "))
    assert words[:2] == ["appliance", "parse"]
    return words[1:]


def option_pairs(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word in ("--option", "-o")]


def test_the_documented_command_prints_the_documented_calls(tmp_path):
    (tmp_path / "capture.txt").write_text(block("capture"))
    result = run_parse(documented_command(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    capture_lines = block("capture").splitlines()[1:]  # the column titles are skipped, not printed
    assert [call.pop("raw") for call in printed] == capture_lines
    assert printed == [json.loads(line) for line in block("output").splitlines()]


def test_options_command_and_config_agree():
    options = yaml.safe_load(block("options"))
    assert parse_options(option_pairs(documented_command())) == options
    link = yaml.safe_load(block("config"))["pbx"][0]
    assert link["options"] == options
    LinkConfig(**link)  # a valid link as the configuration loader builds it
    built = default_registry().options("pbx", "generic", link["options"])
    assert built.format == "fixed" and built.columns["trunk"] == (54, 55)


def test_a_wrong_column_is_reported_with_the_line_number(tmp_path):
    (tmp_path / "capture.txt").write_text(block("capture"))
    argv = [word.replace("time: [12, 19]", "time: [14, 21]") for word in documented_command()]
    result = run_parse(argv, tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("line 2: ") and "does not match the format" in result.stderr


def test_the_csv_example_reads(tmp_path):
    (tmp_path / "calls.csv").write_text(block("csv-capture"))
    options = yaml.safe_load(block("csv-options"))
    argv = ["parse", "--driver", "generic", "--timezone", "UTC"]
    for key, value in options.items():
        argv += ["--option", f"{key}={json.dumps(value)}"]
    result = run_parse([*argv, "calls.csv"], tmp_path)
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(c["extension"], c["dialled"], c["duration"], c["answered"], c["direction"]) for c in calls] == [
        ("101", "2125550134", 125, True, "outgoing"), ("115", "18005550199", 0, False, "outgoing")]
    assert calls[0]["start"] == "2025-03-14T10:15:02+00:00"


@pytest.mark.parametrize("name", ["capture", "options", "command", "output", "config", "csv-capture",
                                  "csv-options"])
def test_every_example_is_in_the_doc(name):
    assert block(name).strip()
